"""Translate a gateway's native event into contact events: pure, no I/O, no clock.

`translate(native, contact, profile, history)` takes the contact's current view
(None for a new stream), the customer's profile (looked up with `customer_key`)
and the customer's recent contacts (for the repeat count), and says what to append.

Gateways retry and their events race: what happens for every status and every
order is set out in `channels.lifecycle`; this module only says what each native
event means (a start, an agent request, a message, an end) and what it tells us.

Duplicates of one gateway event (same `event_id`) are the idempotency layer's: it
answers them from the first result. Should two copies still race past it, both
produce the same `event_ids` (derived from the gateway event id), so the store
refuses the second.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlsplit

from policies.vocabulary import Channel, Intent

from .app import AppBotHandoff, AppConversationClosed, AppConversationOpened, AppMessageCreated
from .directory import CustomerKey, CustomerProfile, is_elderly
from .events import (
    DEFAULT_DOMAIN,
    BotHandedOff,
    ContactEvent,
    ContactOpened,
    TranscriptEntry,
    contact_event_id,
    contact_id_for,
    contact_stream_id,
)
from .lifecycle import Ignored, Input, Outcome, hints_from, leave, open_contact, record_message, request_agent
from .native import NativeEvent, channel_of
from .native_bot import BotHandoff, bot_intent
from .phone import PhoneCallEnded, PhoneCallHungUp, PhoneCallStarted, PhoneIvrCompleted
from .repeat import PriorContact
from .security import mask_phone
from .video import VideoEnded, VideoRequested
from .view import ContactView
from .webchat import WebchatBotHandoff, WebchatMessageCreated, WebchatSessionClosed, WebchatSessionStarted


@dataclass(frozen=True, slots=True)
class Translation:
    """What to append for one native event: `events` with `event_ids`, at `expected_version`.

    When nothing is to be appended, `events` is empty and `ignored` says why.
    """

    contact_id: str
    stream_id: str
    expected_version: int  # events already on the stream (0: a new stream)
    events: tuple[ContactEvent, ...] = ()
    event_ids: tuple[uuid.UUID, ...] = ()
    ignored: str | None = None


def translate(
    native: NativeEvent,
    contact: ContactView | None,
    profile: CustomerProfile | None,
    history: Sequence[PriorContact] = (),
    *,
    domain: str = DEFAULT_DOMAIN,
) -> Translation:
    channel = channel_of(native)
    contact_id = contact_id_for(channel, native.gateway_session_id, domain=domain)
    if contact is not None and contact.contact_id != contact_id:
        raise ValueError(f"view of contact {contact.contact_id} given for contact {contact_id}")
    inp = Input(native, channel, contact_id, contact, profile, history)
    outcome = _HANDLERS[type(native)](inp)
    stream_id = contact_stream_id(contact_id, domain=domain)
    version = contact.version if contact else 0
    if isinstance(outcome, Ignored):
        return Translation(contact_id, stream_id, version, ignored=outcome.reason)
    ids = tuple(contact_event_id(channel, native.event_id, i, domain=domain) for i in range(len(outcome)))
    return Translation(contact_id, stream_id, version, outcome, ids)


def customer_key(native: NativeEvent, contact: ContactView | None) -> CustomerKey:
    """Whom to look up in the directory for this event (before calling `translate`)."""
    known = CustomerKey(contact.customer_id, contact.caller_number) if contact else CustomerKey()
    if isinstance(native, PhoneCallStarted):
        return CustomerKey(known.customer_id, native.caller.number)
    # Built directly, not with dataclasses.replace: this runs for every gateway event.
    if isinstance(native, PhoneIvrCompleted) and native.ivr.verified_customer_id:
        return CustomerKey(native.ivr.verified_customer_id, known.phone_number)
    if isinstance(native, WebchatSessionStarted) and native.visitor.customer_id:
        return CustomerKey(native.visitor.customer_id, known.phone_number)
    if isinstance(native, AppConversationOpened):
        return CustomerKey(native.user.user_id, known.phone_number)
    if isinstance(native, VideoRequested) and native.customer_id:
        return CustomerKey(native.customer_id, known.phone_number)
    return known


def _customer_id(inp: Input, stated: str | None) -> str | None:
    return inp.profile.customer_id if inp.profile else stated


def _handed_off(inp: Input, handoff: BotHandoff) -> BotHandedOff:
    transcript = tuple(TranscriptEntry(line.author, line.text, line.sent_at) for line in handoff.transcript)
    return BotHandedOff(
        contact_id=inp.contact_id,
        channel=inp.channel,
        occurred_at=inp.native.occurred_at,
        bot_id=handoff.bot_id,
        detected_intent=bot_intent(handoff.detected_intent),
        bot_label=handoff.detected_intent,
        confidence=handoff.confidence,
        reason=handoff.reason,
        transcript=transcript,
    )


def _bot_handoff(inp: Input) -> Outcome:
    handoff: BotHandoff = inp.native.handoff
    intent = bot_intent(handoff.detected_intent)
    return request_agent(inp, intent, "bot", hints_from(inp.view), (_handed_off(inp, handoff),))


def _page(url: str) -> str:
    parts = urlsplit(url)  # no query or fragment: they may hold personal data
    return f"{parts.netloc}{parts.path}"


# -- per native event type ----------------------------------------------------------------


def _phone_started(inp: Input) -> Outcome:
    n: PhoneCallStarted = inp.native
    opened = ContactOpened(
        contact_id=inp.contact_id,
        channel=Channel.PHONE,
        occurred_at=n.occurred_at,
        gateway_session_id=n.call_id,
        customer_id=_customer_id(inp, None),
        caller_number=n.caller.number,
        caller_masked=mask_phone(n.caller.number),
        dialled_number=n.dialled.number,
        dialled_line=n.dialled.line,
    )
    fast = is_elderly(inp.profile, hints_from(opened), n.occurred_at.date())
    return open_contact(inp, opened, (Intent.SPEAK_TO_AGENT, "elderly_fast_path") if fast else None)


def _phone_ivr(inp: Input) -> Outcome:
    n: PhoneIvrCompleted = inp.native
    hints = hints_from(inp.view, chosen_language=n.ivr.language, customer_id=n.ivr.verified_customer_id)
    return request_agent(inp, Intent(n.ivr.intent), "ivr", hints)


_PHONE_CAUSE_ENDERS: Final = {"network_failure": "network", "timeout": "timeout"}
_PHONE_PARTIES: Final = {"caller": "customer", "agent": "agent", "system": "system"}


def _phone_ended_by(party: str | None, cause: str) -> str:
    """Who ended the call; `call.ended` names no party, so its ender is unknown."""
    return _PHONE_CAUSE_ENDERS.get(cause) or _PHONE_PARTIES.get(party or "", "unknown")


def _phone_hung_up(inp: Input) -> Outcome:
    n: PhoneCallHungUp = inp.native
    return leave(inp, _phone_ended_by(n.party, n.cause), n.cause)


def _phone_ended(inp: Input) -> Outcome:
    n: PhoneCallEnded = inp.native
    return leave(inp, _phone_ended_by(None, n.cause), n.cause)


def _webchat_started(inp: Input) -> Outcome:
    n: WebchatSessionStarted = inp.native
    opened = ContactOpened(
        contact_id=inp.contact_id,
        channel=Channel.WEBCHAT,
        occurred_at=n.occurred_at,
        gateway_session_id=n.session_id,
        customer_id=_customer_id(inp, n.visitor.customer_id),
        locale=n.visitor.locale,
        entry_point=_page(n.page.url),
    )
    return open_contact(inp, opened, None)


def _webchat_message(inp: Input) -> Outcome:
    m = inp.native.message
    return record_message(inp, m.message_id, "customer" if m.author == "visitor" else "bot", m.text)


def _webchat_closed(inp: Input) -> Outcome:
    closed_by: str = inp.native.closed_by
    return leave(inp, "customer" if closed_by == "visitor" else closed_by, closed_by)


def _video_requested(inp: Input) -> Outcome:
    n: VideoRequested = inp.native
    opened = ContactOpened(
        contact_id=inp.contact_id,
        channel=Channel.VIDEO,
        occurred_at=n.occurred_at,
        gateway_session_id=n.room.room_id,
        customer_id=_customer_id(inp, n.customer_id),
        sign_language=n.sign_language,
        entry_point=n.room.device,
    )
    return open_contact(inp, opened, (Intent.SPEAK_TO_AGENT, "sign_language_desk"))


def _video_ended(inp: Input) -> Outcome:
    ended_by: str = inp.native.ended_by
    return leave(inp, ended_by, ended_by)


def _app_opened(inp: Input) -> Outcome:
    n: AppConversationOpened = inp.native
    opened = ContactOpened(
        contact_id=inp.contact_id,
        channel=Channel.APP,
        occurred_at=n.occurred_at,
        gateway_session_id=n.conversation_id,
        customer_id=_customer_id(inp, n.user.user_id),
        locale=n.user.locale,
        entry_point=n.client.screen,
    )
    return open_contact(inp, opened, None)


def _app_message(inp: Input) -> Outcome:
    m = inp.native.message
    return record_message(inp, m.message_id, m.sender, m.text)


def _app_closed(inp: Input) -> Outcome:
    closed_by: str = inp.native.closed_by
    return leave(inp, closed_by, closed_by)


_HANDLERS: Final[Mapping[type, Callable[[Input], Outcome]]] = {
    PhoneCallStarted: _phone_started,
    PhoneIvrCompleted: _phone_ivr,
    PhoneCallHungUp: _phone_hung_up,
    PhoneCallEnded: _phone_ended,
    WebchatSessionStarted: _webchat_started,
    WebchatMessageCreated: _webchat_message,
    WebchatBotHandoff: _bot_handoff,
    WebchatSessionClosed: _webchat_closed,
    VideoRequested: _video_requested,
    VideoEnded: _video_ended,
    AppConversationOpened: _app_opened,
    AppMessageCreated: _app_message,
    AppBotHandoff: _bot_handoff,
    AppConversationClosed: _app_closed,
}
