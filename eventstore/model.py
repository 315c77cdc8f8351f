"""Values the event store takes and returns, and the validation both stores share."""

from __future__ import annotations

import math
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, is_dataclass
from datetime import datetime
from enum import Enum
from typing import Any, Final, TypeAlias

import orjson

from .errors import EventTooLargeError, InvalidAppendError, InvalidArgumentError

DEFAULT_MAX_EVENT_BYTES: Final = 256 * 1024
MAX_EVENTS_PER_APPEND: Final = 10_000
MAX_VERSION: Final = 2**31 - 1  # versions are stored as PostgreSQL integers
MAX_STREAMS_PER_READ: Final = 10_000

# A stream id names its category (stream type), its routing domain and the entity:
# "contact-default:7f0c...". The domain is inside the id so that a domain's streams
# can later move to another database without rewriting history.
_STREAM_ID = re.compile(r"([a-z][a-z0-9_]{0,39})-([a-z0-9][a-z0-9_]{0,39}):([\x21-\x7e]{1,200})")
_EVENT_TYPE = re.compile(r"[A-Za-z][A-Za-z0-9_.]{0,99}")
_METADATA_STRINGS: Final = ("correlation_id", "causation_id", "actor", "channel")


class ExpectedVersion(Enum):
    """The non-numeric forms of an append's expected version."""

    ANY = "any"
    NO_STREAM = "no_stream"


Expected: TypeAlias = int | ExpectedVersion


@dataclass(frozen=True, slots=True)
class StreamName:
    stream_id: str
    category: str
    domain: str
    key: str


def parse_stream_id(stream_id: object) -> StreamName:
    if not isinstance(stream_id, str) or not stream_id:
        raise InvalidAppendError("stream id must be a non-empty string", field="stream_id")
    match = _STREAM_ID.fullmatch(stream_id)
    if match is None:
        raise InvalidAppendError(
            f"stream id {stream_id[:80]!r} is not of the form '<category>-<domain>:<key>'",
            field="stream_id",
        )
    return StreamName(stream_id, match[1], match[2], match[3])


def stream_id_for(category: str, key: str, domain: str = "default") -> str:
    return parse_stream_id(f"{category}-{domain}:{key}").stream_id


def check_expected(expected: object) -> Expected:
    if isinstance(expected, ExpectedVersion):
        return expected
    if isinstance(expected, int) and not isinstance(expected, bool) and 0 <= expected <= MAX_VERSION:
        return ExpectedVersion.NO_STREAM if expected == 0 else expected
    raise InvalidAppendError(
        f"expected version must be a version from 0 to {MAX_VERSION}, ANY or NO_STREAM, not {expected!r}"[:200],
        field="expected_version",
    )


@dataclass(frozen=True, slots=True)
class LogCursor:
    """A place in the log: the writing transaction's id, then the global position.

    The log is delivered in (tx_id, position) order; see `eventstore.postgres` for why.
    """

    tx_id: int = 0
    position: int = 0

    def as_tuple(self) -> tuple[int, int]:
        return (self.tx_id, self.position)


LOG_START: Final = LogCursor()
_MAX_BIGINT: Final = 2**63 - 1


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_cursor(cursor: object, field: str = "after") -> LogCursor:
    """A log cursor both stores can read from (or save): two integers from 0 (a
    transaction id fits 64 bits, a position PostgreSQL's bigint)."""
    if (not isinstance(cursor, LogCursor) or not _is_int(cursor.tx_id) or not _is_int(cursor.position)
            or not 0 <= cursor.tx_id < 2**64 or not 0 <= cursor.position <= _MAX_BIGINT):
        raise InvalidArgumentError(f"{field} must be a LogCursor of two integers from 0, not {cursor!r}"[:200],
                                   field=field)
    return cursor


def check_limit(limit: object, *, optional: bool = False) -> None:
    """A read's limit: an integer from 0 (None, for reads that allow it: no limit)."""
    if limit is None and optional:
        return
    if not _is_int(limit) or not 0 <= limit <= _MAX_BIGINT:  # type: ignore[operator]
        raise InvalidArgumentError(f"limit must be an integer from 0, not {limit!r}"[:200], field="limit")


def check_stream_ids(stream_ids: object) -> list[StreamName]:
    """The streams of a many-stream read: a list or tuple of valid stream ids, at most
    MAX_STREAMS_PER_READ of them (repeats allowed)."""
    if not isinstance(stream_ids, (list, tuple)):
        raise InvalidArgumentError("stream_ids must be a list of stream ids", field="stream_ids")
    if len(stream_ids) > MAX_STREAMS_PER_READ:
        raise InvalidArgumentError(f"at most {MAX_STREAMS_PER_READ} streams per read", field="stream_ids")
    names: list[StreamName] = []
    for index, stream_id in enumerate(stream_ids):
        try:
            names.append(parse_stream_id(stream_id))
        except InvalidAppendError as exc:
            raise InvalidArgumentError(exc.message, field=f"stream_ids[{index}]") from None
    return names


