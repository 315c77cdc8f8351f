"""Audit of `contact-router check`: logs that break an invariant must fail, tricky legitimate
logs (transfers, re-offers, revocations, a leader change, a stopped router) must pass."""

from __future__ import annotations

from typing import Any

from router import events as ev
from tests.unit.router.test_check import AGENT, C, HARD_PLAN, KEPT, NOW, arrive, assign, offer, run

Events = list[tuple[str, str, dict[str, Any]]]
LATER: Events = [("agent-default:a2", ev.AGENT_STATE_CHANGED, {"state": "away"})]  # the router still writing
A3: Events = [("agent-default:a3", ev.AGENT_REGISTERED, {"channels": {"phone": 1}, "total_capacity": 1,
                                                         "skills": {"sign_language": 5}, "languages": ["zh"]})]


def _release(offer_id: str, agent: str, kind: str, contact: str = C) -> Events:
    return [(contact, kind, {"offer_id": offer_id, "agent_id": agent}),
            (f"agent-default:{agent}", ev.AGENT_RELEASED, {"offer_id": offer_id})]


def _complete(agent: str, contact: str = C) -> Events:
    return [(contact, ev.CONTACT_COMPLETED, {}),
            (f"agent-default:{agent}", ev.AGENT_FREED, {"contact_id": contact.split(":")[1]})]


def test_an_offer_accepted_after_it_was_revoked_is_caught() -> None:
    """Resolved twice: revoked (the agent's profile changed), then accepted all the same."""
    report = run(AGENT + arrive() + offer("o1", "a1") + _release("o1", "a1", ev.OFFER_REVOKED) + assign("o1", "a1"))
    assert any("o1" in v and "resolved twice" in v for v in report["violations"]), report


def test_an_assignment_to_another_agent_than_the_offers_is_caught() -> None:
    events = AGENT + A3 + arrive() + offer("o1", "a1")
    events += [(C, ev.OFFER_ACCEPTED, {"offer_id": "o1"}),
               (C, ev.CONTACT_ASSIGNED, {"offer_id": "o1", "agent_id": "a3"}),
               ("agent-default:a3", ev.AGENT_ENGAGED, {"offer_id": "o1", "contact_id": "c1", "channel": "phone"})]
    report = run(events)
    assert any("a3" in v and "offer o1" in v for v in report["violations"]), report


def test_a_contact_engaged_by_two_agents_at_once_is_caught_even_if_the_contact_stream_was_moved() -> None:
    """The agents' streams say who holds the contact: a move on the contact's stream (here an
    overflow that should never come to an answered contact) does not free the first agent."""
    moved = [(C, ev.CONTACT_REQUEUED, {"at_s": NOW, "requirements": KEPT, "same_wait": True})]
    report = run(AGENT + A3 + arrive() + offer("o1", "a1") + assign("o1", "a1") + moved + offer("o2", "a3")
                 + assign("o2", "a3"))
    assert any("c1" in v and "a1" in v and "a3" in v for v in report["violations"]), report


def test_a_contact_transferred_to_a_named_agent_and_given_to_another_is_caught() -> None:
    """The named agent is a hard requirement: only a fallback (ContactRequeued, reason
    named_agent_fallback) lets another agent take it."""
    to_a3 = [(C, ev.CONTACT_TRANSFERRED, {"to_agent": "a3"}),
             (C, ev.CONTACT_REQUEUED, {"at_s": NOW, "requirements": KEPT + [
                 {"kind": "agent", "name": "a3", "min_level": 0, "hard": True}]}),
             ("agent-default:a1", ev.AGENT_FREED, {"contact_id": "c1"})]
    base = AGENT + A3 + arrive() + offer("o1", "a1") + assign("o1", "a1") + to_a3
    report = run(base + offer("o2", "a1") + assign("o2", "a1"))
    assert any("does not meet the hard requirement agent a3" in v for v in report["violations"]), report
    fine = run(base + offer("o2", "a3") + assign("o2", "a3") + _complete("a3"))
    assert fine["ok"], fine["violations"]
    fallback = [(C, ev.CONTACT_REQUEUED, {"at_s": NOW, "requirements": KEPT, "same_wait": True,
                                          "reason": "named_agent_fallback"})]
    after_fallback = run(base + fallback + offer("o2", "a1") + assign("o2", "a1") + _complete("a1"))
    assert after_fallback["ok"], after_fallback["violations"]


