"""The routing benchmark: `contact-router bench route`.

Three kinds of figures:

- end to end, through a real server process (`python -m router serve` on a free
  loopback port, a scratch database, credentials in a temporary folder) with the
  gateways and the simulated agents in a separate load process
  (`router.bench.route_load`): contacts per second from arrival to completion, and
  the time from the gateway's 202 for the arriving event to the desk's `offer`
  frame at a moderate rate, when agents are free;
- the routing core in this process (pure, no I/O): the time per routing decision
  with 100 and with 10,000 agents;
- the server's resident memory with 10,000 agents registered and their 10,000
  desks connected (a fresh server and database of its own).

With BENCH_DATABASE_URL both server phases use that database as it is: start from an
empty one, or the memory figure includes whatever the log already holds.
"""

from __future__ import annotations

import json
import os
import random
import statistics
import subprocess
import sys
import time
import uuid
from datetime import datetime, timezone
from typing import Any

from channels.events import facts_to_data
from eventstore import RecordedEvent
from policies.engine import CompiledPolicy, compile_policy
from policies.loader import load_default_policy
from policies.vocabulary import Channel, ContactFacts, Intent

from router import events as ev
from router.decide import next_offers, place
from router.devdb import scratch_database
from router.state import RouterState

from . import progress
from .ingest import Server, running_server
from .route_sim import SKILLS, raise_nofile

# Tue 2026-09-22 10:00 in Shanghai: business hours, so the decision figures do not
# depend on when the benchmark runs (the end-to-end phase uses the real clock).
DECISION_NOW_S = 1_790_042_400.0
WAITING_MIX = (  # (channel, intent): each routing decision places one of these
    (Channel.PHONE, Intent.CREDIT_CARD), (Channel.WEBCHAT, Intent.LOAN), (Channel.PHONE, Intent.FRAUD),
    (Channel.WEBCHAT, Intent.LOST_CARD), (Channel.PHONE, Intent.COMPLAINT), (Channel.PHONE, Intent.GENERAL),
)


# -- the routing core, in process -------------------------------------------------------------


class _Log:
    """Events with stream versions, folded into a RouterState as the log would deliver them."""

    def __init__(self) -> None:
        self.state = RouterState()
        self._versions: dict[str, int] = {}

    def add(self, stream_id: str, type_: str, data: dict[str, Any]) -> None:
        version = self._versions[stream_id] = self._versions.get(stream_id, 0) + 1
        self.state.apply(RecordedEvent(uuid.uuid4(), stream_id, version, 0, 0, type_, data, {},
                                       datetime.now(timezone.utc)))


def decision_state(agents: int, *, waiting: int = 12, busy_share: float = 0.5,
                   seed: int = 1) -> tuple[RouterState, CompiledPolicy]:
    """`agents` agents (levels 3-4 in the bench skills; about half busy on a call, so
    free for chats only), idle since staggered times, and `waiting` contacts queued
    by the default policy (a mix of intents and channels)."""
    rng, log = random.Random(seed), _Log()
    policy = compile_policy(load_default_policy(), 1)
    now_s = DECISION_NOW_S
    for i in range(agents):
        agent_id, stream = f"a{i:05d}", f"agent-default:a{i:05d}"
        log.add(stream, ev.AGENT_REGISTERED, {
            "agent_id": agent_id, "name": agent_id, "skills": {s: rng.choice((3, 4)) for s in SKILLS},
            "languages": ["zh", "en"], "channels": {"phone": 1, "webchat": 3}, "total_capacity": 3})
        log.add(stream, ev.AGENT_CONNECTED, {"agent_id": agent_id, "at_s": now_s - 600})
        log.add(stream, ev.AGENT_STATE_CHANGED, {"agent_id": agent_id, "state": "available",
                                                 "at_s": now_s - 600 + 600 * i / agents})
        if rng.random() < busy_share:
            log.add(stream, ev.AGENT_ENGAGED, {"agent_id": agent_id, "contact_id": f"busy-{i}", "channel": "phone"})
    for j in range(waiting):
        channel, intent = WAITING_MIX[j % len(WAITING_MIX)]
        contact_id = f"c{j:03d}"
        facts = ContactFacts(contact_id=contact_id, channel=channel, intent=intent)
        log.add(f"contact-default:{contact_id}", ev.CONTACT_ARRIVED,
                {**facts_to_data(facts), "occurred_at": "2026-09-22T09:59:00+08:00"})
        decision = place(log.state, log.state.contacts[contact_id], policy, now_s - 10)
        for part in decision.parts:
            for type_, data in part.events:
                log.add(part.stream_id, type_, data)
    return log.state, policy


