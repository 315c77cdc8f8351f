"""The load side of `bench route`, in its own process: gateways and simulated agents.

`python -m router.bench.route_load` reads a JSON job on stdin and prints one JSON
result line on stdout (progress on stderr). It registers the agents over the admin
API, opens one desk websocket per agent and sets them available, then:

- mode "route", per run: a closed loop (`in_flight` contacts in progress at once, a
  new one starts when one ends) for `seconds`, counting contacts that were assigned
  and completed -> contacts/s; then an open loop at a moderate `rate_per_s` measuring
  the time from the gateway's 202 for the arriving event to the `offer` frame at the
  desk (the same clock, this process's perf_counter). Every phase ends by draining
  what is still in progress, so runs do not leak into each other.
- mode "memory": the server's resident memory with every agent registered and every
  desk connected (psutil on the server's pid).

A contact is a phone call (call.started, then ivr.completed: the arrival) or a web
chat (session.started, then bot.handoff: the arrival). A simulated agent accepts an
offer at once, completes after a random talk time of 0-`talk_ms` ms, and sends
wrapup_done as soon as its desk says it is in wrap-up.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import statistics
import sys
import time
from typing import Any

import aiohttp
import asyncpg
import psutil

from . import progress, run_async
from .route_sim import SKILLS, Simulation, raise_nofile


# -- setting up agents and desks -------------------------------------------------------------


def agent_body(agent_id: str, rng: random.Random) -> dict[str, Any]:
    return {"id": agent_id, "name": agent_id, "skills": {s: rng.choice((3, 4)) for s in SKILLS},
            "languages": ["zh", "en"], "channels": {"phone": 1, "webchat": 3}}


async def register(http: aiohttp.ClientSession, job: dict[str, Any], count: int) -> dict[str, str]:
    """Register `count` agents (an agent already there is reused) and issue their desk tokens."""
    base, auth = f"http://127.0.0.1:{job['port']}", {"Authorization": f"Bearer {job['admin_token']}"}
    rng, tokens, gate = random.Random(job["seed"]), {}, asyncio.Semaphore(32)

    async def one(agent_id: str, body: dict[str, Any]) -> None:
        async with gate:
            async with http.post(f"{base}/v1/agents", json=body, headers=auth) as resp:
                if resp.status not in (201, 409):
                    raise RuntimeError(f"registering {agent_id}: {resp.status} {await resp.text()}")
            async with http.post(f"{base}/v1/agents/{agent_id}/token", headers=auth) as resp:
                tokens[agent_id] = (await resp.json())["token"]
        if len(tokens) % 2000 == 0:
            progress(f"    {len(tokens):,} agents registered")

    bodies = {f"bench-{i:05d}": agent_body(f"bench-{i:05d}", rng) for i in range(count)}
    await asyncio.gather(*(one(a, b) for a, b in bodies.items()))
    return tokens


async def connect(sim: Simulation, http: aiohttp.ClientSession, tokens: dict[str, str],
                  tasks: set[asyncio.Task[None]]) -> None:
    """Open every desk (at most 100 handshakes at once) and wait until all say available."""
    gate = asyncio.Semaphore(100)
    url = f"ws://127.0.0.1:{sim.job['port']}/v1/agents/ws?token="

    async def one(agent_id: str, token: str) -> None:
        async with gate:
            try:
                ws = await http.ws_connect(url + token, autoping=True, max_msg_size=1 << 20)
            except (aiohttp.ClientError, OSError) as exc:
                sim.errors[f"connect: {type(exc).__name__}"] += 1
                return
            sim.desks[agent_id] = ws
            task = asyncio.create_task(sim.desk(agent_id, ws))
            tasks.add(task)
        if len(sim.desks) % 2000 == 0:
            progress(f"    {len(sim.desks):,} desks connected")

    await asyncio.gather(*(one(a, t) for a, t in tokens.items()))
    deadline = time.monotonic() + 120
    while len(sim.available) < len(sim.desks) and time.monotonic() < deadline:
        await asyncio.sleep(0.1)


# -- the two modes ---------------------------------------------------------------------------


def cpu_s(proc: psutil.Process) -> float:
    times = proc.cpu_times()
    return float(times.user + times.system)


class PostgresCpu:
    """CPU seconds used by the PostgreSQL backends serving one database (other databases on
    the same server, and the shared background processes, are not counted)."""

    def __init__(self, dsn: str) -> None:
        self._database = dsn.split("?", 1)[0].rsplit("/", 1)[1]
        self._seen: dict[int, float] = {}  # pid -> CPU seconds at its last sample

    def sample(self) -> float:
        for proc in psutil.process_iter(["name", "cmdline"]):
            title = " ".join(proc.info["cmdline"] or ())
            if proc.info["name"] in ("postgres", "postmaster") and f" {self._database} " in f" {title} ":
                try:
                    self._seen[proc.pid] = cpu_s(proc)
                except psutil.Error:
                    pass
        return sum(self._seen.values())


async def transactions(dsn: str) -> int:
    """Transactions PostgreSQL has counted for the benchmark's database so far."""
    conn = await asyncpg.connect(dsn)
    try:
        return int(await conn.fetchval("SELECT xact_commit + xact_rollback FROM pg_stat_database "
                                       "WHERE datname = current_database()"))
    finally:
        await conn.close()


