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
    """Waiters wait for the next `wake()` or their timeout, whichever comes first. A wake
    while nobody waits is remembered once (a subscriber busy reading when it came must not
    sleep through it); waking early is always safe, since a subscriber only reads."""

    def __init__(self) -> None:
        self._waiters: set[asyncio.Future[None]] = set()
        self._missed = False

    def wake(self) -> None:
        waiters, self._waiters = self._waiters, set()
        if not waiters:
            self._missed = True
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    async def wait(self, timeout_s: float) -> None:
        if self._missed:
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
