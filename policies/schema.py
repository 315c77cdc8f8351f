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

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer, field_validator, model_validator

from policies import hours
from policies.hours import TimeRange
from policies.vocabulary import HOME_LANGUAGE, Channel, Intent, Need, Segment, Strategy

CONTACT = "contact"  # "the contact's own language / channel"
UNLESS_HOME = "unless_speaks_home_language"
DEFAULT_TIMEZONE = "Asia/Shanghai"

Ident = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_\-]*$", max_length=64)]


def _one_or_many(value: object) -> object:
    return [value] if isinstance(value, str) else value


def _hours_value(value: object) -> tuple[TimeRange, ...]:
    return hours.parse_ranges(value)


Hours = Annotated[
    tuple[TimeRange, ...],
    BeforeValidator(_hours_value),
    PlainSerializer(hours.format_ranges, return_type=str),
]
Channels = Annotated[tuple[Channel, ...], BeforeValidator(_one_or_many), Field(min_length=1)]
Segments = Annotated[tuple[Segment, ...], BeforeValidator(_one_or_many), Field(min_length=1)]
Intents = Annotated[tuple[Intent, ...], BeforeValidator(_one_or_many), Field(min_length=1)]
Needs = Annotated[tuple[Need, ...], BeforeValidator(_one_or_many), Field(min_length=1)]
Words = Annotated[tuple[str, ...], BeforeValidator(_one_or_many), Field(min_length=1)]
Level = Annotated[int, Field(ge=1, le=5)]


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class CalendarSpec(Model):
    """Opening hours per day ('mon-fri': '08:00-20:00'), closed holidays, dates with special hours."""

    hours: dict[str, Hours] = Field(default_factory=dict)
    holidays: tuple[date, ...] = ()
    special_days: dict[date, Hours] = Field(default_factory=dict)

    @field_validator("hours")
    @classmethod
    def _days_are_known(cls, value: dict[str, tuple[TimeRange, ...]]) -> dict[str, tuple[TimeRange, ...]]:
        for key, ranges in value.items():
            hours.parse_days(key)
            _no_wrap(ranges)
        return value

    @field_validator("special_days")
    @classmethod
    def _special_no_wrap(cls, value: dict[date, tuple[TimeRange, ...]]) -> dict[date, tuple[TimeRange, ...]]:
        for ranges in value.values():
            _no_wrap(ranges)
        return value

    def compile(self) -> hours.Calendar:
        return hours.Calendar(hours.build_week(self.hours), frozenset(self.holidays), dict(self.special_days))


def _no_wrap(ranges: tuple[TimeRange, ...]) -> None:
    for r in ranges:
        if r.wraps():
            raise ValueError(f"opening hours '{r}' cross midnight; split them over two days")


class SlaSpec(Model):
    answer_within_s: float = Field(gt=0)
    target_pct: float = Field(gt=0, le=100)


class RequirementSpec(Model):
    """Exactly one of `skill` (with `min`), `language` or `channel`; 'contact' means the contact's own."""

    skill: Ident | None = None
    min_level: Level = Field(1, alias="min")
    language: str | None = Field(None, min_length=2, max_length=16)
    channel: Channel | Literal["contact"] | None = None
    hard: bool | Literal["unless_speaks_home_language"] = False

    @model_validator(mode="after")
    def _exactly_one_kind(self) -> RequirementSpec:
        kinds = [k for k in ("skill", "language", "channel") if getattr(self, k) is not None]
        if len(kinds) != 1:
            raise ValueError("a requirement names exactly one of skill, language or channel")
        if "min_level" in self.model_fields_set and self.skill is None:
            raise ValueError("'min' only applies to a skill")
        if self.hard == UNLESS_HOME and self.language is None:
            raise ValueError("'unless_speaks_home_language' only applies to a language")
        return self

    @property
    def kind(self) -> str:
        return "skill" if self.skill else "language" if self.language else "channel"

    @property
    def target(self) -> str:
        return str(self.skill or self.language or self.channel)


