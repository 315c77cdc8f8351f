"""The PostgreSQL event store (asyncpg), with group commit and gap-safe reads.

Log order, and why a subscriber never skips an event
----------------------------------------------------
Global positions come from a sequence when a row is inserted, but transactions
commit in another order: a transaction holding position 9 may still be running
when one holding position 10 commits. A reader asking for `position > 8` would see
10, move its checkpoint past 9, and lose 9 for ever when it commits.

So the log is read in (tx_id, position) order and only below the snapshot's xmin
horizon, `pg_snapshot_xmin(pg_current_snapshot())`: every transaction whose id is
below xmin has finished (committed or aborted), so the set of rows with
`tx_id < xmin` can never grow again. Reading that final set in (tx_id, position)
order with a (tx_id, position) cursor can therefore never skip a row.

That order keeps each stream in version order, and keeps causal order across
streams, because an append takes its stream locks *before* its transaction gets
an id: stream advisory locks do not assign a transaction id, and the INSERT is
the transaction's first write. A later append to the same stream (or any append
made after seeing an earlier one commit) thus always gets a larger tx_id.
"""

from __future__ import annotations

import asyncio
import logging
import random
import uuid
import zlib
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any, Final

import asyncpg
import orjson

from .appending import StoredId, Write, decide_group
from .batcher import GroupCommitter, Pending
from .errors import ConcurrencyError, DuplicateEventError, StoreUnavailableError
from .model import (
    DEFAULT_MAX_EVENT_BYTES,
    MAX_VERSION,
    AppendResult,
    Expected,
    ExpectedVersion,
    LogCursor,
    Snapshot,
    NewEvent,
    PreparedAppend,
    RecordedEvent,
    StreamAppend,
    check_cursor,
    check_from_version,
    check_limit,
    check_stream_ids,
    parse_stream_id,
    prepare_append,
    prepare_group,
)

Group = tuple[PreparedAppend, ...]  # the parts of one atomic append (usually one)
from .pgerrors import is_unique_violation, translate, translated
from .wakeup import Wakeup

log = logging.getLogger(__name__)

NOTIFY_CHANNEL: Final = "contact_router_events"
STREAM_LOCK_CLASS: Final = 0x5354  # first key of every stream advisory lock ("ST")
_MAX_BATCH_RETRIES: Final = 8

_COLUMNS = "event_id, stream_id, version, position, tx_id, type, data, metadata, recorded_at"

# One statement per batch (migration 0002): it takes the batch's stream locks in the
# order given (sorted here, so batches never wait on each other in a cycle), inserts each
# append whose ids are all new and whose stream is at the expected version, and returns
# what `decide` needs to classify every other append. A single statement is its own
# transaction, so this is one round trip, commit included.
_APPEND = "SELECT * FROM cr_append($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
_ANY_VERSION: Final = -1

_READ_LOG = f"""
SELECT {_COLUMNS} FROM events
 WHERE (tx_id, position) > ($1::xid8, $2::bigint)
   AND tx_id < (SELECT pg_snapshot_xmin(pg_current_snapshot()))
 ORDER BY tx_id, position
 LIMIT $3
"""

_READ_CATEGORY = f"""
SELECT {_COLUMNS} FROM events
 WHERE category = $4 AND (tx_id, position) > ($1::xid8, $2::bigint)
   AND tx_id < (SELECT pg_snapshot_xmin(pg_current_snapshot()))
 ORDER BY tx_id, position
 LIMIT $3
"""

# Committed rows that the horizon still holds back: an older transaction is running.
_BLOCKED = "SELECT EXISTS (SELECT 1 FROM events WHERE tx_id >= (SELECT pg_snapshot_xmin(pg_current_snapshot())))"

# The newest committed event in log order (an index probe from the end).
_LOG_HEAD = "SELECT tx_id, position FROM events ORDER BY tx_id DESC, position DESC LIMIT 1"

