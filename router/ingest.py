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
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from channels.adapters import Translation, customer_key, translate
from channels.events import contact_event_id, contact_id_for, contact_stream_id
from channels.native import NativeEvent, channel_of
from channels.security import mask_phone
from channels.view import fold
from eventstore import ConcurrencyError, NewEvent, RecordedEvent
from eventstore.port import EventStore

from .customers import CustomerState

log = logging.getLogger(__name__)

IGNORED = "GatewayEventIgnored"
_MAX_ATTEMPTS = 8


class IdempotencyConflict(Exception):
    """The gateway reused an event id for a different body."""


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


class IngestService:
    def __init__(self, store: EventStore, customers: CustomerState, *, domain: str = "default") -> None:
        self._store = store
        self._customers = customers
        self._domain = domain

    async def ingest(self, native: NativeEvent, raw_body: bytes) -> Receipt:
        channel = channel_of(native)
        contact_id = contact_id_for(channel, native.gateway_session_id, domain=self._domain)
        stream_id = contact_stream_id(contact_id, domain=self._domain)
        body_sha256 = hashlib.sha256(raw_body).hexdigest()
        for _ in range(_MAX_ATTEMPTS):
            history = await self._store.read_stream(stream_id)
            earlier = _receipt_of(history, native.event_id, body_sha256, contact_id)
            if earlier is not None:
                return earlier
            translation = self._translate(native, history)
            try:
                result = await self._store.append(
                    stream_id, self._events(native, translation, body_sha256), translation.expected_version
                )
            except ConcurrencyError:
                continue  # another event for this contact got in first: translate again on the new state
            self._log(native, translation, contact_id)
            return Receipt(contact_id, result.last_position, result.duplicate, translation.ignored)
        raise ConcurrencyError(stream_id, "a stable version", -1)

    def _translate(self, native: NativeEvent, history: list[RecordedEvent]) -> Translation:
        view = fold((e.type, e.data) for e in history)
        profile = self._customers.find(customer_key(native, view))
        prior = self._customers.history(profile.customer_id if profile else None)
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
        caller = getattr(getattr(native, "caller", None), "number", None)
        log.debug("contact %s: %s from %s", contact_id, [e.TYPE for e in translation.events], mask_phone(caller))


def _receipt_of(history: list[RecordedEvent], gateway_event_id: str, body_sha256: str, contact_id: str) -> Receipt | None:
    stored = [e for e in history if e.metadata.get("gateway_event_id") == gateway_event_id]
    if not stored:
        return None
    if stored[0].metadata.get("body_sha256") != body_sha256:
        raise IdempotencyConflict(
            f"event_id {gateway_event_id!r} was already used for a different request body; "
            "a retry must resend exactly the same body"
        )
    ignored = stored[-1].data.get("reason") if stored[-1].type == IGNORED else None
    return Receipt(contact_id, stored[-1].position, duplicate=True, ignored=ignored)
