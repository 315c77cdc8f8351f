"""`contact-router check` and promised callbacks: a callback an escalation step or an
after-hours plan promises is slotted in the customer's windows and the bank's business hours,
carried out (CallbackDue) at or after its slot and not outside those hours, or still due at the
end of the log; never dropped, never early, and a hang-up after the promise is no abandon.

Clean logs come from the router's own decisions (`place`, `next_offers`, `fire`, the desk's
commands); a violation is such a log with one event tampered with or left out."""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast
from zoneinfo import ZoneInfo

import pytest

from policies.engine import CompiledPolicy, compile_policy
from policies.loader import document_from_data, load_default_policy
from policies.vocabulary import CallbackWindow, Channel, Intent, Need
from router import events as ev
from router.commands import accept, complete
from router.decide import Decision, place
from router.timers import TimerSettings, fire, timers_for_contact
from tests.unit.router.builders import POLICY, TimedLog, fire_due, route_round, tampered

SETTINGS = TimerSettings(disconnect_grace_s=15, max_missed_offers=5)
SHANGHAI = ZoneInfo("Asia/Shanghai")


def at(local: str) -> float:
    """A moment on the bank's clock (the default policy's zone)."""
    return datetime.strptime(local, "%Y-%m-%d %H:%M:%S").replace(tzinfo=SHANGHAI).timestamp()


TUESDAY_10 = at("2026-09-22 10:00:00")  # business hours: 08:00-20:00 on weekdays
MONDAY_22 = at("2026-09-21 22:00:00")  # after hours: the after_hours rule promises a callback
TUESDAY_08 = at("2026-09-22 08:00:00")  # the next opening


# -- driving the router as the service does ------------------------------------------------


def tick(log: TimedLog, now_s: float, policy: CompiledPolicy = POLICY,
         kinds: frozenset[str] | None = None) -> list[str]:
    """Fire every timer due by `now_s` (or only those of `kinds`); the event types decided."""
    return fire_due(log, now_s, policy, kinds, SETTINGS)


def route(log: TimedLog, now_s: float, policy: CompiledPolicy = POLICY) -> dict[str, str]:
    return route_round(log, now_s, policy, SETTINGS)


def offer_of(log: TimedLog, contact_id: str) -> str:
    """The id of the offer the contact has out."""
    offer = log.state.contacts[contact_id].offer
    assert offer is not None, f"{contact_id} has no offer out"
    return offer.offer_id


def answer(log: TimedLog, contact_id: str, agent_id: str, now_s: float, talk_s: float = 60.0) -> None:
    """The agent accepts the offer it has for the contact, talks, and completes it."""
    log.now_s = now_s
    log.commit(accept(log.state, agent_id, offer_of(log, contact_id), now_s))
    log.now_s = now_s + talk_s
    log.commit(complete(log.state, agent_id, contact_id, "resolved", now_s + talk_s))


def hang_up(log: TimedLog, contact_id: str, now_s: float, waited_s: float) -> None:
    log.now_s = now_s
    log.add(f"contact-default:{contact_id}", ev.CUSTOMER_ABANDONED, {"contact_id": contact_id, "waited_s": waited_s})
    log.add(f"contact-default:{contact_id}", ev.CONTACT_ENDED, {"contact_id": contact_id, "cause": "hung up"})


def later(log: TimedLog, now_s: float) -> None:
    """Something else written at `now_s`: the router was running then."""
    log.now_s = now_s
    log.add("agent-default:other", ev.AGENT_STATE_CHANGED, {"agent_id": "other", "state": "away", "at_s": now_s})


def violations(log: TimedLog, now_s: float | None = None) -> list[str]:
    return list(log.check(now_s)["violations"])


# -- a deaf customer on the video desk: a callback step after 600 s of waiting ---------------

WINDOW_15_18 = (CallbackWindow(15 * 60, 18 * 60),)


