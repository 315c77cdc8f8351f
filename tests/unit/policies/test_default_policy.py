"""The default bank policy: one test per customer case the brief lists."""

from __future__ import annotations

from dataclasses import replace

import pytest

from policies.engine import CompiledPolicy, compile_policy, evaluate
from policies.loader import default_policy_text, load_default_policy
from policies.plan import RoutingPlan, StepAction, priority_at, queue_at, requirements_at
from policies.validate import validate
from policies.vocabulary import CallbackWindow, Channel, ContactFacts, Intent, Need, Segment, Strategy
from tests.unit.policies.helpers import MONDAY_10, MONDAY_22, at

POLICY: CompiledPolicy = compile_policy(load_default_policy(), 1)
MASS = ContactFacts("c1", Channel.PHONE)
JA_ONLY = replace(MASS, language="ja", languages=frozenset({"ja"}))


def _plan(contact: ContactFacts, now_s: float = MONDAY_10) -> RoutingPlan:
    return evaluate(POLICY, contact, now_s)


def _reqs(plan: RoutingPlan, waited_s: float = 0) -> list[str]:
    return [r.describe() + (" hard" if r.hard else "") for r in requirements_at(plan, waited_s)]


def test_default_policy_is_valid_without_warnings() -> None:
    assert validate(default_policy_text(), content_type="application/yaml").issues == ()


def test_mass_general_enquiry() -> None:
    plan = _plan(MASS)
    assert (plan.rule_id, plan.queue_id, plan.priority) == ("general", "general", 50)
    assert _reqs(plan) == ["language zh hard", "skill general>=1"]
    assert (plan.answer_within_s, plan.target_pct) == (20, 80)


@pytest.mark.parametrize(
    ("intent", "rule", "queue", "skill"),
    [(Intent.CREDIT_CARD, "credit_card", "cards", "skill credit_card>=2"),
     (Intent.LOAN, "loan", "loans", "skill loan>=2"),
     (Intent.WEALTH, "wealth_enquiry", "wealth", "skill wealth>=1"),
     (Intent.SPEAK_TO_AGENT, "general", "general", "skill general>=1")],
)
def test_mass_by_intent(intent: Intent, rule: str, queue: str, skill: str) -> None:
    plan = _plan(replace(MASS, intent=intent))
    assert (plan.rule_id, plan.queue_id) == (rule, queue)
    assert skill in _reqs(plan)


def test_private_banking_vip_gets_senior_agents_and_a_faster_sla() -> None:
    plan = _plan(replace(MASS, segment=Segment.VIP, dedicated_agent="rm7"))
    assert (plan.rule_id, plan.queue_id, plan.priority, plan.strategy) == (
        "private_banking_vip", "vip", 200, Strategy.DEDICATED_FIRST)
    assert _reqs(plan) == ["language zh hard", "skill vip>=3", "skill senior>=3"]
    assert plan.answer_within_s < _plan(MASS).answer_within_s
    assert _reqs(plan, 60) == ["language zh hard", "skill vip>=3"]  # senior relaxed after a minute
    assert queue_at(plan, 180) == "wealth"  # the queue's max wait overflows to wealth


def test_wealth_segment() -> None:
    plan = _plan(replace(MASS, segment=Segment.WEALTH))
    assert (plan.rule_id, plan.queue_id, plan.priority) == ("wealth_segment", "wealth", 120)
    assert "skill wealth>=2" in _reqs(plan)


def test_corporate_segment() -> None:
    plan = _plan(replace(MASS, segment=Segment.CORPORATE, intent=Intent.LOAN))
    assert (plan.rule_id, plan.queue_id, plan.strategy) == ("corporate", "corporate", Strategy.MOST_SKILLED)
    assert "skill corporate>=3" in _reqs(plan)
    assert "skill corporate>=2" in _reqs(plan, 180)


@pytest.mark.parametrize("segment", [Segment.MASS, Segment.VIP])
def test_elderly_line(segment: Segment) -> None:
    elderly = replace(MASS, segment=segment, needs=frozenset({Need.ELDERLY}), dialled_line="elderly")
    plan = _plan(elderly)
    assert (plan.rule_id, plan.queue_id, plan.strategy) == ("elderly", "elderly", Strategy.MOST_SKILLED)
    assert _reqs(plan) == ["language zh hard", "skill elderly_care>=3"]
    assert plan.priority > _plan(replace(MASS, segment=Segment.VIP)).priority > _plan(MASS).priority
    assert plan.priority_growth_per_min > _plan(MASS).priority_growth_per_min
    assert "skill elderly_care>=2" in _reqs(plan, 90)
    assert priority_at(plan, 150) == pytest.approx(220 + 3 * 2.5 + 50)


