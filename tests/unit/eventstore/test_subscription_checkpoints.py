"""A live subscription saves its checkpoint at most every `checkpoint_every_s`, and always the
last one when it stops (in-memory store: no I/O)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from eventstore import LogCursor, MemoryEventStore, NewEvent, RecordedEvent, Subscription


class CountingStore(MemoryEventStore):
    def __init__(self) -> None:
        super().__init__()
        self.saves: list[LogCursor] = []

    async def save_checkpoint(self, name: str, cursor: LogCursor, conn: object = None) -> None:
        self.saves.append(cursor)
        await super().save_checkpoint(name, cursor)


async def test_checkpoints_are_saved_at_most_every_interval_and_on_stop() -> None:
    store = CountingStore()
    delivered: list[RecordedEvent] = []
    batches = asyncio.Queue[int]()

    async def handle(events: Sequence[RecordedEvent]) -> None:
        delivered.extend(events)
        batches.put_nowait(len(events))

    sub = Subscription(store, "s", handle, poll_interval_s=0.01, checkpoint_every_s=60)
    task = asyncio.create_task(sub.run())
    for i in range(5):
        await store.append(f"contact-default:c{i}", [NewEvent("E", {"i": i})], 0)
        await asyncio.wait_for(batches.get(), 5)  # delivered one by one: five deliveries
    assert len(store.saves) == 1  # the first delivery; the next four fall inside the interval
    sub.stop()
    await task
    assert store.saves[-1] == delivered[-1].cursor == await store.load_checkpoint("s")
    assert len(store.saves) == 2


async def test_a_failing_handler_is_retried_with_the_same_events_not_left_dead(caplog: Any) -> None:
    # Before, any error but the store's "unavailable" ended run(): the router's log follower
    # stopped for good (no routing, no enrichment) while the server still answered 202.
    store = MemoryEventStore()
    seen: list[list[int]] = []

    async def handle(events: Sequence[RecordedEvent]) -> None:
        seen.append([e.data["i"] for e in events])
        if len(seen) < 3:
            raise RuntimeError("a handler's bug")

    sub = Subscription(store, "flaky", handle, poll_interval_s=0.01)
    sub._retry_s = 0.01
    for i in range(3):
        await store.append(f"contact-default:c{i}", [NewEvent("E", {"i": i})], 0)
    task = asyncio.create_task(sub.run())
    for _ in range(200):
        if len(seen) >= 3:
            break
        await asyncio.sleep(0.01)
    sub.stop()
    await task
    assert seen == [[0, 1, 2]] * 3  # the same events again, nothing skipped
    assert await store.load_checkpoint("flaky") == (await store.read_log(LogCursor()))[-1].cursor
    assert sum("trying the same events again" in r.getMessage() for r in caplog.records) == 2
