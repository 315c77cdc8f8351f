"""Leadership on a real PostgreSQL: one leader per domain, a hand-over when it stops or loses its
session, and log lines an operator can read (a routine stop is not a warning)."""

from __future__ import annotations

import asyncio
import logging
import uuid

import asyncpg
import pytest

from router.leader import Leadership


class Seat:
    """One contender: its Leadership, its task, and what it was told."""

    def __init__(self, dsn: str, domain: str) -> None:
        self.leadership = Leadership(dsn, domain, retry_s=0.05, ping_s=0.05)
        self.elected = asyncio.Event()
        self.lost = asyncio.Event()
        self.task = asyncio.create_task(self.leadership.run(self._on_elected, self._on_lost))

    async def _on_elected(self) -> None:
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
