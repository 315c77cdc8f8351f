"""The event store port: what the rest of the system may ask of a store.

Two adapters implement it: `MemoryEventStore` (tests, simulations) and
`PostgresEventStore` (production). `tests/contract` runs one suite against both.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from .model import AppendResult, Expected, LogCursor, NewEvent, RecordedEvent, Snapshot, StreamAppend


class EventStore(Protocol):
    async def append(
        self, stream_id: str, events: Sequence[NewEvent], expected_version: Expected
    ) -> AppendResult:
        """Append atomically at the expected version; idempotent by event id."""
        ...

    async def append_many(self, appends: Sequence[StreamAppend]) -> list[AppendResult]:
        """Append to several streams atomically: every part at its expected version, or none.
        A part without events only asserts its stream's version."""
        ...

    async def read_stream(
        self, stream_id: str, from_version: int = 1, limit: int | None = None
    ) -> list[RecordedEvent]: ...

    async def stream_version(self, stream_id: str) -> int:
        """The stream's last version, 0 when it has no events."""
        ...

    async def read_last_events(self, stream_ids: Sequence[str]) -> dict[str, RecordedEvent]:
        """Each named stream's newest event (its version is the stream's), in one read; a
        stream with no events is left out. At most `MAX_STREAMS_PER_READ` ids."""
        ...

    async def read_log(
        self, after: LogCursor, limit: int = 1000, category: str | None = None
    ) -> list[RecordedEvent]:
        """Events after the cursor in log order, never skipping one that commits later."""
        ...

    async def log_head(self) -> LogCursor:
        """The cursor of the newest committed event (LOG_START when the log is empty): a
        subscriber past it has seen everything committed before the call."""
        ...

    async def wait_for_append(self, timeout_s: float, since: int | None = None) -> None:
        """Return soon after something may have been appended, or after the timeout. With
        `since` (an `append_generation()` taken earlier), return at once if anything may
        have been appended after it was taken."""
        ...

    def append_generation(self) -> int:
        """A counter that moves whenever something may have been appended (locally or, as
        far as this process hears, elsewhere): for `wait_for_append(since=...)`."""
        ...

    def wake_waiters(self) -> None:
        """Make every `wait_for_append` in this process return now (e.g. a subscription
        stopping); waking early is always safe."""
        ...

    async def load_checkpoint(self, name: str) -> LogCursor: ...

    async def save_checkpoint(self, name: str, cursor: LogCursor) -> None: ...

    async def load_snapshot(self, name: str) -> Snapshot | None: ...

    async def save_snapshot(self, name: str, snapshot: Snapshot) -> bool:
        """Keep `snapshot` under `name` unless the one kept there is of the same version and at
        the same place or further on (a slower writer never takes a snapshot back); True when
        it was kept."""
        ...

    async def close(self) -> None: ...
