"""Gateway events out of order and twice: nothing crashes, nothing is duplicated.

The named cases pin down what happens; the permutation tests then feed every
order of a contact's events (with a retried start and repeated messages) and
check the stream's invariants.
"""

from __future__ import annotations

import itertools
from collections import Counter
from typing import Any

import pytest

from channels.adapters import translate
from channels.events import ContactIntentChanged
from channels.native import NativeEvent
from channels.view import ContactStatus, evolve
from policies.vocabulary import Channel, Intent

from .samples import SENIOR, VIP, native, run, stored, types

PHONE, WEBCHAT, VIDEO, APP = Channel.PHONE, Channel.WEBCHAT, Channel.VIDEO, Channel.APP
RETRIED_START = {"event_id": "tel-sh01-000000184467-retry"}


def test_hang_up_before_the_start_ends_the_contact_and_the_late_start_is_ignored() -> None:
    view, (hang_up, start, ivr) = run([native(PHONE, n) for n in ("call.hung_up", "call.started", "ivr.completed")])
    assert types(hang_up) == ["ContactEnded"] and hang_up.events[0].stage == "none"  # type: ignore[union-attr]
    assert start.events == () and start.ignored == "contact already ended: a late start is not reopened"
    assert ivr.events == () and ivr.ignored == "contact already ended"
    assert view is not None and view.status is ContactStatus.ENDED and view.facts is None


def test_a_retried_start_is_ignored() -> None:
    view, (_, retry) = run([native(PHONE, "call.started"), native(PHONE, "call.started", RETRIED_START)])
    assert retry.events == () and retry.ignored == "contact already opened: a retried start"
    assert retry.expected_version == 1
    assert view is not None and view.version == 1


def test_a_retried_elderly_start_does_not_arrive_twice() -> None:
    _, (first, retry) = run([native(PHONE, "call.started"), native(PHONE, "call.started", RETRIED_START)], SENIOR)
    assert types(first) == ["ContactOpened", "ContactArrived"] and retry.events == ()


def test_an_ivr_result_before_the_start_routes_on_what_is_known() -> None:
    view, (ivr, start) = run([native(PHONE, "ivr.completed"), native(PHONE, "call.started")])
    assert types(ivr) == ["ContactArrived"]
    assert types(start) == ["ContactOpened"]  # recorded late, not a second arrival
    assert view is not None and view.status is ContactStatus.WAITING
    assert view.caller_masked == "+86*******5678" and view.opened_at is not None


def test_an_ivr_result_after_the_elderly_fast_path_changes_the_intent_once() -> None:
    events = [native(PHONE, "call.started"), native(PHONE, "ivr.completed"), native(PHONE, "ivr.completed")]
    view, (_, ivr, again) = run(events, SENIOR)
    (changed,) = ivr.events
    assert isinstance(changed, ContactIntentChanged)
    assert (changed.previous_intent, changed.intent, changed.source) == (Intent.SPEAK_TO_AGENT, Intent.LOST_CARD, "ivr")
    assert again.events == () and again.ignored == "contact already waiting for an agent"
    assert view is not None and view.facts is not None and view.facts.intent is Intent.LOST_CARD


def test_a_message_after_the_close_is_not_recorded() -> None:
    names = ("session.started", "session.closed", "message.created")
    view, (*_, message) = run([native(WEBCHAT, n) for n in names])
    assert message.events == () and message.ignored == "contact already ended: message not recorded"
    assert view is not None and view.message_count == 0


def test_a_message_before_the_start_is_kept_and_the_start_still_opens() -> None:
    view, (message, start) = run([native(APP, "message.created"), native(APP, "conversation.opened")])
    assert types(message) == ["MessageReceived"] and types(start) == ["ContactOpened"]
    assert view is not None and (view.status, view.message_count) == (ContactStatus.SELF_SERVICE, 1)


def test_a_hand_off_before_the_start_arrives_and_the_start_is_recorded() -> None:
    view, (handoff, start) = run([native(WEBCHAT, "bot.handoff"), native(WEBCHAT, "session.started")], VIP)
    assert types(handoff) == ["BotHandedOff", "ContactArrived"] and types(start) == ["ContactOpened"]
    assert view is not None and view.status is ContactStatus.WAITING and view.locale == "en-US"


def test_a_second_hand_off_is_ignored() -> None:
    events = [native(APP, "conversation.opened"), native(APP, "bot.handoff"), native(APP, "bot.handoff")]
    _, (*_, again) = run(events)
    assert again.events == () and again.ignored == "contact already waiting for an agent"


