"""Translate asyncpg's errors into the store's own, in this one place."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg

from .errors import EventStoreError, InvalidAppendError, StoreUnavailableError

# SQLSTATE classes that mean "the database is not there for us right now": connection
# exceptions (08), login refused (28), insufficient resources (53), object not in
# prerequisite state (55, e.g. a database not accepting connections for a while), operator
# intervention (57, e.g. a shutdown or a terminated backend). And one code: a database that
# does not exist (yet, or any more: being restored).
_UNAVAILABLE_CLASSES = ("08", "28", "53", "55", "57")
_UNAVAILABLE_CODES = ("3D000",)
_DATA_EXCEPTION_CLASS = "22"


def is_unique_violation(exc: BaseException) -> bool:
    return isinstance(exc, asyncpg.UniqueViolationError)


def translate(exc: BaseException, *, appending: bool = False) -> EventStoreError | None:
    """The store error for a driver error, or None when it is a bug to let surface.

    `appending`: the error came from writing events, so a value the database refused
    (a data exception) is the append's fault: an InvalidAppendError, nothing stored.
    """
    if isinstance(exc, EventStoreError):
        return exc
    # InternalClientError: asyncpg's protocol state after the server dropped the connection
    # mid-operation (seen when a backend is terminated); the pool replaces the connection.
    if isinstance(exc, (OSError, asyncio.TimeoutError, asyncpg.InterfaceError, asyncpg.InternalClientError,
                        asyncpg.PostgresConnectionError)):
        return StoreUnavailableError(f"the database is unreachable: {exc}")
    if isinstance(exc, (asyncpg.UndefinedTableError, asyncpg.UndefinedFunctionError)):
        return StoreUnavailableError(f"the database schema is missing or out of date ({exc}): run `contact-router migrate`")
    if isinstance(exc, asyncpg.PostgresError):
        sqlstate = getattr(exc, "sqlstate", "") or ""
        if sqlstate[:2] in _UNAVAILABLE_CLASSES or sqlstate in _UNAVAILABLE_CODES:
            return StoreUnavailableError(f"the database is unavailable ({sqlstate}): {exc}")
        if appending and sqlstate[:2] == _DATA_EXCEPTION_CLASS:
            return InvalidAppendError(f"the database refused a value of the events ({sqlstate}): {exc}",
                                      field="events")
    if appending and isinstance(exc, asyncpg.DataError):  # refused by the driver before sending
        return InvalidAppendError(f"a value of the events cannot be sent to the database: {exc}", field="events")
    return None


@asynccontextmanager
async def translated() -> AsyncIterator[None]:
    """Run a block, re-raising driver errors as the store's own."""
    try:
        yield
    except Exception as exc:
        mapped = translate(exc)
        if mapped is None or mapped is exc:
            raise
        raise mapped from exc
