"""Routing policies as events, and the active policy as a projection of them.

Every policy version is one event on the stream `policy-<domain>:versions`, and its
version number is its version in that stream: `PolicyPublished` carries a new
document, `PolicyRolledBack` a copy of an older version's document. So the version
an admin's change was based on (`If-Match`) is exactly the append's expected
version, and the store's optimistic check decides which of two concurrent changes
wins; no lock and no read-then-write race.

`ActivePolicy` holds the compiled policy the router reads for every contact
(`current()` is one attribute read). It is kept current by re-reading the stream
after this process's own changes, and after the store's append notifications
(another process published), with a poll as a backstop.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Literal, Protocol

from eventstore import (
    NO_STREAM,
    ConcurrencyError,
    EventTooLargeError,
    NewEvent,
    RecordedEvent,
    StoreUnavailableError,
    stream_id_for,
)
from eventstore.port import EventStore
from policies.engine import CompiledPolicy, compile_policy
from policies.errors import PolicyError, PolicyInvalid
from policies.loader import default_policy_text, document_from_data, load_default_policy
from policies.schema import PolicyDocument
from policies.validate import ValidationReport, validate_document
from policies.vocabulary import AgentProfile, AgentSnapshot

from .events import metadata as ev_metadata
from .tasks import TaskBoard, supervised

log = logging.getLogger(__name__)

POLICY_PUBLISHED = "PolicyPublished"
POLICY_ROLLED_BACK = "PolicyRolledBack"
SYSTEM_ACTOR = "system"
MAX_VERSION = 2**31 - 1  # the store's version column is an int
MIN_REFRESH_S = 0.05  # the follower re-reads the stream at most this often
_SEED_NAMESPACE = uuid.UUID("6d1c52a2-3f0e-4f5b-9a51-2f2b7f3c9e10")

Kind = Literal["published", "rolled_back"]


class RosterProvider(Protocol):
    """Who the agents are (for validation) and what they are doing (for simulation)."""

    def profiles(self) -> Sequence[AgentProfile]: ...

    def snapshots(self) -> Sequence[AgentSnapshot]: ...


class VersionConflict(Exception):
    """The change was based on a version that is no longer the newest."""

    def __init__(self, current: int, based_on: int) -> None:
        super().__init__(f"the newest policy version is {current}, not {based_on}")
        self.current = current
        self.based_on = based_on


class UnknownVersion(Exception):
    def __init__(self, version: int) -> None:
        super().__init__(f"there is no policy version {version}")
        self.version = version


class AlreadyActive(Exception):
    """A rollback to the version that is already the newest would change nothing."""


class PolicyTooLarge(Exception):
    """The version, as an event (document, source and report), is over the store's size limit."""


@dataclass(frozen=True, slots=True)
class PolicyRecord:
    """One version, without its document: who made it, when, and why."""

    version: int
    kind: Kind
    name: str
    author: str
    at: str  # RFC 3339, when the change was made
    comment: str  # the publish comment, or the rollback's reason
    rolled_back_to: int | None
    warnings: tuple[Mapping[str, str], ...]

    def to_json(self) -> dict[str, Any]:
        return {"version": self.version, "kind": self.kind, "name": self.name, "author": self.author,
                "at": self.at, "comment": self.comment, "rolled_back_to": self.rolled_back_to,
                "warnings": [dict(w) for w in self.warnings]}


@dataclass(frozen=True, slots=True)
class StoredPolicy:
    """One version with its document (authoritative) and the text it was published as, if YAML."""

    record: PolicyRecord
    document: Mapping[str, Any]
    source: str | None

    def to_json(self) -> dict[str, Any]:
        return {**self.record.to_json(), "document": self.document, "source": self.source}


class ActivePolicy:
    """The policy in force in this process. The router calls `current()` for every contact."""

    __slots__ = ("_state",)

    def __init__(self, policy: CompiledPolicy, stored: StoredPolicy) -> None:
        self._state = (policy, stored)  # one tuple: the two are always swapped together

    def current(self) -> CompiledPolicy:
        return self._state[0]

    @property
    def version(self) -> int:
        return self._state[0].version

    def stored(self) -> StoredPolicy:
        return self._state[1]

    def replace(self, policy: CompiledPolicy, stored: StoredPolicy) -> None:
        self._state = (policy, stored)


@dataclass(frozen=True, slots=True)
class Change:
    """What a publish or a rollback stored, with the report it passed."""

    record: PolicyRecord
    report: ValidationReport


