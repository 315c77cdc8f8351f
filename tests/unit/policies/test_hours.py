from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest

from policies.hours import (
    Calendar,
    TimeRange,
    build_week,
    format_ranges,
    local_time,
    next_callback_slot,
    parse_days,
    parse_minute,
    parse_ranges,
)
from policies.vocabulary import CallbackWindow
from tests.unit.policies.helpers import SHANGHAI, at


@pytest.mark.parametrize(
    ("text", "minute"),
    [("00:00", 0), ("08:30", 510), ("23:59", 1439), ("24:00", 1440), (" 9:05 ", 545)],
)
def test_parse_minute(text: str, minute: int) -> None:
    assert parse_minute(text) == minute


@pytest.mark.parametrize("text", ["8", "08:60", "25:00", "24:01", "ab:cd", "08:5"])
def test_parse_minute_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_minute(text)


@pytest.mark.parametrize(
    ("value", "ranges"),
    [
        ("08:00-20:00", (TimeRange(480, 1200),)),
        ("08:00-12:00, 13:00-17:00", (TimeRange(480, 720), TimeRange(780, 1020))),
        (["08:00-12:00", "13:00-17:00"], (TimeRange(480, 720), TimeRange(780, 1020))),
        ("closed", ()),
        ("24h", (TimeRange(0, 1440),)),
        ("22:00-06:00", (TimeRange(1320, 360),)),
    ],
)
def test_parse_ranges(value: object, ranges: tuple[TimeRange, ...]) -> None:
    assert parse_ranges(value) == ranges


@pytest.mark.parametrize("value", ["08:00", "08:00-08:00", 12, "8-20"])
def test_parse_ranges_rejects(value: object) -> None:
    with pytest.raises(ValueError):
        parse_ranges(value)


def test_format_ranges_round_trips() -> None:
    assert format_ranges(parse_ranges("08:00-12:00,13:00-24:00")) == "08:00-12:00, 13:00-24:00"
    assert format_ranges(()) == "closed"


@pytest.mark.parametrize(
    ("minute", "inside"),
    [(1319, False), (1320, True), (0, True), (359, True), (360, False)],
)
def test_wrapping_range_contains(minute: int, inside: bool) -> None:
    assert TimeRange(1320, 360).contains(minute) is inside


@pytest.mark.parametrize(
    ("text", "days"),
    [("mon-fri", (0, 1, 2, 3, 4)), ("sat,sun", (5, 6)), ("fri-mon", (0, 4, 5, 6)), ("daily", tuple(range(7))),
     ("weekends", (5, 6)), ("wednesday", (2,))],
)
def test_parse_days(text: str, days: tuple[int, ...]) -> None:
    assert parse_days(text) == days


def test_parse_days_rejects_unknown() -> None:
    with pytest.raises(ValueError, match="unknown day 'mnday'"):
        parse_days("mnday")


CAL = Calendar(
    build_week({"mon-fri": parse_ranges("08:00-20:00"), "sat": parse_ranges("09:00-12:00")}),
    holidays=frozenset({date(2026, 10, 1)}),
    special_days={date(2026, 10, 11): parse_ranges("08:00-20:00")},  # a Sunday made a working day
)


@pytest.mark.parametrize(
    ("local", "is_open"),
    [
        ("2026-11-23 07:59", False),  # Monday before opening
        ("2026-11-23 08:00", True),
        ("2026-11-23 19:59", True),
        ("2026-11-23 20:00", False),
        ("2026-11-28 11:00", True),  # Saturday morning
        ("2026-11-28 12:00", False),
        ("2026-11-29 10:00", False),  # Sunday
        ("2026-10-01 10:00", False),  # National Day, a Thursday
        ("2026-10-11 10:00", True),  # make-up working Sunday
    ],
)
def test_calendar_open(local: str, is_open: bool) -> None:
    assert CAL.is_open(local_time(at(local), SHANGHAI)) is is_open


def test_calendar_uses_the_banks_time_zone() -> None:
    # 01:30 UTC on Monday is 09:30 in Shanghai (open) but 02:30 in Paris (closed).
    instant = datetime(2026, 11, 23, 1, 30, tzinfo=ZoneInfo("UTC")).timestamp()
    assert CAL.is_open(local_time(instant, SHANGHAI)) is True
    assert CAL.is_open(local_time(instant, ZoneInfo("Europe/Paris"))) is False


@pytest.mark.parametrize(
    ("start", "windows", "expected"),
    [
        ("2026-11-23 10:00", (), "2026-11-23 10:00"),  # open now, no windows: at once
        ("2026-11-23 21:00", (), "2026-11-24 08:00"),  # after hours: next opening
        ("2026-11-23 10:00", (CallbackWindow(18 * 60, 19 * 60),), "2026-11-23 18:00"),
        ("2026-11-23 19:30", (CallbackWindow(18 * 60, 19 * 60),), "2026-11-24 18:00"),
        ("2026-11-27 21:00", (CallbackWindow(10 * 60, 11 * 60),), "2026-11-28 10:00"),  # Saturday hours
        ("2026-11-28 11:30", (CallbackWindow(14 * 60, 15 * 60),), "2026-11-30 14:00"),  # skips Sat pm, Sunday
        ("2026-09-30 21:00", (), "2026-10-02 08:00"),  # skips the holiday
        ("2026-11-23 10:00", (CallbackWindow(22 * 60, 9 * 60),), "2026-11-24 08:00"),  # window wraps midnight
    ],
)
def test_callback_slot_respects_windows_and_hours(start: str, windows: tuple[CallbackWindow, ...],
                                                  expected: str) -> None:
    assert next_callback_slot(at(start), SHANGHAI, CAL, windows) == at(expected)


def test_callback_slot_keeps_the_exact_second_when_free_now() -> None:
    start = at("2026-11-23 10:00") + 17.5
    assert next_callback_slot(start, SHANGHAI, CAL, ()) == start


def test_callback_slot_without_calendar_only_uses_windows() -> None:
    windows = (CallbackWindow(21 * 60, 22 * 60),)
    assert next_callback_slot(at("2026-11-29 10:00"), SHANGHAI, None, windows) == at("2026-11-29 21:00")


def test_callback_slot_none_when_windows_never_meet_hours() -> None:
    windows = (CallbackWindow(1 * 60, 2 * 60),)  # 01:00-02:00: the bank is never open then
    assert next_callback_slot(at("2026-11-23 10:00"), SHANGHAI, CAL, windows) is None
