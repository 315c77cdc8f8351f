"""Leadership on a real PostgreSQL: one leader per domain, a hand-over when it stops or loses its
session, and log lines an operator can read (a routine stop is not a warning)."""

from __future__ import annotations

import asyncio
import logging
import uuid

import asyncpg
import pytest

from eventstore import StoreUnavailableError
from router.leader import Leadership


class Seat:
    """One contender: its Leadership, its task, and what it was told. `failing` elections
    fail first (as the election's first append does while the database restarts)."""

    def __init__(self, dsn: str, domain: str, *, failing: int = 0) -> None:
        self.leadership = Leadership(dsn, domain, retry_s=0.05, ping_s=0.05)
        self.elected = asyncio.Event()
        self.lost = asyncio.Event()
        self.failing = failing
        self.tries = 0
        self.task = asyncio.create_task(self.leadership.run(self._on_elected, self._on_lost))

    async def _on_elected(self) -> None:
        self.tries += 1
        if self.tries <= self.failing:
            raise StoreUnavailableError("the database is unavailable: connection was closed in the middle of operation")
        self.elected.set()

    async def _on_lost(self) -> None:
        self.lost.set()

    async def stop(self) -> None:
        self.leadership.stop()
        await asyncio.wait_for(self.task, 5)


async def _lock_holders(dsn: str) -> list[int]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch("SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted "
                                "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())")
        return [r["pid"] for r in rows]
    finally:
        await conn.close()


async def test_one_leader_and_a_quiet_hand_over_when_it_stops(database_url: str,
                                                              caplog: pytest.LogCaptureFixture) -> None:
    domain = f"lead-{uuid.uuid4().hex[:8]}"
    first = Seat(database_url, domain)
    await asyncio.wait_for(first.elected.wait(), 5)
    second = Seat(database_url, domain)
    await asyncio.sleep(0.3)  # several of the standby's tries
    assert first.leadership.is_leader and not second.leadership.is_leader
    assert not second.elected.is_set()

    with caplog.at_level(logging.INFO, logger="router.leader"):
        await first.stop()
        await asyncio.wait_for(second.elected.wait(), 5)
    assert first.lost.is_set() and second.leadership.is_leader
    stepped = [r for r in caplog.records if "stepped down" in r.getMessage()]
    assert stepped and all(r.levelno == logging.INFO for r in stepped)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    await second.stop()


async def test_a_leader_whose_session_is_killed_says_so_and_one_leads_again(
        database_url: str, caplog: pytest.LogCaptureFixture) -> None:
    domain = f"lead-{uuid.uuid4().hex[:8]}"
    first = Seat(database_url, domain)
    await asyncio.wait_for(first.elected.wait(), 5)
    second = Seat(database_url, domain)
    await asyncio.sleep(0.2)
    holders = await _lock_holders(database_url)
    assert len(holders) == 1

    with caplog.at_level(logging.INFO, logger="router.leader"):
        conn = await asyncpg.connect(database_url)
        try:
            assert await conn.fetchval("SELECT pg_terminate_backend($1)", holders[0])
        finally:
            await conn.close()
        await asyncio.wait_for(first.lost.wait(), 5)
        # Either may win the free lock (the old leader reconnects as a standby): exactly one does.
        for _ in range(100):
            if first.leadership.is_leader or second.leadership.is_leader:
                break
            await asyncio.sleep(0.05)
    assert [r for r in caplog.records if r.levelno == logging.WARNING and "no longer leader" in r.getMessage()]
    assert first.leadership.is_leader != second.leadership.is_leader
    assert len(await _lock_holders(database_url)) == 1
    await first.stop()
    await second.stop()


async def test_a_take_over_that_fails_steps_down_and_tries_again(database_url: str,
                                                                 caplog: pytest.LogCaptureFixture) -> None:
    # The election's first append failing (a database restart leaves the pool's connections
    # dead) ended the contention for good: the instance never routed again, lease gone.
    domain = f"lead-{uuid.uuid4().hex[:8]}"
    with caplog.at_level(logging.INFO, logger="router.leader"):
        seat = Seat(database_url, domain, failing=2)
        await asyncio.wait_for(seat.elected.wait(), 5)
    assert seat.tries == 3 and seat.leadership.is_leader and not seat.task.done()
    assert seat.lost.is_set()  # each failed take-over was undone
    tries = [r for r in caplog.records if "could not take up routing" in r.getMessage()]
    assert len(tries) == 2 and all(r.levelno == logging.WARNING and not r.exc_info for r in tries)
    assert len(await _lock_holders(database_url)) == 1
    await seat.stop()


async def test_a_standby_leads_while_the_elected_one_cannot_take_up_routing(database_url: str) -> None:
    domain = f"lead-{uuid.uuid4().hex[:8]}"
    broken = Seat(database_url, domain, failing=1_000_000)
    for _ in range(100):
        if broken.tries:
            break
        await asyncio.sleep(0.02)
    healthy = Seat(database_url, domain)
    await asyncio.wait_for(healthy.elected.wait(), 5)  # the lock was given back between tries
    assert healthy.leadership.is_leader and not broken.task.done()
    await broken.stop()
    await healthy.stop()
