"""State snapshots without a database: signed and versioned, restored with the log's tail, and
never a reason to start with a wrong state (anything doubtful means replaying the whole log)."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from typing import Any

import pytest

from eventstore import ANY, LogCursor, MemoryEventStore, NewEvent, Snapshot
from router.customers import CustomerState
from router.service import RouterService, RouterSettings
from router.snapshots import SnapshotCodec, SnapshotSettings, code_version, encode_aside
from tests.unit.router.builders import NOW, POLICY, Log

KEY = b"k" * 32


class Part:
    def __init__(self, value: Any = None) -> None:
        self.value = value

    def snapshot_state(self) -> Any:
        return self.value

    def restore_state(self, saved: Any) -> None:
        self.value = saved


def test_a_snapshot_round_trips_and_names_its_key_without_revealing_it() -> None:
    codec = SnapshotCodec(KEY, "v1")
    snapshot = codec.encode({"a": Part({"x": [1, 2]}), "b": Part("y")}, LogCursor(7, 42))
    assert snapshot.cursor == LogCursor(7, 42) and snapshot.version == "v1"
    assert codec.decode(snapshot) == {"a": {"x": [1, 2]}, "b": "y"}
    assert KEY.decode() not in codec.key_id and codec.key_id != SnapshotCodec(b"o" * 32, "v1").key_id


class Slow:
    """Takes half a second to pickle, as a large state does."""

    def __init__(self, value: list[int]) -> None:
        self.value = value

    def __reduce__(self) -> Any:
        import time

        time.sleep(0.5)
        return (list, (self.value,))


async def test_the_encoding_runs_aside_while_the_loop_goes_on_and_sees_the_state_as_it_was() -> None:
    codec = SnapshotCodec(KEY, "v1")
    state = [1, 2, 3]
    part = Part(Slow(state))
    loop = asyncio.get_running_loop()
    started = loop.time()
    encoded = encode_aside(codec, {"a": part}, LogCursor(7, 42))
    assert loop.time() - started < 0.25  # the fork, not the pickling
    state.append(4)  # the loop changes the state meanwhile: the snapshot is of the moment it was taken
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    ticking = asyncio.create_task(tick())
    snapshot = await encoded()
    ticking.cancel()
    assert ticks >= 20  # the loop ran all the while the child pickled
    assert codec.decode(snapshot) == {"a": [1, 2, 3]} and snapshot.cursor == LogCursor(7, 42)


async def test_an_encoding_that_fails_aside_says_so() -> None:
    class Unpicklable:
        def __reduce__(self) -> Any:
            raise TypeError("cannot pickle this")

    encoded = encode_aside(SnapshotCodec(KEY, "v1"), {"a": Part(Unpicklable())}, LogCursor(1, 1))
    with pytest.raises(RuntimeError):
        await encoded()


@pytest.mark.parametrize("change", ["body", "cursor", "key", "version"])
def test_a_snapshot_changed_in_any_way_is_not_used(change: str, caplog: pytest.LogCaptureFixture) -> None:
    codec = SnapshotCodec(KEY, "v1")
    snapshot = codec.encode({"a": Part([1, 2, 3])}, LogCursor(7, 42))
    if change == "body":
        snapshot = dataclasses.replace(snapshot, body=snapshot.body[:-1] + bytes([snapshot.body[-1] ^ 1]))
    elif change == "cursor":  # moved back: the tail would be applied twice
        snapshot = dataclasses.replace(snapshot, cursor=LogCursor(7, 40))
    elif change == "key":
        codec = SnapshotCodec(b"o" * 32, "v1")
    else:  # the same bytes, read by other code
        codec = SnapshotCodec(KEY, "v2")
    with caplog.at_level(logging.INFO):
        assert codec.decode(snapshot) is None
    assert "replaying the log" in caplog.text


def test_the_code_version_is_stable_within_a_build() -> None:
    assert code_version() == code_version() and len(code_version()) == 24


async def _fill(store: MemoryEventStore, build: Any) -> None:
    for stream_id, type_, data in Log.events_of(build):
        await store.append(stream_id, [NewEvent(type_, data)], ANY)


def _router(store: MemoryEventStore, *, snapshots: SnapshotSettings | None) -> tuple[RouterService, CustomerState]:
    customers = CustomerState()
    router = RouterService(store, lambda: POLICY, RouterSettings(instance="test", lead=False), clock=lambda: NOW,
                           consumers=[customers.apply], snapshots=snapshots, snapshot_parts={"customers": customers})
    return router, customers


async def test_a_restart_restores_the_snapshot_and_replays_only_the_tail() -> None:
    store = MemoryEventStore()
    await _fill(store, lambda log: (log.agent("a1"), log.contact("c1")))
    settings = SnapshotSettings(KEY, every_s=0)
    first, _ = _router(store, snapshots=settings)
    await first.start()
    assert first.restored_from is None
    await first.stop()  # a clean stop leaves a snapshot
    saved = await store.load_snapshot(f"router-state:default:{settings.codec().key_id}")
    assert saved is not None and saved.cursor == (await store.log_head())

    await _fill(store, lambda log: log.contact("c2"))  # after the snapshot
    again, _ = _router(store, snapshots=settings)
    delivered: list[str] = []
    again._subscription._handler = _counting(again._subscription._handler, delivered)  # noqa: SLF001
    await again.start()
    try:
        assert again.restored_from == saved.cursor
        assert delivered == ["contact-default:c2"]  # only the tail was read
        replayed, _ = _router(store, snapshots=None)
        await replayed.start()
        assert set(again.state.contacts) == set(replayed.state.contacts) == {"c1", "c2"}
        assert again.state.contacts == replayed.state.contacts and again.state.agents == replayed.state.agents
        await replayed.stop()
    finally:
        await again.stop()


def _counting(handler: Any, seen: list[str]) -> Any:
    async def counted(events: Any) -> None:
        seen.extend(e.stream_id for e in events)
        await handler(events)
    return counted


async def test_a_snapshot_signed_with_another_key_means_a_full_replay(caplog: pytest.LogCaptureFixture) -> None:
    store = MemoryEventStore()
    await _fill(store, lambda log: log.contact("c1"))
    settings = SnapshotSettings(KEY, every_s=0)
    name = f"router-state:default:{settings.codec().key_id}"
    forged = SnapshotCodec(b"attacker-key-0123456789", code_version()).encode(
        {"router": Part({}), "customers": Part(None)}, await store.log_head())
    await store.save_snapshot(name, forged)
    router, _ = _router(store, snapshots=settings)
    with caplog.at_level(logging.WARNING):
        await router.start()
    try:
        assert router.restored_from is None and set(router.state.contacts) == {"c1"}
        assert "signature does not match" in caplog.text
    finally:
        await router.stop()


async def test_snapshots_are_taken_while_running_when_due() -> None:
    store = MemoryEventStore()
    settings = SnapshotSettings(KEY, every_s=0.01)
    router, _ = _router(store, snapshots=settings)
    await router.start()
    try:
        await asyncio.sleep(0.05)  # the interval has passed, but nothing happened: none taken
        assert router._snapshot_saving is None  # noqa: SLF001
        await _fill(store, lambda log: log.contact("c1"))
        for _ in range(200):  # the follower applies it, then takes one
            if router._snapshot_saving is not None:  # noqa: SLF001
                break
            await asyncio.sleep(0.01)
        assert router._snapshot_saving is not None  # noqa: SLF001
        await router._snapshot_saving  # noqa: SLF001
        saved = await store.load_snapshot(f"router-state:default:{settings.codec().key_id}")
        assert isinstance(saved, Snapshot) and saved.cursor == await store.log_head()
    finally:
        await router.stop()
