"""The timer wheel: one APScheduler job per bucket, timers re-armed, replaced, dropped and fired once."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from router.scheduler import TimerScheduler
from router.timers import Timer


async def until(condition: object, timeout_s: float = 3.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)


async def test_timers_share_bucket_jobs_fire_once_and_can_be_rearmed() -> None:
    fired: list[str] = []

    async def on_fire(timer: Timer) -> None:
        fired.append(timer.key)

    scheduler = TimerScheduler(on_fire, resolution_s=0.1)
    jobs: list[str] = []
    add_job = scheduler._scheduler.add_job  # noqa: SLF001 (counting the adapter's calls)
    scheduler._scheduler.add_job = lambda *a, **k: (jobs.append(k["id"]), add_job(*a, **k))[1]  # type: ignore[method-assign]  # noqa: SLF001
    scheduler.start()
    try:
        soon = time.time() + 0.3
        for i in range(50):  # fifty contacts due in the same 100 ms: one job
            scheduler.reconcile(f"c{i}", [Timer(f"sla:c{i}", soon, "sla", f"c{i}")])
        scheduler.reconcile("c0", [Timer("sla:c0", soon, "sla", "c0")])  # unchanged: nothing armed again
        assert len(jobs) == 1 and scheduler.armed == 50
        scheduler.reconcile("c1", [])  # no longer wanted: never fires
        later = Timer("sla:c2", soon + 0.5, "sla", "c2")
        scheduler.reconcile("c2", [later])  # moved: fires at the new time only
        await until(lambda: len(fired) == 48)
        assert "sla:c1" not in fired and "sla:c2" not in fired
        await until(lambda: "sla:c2" in fired)
        assert fired.count("sla:c2") == 1 and scheduler.armed == 0
        again = Timer("sla:c3", time.time() - 1, "sla", "c3")  # fired, still wanted after a stale fire
        scheduler.reconcile("c3", [again])
        await until(lambda: fired.count("sla:c3") == 2)
    finally:
        scheduler.shutdown()


async def test_a_stop_while_timers_fire_is_not_logged_as_failed_jobs(caplog: pytest.LogCaptureFixture) -> None:
    started = asyncio.Event()

    async def on_fire(timer: Timer) -> None:
        started.set()
        await asyncio.Event().wait()  # a slow fire, e.g. an append waiting for the database

    scheduler = TimerScheduler(on_fire, resolution_s=0.1)
    scheduler.start()
    for i in range(5):  # overdue ticks of their own, as after a restart
        scheduler.reconcile(f"c{i}", [Timer(f"sla:c{i}", time.time() - 1 - i, "sla", f"c{i}")])
    await asyncio.wait_for(started.wait(), 3)
    with caplog.at_level(logging.INFO):
        scheduler.shutdown()
        await asyncio.sleep(0.1)  # the cancelled jobs' callbacks run
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text
