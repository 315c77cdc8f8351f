"""The routing core as tables of situations and expected decisions: no I/O, no clock."""

from __future__ import annotations

import pytest

from policies.vocabulary import Channel, Intent, Need, Presence
from router import events as ev
from router.commands import CommandError, accept, complete, reactions, reject, set_presence, transfer, wrapup_done
from router.decide import next_offers, offered, place
from router.desk import contact_summary
from router.state import ASSIGNED, DONE, OFFERED, WAITING
from router.timers import Timer, TimerSettings, fire, timers_for_agent, timers_for_contact
from tests.unit.router.builders import NOW, POLICY, Log

SETTINGS = TimerSettings(disconnect_grace_s=15, max_missed_offers=2)


def placed(log: Log, contact_id: str, **facts: object) -> None:
    log.contact(contact_id, **facts)
    log.commit(place(log.state, log.state.contacts[contact_id], POLICY, NOW))


def offers(log: Log, now_s: float = NOW) -> dict[str, str]:
    """Commit this round's offers; contact -> agent."""
    made = next_offers(log.state, now_s)
    result: dict[str, str] = {}
    for decision in made:
        log.commit(decision)
        result.update(offered(decision))
    return result


def test_a_contact_is_queued_by_the_policy_with_its_plan() -> None:
    log = Log()
    placed(log, "c1", intent=Intent.FRAUD)
    contact = log.state.contacts["c1"]
    assert (contact.status, contact.queue_id, contact.plan.rule_id) == (WAITING, "urgent", "urgent_lost_card_fraud")
    assert contact.queued_at_s == NOW


def test_a_contact_no_agent_could_serve_is_reported_at_arrival() -> None:
    log = Log()
    log.agent("a1")
    log.contact("c1", channel=Channel.VIDEO, needs=frozenset({Need.DEAF}), sign_language="csl")
    decision = place(log.state, log.state.contacts["c1"], POLICY, NOW)
    kinds = [t for part in decision.parts for t, _ in part.events]
    assert kinds == [ev.CONTACT_QUEUED, ev.SLA_TIMER_STARTED, ev.CONTACT_UNSERVABLE]
    sla = decision.parts[0].events[1][1]
    assert sla["due_at_s"] == NOW + sla["answer_within_s"] and sla["queue_id"] == "sign_language"
    gap = decision.parts[0].events[2][1]["gaps"][0]
    assert "sign_language>=3" in gap and "video" in gap


def test_longest_idle_agent_gets_the_offer() -> None:
    log = Log()
    log.agent("recent", at_s=NOW - 10)
    log.agent("longest", at_s=NOW - 500)
    log.agent("middle", at_s=NOW - 100)
    placed(log, "c1")
    assert offers(log) == {"c1": "longest"}
    assert log.state.contacts["c1"].status == OFFERED


def test_the_most_urgent_contact_goes_first() -> None:
    log = Log()
    log.agent("a1", skills={"general": 3, "fraud": 4})
    placed(log, "mass")
    placed(log, "fraud", intent=Intent.FRAUD)
    assert offers(log) == {"fraud": "a1"}


def test_a_new_contact_is_placed_and_offered_in_one_atomic_decision() -> None:
    log = Log()
    log.agent("a1", skills={"general": 3, "fraud": 4})
    log.contact("c1", intent=Intent.FRAUD)
    placement = place(log.state, log.state.contacts["c1"], POLICY, NOW)
    [decision] = next_offers(log.state, NOW, placing=[placement])
    contact_part = next(p for p in decision.parts if p.stream_id == "contact-default:c1")
    assert contact_part.expected_version == 1  # the version placement was decided on
    assert [t for t, _ in contact_part.events] == [ev.CONTACT_QUEUED, ev.SLA_TIMER_STARTED, ev.OFFER_MADE]
    assert log.state.contacts["c1"].version == 1 and log.state.contacts["c1"].plan is None  # untouched
    log.commit(decision)
    contact = log.state.contacts["c1"]
    assert (contact.status, contact.queue_id, contact.offer.agent_id) == (OFFERED, "urgent", "a1")


def test_a_new_contact_does_not_jump_the_queue_it_is_placed_in() -> None:
    log = Log()
    log.agent("a1", skills={"general": 3, "fraud": 4})
    placed(log, "fraud", intent=Intent.FRAUD)  # waiting already, and more urgent
    log.contact("mass")
    placement = place(log.state, log.state.contacts["mass"], POLICY, NOW)
    made = next_offers(log.state, NOW, placing=[placement])
    assert [offered(d) for d in made] == [{"fraud": "a1"}]
    assert all("contact-default:mass" not in {p.stream_id for p in d.parts} for d in made)


def test_a_placement_nobody_could_serve_is_not_offered_with_it() -> None:
    log = Log()
    log.agent("a1")
    log.contact("c1", channel=Channel.VIDEO, needs=frozenset({Need.DEAF}), sign_language="csl")
    placement = place(log.state, log.state.contacts["c1"], POLICY, NOW)
    assert next_offers(log.state, NOW, placing=[placement]) == []


def test_ineligible_agents_are_skipped_with_reasons() -> None:
    log = Log()
    log.agent("no-fraud", skills={"general": 5}, at_s=NOW - 900)
    log.agent("low-fraud", skills={"fraud": 2}, at_s=NOW - 800)
    log.agent("fraud", skills={"fraud": 3}, at_s=NOW - 10)
    placed(log, "c1", intent=Intent.FRAUD)
    made = next_offers(log.state, NOW)
    assert [d.agent_id for d in made] == ["fraud"]
    considered = made[0].parts[0].events[0][1]["considered"]
    assert considered["chosen"] == "fraud"