def video_caller_waits_for_a_callback(windows: tuple[CallbackWindow, ...] = WINDOW_15_18) -> TimedLog:
    """Nobody who signs is at the desk: the sign-language desk's steps apply, the last (600 s)
    promises a callback in the customer's window (15:00-18:00 here), and the customer hangs up."""
    log = TimedLog(TUESDAY_10 - 100)
    log.publish()
    log.agent("s1", skills={"sign_language": 4}, channels={"video": 1}, available=False, at_s=TUESDAY_10 - 100)
    log.now_s = TUESDAY_10
    log.contact("c1", channel=Channel.VIDEO, needs=frozenset({Need.DEAF}), sign_language="csl",
                callback_windows=windows)
    log.commit(place(log.state, log.state.contacts["c1"], POLICY, TUESDAY_10))
    for waited_s in (30, 120, 300, 600):
        tick(log, TUESDAY_10 + waited_s)
    hang_up(log, "c1", TUESDAY_10 + 700, 700.0)
    return log


def called_back_and_answered(log: TimedLog, due_s: float) -> None:
    assert tick(log, due_s) == [ev.CALLBACK_DUE]
    log.add("agent-default:s1", ev.AGENT_STATE_CHANGED, {"agent_id": "s1", "state": "available", "at_s": due_s})
    assert route(log, due_s + 1) == {"c1": "s1"}
    answer(log, "c1", "s1", due_s + 5)


def test_a_callback_promised_by_a_step_and_carried_out_in_the_customers_window_passes() -> None:
    log = video_caller_waits_for_a_callback()
    [promise] = [e.data for e in log.recorded if e.type == ev.CALLBACK_SCHEDULED]
    assert promise["callback_at_s"] == at("2026-09-22 15:00:00")
    called_back_and_answered(log, at("2026-09-22 15:00:00"))
    report = log.check()
    assert report["ok"], report["violations"]
    assert (report["callbacks_promised"], report["callbacks_due"], report["callbacks_owed"]) == (1, 1, 0)
    # The customer who hung up after the promise did not abandon: the callback is the answer.
    assert (report["abandoned"], report["hung_up_awaiting_callback"], report["completed"]) == (0, 1, 1)


def test_a_callback_still_to_come_at_the_end_of_the_log_is_owed_not_missed() -> None:
    log = video_caller_waits_for_a_callback()
    later(log, at("2026-09-22 14:58:00"))
    report = log.check()
    assert report["ok"], report["violations"]
    assert (report["callbacks_owed"], report["not_finished"]) == (1, 1)


def test_a_promised_callback_never_carried_out_is_caught() -> None:
    log = video_caller_waits_for_a_callback()
    later(log, at("2026-09-22 15:05:00"))  # the router ran past the slot and never called back
    assert any("c1: the callback promised for 2026-09-22 15:00:00 Asia/Shanghai" in v
               and "never carried out" in v for v in violations(log)), violations(log)
    # A router stopped before the slot is not blamed: the log's clock stopped with it.
    stopped = video_caller_waits_for_a_callback()
    assert stopped.check(at("2026-09-23 09:00:00"))["ok"]


def test_a_callback_carried_out_before_its_slot_is_caught() -> None:
    log = video_caller_waits_for_a_callback()
    log.now_s = at("2026-09-22 14:00:00")
    [timer] = [t for t in timers_for_contact(log.state.contacts["c1"]) if t.kind == "callback"]
    [decision] = fire(log.state, timer, timer.due_s, SETTINGS, policy=POLICY)
    log.commit(tampered(decision, ev.CALLBACK_DUE, at_s=log.now_s))  # an hour early
    assert any("c1: called back at 2026-09-22 14:00:00" in v and "before its slot 2026-09-22 15:00:00" in v
               for v in violations(log)), violations(log)


def test_a_customer_who_hung_up_offered_to_an_agent_before_the_callback_is_caught() -> None:
    log = video_caller_waits_for_a_callback()
    log.now_s = TUESDAY_10 + 800
    log.add("contact-default:c1", ev.OFFER_MADE, {"offer_id": "o9", "contact_id": "c1", "agent_id": "s1",
                                                  "channel": "video", "offered_at_s": log.now_s,
                                                  "expires_at_s": log.now_s + 20})
    assert any("contact c1 offered to s1 after it ended" in v and "before its callback fell due" in v
               for v in violations(log)), violations(log)


