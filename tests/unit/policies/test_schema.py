from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import ValidationError

from policies.errors import PolicyInvalid, PolicyParseError
from policies.hours import TimeRange
from policies.loader import document_from_data, parse_data, parse_policy_text
from policies.report import format_loc
from policies.schema import PolicyDocument
from policies.vocabulary import Channel, Intent, Need, Strategy
from tests.unit.policies.helpers import policy_data, queue

YAML_POLICY = """
timezone: Asia/Shanghai
business_hours:
  hours: {mon-fri: "08:00-20:00", sat: closed}
  holidays: [2026-10-01]
queues:
  - {id: fraud, name: Fraud, sla: {answer_within_s: 10, target_pct: 95}, max_wait_s: 60, overflow_to: general}
  - {id: general, sla: {answer_within_s: 30, target_pct: 80}, wrapup_s: 45}
rules:
  - id: fraud
    match: {intent: fraud, channel: [phone, app], time_of_day: "22:00-06:00"}
    queue: fraud
    require:
      - {skill: fraud, min: 4, hard: true}
      - {language: contact, hard: unless_speaks_home_language}
    priority: 900
    strategy: most_skilled
    escalate:
      - {after_s: 30, raise_priority: 50}
      - {after_s: 60, escalate: supervisor}
      - {after_s: 90, offer_callback: true}
    deadlines: [{name: follow_up, within_h: 48}]
  - {id: rest, queue: general}
"""


def test_yaml_document_reads_every_shorthand() -> None:
    doc = parse_policy_text(YAML_POLICY, "application/yaml")
    rule = doc.rules[0]
    assert rule.match.intent == (Intent.FRAUD,)
    assert rule.match.channel == (Channel.PHONE, Channel.APP)
    assert rule.match.time_of_day == (TimeRange(1320, 360),)
    assert rule.require[0].skill == "fraud" and rule.require[0].min_level == 4 and rule.require[0].hard is True
    assert rule.require[1].hard == "unless_speaks_home_language"
    assert rule.strategy is Strategy.MOST_SKILLED
    assert [s.action for s in rule.escalate] == ["raise_priority", "escalate", "offer_callback"]
    assert rule.escalate[1].escalate is not None and rule.escalate[1].escalate.to == "supervisor"
    assert rule.deadlines[0].within_h == 48
    assert doc.queues[1].wrapup_s == 45
    assert doc.business_hours is not None and doc.business_hours.hours["sat"] == ()


@pytest.mark.parametrize("compact", [True, False])
def test_json_and_yaml_give_the_same_document(compact: bool) -> None:
    from_yaml = parse_policy_text(YAML_POLICY)
    data = from_yaml.to_data() if compact else from_yaml.model_dump(mode="json", by_alias=True)
    assert parse_policy_text(json.dumps(data), "application/json") == from_yaml


def test_dump_keeps_hours_readable() -> None:
    dumped = parse_policy_text(YAML_POLICY).model_dump(mode="json", by_alias=True)
    assert dumped["business_hours"]["hours"] == {"mon-fri": "08:00-20:00", "sat": "closed"}
    assert dumped["rules"][0]["match"]["time_of_day"] == "22:00-06:00"


@pytest.mark.parametrize(
    ("text", "content_type", "kind"),
    [('{"a": 1}', None, dict), ("a: 1", None, dict), ("a: 1", "application/x-yaml", dict),
     ('{"a": 1}', "application/json; charset=utf-8", dict)],
)
def test_parse_data_picks_the_format(text: str, content_type: str | None, kind: type) -> None:
    assert isinstance(parse_data(text, content_type), kind)


@pytest.mark.parametrize(
    ("text", "content_type", "message"),
    [
        ("queues: [", None, "invalid YAML"),
        ('{"queues": ', None, "invalid JSON"),
        ("a: 1\na: 2\n", None, "duplicate key 'a' at line 2"),
        ("- 1\n- 2\n", None, "a policy is a mapping"),
        ('{"q": ' + "[" * 100_000 + "]" * 100_000 + "}", None, "invalid JSON: the document is nested too deeply"),
        ("q: " + "[" * 100_000 + "]" * 100_000, None, "invalid YAML: the document is nested too deeply"),
    ],
)
def test_parse_errors(text: str, content_type: str | None, message: str) -> None:
    with pytest.raises(PolicyParseError, match=message):
        parse_policy_text(text, content_type)


def _schema_issues(data: dict[str, Any]) -> list[tuple[str, str]]:
    with pytest.raises(PolicyInvalid) as caught:
        document_from_data(data)
    return [(i.path, i.message) for i in caught.value.report.issues]


def _with_rule(**fields: Any) -> dict[str, Any]:
    return policy_data([{"id": "r", "queue": "general", **fields}])