def test_capacity_per_channel_is_respected_in_one_round() -> None:
    log = Log()
    log.agent("a1", channels={"webchat": 3, "phone": 1})
    for i in range(5):
        placed(log, f"chat{i}", channel=Channel.WEBCHAT)
    placed(log, "call", channel=Channel.PHONE)
    made = offers(log)
    assert len(made) == 3 and set(made.values()) == {"a1"}  # three chats fill the total of 3
    assert next_offers(log.state, NOW) == []  # no contact is offered twice, no agent overfilled


def test_a_rejected_contact_goes_to_the_next_agent_not_back() -> None:
    log = Log()
    log.agent("a1", at_s=NOW - 50)
    log.agent("a2", at_s=NOW - 10)
    placed(log, "c1")
    offers(log)
    offer_id = log.state.contacts["c1"].offer.offer_id
    log.commit(reject(log.state, "a1", offer_id, "busy with paperwork", NOW + 1))
    assert offers(log, NOW + 2) == {"c1": "a2"}


def test_accept_assigns_and_complete_starts_wrap_up_then_frees() -> None:
    log = Log()
    log.agent("a1")
    placed(log, "c1")
    offers(log)
    offer_id = log.state.contacts["c1"].offer.offer_id
    log.commit(accept(log.state, "a1", offer_id, NOW + 3))
    assert log.state.contacts["c1"].status == ASSIGNED
    assert log.state.agents["a1"].contacts == {"c1": Channel.PHONE}
    assert "a1" not in log.state.available[Channel.PHONE]
    log.commit(complete(log.state, "a1", "c1", "resolved", NOW + 60))
    agent = log.state.agents["a1"]
    assert log.state.contacts["c1"].status == DONE and agent.wrapup_until_s is not None
    assert "a1" not in log.state.available[Channel.PHONE]  # wrapping up
    log.commit(wrapup_done(log.state, "a1", NOW + 70))
    assert "a1" in log.state.available[Channel.PHONE]


def test_a_complaints_follow_up_deadline_still_fires_after_the_call_ended() -> None:
    """The 48-hour follow-up is due after the call (it was dropped once the contact was
    completed, and the checker then reported it never marked: found by an audit)."""
    log = Log()
    log.agent("a1", skills={"complaints": 5})
    placed(log, "c1", intent=Intent.COMPLAINT)
    due_s = log.state.contacts["c1"].plan.deadlines[0].due_s
    assert due_s == NOW + 48 * 3600
    offers(log)
    log.commit(accept(log.state, "a1", log.state.contacts["c1"].offer.offer_id, NOW + 3))
    log.commit(complete(log.state, "a1", "c1", "resolved", NOW + 60))
    contact = log.state.contacts["c1"]
    assert contact.status == DONE
    timers = [t for t in timers_for_contact(contact) if t.kind == "deadline"]
    assert [(t.arg, t.due_s) for t in timers] == [("follow_up", due_s)]
    (decision,) = fire(log.state, timers[0], due_s + 1, SETTINGS)
    log.commit(decision)
    assert [t for t in timers_for_contact(log.state.contacts["c1"]) if t.kind == "deadline"] == []


@pytest.mark.parametrize("who,offer,now,code", [
    ("a2", "real", NOW + 1, "not_your_offer"),
    ("a1", "nope", NOW + 1, "offer_not_pending"),
    ("a1", "real", NOW + 999, "offer_expired"),
    ("a1", None, NOW + 1, "invalid_message"),
])
def test_bad_accepts_change_nothing(who: str, offer: str | None, now: float, code: str) -> None:
    log = Log()
    log.agent("a1")
    log.agent("a2", available=False)
    placed(log, "c1")
    offers(log)
    offer_id = log.state.contacts["c1"].offer.offer_id if offer == "real" else offer
    with pytest.raises(CommandError) as info:
        accept(log.state, who, offer_id, now)
    assert info.value.code == code


def test_completing_a_contact_you_do_not_hold_is_refused() -> None:
    log = Log()
    log.agent("a1")
    placed(log, "c1")
    with pytest.raises(CommandError) as info:
        complete(log.state, "a1", "c1", "resolved", NOW)
    assert info.value.code == "not_your_contact"


def test_offer_timeout_moves_on_and_repeated_misses_set_the_agent_away() -> None:
    log = Log()
    log.agent("a1")
    placed(log, "c1")
    placed(log, "c2")
    offers(log)
    timer = next(t for t in timers_for_contact(log.state.contacts["c1"]) if t.kind == "offer_expiry")
    assert fire(log.state, timer, timer.due_s - 1, SETTINGS) == []  # early: nothing
    for decision in fire(log.state, timer, timer.due_s, SETTINGS):
        log.commit(decision)
    assert log.state.agents["a1"].missed_in_row == 1
    offers(log, timer.due_s)  # c1 must not go back to a1; c2 may
    assert log.state.contacts["c2"].offer is not None
    second = next(t for t in timers_for_contact(log.state.contacts["c2"]) if t.kind == "offer_expiry")
    for decision in fire(log.state, second, second.due_s, SETTINGS):
        log.commit(decision)
    assert log.state.agents["a1"].presence is Presence.AWAY


def offered_to_the_only_agent() -> tuple[Log, Timer]:
    """One agent, one contact offered to it; and that offer's expiry timer."""
    log = Log()
    log.agent("a1")
    placed(log, "c1")
    offers(log)
    return log, next(t for t in timers_for_contact(log.state.contacts["c1"]) if t.kind == "offer_expiry")


