from __future__ import annotations

import json
from dataclasses import replace

from policies.engine import compile_policy
from policies.loader import load_default_policy
from policies.simulate import simulate
from policies.vocabulary import Channel, ContactFacts, Intent, Need, Presence
from tests.unit.policies.helpers import MONDAY_10, snapshot

POLICY = compile_policy(load_default_policy(), 3)
JA_FRAUD = ContactFacts("c7", Channel.PHONE, language="ja", languages=frozenset({"ja"}), intent=Intent.FRAUD,
                        needs=frozenset({Need.FOREIGN}))
ROSTER = [
    snapshot("ja_fraud_busy", {"fraud": 4}, languages={"ja", "zh"}, load={Channel.PHONE: 1}),
    snapshot("ja_fraud_late", {"fraud": 3}, languages={"ja"}, idle_since_s=MONDAY_10 - 60),
    snapshot("ja_fraud_early", {"fraud": 5}, languages={"ja", "zh"}, idle_since_s=MONDAY_10 - 600),
    snapshot("zh_fraud", {"fraud": 5}, idle_since_s=MONDAY_10 - 900),
    snapshot("ja_general", {"general": 3}, languages={"ja"}),
    snapshot("ja_away", {"fraud": 5}, languages={"ja"}, presence=Presence.AWAY),
]


def test_simulate_explains_a_japanese_fraud_call() -> None:
    out = simulate(POLICY, JA_FRAUD, MONDAY_10, ROSTER, horizon_s=600)
    assert out["policy_version"] == 3
    assert out["rule"] == {"id": "urgent_lost_card_fraud", "index": 1, "matches": "intent: lost_card or fraud"}
    assert out["earlier_rules"] == [{"id": "urgent_sign_language", "index": 0,
                                     "why_not": "channel is phone, not video"}]
    assert out["queue"] == {"id": "urgent", "name": "Lost card & fraud (24/7)", "answer_within_s": 10.0,
                            "target_pct": 95.0, "max_wait_s": None, "overflow_to": None, "wrapup_s": 120.0}
    assert out["requirements"] == [{"kind": "language", "name": "ja", "min_level": 0, "hard": True},
                                   {"kind": "skill", "name": "fraud", "min_level": 3, "hard": True}]
    assert out["agents"] == {
        "strategy": "longest_idle",
        "eligible": [
            {"rank": 1, "agent_id": "ja_fraud_early", "idle_s": 600.0, "load": 0, "capacity": 1},
            {"rank": 2, "agent_id": "ja_fraud_late", "idle_s": 60.0, "load": 0, "capacity": 1},
        ],
        "ineligible": [
            {"agent_id": "ja_away", "reasons": ["presence is away"]},
            {"agent_id": "ja_fraud_busy", "reasons": ["no capacity on phone (1/1 busy)"]},
            {"agent_id": "ja_general", "reasons": ["missing skill fraud"]},
            {"agent_id": "zh_fraud", "reasons": ["does not speak ja"]},
        ],
    }


def test_simulate_priority_over_time_and_escalations() -> None:
    out = simulate(POLICY, JA_FRAUD, MONDAY_10, ROSTER, horizon_s=600)
    timeline = out["timeline"]
    escalations = out["escalations"]
    assert isinstance(timeline, list) and isinstance(escalations, list)
    assert [(t["waited_s"], t["priority"]) for t in timeline] == [
        (0.0, 1000.0), (30.0, 1105.0), (60.0, 1110.0), (120.0, 1120.0), (300.0, 1150.0)]
    assert timeline[0]["eligible_agents"] == ["ja_fraud_early", "ja_fraud_late"]
    assert [(s["after_s"], s["action"]) for s in escalations] == [
        (30.0, "raise_priority"), (60.0, "page_supervisor")]


def test_simulate_shows_requirements_widening_over_time() -> None:
    contact = ContactFacts("c8", Channel.PHONE, needs=frozenset({Need.ELDERLY}))
    roster = [snapshot("care2", {"elderly_care": 2}), snapshot("care4", {"elderly_care": 4})]
    out = simulate(POLICY, contact, MONDAY_10, roster, horizon_s=300)
    timeline = out["timeline"]
    assert isinstance(timeline, list)
    by_time = {t["waited_s"]: t for t in timeline}
    assert by_time[0.0]["eligible_agents"] == ["care4"]
    assert by_time[90.0]["eligible_agents"] == ["care2", "care4"]
    assert by_time[240.0]["queue"] == "general"


def test_simulate_without_roster_is_json_ready() -> None:
    contact = replace(JA_FRAUD, intent=Intent.COMPLAINT, tags=frozenset({"money_at_stake"}))
    out = simulate(POLICY, contact, MONDAY_10)
    assert "agents" not in out
    assert out["deadlines"] == {"follow_up": MONDAY_10 + 48 * 3600}
    assert out["reasons"][0].startswith("rule 'complaint_money_at_stake' (rules[5]) matched")  # type: ignore[index]
    assert json.loads(json.dumps(out)) == out
    assert out["contact"]["languages"] == ["ja"] and out["contact"]["channel"] == "phone"  # type: ignore[index]
