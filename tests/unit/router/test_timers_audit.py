"""Audit of the timers and the timer wheel: deadlines that must fire once, at their time."""

from __future__ import annotations

import asyncio
import time

import pytest

from policies.vocabulary import Channel, Presence
from router import events as ev
from router.decide import place
from router.scheduler import TimerScheduler
from router.state import WAITING
from router.timers import Timer, TimerSettings, fire, timers_for_contact
from tests.unit.router.builders import NOW, POLICY, Log
from tests.unit.router.test_routing import offers, placed
from tests.unit.router.test_scheduler import until


async def test_a_timer_armed_into_the_bucket_whose_tick_is_running_still_fires() -> None:
    """Two escalation steps due at the same instant (a default step and the rule's, both at
    90 s): the first fires, its event re-arms the contact's timers from inside the tick, and
    the second lands in the bucket being fired. APScheduler refused to run a second job with
    the id of one still running ("maximum number of running instances reached"), and the
    step never fired."""
    fired: list[str] = []
    scheduler: TimerScheduler

    async def on_fire(timer: Timer) -> None:
        fired.append(timer.key)
        if timer.key == "escalate:c1:0":  # the step's event lands: the next step is armed
            scheduler.reconcile("c1", [Timer("escalate:c1:1", timer.due_s, "escalate", "c1", "1")])
            await asyncio.sleep(0.05)  # the rest of the fire (an append) takes a while

    scheduler = TimerScheduler(on_fire, resolution_s=0.1)
    scheduler.start()
    try:
        due = time.time() + 0.2
        scheduler.reconcile("c1", [Timer("escalate:c1:0", due, "escalate", "c1", "0")])
        await until(lambda: "escalate:c1:1" in fired, timeout_s=2.0)
        assert fired == ["escalate:c1:0", "escalate:c1:1"] and scheduler.armed == 0
    finally:
        scheduler.shutdown()


async def test_one_timer_that_fails_does_not_take_its_bucket_mates_with_it() -> None:
    fired: list[str] = []

    async def on_fire(timer: Timer) -> None:
        fired.append(timer.key)
        if timer.ref == "c1":
            raise RuntimeError("a bug in one fire")

    scheduler = TimerScheduler(on_fire, resolution_s=0.1)
    scheduler.start()
    try:
        due = time.time() + 0.2
        scheduler.reconcile("c1", [Timer("sla:c1", due, "sla", "c1")])
        scheduler.reconcile("c2", [Timer("sla:c2", due + 0.001, "sla", "c2")])
        await until(lambda: "sla:c2" in fired, timeout_s=2.0)
        assert scheduler.armed == 0
    finally:
        scheduler.shutdown()


# -- pure timers over events ------------------------------------------------------------------


SETTINGS = TimerSettings(disconnect_grace_s=15, max_missed_offers=2)


def _expire(log: Log, contact_id: str) -> float:
    timer = next(t for t in timers_for_contact(log.state.contacts[contact_id]) if t.kind == "offer_expiry")
    for decision in fire(log.state, timer, timer.due_s, SETTINGS):
        log.commit(decision)
    return timer.due_s


def test_an_agent_set_away_for_missed_offers_hands_its_other_pending_offers_on() -> None:
    """Set away by the timer, the agent kept its other pending offers until each expired in
    turn (the contacts waited for an agent known to be away), unlike an agent who goes away
    by itself (`set_presence`), whose offers are handed on at once."""
    log = Log()
    log.agent("a1")  # three chats at once
    placed(log, "c1", channel=Channel.WEBCHAT)
    assert offers(log, NOW) == {"c1": "a1"}
    placed(log, "c2", channel=Channel.WEBCHAT)
    assert offers(log, NOW + 5) == {"c2": "a1"}
    at_s = _expire(log, "c1")  # missed one
    placed(log, "c3", channel=Channel.WEBCHAT)
    assert offers(log, at_s + 1)["c3"] == "a1"  # (and c1 again: nobody else is free)
    _expire(log, "c2")  # missed two in a row: away
    agent = log.state.agents["a1"]
    assert agent.presence is Presence.AWAY
    assert agent.offers == {} and log.state.contacts["c3"].status == WAITING
    assert log.state.contacts["c3"].tried == {"a1": "revoked"}


def _fire_steps_until(log: Log, contact_id: str, action: str, now_s: float, **kw: object) -> dict[str, object]:
    """Fire the contact's escalation timers in turn at `now_s` (a router back after a while)
    until the step doing `action` is applied; the data of the events it appended."""
    for _ in range(20):
        timer = next(t for t in timers_for_contact(log.state.contacts[contact_id]) if t.kind == "escalate")
        (decision,) = fire(log.state, timer, now_s, SETTINGS, POLICY.queues, **kw)  # type: ignore[arg-type]
        log.commit(decision)
        events = dict(decision.parts[0].events)
        if events[ev.ESCALATION_APPLIED]["action"] == action:
            return events
    raise AssertionError(f"no {action} step")


