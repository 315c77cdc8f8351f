"""Agents as events: registration, profile changes and desk tokens (the service layer)."""

from __future__ import annotations

import hashlib
import logging
import secrets
import time
from collections.abc import Iterable
from datetime import datetime, timezone
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from eventstore import ANY, NO_STREAM, ConcurrencyError, NewEvent, RecordedEvent, stream_id_for
from policies.vocabulary import AgentProfile, AgentSnapshot, Channel

from . import events as ev
from .agentstate import profile_from_data
from .service import RouterService
from .state import AgentState

AgentId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
Name = Annotated[str, StringConstraints(min_length=1, max_length=200, strip_whitespace=True)]
SkillName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,39}$")]
Language = Annotated[str, StringConstraints(pattern=r"^[a-z]{2,3}$")]
Level = Annotated[int, Field(ge=1, le=5)]
Capacity = Annotated[int, Field(ge=0, le=20)]


# What a PATCH may change but not clear: null for these is refused (leave the field out to
# keep it). team and supervisor may be null: the agent leaves its team or has no supervisor.
NOT_NULL = ("name", "skills", "languages", "channels", "total_capacity")

log = logging.getLogger(__name__)


def _schema_without_null(schema: dict[str, Any]) -> None:
    """The OpenAPI schema says what the validator does: these fields take no null."""
    for name in NOT_NULL:
        prop = schema.get("properties", {}).get(name, {})
        options = [o for o in prop.get("anyOf", ()) if o != {"type": "null"}]
        if options and len(options) < len(prop["anyOf"]):
            del prop["anyOf"]
            prop.pop("default", None)
            if len(options) == 1:
                prop.update(options[0])
            else:
                prop["anyOf"] = options


def token_digest(token: str) -> str:
    """What the log keeps of a desk token (never the token itself)."""
    return hashlib.sha256(token.encode()).hexdigest()


class AgentChanges(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, json_schema_extra=_schema_without_null)

    name: Name | None = None
    team: Name | None = None
    supervisor: AgentId | None = None
    skills: dict[SkillName, Level] | None = Field(default=None, max_length=64)
    languages: list[Language] | None = Field(default=None, min_length=1, max_length=16)
    channels: dict[Channel, Capacity] | None = None
    total_capacity: Annotated[int, Field(ge=1, le=20)] | None = None

    @field_validator(*NOT_NULL, mode="before")
    @classmethod
    def _not_null(cls, value: object) -> object:
        if value is None:  # runs only for a null sent explicitly (a left-out field keeps its default)
            raise ValueError("may not be null; leave the field out to keep its value")
        return value

    @field_validator("channels")
    @classmethod
    def _serves_something(cls, value: dict[Channel, int] | None) -> dict[Channel, int] | None:
        if value is not None and not any(value.values()):
            raise ValueError("an agent must serve at least one channel (e.g. {\"phone\": 1})")
        return value


class NewAgent(AgentChanges):
    id: AgentId
    name: Name
    skills: dict[SkillName, Level] = Field(max_length=64)
    languages: list[Language] = Field(min_length=1, max_length=16)
    channels: dict[Channel, Capacity]


class AgentExists(Exception):
    pass


class UnknownAgent(Exception):
    pass


def _data(model: AgentChanges, agent_id: str) -> dict[str, Any]:
    data: dict[str, Any] = {"agent_id": agent_id}
    for key, value in model.model_dump(exclude_unset=True, exclude={"id"}).items():
        if key == "channels":
            value = {Channel(k).value: v for k, v in value.items()}
        data[key] = value
    if isinstance(model, NewAgent) and model.total_capacity is None:
        data["total_capacity"] = derived_total(model.channels.values())
    return data


def derived_total(capacities: Iterable[int]) -> int:
    """The total an agent gets when none is given: its largest channel's capacity."""
    return max(1, max(capacities, default=1))