# A subscriber's read: the next rows below the horizon and, in the same round trip, whether
# committed rows wait behind it (one snapshot for both, so the answer fits the rows). At
# least one row comes back: with no events, a row of NULLs carries the flag.
_READ_WINDOW = """
WITH h AS MATERIALIZED (SELECT pg_snapshot_xmin(pg_current_snapshot()) AS xmin),
r AS (
    SELECT {columns} FROM events
     WHERE {category}(tx_id, position) > ($1::xid8, $2::bigint) AND tx_id < (SELECT xmin FROM h)
     ORDER BY tx_id, position
     LIMIT $3
)
SELECT r.*, EXISTS (SELECT 1 FROM events WHERE tx_id >= (SELECT xmin FROM h)) AS blocked
  FROM (SELECT 1) AS one LEFT JOIN r ON true
 ORDER BY r.tx_id, r.position
"""
_READ_LOG_WINDOW = _READ_WINDOW.format(columns=_COLUMNS, category="")
_READ_CATEGORY_WINDOW = _READ_WINDOW.format(columns=_COLUMNS, category="category = $4 AND ")


# Why sequential scans are off on the store's connections: asyncpg prepares every query,
# and after five runs PostgreSQL keeps a generic plan for the life of the connection. A
# plan made while `events` was small (a new database, a server started early in the day)
# may scan the table, and then every later call reads the whole log: measured, the
# horizon check took 20 ms at 100k events, and appends slowed down in step with the log.
# Every query of the store is meant to be an index probe or an index range, and no
# re-planning happens where autovacuum is off, so the plan must not depend on the
# table's size when first planned. (cr_append sets the same on itself, migration 0003.)
_SESSION_SETTINGS: Final = {"enable_seqscan": "off"}


def lock_key(stream_id: str) -> int:
    """A stable 32-bit key per stream, the same in every process (unlike hash())."""
    return zlib.crc32(stream_id.encode()) - 0x8000_0000


async def init_connection(conn: asyncpg.Connection) -> None:
    """jsonb travels as bytes: the store serialises once with orjson and sends them as-is."""
    await conn.set_type_codec(
        "jsonb",
        schema="pg_catalog",
        encoder=lambda value: b"\x01" + value,
        decoder=lambda value: orjson.loads(value[1:]),
        format="binary",
    )


async def _keep_session(conn: asyncpg.Connection) -> None:
    """Skip asyncpg's reset on release (a round trip per query): the store keeps no session
    state on pooled connections. LISTEN and the leader's lock have connections of their own,
    and transactions always end before a connection goes back."""


@dataclass(frozen=True, slots=True)
class StoreSettings:
    max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES
    pool_min_size: int = 2
    pool_max_size: int = 8
    # Several smaller batches in flight beat one big one: while the database works on one
    # batch, Python prepares the next (measured: 256 appenders, ~1.4x the events/s).
    # Two, not more: a subscriber reads only below the oldest running transaction, so
    # every batch in flight can hold back the others' committed rows, and more backends
    # compete for the database's CPU with the subscriber's read. Measured (bench
    # eventstore, alternating runs): 256 appenders at the same events/s with 2 as with 4,
    # and the subscriber's lag p99 from 26 ms to 11 ms.
    max_batch_events: int = 64
    max_inflight_batches: int = 2
    linger_s: float = 0.001
    # At most one NOTIFY (for subscribers in other processes) per this interval: one per
    # commit was a round trip per batch (~1 per routed contact). Other processes' subscribers
    # hear of a commit at most this much later; this process's own are woken directly.
    notify_interval_s: float = 0.005
    # Fault injection for tests: sleep up to this long before each commit, so that
    # transactions overlap and commit out of position order. Zero in production.
    test_commit_jitter_s: float = 0.0