def test_a_follow_up_marked_before_a_re_placement_is_not_due_again() -> None:
    plan = {**HARD_PLAN, "deadlines": {"follow_up": NOW + 100}}
    events = [*AGENT, (C, ev.CONTACT_ARRIVED, {"channel": "phone"}),
              (C, ev.CONTACT_QUEUED, {"plan": plan, "queued_at_s": NOW}), (C, ev.SLA_BREACHED, {}),
              (C, ev.FOLLOW_UP_DUE, {"name": "follow_up"}),
              (C, ev.CONTACT_QUEUED, {"plan": plan, "queued_at_s": NOW}),  # its intent changed: placed again
              (C, ev.CONTACT_ENDED, {})]
    report = run(events + LATER, now_s=NOW + 3600, log_ends_s=NOW + 400)
    assert report["ok"], report["violations"]


def test_the_same_offer_id_in_two_domains_is_two_offers() -> None:
    b_agent = [("agent-branch_b:a1", ev.AGENT_REGISTERED, {"channels": {"phone": 1}, "total_capacity": 1,
                                                           "skills": {"sign_language": 4}, "languages": ["zh"]})]
    b = "contact-branch_b:c1"
    b_offer = [(b, ev.OFFER_MADE, {"offer_id": "o1", "agent_id": "a1", "expires_at_s": NOW + 20}),
               ("agent-branch_b:a1", ev.AGENT_RESERVED, {"offer_id": "o1", "channel": "phone"})]
    b_release = [(b, ev.OFFER_EXPIRED, {"offer_id": "o1"}),
                 ("agent-branch_b:a1", ev.AGENT_RELEASED, {"offer_id": "o1"})]
    report = run(AGENT + b_agent + arrive() + arrive(b) + offer("o1", "a1") + b_offer
                 + _release("o1", "a1", ev.OFFER_EXPIRED) + b_release)
    assert report["ok"], report["violations"]


def test_tricky_but_legitimate_histories_pass() -> None:
    """Re-offers after an expiry and a reject, a revocation after a profile change, a leader
    change while an offer is open, a transfer to a queue, and a callback after the customer left."""
    leader = [("router-default:leader", ev.LEADER_ELECTED, {"epoch": 2, "instance": "b"})]
    shrink = [("agent-default:a3", ev.AGENT_UPDATED, {"skills": {"general": 1}})]
    transfer = [(C, ev.CONTACT_TRANSFERRED, {"to_queue": "complaints"}),
                (C, ev.CONTACT_REQUEUED, {"at_s": NOW, "requirements": KEPT, "answer_within_s": 30.0}),
                ("agent-default:a1", ev.AGENT_FREED, {"contact_id": "c1"})]
    history = (AGENT + A3 + arrive()
               + offer("o1", "a1") + leader + _release("o1", "a1", ev.OFFER_EXPIRED)
               + offer("o2", "a1") + _release("o2", "a1", ev.OFFER_REJECTED)
               + offer("o3", "a3") + shrink + _release("o3", "a3", ev.OFFER_REVOKED)
               + offer("o4", "a1") + assign("o4", "a1") + transfer
               + offer("o5", "a1") + assign("o5", "a1") + _complete("a1"))
    report = run(history + LATER, now_s=NOW + 3600, log_ends_s=NOW + 10)
    assert report["ok"], report["violations"]
    c2 = "contact-default:c2"
    callback_plan = {**HARD_PLAN, "answer_within_s": 14400.0, "callback_at_s": NOW + 100}
    called_back = ([(c2, ev.CONTACT_ARRIVED, {"channel": "phone"}),
                    (c2, ev.CONTACT_QUEUED, {"plan": callback_plan, "queued_at_s": NOW}),
                    (c2, ev.CUSTOMER_ABANDONED, {"waited_s": 8.0}), (c2, ev.CONTACT_ENDED, {}),
                    (c2, ev.CALLBACK_DUE, {"at_s": NOW + 100})]
                   + offer("o6", "a1", c2) + assign("o6", "a1", c2) + _complete("a1", c2))
    report = run(AGENT + called_back + LATER, now_s=NOW + 3600, log_ends_s=NOW + 200)
    assert report["ok"], report["violations"]