@pytest.mark.parametrize("intent", [Intent.GENERAL, Intent.COMPLAINT, Intent.LOAN])
def test_sign_language_video_desk_is_hard_forever(intent: Intent) -> None:
    deaf = ContactFacts("c9", Channel.VIDEO, needs=frozenset({Need.DEAF}), intent=intent, sign_language="csl")
    plan = _plan(deaf)
    assert (plan.rule_id, plan.queue_id) == ("sign_language_desk", "sign_language")
    for waited_s in (0, 600, 900, 86_400):
        assert {"skill sign_language>=3 hard", "channel video hard"} <= set(_reqs(plan, waited_s))
        assert queue_at(plan, waited_s) == "sign_language"
    assert all(s.action is not StepAction.RELAX for s in plan.escalations)
    assert "language zh hard" in _reqs(plan, 86_400)


def test_sign_language_desk_offers_a_callback_in_the_customers_window() -> None:
    deaf = ContactFacts("c9", Channel.VIDEO, needs=frozenset({Need.DEAF}),
                        callback_windows=(CallbackWindow(19 * 60, 20 * 60),))
    plan = _plan(deaf)
    callback = next(s for s in plan.escalations if s.action is StepAction.OFFER_CALLBACK)
    assert (callback.after_s, callback.params["callback_at_s"]) == (600, at("2026-11-23 19:00"))


@pytest.mark.parametrize("language", ["en", "ja", "ko"])
def test_foreign_customer_who_speaks_no_chinese_only_reaches_their_language(language: str) -> None:
    plan = _plan(replace(MASS, language=language, languages=frozenset({language}), needs=frozenset({Need.FOREIGN})))
    assert (plan.rule_id, plan.queue_id) == ("foreign_language", "foreign")
    for waited_s in (0, 90, 300, 100_000):
        assert f"language {language} hard" in _reqs(plan, waited_s)
    assert queue_at(plan, 300) == "general"


def test_foreign_customer_who_also_speaks_chinese_may_reach_a_chinese_speaker() -> None:
    plan = _plan(replace(MASS, language="ja", languages=frozenset({"ja", "zh"})))
    assert plan.rule_id == "general"
    assert _reqs(plan) == ["language ja", "skill general>=1"]
    assert _reqs(plan, 90) == ["skill general>=1", "language zh hard"]


def test_japanese_vip_who_speaks_no_chinese_keeps_the_language_everywhere() -> None:
    plan = _plan(replace(JA_ONLY, segment=Segment.VIP))
    assert plan.rule_id == "private_banking_vip"
    assert [queue_at(plan, t) for t in (0, 180, 480)] == ["vip", "wealth", "general"]
    assert all("language ja hard" in _reqs(plan, t) for t in (0, 180, 480, 10_000))


@pytest.mark.parametrize("channel", list(Channel))
@pytest.mark.parametrize("intent", [Intent.LOST_CARD, Intent.FRAUD])
def test_lost_card_and_fraud_top_priority_on_any_channel(channel: Channel, intent: Intent) -> None:
    for when in (MONDAY_10, MONDAY_22):  # urgent is 24/7: never a callback
        plan = _plan(ContactFacts("c2", channel, intent=intent, segment=Segment.VIP), when)
        assert plan.queue_id == "urgent" and plan.callback_at_s is None
        assert plan.priority == 1000 and plan.offer_timeout_s == 10
        others = [_plan(replace(MASS, segment=s, needs=frozenset({Need.ELDERLY}))) for s in Segment]
        assert all(plan.priority > o.priority for o in others)
        if channel is Channel.VIDEO:
            assert plan.rule_id == "urgent_sign_language"
            assert "skill sign_language>=3 hard" in _reqs(plan, 3600)
            assert "skill fraud>=3" not in _reqs(plan, 30)  # a signer first, fraud skill preferred
        else:
            assert plan.rule_id == "urgent_lost_card_fraud"
            assert "skill fraud>=3 hard" in _reqs(plan, 3600)