async def busy_phase(sim: Simulation, run: int, postgres: PostgresCpu) -> dict[str, Any]:
    """The closed loop: contacts/s end to end, and what each contact cost in CPU and transactions."""
    job, server, me = sim.job, psutil.Process(sim.job["server_pid"]), psutil.Process()
    decided0 = await _decisions(sim)
    cpu0, xact0, started = (cpu_s(server), cpu_s(me), postgres.sample()), await transactions(job["dsn"]), \
        time.perf_counter()
    busy = await sim.closed_loop(f"max-{run}", job["in_flight"], job["seconds"], warmup_s=1.0)
    stuck = await sim.drain(busy)
    await asyncio.sleep(1.0)  # PostgreSQL publishes its counters about once a second
    elapsed_s, done = time.perf_counter() - started, max(1, busy.completed)
    used = [b - a for a, b in zip(cpu0, (cpu_s(server), cpu_s(me), postgres.sample()))]
    return {
        "contacts_per_s": busy.completed_in_window / job["seconds"], "completed": busy.completed,
        "failed": dict(busy.failed), "stuck": stuck, "queues": dict(busy.queues),
        "server_cpu_pct": 100 * used[0] / elapsed_s, "load_cpu_pct": 100 * used[1] / elapsed_s,
        "postgres_cpu_pct": 100 * used[2] / elapsed_s,
        "server_cpu_ms_per_contact": 1000 * used[0] / done, "postgres_cpu_ms_per_contact": 1000 * used[2] / done,
        "load_cpu_ms_per_contact": 1000 * used[1] / done,
        "transactions_per_contact": (await transactions(job["dsn"]) - xact0) / done,
        "stage_p50_ms": {k: statistics.median(v) for k, v in busy.stages_ms.items() if v},
        **_decided_since(decided0, await _decisions(sim)),
    }


async def _decisions(sim: Simulation) -> tuple[float, float]:
    """(stored, refused as stale) decisions so far, from the server's /metrics."""
    async with aiohttp.ClientSession() as http:
        stored = await metric(http, sim.job["port"], "router_decisions_total")
        stale = await metric(http, sim.job["port"], "router_decisions_stale_total")
    return stored or 0.0, stale or 0.0


def _decided_since(before: tuple[float, float], after: tuple[float, float]) -> dict[str, float]:
    """Routing decisions (and desk commands) stored and refused as stale in a phase: a stale one
    costs a round trip and is decided again, so its share is wasted work and latency."""
    stored, stale = after[0] - before[0], after[1] - before[1]
    return {"decisions": stored, "decisions_stale": stale,
            "stale_share": stale / (stored + stale) if stored + stale else 0.0}


async def latency_phase(sim: Simulation, name: str, rate_per_s: float) -> dict[str, Any]:
    """An open loop at `rate_per_s`: percentiles of the time from the 202 to the offer."""
    phase = await sim.open_loop(name, rate_per_s, sim.job["seconds"])
    stuck = await sim.drain(phase)
    lat = sorted(phase.latencies_ms)
    q = statistics.quantiles(lat, n=100, method="inclusive") if len(lat) >= 2 else [float("nan")] * 99
    return {"rate_per_s": rate_per_s, "p50_ms": q[49], "p99_ms": q[98], "max_ms": lat[-1] if lat else float("nan"),
            "offers": len(lat), "offer_before_202": phase.offer_before_202, "failed": dict(phase.failed),
            "stuck": stuck, "queues": dict(phase.queues)}