def test_an_agent_whose_offer_expired_gets_the_contact_again_when_nobody_else_is_free() -> None:
    # Before: expired offers excluded the agent for good, so the only agent, back from away,
    # sat idle while the contact waited ("no idle agent while an eligible contact waits").
    log, timer = offered_to_the_only_agent()
    for decision in fire(log.state, timer, timer.due_s, SETTINGS):
        log.commit(decision)
    assert log.state.contacts["c1"].tried == {"a1": "expired"}
    again = next_offers(log.state, timer.due_s + 1)
    assert [offered(d) for d in again] == [{"c1": "a1"}]
    assert "offered again" in str(again[0].parts)


def test_an_agent_who_rejected_never_gets_the_contact_back_even_alone() -> None:
    log = Log()
    log.agent("a1")
    placed(log, "c1")
    offers(log)
    log.commit(reject(log.state, "a1", log.state.contacts["c1"].offer.offer_id, "not mine", NOW + 1))
    assert log.state.contacts["c1"].tried == {"a1": "rejected"}
    assert next_offers(log.state, NOW + 2) == []


def test_a_stale_timer_does_nothing() -> None:
    log, timer = offered_to_the_only_agent()
    log.commit(accept(log.state, "a1", log.state.contacts["c1"].offer.offer_id, NOW + 1))
    assert fire(log.state, timer, timer.due_s + 5, SETTINGS) == []


def test_hard_constraints_survive_every_escalation() -> None:
    log = Log()
    log.agent("voice", skills={"general": 5}, channels={"video": 1, "phone": 1})
    log.agent("signer", skills={"sign_language": 4}, channels={"video": 1}, available=False)
    placed(log, "deaf", channel=Channel.VIDEO, needs=frozenset({Need.DEAF}), sign_language="csl")
    contact = log.state.contacts["deaf"]
    now = NOW
    while (due := [t for t in timers_for_contact(contact) if t.kind == "escalate"]):
        now = due[0].due_s
        for decision in fire(log.state, due[0], now, SETTINGS):
            log.commit(decision)
        assert next_offers(log.state, now) == []  # the voice-only agent never gets it
    assert contact.steps_done == len(contact.plan.escalations)
    log.add("agent-default:signer", ev.AGENT_STATE_CHANGED, {"agent_id": "signer", "state": "available", "at_s": now})
    assert offers(log, now + 1) == {"deaf": "signer"}


@pytest.mark.parametrize("change", [
    {"skills": {"general": 3}},  # the fraud skill the queue requires is gone
    {"channels": {"webchat": 2}},  # no phone any more
    {"total_capacity": 0},
])
def test_an_offer_the_agents_new_profile_rules_out_is_withdrawn_not_accepted(change: dict[str, object]) -> None:
    # Before: the PATCH landed, the offer stayed pending, and an accept assigned a fraud call
    # to an agent without the skill (or above capacity); `contact-router check` then failed.
    log = Log()
    log.agent("k1", skills={"fraud": 4, "general": 3})
    placed(log, "c1", intent=Intent.FRAUD)
    assert offers(log) == {"c1": "k1"}
    offer_id = log.state.contacts["c1"].offer.offer_id
    log.state.touched_contacts.clear()
    log.add("agent-default:k1", ev.AGENT_UPDATED, {"agent_id": "k1", **change})
    assert "c1" in log.state.touched_contacts  # the round looks at the offer again
    with pytest.raises(CommandError) as refused:
        accept(log.state, "k1", offer_id, NOW + 2)
    assert refused.value.code == "offer_withdrawn"
    [revoke] = reactions(log.state, log.state.contacts["c1"], NOW + 2)
    log.commit(revoke)
    assert log.state.contacts["c1"].status == WAITING and log.state.agents["k1"].offers == {}


def test_a_profile_change_that_still_fits_leaves_the_offer_alone() -> None:
    log = Log()
    log.agent("k1", skills={"fraud": 4, "general": 3})
    placed(log, "c1", intent=Intent.FRAUD)
    offers(log)
    offer_id = log.state.contacts["c1"].offer.offer_id
    log.add("agent-default:k1", ev.AGENT_UPDATED, {"agent_id": "k1", "name": "Kim", "skills": {"fraud": 5}})
    assert reactions(log.state, log.state.contacts["c1"], NOW + 2) == []
    log.commit(accept(log.state, "k1", offer_id, NOW + 2))
    assert log.state.contacts["c1"].status == ASSIGNED


def test_an_intent_change_during_an_offer_places_the_contact_again_when_the_offer_comes_back() -> None:
    # Before: the change was noted only for waiting contacts; after the reject the contact
    # stayed in `general` with its old priority for good.
    log = Log()
    log.agent("k1", skills={"fraud": 4, "general": 3})
    placed(log, "c1", intent=Intent.SPEAK_TO_AGENT)
    first_queue = log.state.contacts["c1"].queue_id
    offers(log)
    log.add("contact-default:c1", ev.CONTACT_INTENT_CHANGED, {"contact_id": "c1", "intent": "fraud", "repeat_count": 1})
    contact = log.state.contacts["c1"]
    assert contact.status == OFFERED and contact.replan
    log.commit(reject(log.state, "k1", contact.offer.offer_id, "wrong desk", NOW + 1))
    assert contact.status == WAITING and contact.replan  # the round places it again now
    log.commit(place(log.state, contact, POLICY, NOW + 2))
    assert contact.queue_id != first_queue and not contact.replan


