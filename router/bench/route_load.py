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
import copy
import heapq
import json
import os
import random
import resource
import statistics
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import aiohttp
import asyncpg
import orjson
import psutil

from channels.events import contact_id_for
from channels.native import example_events
from channels.security import signed_headers
from policies.vocabulary import Channel

from . import progress
from .ingest import Connection

SKILLS = ("general", "credit_card", "loan", "fraud", "complaints")
PHONE_INTENTS = ("credit_card", "loan", "fraud", "lost_card", "complaint", "speak_to_agent")
CHAT_INTENTS = ("credit_card", "loan", "fraud", "lost_card", "agent_request")
GATEWAY_CONNECTIONS = 48


def raise_nofile() -> int:
    """Raise this process's open-files soft limit to the hard limit; returns the limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


# -- the gateways ----------------------------------------------------------------------------


class Gateways:
    """Whole contacts as signed native events, posted over a pool of keep-alive connections."""

    def __init__(self, port: int, secrets: dict[str, str], tag: str, seed: int) -> None:
        self._port, self._secrets, self._tag = port, secrets, tag
        self._rng = random.Random(seed)
        self._serial = 0
        examples = {ch: example_events(ch) for ch in (Channel.PHONE, Channel.WEBCHAT)}
        self._phone = examples[Channel.PHONE][:2]
        self._chat = [examples[Channel.WEBCHAT][0], examples[Channel.WEBCHAT][2]]
        self._idle: asyncio.Queue[Connection] = asyncio.Queue()

    async def open(self, count: int = GATEWAY_CONNECTIONS) -> None:
        loop = asyncio.get_running_loop()
        for _ in range(count):
            _, conn = await loop.create_connection(Connection, "127.0.0.1", self._port)
            self._idle.put_nowait(conn)

    def contact(self) -> tuple[str, str, list[dict[str, Any]]]:
        """(channel, contact id, [start event, arriving event]) of a new contact."""
        self._serial += 1
        session = f"{self._tag}-{self._serial}"
        now = datetime.now(timezone.utc).isoformat()
        phone = self._rng.random() < 0.5
        start, arrive = (copy.deepcopy(e) for e in (self._phone if phone else self._chat))
        for n, event in enumerate((start, arrive)):
            event["event_id"] = f"{session}-{n}"
            event["occurred_at"] = now
            event["call_id" if phone else "session_id"] = session
        if phone:
            start["caller"]["number"] = f"+86137{self._rng.randrange(10 ** 8):08d}"
            arrive["ivr"].update(intent=self._rng.choice(PHONE_INTENTS), language="zh", verified_customer_id=None)
        else:
            start["visitor"].update(customer_id=None, locale=self._rng.choice(("zh-CN", "zh-CN", "en-US")),
                                    visitor_id=f"v-{session}")
            arrive["handoff"]["detected_intent"] = self._rng.choice(CHAT_INTENTS)
        channel = Channel.PHONE if phone else Channel.WEBCHAT
        return channel.value, contact_id_for(channel, session), [start, arrive]

    def _request(self, channel: str, event: dict[str, Any]) -> bytes:
        body = orjson.dumps(event)
        head = [f"POST /v1/channels/{channel}/events HTTP/1.1", f"Host: 127.0.0.1:{self._port}",
                "Content-Type: application/json", f"Content-Length: {len(body)}"]
        head += [f"{k}: {v}" for k, v in signed_headers(body, self._secrets[channel], int(time.time())).items()]
        return ("\r\n".join(head) + "\r\n\r\n").encode() + body

    async def post(self, channel: str, event: dict[str, Any]) -> tuple[int, float]:
        """(status, answered at perf_counter); status 0 when the connection dropped."""
        conn = await self._idle.get()
        if conn.closed:
            _, conn = await asyncio.get_running_loop().create_connection(Connection, "127.0.0.1", self._port)
        answer: asyncio.Future[tuple[int, float]] = asyncio.get_running_loop().create_future()
        conn.send(self._request(channel, event), lambda status, at: answer.set_result((status, at)))
        try:
            return await answer
        finally:
            self._idle.put_nowait(conn)


# -- the contacts in progress ----------------------------------------------------------------


@dataclass(slots=True)
class Track:
    phase: str
    arrived_at: float = 0.0  # the 202 for the arriving event
    offered_at: float = 0.0  # the first offer frame
    assigned: bool = False


@dataclass
class Phase:
    name: str
    window: tuple[float, float] = (0.0, float("inf"))
    launched: int = 0
    failed: Counter[int] = field(default_factory=Counter)  # non-202 answers by status
    completed: int = 0
    completed_in_window: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    offer_before_202: int = 0
    queues: Counter[str] = field(default_factory=Counter)
    done: asyncio.Event = field(default_factory=asyncio.Event)
    slots: asyncio.Semaphore | None = None

    @property
    def open(self) -> int:
        return self.launched - self.completed - sum(self.failed.values())


class Simulation:
    def __init__(self, job: dict[str, Any]) -> None:
        self.job = job
        self.gateways = Gateways(job["port"], job["secrets"], job["tag"], job["seed"])
        self.tracks: dict[str, Track] = {}
        self.phases: dict[str, Phase] = {}
        self.errors: Counter[str] = Counter()
        self.desks: dict[str, aiohttp.ClientWebSocketResponse] = {}
        self.hellos = 0
        self.available: set[str] = set()
        self._rng = random.Random(job["seed"] + 1)
        self._due: list[tuple[float, int, str, str]] = []  # (at, seq, agent, contact): completions
        self._wake = asyncio.Event()
        self._seq = 0

    # -- a contact, from the gateway's side ----------------------------------------------

    async def contact(self, phase: Phase) -> None:
        channel, contact_id, events = self.gateways.contact()
        track = self.tracks[contact_id] = Track(phase.name)
        phase.launched += 1
        for event in events:
            status, answered_at = await self.gateways.post(channel, event)
            if status != 202:
                phase.failed[status] += 1
                self._finish(contact_id, phase, counted=False)
                return
        track.arrived_at = answered_at
        if track.offered_at:  # the desk heard of it before this process read the 202
            phase.offer_before_202 += 1
            phase.latencies_ms.append(0.0)

    def _finish(self, contact_id: str, phase: Phase, *, counted: bool) -> None:
        self.tracks.pop(contact_id, None)
        if counted:
            phase.completed += 1
            if phase.window[0] <= time.perf_counter() < phase.window[1]:
                phase.completed_in_window += 1
        if phase.slots is not None:
            phase.slots.release()
        if phase.open == 0:
            phase.done.set()

    # -- the desks -----------------------------------------------------------------------

    async def desk(self, agent_id: str, ws: aiohttp.ClientWebSocketResponse) -> None:
        async for message in ws:
            if message.type is not aiohttp.WSMsgType.TEXT:
                continue
            data = orjson.loads(message.data)
            kind = data["type"]
            if kind == "offer":
                await self._offered(ws, data)
            elif kind == "assigned":
                self._assigned(agent_id, data["contact_id"])
            elif kind == "contact_ended":
                self._ended(data["contact_id"])
            elif kind == "state":
                await self._state(agent_id, ws, data)
            elif kind == "hello":
                self.hellos += 1
                await self._state(agent_id, ws, data["state"])
                if data["state"]["state"] != "available":
                    await ws.send_str('{"type":"state","state":"available","reason":"bench"}')
            elif kind == "ping":
                await ws.send_str('{"type":"pong"}')
            elif kind == "error":
                self.errors[data.get("code", "?")] += 1

    async def _offered(self, ws: aiohttp.ClientWebSocketResponse, data: dict[str, Any]) -> None:
        now = time.perf_counter()
        await ws.send_str(orjson.dumps({"type": "accept", "offer_id": data["offer_id"]}).decode())
        track = self.tracks.get(data["contact"]["id"])
        if track is None or track.offered_at:
            return
        track.offered_at = now
        phase = self.phases[track.phase]
        phase.queues[str(data["contact"].get("queue"))] += 1
        if track.arrived_at:
            phase.latencies_ms.append(max(0.0, now - track.arrived_at) * 1000)

    def _assigned(self, agent_id: str, contact_id: str) -> None:
        track = self.tracks.get(contact_id)
        if track is None:
            return
        track.assigned = True
        self._seq += 1
        talk_s = self._rng.uniform(0.0, self.job["talk_ms"] / 1000)
        heapq.heappush(self._due, (time.perf_counter() + talk_s, self._seq, agent_id, contact_id))
        self._wake.set()

    def _ended(self, contact_id: str) -> None:
        track = self.tracks.get(contact_id)
        if track is not None and track.assigned:
            self._finish(contact_id, self.phases[track.phase], counted=True)

    async def _state(self, agent_id: str, ws: aiohttp.ClientWebSocketResponse, data: dict[str, Any]) -> None:
        if data.get("state") == "available":
            self.available.add(agent_id)
        if data.get("in_wrapup"):
            await ws.send_str('{"type":"wrapup_done"}')

    async def completer(self) -> None:
        """Completes every assigned contact when its talk time is up (one task for all desks)."""
        while True:
            if not self._due:
                self._wake.clear()
                await self._wake.wait()
            delay = self._due[0][0] - time.perf_counter()
            if delay > 0:
                try:
                    await asyncio.wait_for(self._wake.wait(), delay)
                except TimeoutError:
                    pass
                self._wake.clear()
                continue
            _, _, agent_id, contact_id = heapq.heappop(self._due)
            ws = self.desks.get(agent_id)
            if ws is not None and not ws.closed:
                await ws.send_str(orjson.dumps({"type": "complete", "contact_id": contact_id,
                                                "disposition": "resolved"}).decode())

    # -- phases --------------------------------------------------------------------------

    async def closed_loop(self, name: str, in_flight: int, seconds: float, warmup_s: float) -> Phase:
        phase = self.phases[name] = Phase(name, slots=asyncio.Semaphore(in_flight))
        start = time.perf_counter()
        phase.window = (start + warmup_s, start + warmup_s + seconds)
        tasks = set()
        while time.perf_counter() < phase.window[1]:
            assert phase.slots is not None
            try:
                await asyncio.wait_for(phase.slots.acquire(), phase.window[1] - time.perf_counter())
            except TimeoutError:
                break
            task = asyncio.create_task(self.contact(phase))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        return phase

    async def open_loop(self, name: str, rate_per_s: float, seconds: float) -> Phase:
        phase = self.phases[name] = Phase(name)
        start, total = time.perf_counter(), int(rate_per_s * seconds)
        tasks = set()
        for i in range(total):
            await asyncio.sleep(max(0.0, start + i / rate_per_s - time.perf_counter()))
            task = asyncio.create_task(self.contact(phase))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        return phase

    async def drain(self, phase: Phase, timeout_s: float = 60.0) -> int:
        """Wait for every contact of the phase to end; returns how many never did."""
        if phase.open > 0:
            phase.done.clear()
            try:
                await asyncio.wait_for(phase.done.wait(), timeout_s)
            except TimeoutError:
                pass
        return phase.open


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


async def route_runs(sim: Simulation) -> list[dict[str, Any]]:
    job, server, me = sim.job, psutil.Process(sim.job["server_pid"]), psutil.Process()
    postgres = PostgresCpu(job["dsn"])
    results = []
    for run in range(1, job["runs"] + 1):
        cpu0, xact0, started = (cpu_s(server), cpu_s(me), postgres.sample()), await transactions(job["dsn"]), \
            time.perf_counter()
        busy = await sim.closed_loop(f"max-{run}", job["in_flight"], job["seconds"], warmup_s=1.0)
        stuck_busy = await sim.drain(busy)
        await asyncio.sleep(1.0)  # PostgreSQL publishes its counters about once a second
        elapsed_s, done = time.perf_counter() - started, max(1, busy.completed)
        used = [b - a for a, b in zip(cpu0, (cpu_s(server), cpu_s(me), postgres.sample()))]
        cpu = [100 * u / elapsed_s for u in used]
        per_contact = {"server_cpu_ms_per_contact": 1000 * used[0] / done,
                       "postgres_cpu_ms_per_contact": 1000 * used[2] / done,
                       "load_cpu_ms_per_contact": 1000 * used[1] / done,
                       "transactions_per_contact": (await transactions(job["dsn"]) - xact0) / done}
        steady = await sim.open_loop(f"steady-{run}", job["rate_per_s"], job["seconds"])
        stuck_steady = await sim.drain(steady)
        lat = sorted(steady.latencies_ms)
        q = statistics.quantiles(lat, n=100, method="inclusive") if len(lat) >= 2 else [float("nan")] * 99
        result = {
            "contacts_per_s": busy.completed_in_window / job["seconds"], "completed": busy.completed,
            "failed": dict(busy.failed) | dict(steady.failed), "stuck": stuck_busy + stuck_steady,
            "server_cpu_pct": cpu[0], "load_cpu_pct": cpu[1], "postgres_cpu_pct": cpu[2],
            "offer_p50_ms": q[49], "offer_p99_ms": q[98], "offer_max_ms": lat[-1] if lat else float("nan"),
            "offers_measured": len(lat), "offer_before_202": steady.offer_before_202,
            "queues": dict(busy.queues + steady.queues), **per_contact,
        }
        results.append(result)
        progress(f"  run {run}/{job['runs']}: {result['contacts_per_s']:,.0f} contacts/s end to end "
                 f"(server CPU {cpu[0]:.0f}%, PostgreSQL {cpu[2]:.0f}%, load {cpu[1]:.0f}%); "
                 f"arrival->offer at {job['rate_per_s']:g}/s: p50 {q[49]:.1f} ms, p99 {q[98]:.1f} ms "
                 f"({len(lat)} offers); failed {result['failed'] or 0}, stuck {result['stuck']}; per contact: "
                 f"server {per_contact['server_cpu_ms_per_contact']:.2f} ms CPU, PostgreSQL "
                 f"{per_contact['postgres_cpu_ms_per_contact']:.2f} ms CPU, "
                 f"{per_contact['transactions_per_contact']:.1f} transactions")
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
    result = asyncio.run(main(json.load(sys.stdin)))
    print(json.dumps(result), flush=True)
    os._exit(0)  # closing 10,000 desks one handshake at a time takes minutes; exiting takes none