def test_histories_made_by_the_routers_own_decisions_pass() -> None:
    """The router's real decisions (expiry and re-offer, reject, a transfer to a named agent
    who rejects and its fallback, a revocation after a profile change, a leader change, SLA
    timers) make a log the checker must pass."""
    import uuid
    from datetime import datetime, timezone

    from eventstore import RecordedEvent
    from router.check import Checker
    from router.commands import accept, complete, reactions, reject, transfer, wrapup_done
    from router.decide import next_offers, offered, place
    from router.timers import TimerSettings, fire, timers_for_agent, timers_for_contact
    from tests.unit.router.builders import POLICY, Log

    settings = TimerSettings(disconnect_grace_s=15, max_missed_offers=5)
    t0 = 1_790_042_400.0

    def tick(log: Log, now_s: float) -> None:
        for contact in list(log.state.contacts.values()):
            for timer in timers_for_contact(contact):
                if timer.due_s <= now_s:
                    for decision in fire(log.state, timer, now_s, settings, POLICY.queues, POLICY.home_language):
                        log.commit(decision)
        for agent in list(log.state.agents.values()):
            for timer in timers_for_agent(agent, settings):
                if timer.due_s <= now_s:
                    for decision in fire(log.state, timer, now_s, settings):
                        log.commit(decision)

    def round_(log: Log, now_s: float) -> dict[str, str]:
        tick(log, now_s)
        made: dict[str, str] = {}
        for decision in next_offers(log.state, now_s):
            log.commit(decision)
            made.update(offered(decision))
        return made

    def build(log: Log) -> None:
        for agent_id in ("a1", "a2", "a3"):
            log.agent(agent_id, at_s=t0 - {"a1": 300, "a2": 200, "a3": 100}[agent_id])
        log.contact("c1")
        log.commit(place(log.state, log.state.contacts["c1"], POLICY, t0))
        assert round_(log, t0) == {"c1": "a1"}
        log.add("router-default:leader", ev.LEADER_ELECTED, {"epoch": 2, "instance": "b", "at_s": t0 + 5})
        c1 = log.state.contacts["c1"]
        expiry = c1.offer.expires_at_s
        assert round_(log, expiry) == {"c1": "a2"}  # expired: offered to the next
        log.commit(reject(log.state, "a2", c1.offer.offer_id, "busy", expiry + 1))
        assert round_(log, expiry + 1) == {"c1": "a3"}
        log.commit(accept(log.state, "a3", c1.offer.offer_id, expiry + 2))
        log.commit(transfer(log.state, "a3", "c1", None, "a2", "for you", expiry + 30))
        assert round_(log, expiry + 30) == {"c1": "a2"}
        log.commit(reject(log.state, "a2", c1.offer.offer_id, "no", expiry + 31))  # the named agent's fallback
        log.commit(wrapup_done(log.state, "a3", expiry + 31))
        made = round_(log, expiry + 32)
        assert made["c1"] != "a2", made
        answerer = made["c1"]
        log.commit(accept(log.state, answerer, c1.offer.offer_id, expiry + 33))
        log.contact("c2")
        log.commit(place(log.state, log.state.contacts["c2"], POLICY, expiry + 34))
        made = round_(log, expiry + 34)
        c2 = log.state.contacts["c2"]
        who = made["c2"]
        log.add(f"agent-default:{who}", ev.AGENT_UPDATED, {"agent_id": who, "skills": {"fraud": 3}})
        for decision in reactions(log.state, c2, expiry + 35):  # the profile changed: withdrawn
            log.commit(decision)
        assert c2.offer is None
        log.commit(complete(log.state, answerer, "c1", "resolved", expiry + 60))
        tick(log, expiry + 200)
        log.add("contact-default:c2", ev.CUSTOMER_ABANDONED, {"contact_id": "c2", "waited_s": 170.0})
        log.add("contact-default:c2", ev.CONTACT_ENDED, {"contact_id": "c2"})
        tick(log, expiry + 300)

    events = Log.events_of(build)
    kinds = [t for _, t, _ in events]
    assert {ev.OFFER_EXPIRED, ev.OFFER_REJECTED, ev.OFFER_REVOKED, ev.CONTACT_REQUEUED, ev.SLA_BREACHED} <= set(kinds)
    checker, versions = Checker(), {}
    end = datetime.fromtimestamp(t0 + 400, timezone.utc)
    for position, (stream, type_, data) in enumerate(events, 1):
        versions[stream] = versions.get(stream, 0) + 1
        checker.feed(RecordedEvent(uuid.uuid4(), stream, versions[stream], position, position, type_, data, {}, end))
    report = checker.report(t0 + 400)
    assert report["ok"], report["violations"]
    assert report["assigned"] == 2
