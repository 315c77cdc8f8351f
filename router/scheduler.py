"""The timer adapter: APScheduler 3 runs the deadlines router.timers computes.

Jobs have the timer's deterministic id, so arming the same deadline twice replaces
it; a ref's jobs that are no longer wanted are removed. Late jobs still run (a
deadline missed during a restart fires at once): `misfire_grace_time=None`.

A timer armed already (same id, same deadline) is not armed again: every change to a
contact or agent re-derives its timers, mostly unchanged, and adding an APScheduler
job costs tens of microseconds. A timer that has fired is forgotten first, so wanting
it again arms it again.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable
from datetime import datetime, timezone

from apscheduler.jobstores.base import JobLookupError
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from .timers import Timer

log = logging.getLogger(__name__)


class TimerScheduler:
    def __init__(self, on_fire: Callable[[Timer], Awaitable[None]]) -> None:
        self._on_fire = on_fire
        self._scheduler = AsyncIOScheduler(timezone=timezone.utc)
        self._by_ref: dict[str, set[str]] = {}
        self._armed: dict[str, Timer] = {}  # job id -> the timer its job runs

    def start(self) -> None:
        self._scheduler.start()

    def shutdown(self) -> None:
        if self._scheduler.running:
            self._scheduler.shutdown(wait=False)
        self._by_ref.clear()
        self._armed.clear()

    def clear(self) -> None:
        self._scheduler.remove_all_jobs()
        self._by_ref.clear()
        self._armed.clear()

    def reconcile(self, ref: str, timers: Iterable[Timer]) -> None:
        """Make `ref`'s armed jobs exactly `timers`."""
        wanted = {t.key: t for t in timers}
        for key in self._by_ref.get(ref, set()) - wanted.keys():
            self._armed.pop(key, None)
            try:
                self._scheduler.remove_job(key)
            except JobLookupError:
                pass  # it fired already
        for key, timer in wanted.items():
            if self._armed.get(key) == timer:
                continue
            self._armed[key] = timer
            self._scheduler.add_job(
                self._fired, "date", args=[timer], id=key, replace_existing=True,
                run_date=datetime.fromtimestamp(timer.due_s, timezone.utc), misfire_grace_time=None,
            )
        if wanted:
            self._by_ref[ref] = set(wanted)
        else:
            self._by_ref.pop(ref, None)

    async def _fired(self, timer: Timer) -> None:
        if self._armed.get(timer.key) == timer:
            del self._armed[timer.key]  # its job is gone: wanting it again must re-arm it
        await self._on_fire(timer)

    @property
    def armed(self) -> int:
        return len(self._scheduler.get_jobs())
