"""Desks and server instances: one desk per agent across instances (the newest wins, by the
log's order), and desks of an instance that is gone are disconnected by the leader."""

from __future__ import annotations

import asyncio
from typing import Any

from eventstore import ANY, MemoryEventStore, NewEvent
from router import events as ev
from router.desk import DeskHub
from router.service import RouterService, RouterSettings
from tests.unit.router.builders import NOW, POLICY, Log

STREAM = "agent-default:a1"


def connected(log: Log, instance: str, at_s: float = NOW) -> None:
    log.add(STREAM, ev.AGENT_CONNECTED, {"agent_id": "a1", "at_s": at_s, "instance": instance})


def disconnected(log: Log, instance: str | None, at_s: float = NOW) -> None:
    data: dict[str, Any] = {"agent_id": "a1", "at_s": at_s}
    if instance is not None:
        data["instance"] = instance
    log.add(STREAM, ev.AGENT_DISCONNECTED, data)


def test_the_older_desk_closing_on_another_instance_does_not_disconnect_the_agent() -> None:
    log = Log()
    log.agent("a1")
    connected(log, "A")
    connected(log, "B")  # the agent opened its desk on B: that is the desk now
    disconnected(log, "A")
    agent = log.state.agents["a1"]
    assert agent.connected and agent.desk_instance == "B" and agent.disconnected_at_s is None
    disconnected(log, "B", NOW + 5)
    assert not agent.connected and agent.disconnected_at_s == NOW + 5 and agent.desk_instance is None


def test_a_disconnection_without_an_instance_is_taken_as_it_always_was() -> None:
    log = Log()
    log.agent("a1")
    connected(log, "A")
    disconnected(log, None)  # events written before instances were recorded
    assert not log.state.agents["a1"].connected


class Socket:
    async def send_str(self, data: str) -> None:
        pass

    async def close(self, *, code: int = 1000, message: bytes = b"") -> bool:
        return True


async def test_a_hub_gives_up_a_desk_opened_elsewhere_and_reclaims_one_recorded_as_gone() -> None:
    log = Log()
    log.agent("a1")
    connected(log, "A")
    unrecorded: list[str] = []
    hub = DeskHub(log.state, lambda: NOW, "A", unrecorded.append)
    desk = hub.connect("a1", Socket())
    assert desk.writer is not None
    desk.writer.cancel()  # read what the hub queues instead of writing it
    while not desk.outbox.empty():
        desk.outbox.get_nowait()

    disconnected(log, "A")  # e.g. the leader took this instance for gone during a network blip
    hub.sync({"a1"})
    assert unrecorded == ["a1"] and hub.desks["a1"] is desk  # the desk is here: record it again

    connected(log, "A")
    connected(log, "B")  # the agent opened a desk on another instance
    hub.sync({"a1"})
    assert "a1" not in hub.desks  # so its closing here records nothing
    told = [desk.outbox.get_nowait() for _ in range(desk.outbox.qsize())]
    assert told[0]["type"] == "error" and told[0]["code"] == "replaced" and told[-1] == {"type": "_close"}
    assert unrecorded == ["a1"]


async def test_the_leader_disconnects_the_agents_of_an_instance_that_is_gone_and_only_those() -> None:
    store = MemoryEventStore()

    def build(log: Log) -> None:
        for agent_id, instance in (("a1", "gone"), ("a2", "alive"), ("a3", "gone"), ("a4", "leader")):
            log.agent(agent_id)
            log.add(f"agent-default:{agent_id}", ev.AGENT_CONNECTED,
                    {"agent_id": agent_id, "at_s": NOW, "instance": instance})

    for stream_id, type_, data in Log.events_of(build):
        await store.append(stream_id, [NewEvent(type_, data)], ANY)
    asked: list[str] = []

    async def alive(instance: str) -> bool:
        asked.append(instance)
        return instance != "gone"

    router = RouterService(store, lambda: POLICY, RouterSettings(instance="leader", lead=False),
                           instance_alive=alive)
    await router.start()
    try:
        assert await router.disconnect_gone_instances() == 2
        assert sorted(asked) == ["alive", "gone"]  # once per instance; its own is not asked about
        await asyncio.sleep(0)
        agents = router.state.agents
        assert [a for a in ("a1", "a2", "a3", "a4") if not agents[a].connected] == ["a1", "a3"]
        assert agents["a1"].disconnected_at_s is not None  # the grace period runs from now
        events = await store.read_stream("agent-default:a1")
        assert events[-1].type == ev.AGENT_DISCONNECTED and events[-1].data["instance"] == "gone"
        assert await router.disconnect_gone_instances() == 0  # nothing left to do: no repeats
    finally:
        await router.stop()


def test_an_agent_update_with_nulls_stored_before_they_were_refused_still_replays() -> None:
    """Such events exist in logs written before the API refused them: a replay keeps the old
    values where the field cannot be empty, and clears only team and supervisor."""
    from policies.vocabulary import Channel
    from router.agentstate import profile_from_data

    registered = profile_from_data({"agent_id": "a1", "name": "A", "skills": {"loan": 3}, "languages": ["zh"],
                                    "channels": {"phone": 1}, "total_capacity": 1, "team": "t1"})
    updated = profile_from_data({"agent_id": "a1", "name": None, "skills": None, "languages": None, "channels": None,
                                 "total_capacity": None, "team": None}, registered)
    assert (updated.name, updated.skills, updated.languages, updated.channels, updated.total_capacity) == \
        ("A", {"loan": 3}, frozenset({"zh"}), {Channel.PHONE: 1}, 1)
    assert updated.team is None
