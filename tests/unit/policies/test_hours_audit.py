"""Audit of callback slots across daylight-saving changes (a bank whose zone has them)."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from policies.hours import Calendar, build_week, next_callback_slot, parse_ranges
from policies.vocabulary import CallbackWindow

NEW_YORK = ZoneInfo("America/New_York")  # 2026-03-08 02:00 -> 03:00; 2026-11-01 02:00 -> 01:00
ALWAYS = Calendar(build_week({"daily": parse_ranges("24h")}))


def local(text: str, fold: int = 0) -> float:
    return datetime.strptime(text, "%Y-%m-%d %H:%M").replace(tzinfo=NEW_YORK, fold=fold).timestamp()


def window(start: str, end: str = "24:00") -> CallbackWindow:
    def minutes(t: str) -> int:
        return int(t[:2]) * 60 + int(t[3:])
    return CallbackWindow(minutes(start), minutes(end))


@pytest.mark.parametrize("calendar", [None, ALWAYS])
def test_a_window_opening_in_the_spring_gap_starts_when_the_clocks_jump(calendar: Calendar | None) -> None:
    # "after 02:30" on the night 02:00 does not exist: the first instant whose clock reads
    # 02:30 or later is 03:00 EDT (it was 03:30: half an hour late).
    slot = next_callback_slot(local("2026-03-08 01:30"), NEW_YORK, calendar, (window("02:30"),))
    assert slot == local("2026-03-08 03:00")


def test_in_the_repeated_autumn_hour_a_slot_is_not_before_the_customers_window() -> None:
    # At 01:30 EST (the second 01:30), "after 01:45" is 01:45 EST: it was now, 01:30, before
    # the window (the first 01:45, EDT, had passed, and the slot was clamped to now).
    start = local("2026-11-01 01:30", fold=1)
    assert next_callback_slot(start, NEW_YORK, None, (window("01:45"),)) == local("2026-11-01 01:45", fold=1)


def test_ordinary_slots_around_the_changes_are_wall_clock_times() -> None:
    assert next_callback_slot(local("2026-03-07 21:00"), NEW_YORK, None, (window("15:00", "18:00"),)) == \
        local("2026-03-08 15:00")
    assert next_callback_slot(local("2026-10-31 21:00"), NEW_YORK, None, (window("15:00", "18:00"),)) == \
        local("2026-11-01 15:00")
    start = local("2026-11-01 01:30", fold=1)
    assert next_callback_slot(start, NEW_YORK, None, (window("01:00"),)) == start  # inside: at once
