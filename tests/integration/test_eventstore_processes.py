"""Concurrency across processes: writers racing, a subscriber that must miss nothing."""

from __future__ import annotations

import asyncio
import json
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import asyncpg

from eventstore import LOG_START, NewEvent, Subscription
from eventstore.postgres import PostgresEventStore, StoreSettings

WRITERS = 4
APPENDS_PER_WRITER = 500


async def spawn_writer(dsn: str, worker: int, out: Path) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.integration.procs.writer", dsn, str(worker), str(APPENDS_PER_WRITER), str(out)
    )


async def test_subscriber_sees_every_committed_event_exactly_once(pg_store: PostgresEventStore, database_url: str, tmp_path: Path) -> None:
    delivered: list[Any] = []

    async def handle(events: Any) -> None:
        delivered.extend(events)

    sub = Subscription(pg_store, "proof", handle, batch_size=50, poll_interval_s=0.2)
    follower = asyncio.create_task(sub.run())
    outs = [tmp_path / f"w{i}.jsonl" for i in range(WRITERS)]
    writers = [await spawn_writer(database_url, i, outs[i]) for i in range(WRITERS)]
    assert [await w.wait() for w in writers] == [0] * WRITERS

    reported = [json.loads(line) for out in outs for line in out.read_text().splitlines()]
    stored = await pg_store.pool.fetchval("SELECT count(*) FROM events")
    for _ in range(200):  # until the subscriber has caught up (at most ~10 s)
        if len(delivered) >= stored:
            break
        await asyncio.sleep(0.05)
    sub.stop()
    await follower

    ids = [str(e.event_id) for e in delivered]
    assert len(ids) == len(set(ids)), "an event was delivered twice"
    assert len(ids) == stored, f"delivered {len(ids)} of {stored} stored events"
    missing = {i for r in reported for i in r["ids"]} - set(ids)
    assert not missing, f"{len(missing)} events reported as appended were never delivered"
    by_stream: dict[str, list[int]] = defaultdict(list)
    for event in delivered:
        by_stream[event.stream_id].append(event.version)
    for stream, versions in by_stream.items():
        assert versions == list(range(1, len(versions) + 1)), f"{stream} delivered out of order: {versions}"
    assert len(reported) > WRITERS * APPENDS_PER_WRITER * 0.6  # most appends succeeded
    shared = [s for s in by_stream if s.startswith("agent-")]
    assert shared and max(len(by_stream[s]) for s in shared) > 50  # the writers really contended


async def test_reader_waits_behind_an_uncommitted_older_transaction(pg_store: PostgresEventStore, database_url: str) -> None:
    """A slow transaction holds position p; a later one commits p+1 first. The log must not
    hand out p+1 until p is committed, and then must hand out both, p first."""
    slow = await asyncpg.connect(database_url)
    try:
        tx = slow.transaction()
        await tx.start()
        slow_position = await slow.fetchval(
            "INSERT INTO events (domain, category, stream_id, version, event_id, type, data, metadata) "
            "VALUES ('default', 'contact', 'contact-default:slow', 1, gen_random_uuid(), 'Slow', '{}', '{}') "
            "RETURNING position"
        )
        fast = await pg_store.append("contact-default:fast", [NewEvent("Fast", {})], 0)
        assert fast.positions[0] > slow_position
        assert await pg_store.read_log(LOG_START) == []
        assert await pg_store.blocked_by_horizon()
        assert await pg_store.read_log_window(LOG_START) == ([], True)
        await tx.commit()
    finally:
        await slow.close()
    log = await pg_store.read_log(LOG_START)
    assert [e.type for e in log] == ["Slow", "Fast"]
    assert not await pg_store.blocked_by_horizon()
    window, blocked = await pg_store.read_log_window(LOG_START)
    assert (window, blocked) == (log, False)
    assert await pg_store.read_log_window(log[0].cursor, category="contact") == ([log[1]], False)


async def test_catch_up_waits_for_events_held_behind_an_older_transaction(
        pg_store: PostgresEventStore, database_url: str) -> None:
    """catch_up() delivers every event committed before the call, also one that the horizon
    still hides because an older transaction runs (until it ends, within the timeout)."""
    slow = await asyncpg.connect(database_url)
    try:
        tx = slow.transaction()
        await tx.start()
        await slow.execute("SELECT pg_current_xact_id()")  # takes a transaction id: holds the horizon
        await pg_store.append("contact-default:fast", [NewEvent("Fast", {})], 0)
        seen: list[str] = []

        async def handle(events: Any) -> None:
            seen.extend(e.type for e in events)

        catching_up = asyncio.create_task(Subscription(pg_store, "held", handle).catch_up())
        await asyncio.sleep(0.3)
        assert not catching_up.done() and seen == []  # held back, and waiting rather than giving up
        await tx.commit()
        assert await asyncio.wait_for(catching_up, 5) == 1
        assert seen == ["Fast"]
    finally:
        await slow.close()


async def test_conflicting_writers_in_separate_processes(pg_store: PostgresEventStore, database_url: str) -> None:
    """Two stores (separate pools and batchers) race on one stream with the same expected version."""
    other = await PostgresEventStore.connect(database_url, StoreSettings(pool_min_size=1, pool_max_size=2))
    try:
        await pg_store.append("contact-default:race", [NewEvent("Start", {})], 0)
        attempts = [s.append("contact-default:race", [NewEvent("Next", {"n": n})], 1)
                    for n in range(10) for s in (pg_store, other)]
        outcomes = await asyncio.gather(*attempts, return_exceptions=True)
        assert sum(not isinstance(o, Exception) for o in outcomes) == 1
        assert [e.version for e in await pg_store.read_stream("contact-default:race")] == [1, 2]
        dup = [NewEvent("Dup", {})]
        same = await asyncio.gather(*(s.append("contact-default:dup", dup, 0) for s in (pg_store, other) * 5))
        assert len({r.positions for r in same}) == 1
        assert await pg_store.stream_version("contact-default:dup") == 1
    finally:
        await other.close()
