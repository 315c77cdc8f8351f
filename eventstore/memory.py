"""An in-memory event store with the same contract as the PostgreSQL one.

Each append is its own "transaction": it takes the next tx id, so log order and
position order coincide here. Used by unit tests and the policy simulator.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timezone

import orjson

from .appending import StoredId, Write, decide_group
from .errors import ConcurrencyError, DuplicateEventError, StoreClosedError
from .wakeup import Wakeup
from .model import (
    DEFAULT_MAX_EVENT_BYTES,
    AppendResult,
    Expected,
    LogCursor,
    Snapshot,
    NewEvent,
    PreparedAppend,
    PreparedEvent,
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


class MemoryEventStore:
    def __init__(self, *, max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES) -> None:
        self._max_event_bytes = max_event_bytes
        self._log: list[RecordedEvent] = []
        self._streams: dict[str, list[RecordedEvent]] = {}
        # Event ids are unique per routing domain, as in PostgreSQL.
        self._ids: dict[tuple[str, uuid.UUID], StoredId] = {}
        self._checkpoints: dict[str, LogCursor] = {}
        self._snapshots: dict[str, Snapshot] = {}
        self._appended = Wakeup()
        self._closed = False

    async def append(
        self, stream_id: str, events: Sequence[NewEvent], expected_version: Expected
    ) -> AppendResult:
        self._check_open()
        prepared = prepare_append(stream_id, events, expected_version, max_event_bytes=self._max_event_bytes)
        return self._commit((prepared,))[0]

    async def append_many(self, appends: Sequence[StreamAppend]) -> list[AppendResult]:
        self._check_open()
        return self._commit(prepare_group(appends, max_event_bytes=self._max_event_bytes))

    def _commit(self, group: Sequence[PreparedAppend]) -> list[AppendResult]:
        versions = {a.stream.stream_id: len(self._streams.get(a.stream.stream_id, [])) for a in group}
        stored = {e.event_id: hit for a in group for e in a.events
                  if (hit := self._ids.get((a.stream.domain, e.event_id))) is not None}
        outcome = decide_group(group, versions, stored)
        if isinstance(outcome, (ConcurrencyError, DuplicateEventError)):
            raise outcome
        tx_id = len(self._log) + 1  # one transaction for the whole group
        return [o if isinstance(o, AppendResult) else self._write(a.stream.stream_id, a.events, o, tx_id)
                for a, o in zip(group, outcome)]

    def _write(self, stream_id: str, events: Sequence[PreparedEvent], write: Write, tx_id: int) -> AppendResult:
        now = datetime.now(timezone.utc)
        domain = parse_stream_id(stream_id).domain
        stream = self._streams.setdefault(stream_id, [])
        recorded = []
        for offset, event in enumerate(events):
            rec = RecordedEvent(
                event_id=event.event_id,
                stream_id=stream_id,
                version=write.first_version + offset,
                position=len(self._log) + 1,
                tx_id=tx_id,
                type=event.type,
                data=orjson.loads(event.data_json),
                metadata=orjson.loads(event.metadata_json),
                recorded_at=now,
            )
            self._log.append(rec)
            stream.append(rec)
            self._ids[(domain, rec.event_id)] = StoredId(stream_id, rec.version, rec.position)
            recorded.append(rec)
        self._appended.wake()
        return AppendResult(stream_id, tuple(r.version for r in recorded), tuple(r.position for r in recorded))

    async def read_stream(
        self, stream_id: str, from_version: int = 1, limit: int | None = None
    ) -> list[RecordedEvent]:
        self._check_open()
        parse_stream_id(stream_id)
        first = check_from_version(from_version)
        check_limit(limit, optional=True)
        events = self._streams.get(stream_id, [])[max(first, 1) - 1 :]
        return events[:limit] if limit is not None else list(events)

    async def read_last_events(self, stream_ids: Sequence[str]) -> dict[str, RecordedEvent]:
        self._check_open()
        names = check_stream_ids(stream_ids)
        return {n.stream_id: self._streams[n.stream_id][-1] for n in names if self._streams.get(n.stream_id)}

    async def stream_version(self, stream_id: str) -> int:
        parse_stream_id(stream_id)
        return len(self._streams.get(stream_id, []))

    async def read_log(
        self, after: LogCursor, limit: int = 1000, category: str | None = None
    ) -> list[RecordedEvent]:
        self._check_open()
        check_cursor(after)
        check_limit(limit)
        if limit == 0:
            return []
        # Positions are dense and equal to list index + 1 here, so a cursor is an index.
        start = after.position
        selected = (e for e in self._log[start:] if category is None or e.category == category)
        out: list[RecordedEvent] = []
        for event in selected:
            out.append(event)
            if len(out) >= limit:
                break
        return out

    async def log_head(self) -> LogCursor:
        self._check_open()
        return self._log[-1].cursor if self._log else LogCursor()

    async def wait_for_append(self, timeout_s: float, since: int | None = None) -> None:
        await self._appended.wait(timeout_s, since)

    def append_generation(self) -> int:
        return self._appended.generation

    def wake_waiters(self) -> None:
        self._appended.wake()

    async def load_checkpoint(self, name: str) -> LogCursor:
        return self._checkpoints.get(name, LogCursor())

    async def save_checkpoint(self, name: str, cursor: LogCursor) -> None:
        self._checkpoints[name] = check_cursor(cursor, "cursor")

    async def load_snapshot(self, name: str) -> Snapshot | None:
        return self._snapshots.get(name)

    async def save_snapshot(self, name: str, snapshot: Snapshot) -> bool:
        kept = self._snapshots.get(name)
        if kept is not None and kept.version == snapshot.version and kept.cursor.as_tuple() >= snapshot.cursor.as_tuple():
            return False
        self._snapshots[name] = snapshot
        return True

    async def close(self) -> None:
        self._closed = True

    def _check_open(self) -> None:
        if self._closed:
            raise StoreClosedError("the event store is closed")