class PostgresEventStore:
    def __init__(self, pool: asyncpg.Pool, settings: StoreSettings, dsn: str) -> None:
        self._pool = pool
        self._settings = settings
        self._committer: GroupCommitter[Group, list[AppendResult]] = GroupCommitter(
            self._flush,
            keys=_batch_keys,
            max_batch_events=settings.max_batch_events,
            max_inflight=settings.max_inflight_batches,
            linger_s=settings.linger_s,
        )
        # Our own NOTIFYs carry this store's token, so its listener can skip them: its
        # subscribers were woken directly at the commit (a second, empty read each, before).
        token = uuid.uuid4().hex
        self._notifier = _Notifier(pool, token, settings.notify_interval_s)
        self._listener = _Listener(dsn, token)

    @classmethod
    async def connect(cls, dsn: str, settings: StoreSettings | None = None) -> PostgresEventStore:
        settings = settings or StoreSettings()
        async with translated():
            pool = await asyncpg.create_pool(
                dsn, min_size=settings.pool_min_size, max_size=settings.pool_max_size, init=init_connection,
                reset=_keep_session, server_settings=_SESSION_SETTINGS,
            )
        return cls(pool, settings, dsn)

    @property
    def pool(self) -> asyncpg.Pool:
        return self._pool

    async def append(
        self, stream_id: str, events: Sequence[NewEvent], expected_version: Expected
    ) -> AppendResult:
        prepared = prepare_append(
            stream_id, events, expected_version, max_event_bytes=self._settings.max_event_bytes
        )
        return (await self._committer.submit((prepared,), len(prepared.events)))[0]

    async def append_many(self, appends: Sequence[StreamAppend]) -> list[AppendResult]:
        group = prepare_group(appends, max_event_bytes=self._settings.max_event_bytes)
        return await self._committer.submit(group, sum(len(a.events) for a in group))

    async def _flush(self, batch: Sequence[Pending[Group, list[AppendResult]]]) -> None:
        try:
            outcomes = await self._write_with_retries([p.item for p in batch], 2)
            # Subscribers in this process wake at once, and first: they resume before the
            # appenders settled below, so their next read is on its way while those run (the
            # NOTIFY, a round trip later, is for the other processes). Waking a subscriber
            # early is always safe: it only reads.
            self._listener.wake()
        except _BatchRefused:
            # The database refused the statement over one of its appends (a value it cannot
            # store, or a unique violation that came back every time), and a refused
            # statement stores nothing. Write the appends one by one, so that only the
            # append at fault hears of it and no innocent append in the batch is failed.
            for pending in batch:
                try:
                    outcome: object = (await self._write_with_retries([pending.item], _MAX_BATCH_RETRIES))[0]
                except Exception as exc:
                    outcome = exc
                _settle(pending.future, outcome)
            self._listener.wake()
        else:
            for pending, outcome in zip(batch, outcomes):
                _settle(pending.future, outcome)
        self._notifier.poke()

    async def _write_with_retries(self, groups: list[Group], attempts: int) -> list[object]:
        for attempt in range(attempts):
            try:
                return await self._write_batch(groups)
            except Exception as exc:
                mapped = translate(exc, appending=True)
                if isinstance(mapped, StoreUnavailableError):
                    raise mapped from exc  # the whole batch: every caller hears it and may retry
                if is_unique_violation(exc) and attempt + 1 < attempts:
                    # Another process stored one of our event ids in another stream between
                    # our check and our insert. Nothing of this batch was stored: run it
                    # again, and the check now sees the other row and fails only that append.
                    continue
                if len(groups) > 1:
                    raise _BatchRefused() from exc
                if mapped is None or mapped is exc:
                    raise
                raise mapped from exc
        raise AssertionError("unreachable: attempts must be at least 1")

    async def _write_batch(self, groups: list[Group]) -> list[object]:
        args = _append_args(groups, self._settings.test_commit_jitter_s)
        rows = await self._pool.fetch(_APPEND, *args)
        return _outcomes(groups, rows)

    async def read_stream(
        self, stream_id: str, from_version: int = 1, limit: int | None = None
    ) -> list[RecordedEvent]:
        name = parse_stream_id(stream_id)
        first = check_from_version(from_version)
        check_limit(limit, optional=True)
        if first > MAX_VERSION or limit == 0:
            return []  # no such version can be stored (and the parameter is a PostgreSQL integer)
        sql = (
            f"SELECT {_COLUMNS} FROM events WHERE domain = $1 AND stream_id = $2 AND version >= $3 "
            "ORDER BY version LIMIT $4"
        )
        async with translated():
            rows = await self._pool.fetch(sql, name.domain, stream_id, first, limit)
        return [_recorded(r) for r in rows]

    async def read_last_events(self, stream_ids: Sequence[str]) -> dict[str, RecordedEvent]:
        names = {n.stream_id: n for n in check_stream_ids(stream_ids)}
        if not names:
            return {}
        # One index probe per stream (domain, stream_id, version DESC): the newest row only.
        sql = (
            f"SELECT e.* FROM unnest($1::text[], $2::text[]) AS s(domain, stream_id) CROSS JOIN LATERAL "
            f"(SELECT {_COLUMNS} FROM events WHERE domain = s.domain AND stream_id = s.stream_id "
            "ORDER BY version DESC LIMIT 1) AS e"
        )
        async with translated():
            rows = await self._pool.fetch(sql, [n.domain for n in names.values()], list(names))
        return {r["stream_id"]: _recorded(r) for r in rows}

    async def stream_version(self, stream_id: str) -> int:
        name = parse_stream_id(stream_id)
        sql = "SELECT coalesce(max(version), 0) FROM events WHERE domain = $1 AND stream_id = $2"
        async with translated():
            return int(await self._pool.fetchval(sql, name.domain, stream_id))

    async def read_log(
        self, after: LogCursor, limit: int = 1000, category: str | None = None
    ) -> list[RecordedEvent]:
        rows = await self._fetch_log((_READ_LOG, _READ_CATEGORY), after, limit, category)
        return [_recorded(r) for r in rows]

    async def read_log_window(
        self, after: LogCursor, limit: int = 1000, category: str | None = None
    ) -> tuple[list[RecordedEvent], bool]:
        """`read_log`, and whether committed events wait behind an older running transaction
        (`blocked_by_horizon`), in one round trip: a subscriber asks both on every wake-up."""
        rows = await self._fetch_log((_READ_LOG_WINDOW, _READ_CATEGORY_WINDOW), after, limit, category)
        return [_recorded(r) for r in rows if r["event_id"] is not None], bool(rows[0]["blocked"])

    async def _fetch_log(self, queries: tuple[str, str], after: LogCursor, limit: int,
                         category: str | None) -> list[asyncpg.Record]:
        """Run the whole-log query, or the one-category query (`queries`, in that order)."""
        check_cursor(after)
        check_limit(limit)
        args: list[Any] = [after.tx_id, after.position, limit]
        sql = queries[0]
        if category is not None:
            sql, args = queries[1], [*args, category]
        async with translated():
            return list(await self._pool.fetch(sql, *args))

    async def log_head(self) -> LogCursor:
        async with translated():
            row = await self._pool.fetchrow(_LOG_HEAD)
        return LogCursor(row["tx_id"], row["position"]) if row else LogCursor()

    async def blocked_by_horizon(self) -> bool:
        """True when committed events wait behind a still-running older transaction."""
        async with translated():
            return bool(await self._pool.fetchval(_BLOCKED))

    async def wait_for_append(self, timeout_s: float, since: int | None = None) -> None:
        await self._listener.wait(timeout_s, since)

    def append_generation(self) -> int:
        return self._listener.generation

    def wake_waiters(self) -> None:
        self._listener.wake()

    async def load_checkpoint(self, name: str) -> LogCursor:
        async with translated():
            row = await self._pool.fetchrow("SELECT tx_id, position FROM checkpoints WHERE name = $1", name)
        return LogCursor(row["tx_id"], row["position"]) if row else LogCursor()

    async def save_checkpoint(self, name: str, cursor: LogCursor, conn: Any = None) -> None:
        sql = (
            "INSERT INTO checkpoints (name, tx_id, position) VALUES ($1, $2::xid8, $3) "
            "ON CONFLICT (name) DO UPDATE SET tx_id = EXCLUDED.tx_id, position = EXCLUDED.position, "
            "updated_at = now()"
        )
        check_cursor(cursor, "cursor")
        async with translated():
            await (conn or self._pool).execute(sql, name, cursor.tx_id, cursor.position)

    async def load_snapshot(self, name: str) -> Snapshot | None:
        async with translated():
            row = await self._pool.fetchrow("SELECT tx_id, position, version, body FROM snapshots WHERE name = $1", name)
        return Snapshot(LogCursor(row["tx_id"], row["position"]), row["version"], row["body"]) if row else None

    async def save_snapshot(self, name: str, snapshot: Snapshot) -> bool:
        # The WHERE makes concurrent writers (a standby, another worker) safe: whichever
        # commits last, the row ends at the furthest cursor of the version written last.
        sql = (
            "INSERT INTO snapshots (name, tx_id, position, version, body) VALUES ($1, $2::xid8, $3, $4, $5) "
            "ON CONFLICT (name) DO UPDATE SET tx_id = EXCLUDED.tx_id, position = EXCLUDED.position, "
            "version = EXCLUDED.version, body = EXCLUDED.body, taken_at = now() "
            "WHERE snapshots.version <> EXCLUDED.version "
            "OR (snapshots.tx_id, snapshots.position) < (EXCLUDED.tx_id, EXCLUDED.position)"
        )
        cursor = snapshot.cursor
        async with translated():
            status = await self._pool.execute(sql, name, cursor.tx_id, cursor.position, snapshot.version, snapshot.body)
        return str(status).endswith(" 1")

    async def close(self) -> None:
        await self._committer.close()
        await self._notifier.close()
        await self._listener.close()
        await self._pool.close()