def time_decisions_us(state: RouterState, seconds: float, now_s: float = DECISION_NOW_S) -> float:
    """Median time per routing decision: a `next_offers` round over the waiting contacts,
    divided by the offers it makes. The round is pure, so it can be repeated on one state."""
    decisions = len(next_offers(state, now_s))
    if decisions == 0:
        raise RuntimeError("the benchmark state makes no offers")
    samples: list[float] = []
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline or len(samples) < 20:
        started = time.perf_counter()
        next_offers(state, now_s)
        samples.append((time.perf_counter() - started) / decisions * 1e6)
    return statistics.median(samples)


def time_placements_us(state: RouterState, policy: CompiledPolicy, seconds: float,
                       now_s: float = DECISION_NOW_S) -> float:
    """Median time to place one arriving contact (policy evaluation and the check that some
    agent on the roster could ever serve it), over the waiting mix; pure, so repeatable."""
    contacts, samples = state.waiting(), list[float]()
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline or len(samples) < 20:
        for contact in contacts:
            started = time.perf_counter()
            place(state, contact, policy, now_s)
            samples.append((time.perf_counter() - started) * 1e6)
    return statistics.median(samples)


def decision_figures(seconds: float, runs: int) -> dict[str, float]:
    figures = {}
    for agents in (100, 10_000):
        state, policy = decision_state(agents)
        values = [time_decisions_us(state, min(seconds, 2.0)) for _ in range(runs)]
        figures[f"decision_us_{agents}_agents"] = statistics.median(values)
        progress(f"  routing decision with {agents:,} agents: " + ", ".join(f"{v:.1f}" for v in values) + " us")
        placing = [time_placements_us(state, policy, min(seconds, 1.0)) for _ in range(runs)]
        figures[f"place_us_{agents}_agents"] = statistics.median(placing)
        progress(f"  placing an arrival with {agents:,} agents: " + ", ".join(f"{v:.1f}" for v in placing) + " us")
    figures["decision_ratio_10000_to_100"] = figures["decision_us_10000_agents"] / figures["decision_us_100_agents"]
    return figures


# -- end to end and memory (server and load in separate processes) ----------------------------


def _load(server: Server, dsn: str, job: dict[str, Any]) -> dict[str, Any]:
    job = {**job, "dsn": dsn, "port": server.port, "admin_token": server.admin_token, "secrets": server.secrets,
           "server_pid": server.process.pid, "tag": f"r{uuid.uuid4().hex[:10]}", "seed": 11}
    done = subprocess.run([sys.executable, "-m", "router.bench.route_load"], input=json.dumps(job).encode(),
                          stdout=subprocess.PIPE, check=False)  # its progress goes straight to our stderr
    if done.returncode != 0:
        raise RuntimeError(f"the load process failed with {done.returncode}")
    return dict(json.loads(done.stdout.decode().strip().splitlines()[-1]))


