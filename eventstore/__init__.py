"""The event store: one ordered log of facts, with an in-memory and a PostgreSQL adapter."""

from .errors import (
    ConcurrencyError,
    DuplicateEventError,
    EventStoreError,
    EventTooLargeError,
    InvalidAppendError,
    InvalidArgumentError,
    StoreClosedError,
    StoreUnavailableError,
)
from .memory import MemoryEventStore
from .model import (
    LOG_START,
    AppendResult,
    Expected,
    ExpectedVersion,
    LogCursor,
    NewEvent,
    RecordedEvent,
    Snapshot,
    StreamAppend,
    parse_stream_id,
    stream_id_for,
)
from .port import EventStore
from .subscription import Projection, ProjectionRunner, Subscription

ANY = ExpectedVersion.ANY
NO_STREAM = ExpectedVersion.NO_STREAM

__all__ = [
    "ANY",
    "LOG_START",
    "NO_STREAM",
    "AppendResult",
    "ConcurrencyError",
    "DuplicateEventError",
    "EventStore",
    "EventStoreError",
    "EventTooLargeError",
    "Expected",
    "ExpectedVersion",
    "InvalidAppendError",
    "InvalidArgumentError",
    "LogCursor",
    "MemoryEventStore",
    "NewEvent",
    "Projection",
    "ProjectionRunner",
    "RecordedEvent",
    "StoreClosedError",
    "StoreUnavailableError",
    "Snapshot",
    "StreamAppend",
    "Subscription",
    "parse_stream_id",
    "stream_id_for",
]
