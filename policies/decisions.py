"""What a matching rule decides: requirements, escalation steps and deadlines.

Part of the policy document model (see `policies.schema`), kept apart so each
module stays small. Shared base types live here too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, GetJsonSchemaHandler, model_validator
from pydantic_core import CoreSchema

from policies.vocabulary import Channel

CONTACT = "contact"  # "the contact's own language / channel"
UNLESS_HOME = "unless_speaks_home_language"

Ident = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_\-]*$", max_length=64)]
# Languages as gateways send them (ISO 639, lower case): `ZH` would never match a contact's `zh`.
LANGUAGE_PATTERN = r"^[a-z]{2,3}$"
LanguageName = Annotated[str, Field(pattern=r"^([a-z]{2,3}|contact)$",
                                    description="an ISO 639 code in lower case (zh, en), or 'contact'")]
Level = Annotated[int, Field(ge=1, le=5)]


@dataclass(frozen=True, slots=True)
class AlsoAccepts:
    """A field's JSON Schema also admits the shorthand its BeforeValidator expands: `shorthand`
    (a schema), or by default one item where the field is a list. Without it the OpenAPI
    document describes only the long form, and refuses documents the API accepts."""

    shorthand: dict[str, Any] | None = None

    def __get_pydantic_json_schema__(self, core_schema: CoreSchema, handler: GetJsonSchemaHandler) -> dict[str, Any]:
        full = handler(core_schema)
        short = self.shorthand if self.shorthand is not None else full["items"]
        return {"anyOf": [*full["anyOf"], short]} if "anyOf" in full else {"anyOf": [short, full]}


class Model(BaseModel):
    # No NaN or infinity: a policy's numbers end up in events (JSON has neither) and in timers.
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, allow_inf_nan=False)


# Upper bounds of a policy's numbers: well beyond any real contact centre, and small enough that
# timers stay datable and priorities stay comparable (found by an audit: `within_h: 1e305` was
# accepted, and every arriving contact then waited unplaced).
MAX_WAIT_S = 7 * 86_400.0  # escalation steps, max waits, SLA targets, wrap-ups: a week
MAX_OFFER_TIMEOUT_S = 3_600.0
MAX_DEADLINE_H = 366 * 24.0  # a follow-up within a year
MAX_PRIORITY = 1_000_000.0
MAX_PRIORITY_GROWTH_PER_MIN = 10_000.0
MAX_REPEAT_COUNT = 1_000  # contacts about one thing in 7 days; `simulate` takes counts up to this too
Priority = Annotated[float, Field(ge=-MAX_PRIORITY, le=MAX_PRIORITY)]


AgentRef = Literal["dedicated", "last"]  # the customer's dedicated agent / the agent who last served them
KINDS = ("skill", "language", "channel", "agent")


class _NamesOneKind:
    """For specs that name exactly one of skill, language, channel or agent."""

    @property
    def kind(self) -> str:
        return next(k for k in KINDS if getattr(self, k) is not None)

    @property
    def target(self) -> str:
        return str(getattr(self, self.kind))


class RequirementSpec(_NamesOneKind, Model):
    """Exactly one of `skill` (with `min`), `language`, `channel` or `agent`.

    'contact' means the contact's own language or channel; `agent: dedicated`
    means the customer's dedicated agent (dropped when the customer has none).
    """

    skill: Ident | None = None
    min_level: Level = Field(default=1, alias="min")
    language: LanguageName | None = None
    channel: Channel | Literal["contact"] | None = None
    agent: AgentRef | None = None
    hard: bool | Literal["unless_speaks_home_language"] = False

    @model_validator(mode="after")
    def _exactly_one_kind(self) -> RequirementSpec:
        if sum(getattr(self, k) is not None for k in KINDS) != 1:
            raise ValueError("a requirement names exactly one of skill, language, channel or agent")
        if self.min_level != 1 and self.skill is None:
            raise ValueError("'min' only applies to a skill")
        if self.hard == UNLESS_HOME and self.language is None:
            raise ValueError("'unless_speaks_home_language' only applies to a language")
        return self



class RelaxSpec(_NamesOneKind, Model):
    """Drop a requirement, or lower a skill's minimum to `to`."""

    skill: Ident | None = None
    language: str | None = None
    channel: Channel | Literal["contact"] | None = None
    agent: AgentRef | None = None
    to: Level | None = None

    @model_validator(mode="after")
    def _exactly_one_kind(self) -> RelaxSpec:
        if sum(getattr(self, k) is not None for k in KINDS) != 1:
            raise ValueError("relax names exactly one of skill, language, channel or agent")
        if self.to is not None and self.skill is None:
            raise ValueError("'to' only applies to a skill")
        return self



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

    after_s: float = Field(ge=0, le=MAX_WAIT_S)
    relax: RelaxSpec | None = None
    raise_priority: Priority | None = None
    overflow: Ident | None = None
    offer_callback: Annotated[CallbackSpec | None, BeforeValidator(_callback_shorthand),
                              AlsoAccepts({"const": True})] = None
    page_supervisor: Literal[True] | None = None
    escalate: Annotated[EscalateSpec | None, BeforeValidator(_escalate_shorthand),
                        AlsoAccepts({"type": "string", "description": "a team: the same as {to: <team>}"})] = None
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
    within_h: float = Field(gt=0, le=MAX_DEADLINE_H)
