"""A contact's current state, folded from its stream: the `GET /v1/contacts/{id}` view.

`evolve(view, event_type, data)` applies one stored event; `fold` applies many.
Every event on the stream advances `version` (also event types this module does
not know, e.g. the router's), so `version` is always the expected version for
the next append.

Statuses: pending (only out-of-order events seen so far, e.g. a message before
its session's start) -> self_service (in the IVR or with the bot) -> waiting
(wants an agent) -> connected (an agent took it; from the router's event) ->
abandoned (left while waiting) or ended. abandoned and ended are final.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, fields, replace
from datetime import datetime
from enum import StrEnum
from operator import attrgetter
from typing import Any, Final

from policies.vocabulary import Channel, ContactFacts, Intent

from .events import facts_from_data, facts_to_data


class ContactStatus(StrEnum):
    PENDING = "pending"
    SELF_SERVICE = "self_service"
    WAITING = "waiting"
    CONNECTED = "connected"
    ABANDONED = "abandoned"
    ENDED = "ended"


FINAL_STATUSES: Final = frozenset({ContactStatus.ABANDONED, ContactStatus.ENDED})
_BEFORE_ARRIVAL: Final = frozenset({ContactStatus.PENDING, ContactStatus.SELF_SERVICE})
# The router's event that puts an agent on the contact. Its name is the router's to
# choose; this is the one place to change if it differs.
CONNECTED_EVENT_TYPES: Final = frozenset({"ContactAssigned"})
# The router's events that put a connected contact back in a queue (a transfer, a callback's
# time): a customer who leaves from there abandoned a wait.
WAITING_AGAIN_EVENT_TYPES: Final = frozenset({"ContactRequeued", "CallbackDue"})


@dataclass(frozen=True, slots=True)
class ContactView:
    contact_id: str
    channel: Channel
    status: ContactStatus = ContactStatus.PENDING
    version: int = 0
    gateway_session_id: str | None = None
    customer_id: str | None = None
    caller_number: str | None = field(default=None, repr=False)
    caller_masked: str | None = None
    dialled_line: str | None = None
    locale: str | None = None
    sign_language: str | None = None
    entry_point: str | None = None
    facts: ContactFacts | None = None
    intent_source: str | None = None
    handed_off: bool = False
    message_count: int = 0
    opened_at: datetime | None = None
    arrived_at: datetime | None = None
    abandoned_at: datetime | None = None
    ended_at: datetime | None = None
    last_event_at: datetime | None = None
    waited_s: float | None = None
    ended_by: str | None = None
    end_cause: str | None = None

    @property
    def is_final(self) -> bool:
        return self.status in FINAL_STATUSES

    @property
    def is_opened(self) -> bool:
        return self.opened_at is not None

    @property
    def has_arrived(self) -> bool:
        return self.arrived_at is not None

    def to_data(self) -> dict[str, Any]:
        """JSON for the API: the caller's number masked, no message texts."""
        return {
            "contact_id": self.contact_id,
            "channel": self.channel.value,
            "status": self.status.value,
            "version": self.version,
            "gateway_session_id": self.gateway_session_id,
            "customer_id": self.customer_id,
            "caller": self.caller_masked,
            "dialled_line": self.dialled_line,
            "locale": self.locale,
            "entry_point": self.entry_point,
            "facts": None if self.facts is None else facts_to_data(self.facts),
            "intent_source": self.intent_source,
            "handed_off": self.handed_off,
            "message_count": self.message_count,
            **{name: _iso(getattr(self, name)) for name in _TIMES},
            "waited_s": self.waited_s,
            "ended_by": self.ended_by,
            "end_cause": self.end_cause,
        }


_TIMES: Final = ("opened_at", "arrived_at", "abandoned_at", "ended_at", "last_event_at")


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def _at(data: Mapping[str, Any]) -> datetime:
    return datetime.fromisoformat(data["occurred_at"])


def _later(current: datetime | None, moment: datetime) -> datetime:
    return moment if current is None or moment > current else current


