"""Long-running background tasks that say so when they end by surprise.

A task nobody awaits until shutdown (the log follower, the decide loop, the leader's
lease) that dies of an exception would otherwise do so in silence: the server keeps
answering while the part it ran (routing, enrichment) has stopped.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any, TypeVar

log = logging.getLogger(__name__)
T = TypeVar("T")


class TaskBoard:
    """One server instance's long-running tasks, for its health check: which of them an error
    stopped (what they ran stays stopped until a restart, so the instance is not healthy)."""

    def __init__(self) -> None:
        self._tasks: list[asyncio.Task[Any]] = []

    def watch(self, task: asyncio.Task[Any]) -> None:
        # Tasks that ended well or were cancelled (a leader stepping down) are let go of.
        self._tasks = [t for t in self._tasks if not t.done() or _failed(t)]
        self._tasks.append(task)

    def stopped(self) -> list[str]:
        """The names of the tasks an error ended."""
        return sorted({t.get_name() for t in self._tasks if _failed(t)})


def supervised(coro: Coroutine[Any, Any, T], name: str, board: TaskBoard | None = None) -> asyncio.Task[T]:
    """`asyncio.create_task`, and an error logged (with the traceback) if the task ends
    with an exception; cancellation and a normal end are quiet. `board`: where the
    instance's health check sees it."""
    task = asyncio.create_task(coro, name=name)
    task.add_done_callback(_report_end)
    if board is not None:
        board.watch(task)
    return task


def _failed(task: asyncio.Task[Any]) -> bool:
    return task.done() and not task.cancelled() and task.exception() is not None


def _report_end(task: asyncio.Task[Any]) -> None:
    if task.cancelled():
        return
    exc = task.exception()
    if exc is not None:
        log.error("background task %s stopped by an error; what it ran is stopped until a restart",
                  task.get_name(), exc_info=exc)
