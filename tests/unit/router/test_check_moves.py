"""`contact-router check` and moved contacts: a contact transferred to a queue overflows down
that queue's `overflow_to` chain when its max wait passes (ContactRequeued, reason
max_wait_overflow). Every move keeps the hard requirements (only a transfer or a named agent's
fallback lets a named agent go), an overflow past due is applied, never early nor elsewhere,
and the SLA target after a move is the one the move recorded.

Clean logs come from the router's own decisions; a violation is such a log with one event
tampered with or left out."""

from __future__ import annotations

from typing import cast

import pytest

from policies.vocabulary import Channel
from router import events as ev
from router.commands import CommandError, accept, set_presence, transfer
from router.decide import Decision, place
from router.timers import fire, timers_for_contact
from tests.unit.router.builders import POLICY, TimedLog, tampered
from tests.unit.router.test_check_callbacks import SETTINGS, TUESDAY_10, answer, later, offer_of, route, tick

T0 = TUESDAY_10
MOVED_S = T0 + 30  # the agent who answered transfers the contact to the private-banking queue
ENGLISH_ONLY = {"language": "en", "languages": frozenset({"en"})}  # a hard `language en` for this customer


def transferred_to_vip(*, publish: bool = True) -> TimedLog:
    """An English-only caller (hard: an English speaker) answered by e1, who transfers the call
    to `vip` (answer within 10 s, max wait 180 s, then `wealth`: 300 s, then `general`) and goes
    away; e2, the other English speaker, is away too."""
    log = TimedLog(T0 - 300)
    if publish:
        log.publish()
    for agent_id in ("e1", "e2"):
        log.agent(agent_id, skills={"general": 3, "wealth": 3}, languages=("zh", "en"), channels={"phone": 1},
                  available=agent_id == "e1", at_s=T0 - 300)
    log.now_s = T0
    log.contact("c1", channel=Channel.PHONE, **ENGLISH_ONLY)
    log.commit(place(log.state, log.state.contacts["c1"], POLICY, T0))
    assert route(log, T0) == {"c1": "e1"}
    log.now_s = T0 + 2
    log.commit(accept(log.state, "e1", offer_of(log, "c1"), T0 + 2))
    log.now_s = MOVED_S
    log.commit(transfer(log.state, "e1", "c1", "vip", None, "a private-banking question", MOVED_S, policy=POLICY))
    log.commit(set_presence(log.state, "e1", "away", "done for the day", MOVED_S))
    return log


def overflow_decision(log: TimedLog, now_s: float) -> Decision:
    log.now_s = now_s
    [timer] = [t for t in timers_for_contact(log.state.contacts["c1"]) if t.kind == "overflow"]
    [decision] = fire(log.state, timer, now_s, SETTINGS, POLICY.queues, POLICY.home_language, policy=POLICY)
    return decision


def requeued(log: TimedLog) -> list[dict[str, object]]:
    return [e.data for e in log.recorded if e.type == ev.CONTACT_REQUEUED]


def test_a_transferred_contact_overflowing_down_its_queues_chain_passes() -> None:
    log = transferred_to_vip()
    assert tick(log, MOVED_S + 10) == [ev.SLA_BREACHED]  # vip's target, from the transfer
    assert tick(log, MOVED_S + 180) == [ev.CONTACT_REQUEUED]  # vip's max wait: on to wealth
    assert tick(log, MOVED_S + 480) == [ev.CONTACT_REQUEUED]  # wealth's: on to general
    log.add("agent-default:e2", ev.AGENT_STATE_CHANGED, {"agent_id": "e2", "state": "available", "at_s": log.now_s})
    assert route(log, MOVED_S + 481) == {"c1": "e2"}
    answer(log, "c1", "e2", MOVED_S + 483)
    moves = requeued(log)
    assert [(m["reason"], m["queue_id"]) for m in moves] == [
        ("transfer", "vip"), ("max_wait_overflow", "wealth"), ("max_wait_overflow", "general")]
    english = {"kind": "language", "name": "en", "min_level": 0, "hard": True}
    assert all(english in cast(list[object], m["requirements"]) for m in moves)
    report = log.check()
    assert report["ok"], report["violations"]
    assert report["completed"] == 1


