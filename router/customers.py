"""The customer directory as a projection of the log, and the import service.

Each process keeps the directory and every customer's recent contacts in memory
(the ingest path looks them up thousands of times a second), fed by a subscription
over `customer` and `contact` events. Imports are events: `CustomerProfileImported`
on `customer-<domain>:<customer id>`, stored only when the profile differs from the
customer's current one, so importing the same file twice stores nothing the second time.
"""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Any

import orjson

from channels.customer_import import ImportReport
from channels.directory import CustomerDirectory, CustomerKey, CustomerProfile, Disability
from channels.repeat import PriorContact, prune, remember
from eventstore import ConcurrencyError, NewEvent, RecordedEvent, StoreUnavailableError, stream_id_for
from eventstore.port import EventStore
from policies.vocabulary import CallbackWindow, Segment

from .events import metadata

PROFILE_IMPORTED = "CustomerProfileImported"
_NAMESPACE = uuid.UUID("1b0f1f0e-8a57-4c55-9c3c-5f1d1a4b7e21")
_HISTORY_WINDOW = timedelta(days=8)  # a little over the 7-day repeat window
_DAY_S = 86_400
_IMPORT_ATTEMPTS = 5  # concurrent imports of one customer, each re-read before it is tried again
_IMPORT_READS = 3  # an import's re-reads at once (after a conflict): the pool's other connections stay free
_IMPORT_CHUNK = 500  # customers read together, and appended together


def profile_from_data(data: dict[str, Any]) -> CustomerProfile:
    birth = data.get("birth_date")
    return CustomerProfile(
        customer_id=data["customer_id"],
        phone_numbers=tuple(data.get("phone_numbers", ())),
        segment=Segment(data.get("segment", "mass")),
        birth_date=date.fromisoformat(birth) if birth else None,
        disabilities=frozenset(Disability(d) for d in data.get("disabilities", ())),
        preferred_language=data.get("preferred_language"),
        languages=frozenset(data.get("languages", ())),
        sign_language=data.get("sign_language"),
        callback_windows=tuple(CallbackWindow(w["start_min"], w["end_min"]) for w in data.get("callback_windows", ())),
        no_calls_from_unknown_numbers=bool(data.get("no_calls_from_unknown_numbers", False)),
        dedicated_agent=data.get("dedicated_agent"),
        tags=frozenset(data.get("tags", ())),
    )


