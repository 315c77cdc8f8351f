"""The router service's snapshots against a full replay: what a restored instance holds is
what one that replayed the whole log holds, whatever the snapshot went through."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from eventstore import ANY, MemoryEventStore, NewEvent
from router.customers import CustomerState
from router.service import RouterService, RouterSettings
from router.snapshots import SnapshotSettings
from tests.unit.router.builders import NOW, POLICY, Log
from tests.unit.router.test_snapshots import KEY

SETTINGS = SnapshotSettings(KEY, every_s=0)


def _name(domain: str) -> str:
    return f"router-state:{domain}:{SETTINGS.codec().key_id}"


async def _fill(store: MemoryEventStore, build: Any, domain: str = "default") -> None:
    for stream_id, type_, data in Log.events_of(build):
        await store.append(stream_id.replace("-default:", f"-{domain}:"), [NewEvent(type_, data)], ANY)


def _router(store: MemoryEventStore, *, snapshots: SnapshotSettings | None, domain: str = "default",
            consumers: list[Any] | None = None) -> RouterService:
    customers = CustomerState()
    return RouterService(store, lambda: POLICY, RouterSettings(domain=domain, instance="t", lead=False),
                         clock=lambda: NOW, consumers=[customers.apply, *(consumers or [])],
                         snapshots=snapshots, snapshot_parts={"customers": customers})


async def _replayed(store: MemoryEventStore, domain: str = "default") -> RouterService:
    router = _router(store, snapshots=None, domain=domain)
    await router.start()
    await router.stop()
    return router


async def test_another_domains_snapshot_copied_into_this_domains_row_is_not_restored() -> None:
    store = MemoryEventStore()
    await _fill(store, lambda log: log.contact("eu-only"), domain="eu")
    await _fill(store, lambda log: log.contact("c1"))
    eu = _router(store, snapshots=SETTINGS, domain="eu")
    await eu.start()
    await eu.stop()
    copied = await store.load_snapshot(_name("eu"))
    assert copied is not None
    store._snapshots[_name("default")] = copied  # noqa: SLF001  (write access to the table)
    router = _router(store, snapshots=SETTINGS)
    await router.start()
    await router.stop()
    assert router.restored_from is None
    assert set(router.state.contacts) == {"c1"}


async def test_a_snapshot_after_a_failed_batch_holds_what_its_cursor_says() -> None:
    store = MemoryEventStore()
    await _fill(store, lambda log: (log.agent("a1"), log.contact("c1"), log.contact("c2")))
    failures = []

    def flaky(events: Any) -> None:
        if events and not failures:
            failures.append(1)
            raise RuntimeError("a consumer's bug, once")  # the follower tries the batch again in 1 s

    router = _router(store, snapshots=SETTINGS, consumers=[flaky])
    with pytest.raises(RuntimeError):
        await router.start()  # the rebuild's batch fails
    await router.stop()  # a clean stop saves a snapshot "of where it got to"
    again = _router(store, snapshots=SETTINGS)
    await again.start()
    await again.stop()
    assert set(again.state.contacts) == set((await _replayed(store)).state.contacts) == {"c1", "c2"}


async def test_a_late_event_of_a_contact_forgotten_by_the_snapshot_leaves_no_phantom() -> None:
    store = MemoryEventStore()
    await _fill(store, lambda log: log.contact("c1"))
    await store.append("contact-default:c1", [NewEvent("ContactEnded", {"contact_id": "c1", "cause": "hangup"})], ANY)
    first = _router(store, snapshots=SETTINGS)
    await first.start()
    await first.stop()  # the snapshot forgets c1 (finished, nothing held)
    # A gateway's late event (a message after the end) is recorded on the contact's stream.
    await store.append("contact-default:c1", [NewEvent("GatewayEventIgnored", {"reason": "ended"})], ANY)
    restored = _router(store, snapshots=SETTINGS)
    await restored.start()
    await restored.stop()
    replayed = await _replayed(store)
    assert restored.restored_from is not None
    restored._forget_finished(force=True)  # noqa: SLF001
    replayed._forget_finished(force=True)  # noqa: SLF001
    assert set(restored.state.contacts) == set(replayed.state.contacts) == set()


async def test_restored_equals_replayed_for_the_router_state_and_customers() -> None:
    """The control: everything folded, snapshot at the end, a tail after it."""
    store = MemoryEventStore()
    await _fill(store, lambda log: (log.agent("a1"), log.agent("a2"), log.contact("c1"), log.contact("c2")))
    first = _router(store, snapshots=SETTINGS)
    await first.start()
    await first.stop()
    await _fill(store, lambda log: (log.contact("c3"), log.agent("a3")))
    restored = _router(store, snapshots=SETTINGS)
    await restored.start()
    await restored.stop()
    replayed = await _replayed(store)
    assert restored.restored_from is not None
    skip = {"touched_contacts", "touched_agents"}
    assert ({k: v for k, v in vars(restored.state).items() if k not in skip}
            == {k: v for k, v in vars(replayed.state).items() if k not in skip})
    await asyncio.sleep(0)
