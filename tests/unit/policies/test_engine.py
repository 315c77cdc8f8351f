"""The routing plan: requirements, priority, timeline, deadlines, callbacks, and the helpers."""

from __future__ import annotations

from dataclasses import FrozenInstanceError, replace
from typing import Any

import pytest

from policies.engine import NoMatchingRule, compile_policy, evaluate
from policies.loader import document_from_data
from policies.plan import (
    Requirement,
    RequirementKind,
    StepAction,
    due_steps,
    next_step,
    priority_at,
    queue_at,
    requirements_at,
)
from policies.vocabulary import CallbackWindow, Channel, ContactFacts, Strategy
from tests.unit.policies.helpers import HOURS, MONDAY_10, MONDAY_22, at, compiled, queue

SKILL, LANG = RequirementKind.SKILL, RequirementKind.LANGUAGE
CHAN, AGENT = RequirementKind.CHANNEL, RequirementKind.AGENT
BASE = ContactFacts("c1", Channel.PHONE)
JA_ONLY = replace(BASE, language="ja", languages=frozenset({"ja"}))
JA_ZH = replace(BASE, language="ja", languages=frozenset({"ja", "zh"}))
LANGUAGE_SOFT_UNLESS = {"language": "contact", "hard": "unless_speaks_home_language"}


def _one_rule(rule: dict[str, Any], queues: list[dict[str, Any]] | None = None, **extra: Any) -> Any:
    return compiled([{"id": "r", "queue": "q", "match": {"channel": "phone"}, **rule}], queues, **extra)


def test_plan_carries_every_decision() -> None:
    queues = [queue("q", sla={"answer_within_s": 15, "target_pct": 90}, max_wait_s=600, wrapup_s=45),
              queue("general")]
    policy = _one_rule({"priority": 300, "priority_growth_per_min": 4, "offer_timeout_s": 12,
                        "strategy": "most_skilled", "require": [{"skill": "loan", "min": 3}],
                        "deadlines": [{"name": "follow_up", "within_h": 48}]}, queues)
    plan = evaluate(policy, BASE, MONDAY_10)
    assert (plan.policy_version, plan.rule_id, plan.rule_index, plan.queue_id) == (7, "r", 0, "q")
    assert plan.requirements == (Requirement(SKILL, "loan", 3, False),)
    assert (plan.priority, plan.priority_growth_per_min, plan.offer_timeout_s) == (300, 4, 12)
    assert plan.strategy is Strategy.MOST_SKILLED
    assert (plan.answer_within_s, plan.target_pct, plan.max_wait_s, plan.wrapup_s) == (15, 90, 600, 45)
    assert plan.follow_up_due_s == MONDAY_10 + 48 * 3600
    assert (plan.after_hours, plan.callback_at_s, plan.arrived_s) == (False, None, MONDAY_10)
    with pytest.raises(FrozenInstanceError):
        plan.queue_id = "x"  # type: ignore[misc]


def test_defaults_fill_what_a_rule_leaves_out() -> None:
    policy = _one_rule({}, defaults={"offer_timeout_s": 33, "strategy": "least_busy", "priority_growth_per_min": 2})
    plan = evaluate(policy, BASE, MONDAY_10)
    assert (plan.offer_timeout_s, plan.strategy, plan.priority_growth_per_min) == (33, Strategy.LEAST_BUSY, 2)


@pytest.mark.parametrize(
    ("contact", "expected"),
    [
        (JA_ONLY, Requirement(LANG, "ja", 0, True)),  # speaks no Chinese: hard
        (JA_ZH, Requirement(LANG, "ja", 0, False)),  # also speaks Chinese: soft
        (BASE, Requirement(LANG, "zh", 0, True)),  # the home language is its own fallback: hard
    ],
)
def test_language_of_the_contact_hard_unless_it_speaks_the_home_language(contact: ContactFacts,
                                                                         expected: Requirement) -> None:
    policy = _one_rule({"require": [LANGUAGE_SOFT_UNLESS]})
    assert evaluate(policy, contact, MONDAY_10).requirements == (expected,)


