"""NOTIFY between stores: another store's commits wake this one's subscribers; this store's
own NOTIFYs are skipped (its subscribers were woken at the commit), and NOTIFYs are paced."""

from __future__ import annotations

import asyncio
import uuid

from eventstore import NO_STREAM, NewEvent
from eventstore.postgres import PostgresEventStore, StoreSettings


def _stream() -> str:
    return f"contact-test:{uuid.uuid4().hex}"


async def test_another_stores_commit_wakes_this_one(pg_store: PostgresEventStore, database_url: str) -> None:
    other = await PostgresEventStore.connect(database_url, StoreSettings(pool_min_size=1, pool_max_size=2))
    try:
        await pg_store.wait_for_append(0)  # listening now
        waiting = asyncio.create_task(pg_store.wait_for_append(10))
        await asyncio.sleep(0.05)
        await other.append(_stream(), [NewEvent("Arrived", {})], NO_STREAM)
        await asyncio.wait_for(waiting, 3)  # woken by the other store's NOTIFY, not the 10 s timeout
    finally:
        await other.close()


async def test_a_stores_own_notify_does_not_wake_it_again(pg_store: PostgresEventStore) -> None:
    loop = asyncio.get_running_loop()
    await pg_store.wait_for_append(0)  # listening now
    await pg_store.append(_stream(), [NewEvent("Arrived", {})], NO_STREAM)
    await pg_store.wait_for_append(1)  # the direct wake at the commit, returned at once
    await asyncio.sleep(0.3)  # our NOTIFY has come back on the listening connection by now
    started = loop.time()
    await pg_store.wait_for_append(0.3)
    assert loop.time() - started >= 0.25  # nothing new: a second wake would mean an empty read


async def test_notifies_are_paced_under_a_stream_of_commits(database_url: str) -> None:
    store = await PostgresEventStore.connect(database_url, StoreSettings(pool_min_size=1, pool_max_size=4,
                                                                         notify_interval_s=0.05))
    sent = 0
    pool = store._notifier._pool

    class CountingPool:  # the notifier's pool, counting its NOTIFYs
        async def execute(self, query: str, *args: object) -> str:
            nonlocal sent
            sent += "pg_notify" in query
            return str(await pool.execute(query, *args))

    store._notifier._pool = CountingPool()  # type: ignore[assignment]
    try:
        started = asyncio.get_running_loop().time()
        for _ in range(40):
            await store.append(_stream(), [NewEvent("Arrived", {})], NO_STREAM)
        await asyncio.sleep(0.1)  # the last, paced NOTIFY goes out
        elapsed = asyncio.get_running_loop().time() - started
        assert 1 <= sent <= elapsed / 0.05 + 2  # at most one per interval, and at least one
    finally:
        await store.close()
