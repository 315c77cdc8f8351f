"""Time-of-day arithmetic for business hours, holidays and callback windows.

Pure functions of their arguments: the caller passes the instant (epoch seconds)
and the bank's time zone; nothing here reads the clock.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import NamedTuple
from zoneinfo import ZoneInfo

from policies.vocabulary import CallbackWindow

DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
MINUTES_PER_DAY = 1440
CLOSED_WORDS = frozenset({"closed", "none", "off"})
ALL_DAY_WORDS = frozenset({"24h", "all day", "always"})
CALLBACK_SEARCH_DAYS = 14


class TimeRange(NamedTuple):
    """Minutes after local midnight; `end_min` is exclusive and may wrap past midnight."""

    start_min: int
    end_min: int

    def contains(self, minute: int) -> bool:
        if self.start_min < self.end_min:
            return self.start_min <= minute < self.end_min
        return minute >= self.start_min or minute < self.end_min

    def wraps(self) -> bool:
        return self.end_min <= self.start_min

    def __str__(self) -> str:
        return f"{format_minute(self.start_min)}-{format_minute(self.end_min)}"


def parse_minute(text: str) -> int:
    """'08:30' -> 510; '24:00' is allowed as an end of day."""
    hours_text, sep, minutes_text = text.strip().partition(":")
    if not sep or not hours_text.isdigit() or not minutes_text.isdigit() or len(minutes_text) != 2:
        raise ValueError(f"'{text.strip()}' is not a time like 08:30")
    hours, minutes = int(hours_text), int(minutes_text)
    if minutes > 59 or hours > 24 or (hours == 24 and minutes):
        raise ValueError(f"'{text.strip()}' is not a time of day")
    return hours * 60 + minutes


def format_minute(minute: int) -> str:
    return f"{minute // 60:02d}:{minute % 60:02d}"


def parse_range(text: str) -> TimeRange:
    """'08:00-20:00' -> TimeRange(480, 1200); '22:00-06:00' wraps past midnight."""
    start_text, sep, end_text = text.partition("-")
    if not sep:
        raise ValueError(f"'{text.strip()}' is not a range like 08:00-20:00")
    start, end = parse_minute(start_text), parse_minute(end_text)
    if start == end:
        raise ValueError(f"'{text.strip()}' is an empty range")
    return TimeRange(start % MINUTES_PER_DAY, end)


def parse_ranges(value: object) -> tuple[TimeRange, ...]:
    """'08:00-12:00, 13:00-17:00', a list of such strings, 'closed' or '24h'."""
    if isinstance(value, TimeRange):
        return (value,)
    if isinstance(value, (list, tuple)):
        return tuple(r for item in value for r in parse_ranges(item))
    if not isinstance(value, str):
        raise ValueError("hours must be text like '08:00-20:00', 'closed' or '24h'")
    word = value.strip().lower()
    if word in CLOSED_WORDS:
        return ()
    if word in ALL_DAY_WORDS:
        return (TimeRange(0, MINUTES_PER_DAY),)
    return tuple(parse_range(part) for part in value.split(",") if part.strip())


def format_ranges(ranges: Sequence[TimeRange]) -> str:
    return ", ".join(str(r) for r in ranges) if ranges else "closed"


def parse_days(text: str) -> tuple[int, ...]:
    """'mon-fri' -> (0..4); 'sat,sun'; 'daily'; 'weekdays'; 'weekends'."""
    word = text.strip().lower()
    named = {"daily": "mon-sun", "every day": "mon-sun", "weekdays": "mon-fri", "weekends": "sat-sun"}
    word = named.get(word, word)
    days: list[int] = []
    for part in word.split(","):
        first, sep, last = part.strip().partition("-")
        start, end = _day_index(first), _day_index(last) if sep else _day_index(first)
        days.extend(range(start, end + 1) if start <= end else [*range(start, 7), *range(end + 1)])
    return tuple(sorted(set(days)))


def _day_index(name: str) -> int:
    key = name.strip()[:3]
    if key not in DAY_NAMES or name.strip() not in (key, _long_day(key)):
        raise ValueError(f"unknown day '{name.strip()}' (use mon, tue, ... sun)")
    return DAY_NAMES.index(key)


def _long_day(key: str) -> str:
    return {"mon": "monday", "tue": "tuesday", "wed": "wednesday", "thu": "thursday",
            "fri": "friday", "sat": "saturday", "sun": "sunday"}[key]


@dataclass(frozen=True, slots=True)
class Calendar:
    """Opening hours per weekday, closed holidays and dates with special hours."""

    week: tuple[tuple[TimeRange, ...], ...]  # 7 entries, Monday first
    holidays: frozenset[date] = frozenset()
    special_days: Mapping[date, tuple[TimeRange, ...]] | None = None

    def ranges_on(self, day: date) -> tuple[TimeRange, ...]:
        if self.special_days and day in self.special_days:
            return self.special_days[day]
        if day in self.holidays:
            return ()
        return self.week[day.weekday()]

    def is_open(self, local: datetime) -> bool:
        minute = local.hour * 60 + local.minute
        return any(r.start_min <= minute < r.end_min for r in self.ranges_on(local.date()))


def build_week(hours: Mapping[str, Sequence[TimeRange]]) -> tuple[tuple[TimeRange, ...], ...]:
    """Expand {'mon-fri': ..., 'sat': ...} into seven days; later keys win, unnamed days are closed."""
    week: list[tuple[TimeRange, ...]] = [() for _ in DAY_NAMES]
    for key, ranges in hours.items():
        for day in parse_days(key):
            week[day] = tuple(ranges)
    return tuple(week)


def local_time(now_s: float, zone: ZoneInfo) -> datetime:
    return datetime.fromtimestamp(now_s, zone)


def minute_of_day(local: datetime) -> int:
    return local.hour * 60 + local.minute


def next_callback_slot(
    from_s: float,
    zone: ZoneInfo,
    calendar: Calendar | None,
    windows: Sequence[CallbackWindow],
) -> float | None:
    """The earliest instant >= from_s inside a customer window and (if given) the bank's open hours."""
    slot = callback_slot_from_minute(from_s - from_s % 60, zone, calendar, windows)
    return None if slot is None else max(slot, from_s)


