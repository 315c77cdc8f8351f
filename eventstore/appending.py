"""The append rules, as a pure function both stores share.

Given what is stored for a stream (its version and any already-stored ids of the
events being appended), decide whether an append writes, is an idempotent repeat,
or fails. Keeping this apart from I/O means the in-memory and PostgreSQL stores
cannot disagree about version checks or idempotency.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from .errors import ConcurrencyError, DuplicateEventError
from .model import AppendResult, ExpectedVersion, PreparedAppend


@dataclass(frozen=True, slots=True)
class StoredId:
    stream_id: str
    version: int
    position: int


@dataclass(frozen=True, slots=True)
class Write:
    """Store the events at versions first_version, first_version + 1, ..."""

    first_version: int


Outcome = Write | AppendResult | ConcurrencyError | DuplicateEventError


def decide(append: PreparedAppend, current_version: int, stored: Mapping[uuid.UUID, StoredId]) -> Outcome:
    found = [stored.get(e.event_id) for e in append.events]
    if any(f is not None for f in found):
        return _repeat(append, found)
    expected = append.expected
    if expected is ExpectedVersion.ANY:
        return Write(current_version + 1)
    if expected is ExpectedVersion.NO_STREAM:
        expected_number = 0
    else:
        expected_number = expected
    if current_version != expected_number:
        return ConcurrencyError(append.stream.stream_id, _describe(expected), current_version)
    return Write(current_version + 1)


def decide_group(
    group: Sequence[PreparedAppend], versions: Mapping[str, int], stored: Mapping[uuid.UUID, StoredId]
) -> list[Write | AppendResult] | ConcurrencyError | DuplicateEventError:
    """An atomic multi-stream append: every part writes, or none does.

    A group whose event-bearing parts are all exact repeats is an idempotent repeat
    (its version checks no longer matter); a group that repeats only some parts is an
    error; otherwise the first failing part fails the whole group.
    """
    outcomes = [decide(a, versions.get(a.stream.stream_id, 0), stored) for a in group]
    bearing = [o for a, o in zip(group, outcomes) if a.events]
    repeats = [o for o in bearing if isinstance(o, AppendResult)]
    if repeats and len(repeats) == len(bearing):
        return [o if isinstance(o, AppendResult) else AppendResult(a.stream.stream_id, (), (), duplicate=True)
                for a, o in zip(group, outcomes)]
    if repeats:
        first = next(a for a, o in zip(group, outcomes) if isinstance(o, AppendResult))
        return DuplicateEventError("part of this atomic append is stored already, part is not",
                                   event_id=str(first.events[0].event_id))
    for outcome in outcomes:
        if isinstance(outcome, (ConcurrencyError, DuplicateEventError)):
            return outcome
    return [o for o in outcomes if isinstance(o, (Write, AppendResult))]


def _repeat(append: PreparedAppend, found: list[StoredId | None]) -> Outcome:
    """An append whose ids are stored already: an exact repeat returns the first result."""
    stream_id = append.stream.stream_id
    for event, hit in zip(append.events, found):
        if hit is None:
            return DuplicateEventError(
                f"event {event.event_id} is new but others in the same append are stored already "
                "(a partial repeat); retry with exactly the events of the first append",
                event_id=str(event.event_id),
            )
        if hit.stream_id != stream_id:
            return DuplicateEventError(
                f"event id {event.event_id} is stored in another stream ({hit.stream_id})",
                event_id=str(event.event_id),
            )
    hits = [h for h in found if h is not None]
    versions = tuple(h.version for h in hits)
    if versions != tuple(range(versions[0], versions[0] + len(versions))):
        return DuplicateEventError(
            "these event ids are stored, but not as one append in this order",
            event_id=str(append.events[0].event_id),
        )
    return AppendResult(stream_id, versions, tuple(h.position for h in hits), duplicate=True)


def _describe(expected: object) -> str:
    if isinstance(expected, ExpectedVersion):
        return expected.value
    return str(expected)
