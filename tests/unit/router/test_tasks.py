"""A background task that dies says so; one cancelled or finished does not."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from router.tasks import supervised


async def test_a_task_ending_in_an_error_is_logged_with_its_name(caplog: Any) -> None:
    async def follower() -> None:
        raise RuntimeError("boom")

    async def quiet() -> None:
        await asyncio.sleep(10)

    with caplog.at_level(logging.ERROR, logger="router.tasks"):
        dead = supervised(follower(), "router-follow")
        cancelled = supervised(quiet(), "router-decide")
        finished = supervised(asyncio.sleep(0), "router-instances")
        await asyncio.gather(dead, finished, return_exceptions=True)
        cancelled.cancel()
        await asyncio.gather(cancelled, return_exceptions=True)
        await asyncio.sleep(0)  # done callbacks run on the next turn
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 1 and "router-follow" in messages[0]
    assert caplog.records[0].exc_info is not None