def callback_slot_from_minute(
    minute_s: float, zone: ZoneInfo, calendar: Calendar | None, windows: Sequence[CallbackWindow]
) -> float | None:
    """Like `next_callback_slot` for a whole-minute instant: the same for every second of it."""
    start = local_time(minute_s, zone)
    for offset in range(CALLBACK_SEARCH_DAYS + 1):
        day = start.date() + timedelta(days=offset)
        earliest = minute_of_day(start) if offset == 0 else 0
        minute = _first_free_minute(day, earliest, calendar, windows)
        if minute is not None:
            return max(_first_instant_at(day, minute, zone, minute_s), minute_s)
    return None


def _first_instant_at(day: date, minute: int, zone: ZoneInfo, not_before_s: float) -> float:
    """The first instant from `not_before_s` on whose clock reads `minute` of `day` or later.

    Why not just the wall time's timestamp: on the night the clocks go forward, 02:30 does not
    exist (its timestamp is 03:30, half an hour late: the first instant at 02:30 or later is the
    jump, 03:00); on the night they go back, 01:45 happens twice, and the first may be past."""
    wall = datetime(day.year, day.month, day.day) + timedelta(minutes=minute)
    first, second = (wall.replace(tzinfo=zone, fold=fold).timestamp() for fold in (0, 1))
    if datetime.fromtimestamp(first, zone).replace(tzinfo=None) != wall:  # in the gap: find the jump
        instant = min(first, second) - min(first, second) % 60
        while datetime.fromtimestamp(instant, zone).replace(tzinfo=None) < wall:
            instant += 60
        return instant
    return second if first < not_before_s <= second else first


def _first_free_minute(
    day: date, earliest: int, calendar: Calendar | None, windows: Sequence[CallbackWindow]
) -> int | None:
    bank = calendar.ranges_on(day) if calendar else (TimeRange(0, MINUTES_PER_DAY),)
    customer = _window_spans(windows)
    starts = [
        max(b.start_min, c_start, earliest)
        for b in bank
        for c_start, c_end in customer
        if max(b.start_min, c_start, earliest) < min(b.end_min, c_end)
    ]
    return min(starts) if starts else None


def _window_spans(windows: Sequence[CallbackWindow]) -> Iterable[tuple[int, int]]:
    if not windows:
        return ((0, MINUTES_PER_DAY),)
    spans: list[tuple[int, int]] = []
    for w in windows:
        if w.end_min > w.start_min:
            spans.append((w.start_min, w.end_min))
        else:  # wraps past midnight
            spans.extend(((w.start_min, MINUTES_PER_DAY), (0, w.end_min)))
    return spans
