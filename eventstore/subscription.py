"""Subscriptions: catch up from a durable checkpoint, then follow the log live.

Reads go through `store.read_log`, which is gap-safe (see eventstore.postgres), so a
subscriber never skips an event. It is woken by the store's coalesced notifications
and polls as a backstop; while committed events wait behind an older running
transaction it re-reads quickly instead of waiting for the next notification.

The plain subscription saves its checkpoint after the handler returns: delivery is
at least once (a crash in between repeats that batch). `ProjectionRunner` writes
the read model and the checkpoint in one transaction: exactly once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

from .errors import StoreUnavailableError
from .pgerrors import translated
from .model import LogCursor, RecordedEvent
from .port import EventStore

log = logging.getLogger(__name__)

Handler = Callable[[Sequence[RecordedEvent]], Awaitable[None]]
_MAX_RETRY_S = 30.0  # the longest wait before a failing subscription tries again


class Subscription:
    def __init__(
        self,
        store: EventStore,
        name: str,
        handler: Handler,
        *,
        category: str | None = None,
        batch_size: int = 500,
        poll_interval_s: float = 0.5,
        save_checkpoints: bool = True,
        checkpoint_every_s: float = 0.1,
    ) -> None:
        self.store = store
        self.name = name
        self._handler = handler
        self._category = category
        self._batch_size = batch_size
        self._poll_interval_s = poll_interval_s
        self._save_checkpoints = save_checkpoints
        # A write transaction per delivered batch cost the writers ~15% of their events/s and
        # doubled the median lag under load (measured, bench eventstore); saving at most this
        # often only widens what a crash may deliver again (at least once, as before). A
        # stop() and the end of catch_up() always save.
        self._checkpoint_every_s = checkpoint_every_s
        self._saved = LogCursor()
        self._saved_at = 0.0
        self._retry_s = 1.0
        self.cursor = LogCursor()
        self._blocked = False  # the last read found committed events held back by the horizon
        self._stopping = asyncio.Event()

    async def catch_up(self, timeout_s: float = 10.0) -> int:
        """Deliver every event committed before the call; return how many were delivered.

        Events committed behind a still-running older transaction become readable when it
        ends (see eventstore.postgres): this waits for them, up to `timeout_s`, and then
        returns what it could deliver (a write transaction held open elsewhere in the
        cluster must not hang the caller)."""
        self.cursor = self._saved = await self.store.load_checkpoint(self.name)
        head = (await self.store.log_head()).as_tuple()
        deadline = time.monotonic() + timeout_s
        delivered = 0
        while True:
            count = await self._step()
            delivered += count
            if count > 0:
                continue
            if self.cursor.as_tuple() >= head or not self._blocked or time.monotonic() >= deadline:
                break
            await self.store.wait_for_append(0.01)  # the holder's commit, or a short poll
        await self._checkpoint(force=True)
        return delivered

    async def catch_up_from_start(self) -> int:
        """For in-memory read models: deliver the whole log, ignoring any saved checkpoint."""
        return await self.catch_up_from(LogCursor())

    async def catch_up_from(self, cursor: LogCursor) -> int:
        """For in-memory read models restored as of `cursor` (a snapshot): deliver the log
        after it, ignoring any saved checkpoint."""
        await self.store.wait_for_append(0)  # listen before reading, so nothing slips between
        self.cursor = cursor
        delivered = 0
        while (count := await self._step()) > 0:
            delivered += count
        return delivered

    async def run(self) -> None:
        """Catch up from the saved checkpoint, then follow the log until stop() is called."""
        self.cursor = self._saved = await self.store.load_checkpoint(self.name)
        await self.run_from_cursor()

    async def run_from_cursor(self) -> None:
        """Follow the log from where this subscription is now, until stop() is called."""
        await self.store.wait_for_append(0)  # start listening before the first read
        backoff_s = 0.001
        failures = 0  # unexpected failures in a row
        while not self._stopping.is_set():
            # Taken before the read: a wait below returns at once for anything appended
            # after this (maybe missed by the read), and not for what the read already saw.
            generation = self.store.append_generation()
            try:
                count = await self._step()
            except StoreUnavailableError as exc:
                # The database went away: keep the cursor (nothing was lost) and retry.
                log.warning("subscription %s: %s; retrying in %.1f s", self.name, exc.message, self._retry_s)
                await self._sleep(self._retry_s)
                continue
            except Exception:
                # Anything else (a handler's bug, an error the store did not foresee): a
                # subscription that ended here would leave its read model silently behind
                # for good (the router's follower stops routing). Keep the cursor, say so
                # loudly, and try the same events again, less and less often.
                failures += 1
                wait_s = min(self._retry_s * 2 ** (failures - 1), _MAX_RETRY_S)
                log.exception("subscription %s failed at %s; trying the same events again in %.0f s",
                              self.name, self.cursor, wait_s)
                await self._sleep(wait_s)
                continue
            failures = 0
            if count == self._batch_size:
                continue  # a full batch: more may be there already
            if self._blocked:
                # An older transaction is still running; the rows behind it are committed and
                # become readable when it ends. If it is an append, its commit sends a
                # notification, so wait for one; if not (any other write in the cluster holds
                # the horizon too), the short cap makes this a quick poll.
                await self._wait(min(backoff_s, 0.01), generation)
                backoff_s = min(backoff_s * 2, 0.01)
                continue
            backoff_s = 0.001
            if count == 0:
                await self._save_quietly(force=False)  # idle: a good moment for a due checkpoint
            # The read saw everything committed before it began (not a full batch, nothing
            # held back), so wait for the next append unless one came meanwhile: reading again
            # at once found nothing in 9 of 10 cases and was a third of all reads under load.
            await self._wait(self._poll_interval_s, generation)
        await self._save_quietly(force=True)

    async def _save_quietly(self, *, force: bool) -> None:
        try:
            await self._checkpoint(force=force)
        except StoreUnavailableError as exc:  # the next save carries it; at worst a batch comes again
            log.warning("subscription %s could not save its checkpoint: %s", self.name, exc.message)

    async def _step(self) -> int:
        window = getattr(self.store, "read_log_window", None)
        if window is not None:  # the rows and the horizon's state in one round trip
            events, self._blocked = await window(self.cursor, self._batch_size, self._category)
        else:
            events, self._blocked = await self.store.read_log(self.cursor, self._batch_size, self._category), False
        if not events:
            return 0
        await self._handler(events)
        self.cursor = events[-1].cursor
        await self._checkpoint(force=False)
        return len(events)

    async def _checkpoint(self, *, force: bool) -> None:
        if not self._save_checkpoints or self.cursor == self._saved:
            return
        now = time.monotonic()
        if force or now - self._saved_at >= self._checkpoint_every_s:
            await self.store.save_checkpoint(self.name, self.cursor)
            self._saved, self._saved_at = self.cursor, now

    async def _wait(self, timeout_s: float, since: int) -> None:
        # Awaited directly, not raced against the stop signal in tasks of its own: each task
        # is another turn of a busy event loop between a commit and the next read (see
        # eventstore.wakeup). stop() wakes the wait instead.
        if not self._stopping.is_set():
            await self.store.wait_for_append(timeout_s, since)

    async def _sleep(self, delay_s: float) -> None:
        try:
            await asyncio.wait_for(self._stopping.wait(), delay_s)
        except TimeoutError:
            pass

    def stop(self) -> None:
        self._stopping.set()
        self.store.wake_waiters()




class Projection(Protocol):
    """A read model kept in PostgreSQL, updated in the same transaction as its checkpoint."""

    name: str
    category: str | None

    async def apply(self, conn: Any, events: Sequence[RecordedEvent]) -> None: ...

    async def reset(self, conn: Any) -> None: ...


class ProjectionRunner:
    """Runs a Projection exactly once per event: read model and checkpoint commit together."""

    def __init__(self, store: Any, projection: Projection, *, batch_size: int = 500) -> None:
        self._store = store
        self._projection = projection
        self.subscription = Subscription(
            store,
            f"projection:{projection.name}",
            self._apply,
            category=projection.category,
            batch_size=batch_size,
            save_checkpoints=False,
        )

    async def _apply(self, events: Sequence[RecordedEvent]) -> None:
        # translated(): a connection lost here is the store being unavailable, which the
        # subscription waits out and retries (the transaction rolled back: nothing applied).
        async with translated(), self._store.pool.acquire() as conn, conn.transaction():
            await self._projection.apply(conn, events)
            await self._store.save_checkpoint(self.subscription.name, events[-1].cursor, conn)

    async def catch_up(self) -> int:
        return await self.subscription.catch_up()

    async def run(self) -> None:
        await self.subscription.run()

    def stop(self) -> None:
        self.subscription.stop()

    async def rebuild(self) -> int:
        """Empty the read model and replay the whole log into it."""
        async with self._store.pool.acquire() as conn, conn.transaction():
            await self._projection.reset(conn)
            await conn.execute("DELETE FROM checkpoints WHERE name = $1", self.subscription.name)
        return await self.catch_up()
