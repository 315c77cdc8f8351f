"""RoutingPlan <-> JSON, so the router's state can be rebuilt from ContactQueued events
without re-running the policy that was active then."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from policies.plan import Deadline, EscalationStep, Requirement, RequirementKind, RoutingPlan, StepAction
from policies.vocabulary import Strategy


def requirement_from_json(data: Mapping[str, Any]) -> Requirement:
    return Requirement(RequirementKind(data["kind"]), data["name"], int(data.get("min_level", 0)), bool(data.get("hard")))


def _step(data: Mapping[str, Any]) -> EscalationStep:
    return EscalationStep(
        after_s=float(data["after_s"]),
        action=StepAction(data["action"]),
        params=dict(data.get("params", {})),
        queue=data["queue"],
        requirements=tuple(requirement_from_json(r) for r in data.get("requirements", ())),
        priority_delta=float(data.get("priority_delta", 0.0)),
        source=data.get("source", ""),
    )


def plan_from_json(data: Mapping[str, Any]) -> RoutingPlan:
    return RoutingPlan(
        policy_version=int(data["policy_version"]),
        rule_id=data["rule_id"],
        rule_index=int(data["rule_index"]),
        queue_id=data["queue_id"],
        requirements=tuple(requirement_from_json(r) for r in data["requirements"]),
        priority=float(data["priority"]),
        priority_growth_per_min=float(data["priority_growth_per_min"]),
        offer_timeout_s=float(data["offer_timeout_s"]),
        strategy=Strategy(data["strategy"]),
        answer_within_s=float(data["answer_within_s"]),
        target_pct=float(data["target_pct"]),
        max_wait_s=None if data.get("max_wait_s") is None else float(data["max_wait_s"]),
        wrapup_s=float(data["wrapup_s"]),
        escalations=tuple(_step(s) for s in data.get("escalations", ())),
        deadlines=tuple(Deadline(name, float(due)) for name, due in dict(data.get("deadlines", {})).items()),
        after_hours=bool(data.get("after_hours")),
        callback_at_s=None if data.get("callback_at_s") is None else float(data["callback_at_s"]),
        arrived_s=float(data["arrived_s"]),
        reasons=tuple(data.get("reasons", ())),
    )