def _batch_keys(group: Group) -> tuple[list[Hashable], list[Hashable]]:
    """What an append writes and what it only reads, for the group committer.

    `cr_append` reads every stream's version before anything in the batch is inserted,
    so an append must not share a batch with an earlier writer of its stream: one writer
    per stream per batch, and a version-only check (the leader epoch every routing
    decision asserts) waits for a batch after the write it queued behind. Checks behind
    checks, or a write behind checks, may share a batch: they are read first, as they came
    first. (Counting checks as writes allowed one routing decision per batch.)

    The event ids are written keys too: two appends with one id in one batch could not be
    told apart in what the statement returns (the one refused would be taken as written).
    """
    writes: list[Hashable] = []
    reads: list[Hashable] = []
    for append in group:
        if append.events:
            writes.append(append.stream.stream_id)
            writes.extend([event.event_id for event in append.events])
        else:
            reads.append(append.stream.stream_id)
    return writes, reads


def _append_args(groups: list[Group], jitter_s: float) -> list[Any]:
    appends = [a for group in groups for a in group]
    numbers_of_group = [g for g, group in enumerate(groups, 1) for _ in group]
    # A part without events only reads its stream's version: a shared lock is enough, so
    # concurrent checks of one stream (e.g. the leader's epoch) do not queue behind each other.
    exclusive: dict[int, bool] = {}
    for append in appends:
        key = lock_key(append.stream.stream_id)
        exclusive[key] = exclusive.get(key, False) or bool(append.events)
    keys = sorted(exclusive)
    expected = [_ANY_VERSION if a.expected is ExpectedVersion.ANY else
                0 if a.expected is ExpectedVersion.NO_STREAM else a.expected for a in appends]
    numbers, ids, types, data, meta = [], [], [], [], []
    for number, append in enumerate(appends, 1):
        for event in append.events:
            numbers.append(number)
            ids.append(event.event_id)
            types.append(event.type)
            data.append(event.data_json)
            meta.append(event.metadata_json)
    streams = [a.stream.stream_id for a in appends]
    return [STREAM_LOCK_CLASS, keys, [not exclusive[k] for k in keys], streams, expected, numbers_of_group,
            numbers, ids, types, data, meta, jitter_s]


