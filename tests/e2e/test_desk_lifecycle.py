"""The agent's desk websocket through the real server: heartbeats, connection loss and its
grace period, one desk per agent, and messages that must be refused without harm."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
import websockets

from router.api import agents as agents_api
from tests.e2e.conftest import Api, leading_server
from tests.e2e.test_routing import Desk, arrive, new_agent, open_desk

GRACE_S = 1.0

FAST_OFFERS = """# offers expire after a second
queues:
  - {id: general, sla: {answer_within_s: 20, target_pct: 80}}
rules:
  - {id: everyone, queue: general, offer_timeout_s: 1}
"""


@pytest.fixture
async def routed(database_url: str) -> AsyncIterator[Api]:
    """A leading server with a short disconnect grace period."""
    async with leading_server(database_url, disconnect_grace_s=GRACE_S) as api:
        yield api


async def fast_offers(api: Api) -> None:
    status, body = await api.admin("PUT", "/v1/policies", data=FAST_OFFERS.encode(),
                                   headers={"Content-Type": "application/yaml", "If-Match": '"1"'})
    assert status == 201, body


async def available(desk: Desk) -> None:
    await desk.send(type="state", state="available")
    assert (await desk.expect("state"))["state"] == "available"


async def agent_view(api: Api, agent_id: str) -> dict[str, Any]:
    status, view = await api.admin("GET", f"/v1/agents/{agent_id}")
    assert status == 200
    return dict(view)


async def until(check: Any, timeout_s: float = 5.0) -> None:
    async with asyncio.timeout(timeout_s):
        while not await check():
            await asyncio.sleep(0.05)


async def test_a_deeply_nested_ref_gets_an_error_and_the_desk_keeps_working(routed: Api) -> None:
    """A malformed message whose ref cannot be written back (nested past the JSON writer's
    depth) killed the desk's writer: no error frame, and from then on no offer, state or
    ping ever reached the desk, while the socket stayed open and the agent available."""
    ws, desk = await open_desk(routed, await new_agent(routed, "a1"))
    try:
        deep = "[" * 300 + "]" * 300
        await ws.send('{"type": "accept", "offer_id": %s}' % deep)
        error = await desk.expect("error", timeout_s=5)
        assert error["code"] == "invalid_message"
        await desk.send(type="state", state="away", reason="still here")
        assert (await desk.expect("state", timeout_s=5))["state"] == "away"
        await ws.send('{"type": "state", "state": "available", "ref": %s}' % deep)
        assert (await desk.expect("state", timeout_s=5))["state"] == "available"
        await desk.send(type="state", state="away")
        assert (await desk.expect("state", timeout_s=5))["state"] == "away"
    finally:
        await ws.close()


async def test_a_silent_desk_is_closed_with_a_code_that_lets_it_reconnect(routed: Api, monkeypatch: Any) -> None:
    """A desk that stops answering pings (a laptop asleep, a stalled network) was closed with
    4001, the code that tells the desk its token was revoked: the desk page then stops and
    asks for a new token, instead of reconnecting."""
    monkeypatch.setattr(agents_api, "PING_EVERY_S", 0.2)
    monkeypatch.setattr(agents_api, "PONG_TIMEOUT_S", 0.5)
    ws, desk = await open_desk(routed, await new_agent(routed, "a1"))
    assert (await desk.expect("ping", timeout_s=5))["at"]
    async with asyncio.timeout(5):
        await ws.wait_closed()
    assert ws.close_code not in (4000, 4001, None), ws.close_code


async def test_a_desk_answering_pings_stays_open(routed: Api, monkeypatch: Any) -> None:
    monkeypatch.setattr(agents_api, "PING_EVERY_S", 0.1)
    monkeypatch.setattr(agents_api, "PONG_TIMEOUT_S", 0.5)
    ws, desk = await open_desk(routed, await new_agent(routed, "a1"))
    try:
        for _ in range(10):
            await desk.expect("ping", timeout_s=5)
            await desk.send(type="pong")
        await desk.send(type="state", state="away")
        assert (await desk.expect("state"))["state"] == "away"
    finally:
        await ws.close()


async def test_a_dropped_desk_keeps_its_offer_within_the_grace_period_and_gets_it_again(routed: Api) -> None:
    ws, desk = await open_desk(routed, token := await new_agent(routed, "a1"))
    await available(desk)
    contact_id = await arrive(routed, "grace-1")
    offer = await desk.expect("offer")
    await ws.close()
    await until(lambda: _not_connected(routed, "a1"))
    ws = await websockets.connect(f"ws://{routed.client.host}:{routed.client.port}/v1/agents/ws?token={token}")
    desk = Desk(ws)
    try:  # back within the grace period: told the offer again
        hello = await desk.expect("hello")
        assert [o["offer_id"] for o in hello["pending_offers"]] == [offer["offer_id"]]
        assert hello["pending_offers"][0]["contact"]["id"] == contact_id
        await asyncio.sleep(GRACE_S + 0.5)  # the grace period's timer must not fire for a desk that came back
        view = await agent_view(routed, "a1")
        assert view["state"] == "available" and view["connected"] and view["pending_offers"] == [offer["offer_id"]]
        await desk.send(type="accept", offer_id=offer["offer_id"])
        assert (await desk.expect("assigned"))["contact_id"] == contact_id
    finally:
        await ws.close()


async def _not_connected(api: Api, agent_id: str) -> bool:
    return not (await agent_view(api, agent_id))["connected"]


async def test_hello_after_a_reconnect_carries_pending_offers_and_active_contacts(routed: Api) -> None:
    ws, desk = await open_desk(routed, token := await new_agent(routed, "a1"))
    await available(desk)
    first = await arrive(routed, "hello-1", intent="credit_card")
    offer = await desk.expect("offer")
    await desk.send(type="accept", offer_id=offer["offer_id"])
    await desk.expect("assigned")
    await ws.close()
    ws = await websockets.connect(f"ws://{routed.client.host}:{routed.client.port}/v1/agents/ws?token={token}")
    try:
        hello = json.loads(await ws.recv())
        assert hello["type"] == "hello"
        assert [c["id"] for c in hello["active_contacts"]] == [first]
        assert hello["active_contacts"][0]["channel"] == "phone"
    finally:
        await ws.close()


async def test_past_the_grace_period_the_offer_goes_to_another_agent(routed: Api) -> None:
    ws1, desk1 = await open_desk(routed, token := await new_agent(routed, "a1"))
    await available(desk1)
    contact_id = await arrive(routed, "grace-2")
    offer = await desk1.expect("offer")
    ws2, desk2 = await open_desk(routed, await new_agent(routed, "a2"))
    try:
        await available(desk2)
        await ws1.close()
        second = await desk2.expect("offer", timeout_s=GRACE_S + 5)
        assert second["contact"]["id"] == contact_id
        view = await agent_view(routed, "a1")
        assert view["state"] == "disconnected" and view["pending_offers"] == []
        ws1, desk1 = await open_desk(routed, token)  # back too late: disconnected, told so
        await desk1.send(type="accept", offer_id=offer["offer_id"])
        assert (await desk1.expect("error"))["code"] == "offer_not_pending"
        await available(desk1)
    finally:
        await ws1.close()
        await ws2.close()


async def test_a_second_desk_replaces_the_first_and_the_agent_stays_connected(routed: Api) -> None:
    token = await new_agent(routed, "a1")
    ws1, desk1 = await open_desk(routed, token)
    await available(desk1)
    ws2, desk2 = await open_desk(routed, token)
    try:
        error = await desk1.expect("error")
        assert error["code"] == "replaced"
        async with asyncio.timeout(5):
            await ws1.wait_closed()
        assert ws1.close_code == 4000
        await asyncio.sleep(GRACE_S + 0.5)
        view = await agent_view(routed, "a1")
        assert view["connected"] and view["state"] == "available"
        contact_id = await arrive(routed, "two-desks")
        offer = await desk2.expect("offer")
        assert offer["contact"]["id"] == contact_id
    finally:
        await ws2.close()


async def test_binary_frames_get_an_error_and_huge_frames_close_with_1009(routed: Api) -> None:
    ws, desk = await open_desk(routed, await new_agent(routed, "a1"))
    await ws.send(b"\x00\x01binary")
    assert (await desk.expect("error"))["code"] == "invalid_message"
    await desk.send(type="state", state="away")
    assert (await desk.expect("state"))["state"] == "away"
    await ws.send("x" * (2 * 1024 * 1024))
    async with asyncio.timeout(5):
        await ws.wait_closed()
    assert ws.close_code == 1009


async def test_an_agent_who_misses_offers_in_a_row_is_set_away(routed: Api) -> None:
    await fast_offers(routed)
    ws, desk = await open_desk(routed, await new_agent(routed, "a1"))
    try:
        await available(desk)
        await arrive(routed, "missed-1")
        for _ in range(3):
            await desk.expect("offer", timeout_s=5)
            await desk.expect("offer_revoked", timeout_s=5)
        state = await desk.expect("state", timeout_s=5)
        assert state["state"] == "away"
    finally:
        await ws.close()


async def test_going_away_revokes_pending_offers_and_hands_them_on(routed: Api) -> None:
    ws1, desk1 = await open_desk(routed, await new_agent(routed, "a1"))
    ws2, desk2 = await open_desk(routed, await new_agent(routed, "a2"))
    try:
        await available(desk1)
        contact_id = await arrive(routed, "away-1")
        offer = await desk1.expect("offer")
        await available(desk2)
        await desk1.send(type="state", state="away", reason="break")
        revoked = await desk1.expect("offer_revoked")
        assert revoked["offer_id"] == offer["offer_id"]
        assert (await desk2.expect("offer"))["contact"]["id"] == contact_id
    finally:
        await ws1.close()
        await ws2.close()


async def test_accepting_another_agents_offer_is_refused_and_changes_nothing(routed: Api) -> None:
    ws1, desk1 = await open_desk(routed, await new_agent(routed, "a1"))
    ws2, desk2 = await open_desk(routed, await new_agent(routed, "a2"))
    try:
        await available(desk1)
        await arrive(routed, "theft-1")
        offer = await desk1.expect("offer")
        await desk2.send(type="accept", offer_id=offer["offer_id"])
        error = await desk2.expect("error")
        assert (error["code"], error["ref"]) == ("not_your_offer", offer["offer_id"])
        await desk2.send(type="reject", offer_id=offer["offer_id"])
        assert (await desk2.expect("error"))["code"] == "not_your_offer"
        assert (await agent_view(routed, "a1"))["pending_offers"] == [offer["offer_id"]]
        await desk1.send(type="accept", offer_id=offer["offer_id"])
        await desk1.expect("assigned")
        await desk2.send(type="complete", contact_id=offer["contact"]["id"], disposition="x")
        assert (await desk2.expect("error"))["code"] == "not_your_contact"
    finally:
        await ws1.close()
        await ws2.close()


async def test_a_state_the_agent_is_in_already_is_confirmed_and_not_recorded_again(routed: Api) -> None:
    import asyncpg

    ws, desk = await open_desk(routed, await new_agent(routed, "same-1"))
    try:
        await available(desk)
        await desk.send(type="state", state="available")  # a second click
        assert (await desk.expect("state"))["state"] == "available"
        await desk.send(type="state", state="away", reason="lunch")
        assert (await desk.expect("state"))["state"] == "away"
    finally:
        await ws.close()
    conn = await asyncpg.connect(routed.dsn)
    try:
        changes = await conn.fetch("SELECT data->>'state' AS state FROM events WHERE stream_id = "
                                   "'agent-default:same-1' AND type = 'AgentStateChanged' ORDER BY version")
    finally:
        await conn.close()
    assert [r["state"] for r in changes] == ["available", "away"]
