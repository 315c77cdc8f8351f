"""The timer adapter: APScheduler 3 runs the deadlines router.timers computes.

Jobs have the timer's deterministic id, so arming the same deadline twice replaces
it; a ref's jobs that are no longer wanted are removed. Late jobs still run (a
deadline missed during a restart fires at once): `misfire_grace_time=None`.
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

    def start(self) -> None:
        self._scheduler.start()

    def shutdown(self) -> None:
        if self._scheduler.running:
            self._scheduler.shutdown(wait=False)
        self._by_ref.clear()

    def clear(self) -> None:
        self._scheduler.remove_all_jobs()
        self._by_ref.clear()

    def reconcile(self, ref: str, timers: Iterable[Timer]) -> None:
        """Make `ref`'s armed jobs exactly `timers`."""
        wanted = {t.key: t for t in timers}
        for key in self._by_ref.get(ref, set()) - wanted.keys():
            try:
                self._scheduler.remove_job(key)
            except JobLookupError:
                pass  # it fired already
        for key, timer in wanted.items():
            self._scheduler.add_job(
                self._on_fire, "date", args=[timer], id=key, replace_existing=True,
                run_date=datetime.fromtimestamp(timer.due_s, timezone.utc), misfire_grace_time=None,
            )
        if wanted:
            self._by_ref[ref] = set(wanted)
        else:
            self._by_ref.pop(ref, None)

    @property
    def armed(self) -> int:
        return len(self._scheduler.get_jobs())
