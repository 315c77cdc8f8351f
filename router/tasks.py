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


def supervised(coro: Coroutine[Any, Any, T], name: str) -> asyncio.Task[T]:
    """`asyncio.create_task`, and an error logged (with the traceback) if the task ends
    with an exception; cancellation and a normal end are quiet."""
    task = asyncio.create_task(coro, name=name)
    task.add_done_callback(_report_end)
    return task


def _report_end(task: asyncio.Task[Any]) -> None:
    if task.cancelled():
        return
    exc = task.exception()
    if exc is not None:
        log.error("background task %s stopped by an error; what it ran is stopped until a restart",
                  task.get_name(), exc_info=exc)
