"""The store's queries stay index lookups however small the log was when they were planned.

asyncpg prepares statements and PostgreSQL keeps a generic plan per connection after five
runs; planned on a near-empty table that plan may be a sequential scan, which then reads
the whole log on every later call. PostgreSQL counts sequential scans per table, so the
test runs every store operation often enough to fix its plan, and asserts that none of
them scanned `events`.
"""

from __future__ import annotations

import asyncio

import asyncpg

from eventstore import ANY, LogCursor, NewEvent, StreamAppend
from eventstore.postgres import PostgresEventStore, StoreSettings
from tests.conftest import reset_database

SCANS = """
SELECT coalesce(sum(seq_scan), 0) AS seq, coalesce(sum(idx_scan), 0) AS idx
  FROM pg_stat_user_tables WHERE relname LIKE 'events%'
"""


async def scans(dsn: str) -> tuple[int, int]:
    conn = await asyncpg.connect(dsn)
    try:
        row = await conn.fetchrow(SCANS)
        return int(row["seq"]), int(row["idx"])
    finally:
        await conn.close()


async def exercise(store: PostgresEventStore, rounds: int) -> None:
    for i in range(rounds):
        stream = f"contact-default:plan{i}"
        event = NewEvent("ContactArrived", {"i": i})
        await store.append(stream, [event], 0)
        await store.append(stream, [event], 0)  # an idempotent repeat takes the id lookup
        await store.append_many([StreamAppend(stream, [NewEvent("Noted", {})], 1),
                                 StreamAppend("epoch-default:router", [], ANY)])
        await store.read_stream(stream)
        await store.stream_version(stream)
        await store.read_log(LogCursor(), 10)
        await store.read_log(LogCursor(), 10, category="contact")
        await store.blocked_by_horizon()
        await store.read_log_window(LogCursor(), 10)
        await store.read_log_window(LogCursor(), 10, category="contact")
        await store.save_checkpoint("plans", LogCursor(1, i))
        await store.load_checkpoint("plans")


async def test_no_store_query_scans_the_log(database_url: str) -> None:
    await reset_database(database_url)
    # One connection, so every statement runs on it often enough to get its generic plan.
    store = await PostgresEventStore.connect(database_url, StoreSettings(pool_min_size=1, pool_max_size=1))
    before_seq, before_idx = await scans(database_url)
    try:
        await exercise(store, 12)
    finally:
        await store.close()  # closing ends the backends, which writes out their statistics
    for _ in range(50):
        seq, idx = await scans(database_url)
        if idx > before_idx:
            break
        await asyncio.sleep(0.1)
    assert idx > before_idx, "the statistics never arrived; the test proves nothing"
    assert seq == before_seq, f"{seq - before_seq} sequential scans of the events table"
