"""Ingest: a gateway's native event becomes contact events on the contact's stream.

Idempotency comes from the log itself. Every event appended for a gateway event
carries that event's id in its metadata, and its event id is derived from it:
- a repeat that arrives after the first was stored finds it on the stream and gets
  the first answer back, appending nothing;
- two copies racing each other translate to the same event ids, so the store keeps
  one and answers the other with the first one's positions.
A native event that changes nothing (a retried start, a message after the end) is
still recorded, as `GatewayEventIgnored` with the reason, so that a repeat of it
gets the same answer and an auditor sees what the gateway sent.

What this process knows of a contact (its view, its version and the answers it
gave) is kept in a bounded memo, so the hot path appends without reading the
stream first. The memo also learns from the process's log follower (through
`CustomerState`): the router appends to contact streams too (ContactQueued,
OfferMade...), and knowing those spares the gateway's next event for the contact a
failed append. The log stays the authority: every append carries the expected
version the memo was built at, so a memo that is stale (another instance
appended since, the follower is behind, a restart emptied it) makes the append
fail or come back as a repeat; only the events after the memo's version are then
read, and the event translated again. A contact this process has never seen is
first tried as a new stream: most are.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from channels.adapters import Translation, customer_key, translate
from channels.events import CONTACT_CATEGORY, contact_event_id, contact_id_for, contact_stream_id
from channels.native import NativeEvent, channel_of
from channels.security import mask_phone
from channels.view import ContactView, evolve
from eventstore import AppendResult, ConcurrencyError, DuplicateEventError, NewEvent, RecordedEvent
from eventstore.port import EventStore

from .customers import CustomerState

log = logging.getLogger(__name__)

IGNORED = "GatewayEventIgnored"
_MAX_ATTEMPTS = 8
DEFAULT_MEMO_CONTACTS = 50_000
LEARN_NEW_CONTACTS_WITHIN_S = 600.0  # contacts opened elsewhere are remembered if this recent
_CONTACT_STREAM_PREFIX = f"{CONTACT_CATEGORY}-"


class IdempotencyConflict(Exception):
    """The gateway reused an event id for a different body."""


class ContactBusy(Exception):
    """The contact's stream kept moving under this event (other processes appending to it
    all the while): nothing was stored for it, and the gateway may send it again."""


class _Turns:
    """One contact's requests in this process, taking turns (see `IngestService.ingest`)."""

    __slots__ = ("lock", "users")

    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.users = 0


@dataclass(frozen=True, slots=True)
class Receipt:
    contact_id: str
    position: int
    duplicate: bool = False
    ignored: str | None = None

    def to_data(self) -> dict[str, Any]:
        body: dict[str, Any] = {"contact_id": self.contact_id, "position": self.position}
        if self.duplicate:
            body["duplicate"] = True
        if self.ignored:
            body["ignored"] = self.ignored
        return body


@dataclass(frozen=True, slots=True)
class Answer:
    """The first answer to one gateway event, and the body it answered."""

    body_sha256: str
    position: int
    ignored: str | None


@dataclass(slots=True)
class Known:
    """A contact stream as far as this process knows: the view and the answers given.

    Always exactly the stream's first `version` events: each change below applies only
    the event right after `version`, so a Known shared by concurrent requests (and fed
    by the log follower too) never folds an event twice or skips one.
    """

    view: ContactView | None = None
    answers: dict[str, Answer] = field(default_factory=dict)

    @property
    def version(self) -> int:
        return self.view.version if self.view is not None else 0

    @classmethod
    def of(cls, history: Iterable[RecordedEvent]) -> Known:
        """Built from the stream itself (the same fold as `channels.view.fold`)."""
        known = cls()
        for event in history:
            known.learn(event)
        return known

    def copy(self) -> Known:
        return Known(self.view, dict(self.answers))

    def learn(self, event: RecordedEvent) -> None:
        """Apply one more event of the stream (the one at `version + 1`) read from the log."""
        self.view = evolve(self.view, event.type, event.data)
        gateway_event_id = event.metadata.get("gateway_event_id")
        if gateway_event_id is None:
            return
        first = self.answers.get(gateway_event_id)
        ignored = event.data.get("reason") if event.type == IGNORED else None
        # The first body stays; the answer is the gateway event's last position.
        sha = first.body_sha256 if first else event.metadata.get("body_sha256", "")
        self.answers[gateway_event_id] = Answer(sha, event.position, ignored)

    def answer(self, gateway_event_id: str, body_sha256: str, contact_id: str,
               raw_sha256: str | None = None) -> Receipt | None:
        earlier = self.answers.get(gateway_event_id)
        if earlier is None:
            return None
        # `raw_sha256`: events stored before the digest was of the event's content were
        # recorded with the digest of the raw body; a byte-identical retry of one still matches.
        if earlier.body_sha256 not in (body_sha256, raw_sha256):
            raise IdempotencyConflict(
                f"event_id {gateway_event_id!r} was already used for a different event; "
                "a retry must resend the same event (key order and spacing may differ)"
            )
        return Receipt(contact_id, earlier.position, duplicate=True, ignored=earlier.ignored)

    def appended(self, gateway_event_id: str, body_sha256: str, events: list[NewEvent],
                 result: AppendResult, ignored: str | None) -> None:
        for event, version in zip(events, result.versions):
            # The log follower may have handed us our own events already (they were
            # committed before this request resumed): those are in the view.
            if version > self.version:
                self.view = evolve(self.view, event.type, event.data)
        self.answers[gateway_event_id] = Answer(body_sha256, result.last_position, ignored)


