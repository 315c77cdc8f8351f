"""Local wake-ups of subscribers: one turn of the event loop, nothing missed, nothing kept."""

from __future__ import annotations

import asyncio

from eventstore import NO_STREAM, MemoryEventStore, NewEvent, Subscription
from eventstore.wakeup import Wakeup


async def test_a_woken_waiter_resumes_on_the_next_turn_of_the_loop() -> None:
    # Under load every extra turn waits behind everything else that is ready (the appenders
    # resuming after a commit), so the subscriber must not need more than one.
    wakeup, resumed = Wakeup(), []

    async def waiter() -> None:
        await wakeup.wait(5)
        resumed.append(True)

    task = asyncio.create_task(waiter())
    await asyncio.sleep(0)  # it is waiting now
    wakeup.wake()
    await asyncio.sleep(0)
    assert resumed == [True]
    await task


async def test_a_wake_while_nobody_waits_is_remembered_once() -> None:
    wakeup = Wakeup()
    wakeup.wake()
    await asyncio.wait_for(wakeup.wait(5), 1)  # returns at once
    started = asyncio.get_running_loop().time()
    await wakeup.wait(0.05)  # nothing new: waits out the timeout
    assert asyncio.get_running_loop().time() - started >= 0.04


async def test_timed_out_and_cancelled_waiters_are_not_kept() -> None:
    wakeup = Wakeup()
    for _ in range(5):
        await wakeup.wait(0.001)
    task = asyncio.create_task(wakeup.wait(5))
    await asyncio.sleep(0)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert not wakeup._waiters  # an idle subscriber polling for days must not grow a list


async def test_stopping_a_subscription_does_not_wait_for_its_poll() -> None:
    store = MemoryEventStore()
    delivered: list[str] = []

    async def handle(events: object) -> None:
        delivered.extend(e.type for e in events)  # type: ignore[attr-defined]

    sub = Subscription(store, "s", handle, poll_interval_s=60)
    task = asyncio.create_task(sub.run())
    await store.append("contact-d:1", [NewEvent("Arrived", {})], NO_STREAM)
    for _ in range(100):
        if delivered:
            break
        await asyncio.sleep(0.01)
    assert delivered == ["Arrived"]  # woken by the append, not by the 60 s poll
    sub.stop()
    await asyncio.wait_for(task, 1)
