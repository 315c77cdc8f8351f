"""The routing policy document: what an admin writes, as pydantic models.

A document has queues (with SLA targets), business hours, defaults and an
ordered list of rules. The first rule whose `match` (and not `unless`) fits a
contact decides its queue, requirements, priority, strategy, escalation steps
and deadlines. Cross-references (queue ids, calendars, relax targets) are
checked by `policies.validate`, so errors there carry precise paths.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BeforeValidator, Field, PlainSerializer, WithJsonSchema, field_validator, model_validator

from policies.decisions import (
    ACTIONS,
    AlsoAccepts,
    CONTACT,
    KINDS,
    LANGUAGE_PATTERN,
    MAX_OFFER_TIMEOUT_S,
    MAX_PRIORITY_GROWTH_PER_MIN,
    MAX_REPEAT_COUNT,
    MAX_WAIT_S,
    UNLESS_HOME,
    CallbackSpec,
    DeadlineSpec,
    EscalateSpec,
    Ident,
    Model,
    Priority,
    RelaxSpec,
    RequirementSpec,
    StepSpec,
)
from policies.hours import Calendar, TimeRange, build_week, format_ranges, parse_days, parse_ranges
from policies.vocabulary import HOME_LANGUAGE, Channel, Intent, Need, Segment, Strategy

__all__ = [
    "ACTIONS", "CONTACT", "KINDS", "UNLESS_HOME", "CalendarSpec", "CallbackSpec", "DeadlineSpec", "DefaultsSpec",
    "EscalateSpec", "MatchSpec", "PolicyDocument", "QueueSpec", "RelaxSpec", "RequirementSpec", "RuleSpec",
    "SlaSpec", "StepSpec",
]
DEFAULT_TIMEZONE = "Asia/Shanghai"


def _one_or_many(value: object) -> object:
    return [value] if isinstance(value, str) else value


def _hours_value(value: object) -> tuple[TimeRange, ...]:
    return parse_ranges(value)


_HOURS_TEXT = {"type": "string", "description": "'08:00-12:00, 13:00-17:00', 'closed' or '24h'",
               "examples": ["08:00-20:00"]}
Hours = Annotated[
    tuple[TimeRange, ...],
    BeforeValidator(_hours_value),
    PlainSerializer(format_ranges, return_type=str),
    WithJsonSchema({"anyOf": [_HOURS_TEXT, {"type": "array", "items": _HOURS_TEXT}]}),
]
Channels = Annotated[tuple[Channel, ...], Field(min_length=1), BeforeValidator(_one_or_many), AlsoAccepts()]
Segments = Annotated[tuple[Segment, ...], Field(min_length=1), BeforeValidator(_one_or_many), AlsoAccepts()]
Intents = Annotated[tuple[Intent, ...], Field(min_length=1), BeforeValidator(_one_or_many), AlsoAccepts()]
Needs = Annotated[tuple[Need, ...], Field(min_length=1), BeforeValidator(_one_or_many), AlsoAccepts()]
Words = Annotated[tuple[str, ...], Field(min_length=1), BeforeValidator(_one_or_many), AlsoAccepts()]
Languages = Annotated[tuple[Annotated[str, Field(pattern=LANGUAGE_PATTERN)], ...], Field(min_length=1),
                      BeforeValidator(_one_or_many), AlsoAccepts()]


class CalendarSpec(Model):
    """Opening hours per day ('mon-fri': '08:00-20:00'), closed holidays, dates with special hours."""

    hours: dict[str, Hours] = Field(default_factory=dict)
    holidays: tuple[date, ...] = ()
    special_days: dict[date, Hours] = Field(default_factory=dict)

    @field_validator("hours")
    @classmethod
    def _days_are_known(cls, value: dict[str, tuple[TimeRange, ...]]) -> dict[str, tuple[TimeRange, ...]]:
        for key, ranges in value.items():
            parse_days(key)
            _no_wrap(ranges)
        return value

    @field_validator("special_days")
    @classmethod
    def _special_no_wrap(cls, value: dict[date, tuple[TimeRange, ...]]) -> dict[date, tuple[TimeRange, ...]]:
        for ranges in value.values():
            _no_wrap(ranges)
        return value

    def compile(self) -> Calendar:
        return Calendar(build_week(self.hours), frozenset(self.holidays), dict(self.special_days))


def _no_wrap(ranges: tuple[TimeRange, ...]) -> None:
    for r in ranges:
        if r.wraps():
            raise ValueError(f"opening hours '{r}' cross midnight; split them over two days")


class SlaSpec(Model):
    answer_within_s: float = Field(gt=0, le=MAX_WAIT_S)
    target_pct: float = Field(gt=0, le=100)


class MatchSpec(Model):
    """Every condition given must hold; a list means 'any of these'. Empty = every contact."""

    channel: Channels | None = None
    segment: Segments | None = None
    intent: Intents | None = None
    language: Languages | None = None
    speaks_home_language: bool | None = None
    needs: Needs | None = None
    tags: Words | None = None
    repeat_count_min: int | None = Field(default=None, ge=0, le=MAX_REPEAT_COUNT)
    repeat_count_max: int | None = Field(default=None, ge=0, le=MAX_REPEAT_COUNT)
    has_dedicated_agent: bool | None = None
    dialled_line: Words | None = None
    business_hours: Literal["open", "closed"] | None = None
    calendar: Ident | None = None
    time_of_day: Hours | None = None
    days: Words | None = None

    @field_validator("days")
    @classmethod
    def _days_are_known(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        for key in value or ():
            parse_days(key)
        return value

    @model_validator(mode="after")
    def _consistent(self) -> MatchSpec:
        if self.calendar is not None and self.business_hours is None:
            raise ValueError("'calendar' only applies together with 'business_hours'")
        low, high = self.repeat_count_min, self.repeat_count_max
        if low is not None and high is not None and low > high:
            raise ValueError("repeat_count_min is above repeat_count_max")
        return self

    def conditions(self) -> dict[str, object]:
        return self.model_dump(exclude_none=True, mode="json")

    def is_empty(self) -> bool:
        return not self.conditions()

    def weekdays(self) -> frozenset[int] | None:
        return None if self.days is None else frozenset(d for key in self.days for d in parse_days(key))


class RuleSpec(Model):
    id: Ident
    description: str = ""
    match: MatchSpec = MatchSpec()
    unless: MatchSpec | None = None
    queue: Ident
    require: tuple[RequirementSpec, ...] = ()
    priority: Priority = 0
    priority_growth_per_min: float | None = Field(default=None, ge=0, le=MAX_PRIORITY_GROWTH_PER_MIN)
    offer_timeout_s: float | None = Field(default=None, gt=0, le=MAX_OFFER_TIMEOUT_S)
    strategy: Strategy | None = None
    escalate: tuple[StepSpec, ...] = ()
    deadlines: tuple[DeadlineSpec, ...] = ()
    callback: bool = False  # offer a callback at once (e.g. after hours)

    def is_catch_all(self) -> bool:
        return self.match.is_empty() and self.unless is None


class QueueSpec(Model):
    id: Ident
    name: str = ""
    sla: SlaSpec
    max_wait_s: float | None = Field(default=None, gt=0, le=MAX_WAIT_S)
    overflow_to: Ident | None = None
    wrapup_s: float = Field(default=0, ge=0, le=MAX_WAIT_S)
    require: tuple[RequirementSpec, ...] = ()


class DefaultsSpec(Model):
    offer_timeout_s: float = Field(default=20, gt=0, le=MAX_OFFER_TIMEOUT_S)
    strategy: Strategy = Strategy.LONGEST_IDLE
    priority_growth_per_min: float = Field(default=1, ge=0, le=MAX_PRIORITY_GROWTH_PER_MIN)
    require: tuple[RequirementSpec, ...] = ()  # applies to every rule, before the queue's and the rule's
    escalate: tuple[StepSpec, ...] = ()  # runs for every rule, merged by time with the rule's own steps


class PolicyDocument(Model):
    name: str = "routing policy"
    description: str = ""
    timezone: str = DEFAULT_TIMEZONE
    home_language: Annotated[str, Field(pattern=LANGUAGE_PATTERN)] = HOME_LANGUAGE
    business_hours: CalendarSpec | None = None
    calendars: dict[Ident, CalendarSpec] = Field(default_factory=dict)
    defaults: DefaultsSpec = DefaultsSpec()
    queues: tuple[QueueSpec, ...] = Field(min_length=1)
    rules: tuple[RuleSpec, ...] = Field(min_length=1)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone '{value}'") from None
        return value

    def to_data(self) -> dict[str, object]:
        """Compact JSON-ready data (defaults left out) that parses back to an equal document."""
        return self.model_dump(mode="json", by_alias=True, exclude_defaults=True)

    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def queue_ids(self) -> dict[str, int]:
        return {q.id: i for i, q in enumerate(self.queues)}