class CustomerState:
    """Directory and recent-contact history, kept current from the log.

    It has no subscription of its own: the process's one log follower (the router
    service's) hands it every batch, so each event is read and decoded once.

    A customer's history is pruned when the customer comes back, and also once its contacts
    are old: every arrival is filed under its day (by the log's time), and when the log
    reaches a new day, the customers of days past the window are pruned, and dropped when
    nothing is left. Without that, every customer who came once stayed in memory (and in
    every snapshot) for good. All of it follows from the events alone, in log order, so a
    state restored from a snapshot and fed the rest equals one fed the whole log."""

    def __init__(self) -> None:
        self.directory = CustomerDirectory()
        self._history: dict[str, dict[str, PriorContact]] = {}
        self._contact_customer: dict[str, str] = {}
        self._by_day: dict[int, set[str]] = {}  # day (of the log's time) -> customers with arrivals filed then
        self._newest_day = 0
        self._also_fed: list[Callable[[Sequence[RecordedEvent]], None]] = []

    def also_feed(self, consumer: Callable[[Sequence[RecordedEvent]], None]) -> None:
        """Hand `consumer` every batch this state is fed (the ingest path's contact memo),
        so the one follower serves it too, with no wiring outside the ingest path."""
        self._also_fed.append(consumer)

    def snapshot_state(self) -> tuple[Any, ...]:
        return (self.directory, self._history, self._contact_customer, self._by_day, self._newest_day)

    def restore_state(self, saved: tuple[Any, ...]) -> None:
        self.directory, self._history, self._contact_customer, self._by_day, self._newest_day = saved

    def find(self, key: CustomerKey) -> CustomerProfile | None:
        return self.directory.find(key)

    def history(self, customer_id: str | None) -> Sequence[PriorContact]:
        return tuple(self._history.get(customer_id, {}).values()) if customer_id else ()

    def apply(self, events: Sequence[RecordedEvent]) -> None:
        for event in events:
            day = int(event.recorded_at.timestamp() // _DAY_S)
            if day > self._newest_day:  # per event, not per batch: the same in any batching
                self._newest_day = day
                self._sweep(event.recorded_at)
            if event.type == PROFILE_IMPORTED:
                self.directory.put(profile_from_data(event.data))
            elif event.type in ("ContactArrived", "ContactIntentChanged"):
                self._remember(event)
        for consume in self._also_fed:
            consume(events)

    def _remember(self, event: RecordedEvent) -> None:
        data = event.data
        customer_id = data.get("customer_id") or self._contact_customer.get(data.get("contact_id", ""))
        if not customer_id:
            return
        self._contact_customer[data["contact_id"]] = customer_id
        before = self._history.get(customer_id, {})
        history = prune(remember(before, event.type, data), event.recorded_at, _HISTORY_WINDOW)
        self._keep(customer_id, before, history)
        if event.type == "ContactArrived":
            self._by_day.setdefault(self._newest_day, set()).add(customer_id)

    def _keep(self, customer_id: str, before: dict[str, PriorContact], history: dict[str, PriorContact]) -> None:
        if history:
            self._history[customer_id] = history
        else:
            self._history.pop(customer_id, None)
        # A contact gone from the history can no longer be re-labelled there: its entry here
        # would only grow the map (and every snapshot) by one per contact, for ever.
        for gone in before.keys() - history.keys():
            self._contact_customer.pop(gone, None)

    def _sweep(self, now: datetime) -> None:
        """Prune the customers filed under days the window has left behind (each customer is
        looked at once per day it had arrivals, not every customer every day)."""
        # A day's arrivals were all recorded before its end: a full window after it, they are old.
        last_due = self._newest_day - _HISTORY_WINDOW.days - 1
        for day in [d for d in self._by_day if d <= last_due]:
            for customer_id in self._by_day.pop(day):
                before = self._history.get(customer_id)
                if before is None:
                    continue
                history = prune(before, now, _HISTORY_WINDOW)
                self._keep(customer_id, before, history)
                if history:  # still recent by its own clock: looked at again later
                    self._by_day.setdefault(self._newest_day, set()).add(customer_id)


@dataclass(frozen=True, slots=True)
class ImportOutcome:
    accepted: int
    unchanged: int
    report: ImportReport

    def to_data(self) -> dict[str, Any]:
        data = self.report.to_data()
        data.update({"stored": self.accepted - self.unchanged, "unchanged": self.unchanged})
        return data


class ImportIncomplete(Exception):
    """The store failed partway through an import: some profiles are stored, some are not.

    Each profile is its own small append, so that a large file never holds one long
    transaction open (every log follower waits behind an uncommitted transaction: one
    import must not stall routing). Re-sending the same file finishes the job: a profile
    stored already is the customer's current one, and is not stored twice.
    """

    def __init__(self, stored: int, unchanged: int, not_stored: int, cause: BaseException) -> None:
        super().__init__(f"{not_stored} profile(s) not stored: {cause}")
        self.stored, self.unchanged, self.not_stored = stored, unchanged, not_stored


async def import_profiles(store: EventStore, report: ImportReport, *, actor: str, domain: str) -> ImportOutcome:
    """Store each accepted profile as an event, unless it is the customer's profile already.

    In chunks of `_IMPORT_CHUNK` customers: one read for the chunk's streams (each one's newest
    event) instead of one per customer, then the chunk's appends together (the group commit
    batches them). Why chunks: a directory of 100,000 customers read one by one took 51 s,
    and starting all its appends at once would hold the connection pool and the event loop for
    seconds, with the router's log follower and the gateways' reads waiting behind the import.
    If the store becomes unavailable, what is not stored by then is reported, not tried on.
    """
    received_at = datetime.now(timezone.utc).isoformat()
    reads = asyncio.Semaphore(_IMPORT_READS)
    stored = unchanged = 0
    profiles = report.accepted
    for start in range(0, len(profiles), _IMPORT_CHUNK):
        chunk = profiles[start:start + _IMPORT_CHUNK]
        stream_ids = [stream_id_for("customer", p.customer_id, domain) for p in chunk]
        try:
            newest = await store.read_last_events(stream_ids)
        except StoreUnavailableError as exc:
            raise ImportIncomplete(stored, unchanged, len(profiles) - start, exc) from exc
        # return_exceptions: every append is waited for, so that the answer counts what is
        # stored (with a plain gather, appends still running after a failure could commit unseen).
        results = await asyncio.gather(*(
            _import_one(store, profile, stream_id, newest.get(stream_id), actor=actor, received_at=received_at,
                        reads=reads)
            for profile, stream_id in zip(chunk, stream_ids)
        ), return_exceptions=True)
        failures = [r for r in results if isinstance(r, BaseException)]
        stored += sum(r is True for r in results)
        unchanged += sum(r is False for r in results)
        if failures:
            unavailable = [f for f in failures if isinstance(f, StoreUnavailableError)]
            if len(unavailable) != len(failures):
                raise next(f for f in failures if not isinstance(f, StoreUnavailableError))
            raise ImportIncomplete(stored, unchanged, len(profiles) - start - (len(chunk) - len(failures)),
                                   unavailable[0])
    return ImportOutcome(len(profiles), unchanged, report)


async def _import_one(store: EventStore, profile: CustomerProfile, stream_id: str, newest: RecordedEvent | None, *,
                      actor: str, received_at: str, reads: asyncio.Semaphore) -> bool:
    """Make `profile` the customer's current one; False when it was already.

    Compared with the customer's stream (`newest`: its last event, read with the chunk), not
    with the history of imports: a profile that was current once, then replaced, and is
    imported again must become current again. The append expects the version read, and the
    event id comes from the content and that version, so two copies of one import racing each
    other (or a file sent again after a partial failure) store it once.
    """
    data = profile.to_data()
    digest = _digest(data)
    for attempt in range(_IMPORT_ATTEMPTS):
        if attempt:  # another import of this customer got in first: compare with it
            async with reads:
                newest = (await store.read_last_events([stream_id])).get(stream_id)
        if newest is not None and _digest(newest.data) == digest:
            return False
        version = newest.version if newest is not None else 0
        event = _profile_event(profile, data, digest, version, actor, received_at)
        try:
            result = await store.append(stream_id, [event], version)
        except ConcurrencyError:
            continue
        return not result.duplicate
    raise ConcurrencyError(stream_id, "a stable version", -1)


def _digest(data: dict[str, Any]) -> str:
    return hashlib.sha256(orjson.dumps(data, option=orjson.OPT_SORT_KEYS)).hexdigest()


def _profile_event(profile: CustomerProfile, data: dict[str, Any], digest: str, after_version: int,
                   actor: str, received_at: str) -> NewEvent:
    return NewEvent(
        PROFILE_IMPORTED,
        data,
        metadata(actor=actor, correlation_id=profile.customer_id, channel="admin", received_at=received_at),
        event_id=uuid.uuid5(_NAMESPACE, f"{profile.customer_id}:{digest}:{after_version}"),
    )