def test_an_intent_change_after_the_answer_does_not_move_the_contact_later() -> None:
    log = Log()
    log.agent("k1", skills={"fraud": 4, "general": 3})
    placed(log, "c1", intent=Intent.SPEAK_TO_AGENT)
    offers(log)
    contact = log.state.contacts["c1"]
    log.add("contact-default:c1", ev.CONTACT_INTENT_CHANGED, {"contact_id": "c1", "intent": "fraud", "repeat_count": 1})
    log.commit(accept(log.state, "k1", contact.offer.offer_id, NOW + 1))
    assert contact.status == ASSIGNED and not contact.replan


def test_customer_leaving_revokes_the_offer_and_frees_the_agent() -> None:
    log = Log()
    log.agent("a1")
    placed(log, "c1")
    offers(log)
    log.add("contact-default:c1", ev.CUSTOMER_ABANDONED, {"contact_id": "c1", "waited_s": 12})
    contact = log.state.contacts["c1"]
    [revoke] = reactions(log.state, contact, NOW + 12)
    log.commit(revoke)
    assert log.state.agents["a1"].offers == {} and "a1" in log.state.available[Channel.PHONE]
    assert log.state.outcomes[-1].answered is False


def fraud_call_held_by_a1(**others: tuple[int, float]) -> Log:
    """a1 (fraud 4, idle longest) has accepted fraud call c1; `others`: agent -> (fraud level,
    idle since)."""
    log = Log()
    log.agent("a1", skills={"fraud": 4}, at_s=NOW - 100)
    for agent_id, (level, idle_since_s) in others.items():
        log.agent(agent_id, skills={"fraud": level}, at_s=idle_since_s)
    placed(log, "c1", intent=Intent.FRAUD)
    offers(log)
    log.commit(accept(log.state, "a1", log.state.contacts["c1"].offer.offer_id, NOW + 1))
    return log


def test_transfer_to_a_named_agent_keeps_hard_requirements() -> None:
    log = fraud_call_held_by_a1(a2=(4, NOW - 50), a3=(5, NOW - 10))
    log.commit(transfer(log.state, "a1", "c1", None, "a3", "needs a senior", NOW + 30))
    log.commit(wrapup_done(log.state, "a1", NOW + 31))
    assert offers(log, NOW + 31) == {"c1": "a3"}  # not a2, though a2 has been idle longer


def test_passing_a_contact_back_and_forth_does_not_pile_up_priority() -> None:
    # Before: +100 per transfer; ten moves put a general call ahead of lost cards and fraud.
    log = fraud_call_held_by_a1(a2=(4, NOW - 50))
    holder, other = "a1", "a2"
    for hop in range(4):
        at = NOW + 10 * (hop + 1)
        log.commit(transfer(log.state, holder, "c1", None, other, "yours", at))
        log.commit(wrapup_done(log.state, holder, at + 1))
        assert offers(log, at + 1) == {"c1": other}
        log.commit(accept(log.state, other, log.state.contacts["c1"].offer.offer_id, at + 2))
        holder, other = other, holder
    assert log.state.contacts["c1"].priority_boost == 100.0


def test_a_transferred_contact_waits_afresh_for_the_sla_and_the_figures() -> None:
    log = Log()
    log.agent("a1", skills={"fraud": 4}, at_s=NOW - 100)
    log.agent("a3", skills={"fraud": 5}, available=False)
    placed(log, "c1", intent=Intent.FRAUD)
    offers(log)
    log.commit(accept(log.state, "a1", log.state.contacts["c1"].offer.offer_id, NOW + 2))
    contact = log.state.contacts["c1"]
    answer_within_s = contact.plan.answer_within_s
    log.commit(transfer(log.state, "a1", "c1", None, "a3", "needs a senior", NOW + 600))  # a long first talk
    [sla] = [t for t in timers_for_contact(contact) if t.kind == "sla"]
    assert sla.due_s == NOW + 600 + answer_within_s  # from the transfer, not from the first queueing
    assert fire(log.state, sla, NOW + 601, SETTINGS) == []  # the first talk is not a wait
    log.add("agent-default:a3", ev.AGENT_STATE_CHANGED, {"agent_id": "a3", "state": "available", "at_s": NOW + 601})
    offers(log, NOW + 603)
    log.commit(accept(log.state, "a3", contact.offer.offer_id, NOW + 605))
    answered = [o for o in log.state.outcomes if o.answered]
    assert [(o.waited_s, o.within_sla) for o in answered] == [(2.0, True), (5.0, True)]


def complaint_answered_by_a1() -> Log:
    """A complaint a1 took at NOW + 2, and a2 (a complaints expert) away."""
    log = Log()
    log.agent("a1", skills={"complaints": 5, "senior": 3}, at_s=NOW - 100)
    log.agent("a2", skills={"complaints": 5}, available=False)
    placed(log, "c1", intent=Intent.COMPLAINT)
    offers(log)
    log.commit(accept(log.state, "a1", log.state.contacts["c1"].offer.offer_id, NOW + 2))
    return log