class _BatchRefused(Exception):
    """The database refused a batch's statement: one of its appends is at fault."""


def _outcomes(groups: list[Group], rows: list[asyncpg.Record]) -> list[object]:
    """Results for written groups; the pure rules' verdict for the others."""
    # Columns by index (append_no, current_version, event_id, stored_stream, stored_version,
    # event_position, inserted): this runs for every stored event.
    inserted = {row[2]: (row[4], row[5]) for row in rows if row[6]}
    if len(inserted) == sum(len(a.events) for group in groups for a in group):
        # Every event was stored, so every group was written: the usual case, no rules needed.
        return [[_written(a, inserted) for a in group] for group in groups]
    current: dict[int, int] = {}
    stored: dict[uuid.UUID, StoredId] = {}
    for row in rows:
        if row[6]:
            continue
        if row[2] is None:
            current[row[0]] = row[1]
        else:
            stored[row[2]] = StoredId(row[3], row[4], row[5])
    outcomes: list[object] = []
    number = 0
    for group in groups:
        first_ids = [a.events[0].event_id for a in group if a.events]
        versions = {a.stream.stream_id: current[number + i] for i, a in enumerate(group, 1)}
        number += len(group)
        if first_ids[0] in inserted:
            outcomes.append([_written(a, inserted) for a in group])
            continue
        outcome = decide_group(group, versions, stored)
        if isinstance(outcome, list) and any(isinstance(o, Write) for o in outcome):
            # The SQL gate and the rules disagree: a bug, so say so loudly.
            raise AssertionError(f"cr_append refused an append that the rules accept: {group[0].stream}")
        outcomes.append(outcome)
    return outcomes


