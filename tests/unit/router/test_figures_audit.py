"""Audit of the live figures and the metrics (pure: no server, the clock and zone are arguments)."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from types import SimpleNamespace
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from policies.decisions import RequirementSpec
from router.api import keys
from router.api.agents import HUB, ROUTER
from router.api.queues import RouterCollector
from router.figures import queue_figures
from router.state import Outcome, RouterState
from tests.unit.router.builders import POLICY, Log

SHANGHAI = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 9, 22, 10, 0, tzinfo=SHANGHAI).timestamp()


def _queue(policy: Any, queue_id: str, state: RouterState) -> dict[str, Any]:
    return next(q for q in queue_figures(state, policy, NOW, SHANGHAI) if q["queue"] == queue_id)


def test_a_queue_that_requires_a_channel_or_a_language_counts_only_agents_who_have_it() -> None:
    """The sign-language desk answers video: a voice-only agent is no agent of that queue,
    nor a Chinese-only agent one of a queue that requires Japanese."""
    video = RequirementSpec.model_validate({"channel": "video", "hard": True})
    japanese = RequirementSpec.model_validate({"language": "ja"})
    queues = dict(POLICY.queues)
    queues["sign_language"] = replace(queues["sign_language"], require=(video,))
    queues["foreign"] = replace(queues["foreign"], require=(japanese,))
    policy = replace(POLICY, queues=queues)
    log = Log()
    log.agent("voice", channels={"phone": 1})
    log.agent("signer", channels={"video": 1, "phone": 1}, languages=("zh", "ja"))
    assert _queue(policy, "sign_language", log.state)["agents"]["available"] == 1
    assert _queue(policy, "foreign", log.state)["agents"]["available"] == 1
    assert _queue(policy, "general", log.state)["agents"]["available"] == 2


class _Stub(SimpleNamespace):
    def event_lag_s(self) -> float:
        return 0.0

    def seconds_since_last_event(self) -> float:
        return 0.0


def _metrics(decision_seconds: list[float], decisions_ok: int = 7, decisions_stale: int = 2) -> str:
    app = web.Application()
    router = _Stub(state=RouterState(), is_leader=True, decision_seconds=decision_seconds,
                   decisions_ok=decisions_ok, decisions_stale=decisions_stale)
    app[ROUTER] = router  # type: ignore[assignment]
    app[HUB] = SimpleNamespace(desks={})  # type: ignore[assignment]
    app[keys.POLICIES] = SimpleNamespace(active=SimpleNamespace(current=lambda: POLICY))  # type: ignore[assignment]
    registry = CollectorRegistry(auto_describe=False)
    registry.register(RouterCollector(app))  # type: ignore[arg-type]
    return generate_latest(registry).decode()


def _value(text: str, name: str) -> float:
    return float(next(line for line in text.splitlines() if line.startswith(name + " ")).split()[1])


def test_the_p99_of_few_rounds_is_never_above_the_slowest_round() -> None:
    """statistics.quantiles (exclusive) extrapolates past the data with fewer than 100 values:
    two rounds of 10 and 20 ms gave a p99 of 29.7 ms."""
    for rounds in ([0.010, 0.020], [0.001 * i for i in range(1, 51)], [0.005] * 150 + [0.5]):
        text = _metrics(rounds)
        p99 = _value(text, "router_decision_round_seconds_p99")
        assert min(rounds) <= p99 <= max(rounds), (rounds[:3], p99)
        assert min(rounds) <= _value(text, "router_decision_round_seconds_p50") <= max(rounds)


def test_counts_that_only_grow_are_counters_and_only_counters_end_in_total() -> None:
    text = _metrics([0.01])
    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert families["router_decisions"].type == "counter", text
    assert families["router_decisions_stale"].type == "counter"
    assert _value(text, "router_decisions_total") == 7.0  # the sample names scripts read are unchanged
    assert _value(text, "router_decisions_stale_total") == 2.0
    for family in families.values():
        if family.type != "counter":
            assert not family.name.endswith("_total"), family.name


def test_metrics_parse_and_every_family_has_help_and_type() -> None:
    state_text = _metrics([0.01, 0.02, 0.03])
    families = list(text_string_to_metric_families(state_text))
    names = [f.name for f in families]
    assert len(names) == len(set(names))
    for family in families:
        assert family.documentation and family.type in ("gauge", "counter"), family
    assert f"# TYPE router_queue_waiting gauge" in state_text


def test_the_default_policys_sign_language_desk_counts_only_signers_on_video() -> None:
    log = Log()
    log.agent("voice", skills={"general": 3, "sign_language": 5}, channels={"phone": 1})
    log.agent("beginner", skills={"general": 3, "sign_language": 2}, channels={"video": 1})
    log.agent("signer", skills={"general": 3, "sign_language": 4}, channels={"video": 1, "phone": 1})
    assert _queue(POLICY, "sign_language", log.state)["agents"]["available"] == 1