def test_a_contact_transferred_to_another_queue_is_held_to_that_queues_sla_and_wrap_up() -> None:
    """complaints answers within 30 s, the expert team within 120 s with 300 s of wrap-up: the
    new wait is that queue's (it breached at 30 s and counted as missed: found by an audit)."""
    log = complaint_answered_by_a1()
    contact = log.state.contacts["c1"]
    assert (contact.queue_id, contact.plan.answer_within_s) == ("complaints", 30)
    log.commit(transfer(log.state, "a1", "c1", "complaints_expert", None, "for the experts", NOW + 100,
                        policy=POLICY))
    [sla] = [t for t in timers_for_contact(contact) if t.kind == "sla"]
    assert sla.due_s == NOW + 100 + 120
    assert contact_summary(contact, NOW + 105)["seconds_waited"] == 5.0  # this wait, not the talk before
    assert fire(log.state, sla, NOW + 131, SETTINGS) == []  # past 30 s, within 120 s: no breach
    log.add("agent-default:a2", ev.AGENT_STATE_CHANGED, {"agent_id": "a2", "state": "available", "at_s": NOW + 140})
    assert offers(log, NOW + 150) == {"c1": "a2"}
    log.commit(accept(log.state, "a2", contact.offer.offer_id, NOW + 160))
    answered = [(o.queue_id, o.waited_s, o.within_sla) for o in log.state.outcomes if o.answered]
    assert answered == [("complaints", 2.0, True), ("complaints_expert", 60.0, True)]
    log.commit(complete(log.state, "a2", "c1", "resolved", NOW + 200))
    assert log.state.agents["a2"].wrapup_until_s == NOW + 200 + 300


def test_an_intent_change_after_a_transfer_leaves_the_agents_move_alone() -> None:
    """Placed again, a transferred contact went back to the policy's queue, lost the transfer's
    requirements, and its wait ran from the first queueing: talk time counted as waiting, and
    the SLA was breached at once (found by an audit)."""
    log = complaint_answered_by_a1()
    contact = log.state.contacts["c1"]
    log.commit(transfer(log.state, "a1", "c1", "complaints_expert", None, "for the experts", NOW + 600,
                        policy=POLICY))
    log.add("contact-default:c1", ev.CONTACT_INTENT_CHANGED, {"contact_id": "c1", "intent": "loan", "repeat_count": 1})
    assert contact.facts is not None and contact.facts.intent is Intent.LOAN  # noted
    assert not contact.replan and contact.queue_id == "complaints_expert"
    [sla] = [t for t in timers_for_contact(contact) if t.kind == "sla"]
    assert sla.due_s == NOW + 600 + 120


def test_an_intent_change_while_a_callback_is_due_does_not_restart_the_wait_from_the_first_call() -> None:
    log = Log()
    log.agent("a1", available=False)
    placed(log, "c1", intent=Intent.LOAN)
    contact = log.state.contacts["c1"]
    log.add("contact-default:c1", ev.CALLBACK_DUE, {"contact_id": "c1", "at_s": NOW + 3600})
    log.add("contact-default:c1", ev.CONTACT_INTENT_CHANGED, {"contact_id": "c1", "intent": "fraud", "repeat_count": 1})
    assert contact.status == WAITING and not contact.replan
    assert contact.wait_from_s == NOW + 3600


def test_a_contact_transferred_to_a_queue_overflows_after_that_queues_max_wait() -> None:
    """repeat_senior waits at most 300 s, then overflows to general (found by an audit: a
    transferred contact never left the queue, though an agent was free in general)."""
    from router.check import Checker

    events: list[tuple[str, str, dict[str, object]]] = []

    def build(log: Log) -> None:
        log.agent("a1", skills={"general": 3, "credit_card": 3}, at_s=NOW - 100)
        log.agent("senior", skills={"senior": 4, "general": 3}, available=False)
        placed(log, "c1", intent=Intent.CREDIT_CARD)
        offers(log)
        log.commit(accept(log.state, "a1", log.state.contacts["c1"].offer.offer_id, NOW + 2))
        log.commit(transfer(log.state, "a1", "c1", "repeat_senior", None, "a senior, please", NOW + 100,
                            policy=POLICY))
        log.commit(wrapup_done(log.state, "a1", NOW + 101))
        contact = log.state.contacts["c1"]
        assert offers(log, NOW + 102) == {}  # a1 is no senior
        [overflow] = [t for t in timers_for_contact(contact) if t.kind == "overflow"]
        assert overflow.due_s == NOW + 100 + 300
        assert fire(log.state, overflow, NOW + 399, SETTINGS, POLICY.queues, POLICY.home_language) == []
        for decision in fire(log.state, overflow, NOW + 400, SETTINGS, POLICY.queues, POLICY.home_language):
            log.commit(decision)
        assert contact.queue_id == "general" and contact.wait_from_s == NOW + 100  # the same wait
        assert offers(log, NOW + 401) == {"c1": "a1"}
        log.commit(accept(log.state, "a1", contact.offer.offer_id, NOW + 402))
        log.commit(complete(log.state, "a1", "c1", "resolved", NOW + 500))

    for stream, type_, data in Log.events_of(build):
        events.append((stream, type_, data))
    checker = Checker()
    import uuid
    from datetime import datetime, timezone

    from eventstore import RecordedEvent

    versions: dict[str, int] = {}
    for position, (stream, type_, data) in enumerate(events, 1):
        versions[stream] = versions.get(stream, 0) + 1
        checker.feed(RecordedEvent(uuid.uuid4(), stream, versions[stream], position, position, type_, data, {},
                                   datetime.fromtimestamp(NOW + 500, timezone.utc)))
    report = checker.report(NOW + 600)
    assert not [v for v in report["violations"] if "relaxed" in v], report["violations"]