class AgentDirectory:
    def __init__(self, router: RouterService, domain: str) -> None:
        self._router = router
        self._domain = domain

    def stream(self, agent_id: str) -> str:
        return stream_id_for("agent", agent_id, self._domain)

    async def register(self, agent: NewAgent, actor: str) -> dict[str, Any]:
        try:
            await self._append(agent.id, ev.AGENT_REGISTERED, _data(agent, agent.id), actor, NO_STREAM)
        except ConcurrencyError:
            raise AgentExists(agent.id) from None
        return self.view(agent.id)

    async def update(self, agent_id: str, changes: AgentChanges, actor: str) -> dict[str, Any]:
        profile = self.get(agent_id).profile
        assert profile is not None
        data = _data(changes, agent_id)
        if "channels" in data and "total_capacity" not in data \
                and profile.total_capacity == derived_total(profile.channels.values()):
            # A total never set apart from the channels follows them (webchat 3 added to phone
            # 1 allows three chats); one the admin set stays as it was.
            data["total_capacity"] = derived_total(data["channels"].values())
        profile_from_data(data, profile)  # what replaying the event will do: it must not fail
        await self._append(agent_id, ev.AGENT_UPDATED, data, actor, ANY)
        return self.view(agent_id)

    async def issue_token(self, agent_id: str, actor: str) -> str:
        self.get(agent_id)
        token = secrets.token_urlsafe(32)
        digest = token_digest(token)
        await self._append(agent_id, ev.AGENT_TOKEN_ISSUED, {"agent_id": agent_id, "token_sha256": digest}, actor, ANY)
        return token

    def agent_for_token(self, token: str) -> str | None:
        return self._router.state.tokens.get(token_digest(token))

    async def _append(self, agent_id: str, type_: str, data: dict[str, Any], actor: str, expected: Any) -> None:
        stream = self.stream(agent_id)
        data = {**data, "at_s": time.time()}
        metadata = ev.metadata(actor=actor, correlation_id=agent_id, channel="admin")
        event = NewEvent(type_, data, metadata)
        result = await self._router.store.append(stream, [event], expected)
        # Seen at once, so the caller's next request (e.g. the desk connecting with the new
        # token) finds it on this instance. Why not always apply it here: a stream's events
        # are applied once each, in version order, so applying ours ahead of one another
        # instance wrote just before (the agent's desk connecting there) would make the log
        # follower skip that one for good. When the state is not right behind ours, the
        # follower brings both, in order.
        agent = self._router.state.agents.get(agent_id)
        if result.last_version == (agent.version if agent is not None else 0) + 1:
            self._router.state.apply(RecordedEvent(event.event_id, stream, result.last_version, result.last_position,
                                                   0, type_, data, metadata, datetime.now(timezone.utc)))
            self._router.notify_changed()
        elif not await self._router.sync():
            log.warning("%s of %s is stored but not yet seen by this instance", type_, agent_id)

    def get(self, agent_id: str) -> AgentState:
        agent = self._router.state.agents.get(agent_id)
        if agent is None or agent.profile is None:
            raise UnknownAgent(agent_id)
        return agent

    def view(self, agent_id: str) -> dict[str, Any]:
        agent = self.get(agent_id)
        profile = agent.profile
        assert profile is not None
        return {
            "id": agent_id, "name": profile.name, "team": profile.team, "supervisor": profile.supervisor,
            "skills": dict(profile.skills), "languages": sorted(profile.languages),
            "channels": {ch.value: n for ch, n in profile.channels.items()}, "total_capacity": profile.total_capacity,
            "state": agent.presence.value, "connected": agent.connected, "in_wrapup": agent.wrapup_until_s is not None,
            "active_contacts": sorted(agent.contacts), "pending_offers": sorted(agent.offers),
        }

    def list(self) -> list[dict[str, Any]]:
        return [self.view(a) for a, s in sorted(self._router.state.agents.items()) if s.profile is not None]

    # RosterProvider for the policy service's validate and simulate
    def profiles(self) -> list[AgentProfile]:
        return [a.profile for a in self._router.state.agents.values() if a.profile is not None]

    def snapshots(self) -> list[AgentSnapshot]:
        return [a.snapshot for a in self._router.state.agents.values() if a.snapshot is not None]
