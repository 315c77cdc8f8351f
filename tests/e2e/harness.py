"""Real server processes, simulated desks and gateways, for the recovery tests."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import socket
import sys
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import websockets

from channels.security import signed_headers
from tests.e2e.conftest import ADMIN_TOKEN, SECRETS


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    dsn: str
    port: int
    folder: Path
    proc: asyncio.subprocess.Process | None = None
    env: dict[str, str] = field(default_factory=dict)  # more settings for the server

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        secrets_file = self.folder / "secrets.json"
        secrets_file.write_text(json.dumps({k: list(v) for k, v in SECRETS.items()}))
        env = {**os.environ, "DATABASE_URL": self.dsn, "ROUTER_ADMIN_TOKEN": ADMIN_TOKEN,
               "ROUTER_GATEWAY_SECRETS": str(secrets_file), "ROUTER_VAR_DIR": str(self.folder / "var"),
               "ROUTER_LOG_LEVEL": "WARNING", **self.env}
        with open(self.folder / f"server-{self.port}.log", "ab") as log:  # the child keeps its own copy
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "router", "serve", "--port", str(self.port), env=env, stdout=log, stderr=log)
        await self.wait_healthy()

    async def wait_healthy(self, timeout_s: float = 60) -> None:
        deadline = time.monotonic() + timeout_s
        async with aiohttp.ClientSession() as http:
            while time.monotonic() < deadline:
                assert self.proc is not None and self.proc.returncode is None, "the server died at start-up"
                with contextlib.suppress(aiohttp.ClientError):
                    async with http.get(f"{self.url}/v1/health") as resp:
                        if resp.status == 200:
                            return
                await asyncio.sleep(0.1)
        raise AssertionError("the server never became healthy")

    async def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()  # SIGKILL: no cleanup, no goodbye
        await self.proc.wait()

    async def stop(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.terminate()
            await self.proc.wait()


async def request(http: aiohttp.ClientSession, method: str, url: str, **kwargs: Any) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}", **kwargs.pop("headers", {})}
    async with http.request(method, url, headers=headers, **kwargs) as resp:
        return resp.status, await resp.json()


async def post_signed(http: aiohttp.ClientSession, base_url: str, channel: str, event: dict[str, Any]) -> dict[str, Any]:
    """Post like a gateway does: retry (same event id) until the router answers 202."""
    body = json.dumps(event).encode()
    for attempt in range(400):
        headers = {**signed_headers(body, SECRETS[channel][0], int(time.time())), "Content-Type": "application/json"}
        try:
            async with http.post(f"{base_url}/v1/channels/{channel}/events", data=body, headers=headers) as resp:
                if resp.status == 202:
                    return dict(await resp.json())
                assert resp.status in (429, 503), (resp.status, await resp.text())
        except (aiohttp.ClientError, asyncio.TimeoutError):
            pass  # the router is down: retry, as a gateway would
        await asyncio.sleep(min(0.05 * (attempt + 1), 0.5))
    raise AssertionError("the router never accepted the event")


@dataclass
class SimulatedDesk:
    """An agent who accepts every offer, talks briefly, completes and wraps up; reconnects."""

    agent_id: str
    token: str
    base_ws: str
    rng: random.Random
    completed: set[str] = field(default_factory=set)
    stopping: bool = False

    async def run(self) -> None:
        while not self.stopping:
            try:
                async with websockets.connect(f"{self.base_ws}/v1/agents/ws?token={self.token}",
                                              open_timeout=5) as ws:
                    await self._session(ws)
            except (OSError, websockets.exceptions.WebSocketException, asyncio.TimeoutError):
                pass
            await asyncio.sleep(0.2)

    async def _session(self, ws: Any) -> None:
        tasks: set[asyncio.Task[None]] = set()
        async for raw in ws:
            msg = json.loads(raw)
            kind = msg["type"]
            if kind == "hello":
                if msg["state"]["state"] != "available" or msg["state"]["in_wrapup"]:
                    await ws.send(json.dumps({"type": "wrapup_done"}) if msg["state"]["in_wrapup"] else
                                  json.dumps({"type": "state", "state": "available"}))
                    await ws.send(json.dumps({"type": "state", "state": "available"}))
                for offer in msg["pending_offers"]:
                    await ws.send(json.dumps({"type": "accept", "offer_id": offer["offer_id"]}))
                for contact in msg["active_contacts"]:
                    tasks.add(asyncio.create_task(self._talk(ws, contact["id"])))
            elif kind == "offer":
                await ws.send(json.dumps({"type": "accept", "offer_id": msg["offer_id"]}))
            elif kind == "assigned":
                tasks.add(asyncio.create_task(self._talk(ws, msg["contact_id"])))
            elif kind == "contact_ended":
                await ws.send(json.dumps({"type": "wrapup_done"}))
            elif kind == "ping":
                await ws.send(json.dumps({"type": "pong"}))
            elif kind == "state" and msg["state"] == "away" and not self.stopping:
                await ws.send(json.dumps({"type": "state", "state": "available"}))

    async def _talk(self, ws: Any, contact_id: str) -> None:
        await asyncio.sleep(self.rng.uniform(0.02, 0.15))
        with contextlib.suppress(websockets.exceptions.WebSocketException):
            await ws.send(json.dumps({"type": "complete", "contact_id": contact_id, "disposition": "resolved"}))
            self.completed.add(contact_id)


def phone_call(session: str, intent: str, caller: str = "+8613800000000") -> list[tuple[str, dict[str, Any]]]:
    now = datetime_now()
    return [("phone", {"event_id": f"{session}-start", "event_type": "call.started", "occurred_at": now,
                       "call_id": session, "caller": {"number": caller, "presentation": "allowed"},
                       "dialled": {"number": "95588", "line": "main"}, "trunk_id": "sip-1"}),
            ("phone", {"event_id": f"{session}-ivr", "event_type": "ivr.completed", "occurred_at": now,
                       "call_id": session, "ivr": {"language": "zh", "intent": intent, "menu_path": ["1"],
                                                   "verified_customer_id": None, "duration_s": 12}})]


def datetime_now() -> str:
    from datetime import datetime, timezone

    return datetime.now(timezone.utc).isoformat()


@contextlib.asynccontextmanager
async def desks(base_url: str, count: int, seed: int) -> AsyncIterator[list[SimulatedDesk]]:
    rng = random.Random(seed)
    made: list[SimulatedDesk] = []
    async with aiohttp.ClientSession() as http:
        for i in range(count):
            agent_id = f"sim{i:02d}-{uuid.uuid4().hex[:4]}"
            status, _ = await request(http, "POST", f"{base_url}/v1/agents", json={
                "id": agent_id, "name": agent_id, "skills": {"general": 3, "credit_card": 3, "loan": 3},
                "languages": ["zh"], "channels": {"phone": 1}})
            assert status == 201
            _, token = await request(http, "POST", f"{base_url}/v1/agents/{agent_id}/token")
            made.append(SimulatedDesk(agent_id, token["token"], base_url.replace("http", "ws"), rng))
    tasks = [asyncio.create_task(d.run()) for d in made]
    try:
        yield made
    finally:
        for d in made:
            d.stopping = True
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