def test_requirements_merge_defaults_queue_and_rule_stricter_wins() -> None:
    queues = [queue("q", require=[{"skill": "cards", "min": 2, "hard": True}, {"channel": "contact"}]),
              queue("general")]
    policy = _one_rule({"require": [{"skill": "cards", "min": 4}, {"agent": "dedicated"}]}, queues,
                       defaults={"require": [LANGUAGE_SOFT_UNLESS]})
    plan = evaluate(policy, replace(JA_ONLY, dedicated_agent="a9"), MONDAY_10)
    assert plan.requirements == (Requirement(LANG, "ja", 0, True), Requirement(SKILL, "cards", 4, True),
                                 Requirement(CHAN, "phone", 0, False), Requirement(AGENT, "a9", 0, False))


def test_agent_requirement_is_dropped_without_a_dedicated_agent() -> None:
    policy = _one_rule({"require": [{"agent": "dedicated"}, {"agent": "last"}]})
    assert evaluate(policy, replace(BASE, last_agent="a2"), MONDAY_10).requirements == (
        Requirement(AGENT, "a2", 0, False),)


def test_memo_never_mixes_contacts() -> None:
    policy = _one_rule({"require": [LANGUAGE_SOFT_UNLESS, {"agent": "dedicated"}]})
    first = evaluate(policy, replace(JA_ONLY, dedicated_agent="a1"), MONDAY_10).requirements
    second = evaluate(policy, replace(JA_ZH, dedicated_agent="a2"), MONDAY_10).requirements
    third = evaluate(policy, replace(JA_ONLY, dedicated_agent="a1"), MONDAY_10).requirements
    assert first == third == (Requirement(LANG, "ja", 0, True), Requirement(AGENT, "a1", 0, False))
    assert second == (Requirement(LANG, "ja", 0, False), Requirement(AGENT, "a2", 0, False))


TIMELINE_RULE = {
    "require": [{"skill": "cards", "min": 4}, {"skill": "senior", "min": 2}, LANGUAGE_SOFT_UNLESS],
    "priority": 100, "priority_growth_per_min": 6,
    "escalate": [
        {"after_s": 30, "relax": {"skill": "cards", "to": 2}},
        {"after_s": 60, "raise_priority": 50},
        {"after_s": 90, "relax": {"language": "contact"}},
        {"after_s": 120, "relax": {"skill": "senior"}},
        {"after_s": 180, "overflow": "spill"},
        {"after_s": 240, "page_supervisor": True},
    ],
}
TIMELINE_QUEUES = [queue("q"), queue("spill", require=[{"skill": "general", "min": 1}]), queue("general")]


def test_timeline_steps_in_order_with_state_after_each() -> None:
    plan = evaluate(_one_rule(TIMELINE_RULE, TIMELINE_QUEUES), JA_ZH, MONDAY_10)
    assert [(s.after_s, s.action, s.queue) for s in plan.escalations] == [
        (30, StepAction.RELAX, "q"), (60, StepAction.RAISE_PRIORITY, "q"), (90, StepAction.RELAX, "q"),
        (120, StepAction.RELAX, "q"), (180, StepAction.OVERFLOW, "spill"), (240, StepAction.PAGE_SUPERVISOR, "spill"),
    ]
    assert dict(plan.escalations[0].params) == {"kind": "skill", "name": "cards", "to": 2}
    assert dict(plan.escalations[4].params) == {"from_queue": "q", "queue": "spill"}
    assert plan.escalations[0].source == "rules[0].escalate[0]"