def test_an_escalation_to_another_queue_moves_the_sla_target_within_the_same_wait() -> None:
    log = Log()
    log.agent("a1", skills={"complaints": 3}, available=False)
    placed(log, "c1", intent=Intent.COMPLAINT)
    contact = log.state.contacts["c1"]
    [step] = [t for t in timers_for_contact(contact) if t.kind == "escalate"]
    (decision,) = fire(log.state, step, step.due_s, SETTINGS, POLICY.queues)
    log.commit(decision)
    assert (contact.queue_id, contact.sla_target_s, contact.wrapup_s) == ("complaints_supervisor", 60, 180)
    [sla] = [t for t in timers_for_contact(contact) if t.kind == "sla"]
    assert sla.due_s == contact.wait_from_s + 60  # the same wait, the new queue's target


def test_a_contact_placed_again_is_held_to_its_new_queue_not_to_one_it_was_moved_to() -> None:
    """Escalated to the supervisors (60 s), then the IVR says it is a loan: placed again in the
    loans queue, whose target and wrap-up apply (the supervisors' stayed: found by a review)."""
    log = Log()
    log.agent("a1", skills={"complaints": 3}, available=False)
    placed(log, "c1", intent=Intent.COMPLAINT)
    contact = log.state.contacts["c1"]
    [step] = [t for t in timers_for_contact(contact) if t.kind == "escalate"]
    log.commit(fire(log.state, step, step.due_s, SETTINGS, POLICY.queues)[0])
    assert contact.sla_target_s == 60
    log.add(contact.stream_id, ev.CONTACT_INTENT_CHANGED, {"contact_id": "c1", "intent": "loan"})
    log.commit(place(log.state, contact, POLICY, step.due_s + 1))
    assert contact.queue_id == "loans" and contact.sla_target_s is None and contact.wrapup_s is None
    [sla] = [t for t in timers_for_contact(contact) if t.kind == "sla"]
    assert sla.due_s == contact.wait_from_s + contact.plan.answer_within_s


def test_a_customer_who_leaves_on_a_second_wait_waited_only_that_long() -> None:
    log = Log()
    log.agent("a1", skills={"fraud": 4}, at_s=NOW - 100)
    log.agent("a3", skills={"fraud": 5}, available=False)
    placed(log, "c1", intent=Intent.FRAUD)
    queued_at_s = log.state.contacts["c1"].queued_at_s
    offers(log)
    log.commit(accept(log.state, "a1", log.state.contacts["c1"].offer.offer_id, NOW + 2))
    log.commit(transfer(log.state, "a1", "c1", None, "a3", "needs a senior", NOW + 600))
    # The gateway counts from the arrival: 600 s of talk, then 30 s waiting for a3.
    log.add("contact-default:c1", "CustomerAbandoned", {"contact_id": "c1", "channel": "phone",
            "occurred_at": "2026-09-21T10:10:30+08:00", "waited_s": NOW + 630 - queued_at_s, "cause": "hangup"})
    [gone] = [o for o in log.state.outcomes if not o.answered]
    assert gone.waited_s == pytest.approx(30.0) and gone.at_s == pytest.approx(NOW + 630)


def named_transfer(log: Log) -> float:
    """c1 (fraud) answered by a1, then transferred by name to a3; returns the transfer's time."""
    log.agent("a1", skills={"fraud": 4}, at_s=NOW - 100)
    log.agent("a2", skills={"fraud": 4}, at_s=NOW - 50)
    log.agent("a3", skills={"fraud": 5}, at_s=NOW - 10)
    placed(log, "c1", intent=Intent.FRAUD)
    assert offers(log) == {"c1": "a1"}
    log.commit(accept(log.state, "a1", log.state.contacts["c1"].offer.offer_id, NOW + 2))
    log.commit(transfer(log.state, "a1", "c1", None, "a3", "she knows the case", NOW + 60))  # a1 wraps up
    return NOW + 60


@pytest.mark.parametrize("how", ["reject", "expire", "away"])
def test_a_contact_transferred_to_a_named_agent_who_does_not_take_it_goes_back_to_its_queue(how: str) -> None:
    log = Log()
    at_s = named_transfer(log)
    contact = log.state.contacts["c1"]
    queue_id = contact.queue_id
    log.add("agent-default:a2", ev.AGENT_STATE_CHANGED, {"agent_id": "a2", "state": "away", "at_s": NOW + 61})
    log.add("agent-default:a2", ev.AGENT_STATE_CHANGED, {"agent_id": "a2", "state": "available", "at_s": NOW + 62})
    assert offers(log, NOW + 63) == {"c1": "a3"}  # only the named agent, though a2 idles longer
    offer = contact.offer
    if how == "reject":
        log.commit(reject(log.state, "a3", offer.offer_id, "on another call", NOW + 65))
    elif how == "expire":
        [expiry] = [t for t in timers_for_contact(contact) if t.kind == "offer_expiry"]
        [decision] = fire(log.state, expiry, offer.expires_at_s, SETTINGS)
        log.commit(decision)
    else:
        log.commit(set_presence(log.state, "a3", "away", "lunch", NOW + 65))
    assert contact.status == WAITING and contact.queue_id == queue_id
    assert contact.wait_from_s == at_s  # the same wait goes on: the customer has been waiting since the transfer
    assert offers(log, NOW + 70) == {"c1": "a2"}  # now anyone in the queue (a3 passed, a1 wraps up)
    requeued = [r for r in contact.requirements or ()]
    assert all(r.kind.value != "agent" for r in requeued)


