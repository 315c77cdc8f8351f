"""Translation of each native event type, in order, for each channel."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

import pytest

from channels.adapters import customer_key, translate
from channels.directory import NO_UNKNOWN_NUMBERS_TAG, CustomerKey, CustomerProfile
from channels.events import (
    BotHandedOff,
    ContactArrived,
    ContactEnded,
    ContactOpened,
    CustomerAbandoned,
    MessageReceived,
    contact_event_id,
    contact_id_for,
)
from channels.repeat import PriorContact
from channels.view import ContactStatus
from policies.vocabulary import CallbackWindow, Channel, Intent, Need, Segment

from .samples import DEAF, SENIOR, VIP, native, run, types

PHONE, WEBCHAT, VIDEO, APP = Channel.PHONE, Channel.WEBCHAT, Channel.VIDEO, Channel.APP
CALL_ID = "c-20250314-0930-7f3a9c"


def arrived_of(translation: Any) -> ContactArrived:
    (arrived,) = [e for e in translation.events if isinstance(e, ContactArrived)]
    return arrived


# -- phone -----------------------------------------------------------------------------------


def test_call_started_on_the_main_line_opens_the_contact_in_the_ivr() -> None:
    view, (t,) = run([native(PHONE, "call.started")])
    (opened,) = t.events
    assert isinstance(opened, ContactOpened)
    assert t.contact_id == contact_id_for(PHONE, CALL_ID) == opened.contact_id
    assert t.stream_id == f"contact-default:{t.contact_id}"
    assert (t.expected_version, t.ignored) == (0, None)
    assert t.event_ids == (contact_event_id(PHONE, "tel-sh01-000000184467", 0),)
    assert (opened.caller_number, opened.caller_masked) == ("+8613812345678", "+86*******5678")
    assert (opened.dialled_number, opened.dialled_line) == ("95588", "main")
    assert view is not None and view.status is ContactStatus.SELF_SERVICE


def test_ivr_result_makes_the_caller_arrive_with_the_menu_intent() -> None:
    view, (_, t) = run([native(PHONE, "call.started"), native(PHONE, "ivr.completed")])
    assert types(t) == ["ContactArrived"]
    arrived = arrived_of(t)
    facts = arrived.facts
    assert (facts.intent, facts.language, facts.segment) == (Intent.LOST_CARD, "zh", Segment.MASS)
    assert facts.needs == frozenset()
    assert facts.customer_id == "C1000123"  # verified in the IVR, though not in the directory
    assert (arrived.intent_source, arrived.customer_known, arrived.caller_masked) == ("ivr", False, "+86*******5678")
    assert facts.dialled_line == "main"
    assert view is not None and view.status is ContactStatus.WAITING and view.version == 2


@pytest.mark.parametrize(
    ("changes", "profile"),
    [
        ({"dialled.line": "elderly"}, None),  # the elderly line, whoever calls
        ({}, SENIOR),  # sixty today
        ({"occurred_at": "2025-03-14T00:30:00+08:00"}, SENIOR),  # the local date counts, not UTC's
    ],
)
def test_elderly_callers_skip_the_ivr(changes: dict[str, Any], profile: CustomerProfile | None) -> None:
    view, (t,) = run([native(PHONE, "call.started", changes)], profile)
    assert types(t) == ["ContactOpened", "ContactArrived"]
    arrived = arrived_of(t)
    assert arrived.facts.intent is Intent.SPEAK_TO_AGENT
    assert Need.ELDERLY in arrived.facts.needs
    assert arrived.intent_source == "elderly_fast_path"
    assert view is not None and view.status is ContactStatus.WAITING


@pytest.mark.parametrize(
    ("birth_date", "elderly"),
    [(date(1965, 3, 15), False), (date(1965, 3, 14), True), (date(1930, 1, 1), True), (date(1990, 6, 1), False)],
)
def test_sixty_is_counted_from_the_birth_date(birth_date: date, elderly: bool) -> None:
    profile = CustomerProfile(customer_id="C9", birth_date=birth_date)
    _, (t,) = run([native(PHONE, "call.started")], profile)
    assert (len(t.events) == 2) is elderly


def test_english_line_caller_unknown_is_foreign_and_english() -> None:
    started = native(PHONE, "call.started", {"dialled": {"number": "+862195588", "line": "english"}})
    ivr = native(PHONE, "ivr.completed", {"ivr.language": "en", "ivr.verified_customer_id": None})
    _, (_, t) = run([started, ivr])
    facts = arrived_of(t).facts
    assert (facts.language, facts.languages, facts.needs) == ("en", frozenset({"en"}), frozenset({Need.FOREIGN}))
    assert (facts.dialled_line, facts.customer_id) == ("english", None)


def test_english_line_known_bilingual_customer_is_not_foreign() -> None:
    started = native(PHONE, "call.started", {"dialled.line": "english"})
    _, (_, t) = run([started, native(PHONE, "ivr.completed", {"ivr.language": "en"})], VIP)
    facts = arrived_of(t).facts
    assert (facts.language, facts.needs) == ("en", frozenset())


def test_known_vip_caller_brings_the_whole_profile() -> None:
    _, (_, t) = run([native(PHONE, "call.started"), native(PHONE, "ivr.completed", {"ivr.intent": "loan"})], VIP)
    arrived = arrived_of(t)
    facts = arrived.facts
    assert (facts.segment, facts.intent, facts.customer_id) == (Segment.VIP, Intent.LOAN, "C1000123")
    assert facts.dedicated_agent == "a-017"
    assert facts.tags == frozenset({"payroll", NO_UNKNOWN_NUMBERS_TAG})
    assert facts.callback_windows == (CallbackWindow(900, 1440),)
    assert facts.languages == frozenset({"zh", "en"})
    assert arrived.customer_known is True


def test_deaf_caller_from_the_profile() -> None:
    _, (_, t) = run([native(PHONE, "call.started"), native(PHONE, "ivr.completed")], DEAF)
    facts = arrived_of(t).facts
    assert (facts.needs, facts.sign_language) == (frozenset({Need.DEAF}), "csl")


def test_repeat_count_covers_seven_days_and_this_contact() -> None:
    at = datetime.fromisoformat("2025-03-14T09:30:47.020+08:00")
    history = [
        PriorContact("old-1", at - timedelta(days=1), Intent.LOST_CARD),
        PriorContact("old-2", at - timedelta(days=6, hours=23), Intent.LOST_CARD),
        PriorContact("old-3", at - timedelta(days=8), Intent.LOST_CARD),
        PriorContact("old-4", at - timedelta(hours=2), Intent.LOAN),
    ]
    _, (_, t) = run([native(PHONE, "call.started"), native(PHONE, "ivr.completed")], history=history)
    assert arrived_of(t).facts.repeat_count == 3


@pytest.mark.parametrize(
    ("ending", "changes", "expected", "ended_by"),
    [
        ("call.hung_up", {}, ["CustomerAbandoned", "ContactEnded"], "customer"),
        ("call.hung_up", {"party": "system"}, ["ContactEnded"], "system"),
        ("call.hung_up", {"cause": "network_failure"}, ["ContactEnded"], "network"),
        ("call.ended", {}, ["CustomerAbandoned", "ContactEnded"], "unknown"),  # the hang-up got lost
    ],
)
def test_ending_a_waiting_call(ending: str, changes: dict[str, Any], expected: list[str], ended_by: str) -> None:
    events = [native(PHONE, "call.started"), native(PHONE, "ivr.completed"), native(PHONE, ending, changes)]
    view, translations = run(events)
    assert types(translations[-1]) == expected
    ended = translations[-1].events[-1]
    assert isinstance(ended, ContactEnded) and (ended.ended_by, ended.stage) == (ended_by, "waiting")
    status = ContactStatus.ABANDONED if len(expected) == 2 else ContactStatus.ENDED
    assert view is not None and view.status is status and view.ended_at is not None


def test_abandonment_records_the_seconds_waited() -> None:
    events = [native(PHONE, n) for n in ("call.started", "ivr.completed", "call.hung_up")]
    view, translations = run(events)
    abandoned = translations[-1].events[0]
    assert isinstance(abandoned, CustomerAbandoned)
    assert abandoned.waited_s == pytest.approx(78.861)  # 09:30:47.020 -> 09:32:05.881
    assert view is not None and view.waited_s == pytest.approx(78.861)


def test_hanging_up_in_the_ivr_ends_without_abandonment() -> None:
    view, (_, t) = run([native(PHONE, "call.started"), native(PHONE, "call.hung_up")])
    (ended,) = t.events
    assert isinstance(ended, ContactEnded) and ended.stage == "self_service"
    assert view is not None and view.status is ContactStatus.ENDED


def test_the_normal_call_ended_after_hang_up_is_ignored() -> None:
    events = [native(PHONE, n) for n in ("call.started", "ivr.completed", "call.hung_up", "call.ended")]
    view, translations = run(events)
    assert translations[-1].events == () and translations[-1].ignored == "contact already ended"
    assert view is not None and view.version == 4


# -- web chat --------------------------------------------------------------------------------


def test_webchat_session_with_bot_then_hand_off() -> None:
    events = [native(WEBCHAT, n) for n in ("session.started", "message.created", "bot.handoff")]
    view, (started, message, handoff) = run(events)
    (opened,) = started.events
    assert isinstance(opened, ContactOpened)
    assert (opened.customer_id, opened.locale) == ("C2000456", "en-US")
    assert opened.entry_point == "www.bank.example/cards/credit/limit"
    (received,) = message.events
    assert isinstance(received, MessageReceived)
    assert (received.author, received.length_chars) == ("customer", 50)
    assert types(handoff) == ["BotHandedOff", "ContactArrived"]
    handed = handoff.events[0]
    assert isinstance(handed, BotHandedOff)
    assert (handed.detected_intent, handed.bot_label, len(handed.transcript)) == (Intent.CREDIT_CARD, "credit_card", 3)
    facts = arrived_of(handoff).facts
    # Unknown to the directory: mass segment, the channel's language (the browser's English).
    assert (facts.segment, facts.language, facts.customer_id) == (Segment.MASS, "en", "C2000456")
    assert facts.needs == frozenset({Need.FOREIGN})
    assert view is not None and (view.status, view.message_count, view.handed_off) == (ContactStatus.WAITING, 1, True)


def test_webchat_known_customer_is_served_in_the_preferred_language() -> None:
    events = [native(WEBCHAT, "session.started"), native(WEBCHAT, "bot.handoff")]
    _, (_, handoff) = run(events, VIP)
    facts = arrived_of(handoff).facts
    assert (facts.language, facts.segment, facts.needs) == ("zh", Segment.VIP, frozenset())


@pytest.mark.parametrize(
    ("closed_by", "expected"),
    [
        ("visitor", ["CustomerAbandoned", "ContactEnded"]),
        ("timeout", ["CustomerAbandoned", "ContactEnded"]),
        ("system", ["ContactEnded"]),
        ("agent", ["ContactEnded"]),
    ],
)
def test_webchat_closed_while_waiting(closed_by: str, expected: list[str]) -> None:
    events = [native(WEBCHAT, "session.started"), native(WEBCHAT, "bot.handoff")]
    events.append(native(WEBCHAT, "session.closed", {"closed_by": closed_by}))
    _, translations = run(events)
    assert types(translations[-1]) == expected


def test_bot_agent_request_is_speak_to_agent() -> None:
    handoff = native(WEBCHAT, "bot.handoff", {"handoff.detected_intent": "agent_request"})
    _, (_, t) = run([native(WEBCHAT, "session.started"), handoff])
    assert arrived_of(t).facts.intent is Intent.SPEAK_TO_AGENT


# -- video -----------------------------------------------------------------------------------


def test_sign_language_request_goes_straight_to_a_signing_agent() -> None:
    view, (t,) = run([native(VIDEO, "video.requested")], DEAF)
    assert types(t) == ["ContactOpened", "ContactArrived"]
    arrived = arrived_of(t)
    facts = arrived.facts
    assert (facts.intent, facts.sign_language, facts.language) == (Intent.SPEAK_TO_AGENT, "csl", "zh")
    assert facts.needs == frozenset({Need.DEAF})
    assert arrived.intent_source == "sign_language_desk"
    assert view is not None and view.status is ContactStatus.WAITING


def test_unknown_american_sign_language_user_is_deaf_and_foreign() -> None:
    _, (t,) = run([native(VIDEO, "video.requested", {"sign_language": "ase", "customer_id": None})])
    facts = arrived_of(t).facts
    assert (facts.language, facts.needs) == ("en", frozenset({Need.DEAF, Need.FOREIGN}))
    assert facts.customer_id is None


def test_video_ended_by_the_customer_while_waiting_is_abandoned() -> None:
    _, (_, t) = run([native(VIDEO, "video.requested"), native(VIDEO, "video.ended")])
    assert types(t) == ["CustomerAbandoned", "ContactEnded"]


# -- app -------------------------------------------------------------------------------------


def test_app_conversation_through_to_close() -> None:
    names = ("conversation.opened", "message.created", "bot.handoff", "conversation.closed")
    view, translations = run([native(APP, n) for n in names])
    assert [types(t) for t in translations] == [
        ["ContactOpened"],
        ["MessageReceived"],
        ["BotHandedOff", "ContactArrived"],
        ["CustomerAbandoned", "ContactEnded"],
    ]
    opened = translations[0].events[0]
    assert isinstance(opened, ContactOpened)
    assert (opened.customer_id, opened.locale, opened.entry_point) == ("C1000123", "zh-Hans-CN", "cards/detail")
    facts = arrived_of(translations[2]).facts
    assert (facts.intent, facts.language, facts.customer_id) == (Intent.FRAUD, "zh", "C1000123")
    assert view is not None and view.status is ContactStatus.ABANDONED and view.version == 6


# -- looking the customer up -----------------------------------------------------------------


def test_customer_keys() -> None:
    started_view, _ = run([native(PHONE, "call.started")])
    assert customer_key(native(PHONE, "call.started"), None) == CustomerKey(None, "+8613812345678")
    assert customer_key(native(PHONE, "ivr.completed"), started_view) == CustomerKey("C1000123", "+8613812345678")
    anonymous_ivr = native(PHONE, "ivr.completed", {"ivr.verified_customer_id": None})
    assert customer_key(anonymous_ivr, started_view) == CustomerKey(None, "+8613812345678")
    assert customer_key(native(WEBCHAT, "session.started"), None) == CustomerKey("C2000456")
    assert customer_key(native(APP, "conversation.opened"), None) == CustomerKey("C1000123")
    assert customer_key(native(VIDEO, "video.requested"), None) == CustomerKey("C3000789")
    assert customer_key(native(VIDEO, "video.ended"), None) == CustomerKey()


def test_a_view_of_another_contact_is_refused() -> None:
    other, _ = run([native(APP, "conversation.opened")])
    with pytest.raises(ValueError):
        translate(native(PHONE, "call.ended"), other, None)


def test_domain_goes_into_ids_and_stream() -> None:
    t = translate(native(PHONE, "call.started"), None, None, domain="shanghai")
    assert t.contact_id == contact_id_for(PHONE, CALL_ID, domain="shanghai") != contact_id_for(PHONE, CALL_ID)
    assert t.stream_id.startswith("contact-shanghai:")
