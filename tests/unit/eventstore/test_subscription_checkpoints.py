"""A live subscription saves its checkpoint at most every `checkpoint_every_s`, and always the
last one when it stops (in-memory store: no I/O)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

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