def test_a_named_agent_whose_offer_expired_is_not_offered_it_again_as_a_second_chance() -> None:
    # A review found the second chance (for expired offers) re-offering a contact to the named
    # agent who let it expire, after it had gone back to its queue.
    log = fraud_call_held_by_a1(a3=(5, NOW - 10))
    log.commit(transfer(log.state, "a1", "c1", None, "a3", "needs a senior", NOW + 30))
    assert offers(log, NOW + 31) == {"c1": "a3"}
    timer = next(t for t in timers_for_contact(log.state.contacts["c1"]) if t.kind == "offer_expiry")
    for decision in fire(log.state, timer, timer.due_s, SETTINGS):
        log.commit(decision)
    contact = log.state.contacts["c1"]
    assert contact.tried["a3"] == "passed" and not any(r.kind.value == "agent" for r in contact.requirements)
    assert offers(log, timer.due_s + 1) == {}  # a1 is in wrap-up, a3 passed: nobody


def test_a_named_agent_who_never_had_an_offer_may_still_take_it_from_the_queue() -> None:
    # A review found the SLA fallback marking a named agent who was away all along as having
    # passed the contact: back, that agent sat idle while it waited.
    log = fraud_call_held_by_a1(a3=(5, NOW - 10))
    log.add("agent-default:a3", ev.AGENT_STATE_CHANGED, {"agent_id": "a3", "state": "away", "at_s": NOW + 20})
    log.commit(transfer(log.state, "a1", "c1", None, "a3", "needs a senior", NOW + 30))
    contact = log.state.contacts["c1"]
    [sla] = [t for t in timers_for_contact(contact) if t.kind == "sla"]
    for decision in fire(log.state, sla, sla.due_s, SETTINGS):
        log.commit(decision)
    assert "a3" not in contact.tried
    log.add("agent-default:a3", ev.AGENT_STATE_CHANGED, {"agent_id": "a3", "state": "available", "at_s": sla.due_s})
    assert offers(log, sla.due_s + 1) == {"c1": "a3"}  # a1 is still in wrap-up


def test_a_named_agent_whose_offer_outlives_the_fallback_has_still_passed() -> None:
    log = fraud_call_held_by_a1(a3=(5, NOW - 10))
    log.commit(transfer(log.state, "a1", "c1", None, "a3", "needs a senior", NOW + 30))
    assert offers(log, NOW + 31) == {"c1": "a3"}
    contact = log.state.contacts["c1"]
    [sla] = [t for t in timers_for_contact(contact) if t.kind == "sla"]
    expiry = next(t for t in timers_for_contact(contact) if t.kind == "offer_expiry")
    assert sla.due_s < expiry.due_s, "the SLA target comes first here"
    for timer in (sla, expiry):
        for decision in fire(log.state, timer, timer.due_s, SETTINGS):
            log.commit(decision)
    assert contact.tried["a3"] == "passed"  # not "expired": no second chance


def test_a_named_agent_who_never_gets_to_it_hands_it_back_at_the_sla_target() -> None:
    log = Log()
    at_s = named_transfer(log)
    contact = log.state.contacts["c1"]
    log.add("agent-default:a3", ev.AGENT_STATE_CHANGED, {"agent_id": "a3", "state": "away", "at_s": NOW + 59})
    assert offers(log, NOW + 62) == {}  # a2 is free, but the contact waits for a3
    [sla] = [t for t in timers_for_contact(contact) if t.kind == "sla"]
    assert sla.due_s == at_s + contact.plan.answer_within_s
    [decision] = fire(log.state, sla, sla.due_s, SETTINGS)
    log.commit(decision)
    assert contact.sla_breached and contact.wait_from_s == at_s
    assert offers(log, sla.due_s + 1) == {"c1": "a2"}


def test_transfer_is_refused_when_nobody_could_take_it_there() -> None:
    log = Log()
    log.agent("a1", skills={"fraud": 4, "complaints": 3}, languages=("zh",))
    log.agent("en_only", skills={"fraud": 5}, languages=("en",))
    log.agent("chat_only", skills={"fraud": 5}, channels={"webchat": 3})
    placed(log, "c1", intent=Intent.FRAUD)
    offers(log)
    log.commit(accept(log.state, "a1", log.state.contacts["c1"].offer.offer_id, NOW + 1))
    version = log.state.contacts["c1"].version
    for to_agent, words in (("en_only", "does not speak zh"), ("chat_only", "does not serve channel phone")):
        with pytest.raises(CommandError) as refused:
            transfer(log.state, "a1", "c1", None, to_agent, "", NOW + 30, policy=POLICY)
        assert refused.value.code == "agent_cannot_serve" and words in refused.value.message
    with pytest.raises(CommandError) as refused:
        transfer(log.state, "a1", "c1", "no-such-queue", None, "", NOW + 30, policy=POLICY)
    assert refused.value.code == "unknown_queue" and "complaints_supervisor" in refused.value.message
    # The supervisors' queue needs complaints 4 and senior 3: nobody here has them.
    with pytest.raises(CommandError) as refused:
        transfer(log.state, "a1", "c1", "complaints_supervisor", None, "", NOW + 30, policy=POLICY)
    assert refused.value.code == "no_agent_can_serve" and "senior" in refused.value.message
    assert log.state.contacts["c1"].version == version  # nothing decided, nothing changed
    log.agent("sup", skills={"complaints": 4, "senior": 3, "fraud": 3}, at_s=NOW + 20)
    log.commit(transfer(log.state, "a1", "c1", "complaints_supervisor", None, "angry", NOW + 30, policy=POLICY))
    log.commit(wrapup_done(log.state, "a1", NOW + 31))
    assert log.state.contacts["c1"].queue_id == "complaints_supervisor"
    assert offers(log, NOW + 31) == {"c1": "sup"}  # the queue's own requirements came with it


