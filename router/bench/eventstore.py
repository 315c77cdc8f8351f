"""The event store benchmark: the store's real append path against a raw-insert ceiling
and the `eventsourcing` library's PostgreSQL recorder, on one database, in one run."""

from __future__ import annotations

import asyncio
import statistics
import time
import uuid
from collections.abc import Sequence
from typing import Any

import asyncpg
import orjson

from eventstore import NO_STREAM, LogCursor, NewEvent, RecordedEvent, Subscription
from eventstore.postgres import PostgresEventStore, StoreSettings, init_connection

from . import median_of, progress


def payload(i: int) -> dict[str, Any]:
    """About 250 bytes of JSON, shaped like a contact arrival."""
    return {
        "channel": "phone", "segment": "mass", "language": "zh", "needs": ["elderly"],
        "intent": "credit_card", "customer_id": f"c-{i:08d}", "caller": "+86138****1234",
        "dialled_line": "main", "repeat_count": 1, "queue_hint": "general", "seq": i,
        "note": "x" * 40,
    }


PAYLOAD_BYTES = len(orjson.dumps(payload(0)))


async def _appenders(store: PostgresEventStore, writers: int, per_call: int, seconds: float,
                     on_commit: Any = None) -> float:
    deadline = time.perf_counter() + seconds
    counts = [0] * writers

    async def writer(w: int) -> None:
        while time.perf_counter() < deadline:
            events = [NewEvent("ContactArrived", payload(counts[w] + k)) for k in range(per_call)]
            await store.append(f"contact-bench:{uuid.uuid4().hex}", events, NO_STREAM)
            if on_commit is not None:
                on_commit(events, time.perf_counter())
            counts[w] += per_call

    started = time.perf_counter()
    await asyncio.gather(*(writer(w) for w in range(writers)))
    return sum(counts) / (time.perf_counter() - started)


async def _raw_insert(dsn: str, seconds: float, connections: int = 8, rows: int = 100) -> float:
    """The ceiling: multi-row INSERT ... SELECT FROM unnest, no store logic at all."""
    conns = [await asyncpg.connect(dsn) for _ in range(connections)]
    for conn in conns:
        await init_connection(conn)
    sql = (
        "INSERT INTO events (domain, category, stream_id, version, event_id, type, data, metadata) "
        "SELECT 'bench', 'contact', s, 1, i, 'ContactArrived', d, m "
        "FROM unnest($1::text[], $2::uuid[], $3::jsonb[], $4::jsonb[]) AS u(s, i, d, m)"
    )
    deadline = time.perf_counter() + seconds
    counts = [0] * connections

    async def loop(c: int) -> None:
        while time.perf_counter() < deadline:
            ids = [uuid.uuid4() for _ in range(rows)]
            data = [orjson.dumps(payload(k)) for k in range(rows)]
            async with conns[c].transaction():
                await conns[c].execute(sql, [f"contact-bench:{i.hex}" for i in ids], ids, data, [b"{}"] * rows)
            counts[c] += rows

    started = time.perf_counter()
    await asyncio.gather(*(loop(c) for c in range(connections)))
    elapsed = time.perf_counter() - started
    for conn in conns:
        await conn.close()
    return sum(counts) / elapsed


def _eventsourcing_recorder(dsn: str, writers: int) -> Any:
    from urllib.parse import parse_qs, urlparse

    from eventsourcing.postgres import PostgresApplicationRecorder, PostgresDatastore

    url = urlparse(dsn)
    host = parse_qs(url.query).get("host", [url.hostname or "127.0.0.1"])[0]
    datastore = PostgresDatastore(
        dbname=url.path.lstrip("/"), host=host, port=url.port or 5432, user=url.username or "postgres",
        password=url.password or "", pool_size=writers,
    )
    recorder = PostgresApplicationRecorder(datastore, events_table_name="peer_events")
    recorder.create_table()
    return recorder