def end_to_end(seconds: float, runs: int, agents: int, rate_per_s: float, in_flight: int,
               talk_ms: float, profile_path: str | None = None) -> dict[str, Any]:
    progress(f"end to end: {agents} agents, {runs} runs of {seconds:g} s at most {in_flight} contacts in progress, "
             f"then arrival->offer at {rate_per_s:g} contacts/s and at half the end-to-end rate; medians")
    with scratch_database("BENCH_DATABASE_URL") as dsn, running_server(dsn, profile_path=profile_path) as server:
        out = _load(server, dsn, {"mode": "route", "agents": agents, "seconds": seconds, "runs": runs,
                                  "rate_per_s": rate_per_s, "in_flight": in_flight, "talk_ms": talk_ms})
    med = statistics.median
    results = out["runs"]
    return {
        "route_contacts_per_s": med(r["contacts_per_s"] for r in results),
        "offer_p50_ms": med(r["latency"]["p50_ms"] for r in results),
        "offer_p99_ms": med(r["latency"]["p99_ms"] for r in results),
        "offer_rate_per_s": rate_per_s,
        "offer_p50_ms_at_half_max": med(r["latency_half_max"]["p50_ms"] for r in results),
        "offer_p99_ms_at_half_max": med(r["latency_half_max"]["p99_ms"] for r in results),
        "offer_rate_per_s_at_half_max": med(r["latency_half_max"]["rate_per_s"] for r in results),
        "offer_before_202": sum(r[k]["offer_before_202"] for r in results for k in ("latency", "latency_half_max")),
        "route_server_cpu_pct": med(r["server_cpu_pct"] for r in results),
        "route_postgres_cpu_pct": med(r["postgres_cpu_pct"] for r in results),
        "route_load_cpu_pct": med(r["load_cpu_pct"] for r in results),
        "route_server_cpu_ms_per_contact": med(r["server_cpu_ms_per_contact"] for r in results),
        "route_postgres_cpu_ms_per_contact": med(r["postgres_cpu_ms_per_contact"] for r in results),
        "route_transactions_per_contact": med(r["transactions_per_contact"] for r in results),
        "route_stale_decision_share": med(r["stale_share"] for r in results),
        "route_failed": sum(sum(r["failed"].values()) + sum(r["latency"]["failed"].values())
                            + sum(r["latency_half_max"]["failed"].values()) for r in results),
        "route_stuck": sum(r["stuck"] + r["latency"]["stuck"] + r["latency_half_max"]["stuck"] for r in results),
        "route_desk_errors": out["errors"],
        "route_agents": agents, "route_in_flight": in_flight, "route_talk_ms": talk_ms,
        "route_queues": _merged(q for r in results for q in (r["queues"], r["latency"]["queues"])),
    }


def _merged(counts: Any) -> dict[str, int]:
    total: dict[str, int] = {}
    for count in counts:
        for key, value in count.items():
            total[key] = total.get(key, 0) + value
    return dict(sorted(total.items(), key=lambda kv: -kv[1]))


def memory(agents: int = 10_000) -> dict[str, Any]:
    progress(f"memory: {agents:,} agents registered and {agents:,} desks connected (a fresh server)")
    with scratch_database("BENCH_DATABASE_URL") as dsn, running_server(dsn) as server:
        out = _load(server, dsn, {"mode": "memory", "agents": agents, "seconds": 0, "runs": 0, "rate_per_s": 0,
                                  "in_flight": 0, "talk_ms": 0})
    progress(f"  server RSS {out['rss_mb_start']:.0f} MB at start, {out['rss_mb_registered']:.0f} MB with the "
             f"agents registered, {out['rss_mb']:.0f} MB with {out['desks']:,} desks connected "
             f"({out['server_connections'] or 0:.0f} by the server's count)")
    return {
        f"rss_mb_{agents}_agents": out["rss_mb"], "rss_mb_at_start": out["rss_mb_start"],
        f"rss_mb_{agents}_registered_no_desks": out["rss_mb_registered"],
        "rss_desks_connected": out["desks"], "rss_desks_available": out["available"],
        "rss_server_connections": out["server_connections"], "rss_open_files_limit": out["nofile"],
        "rss_desk_errors": out["errors"],
    }


def run(*, seconds: float, runs: int, agents: int = 300, rate_per_s: float = 150.0, in_flight: int = 0,
        talk_ms: float = 50.0, memory_agents: int = 10_000, profile_path: str | None = None) -> dict[str, Any]:
    raise_nofile()  # the server, started from here, inherits the raised limit
    figures: dict[str, Any] = {"route_loadavg_1m_at_start": os.getloadavg()[0]}
    progress(f"routing decisions in process: {runs} runs, medians")
    figures.update(decision_figures(seconds, runs))
    figures.update(end_to_end(seconds, runs, agents, rate_per_s, in_flight or agents, talk_ms, profile_path))
    figures.update(memory(memory_agents))
    figures["route_loadavg_1m_at_end"] = os.getloadavg()[0]  # other work on the machine skews the figures
    return figures