def test_disconnect_grace_revokes_offers_after_the_grace_only() -> None:
    log = Log()
    log.agent("a1")
    placed(log, "c1")
    offers(log)
    log.add("agent-default:a1", ev.AGENT_DISCONNECTED, {"agent_id": "a1", "at_s": NOW + 1})
    [grace] = timers_for_agent(log.state.agents["a1"], SETTINGS)
    assert grace.due_s == NOW + 16
    for decision in fire(log.state, grace, NOW + 16, SETTINGS):
        log.commit(decision)
    assert log.state.agents["a1"].presence is Presence.DISCONNECTED
    assert log.state.contacts["c1"].status == WAITING


def test_a_dropped_desk_gets_no_new_offers_in_its_grace_and_does_once_back() -> None:
    log = Log()
    log.agent("a1")
    log.add("agent-default:a1", ev.AGENT_DISCONNECTED, {"agent_id": "a1", "at_s": NOW})
    placed(log, "c1")
    assert offers(log, NOW + 1) == {}  # still available on record, but nobody is at the desk
    log.add("agent-default:a1", ev.AGENT_CONNECTED, {"agent_id": "a1", "at_s": NOW + 5})
    assert offers(log, NOW + 5) == {"c1": "a1"}


def test_going_away_hands_pending_offers_on() -> None:
    log = Log()
    log.agent("a1")
    placed(log, "c1")
    offers(log)
    log.commit(set_presence(log.state, "a1", "away", "lunch", NOW + 2))
    assert log.state.contacts["c1"].status == WAITING and log.state.agents["a1"].presence is Presence.AWAY


def test_ten_thousand_agents_are_indexed_not_scanned() -> None:
    log = Log()
    for i in range(10_000):
        log.agent(f"a{i:05d}", skills={"general": 3}, at_s=NOW - 10_000 + i)
    placed(log, "c1")
    assert offers(log) == {"c1": "a00000"}


def test_a_promised_callback_reopens_the_contact_when_due() -> None:
    log = Log()
    log.agent("a1", available=False)
    placed(log, "c1")
    contact = log.state.contacts["c1"]
    log.add("contact-default:c1", ev.CALLBACK_SCHEDULED, {"contact_id": "c1", "callback_at_s": NOW + 3600,
                                                          "at_s": NOW + 60})
    log.add("contact-default:c1", ev.CONTACT_ENDED, {"contact_id": "c1", "cause": "hung up after the offer"})
    assert contact.status == DONE
    [timer] = [t for t in timers_for_contact(contact) if t.kind == "callback"]
    assert timer.due_s == NOW + 3600
    assert fire(log.state, timer, NOW + 3599, SETTINGS) == []
    for decision in fire(log.state, timer, NOW + 3600, SETTINGS):
        log.commit(decision)
    assert contact.status == WAITING and contact.callback_due
    log.add("agent-default:a1", ev.AGENT_STATE_CHANGED, {"agent_id": "a1", "state": "available", "at_s": NOW + 3600})
    assert offers(log, NOW + 3601) == {"c1": "a1"}
    assert fire(log.state, timer, NOW + 3700, SETTINGS) == []  # once only


def test_finished_contacts_can_be_forgotten_but_not_those_with_timers_to_come() -> None:
    log = Log()
    log.agent("a1")
    placed(log, "done")
    placed(log, "callback")
    log.add("contact-default:done", ev.CONTACT_ENDED, {"contact_id": "done", "cause": "hung up"})
    log.add("contact-default:callback", ev.CALLBACK_SCHEDULED, {"contact_id": "callback",
                                                                 "callback_at_s": NOW + 600, "at_s": NOW})
    log.add("contact-default:callback", ev.CONTACT_ENDED, {"contact_id": "callback", "cause": "hung up"})
    assert log.state.forget_done(lambda c: bool(timers_for_contact(c))) == 1
    assert "done" not in log.state.contacts and "callback" in log.state.contacts


def test_a_wait_ended_by_the_network_counts_the_wait_the_router_saw_when_it_ended() -> None:
    # No waited_s on the gateway's ContactEnded: it counted as a 0 s abandon dated at the
    # queueing (a ten-minute wait vanished from the abandonment figures).
    log = Log()
    log.agent("a1", available=False)
    placed(log, "c1", intent=Intent.LOAN)
    log.add("contact-default:c1", ev.CONTACT_ENDED, {"contact_id": "c1", "ended_by": "system", "cause": "network"},
            recorded_at_s=NOW + 600)
    [outcome] = log.state.outcomes
    assert not outcome.answered and outcome.at_s == NOW + 600
    assert 599 <= outcome.waited_s <= 601


def test_a_customer_who_hangs_up_after_a_callback_was_promised_did_not_abandon() -> None:
    log = Log()
    log.agent("a1", available=False)
    placed(log, "c1", intent=Intent.LOAN)
    log.add("contact-default:c1", ev.CALLBACK_SCHEDULED, {"contact_id": "c1", "callback_at_s": NOW + 3600})
    log.add("contact-default:c1", ev.CUSTOMER_ABANDONED, {"contact_id": "c1", "waited_s": 700.0},
            recorded_at_s=NOW + 700)
    assert not log.state.outcomes  # the callback is the contact's answer, counted when it is made
    assert log.state.contacts["c1"].status == DONE