def test_once_an_agent_has_the_contact_a_hang_up_is_no_abandonment() -> None:
    view, _ = run([native(PHONE, "call.started"), native(PHONE, "ivr.completed")])
    view = evolve(view, "ContactAssigned", {"contact_id": view.contact_id, "agent_id": "a-1"})  # type: ignore[union-attr]
    assert view.status is ContactStatus.CONNECTED
    late_ivr = translate(native(PHONE, "ivr.completed", {"ivr.intent": "fraud"}), view, None)
    assert late_ivr.events == () and late_ivr.ignored == "contact already with an agent"
    view, (hang_up,) = run([native(PHONE, "call.hung_up")], view=view)
    assert types(hang_up) == ["ContactEnded"] and hang_up.events[0].stage == "connected"  # type: ignore[union-attr]
    assert view is not None and view.status is ContactStatus.ENDED


def test_a_customer_who_hangs_up_waiting_again_after_a_transfer_abandoned() -> None:
    view, _ = run([native(PHONE, "call.started"), native(PHONE, "ivr.completed")])
    view = evolve(view, "ContactAssigned", {"contact_id": view.contact_id, "agent_id": "a-1"})  # type: ignore[union-attr]
    view = evolve(view, "ContactRequeued", {"contact_id": view.contact_id, "queue_id": "general"})
    assert view.status is ContactStatus.WAITING
    view, (hang_up,) = run([native(PHONE, "call.hung_up")], view=view)
    assert types(hang_up) == ["CustomerAbandoned", "ContactEnded"]
    assert view is not None and view.status is ContactStatus.ABANDONED


def test_a_second_end_is_ignored() -> None:
    ends = [native(VIDEO, "video.ended"), native(VIDEO, "video.ended", {"event_id": "vr-evt-000780"})]
    view, (_, first, second) = run([native(VIDEO, "video.requested"), *ends])
    assert types(first) == ["CustomerAbandoned", "ContactEnded"]
    assert second.events == () and second.ignored == "contact already ended"
    assert view is not None and view.version == 4


# -- every order ------------------------------------------------------------------------------

SINGLETONS = ("ContactOpened", "ContactArrived", "BotHandedOff", "CustomerAbandoned", "ContactEnded")


def _sequences() -> list[tuple[str, list[NativeEvent]]]:
    return [
        ("phone", [native(PHONE, n) for n in ("call.started", "ivr.completed", "call.hung_up", "call.ended")]
         + [native(PHONE, "call.started", RETRIED_START)]),
        ("webchat", [native(WEBCHAT, n) for n in ("session.started", "message.created", "bot.handoff", "session.closed")]
         + [native(WEBCHAT, "bot.handoff", {"event_id": "wc-evt-retry"}),
            native(WEBCHAT, "message.created", {"event_id": "wc-evt-m2", "message.message_id": "m-000013"})]),
        ("video", [native(VIDEO, n) for n in ("video.requested", "video.ended")]
         + [native(VIDEO, "video.requested", {"event_id": "vr-evt-retry"})]),
        ("app", [native(APP, n) for n in ("conversation.opened", "message.created", "bot.handoff", "conversation.closed")]
         + [native(APP, "conversation.opened", {"event_id": "app-evt-retry"})]),
    ]  # fmt: skip


def _check_stream(stream: list[tuple[str, dict[str, Any]]]) -> None:
    names = [event_type for event_type, _ in stream]
    counts = Counter(names)
    assert all(counts[t] <= 1 for t in SINGLETONS), counts
    assert names[-1] == "ContactEnded", "every order ends, and nothing follows the end"
    if "CustomerAbandoned" in counts:
        assert names[-2] == "CustomerAbandoned" and "ContactArrived" in counts


@pytest.mark.parametrize(("name", "events"), _sequences(), ids=lambda v: v if isinstance(v, str) else "")
@pytest.mark.parametrize("profile", [None, SENIOR, VIP], ids=["unknown", "senior", "vip"])
def test_every_order_keeps_the_stream_sound(name: str, events: list[NativeEvent], profile: Any) -> None:
    for order in itertools.permutations(events):
        view = None
        stream: list[tuple[str, dict[str, Any]]] = []
        for event in order:
            translation = translate(event, view, profile)
            assert translation.expected_version == len(stream)
            assert bool(translation.events) != bool(translation.ignored)
            for contact_event in translation.events:
                stream.append((contact_event.TYPE, stored(contact_event.to_data())))
                view = evolve(view, *stream[-1])
        _check_stream(stream)
        assert view is not None and view.is_final and view.version == len(stream)
