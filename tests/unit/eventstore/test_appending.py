"""The append rules, as a table: no I/O."""

from __future__ import annotations

import uuid

import pytest

from eventstore import ANY, NO_STREAM, ConcurrencyError, DuplicateEventError, NewEvent
from eventstore.appending import StoredId, Write, decide
from eventstore.model import AppendResult, prepare_append

A, B, C = (uuid.UUID(int=i) for i in (1, 2, 3))
S = "contact-default:x"


def append(expected: object, *ids: uuid.UUID) -> object:
    return prepare_append(S, [NewEvent("E", {}, event_id=i) for i in ids], expected)


@pytest.mark.parametrize(
    "expected,current,outcome",
    [
        (NO_STREAM, 0, Write(1)),
        (0, 0, Write(1)),
        (NO_STREAM, 3, ConcurrencyError),
        (ANY, 0, Write(1)),
        (ANY, 7, Write(8)),
        (3, 3, Write(4)),
        (2, 3, ConcurrencyError),
        (4, 3, ConcurrencyError),
    ],
)
def test_version_checks(expected: object, current: int, outcome: object) -> None:
    result = decide(append(expected, A), current, {})  # type: ignore[arg-type]
    if isinstance(outcome, Write):
        assert result == outcome
    else:
        assert isinstance(result, ConcurrencyError) and result.actual == current


def test_exact_repeat_returns_the_stored_result_whatever_the_version() -> None:
    stored = {A: StoredId(S, 4, 40), B: StoredId(S, 5, 41)}
    assert decide(append(NO_STREAM, A, B), 9, stored) == AppendResult(S, (4, 5), (40, 41), duplicate=True)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "ids,stored",
    [
        ((A, B), {A: StoredId(S, 1, 1)}),  # partial overlap
        ((A,), {A: StoredId("contact-default:other", 1, 1)}),  # another stream
        ((A, B), {A: StoredId(S, 1, 1), B: StoredId(S, 3, 3)}),  # not one append
        ((B, A), {A: StoredId(S, 1, 1), B: StoredId(S, 2, 2)}),  # another order
    ],
)
def test_duplicates_that_are_not_exact_repeats(ids: tuple[uuid.UUID, ...], stored: dict[uuid.UUID, StoredId]) -> None:
    assert isinstance(decide(append(ANY, *ids), 3, stored), DuplicateEventError)  # type: ignore[arg-type]
