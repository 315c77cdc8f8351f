"""GET /v1/health as an orchestrator (docker, a load balancer) uses it: 200 only while the
instance can do its work, and a body that says what it is."""

from __future__ import annotations

import asyncio

from aiohttp.test_utils import TestClient, TestServer

from router.api import keys
from router.app import build_app
from router.tasks import supervised
from tests.conftest import reset_database

from .conftest import Api, documented_answer, make_config


async def test_a_healthy_standby_says_what_it_is(api: Api) -> None:
    status, body = await documented_answer(api, "GET", "/v1/health", "/v1/health")
    assert status == 200, body
    assert body["status"] == "ok" and body["role"] == "standby" and body["domain"] == "default"
    assert body["instance"] and body["event_lag_s"] >= 0


async def test_the_leader_says_it_leads(database_url: str) -> None:
    await reset_database(database_url)
    client = TestClient(TestServer(build_app(make_config(database_url, lead=True))))
    await client.start_server()
    try:
        for _ in range(100):  # the election takes a moment after start-up
            async with client.get("/v1/health") as resp:
                body = await resp.json()
            if body.get("role") == "leader":
                break
            await asyncio.sleep(0.05)
        assert resp.status == 200 and body["role"] == "leader"
    finally:
        await client.close()


async def test_an_instance_whose_background_work_died_is_not_healthy(api: Api) -> None:
    # The log follower, the routing loop or the leadership ending by an error leaves a server
    # that answers requests but no longer routes or follows the log: it must say so, so that
    # it is restarted, rather than answer "ok" for ever.
    async def fails() -> None:
        raise RuntimeError("an unforeseen bug")

    task = supervised(fails(), "router-follow", api.client.app[keys.TASKS])
    await asyncio.gather(task, return_exceptions=True)
    status, body = await documented_answer(api, "GET", "/v1/health", "/v1/health")
    assert status == 503
    assert body["error"]["code"] == "instance_stalled" and "router-follow" in body["error"]["message"]


async def test_tasks_that_end_well_or_are_cancelled_do_not_count(api: Api) -> None:
    async def quiet() -> None:
        await asyncio.sleep(3600)

    async def done() -> None:
        return None

    cancelled = supervised(quiet(), "router-decide", api.client.app[keys.TASKS])
    ended = supervised(done(), "router-instances", api.client.app[keys.TASKS])
    cancelled.cancel()  # a leader stepping down cancels its routing loop: routine
    await asyncio.gather(cancelled, ended, return_exceptions=True)
    status, body = await api.get("/v1/health", headers={})
    assert status == 200, body
