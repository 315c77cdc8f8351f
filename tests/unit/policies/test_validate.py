from __future__ import annotations

from typing import Any

import pytest

from policies.errors import PolicyInvalid
from policies.report import Severity
from policies.validate import validate, validate_document
from policies.vocabulary import AgentProfile, Channel
from tests.unit.policies.helpers import HOURS, document, policy_data, profile, queue

ERROR, WARNING = Severity.ERROR, Severity.WARNING


def _issues(data: dict[str, Any], roster: list[AgentProfile] | None = None) -> list[tuple[Severity, str, str]]:
    return [(i.severity, i.path, i.message) for i in validate(data, roster).issues]


def _rule(rid: str, queue_id: str = "general", **fields: Any) -> dict[str, Any]:
    return {"id": rid, "queue": queue_id, **fields}


REFERENCE_CASES = [
    (policy_data([_rule("a", escalate=[{"after_s": 1, "raise_priority": 1}, {"after_s": 5, "overflow": "vip2"}])]),
     "rules[0].escalate[1].overflow", "unknown queue 'vip2'"),
    (policy_data([_rule("a", escalate=[{"after_s": 5, "escalate": {"to": "supervisor", "queue": "sup"}}])]),
     "rules[0].escalate[0].escalate.queue", "unknown queue 'sup'"),
    ({**policy_data([]), "queues": [queue("general", overflow_to="nowhere")]},
     "queues[0].overflow_to", "unknown queue 'nowhere'"),
    ({**policy_data([_rule("a")]), "rules": [_rule("a", "missing"), _rule("b")]},
     "rules[0].queue", "unknown queue 'missing'"),
    (policy_data([_rule("a", match={"business_hours": "open"})]),
     "rules[0].match.business_hours", "no business_hours defined in the policy"),
    (policy_data([_rule("a", match={"business_hours": "open", "calendar": "vip_hours"})], business_hours=HOURS),
     "rules[0].match.calendar", "unknown calendar 'vip_hours'"),
    (policy_data([_rule("a", unless={"business_hours": "open", "calendar": "x"})], business_hours=HOURS),
     "rules[0].unless.calendar", "unknown calendar 'x'"),
    (policy_data([_rule("a"), _rule("a", match={"channel": "video"})]), "rules[1].id", "duplicate rule id 'a'"),
    ({**policy_data([]), "queues": [queue("general"), queue("general")]}, "queues[1].id",
     "duplicate queue id 'general'"),
]


@pytest.mark.parametrize(("data", "path", "message"), REFERENCE_CASES)
def test_reference_errors(data: dict[str, Any], path: str, message: str) -> None:
    assert (ERROR, path, message) in _issues(data)


def test_schema_errors_come_back_as_a_report() -> None:
    report = validate("queues: [{id: general}]\nrules: []\n")
    assert not report.ok
    assert ("queues[0].sla", "'sla' is required") in [(i.path, i.message) for i in report.errors]
    assert ("rules", "List should have at least 1 item after validation, not 0") in [
        (i.path, i.message) for i in report.errors]


def test_parse_errors_come_back_as_a_report() -> None:
    report = validate("rules: [", content_type="application/yaml")
    assert [i.code for i in report.errors] == ["parse"]


@pytest.mark.parametrize(
    ("rules", "path", "message"),
    [
        ([_rule("all"), _rule("late", match={"channel": "phone"})], "rules[1]",
         "rule 'late' never matches: rule 'all' (rules[0]) comes first and matches every contact"),
        ([_rule("phones", match={"channel": ["phone", "app"]}),
          _rule("vip_phone", match={"channel": "phone", "segment": "vip"})], "rules[1]",
         "rule 'vip_phone' never matches: rule 'phones' (rules[0]) comes first and matches every contact it would"),
        ([_rule("repeat2", match={"repeat_count_min": 2}), _rule("repeat3", match={"repeat_count_min": 3})],
         "rules[1]", "rule 'repeat3' never matches"),
        ([_rule("needs", match={"needs": ["deaf", "blind"]}), _rule("deaf", match={"needs": "deaf"})],
         "rules[1]", "rule 'deaf' never matches"),
        ([_rule("night", match={"time_of_day": "20:00-08:00"}), _rule("late", match={"time_of_day": "22:00-06:00"})],
         "rules[1]", "rule 'late' never matches"),
        ([_rule("week", match={"days": "mon-fri"}), _rule("mon", match={"days": "mon"})],
         "rules[1]", "rule 'mon' never matches"),
    ],
)
def test_shadowed_rules_warn(rules: list[dict[str, Any]], path: str, message: str) -> None:
    issues = _issues(policy_data(rules))
    assert any(sev is WARNING and p == path and message in m for sev, p, m in issues), issues


