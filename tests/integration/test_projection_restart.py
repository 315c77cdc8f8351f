"""Exactly-once read models: a projection killed with SIGKILL resumes without gaps or repeats."""

from __future__ import annotations

import asyncio
import random
import signal
import sys

from eventstore import NewEvent
from eventstore.postgres import PostgresEventStore
from eventstore.subscription import ProjectionRunner
from tests.integration.procs.projector import Projected

EVENTS = 3000


async def fill(store: PostgresEventStore) -> None:
    await store.pool.execute(
        "CREATE TABLE IF NOT EXISTS projected (event_id uuid PRIMARY KEY, stream_id text, version int)"
    )
    appends = [store.append(f"contact-default:k{i}", [NewEvent("E", {"i": i}) for _ in range(3)], 0) for i in range(EVENTS // 3)]
    await asyncio.gather(*appends)


async def run_projector(dsn: str, kill_after_s: float | None) -> int:
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "tests.integration.procs.projector", dsn)
    if kill_after_s is None:
        return await proc.wait()
    try:
        return await asyncio.wait_for(proc.wait(), kill_after_s)
    except TimeoutError:
        proc.send_signal(signal.SIGKILL)
        return await proc.wait()


async def test_projection_survives_kill_9(pg_store: PostgresEventStore, database_url: str) -> None:
    await fill(pg_store)
    rng = random.Random(7)
    killed = 0
    for _ in range(5):
        code = await run_projector(database_url, rng.uniform(0.4, 0.9))
        killed += code == -signal.SIGKILL
        progress = await pg_store.pool.fetchval("SELECT count(*) FROM projected")
        assert progress < EVENTS or code == 0
    assert killed >= 3, "the kills should land mid-run"
    assert await run_projector(database_url, None) == 0  # a repeat would have crashed it
    assert await pg_store.pool.fetchval("SELECT count(*) FROM projected") == EVENTS
    missing = await pg_store.pool.fetchval(
        "SELECT count(*) FROM events e LEFT JOIN projected p USING (event_id) WHERE p.event_id IS NULL"
    )
    assert missing == 0


async def test_rebuild_from_zero(pg_store: PostgresEventStore) -> None:
    await fill(pg_store)
    runner = ProjectionRunner(pg_store, Projected(), batch_size=500)
    assert await runner.catch_up() == EVENTS
    await pg_store.pool.execute("DELETE FROM projected WHERE version = 2")  # the read model is damaged
    assert await runner.rebuild() == EVENTS
    assert await pg_store.pool.fetchval("SELECT count(*) FROM projected") == EVENTS
