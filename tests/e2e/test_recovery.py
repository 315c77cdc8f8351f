"""Recovery, proven: kill -9 the router under load, restart it, then check the whole log."""

from __future__ import annotations

import asyncio
import random
import time
from pathlib import Path

import aiohttp
import pytest

from eventstore.postgres import PostgresEventStore
from router.check import check_log
from tests.conftest import reset_database
from tests.e2e.harness import Server, desks, free_port, phone_call, post_signed, request

CONTACTS = 120
KILLS = 5


async def contact_statuses(dsn: str) -> dict[str, str]:
    store = await PostgresEventStore.connect(dsn)
    try:
        rows = await store.pool.fetch(
            "SELECT stream_id, array_agg(type ORDER BY version) AS types FROM events "
            "WHERE category = 'contact' GROUP BY stream_id")
    finally:
        await store.close()
    return {r["stream_id"]: ("completed" if "ContactCompleted" in r["types"] else r["types"][-1]) for r in rows}


async def gateway(base_url: str, rng: random.Random, sent: list[str]) -> None:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as http:
        for i in range(CONTACTS):
            for channel, event in phone_call(f"kill-{i:04d}", rng.choice(["credit_card", "loan"])):
                await post_signed(http, base_url, channel, event)
            sent.append(f"kill-{i:04d}")
            await asyncio.sleep(rng.uniform(0.0, 0.06))


@pytest.mark.slow
@pytest.mark.timeout(300)
async def test_kill_9_at_random_moments_loses_nothing_and_assigns_nothing_twice(database_url: str,
                                                                               tmp_path: Path) -> None:
    await reset_database(database_url)
    rng = random.Random(20261122)
    server = Server(database_url, free_port(), tmp_path)
    await server.start()
    try:
        async with desks(server.url, count=6, seed=7):
            sent: list[str] = []
            load = asyncio.create_task(gateway(server.url, rng, sent))
            for _ in range(KILLS):
                await asyncio.sleep(rng.uniform(0.5, 1.5))
                await server.kill()
                await asyncio.sleep(rng.uniform(0.0, 0.5))
                await server.start()
            await asyncio.wait_for(load, 120)
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline:
                statuses = await contact_statuses(database_url)
                if len(statuses) == CONTACTS and all(s == "completed" for s in statuses.values()):
                    break
                await asyncio.sleep(0.5)
    finally:
        await server.stop()
    statuses = await contact_statuses(database_url)
    unfinished = {k: v for k, v in statuses.items() if v != "completed"}
    assert len(statuses) == CONTACTS, "a contact was lost"
    assert not unfinished, f"{len(unfinished)} contacts never completed, e.g. {list(unfinished.items())[:5]}"
    store = await PostgresEventStore.connect(database_url)
    try:
        report = await check_log(store, time.time())
    finally:
        await store.close()
    assert report["ok"], report["violations"]
    assert report["assigned"] >= CONTACTS


@pytest.mark.slow
@pytest.mark.timeout(180)
async def test_a_standby_takes_over_within_five_seconds(database_url: str, tmp_path: Path) -> None:
    await reset_database(database_url)
    leader = Server(database_url, free_port(), tmp_path)
    await leader.start()
    standby = Server(database_url, free_port(), tmp_path)
    await standby.start()
    try:
        async with aiohttp.ClientSession() as http:
            assert (await request(http, "GET", f"{leader.url}/v1/queues"))[1]["leader"] is True
            assert (await request(http, "GET", f"{standby.url}/v1/queues"))[1]["leader"] is False
            async with desks(standby.url, count=2, seed=3) as agents:
                await leader.kill()
                killed_at = time.monotonic()
                for channel, event in phone_call("takeover-1", "credit_card"):
                    await post_signed(http, standby.url, channel, event)
                while not any(d.completed for d in agents):
                    assert time.monotonic() - killed_at < 5.0, "the standby did not take over within 5 s"
                    await asyncio.sleep(0.05)
            assert (await request(http, "GET", f"{standby.url}/v1/queues"))[1]["leader"] is True
    finally:
        await standby.stop()
        await leader.stop()