def _written(append: PreparedAppend, inserted: dict[uuid.UUID, tuple[int, int]]) -> AppendResult:
    written = [inserted[e.event_id] for e in append.events]
    return AppendResult(append.stream.stream_id, tuple(v for v, _ in written), tuple(p for _, p in written))


def _settle(future: asyncio.Future[list[AppendResult]], outcome: object) -> None:
    if future.done():  # the caller gave up waiting; its events are stored all the same
        return
    if isinstance(outcome, Exception):
        future.set_exception(outcome)
    else:
        assert isinstance(outcome, list)
        future.set_result(outcome)


def _recorded(row: asyncpg.Record) -> RecordedEvent:
    return RecordedEvent(
        event_id=row["event_id"],
        stream_id=row["stream_id"],
        version=row["version"],
        position=row["position"],
        tx_id=row["tx_id"],
        type=row["type"],
        data=row["data"],
        metadata=row["metadata"],
        recorded_at=row["recorded_at"],
    )


class _Notifier:
    """Sends one NOTIFY after commits, coalesced: never one per append, never inside the
    write transaction (a NOTIFY at commit serialises every committing transaction), and at
    most one per `interval_s` (the first after a quiet spell at once)."""

    def __init__(self, pool: asyncpg.Pool, token: str, interval_s: float) -> None:
        self._pool = pool
        self._token = token
        self._interval_s = interval_s
        self._task: asyncio.Task[None] | None = None
        self._again = False
        self._sent_at = float("-inf")

    def poke(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._send())
        else:
            self._again = True

    async def _send(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            # Commits that come while this waits are covered by the one NOTIFY that follows.
            wait_s = self._sent_at + self._interval_s - loop.time()
            if wait_s > 0:
                await asyncio.sleep(wait_s)
            self._again = False
            self._sent_at = loop.time()
            try:
                await self._pool.execute("SELECT pg_notify($1, $2)", NOTIFY_CHANNEL, self._token)
            except Exception as exc:  # subscribers fall back to polling; say so once per failure
                log.warning("could not notify subscribers (they will poll): %s", exc)
                return
            if not self._again:
                return

    async def close(self) -> None:
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)


class _Listener:
    """One LISTEN connection per store, opened on first use, reopened after a failure."""

    def __init__(self, dsn: str, token: str) -> None:
        self._dsn = dsn
        self._token = token
        self._conn: asyncpg.Connection | None = None
        self._wakeup = Wakeup()
        self._lock = asyncio.Lock()
        self._closed = False

    @property
    def generation(self) -> int:
        return self._wakeup.generation

    async def wait(self, timeout_s: float, since: int | None = None) -> None:
        try:
            await self._ensure()
        except StoreUnavailableError:
            pass  # polling still works: the wait below is the backstop
        await self._wakeup.wait(timeout_s, since)

    async def _ensure(self) -> None:
        if self._closed or (self._conn is not None and not self._conn.is_closed()):
            return  # closed: a late waiter must not open a connection nobody would close
        async with self._lock, translated():
            if not self._closed and (self._conn is None or self._conn.is_closed()):
                conn = await asyncpg.connect(self._dsn)
                await conn.add_listener(NOTIFY_CHANNEL, self._on_notify)
                self._conn = conn

    def _on_notify(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        if payload != self._token:  # our own commits woke our subscribers already
            self._wakeup.wake()

    def wake(self) -> None:
        self._wakeup.wake()

    async def close(self) -> None:
        self._closed = True
        async with self._lock:  # an open in progress finishes first, then is closed here
            if self._conn is not None and not self._conn.is_closed():
                await self._conn.close()