TUESDAY_19_45 = NOW + 9.75 * 3600  # Tue 2026-09-22 19:45 in Shanghai: the bank closes at 20:00
WEDNESDAY_08 = NOW + 22 * 3600


def test_a_callback_step_applied_late_does_not_call_back_in_the_past_outside_business_hours() -> None:
    """The sign-language desk offers a callback after 600 s of waiting. Its slot is planned at
    placement for the moment the step is due (19:55, still open). Applied late (the router
    was down from 19:50 to 21:30), the step scheduled that past slot: the callback fell due
    at once, at 21:30, after hours. Applied late it must take the next slot from then."""
    log = Log()
    log.contact("c1", channel=Channel.VIDEO, sign_language="csl")
    log.commit(place(log.state, log.state.contacts["c1"], POLICY, TUESDAY_19_45))
    late_s = TUESDAY_19_45 + 105 * 60  # 21:30
    events = _fire_steps_until(log, "c1", "offer_callback", late_s, policy=POLICY)
    assert events[ev.CALLBACK_SCHEDULED]["callback_at_s"] == WEDNESDAY_08
    [callback] = [t for t in timers_for_contact(log.state.contacts["c1"]) if t.kind == "callback"]
    assert callback.due_s == WEDNESDAY_08


def test_a_callback_step_applied_on_time_keeps_its_planned_slot() -> None:
    log = Log()
    log.contact("c1", channel=Channel.VIDEO, sign_language="csl")
    log.commit(place(log.state, log.state.contacts["c1"], POLICY, TUESDAY_19_45))
    planned = next(s for s in log.state.contacts["c1"].plan.escalations if s.action.value == "offer_callback")
    events = _fire_steps_until(log, "c1", "offer_callback", TUESDAY_19_45 + planned.after_s, policy=POLICY)
    assert events[ev.CALLBACK_SCHEDULED]["callback_at_s"] == planned.params["callback_at_s"]


def test_a_follow_up_fired_again_after_a_stale_append_records_its_real_due_time() -> None:
    """A timer whose decision was stale is fired again 0.1 s later (the service re-arms a copy
    with that time as `due_s`): the FollowUpDue it then appends stated the retry's time as
    the deadline, not the plan's (48 h after the complaint was placed)."""
    from dataclasses import replace

    from policies.vocabulary import Intent

    log = Log()
    placed(log, "c1", intent=Intent.COMPLAINT)
    due_s = log.state.contacts["c1"].plan.deadlines[0].due_s
    [timer] = [t for t in timers_for_contact(log.state.contacts["c1"]) if t.kind == "deadline"]
    retry = replace(timer, due_s=due_s + 30.1)  # re-armed after a stale append
    (decision,) = fire(log.state, retry, due_s + 30.1, SETTINGS)
    data = dict(decision.parts[0].events)[ev.FOLLOW_UP_DUE]
    assert data["due_s"] == due_s == NOW + 48 * 3600


# -- re-placements and wrap-ups ------------------------------------------------------------


def test_placing_a_complaint_again_does_not_push_its_follow_up_deadline_back() -> None:
    """The gateway states the intent again ten minutes in (IVR re-classification, a new
    repeat count): the contact is placed again, and its 48-hour follow-up moved ten minutes
    later, although its wait (queued_at_s) still counts from the first placement."""
    from policies.vocabulary import Intent

    log = Log()
    placed(log, "c1", intent=Intent.COMPLAINT)
    contact = log.state.contacts["c1"]
    log.add("contact-default:c1", ev.CONTACT_INTENT_CHANGED, {"contact_id": "c1", "intent": "complaint",
                                                               "repeat_count": 2})
    log.commit(place(log.state, contact, POLICY, NOW + 600))
    [timer] = [t for t in timers_for_contact(contact) if t.kind == "deadline"]
    assert timer.due_s == NOW + 48 * 3600


def test_a_second_completion_does_not_cut_the_first_contacts_wrap_up_short() -> None:
    """A chat agent completes a private-banking chat (wrap-up 60 s) and, 5 s later, a general
    one (30 s): the wrap-up ended at the later start + 30 s, 25 s before the private-banking
    contact's own wrap-up was over."""
    from policies.vocabulary import Segment
    from router.commands import accept, complete

    log = Log()
    log.agent("a1", skills={"vip": 5, "senior": 5, "general": 5})
    placed(log, "vip", channel=Channel.WEBCHAT, segment=Segment.VIP)
    placed(log, "gen", channel=Channel.WEBCHAT)
    assert offers(log) == {"vip": "a1", "gen": "a1"}
    for contact_id in ("vip", "gen"):
        log.commit(accept(log.state, "a1", log.state.contacts[contact_id].offer.offer_id, NOW + 1))
    log.commit(complete(log.state, "a1", "vip", "resolved", NOW + 100))
    log.commit(complete(log.state, "a1", "gen", "resolved", NOW + 105))
    assert log.state.agents["a1"].wrapup_until_s == NOW + 160
