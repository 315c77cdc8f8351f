"""The timer adapter: APScheduler 3 runs the deadlines router.timers computes.

Deadlines are grouped into buckets of `resolution_s` (a timing wheel): one APScheduler
job per bucket, with the deterministic id `tick:<bucket>`, fires every timer of that
bucket in due order. Arming a deadline that falls in a bucket already scheduled costs
a dict insert instead of an `add_job` (which costs hundreds of microseconds; with
thousands of contacts waiting, per-timer jobs were the router's largest cost).

Timers keep their own deterministic keys: re-arming the same deadline replaces it, a
ref's timers that are no longer wanted are dropped, and late buckets still run (a
deadline missed during a restart fires at once: `misfire_grace_time=None`). A timer
that fires is forgotten first, so if it decides nothing (stale state) the next change
to its ref re-arms it, even for the same moment.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Awaitable, Callable, Iterable
from datetime import datetime, timezone

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from .timers import Timer

log = logging.getLogger(__name__)


class TimerScheduler:
    def __init__(self, on_fire: Callable[[Timer], Awaitable[None]], *, resolution_s: float = 0.1) -> None:
        self._on_fire = on_fire
        self._resolution_s = resolution_s
        self._scheduler = AsyncIOScheduler(timezone=timezone.utc)
        self._by_ref: dict[str, dict[str, Timer]] = {}  # ref -> timer key -> timer armed
        self._buckets: dict[int, dict[str, Timer]] = {}  # bucket -> timer key -> timer
        self._stopped = False

    def start(self) -> None:
        self._scheduler.start()

    def shutdown(self) -> None:
        # Only once: APScheduler's asyncio scheduler stops on the loop's next turn, so a second
        # call in the same turn (a stop and a lost leadership together) still sees it running
        # and its own shutdown then fails in a callback.
        if self._stopped:
            return
        self._stopped = True
        if self._scheduler.running:
            self._scheduler.shutdown(wait=False)
        self._by_ref.clear()
        self._buckets.clear()

    def reconcile(self, ref: str, timers: Iterable[Timer]) -> None:
        """Make `ref`'s armed timers exactly `timers` (each of them owned by `ref`)."""
        wanted = {t.key: t for t in timers}
        if any(t.ref != ref for t in wanted.values()):
            # A tick finds a timer through its owner: one filed under another ref would never fire.
            raise ValueError(f"timers for {ref!r} must have ref {ref!r}")
        armed = self._by_ref.get(ref, {})
        for key, old in armed.items():
            if wanted.get(key) != old:
                self._buckets.get(self._bucket(old), {}).pop(key, None)
        for key, timer in wanted.items():
            if armed.get(key) != timer:
                self._arm(timer)
        if wanted:
            self._by_ref[ref] = wanted
        else:
            self._by_ref.pop(ref, None)

    def rearm(self, timer: Timer) -> None:
        """Arm one timer again (e.g. later, after a failed fire), keeping its owner's others."""
        armed = self._by_ref.setdefault(timer.ref, {})
        old = armed.get(timer.key)
        if old is not None:
            self._buckets.get(self._bucket(old), {}).pop(timer.key, None)
        armed[timer.key] = timer
        self._arm(timer)

    def _bucket(self, timer: Timer) -> int:
        return math.ceil(timer.due_s / self._resolution_s)

    def _arm(self, timer: Timer) -> None:
        bucket = self._bucket(timer)
        timers = self._buckets.get(bucket)
        if timers is None:
            timers = self._buckets[bucket] = {}
            self._scheduler.add_job(
                self._tick, "date", args=[bucket], id=f"tick:{bucket}", replace_existing=True,
                run_date=datetime.fromtimestamp(bucket * self._resolution_s, timezone.utc), misfire_grace_time=None,
            )
        timers[timer.key] = timer

    async def _tick(self, bucket: int) -> None:
        # Why the bucket stays in `_buckets` while it fires: a fire changes the state and
        # re-arms timers, and one due in this very bucket (two escalation steps at the same
        # moment, an overdue step after a restart) must join it. Popped first, the timer was
        # given a new job `tick:<bucket>` while this one still ran, and APScheduler refused
        # to run it ("maximum number of running instances reached"): it never fired.
        timers = self._buckets.get(bucket)
        try:
            while timers:
                batch = sorted(timers.values(), key=lambda t: (t.due_s, t.key))
                timers.clear()
                for timer in batch:
                    await self._fire_one(timer)
        except asyncio.CancelledError:
            # shutdown() cancels the ticks still running (a stop, or leadership lost), and
            # APScheduler would log each as a failed job with a traceback. Nothing is lost:
            # the timers not fired are still due in the log, and whoever leads next re-arms them.
            if not self._stopped:
                raise
        finally:
            if timers is not None and self._buckets.get(bucket) is timers:
                del self._buckets[bucket]  # done: a timer armed for it from now on gets a job of its own

    async def _fire_one(self, timer: Timer) -> None:
        armed = self._by_ref.get(timer.ref)
        if armed is None or armed.get(timer.key) != timer:
            return  # replaced or dropped since it was put in this bucket
        del armed[timer.key]
        if not armed:
            del self._by_ref[timer.ref]
        try:
            await self._on_fire(timer)
        except Exception:
            # One timer's failure must not take the rest of its bucket with it: they were
            # taken out of the wheel, still look armed, and would never fire.
            log.exception("timer %s failed to fire", timer.key)

    @property
    def armed(self) -> int:
        return sum(len(t) for t in self._by_ref.values())