async def route_runs(sim: Simulation) -> list[dict[str, Any]]:
    """Each run: the closed loop, then the arrival->offer latency at the asked rate and at half
    the closed loop's contacts/s (below saturation, whatever this machine manages)."""
    postgres, results = PostgresCpu(sim.job["dsn"]), []
    for run in range(1, sim.job["runs"] + 1):
        busy = await busy_phase(sim, run, postgres)
        asked = await latency_phase(sim, f"steady-{run}", sim.job["rate_per_s"])
        half = await latency_phase(sim, f"half-{run}", max(1.0, round(busy["contacts_per_s"] / 2)))
        results.append({**busy, "latency": asked, "latency_half_max": half})
        progress(f"  run {run}/{sim.job['runs']}: {busy['contacts_per_s']:,.0f} contacts/s end to end "
                 f"(server CPU {busy['server_cpu_pct']:.0f}%, PostgreSQL {busy['postgres_cpu_pct']:.0f}%, "
                 f"load {busy['load_cpu_pct']:.0f}%; per contact: server {busy['server_cpu_ms_per_contact']:.2f} ms, "
                 f"PostgreSQL {busy['postgres_cpu_ms_per_contact']:.2f} ms CPU, "
                 f"{busy['transactions_per_contact']:.1f} transactions; {busy['decisions_stale']:.0f} of "
                 f"{busy['decisions'] + busy['decisions_stale']:.0f} decisions stale); arrival->offer "
                 + "; ".join(f"at {lat['rate_per_s']:g}/s p50 {lat['p50_ms']:.1f} ms, p99 {lat['p99_ms']:.1f} ms "
                             f"({lat['offers']} offers)" for lat in (asked, half))
                 + "; closed-loop stages p50 " + ", ".join(f"{k} {v:.0f} ms" for k, v in busy["stage_p50_ms"].items())
                 + f"; failed {sum(sum(p['failed'].values()) for p in (busy, asked, half))}, "
                 f"stuck {busy['stuck'] + asked['stuck'] + half['stuck']}")
    return results


async def metric(http: aiohttp.ClientSession, port: int, name: str) -> float | None:
    async with http.get(f"http://127.0.0.1:{port}/metrics") as resp:
        for line in (await resp.text()).splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
    return None


async def main(job: dict[str, Any]) -> dict[str, Any]:
    limit = raise_nofile()
    sim = Simulation(job)
    server = psutil.Process(job["server_pid"])
    out: dict[str, Any] = {"nofile": limit, "rss_mb_start": server.memory_info().rss / 2**20}
    desk_tasks: set[asyncio.Task[None]] = set()
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=120)) as http:
        started = time.perf_counter()
        tokens = await register(http, job, job["agents"])
        out["register_s"] = time.perf_counter() - started
        out["rss_mb_registered"] = server.memory_info().rss / 2**20
        progress(f"  {len(tokens):,} agents registered in {out['register_s']:.1f} s; connecting their desks")
        started = time.perf_counter()
        await connect(sim, http, tokens, desk_tasks)
        out.update(desks=len(sim.desks), available=len(sim.available), connect_s=time.perf_counter() - started)
        progress(f"  {len(sim.desks):,} desks connected, {len(sim.available):,} available "
                 f"in {out['connect_s']:.1f} s")
        if job["mode"] == "memory":
            await asyncio.sleep(3.0)  # let the server settle (presence events, desk syncs)
            out["rss_mb"] = server.memory_info().rss / 2**20
            out["server_connections"] = await metric(http, job["port"], "router_websocket_connections")
        else:
            await sim.gateways.open()
            completer = asyncio.create_task(sim.completer())
            await sim.drain(await sim.open_loop("warmup", 100, 1.0))
            out["runs"] = await route_runs(sim)
            completer.cancel()
        out["errors"] = dict(sim.errors)
        if job["mode"] == "memory":
            return out  # the desks close when this process exits, all at once (see below)
        await asyncio.gather(*(ws.close() for ws in sim.desks.values()))
        for task in desk_tasks:
            task.cancel()
    return out


if __name__ == "__main__":
    result = run_async(main(json.load(sys.stdin)))
    print(json.dumps(result), flush=True)
    os._exit(0)  # closing 10,000 desks one handshake at a time takes minutes; exiting takes none