class ContactMemo:
    """The most recently used contacts' `Known`, at most `max_contacts` of them."""

    def __init__(self, max_contacts: int = DEFAULT_MEMO_CONTACTS) -> None:
        self._max_contacts = max_contacts
        self._known: OrderedDict[str, Known] = OrderedDict()

    def get(self, stream_id: str) -> Known | None:
        known = self._known.get(stream_id)
        if known is not None:
            self._known.move_to_end(stream_id)
        return known

    def put(self, stream_id: str, known: Known) -> None:
        self._known[stream_id] = known
        self._known.move_to_end(stream_id)
        while len(self._known) > self._max_contacts:
            self._known.popitem(last=False)

    def forget(self, stream_id: str) -> None:
        self._known.pop(stream_id, None)

    def learn(self, events: Sequence[RecordedEvent]) -> None:
        """Bring remembered contacts up to the log (fed by the process's log follower).

        The router appends to contact streams too (ContactQueued, OfferMade...); learning
        those here spares the gateway's next event for that contact a failed append and a
        read. Only the event right after a Known's version is applied; anything else (our
        own appends, already applied; a gap) is left to the expected-version check.
        """
        fresh_after_s = time.time() - LEARN_NEW_CONTACTS_WITHIN_S
        for event in events:
            if not event.stream_id.startswith(_CONTACT_STREAM_PREFIX):
                continue
            known = self._known.get(event.stream_id)  # no move_to_end: this is not a use
            if known is None and event.version == 1 and event.recorded_at.timestamp() > fresh_after_s:
                # A contact another process opened (`serve --workers N`: the kernel spreads a
                # gateway's connections, so a contact's next event often reaches another
                # worker). Remembering it from its first event spares that worker an append
                # tried as a new stream, refused, and a read of the stream. Only recent ones:
                # replaying an old log at start-up need not rebuild every contact's view.
                known = Known()
                self.put(event.stream_id, known)
            if known is not None and event.version == known.version + 1:
                try:
                    known.learn(event)
                except Exception:  # the follower feeds the router too: never fail it over a cache
                    log.exception("contact memo could not apply %s of %s", event.type, event.stream_id)
                    self.forget(event.stream_id)


