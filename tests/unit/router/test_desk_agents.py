"""Agents' admin writes and the desk hub, without a database: an admin write never makes this
instance skip an event of the agent's stream written elsewhere, and a desk's writer survives a
message it cannot write."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from eventstore import ANY, LogCursor, MemoryEventStore, NewEvent
from router import events as ev
from router.agents import AgentChanges, AgentDirectory, NewAgent, token_digest
from router.api.agents import _handle
from router.commands import CommandError, accept, reject
from router.decide import next_offers, place
from router.desk import DeskHub
from router.service import RouterService, RouterSettings
from router.timers import timers_for_contact
from tests.unit.router.builders import NOW, POLICY, Log

STREAM = "agent-default:a1"


def router() -> RouterService:
    service = RouterService(MemoryEventStore(), lambda: POLICY, RouterSettings(instance="here"))

    async def sync(timeout_s: float = 2.0) -> bool:  # no follower runs here: catch up as it would
        await follow(service)
        return True

    service.sync = sync  # type: ignore[method-assign]
    return service


async def registered(service: RouterService) -> AgentDirectory:
    directory = AgentDirectory(service, "default")
    await directory.register(NewAgent.model_validate_json(
        '{"id": "a1", "name": "A One", "skills": {"general": 3}, "languages": ["zh"], "channels": {"phone": 1}}'),
        "admin")
    return directory


async def elsewhere(service: RouterService, type_: str, data: dict[str, Any]) -> None:
    """Another instance writes to the agent's stream; this one has not read it yet."""
    await service.store.append(STREAM, [NewEvent(type_, data, {})], ANY)


async def follow(service: RouterService) -> None:
    """What the log follower does: deliver the log in order (this instance's own events again)."""
    await service._apply_batch(await service.store.read_log(service._cursor))


async def test_a_token_issued_here_does_not_hide_the_desk_connected_elsewhere() -> None:
    """The token's event was applied at once, ahead of the agent's AgentConnected written by
    another instance a moment before: the follower then skipped that event as already applied,
    and this instance took the agent for disconnected (offered nothing) until its next event."""
    service = router()
    directory = await registered(service)
    await elsewhere(service, ev.AGENT_CONNECTED, {"agent_id": "a1", "at_s": NOW, "instance": "there"})
    token = await directory.issue_token("a1", "admin")
    await follow(service)
    agent = service.state.agents["a1"]
    assert agent.connected and agent.desk_instance == "there"
    assert directory.agent_for_token(token) == "a1"


async def test_a_profile_change_here_does_not_hide_a_state_change_made_elsewhere() -> None:
    service = router()
    directory = await registered(service)
    await elsewhere(service, ev.AGENT_STATE_CHANGED, {"agent_id": "a1", "state": "available", "at_s": NOW})
    view = await directory.update("a1", AgentChanges(skills={"general": 4}), "admin")
    await follow(service)
    agent = service.state.agents["a1"]
    assert agent.presence.value == "available"
    assert agent.profile is not None and agent.profile.skills == {"general": 4}
    assert view["skills"] == {"general": 4}


class Socket:
    def __init__(self) -> None:
        self.sent: list[str] = []

    async def send_str(self, data: str) -> None:
        self.sent.append(data)

    async def close(self, *, code: int = 1000, message: bytes = b"") -> bool:
        return True


async def test_a_message_that_cannot_be_written_does_not_silence_the_desk() -> None:
    service = router()
    await registered(service)
    socket = Socket()
    hub = DeskHub(service.state, lambda: NOW, "here")
    desk = hub.connect("a1", socket)
    deep: list[Any] = []
    for _ in range(300):
        deep = [deep]
    hub.send(desk, {"type": "error", "code": "invalid_message", "message": "x", "ref": deep})
    hub.send(desk, {"type": "ping", "at": NOW})
    async with asyncio.timeout(2):
        while len(socket.sent) < 2:
            await asyncio.sleep(0.01)
    assert '"hello"' in socket.sent[0] and '"ping"' in socket.sent[1]
    hub.disconnect(desk)