@pytest.mark.parametrize(
    ("waited_s", "queue_id", "requirements", "priority"),
    [
        (0, "q", ["skill cards>=4", "skill senior>=2", "language ja"], 100),
        (29.9, "q", ["skill cards>=4", "skill senior>=2", "language ja"], 100 + 6 * 29.9 / 60),
        (30, "q", ["skill senior>=2", "language ja", "skill cards>=2"], 103),
        (60, "q", ["skill senior>=2", "language ja", "skill cards>=2"], 106 + 50),
        (90, "q", ["skill senior>=2", "skill cards>=2", "language zh"], 109 + 50),  # falls back to Chinese
        (120, "q", ["skill cards>=2", "language zh"], 112 + 50),
        (180, "spill", ["skill general>=1", "language zh"], 118 + 50),
        (10_000, "spill", ["skill general>=1", "language zh"], 100 + 1000 + 50),
    ],
)
def test_helpers_over_waiting_time(waited_s: float, queue_id: str, requirements: list[str],
                                   priority: float) -> None:
    plan = evaluate(_one_rule(TIMELINE_RULE, TIMELINE_QUEUES), JA_ZH, MONDAY_10)
    assert queue_at(plan, waited_s) == queue_id
    assert [r.describe() for r in requirements_at(plan, waited_s)] == requirements
    assert priority_at(plan, waited_s) == pytest.approx(priority)


def test_dropping_a_language_never_leaves_a_customer_without_one_they_speak() -> None:
    queues = [queue("q", max_wait_s=60, overflow_to="general"), queue("general")]
    policy = _one_rule({"require": [{"language": "en"}]}, queues)
    zh_speaker = evaluate(policy, replace(BASE, language="en", languages=frozenset({"en", "zh"})), MONDAY_10)
    assert requirements_at(zh_speaker, 60) == (Requirement(LANG, "zh", 0, True),)
    en_only = evaluate(policy, replace(BASE, language="en", languages=frozenset({"en"})), MONDAY_10)
    assert requirements_at(en_only, 60) == ()  # a soft 'en' for a customer without Chinese: the admin's choice


def test_due_and_next_steps() -> None:
    plan = evaluate(_one_rule(TIMELINE_RULE, TIMELINE_QUEUES), JA_ZH, MONDAY_10)
    assert [s.after_s for s in due_steps(plan, 90)] == [30, 60, 90]
    assert due_steps(plan, 0) == ()
    step = next_step(plan, 90)
    assert step is not None and step.after_s == 120
    assert next_step(plan, 240) is None


def test_hard_requirements_survive_every_step() -> None:
    plan = evaluate(_one_rule(TIMELINE_RULE, TIMELINE_QUEUES), JA_ONLY, MONDAY_10)
    hard_ja = Requirement(LANG, "ja", 0, True)
    assert [s.after_s for s in plan.escalations if s.action is StepAction.RELAX] == [30, 120]
    for waited_s in (0, 30, 90, 120, 180, 240, 99_999):
        assert hard_ja in requirements_at(plan, waited_s)
    assert "rules[0].escalate[2]: relax language ja skipped, it is a hard requirement for this contact" in list(
        plan.reasons)


def test_hard_requirements_are_carried_through_overflow_chains() -> None:
    queues = [queue("q", max_wait_s=60, overflow_to="b"), queue("b", max_wait_s=100, overflow_to="general"),
              queue("general", require=[{"skill": "general"}])]
    policy = _one_rule({"require": [{"skill": "sign_language", "min": 3, "hard": True}, {"skill": "vip", "min": 2}]},
                       queues)
    plan = evaluate(policy, BASE, MONDAY_10)
    assert [(s.after_s, s.action, s.queue, s.source) for s in plan.escalations] == [
        (60, StepAction.OVERFLOW, "b", "queues[0].max_wait_s"),
        (160, StepAction.OVERFLOW, "general", "queues[1].max_wait_s"),
    ]
    assert requirements_at(plan, 200) == (Requirement(SKILL, "general", 1, False),
                                          Requirement(SKILL, "sign_language", 3, True))


def test_max_wait_without_overflow_is_flagged() -> None:
    policy = _one_rule({}, [queue("q", max_wait_s=300), queue("general")])
    plan = evaluate(policy, BASE, MONDAY_10)
    assert [(s.after_s, s.action, dict(s.params)) for s in plan.escalations] == [
        (300, StepAction.MAX_WAIT_REACHED, {"queue": "q"})]


