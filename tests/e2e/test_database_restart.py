"""The database restarts under a running server (a failover, a minor-version upgrade): while it
is away the server says so (503 with Retry-After) and stores nothing; once it is back the server
is healthy again, leads again and routes again, with no restart of its own.

A PostgreSQL of the test's own (embedded, in a temporary folder) is stopped and started."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from channels.events import contact_id_for
from policies.vocabulary import Channel
from router.app import build_app
from router.embedded import EmbeddedPostgres
from router.migrate import upgrade_async

from .conftest import Api, make_config
from .test_routing import arrive, call, new_agent, open_desk

pytestmark = pytest.mark.slow


@pytest.fixture
def own_postgres(tmp_path: Path) -> Iterator[EmbeddedPostgres]:
    server = EmbeddedPostgres(tmp_path / "pgdata")
    server.start()
    yield server
    server.stop()


@pytest.fixture
async def api_on_own(own_postgres: EmbeddedPostgres) -> AsyncIterator[Api]:
    dsn = own_postgres.dsn
    await upgrade_async(dsn)
    client = TestClient(TestServer(build_app(make_config(dsn, lead=True))))
    await client.start_server()
    yield Api(client, dsn)
    await client.close()


async def health(api: Api) -> tuple[int, dict[str, Any]]:
    async with api.client.get("/v1/health") as resp:
        return resp.status, await resp.json()


async def until_healthy_leader(api: Api, timeout_s: float) -> None:
    async with asyncio.timeout(timeout_s):
        while True:
            status, body = await health(api)
            if status == 200 and body["role"] == "leader":
                return
            await asyncio.sleep(0.1)


async def test_the_server_rides_out_a_database_restart(api_on_own: Api, own_postgres: EmbeddedPostgres) -> None:
    await until_healthy_leader(api_on_own, 15)
    ws, desk = await open_desk(api_on_own, await new_agent(api_on_own, "a1"))
    try:
        await desk.send(type="state", state="available")
        await desk.expect("state")
        first = await arrive(api_on_own, "before")
        offer = await desk.expect("offer")
        assert offer["contact"]["id"] == first
        await desk.send(type="reject", offer_id=offer["offer_id"], reason="not now")
        await desk.expect("offer_revoked")

        await asyncio.to_thread(own_postgres.pause)
        status, body = await health(api_on_own)
        assert status == 503 and body["error"]["code"] == "database_unavailable"
        status, body = await api_on_own.post_event("phone", call("during")[0])
        assert status == 503 and body["error"]["code"] == "store_unavailable", body
        assert int((await api_on_own.client.get("/v1/health")).headers["Retry-After"]) >= 1

        await asyncio.to_thread(own_postgres.resume)
        # Back within seconds: the pool's dead connections are replaced, the leadership
        # reconnects and is elected again, the log follower goes on from where it was, and the
        # desk (its websocket is the server's, not the database's) is offered the next contact.
        await until_healthy_leader(api_on_own, 30)
        contact_id = ""
        async with asyncio.timeout(15):
            while not contact_id:
                try:
                    contact_id = await arrive(api_on_own, "after")
                except AssertionError:  # a 503 while the last dead pooled connections are found out
                    await asyncio.sleep(0.2)
        offer = await desk.expect("offer", timeout_s=15)
        assert offer["contact"]["id"] == contact_id
        await desk.send(type="accept", offer_id=offer["offer_id"])
        assert (await desk.expect("assigned"))["contact_id"] == contact_id
    finally:
        await ws.close()
    # The event refused while the database was away left nothing behind.
    status, _ = await api_on_own.get(f"/v1/contacts/{contact_id_for(Channel.PHONE, 'during')}")
    assert status == 404
