"""The simulated side of `bench route`: gateways posting whole contacts as signed native
events, and agents' desks that accept, talk, complete and wrap up (used by route_load)."""

from __future__ import annotations

import asyncio
import copy
import heapq
import random
import resource
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import aiohttp
import orjson

from channels.events import contact_id_for
from channels.native import example_events
from channels.security import signed_headers
from policies.vocabulary import Channel

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
    launched_at: float = 0.0  # the first gateway event was sent
    arrived_at: float = 0.0  # the 202 for the arriving event
    offered_at: float = 0.0  # the first offer frame
    assigned_at: float = 0.0  # the desk heard `assigned`
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
    # Where a contact's time goes, per stage (ms): gateway posts, arrival -> offer,
    # offer -> assigned, assigned -> ended (talk time included).
    stages_ms: dict[str, list[float]] = field(default_factory=lambda: {
        "gateway": [], "to_offer": [], "to_assigned": [], "to_ended": []})
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
        track = self.tracks[contact_id] = Track(phase.name, launched_at=time.perf_counter())
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
        track = self.tracks.pop(contact_id, None)
        if counted and track is not None and track.arrived_at and track.offered_at and track.assigned_at:
            marks = (track.launched_at, track.arrived_at, track.offered_at, track.assigned_at, time.perf_counter())
            for stage, start, end in zip(phase.stages_ms, marks, marks[1:]):
                phase.stages_ms[stage].append(max(0.0, end - start) * 1000)
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
        track.assigned, track.assigned_at = True, time.perf_counter()
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