def the_callback_step(windows: tuple[CallbackWindow, ...]) -> tuple[TimedLog, Decision]:
    """A video caller's steps up to the callback step, decided (not stored) at 600 s."""
    log = TimedLog(TUESDAY_10)
    log.publish()
    log.agent("s1", skills={"sign_language": 4}, channels={"video": 1}, available=False)
    log.contact("c1", channel=Channel.VIDEO, needs=frozenset({Need.DEAF}), sign_language="csl",
                callback_windows=windows)
    log.commit(place(log.state, log.state.contacts["c1"], POLICY, TUESDAY_10))
    for waited_s in (30, 120, 300):
        tick(log, TUESDAY_10 + waited_s)
    log.now_s = TUESDAY_10 + 600
    [timer] = [t for t in timers_for_contact(log.state.contacts["c1"]) if t.kind == "escalate"]
    [decision] = fire(log.state, timer, log.now_s, SETTINGS, policy=POLICY)
    assert [t for t, _ in decision.parts[0].events] == [ev.ESCALATION_APPLIED, ev.CALLBACK_SCHEDULED]
    return log, decision


@pytest.mark.parametrize(("slot", "windows", "outside"), [
    ("2026-09-22 19:00:00", WINDOW_15_18, "outside the customer's callback windows (15:00-18:00)"),
    ("2026-09-22 21:00:00", (CallbackWindow(15 * 60, 24 * 60),), "outside the business hours of policy v1"),
    ("2026-09-22 22:00:00", WINDOW_15_18,
     "outside the business hours of policy v1 and the customer's callback windows (15:00-18:00)"),
])
def test_a_callback_slotted_outside_the_windows_or_business_hours_is_caught(
        slot: str, windows: tuple[CallbackWindow, ...], outside: str) -> None:
    log, decision = the_callback_step(windows)
    log.commit(tampered(decision, ev.CALLBACK_SCHEDULED, callback_at_s=at(slot)))
    assert [v for v in violations(log) if "promised a callback" in v] == [
        f"contact c1: CallbackScheduled (position {log.position}) promised a callback for {slot} Asia/Shanghai "
        f"({at(slot):.0f}), {outside}"]


def test_a_callback_slot_already_past_when_promised_is_caught() -> None:
    log, decision = the_callback_step(())
    log.commit(tampered(decision, ev.CALLBACK_SCHEDULED, callback_at_s=TUESDAY_10 + 500))
    assert any("already past when promised" in v for v in violations(log)), violations(log)


def test_a_callback_carried_out_late_and_after_hours_is_caught_and_late_in_hours_is_not() -> None:
    """A router stopped across the slot calls back when it is back: in the hours and windows
    the slot was chosen by, that is late but kept; at 21:30 it is a call the customer and the
    bank ruled out (the router takes the next slot instead: see the test below)."""
    in_hours = video_caller_waits_for_a_callback()
    assert in_hours.check(at("2026-09-22 17:00:00"))["ok"]
    called_back_and_answered(in_hours, at("2026-09-22 17:00:00"))  # the router was back at 17:00
    assert in_hours.check()["ok"], in_hours.check()["violations"]
    after_hours = video_caller_waits_for_a_callback()
    after_hours.now_s = at("2026-09-22 21:30:00")
    slot_s = after_hours.state.contacts["c1"].callback_at_s
    after_hours.add("contact-default:c1", ev.CALLBACK_DUE, {"contact_id": "c1", "callback_at_s": slot_s,
                                                            "at_s": after_hours.now_s})  # as a router would
    assert any("called back at 2026-09-22 21:30:00" in v and "late for its slot 2026-09-22 15:00:00" in v
               and "outside the business hours of policy v1 and the customer's callback windows" in v
               for v in violations(after_hours)), violations(after_hours)


# -- after hours: the plan itself promises the callback --------------------------------------