@pytest.mark.parametrize(
    "rules",
    [
        [_rule("vip_phone", match={"segment": "vip", "channel": "phone"}), _rule("vip", match={"segment": "vip"})],
        [_rule("a", match={"channel": "phone"}, unless={"segment": "vip"}), _rule("b", match={"channel": "phone"})],
        [_rule("repeat3", match={"repeat_count_min": 3}), _rule("repeat2", match={"repeat_count_min": 2})],
        [_rule("deaf", match={"needs": "deaf"}), _rule("needs", match={"needs": ["deaf", "blind"]})],
        [_rule("ja", match={"language": "ja"}), _rule("ja_en", match={"language": ["ja", "en"]})],
    ],
)
def test_narrower_rule_first_is_not_shadowing(rules: list[dict[str, Any]]) -> None:
    assert not [p for _, p, m in _issues(policy_data(rules)) if "never matches" in m]


def test_overflow_cycle_between_queues() -> None:
    queues = [queue("a", max_wait_s=60, overflow_to="b"), queue("b", max_wait_s=60, overflow_to="c"),
              queue("c", max_wait_s=60, overflow_to="a"), queue("general")]
    issues = _issues(policy_data([_rule("x", "a", match={"channel": "phone"})], queues))
    assert [(s, p, m) for s, p, m in issues if "cycle" in m] == [
        (ERROR, "queues[0].overflow_to", "overflow cycle: a -> b -> c -> a")]


def test_queue_overflowing_into_itself() -> None:
    issues = _issues(policy_data([], [queue("general", max_wait_s=5, overflow_to="general")]))
    assert (ERROR, "queues[0].overflow_to", "overflow cycle: general -> general") in issues


def test_rule_overflow_back_to_a_queue_it_left() -> None:
    steps = [{"after_s": 10, "overflow": "b"}, {"after_s": 20, "overflow": "a"}]
    issues = _issues(policy_data([_rule("x", "a", match={"channel": "phone"}, escalate=steps)],
                                 [queue("a"), queue("b"), queue("general")]))
    assert (ERROR, "rules[0].escalate[1].overflow", "overflow cycle: a -> b -> a") in issues


def test_relaxing_a_hard_requirement_is_an_error() -> None:
    rule = _rule("deaf", match={"channel": "video"},
                 require=[{"skill": "sign_language", "min": 3, "hard": True}],
                 escalate=[{"after_s": 30, "raise_priority": 5}, {"after_s": 60, "relax": {"skill": "sign_language"}}])
    assert (ERROR, "rules[0].escalate[1].relax", "relaxes hard requirement skill sign_language") in _issues(
        policy_data([rule]))


def test_relaxing_a_hard_queue_requirement_is_an_error() -> None:
    queues = [queue("desk", require=[{"channel": "video", "hard": True}]), queue("general")]
    rule = _rule("v", "desk", match={"channel": "video"}, escalate=[{"after_s": 5, "relax": {"channel": "video"}}])
    assert (ERROR, "rules[0].escalate[0].relax", "relaxes hard requirement channel video") in _issues(
        policy_data([rule], queues))


def test_relaxing_a_conditionally_hard_language_is_allowed() -> None:
    rule = _rule("ja", match={"language": "ja"},
                 require=[{"language": "contact", "hard": "unless_speaks_home_language"}],
                 escalate=[{"after_s": 60, "relax": {"language": "contact"}}])
    assert _issues(policy_data([rule])) == []