def evolve(view: ContactView | None, event_type: str, data: Mapping[str, Any]) -> ContactView:
    """The view after one more event of its stream."""
    base = view if view is not None else ContactView(data["contact_id"], Channel(data["channel"]))
    apply = _APPLY.get(event_type)
    if apply is None:
        changes: dict[str, Any] = {"version": base.version + 1}
        if event_type in CONNECTED_EVENT_TYPES and base.status is ContactStatus.WAITING:
            changes["status"] = ContactStatus.CONNECTED
        elif event_type in WAITING_AGAIN_EVENT_TYPES and base.status is ContactStatus.CONNECTED:
            changes["status"] = ContactStatus.WAITING
        return _replaced(base, changes)
    changes = apply(base, data)
    changes["version"] = base.version + 1
    changes["last_event_at"] = _later(base.last_event_at, _at(data))
    return _replaced(base, changes)


_FIELD_NAMES: Final = tuple(f.name for f in fields(ContactView))
_FIELD_INDEX: Final = {name: index for index, name in enumerate(_FIELD_NAMES)}
_all_values: Final = attrgetter(*_FIELD_NAMES)


def _replaced(view: ContactView, changes: Changes) -> ContactView:
    """`dataclasses.replace(view, **changes)`, about twice as fast: this runs for every event
    ingested, and `replace` checks and copies all 24 fields one by one in Python. Here one C
    call reads them all, and the constructor takes them by position (in field order)."""
    values = list(_all_values(view))
    for name, value in changes.items():
        values[_FIELD_INDEX[name]] = value  # an unknown name fails here, as it would in replace
    return ContactView(*values)


def fold(events: Iterable[tuple[str, Mapping[str, Any]]]) -> ContactView | None:
    view: ContactView | None = None
    for event_type, data in events:
        view = evolve(view, event_type, data)
    return view


# Each of these says what one event changes in the view (the fields to replace).
Changes = dict[str, Any]


def _opened(view: ContactView, data: Mapping[str, Any]) -> Changes:
    status = ContactStatus.SELF_SERVICE if view.status is ContactStatus.PENDING else view.status
    return {
        "status": status,
        "opened_at": _at(data),
        "gateway_session_id": data["gateway_session_id"],
        "customer_id": view.customer_id or data["customer_id"],
        "caller_number": data["caller_number"],
        "caller_masked": data["caller_masked"],
        "dialled_line": data["dialled_line"],
        "locale": data["locale"],
        "sign_language": data["sign_language"],
        "entry_point": data["entry_point"],
    }


def _arrived(view: ContactView, data: Mapping[str, Any]) -> Changes:
    status = ContactStatus.WAITING if view.status in _BEFORE_ARRIVAL else view.status
    return {
        "status": status,
        "arrived_at": _at(data),
        "facts": facts_from_data(data),
        "intent_source": data["intent_source"],
        "gateway_session_id": view.gateway_session_id or data["gateway_session_id"],
        "customer_id": data["customer_id"] or view.customer_id,
        "caller_masked": view.caller_masked or data["caller_masked"],
    }


def _intent_changed(view: ContactView, data: Mapping[str, Any]) -> Changes:
    if view.facts is None:
        return {}
    facts = replace(view.facts, intent=Intent(data["intent"]), repeat_count=data["repeat_count"])
    return {"facts": facts, "intent_source": data["source"]}


def _message(view: ContactView, data: Mapping[str, Any]) -> Changes:
    return {"message_count": view.message_count + 1}


def _handed_off(view: ContactView, data: Mapping[str, Any]) -> Changes:
    return {"handed_off": True}


def _abandoned(view: ContactView, data: Mapping[str, Any]) -> Changes:
    return {"status": ContactStatus.ABANDONED, "abandoned_at": _at(data), "waited_s": data["waited_s"]}


def _ended(view: ContactView, data: Mapping[str, Any]) -> Changes:
    status = ContactStatus.ABANDONED if view.status is ContactStatus.ABANDONED else ContactStatus.ENDED
    return {"status": status, "ended_at": _at(data), "ended_by": data["ended_by"], "end_cause": data["cause"]}


_APPLY: Final[Mapping[str, Callable[[ContactView, Mapping[str, Any]], Changes]]] = {
    "ContactOpened": _opened,
    "ContactArrived": _arrived,
    "ContactIntentChanged": _intent_changed,
    "MessageReceived": _message,
    "BotHandedOff": _handed_off,
    "CustomerAbandoned": _abandoned,
    "ContactEnded": _ended,
}
