"""`bench route`'s in-process part, kept honest: its state routes as the server would, and
its timing measures something (pure, well under a second: no server, no database)."""

from __future__ import annotations

from policies.eligibility import ineligibility
from policies.vocabulary import Strategy
from router.bench.route import DECISION_NOW_S, decision_state, time_decisions_us
from router.decide import next_offers, offered, requirements_of


def test_decision_timing_on_100_agents_is_positive_and_picks_the_longest_idle_agent() -> None:
    state, _ = decision_state(100)
    made = {contact: agent for decision in next_offers(state, DECISION_NOW_S) for contact, agent in
            offered(decision).items()}
    assert len(made) == len(state.waiting()) == 12
    first = max(state.waiting(), key=lambda c: (c.plan.priority if c.plan else 0, -int(c.contact_id[1:])))
    assert first.plan is not None and first.facts is not None and first.plan.strategy is Strategy.LONGEST_IDLE
    eligible = [a.snapshot for a in state.agents.values() if a.snapshot is not None
                and not ineligibility(a.snapshot, requirements_of(first), first.facts)]
    assert made[first.contact_id] == min(eligible, key=lambda s: s.idle_since_s).agent_id
    assert time_decisions_us(state, 0.05) > 0
