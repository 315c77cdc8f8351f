"""The life of a contact at its gateway, whatever the channel, in any arrival order.

Each function takes the contact's current view and a native event's meaning
(a start, an agent request, a message, an end) and returns the contact events to
append, or `Ignored` with the reason. The rules, which keep every contact stream
to at most one ContactOpened, one ContactArrived, one BotHandedOff, one
CustomerAbandoned and one ContactEnded, with nothing after ContactEnded:

- `open_contact` (call started, session/conversation opened, video requested)
  appends ContactOpened, unless the contact is already opened (a retried start:
  ignored) or ended (a hang-up got there first: ignored). It also appends
  ContactArrived when the contact goes straight to a human (elderly line or a 60+
  caller, the sign-language desk) and has not arrived yet;
- `request_agent` (IVR completed, bot hand-off) appends ContactArrived (after
  BotHandedOff for a hand-off), even when the start has not been seen: the
  customer is waiting and is routed on what is known. On a contact already
  waiting it appends ContactIntentChanged if the intent differs (an IVR result
  after the elderly fast path), else nothing; with an agent or ended: nothing;
- `record_message` appends MessageReceived unless the contact has ended (a
  message before the start is kept: the stream is then "pending");
- `leave` (hang-up, call ended, closed, video ended) appends ContactEnded,
  preceded by CustomerAbandoned when the customer left (or timed out) while
  waiting. An end before anything else ends the contact at stage "none", so the
  late start is ignored. A second end is ignored.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Final

from policies.vocabulary import Channel, Intent

from .directory import CustomerProfile, GatewayHints, facts_for
from .events import (
    ContactArrived,
    ContactEnded,
    ContactEvent,
    ContactIntentChanged,
    ContactOpened,
    CustomerAbandoned,
    MessageReceived,
)
from .native_base import locale_language
from .repeat import PriorContact, repeat_count
from .video import SIGN_LANGUAGE_WRITTEN
from .view import ContactStatus, ContactView

# Ends that count as the customer leaving the queue (a network drop or a bot/agent
# closing the session is not the customer's choice).
ABANDONING: Final = frozenset({"customer", "timeout", "unknown"})


@dataclass(frozen=True, slots=True)
class Ignored:
    """Nothing to append, and why."""

    reason: str


Outcome = tuple[ContactEvent, ...] | Ignored


@dataclass(frozen=True, slots=True)
class Input:
    """One native event in context: its contact, the customer and their recent contacts."""

    native: Any  # the handler knows its own native type
    channel: Channel
    contact_id: str
    view: ContactView | None
    profile: CustomerProfile | None
    history: Sequence[PriorContact]

    @property
    def final(self) -> bool:
        return self.view is not None and self.view.is_final


def open_contact(inp: Input, opened: ContactOpened, straight_to_agent: tuple[Intent, str] | None) -> Outcome:
    if inp.final:
        return Ignored("contact already ended: a late start is not reopened")
    if inp.view is not None and inp.view.is_opened:
        return Ignored("contact already opened: a retried start")
    if straight_to_agent is None or (inp.view is not None and inp.view.has_arrived):
        return (opened,)
    intent, source = straight_to_agent
    return (opened, arrival(inp, hints_from(opened), intent, source, opened.caller_masked))


def request_agent(
    inp: Input, intent: Intent, source: str, hints: GatewayHints, preface: tuple[ContactEvent, ...] = ()
) -> Outcome:
    if inp.final:
        return Ignored("contact already ended")
    if inp.view is not None and inp.view.status is ContactStatus.CONNECTED:
        return Ignored("contact already with an agent")
    if inp.view is not None and inp.view.has_arrived:
        return change_intent(inp, inp.view, intent, source)
    masked = inp.view.caller_masked if inp.view else None
    return (*preface, arrival(inp, hints, intent, source, masked))


def record_message(inp: Input, message_id: str, author: str, text: str) -> Outcome:
    if inp.final:
        return Ignored("contact already ended: message not recorded")
    n = inp.native
    return (MessageReceived(inp.contact_id, inp.channel, n.occurred_at, message_id, author, text),)


def leave(inp: Input, ended_by: str, cause: str) -> Outcome:
    if inp.final:
        return Ignored("contact already ended")
    at = inp.native.occurred_at
    view = inp.view
    stage = view.status.value if view else "none"
    ended = ContactEnded(inp.contact_id, inp.channel, at, ended_by, cause, stage)
    if view is None or view.status is not ContactStatus.WAITING or ended_by not in ABANDONING:
        return (ended,)
    waited_s = max(0.0, (at - view.arrived_at).total_seconds()) if view.arrived_at else 0.0
    return (CustomerAbandoned(inp.contact_id, inp.channel, at, waited_s, cause), ended)


# -- shared pieces ----------------------------------------------------------------------


def hints_from(source: ContactOpened | ContactView | None, **choices: str | None) -> GatewayHints:
    """The gateway's hints recorded at the start, overridden by this event's `choices`."""
    if source is None:
        return GatewayHints(**choices)
    hints = GatewayHints(source.customer_id, source.dialled_line, None, _channel_language(source), source.sign_language)
    overrides = {k: v for k, v in choices.items() if v is not None}
    # Most calls override nothing: skip replace (slow) then, it would make an equal copy.
    return replace(hints, **overrides) if overrides else hints


def _channel_language(source: ContactOpened | ContactView) -> str | None:
    """The language the channel suggests: its locale, or the sign language's written one."""
    if source.locale:
        return locale_language(source.locale)
    return SIGN_LANGUAGE_WRITTEN.get(source.sign_language or "")


def arrival(inp: Input, hints: GatewayHints, intent: Intent, source: str, masked: str | None) -> ContactArrived:
    at = inp.native.occurred_at
    count = repeat_count(inp.history, intent=intent, now=at, contact_id=inp.contact_id)
    facts = facts_for(
        inp.contact_id, inp.channel, inp.profile, hints, intent=intent, repeat_count=count, on_date=at.date()
    )
    gateway_session_id = inp.native.gateway_session_id
    return ContactArrived(facts, at, gateway_session_id, source, inp.profile is not None, masked)


def change_intent(inp: Input, view: ContactView, intent: Intent, source: str) -> Outcome:
    if view.facts is None or view.facts.intent == intent:
        return Ignored("contact already waiting for an agent")
    at = inp.native.occurred_at
    count = repeat_count(inp.history, intent=intent, now=at, contact_id=inp.contact_id)
    changed = ContactIntentChanged(
        inp.contact_id, inp.channel, at, intent, view.facts.intent, source, count, view.facts.customer_id
    )
    return (changed,)