def test_complaint_escalates_agent_supervisor_expert_with_48h_follow_up() -> None:
    plan = _plan(replace(MASS, intent=Intent.COMPLAINT))
    assert (plan.rule_id, plan.queue_id, plan.priority) == ("complaint", "complaints", 300)
    assert plan.follow_up_due_s == MONDAY_10 + 48 * 3600
    levels = [(s.after_s, s.params["level"], s.queue) for s in plan.escalations if s.action is StepAction.ESCALATE]
    assert levels == [(120, "supervisor", "complaints_supervisor"), (600, "expert_team", "complaints_expert")]
    assert "skill complaints>=3" in _reqs(plan, 0)
    assert {"skill complaints>=4", "skill senior>=3"} <= set(_reqs(plan, 120))
    assert "skill complaints>=5" in _reqs(plan, 600)


def test_complaint_with_money_at_stake_escalates_faster() -> None:
    plan = _plan(replace(MASS, intent=Intent.COMPLAINT, tags=frozenset({"money_at_stake"})))
    assert plan.rule_id == "complaint_money_at_stake" and plan.priority == 400
    assert [queue_at(plan, t) for t in (0, 60, 240)] == ["complaints", "complaints_supervisor", "complaints_expert"]
    assert plan.follow_up_due_s == MONDAY_10 + 48 * 3600


def test_third_contact_goes_to_the_dedicated_agent_then_a_senior() -> None:
    plan = _plan(replace(MASS, intent=Intent.LOAN, repeat_count=3, dedicated_agent="rm7"))
    assert (plan.rule_id, plan.strategy) == ("repeat_with_dedicated_agent", Strategy.DEDICATED_FIRST)
    assert "agent rm7" in _reqs(plan)
    assert queue_at(plan, 45) == "repeat_senior"
    assert _reqs(plan, 45) == ["skill senior>=3", "language zh hard"]


@pytest.mark.parametrize(("repeat_count", "rule"), [(3, "repeat_contact"), (5, "repeat_contact"), (2, "loan")])
def test_third_contact_without_dedicated_agent_goes_to_a_senior(repeat_count: int, rule: str) -> None:
    plan = _plan(replace(MASS, intent=Intent.LOAN, repeat_count=repeat_count))
    assert plan.rule_id == rule
    if rule == "repeat_contact":
        assert plan.queue_id == "repeat_senior" and "skill senior>=3" in _reqs(plan)


@pytest.mark.parametrize(
    ("local", "after_hours"),
    [("2026-11-23 22:00", True), ("2026-11-23 07:30", True), ("2026-11-28 16:00", False),
     ("2026-11-29 18:00", True), ("2026-10-01 10:00", True), ("2026-10-10 10:00", False)],
)
def test_after_hours_contacts_get_a_callback(local: str, after_hours: bool) -> None:
    contact = replace(MASS, callback_windows=(CallbackWindow(9 * 60, 10 * 60),))
    plan = _plan(contact, at(local))
    assert plan.after_hours is after_hours
    if after_hours:
        assert (plan.rule_id, plan.queue_id) == ("after_hours", "callbacks")
        assert plan.callback_at_s is not None and plan.callback_at_s > at(local)
    else:
        assert plan.rule_id == "general" and plan.callback_at_s is None


def test_after_hours_callback_lands_in_the_window_and_open_hours() -> None:
    contact = replace(MASS, callback_windows=(CallbackWindow(9 * 60, 10 * 60),))
    assert _plan(contact, at("2026-11-27 22:00")).callback_at_s == at("2026-11-28 09:00")  # Saturday 09:00
    assert _plan(contact, at("2026-09-30 21:00")).callback_at_s == at("2026-10-08 09:00")  # after Golden Week


def test_after_hours_complaint_keeps_its_follow_up_deadline() -> None:
    plan = _plan(replace(MASS, intent=Intent.COMPLAINT), MONDAY_22)
    assert (plan.rule_id, plan.queue_id) == ("after_hours_complaint", "callbacks")
    assert plan.follow_up_due_s == MONDAY_22 + 48 * 3600
    assert plan.callback_at_s == at("2026-11-24 08:00")


def test_blind_customer_needs_a_voice_agent() -> None:
    plan = _plan(replace(MASS, channel=Channel.APP, needs=frozenset({Need.BLIND})))
    assert plan.rule_id == "blind"
    assert "channel phone hard" in _reqs(plan, 10_000)