async def _peer(dsn: str, seconds: float, writers: int = 8) -> float:
    """The `eventsourcing` library's recorder, one event per call, from threads (it is sync)."""
    from eventsourcing.persistence import StoredEvent

    recorder = await asyncio.to_thread(_eventsourcing_recorder, dsn, writers)
    deadline = time.perf_counter() + seconds
    counts = [0] * writers

    def writer(w: int) -> None:
        while time.perf_counter() < deadline:
            state = orjson.dumps(payload(counts[w]))
            recorder.insert_events([StoredEvent(uuid.uuid4(), 1, "bench:ContactArrived", state)])
            counts[w] += 1

    started = time.perf_counter()
    await asyncio.gather(*(asyncio.to_thread(writer, w) for w in range(writers)))
    elapsed = time.perf_counter() - started
    recorder.datastore.close()
    return sum(counts) / elapsed


async def _lag_under_load(store: PostgresEventStore, seconds: float) -> tuple[float, float, float]:
    """256 appenders while a subscription follows the log; lag from commit to delivery."""
    committed: dict[uuid.UUID, float] = {}
    lags_ms: list[float] = []

    def on_commit(events: Sequence[NewEvent], at: float) -> None:
        for event in events:
            committed[event.event_id] = at

    async def handle(events: Sequence[RecordedEvent]) -> None:
        now = time.perf_counter()
        for event in events:
            at = committed.pop(event.event_id, None)
            if at is not None:
                lags_ms.append(max(0.0, now - at) * 1000)

    start = (await store.read_log(LogCursor(), 1))  # warm the connection pool
    del start
    tail = await store.pool.fetchrow("SELECT tx_id, position FROM events ORDER BY tx_id DESC, position DESC LIMIT 1")
    await store.save_checkpoint("bench-lag", LogCursor(tail["tx_id"], tail["position"]) if tail else LogCursor())
    sub = Subscription(store, "bench-lag", handle, batch_size=1000, poll_interval_s=0.1)
    follower = asyncio.create_task(sub.run())
    eps = await _appenders(store, 256, 1, seconds, on_commit)
    await asyncio.sleep(0.5)
    sub.stop()
    await follower
    quantiles = statistics.quantiles(lags_ms, n=100)
    return eps, quantiles[49], quantiles[98]


async def run(dsn: str, seconds: float, runs: int) -> dict[str, Any]:
    store = await PostgresEventStore.connect(dsn, StoreSettings(pool_min_size=4, pool_max_size=8))
    figures: dict[str, Any] = {"payload_bytes": PAYLOAD_BYTES}
    try:
        progress(f"event store benchmark: {runs} runs of {seconds:.0f} s each, medians reported")
        for name, writers, per_call in (("store_1x1_eps", 1, 1), ("store_8x1_eps", 8, 1),
                                        ("store_8x100_eps", 8, 100)):
            figures[name] = await median_of(name, lambda: _appenders(store, writers, per_call, seconds), runs)
        lag_runs = [await _lag_under_load(store, seconds) for _ in range(runs)]
        for i, (eps, p50, p99) in enumerate(lag_runs, 1):
            progress(f"  store_256x1_eps + subscriber: run {i}/{runs} -> {eps:,.1f} eps, lag p99 {p99:.2f} ms")
        figures["store_256x1_eps"] = statistics.median(r[0] for r in lag_runs)
        figures["subscriber_lag_p50_ms"] = statistics.median(r[1] for r in lag_runs)
        figures["subscriber_lag_p99_ms"] = statistics.median(r[2] for r in lag_runs)
        figures["raw_insert_eps"] = await median_of("raw_insert_eps", lambda: _raw_insert(dsn, seconds), runs)
        figures["peer_eventsourcing_8x1_eps"] = await median_of("peer_eventsourcing_8x1_eps", lambda: _peer(dsn, seconds), runs)
    finally:
        await store.close()
    figures["ratio_8x1_vs_peer"] = figures["store_8x1_eps"] / figures["peer_eventsourcing_8x1_eps"]
    figures["ratio_256x1_vs_raw"] = figures["store_256x1_eps"] / figures["raw_insert_eps"]
    figures["ratio_8x100_vs_raw"] = figures["store_8x100_eps"] / figures["raw_insert_eps"]
    return figures