def test_an_overflow_past_due_and_never_applied_is_caught() -> None:
    log = transferred_to_vip()
    tick(log, MOVED_S + 10, kinds=frozenset({"sla"}))
    later(log, MOVED_S + 300)  # the router ran on past vip's max wait (due at MOVED_S + 180)
    assert any(f"contact c1: its overflow from vip to wealth was due at {MOVED_S + 180:.0f}" in v
               and "never applied" in v for v in log.check()["violations"]), log.check()["violations"]
    # Stopped before it (the log's clock stopped with the router): not blamed.
    stopped = transferred_to_vip()
    tick(stopped, MOVED_S + 10, kinds=frozenset({"sla"}))
    assert stopped.check(MOVED_S + 3600)["ok"]
    # Without the policy in the log, the checker cannot know the router had the queue to go to.
    unknown = transferred_to_vip(publish=False)
    tick(unknown, MOVED_S + 10, kinds=frozenset({"sla"}))
    later(unknown, MOVED_S + 300)
    assert unknown.check()["ok"], unknown.check()["violations"]


def test_an_overflow_early_elsewhere_or_to_an_answered_contact_is_caught() -> None:
    early = transferred_to_vip()
    early.commit(tampered(overflow_decision(early, MOVED_S + 180), ev.CONTACT_REQUEUED, at_s=MOVED_S + 100))
    assert any("contact c1 overflowed to wealth at" in v and "before its max wait in vip passed" in v
               for v in early.check()["violations"]), early.check()["violations"]
    elsewhere = transferred_to_vip()
    elsewhere.commit(tampered(overflow_decision(elsewhere, MOVED_S + 180), ev.CONTACT_REQUEUED, queue_id="general"))
    assert any("contact c1 overflowed to general" in v and "but queue vip overflows to wealth" in v
               for v in elsewhere.check()["violations"]), elsewhere.check()["violations"]
    answered = transferred_to_vip()
    decision = overflow_decision(answered, MOVED_S + 180)
    answered.add("agent-default:e2", ev.AGENT_STATE_CHANGED, {"agent_id": "e2", "state": "available",
                                                              "at_s": answered.now_s})
    assert route(answered, MOVED_S + 179) == {"c1": "e2"}
    answered.commit(accept(answered.state, "e2", offer_of(answered, "c1"), MOVED_S + 179))
    data = next(d for t, d in decision.parts[0].events if t == ev.CONTACT_REQUEUED)
    answered.add("contact-default:c1", ev.CONTACT_REQUEUED, data)  # decided before the answer, stored after it
    assert any("contact c1 overflowed to wealth while it was not waiting" in v
               for v in answered.check()["violations"]), answered.check()["violations"]


def test_an_overflow_that_relaxes_a_hard_requirement_is_caught() -> None:
    for requirements, how in (([], "dropped"), ([{"kind": "language", "name": "en", "min_level": 0, "hard": False}],
                                                "kept as a soft one, which the next step could relax")):
        log = transferred_to_vip()
        log.commit(tampered(overflow_decision(log, MOVED_S + 180), ev.CONTACT_REQUEUED, requirements=requirements))
        assert any(f"ContactRequeued relaxed the hard requirement language en of contact c1 (position {log.position})"
                   == v for v in log.check()["violations"]), (how, log.check()["violations"])