def test_rule_overflow_comes_before_a_max_wait_at_the_same_time() -> None:
    queues = [queue("q", max_wait_s=60, overflow_to="b"), queue("b"), queue("c"), queue("general")]
    plan = evaluate(_one_rule({"escalate": [{"after_s": 60, "overflow": "c"}]}, queues), BASE, MONDAY_10)
    assert [(s.after_s, s.queue) for s in plan.escalations] == [(60, "c")]


def test_escalation_levels_move_to_their_queues() -> None:
    queues = [queue("q"), queue("sup", require=[{"skill": "complaints", "min": 4}]),
              queue("expert", require=[{"skill": "complaints", "min": 5}]), queue("general")]
    steps = [{"after_s": 120, "escalate": {"to": "supervisor", "queue": "sup"}},
             {"after_s": 600, "escalate": "expert_team"}]
    plan = evaluate(_one_rule({"escalate": steps}, queues), BASE, MONDAY_10)
    assert [(s.action, dict(s.params)) for s in plan.escalations] == [
        (StepAction.ESCALATE, {"level": "supervisor", "queue": "sup"}),
        (StepAction.ESCALATE, {"level": "expert_team", "queue": "sup"}),
    ]
    assert requirements_at(plan, 130) == (Requirement(SKILL, "complaints", 4, False),)


def test_steps_run_sorted_even_if_written_out_of_order() -> None:
    steps = [{"after_s": 90, "raise_priority": 1}, {"after_s": 10, "raise_priority": 2}]
    plan = evaluate(_one_rule({"escalate": steps}), BASE, MONDAY_10)
    assert [(s.after_s, s.priority_delta) for s in plan.escalations] == [(10, 2), (90, 1)]


WINDOWS = (CallbackWindow(18 * 60, 19 * 60),)


@pytest.mark.parametrize(
    ("now", "windows", "after_s", "expected"),
    [
        ("2026-11-23 10:00", WINDOWS, 300, "2026-11-23 18:00"),
        ("2026-11-23 18:50", WINDOWS, 300, "2026-11-23 18:55"),
        ("2026-11-23 18:58", WINDOWS, 300, "2026-11-24 18:00"),
        ("2026-11-23 10:00", (), 300, "2026-11-23 10:05"),
        ("2026-11-23 19:58", (), 300, "2026-11-24 08:00"),
    ],
)
def test_callback_step_respects_customer_windows(now: str, windows: tuple[CallbackWindow, ...], after_s: float,
                                                 expected: str) -> None:
    policy = _one_rule({"escalate": [{"after_s": after_s, "offer_callback": True}]}, business_hours=HOURS)
    plan = evaluate(policy, replace(BASE, callback_windows=windows), at(now))
    assert plan.escalations[0].action is StepAction.OFFER_CALLBACK
    assert plan.escalations[0].params["callback_at_s"] == at(expected)


def test_callback_step_may_ignore_business_hours() -> None:
    step = {"after_s": 0, "offer_callback": {"within_business_hours": False}}
    policy = _one_rule({"escalate": [step]}, business_hours=HOURS)
    plan = evaluate(policy, replace(BASE, callback_windows=(CallbackWindow(22 * 60, 23 * 60),)), MONDAY_10)
    assert plan.escalations[0].params["callback_at_s"] == at("2026-11-23 22:00")


def test_after_hours_rule_decides_a_callback_at_arrival() -> None:
    rules = [{"id": "night", "queue": "callbacks", "match": {"business_hours": "closed"}, "callback": True}]
    policy = compiled(rules, business_hours=HOURS)
    plan = evaluate(policy, replace(BASE, callback_windows=WINDOWS), MONDAY_22)
    assert (plan.rule_id, plan.after_hours, plan.callback_at_s) == ("night", True, at("2026-11-24 18:00"))
    assert "outside business hours" in list(plan.reasons)
    day = evaluate(policy, BASE, MONDAY_10)
    assert (day.rule_id, day.after_hours, day.callback_at_s) == ("catch_all", False, None)