def record_of(event: RecordedEvent) -> PolicyRecord:
    data = event.data
    rolled_back = event.type == POLICY_ROLLED_BACK
    return PolicyRecord(
        version=event.version, kind="rolled_back" if rolled_back else "published",
        name=str(data.get("name", "")), author=str(data.get("author", event.metadata.get("actor", ""))),
        at=str(data.get("at", event.recorded_at.isoformat())),
        comment=str(data.get("reason" if rolled_back else "comment", "")),
        rolled_back_to=data.get("to_version") if rolled_back else None,
        warnings=tuple(data.get("warnings", ())),
    )


def stored_of(event: RecordedEvent) -> StoredPolicy:
    return StoredPolicy(record_of(event), event.data.get("document", {}), event.data.get("source"))


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


class PolicyService:
    """Publish, roll back and read policy versions; keep `active` current."""

    def __init__(self, store: EventStore, *, domain: str = "default",
                 clock: Callable[[], datetime] = _utc_now, poll_interval_s: float = 1.0,
                 board: TaskBoard | None = None) -> None:
        self._store = store
        self._board = board
        self._clock = clock
        self.stream_id = stream_id_for("policy", "versions", domain)
        self._domain = domain
        self._records: list[PolicyRecord] = []
        self._active: ActivePolicy | None = None
        self._compiled_ahead: dict[uuid.UUID, CompiledPolicy] = {}  # this process's own appends
        self._lock = asyncio.Lock()
        self._poll_interval_s = poll_interval_s
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def active(self) -> ActivePolicy:
        if self._active is None:
            raise RuntimeError("the policy service has not started")
        return self._active

    async def start(self) -> None:
        """Publish the default policy if the domain has none, load the newest, then follow the stream."""
        await self._store.wait_for_append(0)  # listen before the first read: no change slips between
        await self._seed()
        await self.refresh()
        if self._active is None:
            raise RuntimeError(f"no stored version of {self.stream_id} compiles; cannot route without a policy")
        self._task = supervised(self._follow(), f"policy-follower:{self._domain}", self._board)

    async def stop(self) -> None:
        # A flag, not task.cancel(): on Python 3.11 wait_for() can swallow a cancellation that
        # arrives as its inner wait completes, and the follower would then run for ever.
        self._stopping.set()
        if self._task is not None:
            await self._task

    def history(self) -> tuple[PolicyRecord, ...]:
        """Every version known to this process, oldest first (call `refresh` first to be sure)."""
        return tuple(self._records)

    async def get(self, version: int) -> StoredPolicy:
        if not 1 <= version <= MAX_VERSION:
            raise UnknownVersion(version)
        events = await self._store.read_stream(self.stream_id, from_version=version, limit=1)
        if not events or events[0].version != version:
            raise UnknownVersion(version)
        return stored_of(events[0])

    async def refresh(self) -> None:
        """Apply every version stored since the last one this process saw."""
        async with self._lock:
            known = self._records[-1].version if self._records else 0
            events = await self._store.read_stream(self.stream_id, from_version=known + 1)
            if events:
                self._apply(events)

    async def publish(self, doc: PolicyDocument, *, based_on: int, author: str, comment: str = "",
                      source: str | None = None, roster: Sequence[AgentProfile] | None = None) -> Change:
        """Store `doc` as version `based_on + 1`. Raises PolicyInvalid, VersionConflict, PolicyTooLarge."""
        report = validate_document(doc, roster)
        if not report.ok:
            raise PolicyInvalid(report)
        version = based_on + 1
        data = {"version": version, "name": doc.name, "document": doc.to_data(), "source": source,
                "author": author, "comment": comment}
        return await self._append(POLICY_PUBLISHED, data, report, compile_policy(doc, version), based_on)

    async def rollback(self, to_version: int, *, based_on: int | None, author: str, reason: str,
                       roster: Sequence[AgentProfile] | None = None) -> Change:
        """A new version `based_on + 1` whose document is `to_version`'s (`based_on` None: on the
        newest version, whichever it is). Raises UnknownVersion, AlreadyActive, PolicyInvalid
        (the old document no longer passes), VersionConflict."""
        old = await self.get(to_version)
        newest = await self._store.stream_version(self.stream_id)
        if based_on is None:
            # Still safe against a concurrent change: the append below expects `newest`, so a
            # version stored meanwhile makes it a conflict, never a silent overwrite.
            based_on = newest
        if based_on != newest:
            raise VersionConflict(newest, based_on)
        if to_version == newest:
            raise AlreadyActive(f"version {to_version} is the newest version already")
        doc = document_from_data(dict(old.document))
        report = validate_document(doc, roster)
        if not report.ok:
            raise PolicyInvalid(report)
        version = based_on + 1
        data = {"version": version, "to_version": to_version, "name": doc.name, "document": dict(old.document),
                "source": old.source, "author": author, "reason": reason}
        return await self._append(POLICY_ROLLED_BACK, data, report, compile_policy(doc, version), based_on)

    async def _append(self, kind: str, data: dict[str, Any], report: ValidationReport,
                      compiled: CompiledPolicy, based_on: int) -> Change:
        at = self._clock().isoformat()
        data = {**data, "at": at, "warnings": [i.to_json() for i in report.warnings]}
        metadata = ev_metadata(actor=data["author"], correlation_id=f"policy:{data['version']}", channel="admin",
                               received_at=at)
        event = NewEvent(kind, data, metadata)
        self._compiled_ahead[event.event_id] = compiled
        try:
            # Why the expected version is enough: a second admin who read the same version
            # appends at the same expected version and gets ConcurrencyError, never a merge.
            await self._store.append(self.stream_id, [event], based_on if based_on > 0 else NO_STREAM)
            await self.refresh()
        except ConcurrencyError as exc:
            raise VersionConflict(exc.actual, based_on) from None
        except EventTooLargeError as exc:
            raise PolicyTooLarge(exc.message) from None
        finally:
            self._compiled_ahead.pop(event.event_id, None)
        return Change(self._records[data["version"] - 1], report)  # versions run 1, 2, 3... in the list

    async def _seed(self) -> None:
        """The default policy as version 1 when the domain has none.

        Several processes may start at once: each appends the same event id at NO_STREAM, so
        the store keeps one; the others get the first append's result back or a ConcurrencyError
        (an admin published in between), and both mean there is a policy now.
        """
        if await self._store.stream_version(self.stream_id) > 0:
            return
        doc = load_default_policy()
        at = self._clock().isoformat()
        data = {"version": 1, "name": doc.name, "document": doc.to_data(), "source": default_policy_text(),
                "author": SYSTEM_ACTOR, "comment": "the default policy, published on first start",
                "at": at, "warnings": [i.to_json() for i in validate_document(doc).warnings]}
        event_id = uuid.uuid5(_SEED_NAMESPACE, f"{self._domain}:default-policy")
        event = NewEvent(POLICY_PUBLISHED, data, ev_metadata(actor=SYSTEM_ACTOR, correlation_id="policy:1", channel="router", received_at=at),
                         event_id=event_id)
        try:
            await self._store.append(self.stream_id, [event], NO_STREAM)
        except ConcurrencyError:
            pass

    def _apply(self, events: Sequence[RecordedEvent]) -> None:
        self._records.extend(record_of(e) for e in events)
        for event in reversed(events):  # the newest version that compiles becomes active
            compiled = self._compiled_ahead.pop(event.event_id, None) or self._compile(event)
            if compiled is not None:
                if self._active is None:
                    self._active = ActivePolicy(compiled, stored_of(event))
                else:
                    self._active.replace(compiled, stored_of(event))
                log.info("policy version %d of %s is active", event.version, self.stream_id)
                return

    def _compile(self, event: RecordedEvent) -> CompiledPolicy | None:
        """A stored version that no longer compiles (e.g. written by newer code) is skipped, loudly."""
        try:
            return compile_policy(document_from_data(event.data.get("document")), event.version)
        except PolicyError as exc:
            log.error("policy version %d of %s does not compile, keeping the previous one: %s",
                      event.version, self.stream_id, exc)
            return None

    async def _follow(self) -> None:
        """Re-read the stream after append notifications (at most every MIN_REFRESH_S) and every poll.

        Why the stream and not a log subscription: a stream read sees a version the moment it
        commits, while the log is only readable below the xmin horizon, which any long transaction
        in the cluster holds back. Versions are contiguous, so `refresh` never skips one.
        """
        while not self._stopping.is_set():
            await self._until_appended()
            if self._stopping.is_set():
                return
            try:
                await self.refresh()
            except StoreUnavailableError as exc:
                log.warning("policy follower: %s; retrying in %.1f s", exc.message, self._poll_interval_s)
                await self._pause(self._poll_interval_s)
            except Exception:  # a follower that dies silently would freeze the policy: log and go on
                log.exception("policy follower of %s failed; retrying", self.stream_id)
                await self._pause(self._poll_interval_s)
            await self._pause(MIN_REFRESH_S)

    async def _until_appended(self) -> None:
        """Until the store signals an append, the poll interval passes, or stop() is called."""
        waits = {asyncio.ensure_future(self._store.wait_for_append(self._poll_interval_s)),
                 asyncio.ensure_future(self._stopping.wait())}
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiting in waits:
                waiting.cancel()
            await asyncio.gather(*waits, return_exceptions=True)

    async def _pause(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self._stopping.wait(), seconds)
        except TimeoutError:
            pass
