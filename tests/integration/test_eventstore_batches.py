"""Appends batched together stay each caller's own: found by an audit of the group commit.

Every test sends its appends concurrently (`gather`), so the PostgreSQL store merges them
into one batch, one statement; the memory store takes them one by one. Both must give
each caller the answer it would get alone.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import pytest

from eventstore import (
    ANY,
    LOG_START,
    NO_STREAM,
    ConcurrencyError,
    InvalidAppendError,
    InvalidArgumentError,
    LogCursor,
    NewEvent,
    StreamAppend,
)
from eventstore.postgres import STREAM_LOCK_CLASS, PostgresEventStore, StoreSettings, lock_key
from eventstore.subscription import ProjectionRunner
from tests.conftest import reset_database


def ev(event_id: uuid.UUID | None = None, **data: Any) -> NewEvent:
    return NewEvent("ContactArrived", data or {"n": 1}, {"actor": "test"}, event_id=event_id or uuid.uuid4())


def stream(key: str, domain: str = "default") -> str:
    return f"contact-{domain}:{key}"


async def outcomes(*calls: Any) -> list[Any]:
    return list(await asyncio.gather(*calls, return_exceptions=True))


@asynccontextmanager
async def queued_in_one_batch(database_url: str) -> AsyncIterator[tuple[PostgresEventStore, Any]]:
    """A store that sends one batch at a time, its one slot held by an append waiting for a
    lock another session holds: appends made meanwhile queue up, and go out together (as far
    as their keys allow) once `release()` is awaited."""
    await reset_database(database_url)
    store = await PostgresEventStore.connect(
        database_url, StoreSettings(pool_min_size=1, pool_max_size=4, max_inflight_batches=1))
    holder = await asyncpg.connect(database_url)
    await holder.execute("SELECT pg_advisory_lock($1, $2)", STREAM_LOCK_CLASS, lock_key(stream("busy")))
    busy = asyncio.create_task(store.append(stream("busy"), [ev()], NO_STREAM))
    await asyncio.sleep(0.1)  # sent, and waiting for the lock

    async def release() -> None:
        await asyncio.sleep(0.05)  # let the appends under test queue
        await holder.execute("SELECT pg_advisory_unlock_all()")
        assert (await busy).versions == (1,)

    try:
        yield store, release
    finally:
        await holder.close()
        await store.close()


async def test_an_id_refused_in_one_append_is_not_taken_for_another_appends_write(database_url: str) -> None:
    async with queued_in_one_batch(database_url) as (store, release):
        shared = uuid.uuid4()
        calls = [asyncio.create_task(store.append(stream("s1"), [ev(shared)], 1)),
                 asyncio.create_task(store.append(stream("s2"), [ev(shared)], NO_STREAM))]
        await release()
        refused, stored = await outcomes(*calls)
    # s1 has no version 1, so the first is refused; before, it got the other append's row
    # as its own result (the two shared a batch, and rows were matched by event id).
    assert isinstance(refused, ConcurrencyError)
    assert stored.stream_id == stream("s2") and stored.versions == (1,)


async def test_every_caller_hears_its_own_answer_when_two_appends_share_an_id(database_url: str) -> None:
    async with queued_in_one_batch(database_url) as (store, release):
        shared = uuid.uuid4()
        calls = [asyncio.create_task(store.append(stream("s3"), [ev()], NO_STREAM)),
                 asyncio.create_task(store.append(stream("s1"), [ev(shared), ev()], 1)),
                 asyncio.create_task(store.append(stream("s4"), [ev(shared)], NO_STREAM)),
                 asyncio.create_task(store.append(stream("s5"), [ev()], NO_STREAM))]
        await release()
        answers = await outcomes(*calls)
        # Before: all four got a KeyError, though three of them were stored.
        assert isinstance(answers[1], ConcurrencyError)
        for key, answer in zip(("s3", "s4", "s5"), (answers[0], answers[2], answers[3])):
            assert answer.stream_id == stream(key) and answer.versions == (1,)
            assert await store.stream_version(stream(key)) == 1


@pytest.mark.parametrize("bad", [
    {"data": {"a": "text with a NUL \x00 inside"}},
    {"data": {"key\x00": 1}},
    {"metadata": {"actor": "test", "note": ["\x00"]}},
    {"expected": 2**31},
    {"expected": 2**70},
])
async def test_a_bad_append_fails_alone_and_stores_nothing(store: Any, bad: dict[str, Any]) -> None:
    event = NewEvent("ContactArrived", bad.get("data", {"n": 1}), bad.get("metadata", {"actor": "test"}))
    answers = await outcomes(*(store.append(stream(f"good{i}"), [ev()], NO_STREAM) for i in range(5)),
                             store.append(stream("bad"), [event], bad.get("expected", ANY)),
                             *(store.append(stream(f"good{i}"), [ev()], NO_STREAM) for i in range(5, 10)))
    # Before: PostgreSQL refused the batch's statement and all eleven callers got its error.
    assert isinstance(answers[5], InvalidAppendError)
    assert all(a.versions == (1,) for a in answers[:5] + answers[6:])
    assert await store.stream_version(stream("bad")) == 0


async def test_a_value_the_database_refuses_fails_only_its_own_append(pg_store: PostgresEventStore) -> None:
    # A refusal the store's own checks do not foresee: a trigger stands in for any rule the
    # database may hold (a check constraint added by an operator, an encoding limit).
    await pg_store.pool.execute("""
        CREATE FUNCTION refuse_poison() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF NEW.type = 'Poison' THEN RAISE EXCEPTION 'poison' USING ERRCODE = '22023'; END IF;
            RETURN NEW;
        END $$""")
    await pg_store.pool.execute(
        "CREATE TRIGGER refuse_poison BEFORE INSERT ON events FOR EACH ROW EXECUTE FUNCTION refuse_poison()")
    try:
        poison = NewEvent("Poison", {"n": 1})
        answers = await outcomes(*(pg_store.append(stream(f"g{i}"), [ev()], NO_STREAM) for i in range(4)),
                                 pg_store.append(stream("poisoned"), [poison], NO_STREAM),
                                 *(pg_store.append(stream(f"g{i}"), [ev()], NO_STREAM) for i in range(4, 8)))
        assert isinstance(answers[4], InvalidAppendError) and answers[4].field == "events"
        assert all(a.versions == (1,) for a in answers[:4] + answers[5:])
        assert await pg_store.stream_version(stream("poisoned")) == 0
    finally:
        await pg_store.pool.execute("DROP TRIGGER refuse_poison ON events")
        await pg_store.pool.execute("DROP FUNCTION refuse_poison")


async def test_a_version_check_behind_a_write_of_its_stream_sees_the_write(database_url: str) -> None:
    fence = "leader-default:d"
    async with queued_in_one_batch(database_url) as (store, release):
        calls = [asyncio.create_task(store.append(fence, [ev()], NO_STREAM)),
                 asyncio.create_task(store.append_many([StreamAppend(fence, [], NO_STREAM),
                                                        StreamAppend(stream("decision"), [ev()], ANY)]))]
        await release()
        bump, stale = await outcomes(*calls)
        # Before: the check read the fence's version as of before the batch, so a decision
        # fenced by the old epoch was stored after the epoch moved on.
        assert bump.versions == (1,)
        assert isinstance(stale, ConcurrencyError)
        assert await store.stream_version(stream("decision")) == 0


async def test_version_checks_ahead_of_a_write_still_share_its_batch(database_url: str) -> None:
    fence = "leader-default:d"
    async with queued_in_one_batch(database_url) as (store, release):
        calls = [asyncio.create_task(store.append_many([StreamAppend(fence, [], NO_STREAM),
                                                        StreamAppend(stream(f"d{i}"), [ev()], ANY)]))
                 for i in range(5)]
        calls.append(asyncio.create_task(store.append(fence, [ev()], NO_STREAM)))
        await release()
        answers = await outcomes(*calls)
        transactions = await store.pool.fetchval("SELECT count(DISTINCT tx_id) FROM events")
    assert all(a[1].versions == (1,) for a in answers[:5])  # checked before the write
    assert answers[5].versions == (1,)
    assert transactions == 2  # the held append's, then one for all six


async def test_event_ids_are_unique_per_routing_domain(store: Any) -> None:
    shared = uuid.uuid4()
    await store.append(stream("k", "default"), [ev(shared)], NO_STREAM)
    result = await store.append(stream("k", "other"), [ev(shared)], NO_STREAM)
    assert result.versions == (1,) and not result.duplicate


async def test_read_arguments_out_of_range_are_refused_alike(store: Any) -> None:
    await store.append(stream("r"), [ev(), ev()], NO_STREAM)
    for call in (lambda: store.read_stream(stream("r"), limit=-1),
                 lambda: store.read_stream(stream("r"), from_version=-1),
                 lambda: store.read_log(LOG_START, -1),
                 lambda: store.read_log(LogCursor(-1, -1)),
                 lambda: store.read_log(LogCursor(0, 2**63)),
                 lambda: store.save_checkpoint("c", LogCursor(-1, 0))):
        with pytest.raises(InvalidArgumentError):
            await call()
    assert await store.read_log(LOG_START, 0) == []
    assert await store.read_stream(stream("r"), limit=0) == []
    assert await store.read_stream(stream("r"), from_version=2**31) == []
    assert len(await store.read_stream(stream("r"), from_version=0)) == 2


async def test_an_append_whose_caller_gives_up_is_written_all_the_same(database_url: str) -> None:
    # The store's rule (eventstore/batcher.py): once submitted, an append is written, and a
    # caller cancelled meanwhile learns the outcome as after a lost connection, by sending
    # it again. A desk closing records its disconnection this way, cancelled with its socket.
    async with queued_in_one_batch(database_url) as (store, release):
        given_up = ev()
        queued = asyncio.create_task(store.append(stream("given-up"), [given_up], NO_STREAM))
        await asyncio.sleep(0.05)
        queued.cancel()
        with pytest.raises(asyncio.CancelledError):
            await queued
        await release()
        again = await store.append(stream("given-up"), [given_up], NO_STREAM)
        assert again.versions == (1,) and again.duplicate


class _DropsItsConnectionOnce:
    """A projection whose first write loses the connection (its backend is terminated)."""

    name = "drops-once"
    category = None

    def __init__(self) -> None:
        self.dropped = False
        self.applied = 0

    async def apply(self, conn: Any, events: Any) -> None:
        if not self.dropped:
            self.dropped = True
            await conn.execute("SELECT pg_terminate_backend(pg_backend_pid())")
        self.applied += len(events)

    async def reset(self, conn: Any) -> None:
        self.applied = 0


async def test_a_projection_waits_out_a_lost_connection(pg_store: PostgresEventStore) -> None:
    await asyncio.gather(*(pg_store.append(stream(f"p{i}"), [ev()], NO_STREAM) for i in range(5)))
    projection = _DropsItsConnectionOnce()
    runner = ProjectionRunner(pg_store, projection)
    runner.subscription._retry_s = 0.05
    task = asyncio.create_task(runner.run())
    for _ in range(200):
        if projection.applied >= 5:
            break
        await asyncio.sleep(0.05)
    runner.stop()
    await task  # before: run() ended with asyncpg's InterfaceError and nothing applied
    assert projection.dropped and projection.applied == 5


async def test_a_database_closed_to_connections_is_unavailable_not_a_crash(database_url: str) -> None:
    # Before: SQLSTATE 55000 ("not currently accepting connections", e.g. during maintenance)
    # was not taken for unavailability: gateways got 500s and the log follower died.
    from eventstore import StoreUnavailableError

    name = f"cr_closed_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(database_url)
    try:
        await admin.execute(f"CREATE DATABASE {name}")
        await admin.execute(f"ALTER DATABASE {name} ALLOW_CONNECTIONS false")
        closed = urlsplit(database_url)._replace(path=f"/{name}").geturl()
        with pytest.raises(StoreUnavailableError, match="55000"):
            await PostgresEventStore.connect(closed, StoreSettings(pool_min_size=1, pool_max_size=1))
        with pytest.raises(StoreUnavailableError, match="3D000"):
            await PostgresEventStore.connect(urlsplit(database_url)._replace(path="/cr_no_such_database").geturl(),
                                             StoreSettings(pool_min_size=1, pool_max_size=1))
    finally:
        await admin.execute(f"DROP DATABASE IF EXISTS {name}")
        await admin.close()