def test_no_callback_slot_is_explained() -> None:
    policy = _one_rule({"escalate": [{"after_s": 0, "offer_callback": True}]}, business_hours=HOURS)
    plan = evaluate(policy, replace(BASE, callback_windows=(CallbackWindow(60, 120),)), MONDAY_10)
    assert plan.escalations[0].params["callback_at_s"] is None
    assert "rules[0].escalate[0]: no callback slot in the customer's windows within 14 days" in list(plan.reasons)


def test_evaluation_is_pure_same_input_same_plan() -> None:
    policy = _one_rule(TIMELINE_RULE, TIMELINE_QUEUES)
    assert evaluate(policy, JA_ONLY, MONDAY_10) == evaluate(policy, JA_ONLY, MONDAY_10)
    later = evaluate(policy, JA_ONLY, MONDAY_10 + 3600)
    assert later.arrived_s == MONDAY_10 + 3600
    assert later.requirements == evaluate(policy, JA_ONLY, MONDAY_10).requirements


def test_no_matching_rule_raises() -> None:
    # The coverage check tries tags one and two at a time; a customer with all three slips through.
    data = {"queues": [queue("q")],
            "rules": [{"id": "a_not_b", "queue": "q", "match": {"tags": "a"}, "unless": {"tags": "b"}},
                      {"id": "b_not_c", "queue": "q", "match": {"tags": "b"}, "unless": {"tags": "c"}},
                      {"id": "c_not_a", "queue": "q", "match": {"tags": "c"}, "unless": {"tags": "a"}},
                      {"id": "none", "queue": "q", "unless": {"tags": ["a", "b", "c"]}}]}
    policy = compile_policy(document_from_data(data), 1)
    assert evaluate(policy, replace(BASE, tags=frozenset({"a", "b"})), MONDAY_22).rule_id == "b_not_c"
    with pytest.raises(NoMatchingRule, match="no rule matches contact c1"):
        evaluate(policy, replace(BASE, tags=frozenset({"a", "b", "c"})), MONDAY_22)


def test_to_json_of_requirement_and_step() -> None:
    plan = evaluate(_one_rule(TIMELINE_RULE, TIMELINE_QUEUES), JA_ONLY, MONDAY_10)
    assert plan.requirements[0].to_json() == {"kind": "skill", "name": "cards", "min_level": 4, "hard": False}
    assert plan.escalations[1].to_json()["action"] == "raise_priority"
    assert plan.escalations[1].to_json()["priority_delta"] == 50


def test_defaults_steps_merge_with_the_rules_by_time() -> None:
    policy = _one_rule({"require": [{"skill": "cards", "min": 3, "hard": True}],
                        "escalate": [{"after_s": 30, "raise_priority": 5}, {"after_s": 200, "page_supervisor": True}]},
                       defaults={"escalate": [{"after_s": 100, "relax": {"skill": "cards"}},
                                              {"after_s": 150, "raise_priority": 1}]})
    plan = evaluate(policy, BASE, MONDAY_10)
    assert [(s.after_s, s.source) for s in plan.escalations] == [
        (30, "rules[0].escalate[0]"), (150, "defaults.escalate[1]"), (200, "rules[0].escalate[1]")]
    assert not any("defaults" in line for line in plan.reasons)  # blanket steps skip quietly


def test_plan_to_json_is_plain_data() -> None:
    import json

    plan = evaluate(_one_rule(TIMELINE_RULE, TIMELINE_QUEUES), JA_ONLY, MONDAY_10)
    data = plan.to_json()
    assert json.loads(json.dumps(data)) == data
    assert (data["queue_id"], data["strategy"], data["reasons"][0]) == (  # type: ignore[index]
        "q", "longest_idle", "rule 'r' (rules[0]) matched: channel: phone")