class RelaxSpec(Model):
    """Drop a requirement, or lower a skill's minimum to `to`."""

    skill: Ident | None = None
    language: str | None = None
    channel: Channel | Literal["contact"] | None = None
    to: Level | None = None

    @model_validator(mode="after")
    def _exactly_one_kind(self) -> RelaxSpec:
        if sum(v is not None for v in (self.skill, self.language, self.channel)) != 1:
            raise ValueError("relax names exactly one of skill, language or channel")
        if self.to is not None and self.skill is None:
            raise ValueError("'to' only applies to a skill")
        return self

    @property
    def kind(self) -> str:
        return "skill" if self.skill else "language" if self.language else "channel"

    @property
    def target(self) -> str:
        return str(self.skill or self.language or self.channel)


class EscalateSpec(Model):
    to: Literal["supervisor", "expert_team"]
    queue: Ident | None = None


def _escalate_shorthand(value: object) -> object:
    return {"to": value} if isinstance(value, str) else value


class CallbackSpec(Model):
    within_business_hours: bool = True


def _callback_shorthand(value: object) -> object:
    return {} if value is True else value


ACTIONS = ("relax", "raise_priority", "overflow", "offer_callback", "page_supervisor", "escalate")


class StepSpec(Model):
    """One escalation step: after `after_s` seconds of waiting, exactly one action."""

    after_s: float = Field(ge=0)
    relax: RelaxSpec | None = None
    raise_priority: float | None = None
    overflow: Ident | None = None
    offer_callback: Annotated[CallbackSpec | None, BeforeValidator(_callback_shorthand)] = None
    page_supervisor: Literal[True] | None = None
    escalate: Annotated[EscalateSpec | None, BeforeValidator(_escalate_shorthand)] = None
    note: str = ""

    @model_validator(mode="after")
    def _exactly_one_action(self) -> StepSpec:
        chosen = [a for a in ACTIONS if getattr(self, a) is not None]
        if len(chosen) != 1:
            raise ValueError(f"a step takes exactly one action of {', '.join(ACTIONS)}")
        return self

    @property
    def action(self) -> str:
        return next(a for a in ACTIONS if getattr(self, a) is not None)


class DeadlineSpec(Model):
    name: Ident
    within_h: float = Field(gt=0)


class MatchSpec(Model):
    """Every condition given must hold; a list means 'any of these'. Empty = every contact."""

    channel: Channels | None = None
    segment: Segments | None = None
    intent: Intents | None = None
    language: Words | None = None
    speaks_home_language: bool | None = None
    needs: Needs | None = None
    tags: Words | None = None
    repeat_count_min: int | None = Field(None, ge=0)
    repeat_count_max: int | None = Field(None, ge=0)
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
            hours.parse_days(key)
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
        return None if self.days is None else frozenset(d for key in self.days for d in hours.parse_days(key))


class RuleSpec(Model):
    id: Ident
    description: str = ""
    match: MatchSpec = Field(default_factory=MatchSpec)
    unless: MatchSpec | None = None
    queue: Ident
    require: tuple[RequirementSpec, ...] = ()
    priority: float = 0
    priority_growth_per_min: float | None = Field(None, ge=0)
    offer_timeout_s: float | None = Field(None, gt=0)
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
    max_wait_s: float | None = Field(None, gt=0)
    overflow_to: Ident | None = None
    wrapup_s: float = Field(0, ge=0)
    require: tuple[RequirementSpec, ...] = ()


class DefaultsSpec(Model):
    offer_timeout_s: float = Field(20, gt=0)
    strategy: Strategy = Strategy.LONGEST_IDLE
    priority_growth_per_min: float = Field(1, ge=0)


class PolicyDocument(Model):
    name: str = "routing policy"
    description: str = ""
    timezone: str = DEFAULT_TIMEZONE
    home_language: str = HOME_LANGUAGE
    business_hours: CalendarSpec | None = None
    calendars: dict[Ident, CalendarSpec] = Field(default_factory=dict)
    defaults: DefaultsSpec = Field(default_factory=DefaultsSpec)
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

    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def queue_ids(self) -> dict[str, int]:
        return {q.id: i for i, q in enumerate(self.queues)}