def night_caller_hangs_up(**facts: Any) -> TimedLog:
    log = TimedLog(MONDAY_22 - 100)
    log.publish()
    log.agent("a1", available=False, at_s=MONDAY_22 - 100)
    log.now_s = MONDAY_22
    log.contact("n1", intent=Intent.LOAN, **facts)
    log.commit(place(log.state, log.state.contacts["n1"], POLICY, MONDAY_22))
    assert log.state.contacts["n1"].plan.callback_at_s == TUESDAY_08  # type: ignore[union-attr]
    hang_up(log, "n1", MONDAY_22 + 40, 40.0)
    return log


def test_an_after_hours_callback_carried_out_at_the_opening_passes() -> None:
    log = night_caller_hangs_up()
    assert tick(log, TUESDAY_08) == [ev.CALLBACK_DUE]
    log.add("agent-default:a1", ev.AGENT_STATE_CHANGED, {"agent_id": "a1", "state": "available", "at_s": TUESDAY_08})
    assert route(log, TUESDAY_08 + 1) == {"n1": "a1"}
    answer(log, "n1", "a1", TUESDAY_08 + 3)
    report = log.check()
    assert report["ok"], report["violations"]
    assert (report["callbacks_promised"], report["callbacks_due"], report["abandoned"]) == (1, 1, 0)


def test_an_after_hours_callback_dropped_or_made_early_is_caught() -> None:
    dropped = night_caller_hangs_up()
    later(dropped, TUESDAY_08 + 300)
    assert any("n1: the callback promised for 2026-09-22 08:00:00" in v for v in violations(dropped))
    early = night_caller_hangs_up()
    early.now_s = at("2026-09-22 07:30:00")
    early.add("contact-default:n1", ev.CALLBACK_DUE, {"contact_id": "n1", "callback_at_s": TUESDAY_08,
                                                      "at_s": early.now_s})
    assert any("n1: called back at 2026-09-22 07:30:00" in v for v in violations(early)), violations(early)


def test_a_plan_callback_outside_the_plans_business_hours_is_caught() -> None:
    log = TimedLog(MONDAY_22)
    log.publish()
    log.contact("n1", intent=Intent.LOAN)
    decision = place(log.state, log.state.contacts["n1"], POLICY, MONDAY_22)
    plan = next(d for t, d in decision.parts[0].events if t == ev.CONTACT_QUEUED)["plan"]
    log.commit(tampered(decision, ev.CONTACT_QUEUED, plan={**plan, "callback_at_s": MONDAY_22 + 3600}))
    assert any("n1: ContactQueued" in v and "2026-09-21 23:00:00" in v and "business hours of policy v1" in v
               for v in violations(log)), violations(log)


def test_a_callback_made_though_an_agent_answered_or_never_promised_is_caught() -> None:
    log = TimedLog(MONDAY_22)
    log.publish()
    log.agent("a1")
    log.contact("n1", intent=Intent.LOAN)  # promised a callback at 08:00, but answered at night
    log.commit(place(log.state, log.state.contacts["n1"], POLICY, MONDAY_22))
    assert route(log, MONDAY_22) == {"n1": "a1"}
    answer(log, "n1", "a1", MONDAY_22 + 2)
    log.contact("d1")  # never placed: no plan, no callback
    log.now_s = TUESDAY_08
    for contact_id in ("n1", "d1"):
        log.add(f"contact-default:{contact_id}", ev.CALLBACK_DUE, {"contact_id": contact_id, "at_s": TUESDAY_08})
    found = violations(log)
    assert any("n1: CallbackDue" in v and "though an agent answered it" in v for v in found), found
    assert any("d1: CallbackDue" in v and "with no callback promised" in v for v in found), found


def test_a_step_due_while_the_customer_was_gone_comes_due_when_the_callback_reopens_the_contact() -> None:
    """An English speaker who also speaks Chinese has a language step at 90 s; gone after 40 s,
    the step waits for the callback to re-open the contact. A router killed right after the
    re-opening is not blamed for it; one that ran on and never applied it is."""
    log = night_caller_hangs_up(language="en", languages=frozenset({"en", "zh"}))
    assert tick(log, TUESDAY_08, kinds=frozenset({"callback"})) == [ev.CALLBACK_DUE]
    assert log.check(TUESDAY_08 + 5)["ok"], log.check(TUESDAY_08 + 5)["violations"]
    later(log, TUESDAY_08 + 120)
    assert any("n1: escalation step 0 was due" in v for v in violations(log)), violations(log)
    assert tick(log, TUESDAY_08 + 121) == [ev.ESCALATION_APPLIED]  # what the router does at once
    assert log.check()["ok"], log.check()["violations"]