@pytest.mark.parametrize(
    ("steps", "path", "severity", "message"),
    [
        ([{"after_s": 5, "relax": {"skill": "loan"}}], "rules[0].escalate[0].relax", ERROR,
         "relaxes skill loan, which is not required at that point"),
        ([{"after_s": 5, "relax": {"skill": "cards"}}, {"after_s": 9, "relax": {"skill": "cards"}}],
         "rules[0].escalate[1].relax", ERROR, "relaxes skill cards, which is not required at that point"),
        ([{"after_s": 5, "relax": {"skill": "cards", "to": 3}}], "rules[0].escalate[0].relax.to", WARNING,
         "skill cards is already at most 3; nothing to relax"),
        ([{"after_s": 50, "raise_priority": 1}, {"after_s": 5, "raise_priority": 1}], "rules[0].escalate[1].after_s",
         WARNING, "steps are not in waiting-time order; they run sorted"),
        ([{"after_s": 5, "escalate": "expert_team"}, {"after_s": 9, "escalate": "supervisor"}],
         "rules[0].escalate[1].escalate", ERROR, "escalates back down to supervisor"),
        ([{"after_s": 5, "overflow": "general"}, {"after_s": 9, "relax": {"skill": "cards"}}],
         "rules[0].escalate[1].relax", ERROR, "relaxes skill cards, which is not required at that point"),
    ],
)
def test_step_checks(steps: list[dict[str, Any]], path: str, severity: Severity, message: str) -> None:
    rule = _rule("cards", "cards", match={"intent": "credit_card"}, require=[{"skill": "cards", "min": 2}],
                 escalate=steps)
    assert (severity, path, message) in _issues(policy_data([rule]))


ROSTER = [
    profile("a1", {"sign_language": 4}, channels={Channel.PHONE: 1}),
    profile("a2", {"general": 3}, channels={Channel.VIDEO: 1}),
    profile("a3", {"fraud": 4}, {"zh", "en"}, channels={Channel.PHONE: 1, Channel.WEBCHAT: 3}),
]


def test_roster_gap_names_the_missing_combination() -> None:
    rule = _rule("deaf", "desk", match={"channel": "video"},
                 require=[{"skill": "sign_language", "min": 3, "hard": True}])
    issues = _issues(policy_data([rule]), ROSTER)
    assert (WARNING, "rules[0]", "contacts of rule 'deaf' can never be served: no agent has skill "
            "sign_language>=3 and channel video (closest: agent 'a1' lacks channel video)") in issues


def test_roster_gap_on_a_soft_requirement_says_until_relaxed() -> None:
    rule = _rule("fraud", match={"intent": "fraud", "language": "ja"},
                 require=[{"skill": "fraud", "min": 3}, {"language": "contact"}])
    issues = _issues(policy_data([rule]), ROSTER)
    assert (WARNING, "rules[0]", "rule 'fraud': no agent has skill fraud>=3 and language ja (closest: agent 'a3' "
            "lacks language ja) (until an escalation step relaxes it)") in issues


def test_roster_gap_on_a_queue() -> None:
    queues = [queue("experts", require=[{"skill": "complaints", "min": 5}]), queue("general")]
    issues = _issues(policy_data([_rule("c", "experts", match={"intent": "complaint"})], queues), ROSTER)
    assert (WARNING, "queues[0].require", "no agent has skill complaints>=5 (closest: agent 'a1' lacks "
            "skill complaints>=5)") in issues


def test_roster_that_covers_everything_gives_no_warning() -> None:
    rule = _rule("fraud", match={"intent": "fraud"}, require=[{"skill": "fraud", "min": 3, "hard": True}])
    assert _issues(policy_data([rule]), ROSTER) == []


def test_no_roster_no_roster_check() -> None:
    rule = _rule("x", require=[{"skill": "unicorn", "min": 5}])
    assert _issues(policy_data([rule])) == []


@pytest.mark.parametrize(
    ("rules", "example"),
    [
        ([_rule("phone", match={"channel": ["phone", "webchat", "app"]})], "channel=video"),
        ([_rule("ch", match={"channel": ["phone", "webchat", "app", "video"], "segment": ["mass", "vip", "wealth"]})],
         "segment=corporate"),
        ([_rule("zh", match={"speaks_home_language": True}), _rule("en", match={"language": ["en"]})],
         "language=zh|<other>, speaks_home_language=false"),
        ([_rule("open", match={"business_hours": "open"})], "business_hours=closed"),
        ([_rule("not_vip", unless={"segment": "vip"})], "segment=vip"),
    ],
)
def test_uncovered_contacts_are_an_error(rules: list[dict[str, Any]], example: str) -> None:
    data = {"queues": [queue("general")], "rules": rules, "business_hours": HOURS}
    issues = [(s, p, m) for s, p, m in _issues(data) if p == "rules"]
    assert len(issues) == 1 and issues[0][0] is ERROR
    assert "no rule matches some contacts, e.g." in issues[0][2] and example in issues[0][2], issues


