"""Every match condition, through the compiled bitset index and through the explainer."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from policies.engine import compile_policy, evaluate, match_index, moment_at
from policies.explain import rule_why_not
from policies.loader import document_from_data
from policies.matching import bits, lowest_bit
from policies.vocabulary import Channel, ContactFacts, Intent, Need, Segment
from tests.unit.policies.helpers import HOURS, MONDAY_10, MONDAY_22, at, compiled, queue

BASE = ContactFacts("c1", Channel.PHONE)
JA_ONLY = replace(BASE, language="ja", languages=frozenset({"ja"}))
JA_ZH = replace(BASE, language="ja", languages=frozenset({"ja", "zh"}))

CASES: list[tuple[str, dict[str, Any], ContactFacts, bool, str]] = [
    ("channel", {"channel": ["video", "app"]}, replace(BASE, channel=Channel.VIDEO), True, ""),
    ("channel", {"channel": "video"}, BASE, False, "channel is phone, not video"),
    ("segment", {"segment": "vip"}, replace(BASE, segment=Segment.VIP), True, ""),
    ("segment", {"segment": ["vip", "wealth"]}, BASE, False, "segment is mass, not vip or wealth"),
    ("intent", {"intent": "fraud"}, replace(BASE, intent=Intent.FRAUD), True, ""),
    ("intent", {"intent": "fraud"}, BASE, False, "intent is general, not fraud"),
    ("language", {"language": ["ja", "ko"]}, JA_ONLY, True, ""),
    ("language", {"language": "ja"}, BASE, False, "language is zh, not ja"),
    ("speaks", {"speaks_home_language": False}, JA_ONLY, True, ""),
    ("speaks", {"speaks_home_language": False}, JA_ZH, False, "customer speaks zh"),
    ("speaks", {"speaks_home_language": True}, JA_ONLY, False, "customer does not speak zh"),
    ("needs", {"needs": ["deaf", "blind"]}, replace(BASE, needs=frozenset({Need.BLIND, Need.ELDERLY})), True, ""),
    ("needs", {"needs": "elderly"}, BASE, False, "needs are none, not elderly"),
    ("tags", {"tags": ["money_at_stake", "press"]}, replace(BASE, tags=frozenset({"press"})), True, ""),
    ("tags", {"tags": "press"}, replace(BASE, tags=frozenset({"x"})), False, "customer tags are x, not press"),
    ("repeat", {"repeat_count_min": 3}, replace(BASE, repeat_count=3), True, ""),
    ("repeat", {"repeat_count_min": 3}, replace(BASE, repeat_count=2), False, "repeat count is 2, below 3"),
    ("repeat", {"repeat_count_max": 1}, replace(BASE, repeat_count=9), False, "repeat count is 9, above 1"),
    ("repeat", {"repeat_count_min": 2, "repeat_count_max": 4}, replace(BASE, repeat_count=40), False,
     "repeat count is 40, above 4"),
    ("dedicated", {"has_dedicated_agent": True}, replace(BASE, dedicated_agent="a1"), True, ""),
    ("dedicated", {"has_dedicated_agent": True}, BASE, False, "customer has no dedicated agent"),
    ("dedicated", {"has_dedicated_agent": False}, replace(BASE, dedicated_agent="a1"), False,
     "customer has a dedicated agent"),
    ("line", {"dialled_line": "elderly"}, replace(BASE, dialled_line="elderly"), True, ""),
    ("line", {"dialled_line": "elderly"}, replace(BASE, dialled_line="main"), False,
     "dialled line is main, not elderly"),
    ("line", {"dialled_line": "elderly"}, BASE, False, "dialled line is none, not elderly"),
]


@pytest.mark.parametrize(("name", "match", "contact", "matches", "why"), CASES)
def test_contact_conditions(name: str, match: dict[str, Any], contact: ContactFacts, matches: bool,
                            why: str) -> None:
    policy = compiled([{"id": name, "queue": "q", "match": match}])
    plan = evaluate(policy, contact, MONDAY_10)
    assert plan.rule_id == (name if matches else "catch_all")
    if not matches:
        assert plan.reasons[1] == f"rule '{name}' (rules[0]) did not match: {why}"


TIME_CASES: list[tuple[dict[str, Any], str, bool, str]] = [
    ({"business_hours": "open"}, "2026-11-23 10:00", True, ""),
    ({"business_hours": "open"}, "2026-11-23 22:00", False, "business hours: closed now, rule wants open"),
    ({"business_hours": "closed"}, "2026-10-01 10:00", True, ""),  # holiday
    ({"business_hours": "open"}, "2026-10-10 10:00", True, ""),  # make-up Saturday, full hours
    ({"business_hours": "open", "calendar": "night"}, "2026-11-23 23:00", True, ""),
    ({"business_hours": "open", "calendar": "night"}, "2026-11-23 10:00", False,
     "calendar 'night': closed now, rule wants open"),
    ({"time_of_day": "22:00-06:00"}, "2026-11-24 05:59", True, ""),
    ({"time_of_day": "22:00-06:00"}, "2026-11-24 06:00", False, "local time 06:00 is outside 22:00-06:00"),
    ({"time_of_day": ["08:00-09:00", "12:00-13:00"]}, "2026-11-24 12:30", True, ""),
    ({"days": "sat,sun"}, "2026-11-29 12:00", True, ""),
    ({"days": "weekends"}, "2026-11-23 12:00", False, "today is mon, not weekends"),
]


@pytest.mark.parametrize(("match", "local", "matches", "why"), TIME_CASES)
def test_time_conditions(match: dict[str, Any], local: str, matches: bool, why: str) -> None:
    calendars = {"night": {"hours": {"daily": "20:00-24:00"}}}
    policy = compiled([{"id": "timed", "queue": "q", "match": match}], business_hours=HOURS, calendars=calendars)
    plan = evaluate(policy, BASE, at(local))
    assert plan.rule_id == ("timed" if matches else "catch_all")
    if not matches:
        assert plan.reasons[1] == f"rule 'timed' (rules[0]) did not match: {why}"


def test_conditions_combine_with_and_and_lists_with_or() -> None:
    policy = compiled([{"id": "vip_fraud", "queue": "q",
                        "match": {"segment": "vip", "intent": ["fraud", "lost_card"]}}])
    vip = replace(BASE, segment=Segment.VIP)
    assert evaluate(policy, replace(vip, intent=Intent.LOST_CARD), MONDAY_10).rule_id == "vip_fraud"
    assert evaluate(policy, vip, MONDAY_10).rule_id == "catch_all"
    assert evaluate(policy, replace(BASE, intent=Intent.FRAUD), MONDAY_10).rule_id == "catch_all"


def test_unless_excludes_contacts() -> None:
    policy = compiled([{"id": "phone_not_vip", "queue": "q", "match": {"channel": "phone"},
                        "unless": {"segment": "vip", "intent": "fraud"}}])
    vip_fraud = replace(BASE, segment=Segment.VIP, intent=Intent.FRAUD)
    assert evaluate(policy, replace(BASE, segment=Segment.VIP), MONDAY_10).rule_id == "phone_not_vip"
    plan = evaluate(policy, vip_fraud, MONDAY_10)
    assert plan.rule_id == "catch_all"
    assert plan.reasons[1] == ("rule 'phone_not_vip' (rules[0]) did not match: its 'unless' applies "
                               "(segment: vip; intent: fraud)")


def test_first_matching_rule_wins() -> None:
    policy = compiled([{"id": "a", "queue": "q", "match": {"channel": "video"}},
                       {"id": "b", "queue": "q", "match": {"intent": "fraud"}},
                       {"id": "c", "queue": "q", "match": {"intent": "fraud"}}])
    plan = evaluate(policy, replace(BASE, intent=Intent.FRAUD), MONDAY_22)
    assert (plan.rule_id, plan.rule_index) == ("b", 1)
    assert list(plan.reasons) == ["rule 'b' (rules[1]) matched: intent: fraud",
                                  "rule 'a' (rules[0]) did not match: channel is phone, not video"]


@pytest.mark.parametrize(("mask", "low", "all_bits"), [(0, -1, []), (1, 0, [0]), (0b10100, 2, [2, 4]),
                                                       (1 << 199, 199, [199])])
def test_bit_helpers(mask: int, low: int, all_bits: list[int]) -> None:
    assert lowest_bit(mask) == low and list(bits(mask)) == all_bits


# The bitset index and the one-rule-at-a-time explainer must always agree.
MATCHES = st.fixed_dictionaries({}, optional={
    "channel": st.lists(st.sampled_from([c.value for c in Channel]), min_size=1, max_size=2),
    "segment": st.lists(st.sampled_from([s.value for s in Segment]), min_size=1, max_size=2),
    "intent": st.lists(st.sampled_from([i.value for i in Intent]), min_size=1, max_size=3),
    "language": st.lists(st.sampled_from(["zh", "en", "ja"]), min_size=1, max_size=2),
    "speaks_home_language": st.booleans(),
    "needs": st.lists(st.sampled_from([n.value for n in Need]), min_size=1, max_size=2),
    "tags": st.lists(st.sampled_from(["a", "b"]), min_size=1, max_size=2),
    "repeat_count_min": st.integers(0, 4),
    "has_dedicated_agent": st.booleans(),
    "dialled_line": st.lists(st.sampled_from(["main", "elderly"]), min_size=1, max_size=2),
    "business_hours": st.sampled_from(["open", "closed"]),
    "time_of_day": st.sampled_from(["09:00-12:00", "22:00-02:00"]),
    "days": st.sampled_from(["mon-fri", "sat,sun"]),
})
RULES = st.lists(st.tuples(MATCHES, st.one_of(st.none(), MATCHES)), min_size=1, max_size=12)
CONTACTS = st.builds(
    ContactFacts, contact_id=st.just("c"), channel=st.sampled_from(list(Channel)),
    segment=st.sampled_from(list(Segment)), intent=st.sampled_from(list(Intent)),
    language=st.sampled_from(["zh", "en", "ja", "fr"]), languages=st.frozensets(st.sampled_from(["zh", "en", "ja"])),
    needs=st.frozensets(st.sampled_from(list(Need))), tags=st.frozensets(st.sampled_from(["a", "b", "c"])),
    repeat_count=st.integers(0, 6), dedicated_agent=st.one_of(st.none(), st.just("a1")),
    dialled_line=st.one_of(st.none(), st.sampled_from(["main", "elderly", "english"])),
)


@settings(max_examples=100, deadline=None, database=None)
@given(rules=RULES, contact=CONTACTS, minutes=st.integers(0, 7 * 24 * 60 - 1))
def test_index_agrees_with_the_explainer(rules: list[tuple[dict[str, Any], dict[str, Any] | None]],
                                         contact: ContactFacts, minutes: int) -> None:
    specs = [{"id": f"r{i}", "queue": "general", "match": m, **({"unless": u} if u else {})}
             for i, (m, u) in enumerate(rules)]
    doc = document_from_data({"queues": [queue("general")], "business_hours": HOURS,
                              "rules": [*specs, {"id": "all", "queue": "general"}]})
    policy = compile_policy(doc, 1)
    now_s = at("2026-11-23 00:00") + minutes * 60
    moment = moment_at(policy, now_s)
    expected = next(i for i, r in enumerate(doc.rules) if rule_why_not(r, contact, "zh", moment) is None)
    assert match_index(policy, contact, moment) == expected
