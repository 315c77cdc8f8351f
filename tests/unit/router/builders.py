"""Build router states from events, as the log would deliver them (no I/O)."""

from __future__ import annotations

import uuid
from datetime import datetime, timezone
from collections.abc import Callable
from typing import Any

from channels.events import facts_to_data
from eventstore import RecordedEvent
from policies.engine import compile_policy
from policies.loader import load_default_policy
from policies.vocabulary import Channel, ContactFacts
from router import events as ev
from router.decide import Decision
from router.state import RouterState

NOW = 1_790_042_400.0  # Tue 2026-09-22 10:00 in Shanghai, business hours: tests never read the clock
POLICY = compile_policy(load_default_policy(), 1)


class Log:
    """Appends events to streams with versions, applying each to a RouterState."""

    def __init__(self) -> None:
        self.state = RouterState()
        self.versions: dict[str, int] = {}
        self.position = 0

    def add(self, stream_id: str, type_: str, data: dict[str, Any], *, recorded_at_s: float | None = None) -> None:
        self.versions[stream_id] = self.versions.get(stream_id, 0) + 1
        self.position += 1
        recorded_at = (datetime.fromtimestamp(recorded_at_s, timezone.utc) if recorded_at_s is not None
                       else datetime.now(timezone.utc))
        event = RecordedEvent(uuid.uuid4(), stream_id, self.versions[stream_id], self.position, self.position,
                              type_, data, {}, recorded_at)
        self.state.apply(event)

    @classmethod
    def events_of(cls, build: Callable[[Log], object]) -> list[tuple[str, str, dict[str, Any]]]:
        """The events a builder adds, as (stream id, type, data): to write them to a store."""
        log, added = cls(), []
        original = log.add

        def add(stream_id: str, type_: str, data: dict[str, Any]) -> None:
            added.append((stream_id, type_, data))
            original(stream_id, type_, data)

        log.add = add  # type: ignore[method-assign]
        build(log)
        return added

    def commit(self, decision: Decision) -> None:
        """Store a decision as the service would: every part at its expected version."""
        for part in decision.parts:
            assert self.versions.get(part.stream_id, 0) == part.expected_version, f"stale {part.stream_id}"
        for part in decision.parts:
            for type_, data in part.events:
                self.add(part.stream_id, type_, data)

    def agent(self, agent_id: str, *, skills: dict[str, int] | None = None, languages: tuple[str, ...] = ("zh",),
              channels: dict[str, int] | None = None, available: bool = True, at_s: float = NOW - 100) -> None:
        stream = f"agent-default:{agent_id}"
        self.add(stream, ev.AGENT_REGISTERED, {
            "agent_id": agent_id, "name": agent_id, "skills": skills or {"general": 3},
            "languages": list(languages), "channels": channels or {"phone": 1, "webchat": 3},
            "total_capacity": 3})
        self.add(stream, ev.AGENT_CONNECTED, {"agent_id": agent_id, "at_s": at_s})  # at the desk
        if available:
            self.add(stream, ev.AGENT_STATE_CHANGED, {"agent_id": agent_id, "state": "available", "at_s": at_s})

    def contact(self, contact_id: str, **facts: Any) -> None:
        data = facts_to_data(ContactFacts(contact_id=contact_id, channel=facts.pop("channel", Channel.PHONE), **facts))
        self.add(f"contact-default:{contact_id}", ev.CONTACT_ARRIVED,
                 {**data, "occurred_at": "2026-09-21T10:00:00+08:00"})
