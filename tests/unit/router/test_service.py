"""The router service without a database: decision ids are derived from what is decided (a retry
is a repeat, a change is not), and a round that cannot be stored is retried at a walk."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from eventstore import ANY, MemoryEventStore, NewEvent
from eventstore.errors import StoreUnavailableError
from router import events as ev
from router.decide import Decision, Part
from router.service import RouterService, RouterSettings
from channels.events import facts_to_data
from policies.vocabulary import Channel, ContactFacts
from tests.unit.router.builders import NOW, POLICY, Log


def service() -> RouterService:
    return RouterService(MemoryEventStore(), lambda: POLICY, RouterSettings(instance="test"))


async def test_the_same_decision_gets_the_same_id_in_any_instance() -> None:
    data = {"contact_id": "c1", "agent_id": "a1", "at_s": 1.5}
    first = service()._new_event("contact-default:c1", 3, "OfferMade", data)
    again = service()._new_event("contact-default:c1", 3, "OfferMade", dict(reversed(list(data.items()))),
                                 {"actor": "router:other", "received_at": "later"})
    assert first.event_id == again.event_id and first.event_id.version == 5


async def test_anything_decided_differently_gets_another_id() -> None:
    one = service()
    base = one._new_event("contact-default:c1", 3, "OfferMade", {"agent_id": "a1"}).event_id
    others = {
        one._new_event("contact-default:c2", 3, "OfferMade", {"agent_id": "a1"}).event_id,
        one._new_event("contact-default:c1", 4, "OfferMade", {"agent_id": "a1"}).event_id,
        one._new_event("contact-default:c1", 3, "OfferRevoked", {"agent_id": "a1"}).event_id,
        one._new_event("contact-default:c1", 3, "OfferMade", {"agent_id": "a2"}).event_id,
    }
    assert base not in others and len(others) == 4


class UnavailableStore(MemoryEventStore):
    def __init__(self) -> None:
        super().__init__()
        self.attempts = 0

    async def append_many(self, appends: Any) -> Any:
        self.attempts += 1
        raise StoreUnavailableError("the database is away")


async def test_rounds_back_off_while_the_store_is_unavailable() -> None:
    log = Log()
    log.agent("a1")
    log.contact("c1")
    store = UnavailableStore()
    router = RouterService(store, lambda: POLICY, RouterSettings(instance="test"), clock=lambda: NOW)
    router.state, router.epoch = log.state, 1  # leading, with a contact to place and an agent free
    loop = asyncio.create_task(router._decide_loop())
    router._kick.set()
    await asyncio.sleep(0.5)
    router.epoch = None
    router._kick.set()
    await asyncio.gather(loop, *router._landing, return_exceptions=True)
    assert 1 <= store.attempts <= 2  # a failed round waits before the next: no spin against a dead database
    assert "c1" in router._pending_contacts  # and the contact is decided again later


class GatedStore(MemoryEventStore):
    """Holds appends to one agent's stream until the test opens the gate."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()
        self.held = 0

    async def append_many(self, appends: Any) -> Any:
        if not self.gate.is_set() and any(a.stream_id == "agent-default:a1" for a in appends):
            self.held += 1
            await self.gate.wait()
        return await super().append_many(appends)


async def test_a_desk_command_waits_for_the_round_storing_an_offer_to_its_agent() -> None:
    # Why it matters: decided at the same agent version, the command or the offer would be
    # refused and decided again (a third of all offers under load, before).
    store = GatedStore()
    for stream_id, type_, data in Log.events_of(lambda log: (log.agent("a1"), log.contact("c1"))):
        await store.append(stream_id, [NewEvent(type_, data)], ANY)
    router = RouterService(store, lambda: POLICY, RouterSettings(instance="test"), clock=lambda: NOW)
    await router.start()
    await router.on_elected()  # leads: the first round offers c1 to a1, held at the gate
    try:
        for _ in range(100):
            if store.held:
                break
            await asyncio.sleep(0.01)
        assert store.held == 1
        seen: list[set[str]] = []

        def away() -> Decision:
            agent = router.state.agents["a1"]
            seen.append(set(agent.offers))
            data = {"agent_id": "a1", "state": "away", "at_s": NOW}
            return Decision("away", (Part(agent.stream_id, agent.version, ((ev.AGENT_STATE_CHANGED, data),)),),
                            agent_id="a1")

        command = asyncio.create_task(router.command("a1", away))
        await asyncio.sleep(0.05)
        assert seen == []  # not decided while the offer is being stored
        store.gate.set()
        assert await asyncio.wait_for(command, 5) is True
        assert len(seen) == 1 and len(seen[0]) == 1  # decided on the state with the offer in it
        assert router.decisions_stale == 0
    finally:
        await router.stop()