@pytest.mark.parametrize(
    ("data", "path", "message"),
    [
        (_with_rule(match={"channel": "fax"}), "rules[0].match.channel[0]", "Input should be"),
        (_with_rule(match={"chanel": "phone"}), "rules[0].match.chanel", "unknown field 'chanel'"),
        (_with_rule(match={"needs": []}), "rules[0].match.needs", "at least 1 item"),
        (_with_rule(require=[{"skill": "fraud", "min": 6}]), "rules[0].require[0].min", "less than or equal to 5"),
        (_with_rule(require=[{"skill": "fraud", "language": "en"}]), "rules[0].require[0]", "exactly one of"),
        (_with_rule(require=[{"language": "en", "min": 2}]), "rules[0].require[0]", "'min' only applies to a skill"),
        (_with_rule(require=[{"skill": "x", "hard": "unless_speaks_home_language"}]), "rules[0].require[0]",
         "only applies to a language"),
        (_with_rule(escalate=[{"after_s": 5}]), "rules[0].escalate[0]", "exactly one action"),
        (_with_rule(escalate=[{"after_s": 5, "relax": {"skill": "a"}, "raise_priority": 3}]),
         "rules[0].escalate[0]", "exactly one action"),
        (_with_rule(escalate=[{"after_s": -1, "raise_priority": 3}]), "rules[0].escalate[0].after_s",
         "greater than or equal to 0"),
        (_with_rule(escalate=[{"after_s": 5, "escalate": "boss"}]), "rules[0].escalate[0].escalate.to",
         "Input should be"),
        (_with_rule(escalate=[{"after_s": 5, "relax": {"language": "en", "to": 2}}]),
         "rules[0].escalate[0].relax", "'to' only applies to a skill"),
        (_with_rule(match={"time_of_day": "8-20"}), "rules[0].match.time_of_day", "not a time like 08:30"),
        (_with_rule(match={"days": ["mon", "funday"]}), "rules[0].match.days", "unknown day 'funday'"),
        (_with_rule(match={"calendar": "x"}), "rules[0].match", "only applies together with 'business_hours'"),
        (_with_rule(match={"repeat_count_min": 3, "repeat_count_max": 2}), "rules[0].match", "above"),
        (_with_rule(id="Bad Id"), "rules[0].id", "should match pattern"),
        ({**policy_data([]), "timezone": "Mars/Olympus"}, "timezone", "unknown time zone 'Mars/Olympus'"),
        ({**policy_data([]), "queues": []}, "queues", "at least 1 item"),
        ({"rules": [{"id": "x", "queue": "general"}]}, "queues", "'queues' is required"),
        ({**policy_data([]), "queues": [queue("general", sla={"answer_within_s": 20, "target_pct": 120})]},
         "queues[0].sla.target_pct", "less than or equal to 100"),
        ({**policy_data([]), "business_hours": {"hours": {"mon": "22:00-02:00"}}}, "business_hours.hours",
         "cross midnight"),
    ],
)
def test_schema_errors_have_precise_paths(data: dict[str, Any], path: str, message: str) -> None:
    issues = _schema_issues(data)
    assert any(p == path and message in m for p, m in issues), issues


def test_schema_error_shows_the_bad_input() -> None:
    issues = _schema_issues(_with_rule(match={"channel": "fax"}))
    assert issues[0][1].endswith("(got 'fax')")


@pytest.mark.parametrize(
    ("loc", "path"),
    [
        (("rules", 3, "escalate", 1, "overflow"), "rules[3].escalate[1].overflow"),
        (("queues", 0, "function-after[_x(), Model]", "sla"), "queues[0].sla"),
        (("calendars", "x", "[key]"), "calendars.x"),
        ((), ""),
    ],
)
def test_format_loc(loc: tuple[int | str, ...], path: str) -> None:
    assert format_loc(loc) == path


def test_match_defaults_to_every_contact() -> None:
    doc = document_from_data(policy_data([]))
    assert doc.rules[-1].is_catch_all() and doc.rules[-1].match.is_empty()
    assert doc.defaults.strategy is Strategy.LONGEST_IDLE and doc.timezone == "Asia/Shanghai"


def test_single_values_become_lists() -> None:
    doc = document_from_data(_with_rule(match={"needs": "deaf", "tags": "vip_card", "language": "ja"}))
    match = doc.rules[0].match
    assert (match.needs, match.tags, match.language) == ((Need.DEAF,), ("vip_card",), ("ja",))


def test_documents_are_immutable() -> None:
    doc = document_from_data(policy_data([]))
    with pytest.raises(ValidationError, match="frozen"):
        doc.rules[0].__setattr__("queue", "x")
    assert isinstance(doc, PolicyDocument)