def test_only_a_transfer_or_a_fallback_lets_a_named_agent_go() -> None:
    """Transferred to e2 by name, the contact waits for e2 only; an overflow (here one the
    router never decides: a named agent's contact has no max wait) must not let it go."""
    log = TimedLog(T0 - 300)
    log.publish()
    for agent_id in ("e1", "e2"):
        log.agent(agent_id, languages=("zh", "en"), channels={"phone": 1}, at_s=T0 - 300)
    log.now_s = T0
    log.contact("c2", channel=Channel.PHONE, **ENGLISH_ONLY)
    log.commit(place(log.state, log.state.contacts["c2"], POLICY, T0))
    assert route(log, T0) == {"c2": "e1"}
    log.commit(accept(log.state, "e1", offer_of(log, "c2"), T0 + 2))
    log.commit(transfer(log.state, "e1", "c2", None, "e2", "for you", T0 + 30))
    assert requeued(log)[-1]["requirements"] == [{"kind": "language", "name": "en", "min_level": 0, "hard": True},
                                                  {"kind": "agent", "name": "e2", "min_level": 0, "hard": True}]
    assert log.check()["ok"], log.check()["violations"]
    log.now_s = T0 + 230
    log.add("contact-default:c2", ev.CONTACT_REQUEUED, {
        "contact_id": "c2", "queue_id": "general", "reason": "max_wait_overflow", "same_wait": True,
        "requirements": [{"kind": "language", "name": "en", "min_level": 0, "hard": True}],
        "answer_within_s": 20.0, "at_s": log.now_s})
    assert any("ContactRequeued relaxed the hard requirement agent e2 of contact c2" in v
               for v in log.check()["violations"]), log.check()["violations"]


def test_the_sla_after_a_move_is_held_to_the_target_the_move_recorded() -> None:
    log = transferred_to_vip()
    log.now_s = MOVED_S + 10
    [sla] = [t for t in timers_for_contact(log.state.contacts["c1"]) if t.kind == "sla"]
    [breach] = fire(log.state, sla, MOVED_S + 10, SETTINGS)
    stated = tampered(breach, ev.SLA_BREACHED, answer_within_s=40.0)  # the foreign queue's, the plan's
    log.commit(stated)
    assert any("SlaBreached" in v and "states a target of 40 s, but the queue it waits in answers within 10 s" in v
               for v in log.check()["violations"]), log.check()["violations"]
    early = transferred_to_vip()
    early.now_s = MOVED_S + 5
    [sla] = [t for t in timers_for_contact(early.state.contacts["c1"]) if t.kind == "sla"]
    [breach] = fire(early.state, sla, MOVED_S + 10, SETTINGS)
    early.commit(tampered(breach, ev.SLA_BREACHED, at_s=MOVED_S + 5))
    assert any(f"SlaBreached at {MOVED_S + 5:.0f}" in v and f"before the wait's SLA target passed ({MOVED_S + 10:.0f})"
               in v for v in early.check()["violations"]), early.check()["violations"]


# -- a router bug the checker found ----------------------------------------------------------


def held_by_e2() -> TimedLog:
    log = transferred_to_vip()
    log.add("agent-default:e2", ev.AGENT_STATE_CHANGED, {"agent_id": "e2", "state": "available", "at_s": log.now_s})
    assert route(log, MOVED_S + 5) == {"c1": "e2"}
    log.commit(accept(log.state, "e2", offer_of(log, "c1"), MOVED_S + 6))
    log.now_s = MOVED_S + 20
    return log


def hung_up_before_the_agent_was_freed() -> TimedLog:
    """The caller hangs up during the call; before the router frees e2 (its reaction to the
    end), e2's desk transfers the call: the transfer is decided on a state where e2 still
    holds the contact."""
    log = held_by_e2()
    log.add("contact-default:c1", ev.CONTACT_ENDED, {"contact_id": "c1", "cause": "hung up"})
    return log


def test_a_contact_moved_after_its_customer_hung_up_is_caught() -> None:
    """As the router wrote it before it refused such a transfer (see the test below)."""
    log = held_by_e2()
    decided = transfer(log.state, "e2", "c1", "general", None, "", MOVED_S + 21, policy=POLICY)
    log.add("contact-default:c1", ev.CONTACT_ENDED, {"contact_id": "c1", "cause": "hung up"})
    for part in decided.parts:  # after the hang-up, as if decided on the state just after it
        for type_, data in part.events:
            log.add(part.stream_id, type_, data)
    assert any("contact c1 moved to queue general after it ended" in v for v in log.check()["violations"])


def test_router_a_contact_whose_customer_hung_up_is_not_transferred() -> None:
    log = hung_up_before_the_agent_was_freed()
    with pytest.raises(CommandError) as refused:
        transfer(log.state, "e2", "c1", "general", None, "", MOVED_S + 21, policy=POLICY)
    assert refused.value.code == "contact_ended"