@pytest.mark.parametrize(
    "rules",
    [
        [_rule("all")],
        [_rule("open", match={"business_hours": "open"}), _rule("closed", match={"business_hours": "closed"})],
        [_rule("zh", match={"speaks_home_language": True}), _rule("no_zh", match={"speaks_home_language": False})],
        [*(_rule(f"c{i}", match={"channel": ch}) for i, ch in enumerate(["phone", "webchat", "app", "video"]))],
        [_rule("zh", match={"language": "zh"}), _rule("other", match={"speaks_home_language": False}),
         _rule("bilingual", match={"speaks_home_language": True})],
        [_rule("early", match={"time_of_day": "00:00-12:00"}), _rule("late", match={"time_of_day": "12:00-24:00"})],
    ],
)
def test_complete_coverage_without_a_catch_all(rules: list[dict[str, Any]]) -> None:
    data = {"queues": [queue("general")], "rules": rules, "business_hours": HOURS}
    assert [m for _, p, m in _issues(data) if p == "rules"] == []


def test_report_json_shape() -> None:
    report = validate(policy_data([_rule("a", escalate=[{"after_s": 5, "overflow": "vip2"}])]))
    assert report.to_json() == {
        "ok": False, "errors": 1, "warnings": 0,
        "issues": [{"severity": "error", "path": "rules[0].escalate[0].overflow",
                    "message": "unknown queue 'vip2'", "code": "unknown_queue"}],
    }
    assert str(report.issues[0]) == "error: rules[0].escalate[0].overflow: unknown queue 'vip2'"


def test_compile_refuses_an_invalid_document() -> None:
    from policies.engine import compile_policy

    doc = document([_rule("a", escalate=[{"after_s": 5, "overflow": "vip2"}])])
    with pytest.raises(PolicyInvalid, match=r"rules\[0\]\.escalate\[0\]\.overflow: unknown queue 'vip2'"):
        compile_policy(doc, 1)
    assert not validate_document(doc).ok


def test_defaults_steps_are_checked_once() -> None:
    data = policy_data(
        [_rule("deaf", match={"channel": "video"}, require=[{"skill": "sign_language", "min": 3, "hard": True}]),
         _rule("other", match={"channel": "phone"})],
        defaults={"escalate": [{"after_s": 60, "relax": {"skill": "sign_language"}},
                               {"after_s": 90, "relax": {"skill": "nothing_requires_it"}},
                               {"after_s": 120, "overflow": "vip2"}]},
    )
    assert _issues(data) == [
        (ERROR, "defaults.escalate[2].overflow", "unknown queue 'vip2'"),
    ]
    del data["defaults"]["escalate"][2]
    assert _issues(data) == [
        (WARNING, "defaults.escalate[0].relax", "relaxes hard requirement skill sign_language of rule 'deaf'; "
         "it is skipped for that rule"),
    ]


@pytest.mark.parametrize(("field", "value", "path"), [
    ("deadlines", [{"name": "follow_up", "within_h": 1e305}], "rules[0].deadlines[0].within_h"),
    ("deadlines", [{"name": "follow_up", "within_h": float("inf")}], "rules[0].deadlines[0].within_h"),
    ("priority", float("nan"), "rules[0].priority"),
    ("priority", 1e300, "rules[0].priority"),
    ("offer_timeout_s", 1e12, "rules[0].offer_timeout_s"),
    ("match", {"repeat_count_min": 10_000_000}, "rules[0].match.repeat_count_min"),
    ("escalate", [{"after_s": 1e15, "raise_priority": 1}], "rules[0].escalate[0].after_s"),
])
def test_numbers_beyond_any_real_contact_centre_are_refused(field: str, value: Any, path: str) -> None:
    # Found by an audit: `within_h: 1e305` was published, and every arriving contact then waited
    # unplaced (the plan could not be stored); `repeat_count_min: 1e7` held the server for 10 s.
    issues = _issues(policy_data([_rule("a", **{field: value})]))
    assert [p for s, p, _ in issues if s is ERROR] == [path], issues


