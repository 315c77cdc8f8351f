"""Build router states from events, as the log would deliver them (no I/O)."""

from __future__ import annotations

import uuid
from datetime import datetime, timezone
from collections.abc import Callable
from typing import Any

from channels.events import facts_to_data
from eventstore import RecordedEvent
from policies.engine import CompiledPolicy, compile_policy
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


class TimedLog(Log):
    """A Log on a simulated clock: every event is recorded at `now_s` (the router's time when
    it decided it) and kept, so that the checker can judge the log as it was written."""

    def __init__(self, now_s: float = NOW) -> None:
        super().__init__()
        self.now_s = now_s
        self.recorded: list[RecordedEvent] = []

    def add(self, stream_id: str, type_: str, data: dict[str, Any], *, recorded_at_s: float | None = None) -> None:
        at_s = self.now_s if recorded_at_s is None else recorded_at_s
        super().add(stream_id, type_, data, recorded_at_s=at_s)
        self.recorded.append(RecordedEvent(uuid.uuid4(), stream_id, self.versions[stream_id], self.position,
                                           self.position, type_, data, {}, datetime.fromtimestamp(at_s, timezone.utc)))

    def publish(self, policy: CompiledPolicy = POLICY, domain: str = "default") -> None:
        """The policy version as the policy service stores it (the checker reads its hours and queues)."""
        self.add(f"policy-{domain}:versions", "PolicyPublished",
                 {"version": policy.version, "name": policy.document.name, "document": policy.document.to_data()})

    def check(self, now_s: float | None = None) -> dict[str, Any]:
        """`contact-router check` over everything recorded, at `now_s` (default: the log's clock)."""
        from router.check import Checker

        checker = Checker()
        for event in self.recorded:
            checker.feed(event)
        return checker.report(self.now_s if now_s is None else now_s)


def tampered(decision: Decision, type_: str, **changes: Any) -> Decision:
    """The router's decision with the data of its `type_` events changed: a log it must never write."""
    from dataclasses import replace

    from router.decide import Part

    return replace(decision, parts=tuple(
        Part(p.stream_id, p.expected_version, tuple((t, {**d, **changes} if t == type_ else d) for t, d in p.events))
        for p in decision.parts))


def fire_due(log: Log, now_s: float, policy: CompiledPolicy = POLICY, kinds: frozenset[str] | None = None,
             settings: Any = None) -> list[str]:
    """Fire every contact timer due by `now_s` (or only those of `kinds`) as the service does, with the
    active `policy`, storing what they decide; the event types decided. (A TimedLog's clock moves to `now_s`.)"""
    from router.timers import TimerSettings, fire, timers_for_contact

    if isinstance(log, TimedLog):
        log.now_s = now_s
    decided: list[str] = []
    for contact in list(log.state.contacts.values()):
        for timer in timers_for_contact(contact):
            if timer.due_s <= now_s and (kinds is None or timer.kind in kinds):
                for decision in fire(log.state, timer, now_s, settings or TimerSettings(), policy.queues,
                                     policy.home_language, policy=policy):
                    log.commit(decision)
                    decided += [t for part in decision.parts for t, _ in part.events]
    return decided


def route_round(log: Log, now_s: float, policy: CompiledPolicy = POLICY, settings: Any = None) -> dict[str, str]:
    """A routing round as the leader runs it: due timers, then offers; contact -> agent offered."""
    from router.decide import next_offers, offered

    fire_due(log, now_s, policy, settings=settings)
    made: dict[str, str] = {}
    for decision in next_offers(log.state, now_s):
        log.commit(decision)
        made.update(offered(decision))
    return made
