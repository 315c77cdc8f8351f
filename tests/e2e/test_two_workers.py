"""Two server instances on one database (as `serve --workers 2` runs them): what an admin or
a desk does through one is seen through the other at once, not after the follower catches up."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest
import websockets
from aiohttp.test_utils import TestClient, TestServer

from router.app import build_app
from tests.conftest import reset_database
from tests.e2e.conftest import Api, make_config
from tests.e2e.test_routing import new_agent


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