def test_yaml_aliases_are_refused_so_a_small_body_cannot_expand_without_end() -> None:
    levels = "".join(f"x{i}: &x{i} [{', '.join([f'*x{i - 1}'] * 9)}]\n" for i in range(1, 8))
    bomb = "x0: &x0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + levels + "description: *x7\n"
    report = validate(bomb, content_type="application/yaml")
    assert [i.code for i in report.errors] == ["parse"]
    assert "aliases" in report.errors[0].message


@pytest.mark.parametrize(("data", "path"), [
    ({**policy_data([_rule("a")]), "home_language": "ZH"}, "home_language"),
    (policy_data([_rule("a", match={"language": "EN"})]), "rules[0].match.language[0]"),
    (policy_data([_rule("a", require=[{"language": "En", "hard": True}])]), "rules[0].require[0].language"),
])
def test_language_codes_are_lower_case_as_gateways_send_them(data: dict[str, Any], path: str) -> None:
    # Found by an audit: `match: {language: EN}` never matched a contact's `en`, silently.
    assert path in [p for s, p, _ in _issues(data) if s is ERROR]


def test_a_caller_with_two_needs_no_rule_takes_is_reported() -> None:
    # Found by an audit: the check tried one need at a time, so this validated, and a deaf,
    # elderly caller then matched no rule.
    rules = [_rule("deaf", match={"needs": "deaf"}, unless={"needs": "elderly"}), _rule("rest", unless={"needs": "deaf"})]
    data = {**policy_data([]), "rules": rules}  # no catch-all
    issues = [(s, p, m) for s, p, m in _issues(data) if s is ERROR]
    assert any("needs=deaf+elderly" in m for _, _, m in issues), issues


def test_a_roster_gap_names_each_missing_need_once() -> None:
    # The match's channel and `channel: contact` are one need (the warning said it twice).
    data = policy_data([_rule("v", match={"channel": "video"},
                              require=[{"skill": "sign_language", "min": 3, "hard": True},
                                       {"channel": "contact", "hard": True}])])
    messages = [m for s, p, m in _issues(data, [profile("a1", {"general": 3})]) if p == "rules[0]"]
    assert messages and all(m.split(" (closest")[0].count("channel video") == 1 for m in messages), messages


def test_a_relax_after_a_queues_own_overflow_is_judged_in_the_queue_it_overflowed_to() -> None:
    # Found by an audit: queue a overflows to b after 30 s, b requires skill x >= 4, and the rule
    # relaxes x at 60 s: the engine does just that, but the validator said "not required".
    data = {**policy_data([]), "queues": [queue("a", max_wait_s=30, overflow_to="b"),
                                          queue("b", require=[{"skill": "x", "min": 4}]), queue("general")],
            "rules": [_rule("r", "a", escalate=[{"after_s": 60, "relax": {"skill": "x", "to": 2}}]),
                      _rule("rest")]}
    assert [i for i in _issues(data) if i[0] is ERROR] == []


def test_a_caller_with_three_needs_no_rule_takes_is_reported() -> None:
    rules = [_rule("e", match={"needs": "elderly"}, unless={"needs": "deaf"}),
             _rule("d", match={"needs": "deaf"}, unless={"needs": "blind"}),
             _rule("b", match={"needs": "blind"}, unless={"needs": "elderly"}),
             _rule("rest", unless={"needs": ["elderly", "deaf", "blind"]})]
    issues = [m for s, _, m in _issues({**policy_data([]), "rules": rules}) if s is ERROR]
    assert any("blind+deaf+elderly" in m for m in issues), issues


def test_a_coverage_check_that_tried_tags_only_singly_says_so() -> None:
    rules = [_rule(f"t{i}", match={"tags": f"t{i:02d}"}) for i in range(13)] + [_rule("rest", unless={"tags": "t00"})]
    codes = [i.code for i in validate({**policy_data([]), "rules": rules}).issues]
    assert "coverage_incomplete" in codes
