"""Group commit: merging, bounds and error isolation, with a fake flush (no database)."""

from __future__ import annotations

import asyncio
import gc
import weakref
from collections.abc import Sequence
from typing import Any

import pytest

from eventstore.batcher import GroupCommitter, Pending


async def test_concurrent_submits_are_merged_and_bounded() -> None:
    batches: list[list[int]] = []

    async def flush(batch: Sequence[Pending[int, int]]) -> None:
        batches.append([p.item for p in batch])
        await asyncio.sleep(0.01)
        for p in batch:
            p.future.set_result(p.item * 10)

    committer: GroupCommitter[int, int] = GroupCommitter(flush, max_batch_events=5, max_inflight=1, linger_s=0.001)
    results = await asyncio.gather(*(committer.submit(i, 1) for i in range(12)))
    await committer.close()
    assert results == [i * 10 for i in range(12)]
    assert max(len(b) for b in batches) == 5
    assert sorted(i for b in batches for i in b) == list(range(12))


async def test_a_lone_append_does_not_linger() -> None:
    async def flush(batch: Sequence[Pending[int, int]]) -> None:
        for p in batch:
            p.future.set_result(p.item)

    committer: GroupCommitter[int, int] = GroupCommitter(flush, linger_s=30)
    # Nothing is in flight, so the dispatcher must not wait the 30 s linger.
    assert await asyncio.wait_for(committer.submit(7, 1), 5) == 7
    await committer.close()


async def test_a_failed_flush_fails_only_its_own_batch() -> None:
    async def flush(batch: Sequence[Pending[int, int]]) -> None:
        if any(p.item == 3 for p in batch):
            raise RuntimeError("boom")
        for p in batch:
            p.future.set_result(p.item)

    committer: GroupCommitter[int, int] = GroupCommitter(flush, max_batch_events=1, max_inflight=2)
    outcomes = await asyncio.gather(*(committer.submit(i, 1) for i in range(6)), return_exceptions=True)
    await committer.close()
    assert [isinstance(o, RuntimeError) for o in outcomes] == [False, False, False, True, False, False]


async def test_submit_after_close_is_refused() -> None:
    async def flush(batch: Sequence[Pending[int, int]]) -> None:
        for p in batch:
            p.future.set_result(0)

    committer: GroupCommitter[int, int] = GroupCommitter(flush)
    await committer.close()
    with pytest.raises(Exception, match="closed"):
        await committer.submit(1, 1)


async def test_items_with_the_same_key_never_share_a_batch_and_keep_their_order() -> None:
    batches: list[list[str]] = []

    async def flush(batch: Sequence[Pending[str, str]]) -> None:
        batches.append([p.item for p in batch])
        for p in batch:
            p.future.set_result(p.item)

    committer: GroupCommitter[str, str] = GroupCommitter(flush, max_inflight=1, keys=lambda item: ([item[0]], ()))
    items = ["a1", "b1", "a2", "c1", "a3", "b2"]
    assert await asyncio.gather(*(committer.submit(i, 1) for i in items)) == items
    await committer.close()
    for batch in batches:
        assert len({i[0] for i in batch}) == len(batch)
    flat = [i for b in batches for i in b]
    assert [i for i in flat if i[0] == "a"] == ["a1", "a2", "a3"]
    assert batches[0] == ["a1", "b1", "c1"]


class _Item:
    """A submitted item that a weak reference can watch."""


async def test_a_refused_append_leaves_no_reference_cycle() -> None:
    # A refused append (a ConcurrencyError, routine under contention) used to leave a cycle:
    # the error's traceback held submit's frame, whose `pending` held the future holding the
    # error. The garbage collector then had to find every refused batch, with all it held
    # (~80 objects per refused router decision): 25k objects a second, 50 ms pauses.
    async def flush(batch: Sequence[Pending[_Item, int]]) -> None:
        for p in batch:
            p.future.set_exception(ValueError("refused"))

    committer: GroupCommitter[_Item, int] = GroupCommitter(flush)
    watches = []

    async def refused() -> None:  # as the router submits a decision: the caller's own frame
        item = _Item()
        watches.append(weakref.ref(item))
        try:
            await committer.submit(item, 1)
        except ValueError:
            pass

    gc.disable()
    try:
        for _ in range(3):
            await refused()
        await asyncio.sleep(0)  # the flushes finish and let go of their batches
        assert [w() for w in watches] == [None, None, None], "refused items wait for the garbage collector"
    finally:
        gc.enable()
        await committer.close()


async def test_reads_pass_a_waiting_read_but_nothing_passes_a_waiting_write() -> None:
    # items: (name, writes, reads). "epoch" is read by every routing decision; one decision
    # must wait (its contact is written ahead of it): the other decisions must not wait with
    # it (that made one decision per batch), but a write of the epoch must.
    batches: list[list[str]] = []

    async def flush(batch: Sequence[Pending[tuple[str, tuple[str, ...], tuple[str, ...]], str]]) -> None:
        batches.append([p.item[0] for p in batch])
        for p in batch:
            p.future.set_result(p.item[0])

    committer: GroupCommitter[tuple[str, tuple[str, ...], tuple[str, ...]], str] = GroupCommitter(
        flush, max_inflight=1, keys=lambda item: (item[1], item[2]))
    blocker = asyncio.Event()

    async def slow_flush(batch: Sequence[Pending[Any, str]]) -> None:
        await blocker.wait()
        await flush(batch)

    committer._flush = slow_flush  # hold the first batch so the rest queue up
    items = [("first", ("x",), ()), ("ingest-c0", ("c0",), ()), ("decide-c0", ("c0",), ("epoch",)),
             *[(f"decide-c{i}", (f"c{i}",), ("epoch",)) for i in range(1, 6)], ("new-epoch", ("epoch",), ()),
             ("decide-c9", ("c9",), ("epoch",))]
    first = asyncio.create_task(committer.submit(items[0], 1))
    await asyncio.sleep(0.01)
    rest = [asyncio.create_task(committer.submit(i, 1)) for i in items[1:]]
    await asyncio.sleep(0.01)
    blocker.set()
    await asyncio.gather(first, *rest)
    await committer.close()
    assert batches[1] == ["ingest-c0", *[f"decide-c{i}" for i in range(1, 6)]]
    assert batches[2] == ["decide-c0", "new-epoch"]  # the epoch's write after the read that waited
    assert batches[3] == ["decide-c9"]  # a read after a write of its key that waited