def offered_then_forgotten() -> tuple[Log, str]:
    """The customer hung up while an offer was out, and the state forgot the finished contact
    before the revoke landed (the minute's clean-up keeps held contacts, not offered ones)."""
    log = Log()
    log.agent("a1")
    log.contact("c1")
    log.commit(place(log.state, log.state.contacts["c1"], POLICY, NOW))
    for decision in next_offers(log.state, NOW):
        log.commit(decision)
    [offer_id] = log.state.agents["a1"].offers
    log.add("contact-default:c1", ev.CONTACT_ENDED, {"contact_id": "c1", "cause": "hung up"})
    held = {cid for agent in log.state.agents.values() for cid in agent.contacts}
    log.state.forget_done(lambda c: c.contact_id in held or bool(timers_for_contact(c)))
    assert "c1" not in log.state.contacts and offer_id in log.state.agents["a1"].offers
    return log, offer_id


def test_an_offer_whose_contact_was_forgotten_is_refused_not_a_crash() -> None:
    log, offer_id = offered_then_forgotten()
    for attempt in (lambda: accept(log.state, "a1", offer_id, NOW + 1),
                    lambda: reject(log.state, "a1", offer_id, "no", NOW + 1)):
        with pytest.raises(CommandError) as info:
            attempt()
        assert info.value.code == "contact_ended"


async def test_the_desk_is_told_an_offer_whose_contact_was_forgotten_is_gone() -> None:
    log, offer_id = offered_then_forgotten()
    socket = Socket()
    hub = DeskHub(log.state, lambda: NOW + 1, "here")
    desk = hub.connect("a1", socket)  # hello: the offer is there, its contact is not
    async with asyncio.timeout(2):
        while not socket.sent:
            await asyncio.sleep(0.01)
    hello = json.loads(socket.sent[0])
    assert hello["type"] == "hello" and hello["pending_offers"] == []  # nothing to take
    hub.sync({"a1"})
    assert desk.outbox.empty()  # nor offered afterwards
    hub.disconnect(desk)


async def test_a_desk_whose_token_was_revoked_acts_no_more_while_it_closes() -> None:
    """A frame of the old desk still on its way in (or waiting for the router) when the new
    token was issued was carried out as the agent: a leaked token kept acting after the revoke."""
    service = router()
    directory = await registered(service)
    token = await directory.issue_token("a1", "admin")
    hub = DeskHub(service.state, lambda: NOW, "here")
    service.on_change = lambda contacts, agents: hub.sync(agents)
    socket = Socket()
    desk = hub.connect("a1", socket, token_digest(token))
    await directory.issue_token("a1", "admin")  # the admin replaces the leaked token
    await _handle(service, hub, desk, '{"type": "state", "state": "available", "ref": "r1"}')
    assert service.state.agents["a1"].presence.value == "offline"  # nothing changed
    async with asyncio.timeout(2):
        while desk.writer is not None and not desk.writer.done():
            await asyncio.sleep(0.01)
    told = [json.loads(m) for m in socket.sent]
    assert [m.get("code") for m in told if m["type"] == "error"] == ["token_revoked"]  # then closed
    hub.disconnect(desk)


async def test_a_replaced_desk_acts_no_more_while_it_closes() -> None:
    service = router()
    await registered(service)
    hub = DeskHub(service.state, lambda: NOW, "here")
    old = hub.connect("a1", Socket())
    new = hub.connect("a1", Socket())
    await _handle(service, hub, old, '{"type": "state", "state": "available"}')
    assert service.state.agents["a1"].presence.value == "offline"
    await _handle(service, hub, new, '{"type": "state", "state": "available"}')
    assert service.state.agents["a1"].presence.value == "available"
    hub.disconnect(old)
    hub.disconnect(new)