def check_from_version(from_version: object) -> int:
    """A stream read's first version, from 0 (read from the start)."""
    if not _is_int(from_version) or from_version < 0:  # type: ignore[operator]
        raise InvalidArgumentError(f"from_version must be an integer from 0, not {from_version!r}"[:200],
                                   field="from_version")
    return from_version  # type: ignore[return-value]


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A reader's state as of `cursor`, in the reader's own encoding (`version` names it)."""

    cursor: LogCursor
    version: str
    body: bytes


@dataclass(frozen=True, slots=True)
class NewEvent:
    type: str
    data: Mapping[str, Any]
    metadata: Mapping[str, Any] = field(default_factory=dict)
    event_id: uuid.UUID = field(default_factory=uuid.uuid4)


@dataclass(frozen=True, slots=True)
class RecordedEvent:
    event_id: uuid.UUID
    stream_id: str
    version: int
    position: int
    tx_id: int
    type: str
    data: dict[str, Any]
    metadata: dict[str, Any]
    recorded_at: datetime

    @property
    def cursor(self) -> LogCursor:
        return LogCursor(self.tx_id, self.position)

    @property
    def category(self) -> str:
        return self.stream_id.split("-", 1)[0]


@dataclass(frozen=True, slots=True)
class AppendResult:
    stream_id: str
    versions: tuple[int, ...]
    positions: tuple[int, ...]
    duplicate: bool = False  # True when every event was stored already by an earlier append

    @property
    def last_version(self) -> int:
        return self.versions[-1]

    @property
    def last_position(self) -> int:
        return self.positions[-1]


@dataclass(frozen=True, slots=True)
class PreparedEvent:
    """An event checked and serialised once, ready for either store."""

    event_id: uuid.UUID
    type: str
    data_json: bytes
    metadata_json: bytes


@dataclass(frozen=True, slots=True)
class PreparedAppend:
    stream: StreamName
    expected: Expected
    events: tuple[PreparedEvent, ...]  # empty: only check the stream's version


@dataclass(frozen=True, slots=True)
class StreamAppend:
    """One part of an atomic multi-stream append. No events: only assert the version."""

    stream_id: str
    events: Sequence[NewEvent]
    expected_version: Expected


def prepare_group(
    appends: Sequence[StreamAppend], *, max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES
) -> tuple[PreparedAppend, ...]:
    """Check an atomic multi-stream append: each part, and the parts against each other."""
    if not appends:
        raise InvalidAppendError("an atomic append needs at least one part", field="appends")
    group = tuple(
        prepare_append(a.stream_id, a.events, a.expected_version, max_event_bytes=max_event_bytes,
                       allow_empty=True, where=f"appends[{i}]")
        for i, a in enumerate(appends)
    )
    if len({a.stream.stream_id for a in group}) != len(group):
        raise InvalidAppendError("a stream appears twice in one atomic append", field="appends")
    ids = [e.event_id for a in group for e in a.events]
    if not ids:
        raise InvalidAppendError("an atomic append needs at least one event", field="appends")
    if len(set(ids)) != len(ids):
        raise InvalidAppendError("the same event id appears twice in one atomic append", field="appends")
    return group


def prepare_append(
    stream_id: object,
    events: Sequence[NewEvent],
    expected: object,
    *,
    max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES,
    allow_empty: bool = False,
    where: str = "",
) -> PreparedAppend:
    """Check an append completely before anything is stored, raising InvalidAppendError."""
    try:
        return _prepare(stream_id, events, expected, max_event_bytes, allow_empty)
    except InvalidAppendError as exc:
        if where:
            exc.field = f"{where}.{exc.field}"
        raise


def _prepare(
    stream_id: object, events: Sequence[NewEvent], expected: object, max_event_bytes: int, allow_empty: bool
) -> PreparedAppend:
    stream = parse_stream_id(stream_id)
    checked = check_expected(expected)
    # type() checks first: this runs for every append, and abc isinstance checks are slow.
    if type(events) not in (list, tuple) and (not isinstance(events, Sequence) or isinstance(events, (str, bytes))):
        raise InvalidAppendError("an append needs a non-empty list of events", field="events")
    if not events and not allow_empty:
        raise InvalidAppendError("an append needs a non-empty list of events", field="events")
    if len(events) > MAX_EVENTS_PER_APPEND:
        raise InvalidAppendError(f"at most {MAX_EVENTS_PER_APPEND} events per append", field="events")
    prepared = tuple([_prepare_event(e, i, max_event_bytes) for i, e in enumerate(events)])
    if len(prepared) > 1 and len({p.event_id for p in prepared}) != len(prepared):
        raise InvalidAppendError("the same event id appears twice in one append", field="events")
    return PreparedAppend(stream, checked, prepared)


# Event types already seen to be valid names: a set lookup instead of a regex per event
# (a router writes a few dozen types). Bounded, so odd input cannot grow it without limit.
_VALID_TYPES: set[str] = set()
_MAX_VALID_TYPES: Final = 1000
_EMPTY_JSON: Final = b"{}"


def _prepare_event(event: object, index: int, max_event_bytes: int) -> PreparedEvent:
    # Every line here runs once per stored event: the checks are ordered so that the
    # common, valid case costs type comparisons only, and field paths are built on error.
    if type(event) is not NewEvent and not isinstance(event, NewEvent):
        raise InvalidAppendError("each event must be a NewEvent", field=f"events[{index}]")
    if type(event.event_id) is not uuid.UUID and not isinstance(event.event_id, uuid.UUID):
        raise InvalidAppendError("event_id must be a UUID", field=f"events[{index}].event_id")
    event_type = event.type
    if event_type not in _VALID_TYPES:
        if type(event_type) is not str or not _EVENT_TYPE.fullmatch(event_type):
            raise InvalidAppendError("event type must be a name like 'ContactArrived'", field=f"events[{index}].type")
        if len(_VALID_TYPES) < _MAX_VALID_TYPES:
            _VALID_TYPES.add(event_type)
    data = _to_json(event.data, index, "data")
    metadata = event.metadata
    if type(metadata) is dict and not metadata:
        metadata_json = _EMPTY_JSON
    else:
        metadata_json = _to_json(_check_metadata(metadata, index), index, "metadata")
    size = len(data) + len(metadata_json)
    if size > max_event_bytes:
        raise EventTooLargeError(
            f"event is {size} bytes of JSON, over the {max_event_bytes}-byte limit", field=f"events[{index}]"
        )
    return PreparedEvent(event.event_id, event_type, data, metadata_json)


def _check_metadata(metadata: object, index: int) -> Mapping[str, Any]:
    if type(metadata) is not dict and not isinstance(metadata, Mapping):
        raise InvalidAppendError("metadata must be an object", field=f"events[{index}].metadata")
    if not metadata:
        return metadata
    for key in _METADATA_STRINGS:
        value = metadata.get(key)
        if value is not None and type(value) is not str:
            raise InvalidAppendError(f"metadata {key} must be a string", field=f"events[{index}].metadata.{key}")
    return metadata


def _to_json(value: object, index: int, part: str) -> bytes:
    if type(value) is not dict and not isinstance(value, Mapping):
        raise InvalidAppendError("must be a JSON object", field=f"events[{index}].{part}")
    try:
        encoded = orjson.dumps(value)
    except TypeError as exc:
        raise InvalidAppendError(f"is not JSON-serialisable: {exc}", field=f"events[{index}].{part}") from None
    # orjson writes NaN and infinities as null; JSON has no such numbers, so refuse them.
    # Only output with a null can hide one, so only then are the floats looked at: most
    # payloads hold a null (an absent customer id, a queue not yet chosen), and the standard
    # library's encoder, which did this before, cost 5.7 us per event against ~2 here.
    if b"null" in encoded and _has_non_finite(value):
        raise InvalidAppendError("NaN and infinity are not JSON numbers", field=f"events[{index}].{part}")
    # PostgreSQL's jsonb cannot hold the NUL character (it refuses the whole statement, and
    # with it every append batched with this one). orjson writes it as \u0000, so only output
    # holding that text can have one; a text with a backslash before "u0000" matches too,
    # hence the look at the value itself.
    if b"\\u0000" in encoded and _has_nul(value):
        raise InvalidAppendError("text cannot hold the NUL character (\\u0000)", field=f"events[{index}].{part}")
    return encoded


def _has_nul(value: object) -> bool:
    """A NUL character in any text, key or value, of dicts, lists, tuples and dataclasses."""
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return True
        elif isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, (list, tuple)):
            pending.extend(item)
        elif is_dataclass(item) and not isinstance(item, type):
            pending.extend(getattr(item, f.name) for f in fields(item))
    return False


def _has_non_finite(value: object) -> bool:
    """A NaN or an infinity anywhere in dicts, lists, tuples and dataclasses (what orjson
    walks into)."""
    pending = [value]
    while pending:
        item = pending.pop()
        kind = type(item)
        if kind is str or kind is int or kind is bool or item is None:
            continue
        if kind is float or isinstance(item, float):
            if not math.isfinite(item):  # type: ignore[arg-type]
                return True
        elif kind is dict or isinstance(item, dict):
            pending.extend(item.values())  # type: ignore[attr-defined]
        elif kind is list or kind is tuple or isinstance(item, (list, tuple)):
            pending.extend(item)  # type: ignore[arg-type]
        elif is_dataclass(item) and not isinstance(item, type):
            pending.extend(getattr(item, f.name) for f in fields(item))
    return False
