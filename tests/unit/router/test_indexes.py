"""The state's indexes agree with what they index: picking an agent by walking the
idle-ordered index with a bound gives the same agent as ranking every eligible agent
(random rosters, loads, ties and skill changes), the waiting contacts are exactly those
waiting, and the roster's skill counts say what a scan of every agent would about whether
anyone could ever serve a contact."""

from __future__ import annotations

import math
import random
from collections import Counter
from dataclasses import replace

import pytest

from policies.eligibility import ineligibility, sort_key
from policies.plan import requirements_at
from policies.vocabulary import Channel, Intent, Segment, Strategy
from router import events as ev
from router.commands import accept, complete, reject, wrapup_done
from router.decide import _qualifies, next_offers, offered, pick_agent, place, requirements_of, servability_gaps
from router.plancodec import plan_from_json
from router.state import WAITING, ContactState, RouterState
from tests.unit.router.builders import NOW, POLICY, Log

SKILLS = ("general", "complaints", "corporate", "elderly_care", "credit_card")


def _roster(log: Log, rng: random.Random, size: int) -> None:
    for i in range(size):
        agent_id = f"a{i:03d}"
        skills = {s: rng.randint(1, 5) for s in SKILLS if rng.random() < 0.7}
        log.agent(agent_id, skills=skills or {"general": 1}, languages=("zh", "en"),
                  channels={"phone": rng.choice((0, 1)), "webchat": rng.randint(1, 3)},
                  available=rng.random() < 0.85, at_s=NOW - rng.choice((10, 20, 30, 40)))  # idle ties on purpose
        stream = f"agent-default:{agent_id}"
        if rng.random() < 0.3:
            log.add(stream, ev.AGENT_ENGAGED, {"agent_id": agent_id, "contact_id": f"busy-{i}", "channel": "webchat"})
        if rng.random() < 0.1:
            log.add(stream, ev.AGENT_WRAPUP_STARTED, {"agent_id": agent_id, "until_s": NOW + 60})
        if rng.random() < 0.2:  # a skill change while the agent may be free
            log.add(stream, ev.AGENT_UPDATED, {"agent_id": agent_id, "skills": {s: rng.randint(1, 5) for s in SKILLS}})
    for i in rng.sample(range(size), size // 3):  # back from a break, in no particular id order
        stream, agent_id = f"agent-default:a{i:03d}", f"a{i:03d}"
        log.add(stream, ev.AGENT_STATE_CHANGED, {"agent_id": agent_id, "state": "away", "at_s": NOW - 5})
        log.add(stream, ev.AGENT_STATE_CHANGED, {"agent_id": agent_id, "state": "available", "at_s": NOW - 5})


def _brute_force(state: RouterState, contact: ContactState, taken: Counter[str]) -> str | None:
    assert contact.plan is not None and contact.facts is not None
    requirements = requirements_of(contact)
    eligible = [a.snapshot for a in state.agents.values() if a.snapshot is not None
                and a.agent_id not in contact.tried and not taken[a.agent_id]
                and not ineligibility(a.snapshot, requirements, contact.facts)]
    key = sort_key(contact.plan.strategy, requirements, contact.facts)
    return min(eligible, key=key).agent_id if eligible else None


@pytest.mark.parametrize("seed", range(40))
def test_the_bounded_walk_picks_the_agent_a_full_ranking_would(seed: int) -> None:
    rng = random.Random(seed)
    log = Log()
    _roster(log, rng, rng.choice((5, 30, 120)))
    facts = [{"intent": Intent.COMPLAINT}, {"segment": Segment.CORPORATE}, {"intent": Intent.CREDIT_CARD}]
    for n, fact in enumerate(facts):
        contact_id = f"c{n}"
        log.contact(contact_id, channel=rng.choice((Channel.PHONE, Channel.WEBCHAT)), **fact)
        log.commit(place(log.state, log.state.contacts[contact_id], POLICY, NOW))
    for contact in log.state.waiting():
        assert contact.plan is not None
        for strategy in (Strategy.MOST_SKILLED, Strategy.LEAST_BUSY):
            contact.plan = replace(contact.plan, strategy=strategy)
            contact.tried = {a for a in log.state.agents if rng.random() < 0.1}
            taken: Counter[str] = Counter()
            choice = pick_agent(log.state, contact, NOW, taken)
            assert (choice[0].agent_id if choice else None) == _brute_force(log.state, contact, taken)


def test_free_level_counts_follow_the_index() -> None:
    rng = random.Random(7)
    log = Log()
    _roster(log, rng, 60)
    state = log.state
    for channel in Channel:
        expected: dict[str, Counter[int]] = {}
        for agent_id in state.available[channel]:
            profile = state.agents[agent_id].profile
            assert profile is not None
            for skill, level in profile.skills.items():
                expected.setdefault(skill, Counter())[level] += 1
        for skill in SKILLS:
            counts = expected.get(skill, Counter())
            assert +state.free_levels[channel].get(skill, Counter()) == counts
            assert state.best_free_level(channel, skill) == max(counts, default=0)


def _waiting_by_scan(state: RouterState) -> set[str]:
    return {k for k, c in state.contacts.items() if c.status == WAITING and c.plan is not None}


def test_waiting_contacts_follow_offers_rejects_and_completions() -> None:
    rng = random.Random(3)
    log = Log()
    for i in range(6):
        log.agent(f"a{i}", skills={"general": 3, "credit_card": 3, "fraud": 3}, at_s=NOW - 100 + i)
    for n in range(20):
        log.contact(f"c{n}", intent=rng.choice((Intent.CREDIT_CARD, Intent.FRAUD, Intent.GENERAL)))
        assert set(log.state.waiting_ids) == _waiting_by_scan(log.state)
        log.commit(place(log.state, log.state.contacts[f"c{n}"], POLICY, NOW))
        assert set(log.state.waiting_ids) == _waiting_by_scan(log.state)
    for step in range(30):
        now_s = NOW + step
        for decision in next_offers(log.state, now_s):
            log.commit(decision)
            for contact_id, agent_id in offered(decision).items():
                offer_id = log.state.contacts[contact_id].offer.offer_id  # type: ignore[union-attr]
                answer = accept if rng.random() < 0.6 else reject
                log.commit(answer(log.state, agent_id, offer_id, now_s) if answer is accept
                           else reject(log.state, agent_id, offer_id, "busy", now_s))
            assert {c.contact_id for c in log.state.waiting()} == _waiting_by_scan(log.state)
        for agent in list(log.state.agents.values()):
            for contact_id in list(agent.contacts):
                log.commit(complete(log.state, agent.agent_id, contact_id, "resolved", now_s))
            if agent.wrapup_until_s is not None:
                log.commit(wrapup_done(log.state, agent.agent_id, now_s))
        assert {c.contact_id for c in log.state.waiting()} == _waiting_by_scan(log.state)


@pytest.mark.parametrize("seed", range(10))
def test_servability_is_what_a_scan_of_every_agent_says(seed: int) -> None:
    rng = random.Random(seed)
    log = Log()
    _roster(log, rng, rng.choice((0, 3, 40)))
    for skill in SKILLS:
        levels = Counter(a.profile.skills[skill] for a in log.state.agents.values()
                         if a.profile is not None and a.profile.skills.get(skill, 0) > 0)
        assert +log.state.skill_levels.get(skill, Counter()) == levels
        assert log.state.best_roster_level(skill) == max(levels, default=0)
    facts = [{"intent": Intent.COMPLAINT}, {"segment": Segment.CORPORATE}, {"intent": Intent.CREDIT_CARD},
             {"segment": Segment.VIP}, {"intent": Intent.FRAUD, "channel": Channel.VIDEO}]
    for n, fact in enumerate(facts):
        log.contact(f"c{n}", **fact)
        contact = log.state.contacts[f"c{n}"]
        assert contact.facts is not None
        plan = place(log.state, contact, POLICY, NOW).parts[0].events[0][1]["plan"]
        final = requirements_at(plan_from_json(plan), math.inf)
        anyone = any(_qualifies(a.snapshot, final, contact.facts.channel) for a in log.state.agents.values()
                     if a.snapshot is not None)
        assert (servability_gaps(log.state, contact.facts, plan_from_json(plan)) == []) == anyone


@pytest.mark.parametrize("seed", range(10))
def test_the_availability_index_stays_in_idle_order_through_churn(seed: int) -> None:
    # Agents join, take and finish chats, go away and come back in random order; the index
    # a router walks for the longest-idle agent must always be exactly the agents with room,
    # longest idle first (ties by id).
    rng = random.Random(seed)
    log = Log()
    _roster(log, rng, 40)
    state = log.state
    for step in range(300):
        agent_id = f"a{rng.randrange(40):03d}"
        stream = f"agent-default:{agent_id}"
        agent = state.agents[agent_id]
        roll = rng.random()
        if roll < 0.35:
            log.add(stream, ev.AGENT_ENGAGED, {"agent_id": agent_id, "contact_id": f"k{step}", "channel": "webchat"})
        elif roll < 0.7 and agent.contacts:
            log.add(stream, ev.AGENT_FREED, {"agent_id": agent_id, "contact_id": next(iter(agent.contacts)),
                                             "at_s": NOW + step})
        else:
            state_now = rng.choice(("away", "available"))
            log.add(stream, ev.AGENT_STATE_CHANGED, {"agent_id": agent_id, "state": state_now,
                                                     "at_s": NOW + rng.choice((-50, 0, step))})
        for channel in Channel:
            with_room = [a for a in state.agents.values()
                         if a.snapshot is not None and state._has_room(a.snapshot, channel)]
            expected = [a.agent_id for a in sorted(with_room, key=lambda a: (a.idle_since_s, a.agent_id))]
            assert list(state.available[channel]) == expected, f"step {step}, {channel}"
