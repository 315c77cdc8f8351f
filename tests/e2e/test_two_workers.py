"""Two server instances on one database (as `serve --workers 2` runs them): what an admin or
a desk does through one is seen through the other at once, not after the follower catches up."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest
import websockets
from aiohttp.test_utils import TestClient, TestServer

from router.app import build_app
from tests.conftest import reset_database
from tests.e2e.conftest import Api, make_config
from tests.e2e.harness import Server, free_port, request
from tests.e2e.test_routing import Desk, new_agent, open_desk


@pytest.fixture
async def two(database_url: str) -> AsyncIterator[tuple[Api, Api]]:
    await reset_database(database_url)
    clients = [TestClient(TestServer(build_app(make_config(database_url)))) for _ in range(2)]
    for client in clients:
        await client.start_server()
    yield Api(clients[0], database_url), Api(clients[1], database_url)
    for client in clients:
        await client.close()


async def test_an_agent_registered_on_one_instance_is_found_on_the_other(two: tuple[Api, Api]) -> None:
    first, second = two
    for i in range(5):  # several times: the other instance's follower must not win the race by luck
        token = await new_agent(first, f"w{i}")
        status, view = await second.admin("GET", f"/v1/agents/w{i}")
        assert status == 200, view
        status, issued = await second.admin("POST", f"/v1/agents/w{i}/token")
        assert status == 201, issued
        url = f"ws://{first.client.host}:{first.client.port}/v1/agents/ws?token={issued['token']}"
        async with websockets.connect(url) as ws:  # a token issued on the second, used on the first
            hello = json.loads(await ws.recv())
            assert hello["type"] == "hello" and hello["agent_id"] == f"w{i}"
        del token


async def test_an_unknown_agent_is_still_not_found(two: tuple[Api, Api]) -> None:
    status, body = await two[1].admin("GET", "/v1/agents/nobody")
    assert status == 404 and body["error"]["code"] == "agent_not_found"


async def presence_events(dsn: str, agent_id: str) -> list[tuple[str, dict[str, Any]]]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch("SELECT type, data FROM events WHERE stream_id LIKE 'agent-%' AND data->>'agent_id' = $1 "
                                "AND type IN ('AgentConnected', 'AgentDisconnected') ORDER BY position", agent_id)
    finally:
        await conn.close()
    return [(r["type"], json.loads(r["data"])) for r in rows]


async def test_a_desk_opened_on_another_instance_replaces_the_first_and_the_agent_stays_connected(
        two: tuple[Api, Api]) -> None:
    first, second = two
    token = await new_agent(first, "moving")
    old_ws, old_desk = await open_desk(first, token)
    new_ws, new_desk = await open_desk(second, token)
    replaced = await old_desk.expect("error")
    assert replaced["code"] == "replaced"
    async with asyncio.timeout(5):
        await old_ws.wait_closed()  # the first instance closed it: one desk per agent, the newest wins
    assert old_ws.close_code == 4000
    await asyncio.sleep(0.5)  # time for anything the closing might (wrongly) record
    for api in (first, second):
        status, view = await api.admin("GET", "/v1/agents/moving")
        assert status == 200 and view["connected"] is True, view
    kinds = [kind for kind, _ in await presence_events(first.dsn, "moving")]
    assert kinds[-1] == "AgentConnected", kinds  # the old desk's closing disconnected nobody
    await new_ws.close()
    await asyncio.sleep(0.5)
    status, view = await second.admin("GET", "/v1/agents/moving")
    assert view["connected"] is False  # and the agent's real desk closing does


async def test_the_leader_disconnects_the_desks_of_an_instance_killed_outright(
        database_url: str, tmp_path: Path) -> None:
    """A server holding a desk is SIGKILLed: nobody is left to record the desk's closing, so
    the leader does once the instance's lease is gone, and the grace period runs as usual."""
    await reset_database(database_url)
    env = {"ROUTER_DISCONNECT_GRACE_S": "1"}
    leader = Server(database_url, free_port(), tmp_path / "leader", env=env)
    holder = Server(database_url, free_port(), tmp_path / "holder", env=env)
    for server in (leader, holder):
        server.folder.mkdir()
        await server.start()  # the first one started takes the leader's lock
    try:
        async with aiohttp.ClientSession() as http:
            status, _ = await request(http, "POST", f"{leader.url}/v1/agents", json={
                "id": "stranded", "name": "Stranded", "skills": {"general": 3}, "languages": ["zh"],
                "channels": {"phone": 1}})
            assert status == 201
            _, token = await request(http, "POST", f"{leader.url}/v1/agents/stranded/token")
            ws = await websockets.connect(f"ws://127.0.0.1:{holder.port}/v1/agents/ws?token={token['token']}")
            desk = Desk(ws)
            await desk.expect("hello")
            await desk.send(type="state", state="available")
            await desk.expect("state")
            await holder.kill()
            deadline = time.monotonic() + 30
            view: dict[str, Any] = {}
            while time.monotonic() < deadline:
                _, view = await request(http, "GET", f"{leader.url}/v1/agents/stranded")
                if view["state"] == "disconnected":
                    break
                await asyncio.sleep(0.25)
            assert view["connected"] is False and view["state"] == "disconnected", view
        gone = (await presence_events(database_url, "stranded"))[-1]
        assert gone[0] == "AgentDisconnected" and "gone" in gone[1]["reason"], gone
        with contextlib.suppress(Exception):
            await ws.close()
    finally:
        for server in (holder, leader):
            await server.stop()
