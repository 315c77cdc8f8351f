"""Group commit: merge appends from many coroutines into few transactions.

A dispatcher takes queued appends and hands them to a flush function in batches.
When no batch is in flight, an append goes out at once (no added latency when the
system is quiet); while batches are in flight, new appends accumulate and the next
batch may linger up to `linger_s` for more. Batches are bounded in events, and at
most `max_inflight` run at once. Every append keeps its own future, so one
caller's error never fails another caller. A submitted item is written even if its
caller stops waiting (is cancelled): like a caller whose connection dropped, it does not
learn the outcome, and submitting the same item again (same event ids) is how to learn it.
Code that records something on its way out (a desk closing, cancelled with its
connection) relies on this.

Keys keep items that must not share a transaction apart, like a reader-writer lock:
an item names the keys it writes and the keys it only reads. Two writers of a key
never share a batch, nor does a reader behind a writer of its key (it would read the
key as it was before the batch, not after the write it queued behind); a writer
behind readers may join them (they read first, as they came first). An item that
must wait also holds back every later item that would pass it on a key (reads may pass
reads), so writes on one key, and reads against them, go in the order they came.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Hashable, Iterable, Sequence
from typing import Generic, TypeVar

from .errors import StoreClosedError

T = TypeVar("T")
R = TypeVar("R")
log = logging.getLogger(__name__)


class Pending(Generic[T, R]):
    """One submitted item and the future its caller waits on."""

    __slots__ = ("item", "size", "future")

    def __init__(self, item: T, size: int, future: asyncio.Future[R]) -> None:
        self.item = item
        self.size = size
        self.future = future


Flush = Callable[[Sequence[Pending[T, R]]], Awaitable[None]]
# The keys an item writes, and the keys it only reads.
Keys = tuple[Iterable[Hashable], Iterable[Hashable]]


class GroupCommitter(Generic[T, R]):
    def __init__(
        self,
        flush: Flush[T, R],
        *,
        max_batch_events: int = 2000,
        max_inflight: int = 2,
        linger_s: float = 0.001,
        keys: Callable[[T], Keys] | None = None,
    ) -> None:
        self._flush = flush
        self._keys = keys
        self._max_batch_events = max_batch_events
        self._linger_s = linger_s
        self._queue: deque[Pending[T, R]] = deque()
        self._queued_size = 0  # events in the queue, kept as a count: summing it per dispatch was quadratic
        self._wakeup = asyncio.Event()
        self._slots = asyncio.Semaphore(max_inflight)
        self._inflight: set[asyncio.Task[None]] = set()
        self._closed = False
        self._loop = asyncio.get_running_loop()
        self._dispatcher = asyncio.create_task(self._dispatch(), name="group-commit")

    async def submit(self, item: T, size: int) -> R:
        if self._closed:
            raise StoreClosedError("the event store is closed")
        pending: Pending[T, R] = Pending(item, size, self._loop.create_future())
        self._queue.append(pending)
        self._queued_size += size
        self._wakeup.set()
        future = pending.future
        del pending
        try:
            return await future
        finally:
            # Why: an error raised here keeps this frame in its traceback, and the frame would
            # keep the future, which keeps the error: a cycle holding the whole append, that
            # only the garbage collector frees. Refused appends are routine (a stale routing
            # decision), and collecting their cycles stalled the event loop for 50 ms at a time.
            del future

    async def _dispatch(self) -> None:
        while True:
            while not self._queue:
                if self._closed:
                    return
                self._wakeup.clear()
                await self._wakeup.wait()
            await self._slots.acquire()
            if self._inflight and self._queued_size < self._max_batch_events:
                # Batches are already in flight, so waiting a moment costs little
                # latency and merges more appends into the next transaction.
                await asyncio.sleep(self._linger_s)
            task = asyncio.create_task(self._run(self._take_batch()))  # no local: the task owns the batch
            self._inflight.add(task)
            task.add_done_callback(self._inflight.discard)

    def _take_batch(self) -> list[Pending[T, R]]:
        """Take queued items in order, up to the size bound; an item whose keys clash with
        the batch (see the module's docstring) waits, in order, for a later batch, and the
        scan for others is bounded."""
        batch: list[Pending[T, R]] = []
        written: set[Hashable] = set()  # keys the batch writes
        # Keys of items left waiting: a later item that would pass one of them on a key (a
        # write after a waiting read or write, a read after a waiting write) waits too. Reads
        # may pass reads: every fenced routing decision reads the leader's epoch.
        held_writes: set[Hashable] = set()
        held_reads: set[Hashable] = set()
        waiting: list[Pending[T, R]] = []
        total = 0
        while self._queue and len(waiting) < self._max_batch_events:
            pending = self._queue[0]
            if batch and total + pending.size > self._max_batch_events:
                break
            self._queue.popleft()
            if self._keys is not None:
                writes, reads = self._keys(pending.item)
                writes, reads = set(writes), set(reads)
                touched = writes | reads
                if (not touched.isdisjoint(written) or (held_writes and not touched.isdisjoint(held_writes))
                        or (held_reads and not writes.isdisjoint(held_reads))):
                    waiting.append(pending)
                    held_writes |= writes
                    held_reads |= reads
                    continue
                written |= writes
            batch.append(pending)
            total += pending.size
        self._queue.extendleft(reversed(waiting))
        self._queued_size -= total
        return batch

    async def _run(self, batch: list[Pending[T, R]]) -> None:
        try:
            await self._flush(batch)
        except BaseException as exc:  # the flush failed as a whole: every caller hears why
            for pending in batch:
                if not pending.future.done():
                    pending.future.set_exception(exc if isinstance(exc, Exception) else StoreClosedError(str(exc)))
            if not isinstance(exc, Exception):
                raise
        finally:
            self._slots.release()

    async def close(self) -> None:
        """Finish what was submitted, then stop."""
        self._closed = True
        self._wakeup.set()
        await self._dispatcher
        if self._inflight:
            await asyncio.gather(*self._inflight, return_exceptions=True)