class IngestService:
    def __init__(self, store: EventStore, customers: CustomerState, *, domain: str = "default",
                 memo: ContactMemo | None = None) -> None:
        self._store = store
        self._customers = customers
        self._domain = domain
        self._memo = memo if memo is not None else ContactMemo()
        self._turns: dict[str, _Turns] = {}
        customers.also_feed(self._memo.learn)

    async def ingest(self, native: NativeEvent, raw_body: bytes) -> Receipt:
        channel = channel_of(native)
        contact_id = contact_id_for(channel, native.gateway_session_id, domain=self._domain)
        stream_id = contact_stream_id(contact_id, domain=self._domain)
        # Why one at a time per contact: events of one contact that arrive together (a burst
        # of chat messages) would otherwise all append at the same expected version, and all
        # but one retry, again and again: with ten at once some ran out of attempts. In turn,
        # each appends at the version the one before it left, and only other processes'
        # appends (the router's, another worker's) can still make one try again.
        turns = self._turns.get(stream_id)
        if turns is None:
            turns = self._turns[stream_id] = _Turns()
        turns.users += 1
        try:
            async with turns.lock:
                return await self._ingest(native, raw_body, contact_id, stream_id)
        finally:
            turns.users -= 1
            if not turns.users:
                del self._turns[stream_id]

    async def _ingest(self, native: NativeEvent, raw_body: bytes, contact_id: str, stream_id: str) -> Receipt:
        # The digest of the event's content, not of its bytes: a gateway that serialises its
        # retry again (other key order, spacing, 12 for 12.0) sends the same event.
        body_sha256 = hashlib.sha256(native.model_dump_json().encode()).hexdigest()
        raw_sha256 = hashlib.sha256(raw_body).hexdigest()
        known, fresh = self._memo.get(stream_id) or Known(), False
        for _ in range(_MAX_ATTEMPTS):
            earlier = known.answer(native.event_id, body_sha256, contact_id, raw_sha256)
            if earlier is not None:
                return earlier
            translation = self._translate(native, known.view)
            events = self._events(native, translation, body_sha256)
            try:
                result = await self._store.append(stream_id, events, translation.expected_version)
            except (ConcurrencyError, DuplicateEventError) as exc:
                if fresh and isinstance(exc, DuplicateEventError):
                    raise  # read just now: the ids are another stream's (a reused event_id)
                known, fresh = await self._read(stream_id, known), True
                continue  # another event for this contact got in first: translate again on the log
            if result.duplicate:
                if not fresh:
                    known, fresh = await self._read(stream_id, known), True
                    continue  # stored before this process knew of it: the log has the first answer
                self._memo.forget(stream_id)  # a copy raced us since the read: learn it from the log
                return Receipt(contact_id, result.last_position, True, translation.ignored)
            known.appended(native.event_id, body_sha256, events, result, translation.ignored)
            self._memo.put(stream_id, known)
            self._log(native, translation, contact_id)
            return Receipt(contact_id, result.last_position, False, translation.ignored)
        self._memo.forget(stream_id)
        raise ContactBusy(f"contact {contact_id} kept changing while this event was being stored; send it again")

    async def _read(self, stream_id: str, known: Known) -> Known:
        """`known` brought up to the log: only the events after its version are read.

        `known` is always a prefix of the stream (see `Known`), so its tail is all that is
        missing. The events go into a copy, taken before the read: other requests for this
        contact (and the log follower) may hold `known` and fold the same events into it.
        """
        self._memo.forget(stream_id)
        caught_up = known.copy()
        for event in await self._store.read_stream(stream_id, caught_up.version + 1):
            caught_up.learn(event)
        return caught_up

    def _translate(self, native: NativeEvent, view: ContactView | None) -> Translation:
        key = customer_key(native, view)
        profile = self._customers.find(key)
        # A customer the gateway names (an app user, a logged-in visitor, an IVR-verified id)
        # has a contact history whether or not the directory holds a profile for them.
        prior = self._customers.history(profile.customer_id if profile else key.customer_id)
        return translate(native, view, profile, prior, domain=self._domain)

    def _events(self, native: NativeEvent, translation: Translation, body_sha256: str) -> list[NewEvent]:
        channel = channel_of(native).value
        metadata = {
            "correlation_id": translation.contact_id,
            "causation_id": native.event_id,
            "actor": f"gateway:{channel}",
            "channel": channel,
            "gateway_event_id": native.event_id,
            "body_sha256": body_sha256,
            "received_at": datetime.now(timezone.utc).isoformat(),
        }
        if not translation.events:
            event_id = contact_event_id(channel_of(native), native.event_id, 0, domain=self._domain)
            data = {"contact_id": translation.contact_id, "event_type": native.event_type, "reason": translation.ignored}
            return [NewEvent(IGNORED, data, metadata, event_id=event_id)]
        return [
            NewEvent(event.TYPE, event.to_data(), metadata, event_id=event_id)
            for event, event_id in zip(translation.events, translation.event_ids)
        ]

    def _log(self, native: NativeEvent, translation: Translation, contact_id: str) -> None:
        if translation.ignored:
            log.info("gateway %s event %s for contact %s ignored: %s", channel_of(native).value,
                     native.event_type, contact_id, translation.ignored)
            return
        if log.isEnabledFor(logging.DEBUG):
            caller = getattr(getattr(native, "caller", None), "number", None)
            log.debug("contact %s: %s from %s", contact_id, [e.TYPE for e in translation.events], mask_phone(caller))