async def test_another_routing_domains_events_are_not_this_routers() -> None:
    store = MemoryEventStore()
    # A contact of another domain (here with data no adapter writes), then one of ours.
    await store.append("contact-branch_b:c9", [NewEvent("ContactArrived", {"no": "contact_id"})], ANY)
    ours = {**facts_to_data(ContactFacts(contact_id="c1", channel=Channel.PHONE)), "occurred_at": "2026-09-21T10:00:00+08:00"}
    await store.append("contact-default:c1", [NewEvent("ContactArrived", ours)], ANY)
    seen: list[str] = []
    router = RouterService(store, lambda: POLICY, RouterSettings(instance="test", lead=False),
                           consumers=[lambda events: seen.extend(e.stream_id for e in events)])
    await router.start()
    try:
        assert seen == ["contact-default:c1"]
        assert set(router.state.contacts) == {"c1"}
    finally:
        await router.stop()


async def offers_until_two_made(store: MemoryEventStore) -> tuple[RouterService, list[tuple[str, Any]]]:
    """Agents a1 and a2 free, contact c1 waiting, offers expiring after 0.3 s, through the real
    scheduler: lead until c1's stream shows two offers (or 5 s), then stop; c1's (type, agent_id)."""
    from tests.unit.policies.helpers import compiled

    policy = compiled([{"id": "everyone", "queue": "general", "offer_timeout_s": 0.3}])
    now = time.time()
    for stream_id, type_, data in Log.events_of(
            lambda log: (log.agent("a1", at_s=now), log.agent("a2", at_s=now), log.contact("c1"))):
        await store.append(stream_id, [NewEvent(type_, data)], ANY)
    router = RouterService(store, lambda: policy, RouterSettings(instance="test"), clock=time.time)
    await router.start()
    await router.on_elected()
    try:
        deadline = time.monotonic() + 5
        types: list[tuple[str, Any]] = []
        while time.monotonic() < deadline and [t for t, _ in types].count(ev.OFFER_MADE) < 2:
            types = [(e.type, e.data.get("agent_id")) for e in await store.read_stream("contact-default:c1")]
            await asyncio.sleep(0.05)
    finally:
        await router.stop()
    return router, types


async def test_an_offer_nobody_answers_expires_on_the_clock_and_goes_to_the_next_agent() -> None:
    """Through the real scheduler (not by calling `fire`): the offer's timer belongs to its
    contact, and it must fire at the offer's expiry."""
    _, types = await offers_until_two_made(MemoryEventStore())
    offered = [agent for t, agent in types if t == ev.OFFER_MADE]
    assert ev.OFFER_EXPIRED in [t for t, _ in types], types
    assert len(offered) == 2 and set(offered) == {"a1", "a2"}, types  # then the other agent


class StaleOnceStore(MemoryEventStore):
    """Refuses the first append holding `type_` as stale, as when a desk command on another
    instance moved the agent's stream just before: nothing of the contact's changes."""

    def __init__(self, type_: str) -> None:
        super().__init__()
        self.type, self.refused = type_, 0

    async def append_many(self, appends: Any) -> Any:
        from eventstore import ConcurrencyError

        if not self.refused and any(e.type == self.type for a in appends for e in a.events):
            self.refused += 1
            agent = next(a for a in appends if a.stream_id.startswith("agent-"))
            raise ConcurrencyError(agent.stream_id, str(agent.expected_version), 99)
        return await super().append_many(appends)


async def test_an_offer_expiry_refused_as_stale_is_tried_again() -> None:
    """The expiry timer belongs to the contact; its decision also writes the agent's stream.
    Refused because that stream moved, it must still fire (it was forgotten, and the offer
    stayed pending for good, holding the agent's capacity: found by an audit)."""
    store = StaleOnceStore(ev.OFFER_EXPIRED)
    router, types = await offers_until_two_made(store)
    kinds = [t for t, _ in types]
    assert store.refused == 1 and router.decisions_stale >= 1
    assert ev.OFFER_EXPIRED in kinds and kinds.count(ev.OFFER_MADE) == 2, types


async def test_the_minutes_clean_up_keeps_a_finished_contact_while_an_offer_for_it_is_out() -> None:
    # The customer hung up while offered: the contact is finished before the offer's revoke
    # lands. Forgotten meanwhile, the revoke and the offer's expiry found no contact, and the
    # offer held the agent's capacity for ever.
    from router.decide import next_offers, place

    log = Log()
    log.agent("a1")
    log.contact("c1")
    log.contact("c2")
    log.commit(place(log.state, log.state.contacts["c1"], POLICY, NOW))
    for decision in next_offers(log.state, NOW):
        log.commit(decision)
    assert log.state.agents["a1"].offers
    for contact_id in ("c1", "c2"):
        log.add(f"contact-default:{contact_id}", ev.CONTACT_ENDED, {"contact_id": contact_id, "cause": "hung up"})
    router = service()
    router.state = log.state
    router._forget_finished(force=True)  # noqa: SLF001
    assert "c1" in router.state.contacts  # offered: kept until its offer is closed
    assert "c2" not in router.state.contacts  # never offered: forgotten
