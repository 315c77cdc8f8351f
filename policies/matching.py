"""Rule matching compiled into bitsets: one int per (condition, value), one bit per rule.

For a contact, each condition contributes the mask of rules it allows; the AND of
all masks holds the rules that match, and the lowest set bit is the first one.
That costs a dozen dict look-ups and ANDs whatever the number of rules.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from policies.hours import MINUTES_PER_DAY, TimeRange
from policies.schema import MatchSpec
from policies.vocabulary import Channel, ContactFacts, Intent, Segment

MAIN_CALENDAR = ""  # the document's top-level business_hours
V = TypeVar("V", bound=Hashable)


@dataclass(frozen=True, slots=True)
class Moment:
    """The local time facts rules can match on, computed once per evaluation."""

    minute: int  # minutes after local midnight
    weekday: int  # 0 = Monday
    open_calendars: frozenset[str]  # names of calendars open now (MAIN_CALENDAR for business_hours)


def lowest_bit(mask: int) -> int:
    """Index of the lowest set bit; -1 for zero."""
    return (mask & -mask).bit_length() - 1


def bits(mask: int) -> Iterable[int]:
    while mask:
        low = mask & -mask
        yield low.bit_length() - 1
        mask ^= low


class MatchIndex:
    """Bitset index over an ordered list of match specs (None = no spec: the bit is never set)."""

    def __init__(self, specs: Sequence[MatchSpec | None]) -> None:
        self._specs = list(specs)
        self.present = sum(1 << i for i, s in enumerate(specs) if s is not None)
        self.channel = self._closed(lambda s: s.channel, list(Channel))
        self.segment = self._closed(lambda s: s.segment, list(Segment))
        self.intent = self._closed(lambda s: s.intent, list(Intent))
        self.language, self.language_free = self._open(lambda s: s.language)
        self.line, self.line_free = self._open(lambda s: s.dialled_line)
        self.needs, self.needs_free = self._any_of(lambda s: s.needs)
        self.tags, self.tags_free = self._any_of(lambda s: s.tags)
        self.speaks = self._flag(lambda s: s.speaks_home_language)
        self.dedicated = self._flag(lambda s: s.has_dedicated_agent)
        self.repeat = self._repeat_masks()
        self.calendars = self._calendar_masks()
        self.minutes = self._minute_masks()
        self.weekdays = self._weekday_masks()
        self.uses_time = bool(self.calendars) or self.minutes is not None or self.weekdays is not None

    def _allowing(self, allows: Callable[[MatchSpec], bool]) -> int:
        return sum(1 << i for i, s in enumerate(self._specs) if s is not None and allows(s))

    def _closed(self, get: Callable[[MatchSpec], Iterable[V] | None], values: Sequence[V]) -> dict[V, int]:
        return {v: self._allowing(lambda s: (c := get(s)) is None or v in c) for v in values}

    def _open(self, get: Callable[[MatchSpec], Iterable[V] | None]) -> tuple[dict[V, int], int]:
        named = {v for s in self._specs if s is not None for v in (get(s) or ())}
        free = self._allowing(lambda s: get(s) is None)
        return {v: self._allowing(lambda s: (c := get(s)) is None or v in c) for v in named}, free

    def _any_of(self, get: Callable[[MatchSpec], Iterable[V] | None]) -> tuple[dict[V, int], int]:
        named = {v for s in self._specs if s is not None for v in (get(s) or ())}
        listing = {v: self._allowing(lambda s: v in (get(s) or ())) for v in named}
        return listing, self._allowing(lambda s: get(s) is None)

    def _flag(self, get: Callable[[MatchSpec], bool | None]) -> tuple[int, int]:
        return self._allowing(lambda s: get(s) is not True), self._allowing(lambda s: get(s) is not False)

    def _repeat_masks(self) -> list[int]:
        bounds = [b for s in self._specs if s is not None for b in _repeat_bounds(s)]
        top = max(bounds, default=0) + 1
        return [self._allowing(lambda s: _repeat_allows(s, count)) for count in range(top + 1)]

    def _calendar_masks(self) -> dict[str, tuple[int, int]]:
        names = {s.calendar or MAIN_CALENDAR for s in self._specs if s is not None and s.business_hours}
        return {name: (self._calendar_allows(name, "closed"), self._calendar_allows(name, "open")) for name in names}

    def _calendar_allows(self, name: str, state: str) -> int:
        return self._allowing(
            lambda s: s.business_hours is None or (s.calendar or MAIN_CALENDAR) != name or s.business_hours == state
        )

    def _minute_masks(self) -> list[int] | None:
        timed = [(i, s.time_of_day) for i, s in enumerate(self._specs) if s is not None and s.time_of_day]
        if not timed:
            return None
        free = self._allowing(lambda s: s.time_of_day is None)
        masks = [free] * MINUTES_PER_DAY
        for i, ranges in timed:
            for minute in {m for r in ranges for m in minutes_of(r)}:
                masks[minute] |= 1 << i
        return masks

    def _weekday_masks(self) -> list[int] | None:
        if all(s is None or s.days is None for s in self._specs):
            return None
        return [self._allowing(lambda s: (d := s.weekdays()) is None or day in d) for day in range(7)]

    def mask(self, contact: ContactFacts, home_language: str, moment: Moment | None) -> int:
        """Bits of the specs this contact (at this moment) satisfies."""
        m = self.channel[contact.channel] & self.segment[contact.segment] & self.intent[contact.intent]
        m &= self.language.get(contact.language, self.language_free)
        m &= self.speaks[home_language in contact.languages] & self.dedicated[contact.dedicated_agent is not None]
        m &= self.repeat[min(max(contact.repeat_count, 0), len(self.repeat) - 1)]
        if contact.dialled_line is not None:
            m &= self.line.get(contact.dialled_line, self.line_free)
        else:
            m &= self.line_free
        m &= _any_of_mask(self.needs, self.needs_free, contact.needs)
        m &= _any_of_mask(self.tags, self.tags_free, contact.tags)
        if self.uses_time and m and moment is not None:
            m &= self.time_mask(moment)
        return m & self.present

    def time_mask(self, moment: Moment) -> int:
        m = self.present
        for name, (closed, opened) in self.calendars.items():
            m &= opened if name in moment.open_calendars else closed
        if self.minutes is not None:
            m &= self.minutes[moment.minute]
        if self.weekdays is not None:
            m &= self.weekdays[moment.weekday]
        return m


def minutes_of(r: TimeRange) -> range | list[int]:
    """Every minute of the day inside `r` (which may wrap past midnight)."""
    if r.start_min < r.end_min:
        return range(r.start_min, min(r.end_min, MINUTES_PER_DAY))
    return [*range(r.start_min, MINUTES_PER_DAY), *range(0, r.end_min)]


def _any_of_mask(listing: dict[V, int], free: int, values: Iterable[V]) -> int:
    m = free
    for v in values:
        m |= listing.get(v, 0)
    return m


def _repeat_bounds(spec: MatchSpec) -> list[int]:
    bounds = [spec.repeat_count_min, spec.repeat_count_max]
    return [b for b in bounds if b is not None]


def _repeat_allows(spec: MatchSpec, count: int) -> bool:
    low, high = spec.repeat_count_min, spec.repeat_count_max
    return (low is None or count >= low) and (high is None or count <= high)