def test_a_callback_falling_due_while_an_offer_is_out_does_not_start_a_new_wait() -> None:
    """The router starts a new wait at a callback only for a contact waiting with no offer out:
    one being offered goes on with its wait, and with its breach already marked. The checker
    once started a new SLA clock there and reported a breach the router rightly never marked."""
    log = TimedLog(TUESDAY_10)
    log.publish()
    log.agent("s1", skills={"sign_language": 4}, channels={"video": 1}, available=False)
    log.contact("c1", channel=Channel.VIDEO, needs=frozenset({Need.DEAF}), sign_language="csl")  # no windows
    log.commit(place(log.state, log.state.contacts["c1"], POLICY, TUESDAY_10))
    for waited_s in (30, 120, 300):
        tick(log, TUESDAY_10 + waited_s)
    log.now_s = TUESDAY_10 + 590
    log.add("agent-default:s1", ev.AGENT_STATE_CHANGED, {"agent_id": "s1", "state": "available", "at_s": log.now_s})
    assert route(log, TUESDAY_10 + 590) == {"c1": "s1"}
    assert tick(log, TUESDAY_10 + 600) == [ev.ESCALATION_APPLIED, ev.CALLBACK_SCHEDULED]  # a slot right away
    assert tick(log, TUESDAY_10 + 601) == [ev.CALLBACK_DUE]  # while s1 still has the offer
    assert ev.OFFER_EXPIRED in tick(log, TUESDAY_10 + 610)
    later(log, TUESDAY_10 + 900)
    report = log.check()
    assert report["ok"], report["violations"]


# -- what the router does about them (bugs the checker found) ----------------------------------


def test_router_a_late_callback_timer_does_not_call_back_after_hours() -> None:
    log = video_caller_waits_for_a_callback()
    decided = tick(log, at("2026-09-22 21:30:00"))
    assert ev.CALLBACK_DUE not in decided, "called back at 21:30 (business hours 08:00-20:00, window 15:00-18:00)"


def two_callback_policy() -> CompiledPolicy:
    data = load_default_policy().to_data()
    rule = next(r for r in cast(list[dict[str, Any]], data["rules"]) if r["id"] == "sign_language_desk")
    rule["escalate"] = [{"after_s": 60, "offer_callback": {}}, {"after_s": 300, "offer_callback": {}}]
    return compile_policy(document_from_data(data), 1)


def video_caller_promised_twice() -> TimedLog:
    """Two callback steps; the first's slot is right away (no windows), so it falls due while
    the customer still waits; the second promises another one, and the customer hangs up."""
    policy = two_callback_policy()
    log = TimedLog(TUESDAY_10)
    log.publish(policy)
    log.contact("c1", channel=Channel.VIDEO, needs=frozenset({Need.DEAF}), sign_language="csl")
    log.commit(place(log.state, log.state.contacts["c1"], policy, TUESDAY_10))
    for waited_s in (30, 60, 61, 300):
        tick(log, TUESDAY_10 + waited_s, policy)
    assert [e.type for e in log.recorded].count(ev.CALLBACK_SCHEDULED) == 2
    hang_up(log, "c1", TUESDAY_10 + 310, 310.0)
    return log


def test_a_second_promise_after_the_first_fell_due_is_owed_too() -> None:
    log = video_caller_promised_twice()
    later(log, TUESDAY_10 + 600)  # the second slot was TUESDAY_10 + 300
    assert any("c1: the callback promised for 2026-09-22 10:05:00" in v for v in violations(log)), violations(log)


def test_router_a_second_promised_callback_is_carried_out() -> None:
    log = video_caller_promised_twice()
    assert [t.kind for t in timers_for_contact(log.state.contacts["c1"])].count("callback") == 1
