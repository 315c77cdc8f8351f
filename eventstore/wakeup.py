"""Waking the subscribers of this process when something was appended.

Why not an asyncio.Event behind `asyncio.wait_for` (as before): every hop between the
append's commit and the subscriber's next read (the event's waiter task, wait_for's
task, the subscription's race with its stop signal) is one more turn of the event loop,
and under load each turn first runs everything else that is ready: a few hundred
appenders resuming after a commit took ~10 ms per turn (bench eventstore, 256
appenders), which the subscriber lag paid several times over. Here a waiter is a
future that `wake()` resolves directly, with a timer for the timeout: the subscriber
resumes on the next turn, before the appenders it was woken together with.
"""

from __future__ import annotations

import asyncio


class Wakeup:
    """Waiters wait for the next `wake()` or their timeout, whichever comes first; waking
    early is always safe, since a subscriber only reads.

    A subscriber busy reading when a wake comes must not sleep through it, but must not
    read again for a commit its read already saw either (that was 40% of all reads under
    load: empty ones). So `generation` counts wakes: a subscriber takes it before it reads
    and waits `since` it, returning at once if anything woke meanwhile. Without `since`, a
    wake while nobody waits is remembered once instead."""

    def __init__(self) -> None:
        self._waiters: set[asyncio.Future[None]] = set()
        self._missed = False
        self.generation = 0

    def wake(self) -> None:
        self.generation += 1
        waiters, self._waiters = self._waiters, set()
        if not waiters:
            self._missed = True
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    async def wait(self, timeout_s: float, since: int | None = None) -> None:
        if since is not None:
            if self.generation != since:
                return
        elif self._missed:
            self._missed = False
            return
        if timeout_s <= 0:
            return
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] = loop.create_future()
        self._waiters.add(waiter)
        timer = loop.call_later(timeout_s, _expire, waiter)
        try:
            await waiter
        finally:
            timer.cancel()
            self._waiters.discard(waiter)  # timed out or cancelled (a woken one is gone already)


def _expire(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)
