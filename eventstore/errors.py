"""The event store's own error tree.

Callers (HTTP handlers, the router) catch these and never a driver's errors:
`eventstore.pgerrors` translates asyncpg's exceptions into them in one place.
"""

from __future__ import annotations

from typing import Any


class EventStoreError(Exception):
    """Base of every error the store raises on purpose."""

    code = "event_store_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidArgumentError(EventStoreError):
    """A call's argument is out of range or of the wrong kind; nothing was read or changed.
    `field` names the argument."""

    code = "invalid_argument"

    def __init__(self, message: str, *, field: str) -> None:
        super().__init__(message)
        self.field = field


class InvalidAppendError(InvalidArgumentError):
    """The append was malformed; nothing was stored. `field` names the offending part."""

    code = "invalid_event"


class EventTooLargeError(InvalidAppendError):
    code = "event_too_large"


class ConcurrencyError(EventStoreError):
    """The stream was not at the expected version: somebody else appended first."""

    code = "wrong_expected_version"

    def __init__(self, stream_id: str, expected: Any, actual: int) -> None:
        super().__init__(f"stream {stream_id!r} is at version {actual}, expected {expected}")
        self.stream_id = stream_id
        self.expected = expected
        self.actual = actual


class DuplicateEventError(EventStoreError):
    """An event id is stored already, but not as an exact repeat of this append."""

    code = "duplicate_event_id"

    def __init__(self, message: str, *, event_id: str) -> None:
        super().__init__(message)
        self.event_id = event_id


class StoreUnavailableError(EventStoreError):
    """The database could not be reached or the connection broke: retry later."""

    code = "store_unavailable"


class StoreClosedError(StoreUnavailableError):
    code = "store_closed"
