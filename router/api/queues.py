"""GET /v1/queues (live figures) and GET /metrics (Prometheus text format)."""

from __future__ import annotations

import statistics
import time
from collections.abc import Iterator
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from ..figures import queue_figures, summary
from . import keys
from .agents import HUB, ROUTER
from .auth import require_admin
from .openapi import error_responses

REGISTRY = web.AppKey("metrics_registry", CollectorRegistry)


def _figures(app: web.Application) -> list[dict[str, Any]]:
    policies = app[keys.POLICIES]
    policy = policies.active.current()
    return queue_figures(app[ROUTER].state, policy, time.time(), policy.context.zone)


async def get_queues(request: web.Request) -> web.Response:
    require_admin(request, request.app[keys.CREDENTIALS].admin_token)
    figures = _figures(request.app)
    return web.json_response({"queues": figures, "totals": summary(figures),
                              "leader": request.app[ROUTER].is_leader, "at": time.time()})


def _window_metrics(figures: list[dict[str, Any]], key: str, suffix: str, span: str) -> Iterator[Metric]:
    labels = ["queue"]
    sl = GaugeMetricFamily(f"router_queue_service_level{suffix}_ratio",
                           f"Share answered within the SLA target, {span}", labels=labels)
    asa = GaugeMetricFamily(f"router_queue_average_speed_of_answer{suffix}_seconds",
                            f"Mean wait of answered contacts, {span}", labels=labels)
    aband = GaugeMetricFamily(f"router_queue_abandonment{suffix}_ratio",
                              f"Abandons (5 s or more) over finished waits, {span}", labels=labels)
    answered = GaugeMetricFamily(f"router_queue_answered{suffix}", f"Waits answered, {span}", labels=labels)
    abandoned = GaugeMetricFamily(f"router_queue_abandoned{suffix}", f"Waits abandoned (5 s or more), {span}",
                                  labels=labels)
    for q in figures:
        name, window = [q["queue"]], q[key]
        answered.add_metric(name, window["answered"])
        abandoned.add_metric(name, window["abandoned"])
        if window["service_level_pct"] is not None:
            sl.add_metric(name, window["service_level_pct"] / 100)
            aband.add_metric(name, window["abandonment_rate_pct"] / 100)
        if window["average_speed_of_answer_s"] is not None:
            asa.add_metric(name, window["average_speed_of_answer_s"])
    yield from (sl, asa, aband, answered, abandoned)


class RouterCollector:
    """Reads the live state at scrape time: nothing is counted twice or kept apart."""

    def __init__(self, app: web.Application) -> None:
        self._app = app

    def collect(self) -> Iterator[Metric]:
        figures = _figures(self._app)
        labels = ["queue"]
        waiting = GaugeMetricFamily("router_queue_waiting", "Contacts waiting in the queue", labels=labels)
        longest = GaugeMetricFamily("router_queue_longest_wait_seconds", "Longest current wait", labels=labels)
        in_progress = GaugeMetricFamily("router_queue_in_progress", "Contacts of the queue with an agent now",
                                        labels=labels)
        agents = GaugeMetricFamily("router_queue_agents", "Agents serving the queue by state", labels=["queue", "state"])
        for q in figures:
            waiting.add_metric([q["queue"]], q["waiting"])
            longest.add_metric([q["queue"]], q["longest_wait_s"])
            in_progress.add_metric([q["queue"]], q["in_progress"])
            for state, count in q["agents"].items():
                agents.add_metric([q["queue"], state], count)
        yield from (waiting, longest, in_progress, agents)
        # The same figures as GET /v1/queues, for the last 15 minutes and for today.
        for key, suffix, span in (("last_15_min", "", "last 15 minutes"), ("today", "_today", "today")):
            yield from _window_metrics(figures, key, suffix, span)
        yield from self._health()

    def _health(self) -> Iterator[Metric]:
        router, hub = self._app[ROUTER], self._app[HUB]
        latencies = router.decision_seconds[-200:]
        yield GaugeMetricFamily("router_is_leader", "1 when this instance routes its domain", value=router.is_leader)
        yield GaugeMetricFamily("router_decision_round_seconds_p50", "Median routing round time (last 200)",
                                value=statistics.median(latencies) if latencies else 0.0)
        # Inclusive: the default (exclusive) method extrapolates past the slowest round when
        # there are fewer than 100 (10 and 20 ms made a p99 of 29.7 ms).
        yield GaugeMetricFamily("router_decision_round_seconds_p99", "99th percentile routing round time (last 200)",
                                value=statistics.quantiles(latencies, n=100, method="inclusive")[98]
                                if len(latencies) > 1 else (latencies[0] if latencies else 0.0))
        # Counters (they only grow while the process lives): `_total` is a counter's suffix,
        # added by the family; the samples keep their names.
        yield CounterMetricFamily("router_decisions", "Decisions appended by this instance",
                                  value=router.decisions_ok)
        yield CounterMetricFamily("router_decisions_stale", "Decisions refused as stale (re-decided)",
                                  value=router.decisions_stale)
        yield GaugeMetricFamily("router_event_lag_seconds", "How long the newest applied event took from its "
                                "commit to this instance's state (stays put while the log is quiet)",
                                value=router.event_lag_s())
        yield GaugeMetricFamily("router_seconds_since_last_event", "Time since the newest applied event was "
                                "recorded (grows while the log is quiet, or while this instance is stuck)",
                                value=router.seconds_since_last_event())
        yield GaugeMetricFamily("router_websocket_connections", "Agent desks connected to this instance",
                                value=len(hub.desks))


async def get_metrics(request: web.Request) -> web.Response:
    body = generate_latest(request.app[REGISTRY])
    # The classic text format, named with its version: the exposition has only ASCII names,
    # so a Prometheus of any age parses it; without a version some scrapers fall back.
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_PLAIN_0_0_4,
                                            "X-Content-Type-Options": "nosniff"})


def add_routes(app: web.Application) -> None:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(RouterCollector(app))  # type: ignore[arg-type]
    app[REGISTRY] = registry
    app.router.add_get("/v1/queues", get_queues)
    app.router.add_get("/metrics", get_metrics)


def openapi_paths(doc: dict[str, Any]) -> None:
    doc["paths"]["/v1/queues"] = {"get": {
        "summary": "Live queue figures: waiting, longest wait, agents, service level, speed of answer, abandons",
        "security": [{"admin": []}],
        "responses": {"200": {"description": "figures per queue",
                              "content": {"application/json": {"schema": {"type": "object"}}}},
                      **error_responses(401, 403)}}}
    doc["paths"]["/metrics"] = {"get": {
        "summary": "Prometheus metrics (text format)",
        "responses": {"200": {"description": "metrics", "content": {"text/plain; version=0.0.4": {"schema": {"type": "string"}}}}}}}
