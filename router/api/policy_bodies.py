"""Request bodies of the policy admin API (simulate, rollback, validate with a roster).

Strict and closed like the gateways' payloads: no coercion, no unknown fields,
bounded sizes. The same models produce the OpenAPI schemas.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Annotated, Any, TypeVar

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from channels.customer_import import AgentId, Tag, WindowSpec, parse_window
from channels.native_base import CustomerId, LanguageCode
from channels.video import SignLanguage
from policies.report import format_loc
from policies.vocabulary import (
    HOME_LANGUAGE,
    AgentProfile,
    AgentSnapshot,
    Channel,
    ContactFacts,
    Intent,
    Need,
    Presence,
    Segment,
)

from .errors import ApiError

Level = Annotated[int, Field(ge=1, le=5)]
Count = Annotated[int, Field(ge=0, le=100)]
SkillName = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_\-]{0,63}$")]
MAX_ROSTER = 5000
MAX_HORIZON_S = 7 * 86_400.0
M = TypeVar("M", bound=BaseModel)


def _text_or_object(value: Any) -> Any:
    if not isinstance(value, (str, dict)):
        raise ValueError("a policy is YAML or JSON text, or a JSON object")
    return value


PolicyDraft = Annotated[
    Any,
    AfterValidator(_text_or_object),
    Field(description="A policy document: YAML or JSON text, or the document as a JSON object."),
]


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class ContactSpec(Body):
    """A contact as the policy engine sees it at arrival."""

    contact_id: str = Field(default="simulation", min_length=1, max_length=128)
    channel: Channel
    segment: Segment = Segment.MASS
    language: LanguageCode | None = Field(default=None, description="Language to serve in; default the home language.")
    languages: list[LanguageCode] = Field(default_factory=list, max_length=16,
                                          description="Every language the customer speaks ('language' included).")
    needs: list[Need] = Field(default_factory=list, max_length=4,
                              description="'foreign' is added when the customer speaks no home language and "
                                          "'deaf' when a sign language is given, as at a real arrival.")
    intent: Intent = Intent.GENERAL
    repeat_count: int = Field(default=1, ge=1, le=1000,
                              description="Contacts about this intent in the last 7 days, this one included.")
    customer_id: CustomerId | None = None
    dedicated_agent: AgentId | None = None
    last_agent: AgentId | None = None
    tags: list[Tag] = Field(default_factory=list, max_length=32)
    sign_language: SignLanguage | None = None
    callback_windows: list[WindowSpec] = Field(default_factory=list, max_length=8,
                                               description="'after 15:00', 'before 10:00' or '15:00-18:00'.")
    dialled_line: str | None = Field(default=None, max_length=32)

    def facts(self, home_language: str) -> ContactFacts:
        language = self.language or home_language
        languages = frozenset({language, *self.languages})
        needs = set(self.needs)
        if home_language not in languages:
            needs.add(Need.FOREIGN)
        if self.sign_language:
            needs.add(Need.DEAF)
        return ContactFacts(
            contact_id=self.contact_id, channel=self.channel, segment=self.segment, language=language,
            languages=languages, needs=frozenset(needs), intent=self.intent, repeat_count=self.repeat_count,
            customer_id=self.customer_id, dedicated_agent=self.dedicated_agent, last_agent=self.last_agent,
            tags=frozenset(self.tags), sign_language=self.sign_language,
            callback_windows=tuple(parse_window(w) for w in self.callback_windows), dialled_line=self.dialled_line,
        )


class AgentSpec(Body):
    """An agent for a what-if roster: what the agent can do and what the agent is doing."""

    id: AgentId
    name: str = Field(default="", max_length=128)
    skills: dict[SkillName, Level] = Field(default_factory=dict, max_length=64,
                                           description="Skill -> proficiency 1 (basic) to 5 (expert).")
    languages: list[LanguageCode] = Field(default_factory=lambda: [HOME_LANGUAGE], min_length=1, max_length=16)
    channels: dict[Channel, Count] = Field(min_length=1, description="Channel -> contacts at once, e.g. "
                                                                     "{'phone': 1, 'webchat': 3}.")
    capacity: int | None = Field(default=None, ge=1, le=100,
                                 description="Contacts at once over all channels; default the largest channel's.")
    presence: Presence = Presence.AVAILABLE
    load: dict[Channel, Count] = Field(default_factory=dict, description="Active contacts per channel.")
    pending_offers: Count = 0
    in_wrapup: bool = False
    idle_since: AwareDatetime | None = Field(default=None, description="Default: the simulated instant.")

    def profile(self) -> AgentProfile:
        capacity = self.capacity or max(self.channels.values(), default=1)
        return AgentProfile(agent_id=self.id, name=self.name, skills=dict(self.skills),
                            languages=frozenset(self.languages), channels=dict(self.channels),
                            total_capacity=capacity)

    def snapshot(self, at_s: float) -> AgentSnapshot:
        idle_since_s = self.idle_since.timestamp() if self.idle_since else at_s
        return AgentSnapshot(profile=self.profile(), presence=self.presence, load=dict(self.load),
                             pending_offers=self.pending_offers, idle_since_s=idle_since_s, in_wrapup=self.in_wrapup)


Roster = Annotated[list[AgentSpec], Field(max_length=MAX_ROSTER)]


def _plausible_instant(value: datetime | None) -> datetime | None:
    # Years 1 and 9999 with an offset overflow the time zone arithmetic (a 500 before).
    if value is None:
        return value
    try:
        year = value.astimezone(timezone.utc).year
    except OverflowError:
        year = value.year
    if not 2000 <= year <= 2099:
        raise ValueError("must be in the years 2000 to 2099")
    return value


class SimulateRequest(Body):
    contact: ContactSpec
    at: Annotated[AwareDatetime | None, AfterValidator(_plausible_instant)] = Field(
        default=None, description="The arrival instant, RFC 3339, in the years 2000 to 2099; default now.")
    roster: Roster | None = Field(default=None, description="Agents to rank; default the live roster, if any.")
    policy: PolicyDraft | None = Field(default=None, description="A draft to simulate instead of the active policy.")
    horizon_s: float = Field(default=1800.0, gt=0, le=MAX_HORIZON_S, description="How far to follow the timeline.")


class RollbackRequest(Body):
    to_version: int = Field(ge=1, le=2**31 - 1, description="The version whose document becomes active again.")
    reason: str = Field(min_length=1, max_length=2000, description="Why: kept in the audit trail.")


class ValidateRequest(Body):
    """Validate a policy against a given roster of agents (instead of the live one)."""

    policy: PolicyDraft
    roster: Roster = Field(description="Agents to check the requirements against.")


def parse_body(model: type[M], body: bytes) -> M:
    """A JSON body as `model`; 400 when it is not JSON, 422 naming the first bad field (and listing all)."""
    try:
        return model.model_validate_json(body)
    except ValidationError as exc:
        raise validation_error(exc) from None


def validation_error(exc: ValidationError) -> ApiError:
    """422 naming the first bad field as a document path (`skills.fraud`, `rules[3].queue`),
    with every problem listed in `details.errors` (400 for a body that is not JSON)."""
    errors = exc.errors(include_url=False)
    first = errors[0]
    if first["type"] == "json_invalid":
        return ApiError(400, "invalid_json", f"the body is not JSON: {first['msg']}")
    problems = [{"field": format_loc(e["loc"]) or None, "message": _message(e["type"], e["msg"])} for e in errors]
    field = problems[0]["field"]
    where = f"{field}: " if field else ""
    return ApiError(422, "invalid_field", f"{where}{problems[0]['message']}", field=field,
                    details={"errors": problems})


def _message(kind: str, message: str) -> str:
    if kind == "extra_forbidden":
        return "unknown field"
    if kind == "missing":
        return "field required"
    if kind == "model_type":
        return "the body must be a JSON object"
    return message.removeprefix("Value error, ")
