"""What a policy would do to one contact, step by step, as JSON-ready data.

Pure: the caller gives the instant and (optionally) a roster of agent snapshots.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict

from policies.eligibility import partition, rank
from policies.engine import CompiledPolicy, evaluate, moment_at
from policies.plan import RoutingPlan, priority_at, queue_at, requirements_at
from policies.vocabulary import AgentSnapshot, ContactFacts

SAMPLE_POINTS_S = (0.0, 30.0, 60.0, 120.0, 300.0)
DEFAULT_HORIZON_S = 1800.0


def simulate(
    policy: CompiledPolicy,
    contact: ContactFacts,
    now_s: float,
    roster: Sequence[AgentSnapshot] | None = None,
    horizon_s: float = DEFAULT_HORIZON_S,
) -> dict[str, object]:
    """Matched rule and why earlier ones did not match, queue, requirements, priority over
    time, the escalation timeline and (with a roster) the ranked eligible agents."""
    plan = evaluate(policy, contact, now_s)
    result: dict[str, object] = {
        "policy_version": policy.version,
        "now_s": now_s,
        "contact": contact_json(contact),
        "rule": {"id": plan.rule_id, "index": plan.rule_index,
                 "matches": policy.rules[plan.rule_index].description},
        "earlier_rules": _earlier_rules(policy, contact, now_s, plan.rule_index),
        "queue": _queue_json(policy, plan.queue_id),
        "requirements": [r.to_json() for r in plan.requirements],
        "strategy": plan.strategy.value,
        "priority": plan.priority,
        "priority_growth_per_min": plan.priority_growth_per_min,
        "offer_timeout_s": plan.offer_timeout_s,
        "after_hours": plan.after_hours,
        "callback_at_s": plan.callback_at_s,
        "deadlines": {d.name: d.due_s for d in plan.deadlines},
        "escalations": [s.to_json() for s in plan.escalations if s.after_s <= horizon_s],
        "timeline": [_sample(plan, t, contact, roster) for t in sample_points(plan, horizon_s)],
        "reasons": list(plan.reasons),
    }
    if roster is not None:
        result["agents"] = _agents_json(plan, contact, now_s, roster)
    return result


def sample_points(plan: RoutingPlan, horizon_s: float) -> list[float]:
    """The usual marks plus every escalation instant, up to the horizon."""
    points = {*SAMPLE_POINTS_S, *(s.after_s for s in plan.escalations)}
    return sorted(t for t in points if t <= horizon_s)


def _earlier_rules(policy: CompiledPolicy, contact: ContactFacts, now_s: float, index: int) -> list[object]:
    moment = moment_at(policy, now_s) if policy.needs_moment else None
    return [
        {"id": r.spec.id, "index": r.index,
         "why_not": r.checker.why_not(contact, policy.home_language, moment)}
        for r in policy.rules[:index]
    ]


def _queue_json(policy: CompiledPolicy, queue_id: str) -> dict[str, object]:
    q = policy.queue(queue_id)
    return {"id": q.id, "name": q.name, "answer_within_s": q.answer_within_s, "target_pct": q.target_pct,
            "max_wait_s": q.max_wait_s, "overflow_to": q.overflow_to, "wrapup_s": q.wrapup_s}


def _sample(
    plan: RoutingPlan, waited_s: float, contact: ContactFacts, roster: Sequence[AgentSnapshot] | None
) -> dict[str, object]:
    requirements = requirements_at(plan, waited_s)
    sample: dict[str, object] = {
        "waited_s": waited_s,
        "priority": round(priority_at(plan, waited_s), 3),
        "queue": queue_at(plan, waited_s),
        "requirements": [r.describe() + (" (hard)" if r.hard else "") for r in requirements],
    }
    if roster is not None:
        sample["eligible_agents"] = sorted(a.agent_id for a in partition(roster, requirements, contact).eligible)
    return sample


def _agents_json(
    plan: RoutingPlan, contact: ContactFacts, now_s: float, roster: Sequence[AgentSnapshot]
) -> dict[str, object]:
    split = partition(roster, plan.requirements, contact)
    ranked = rank(split.eligible, plan.requirements, plan.strategy, contact, now_s)
    return {
        "strategy": plan.strategy.value,
        "eligible": [
            {"rank": i + 1, "agent_id": a.agent_id, "idle_s": max(now_s - a.idle_since_s, 0.0),
             "load": a.total_load, "capacity": a.profile.total_capacity}
            for i, a in enumerate(ranked)
        ],
        "ineligible": [{"agent_id": agent_id, "reasons": list(reasons)}
                       for agent_id, reasons in sorted(split.ineligible.items())],
    }


def contact_json(contact: ContactFacts) -> dict[str, object]:
    data = asdict(contact)
    for key in ("languages", "needs", "tags"):
        data[key] = sorted(str(v) for v in data[key])
    data["channel"] = contact.channel.value
    data["segment"] = contact.segment.value
    data["intent"] = contact.intent.value
    data["callback_windows"] = [{"start_min": w.start_min, "end_min": w.end_min} for w in contact.callback_windows]
    return data
