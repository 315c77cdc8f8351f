"""Contacts meet agents through the real server: gateway events in, desk websockets out."""

from __future__ import annotations

import asyncio
import copy
import json
import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timezone
from typing import Any

import asyncpg
import pytest
import websockets
from aiohttp.test_utils import TestClient, TestServer

from channels.native import example_events
from policies.vocabulary import Channel
from router.app import build_app
from tests.conftest import reset_database
from tests.e2e.conftest import ADMIN_TOKEN, Api, make_config


@pytest.fixture
async def routed(database_url: str) -> AsyncIterator[Api]:
    await reset_database(database_url)
    client = TestClient(TestServer(build_app(make_config(database_url, lead=True))))
    await client.start_server()
    yield Api(client, database_url)
    await client.close()


class Desk:
    def __init__(self, ws: Any) -> None:
        self.ws = ws

    async def send(self, **message: Any) -> None:
        await self.ws.send(json.dumps(message))

    async def expect(self, type_: str, timeout_s: float = 10) -> dict[str, Any]:
        async with asyncio.timeout(timeout_s):
            while True:
                message = json.loads(await self.ws.recv())
                if message["type"] == type_:
                    return dict(message)
                if message["type"] == "error" and type_ != "error":
                    raise AssertionError(f"unexpected error frame: {message}")


async def new_agent(api: Api, agent_id: str, **overrides: Any) -> str:
    body = {"id": agent_id, "name": agent_id.title(), "skills": {"general": 3, "fraud": 4, "credit_card": 3},
            "languages": ["zh", "en"], "channels": {"phone": 1, "webchat": 3}, **overrides}
    status, created = await api.admin("POST", "/v1/agents", json=body)
    assert status == 201, created
    status, token = await api.admin("POST", f"/v1/agents/{agent_id}/token")
    assert status == 201
    return str(token["token"])


async def open_desk(api: Api, token: str) -> tuple[Any, Desk]:
    url = f"ws://{api.client.host}:{api.client.port}/v1/agents/ws?token={token}"
    ws = await websockets.connect(url)
    desk = Desk(ws)
    hello = await desk.expect("hello")
    assert "state" in hello and "pending_offers" in hello
    return ws, desk


def call(session: str, intent: str = "credit_card") -> list[dict[str, Any]]:
    start, ivr = (copy.deepcopy(e) for e in example_events(Channel.PHONE)[:2])
    for event in (start, ivr):
        event["event_id"] = f"{event['event_id']}-{uuid.uuid4().hex[:8]}"
        event["call_id"] = session
        event["occurred_at"] = datetime.now(timezone.utc).isoformat()
    start["caller"]["number"] = "+8613911112222"
    ivr["ivr"]["verified_customer_id"] = None
    ivr["ivr"]["intent"] = intent
    return [start, ivr]


async def arrive(api: Api, session: str, intent: str = "credit_card") -> str:
    contact_id = ""
    for event in call(session, intent):
        status, body = await api.post_event("phone", event)
        assert status == 202, body
        contact_id = body["contact_id"]
    return contact_id


async def test_a_call_is_offered_accepted_completed_and_wrapped_up(routed: Api) -> None:
    ws, desk = await open_desk(routed, await new_agent(routed, "a1"))
    try:
        await desk.send(type="state", state="available", reason="start of shift")
        assert (await desk.expect("state"))["state"] == "available"
        contact_id = await arrive(routed, "route-1")
        offer = await desk.expect("offer")
        assert offer["contact"]["id"] == contact_id and offer["contact"]["channel"] == "phone"
        assert offer["expires_at"] and offer["reasons"]
        await desk.send(type="accept", offer_id=offer["offer_id"])
        assigned = await desk.expect("assigned")
        assert assigned == {"type": "assigned", "offer_id": offer["offer_id"], "contact_id": contact_id}
        await desk.send(type="complete", contact_id=contact_id, disposition="resolved")
        ended = await desk.expect("contact_ended")
        assert ended["contact_id"] == contact_id
        await desk.send(type="wrapup_done")
        state = await desk.expect("state")
        assert state["in_wrapup"] is False or state["state"] == "available"
        _, contact = await routed.get(f"/v1/contacts/{contact_id}")
        types = [e["type"] for e in contact["events"]]
        for expected in ("ContactQueued", "OfferMade", "OfferAccepted", "ContactAssigned", "ContactCompleted"):
            assert expected in types
        made = next(e for e in contact["events"] if e["type"] == "OfferMade")
        assert made["data"]["considered"]["strategy"] and made["data"]["reasons"]
        # Every event says who, in answer to what, on which channel and when (the brief).
        for event in contact["events"]:
            assert {"correlation_id", "causation_id", "actor", "channel", "received_at"} <= event["metadata"].keys(), event
            assert event["metadata"]["correlation_id"] == contact_id and event["metadata"]["channel"] == "phone"
        by_type = {e["type"]: e for e in contact["events"]}
        ids = {e["version"]: e for e in contact["events"]}
        queued = by_type["ContactQueued"]
        # The placement answers the arrival, the version just before it on the stream.
        assert queued["metadata"]["causation_id"] == ids[queued["version"] - 1]["event_id"]
        assert queued["metadata"]["actor"].startswith("router:")
        assert by_type["OfferAccepted"]["metadata"]["actor"] == "agent:a1"
        conn = await asyncpg.connect(routed.dsn)
        try:  # the same for every event in the log: agents', the policy's, the leader's
            rows = await conn.fetch("SELECT stream_id, type, metadata FROM events")
        finally:
            await conn.close()
        assert {r["stream_id"].split("-")[0] for r in rows} >= {"contact", "agent", "policy", "router"}
        for row in rows:
            assert {"correlation_id", "causation_id", "actor", "channel", "received_at"} <= json.loads(row["metadata"]).keys(), row
    finally:
        await ws.close()


async def test_a_reject_goes_to_the_next_agent(routed: Api) -> None:
    ws1, desk1 = await open_desk(routed, await new_agent(routed, "a1"))
    await desk1.send(type="state", state="available")
    await desk1.expect("state")
    ws2, desk2 = await open_desk(routed, await new_agent(routed, "a2"))
    await desk2.send(type="state", state="available")
    await desk2.expect("state")
    try:
        await arrive(routed, "route-2")
        first = await desk1.expect("offer")  # a1 has been idle longest
        await desk1.send(type="reject", offer_id=first["offer_id"], reason="on a break")
        revoked = await desk1.expect("offer_revoked")
        assert revoked["offer_id"] == first["offer_id"]
        second = await desk2.expect("offer")
        assert second["contact"]["id"] == first["contact"]["id"]
    finally:
        await ws1.close()
        await ws2.close()


async def test_a_transfer_over_the_desk_is_checked_then_offered_to_the_named_agent(routed: Api) -> None:
    ws1, desk1 = await open_desk(routed, await new_agent(routed, "a1"))
    await desk1.send(type="state", state="available")
    await desk1.expect("state")
    ws2, desk2 = await open_desk(routed, await new_agent(routed, "a2", channels={"phone": 1}))
    try:
        contact_id = await arrive(routed, "route-transfer")
        offer = await desk1.expect("offer")  # a2 is still away
        await desk1.send(type="accept", offer_id=offer["offer_id"])
        await desk1.expect("assigned")
        await desk1.send(type="transfer", contact_id=contact_id, to_queue="no-such-queue", note="x")
        error = await desk1.expect("error")
        assert (error["code"], error["ref"]) == ("unknown_queue", contact_id), error
        await desk2.send(type="state", state="available")
        await desk2.expect("state")
        await desk1.send(type="transfer", contact_id=contact_id, to_agent="a2", note="needs a colleague")
        handed = await desk2.expect("offer")
        assert handed["contact"]["id"] == contact_id
        _, contact = await routed.get(f"/v1/contacts/{contact_id}")
        moved = [e for e in contact["events"] if e["type"] == "ContactTransferred"]
        assert len(moved) == 1 and moved[0]["data"]["to_agent"] == "a2"  # the refused one left nothing
    finally:
        await ws1.close()
        await ws2.close()


@pytest.mark.parametrize("raw,code", [
    ("not json", "invalid_json"),
    ('["a list"]', "invalid_message"),
    ('{"no": "type"}', "invalid_message"),
    ('{"type": "teleport"}', "unknown_type"),
    ('{"type": "accept"}', "invalid_message"),
    ('{"type": "accept", "offer_id": "someone-elses"}', "offer_not_pending"),
    ('{"type": "complete", "contact_id": "c-x", "disposition": "done"}', "not_your_contact"),
    ('{"type": "state", "state": "asleep"}', "invalid_state"),
    ('{"type": "wrapup_done"}', "not_in_wrapup"),
    ('{"type": "transfer", "contact_id": "c-x", "to_queue": "vip", "note": "%s"}' % ("x" * 100_000),
     "message_too_large"),  # over 64 KiB: an error frame, not a closed connection
    ('{"type": "transfer", "contact_id": "c-x", "to_queue": "vip", "note": "%s"}' % ("说" * 30_000),
     "message_too_large"),  # 90 KB of CJK in 30,000 characters: the limit is of bytes
    ('{"type": "state", "state": "available", "reason": "back\\u0000"}', "invalid_message"),  # a NUL
])
async def test_bad_messages_get_error_frames_and_the_desk_stays_open(routed: Api, raw: str, code: str) -> None:
    ws, desk = await open_desk(routed, await new_agent(routed, "a1"))
    try:
        await ws.send(raw)
        error = await desk.expect("error")
        assert error["code"] == code and error["message"] and "ref" in error  # the brief: code, message, ref
        await desk.send(type="state", state="away", reason="still here")
        assert (await desk.expect("state"))["state"] == "away"  # the connection still works
    finally:
        await ws.close()


async def test_a_command_the_store_cannot_take_gets_an_error_frame_and_the_desk_stays_open(routed: Api) -> None:
    """The database refusing every append (here: the append function renamed away, which the
    store reports as unavailable) must not drop the desk: an `unavailable` error, nothing
    changed, and the same command works once the database is back."""
    ws, desk = await open_desk(routed, await new_agent(routed, "a1"))
    conn = await asyncpg.connect(routed.dsn)
    try:
        # The agent's own stream: the desk's commands are its only writer here (the leader
        # may still be writing its election and the policy's events elsewhere).
        mine = "SELECT count(*) FROM events WHERE stream_id LIKE 'agent-%:a1'"
        before = await conn.fetchval(mine)
        await conn.execute("ALTER FUNCTION cr_append RENAME TO cr_append_away")
        try:
            await desk.send(type="state", state="away", reason="lunch", ref="r-1")
            error = await desk.expect("error")
            assert (error["code"], error["ref"]) == ("unavailable", "r-1"), error
            assert await conn.fetchval(mine) == before
        finally:
            await conn.execute("ALTER FUNCTION cr_append_away RENAME TO cr_append")
        await desk.send(type="state", state="away", reason="lunch")
        assert (await desk.expect("state"))["state"] == "away"  # the same connection, working again
    finally:
        await conn.close()
        await ws.close()


async def test_an_agent_body_sent_in_pieces_is_read_whole(routed: Api) -> None:
    body = json.dumps({"id": "slow", "name": "Slow", "skills": {"fraud": 3}, "languages": ["zh"],
                       "channels": {"phone": 1}}).encode()
    reader, writer = await asyncio.open_connection(routed.client.host, routed.client.port)
    try:
        writer.write(b"POST /v1/agents HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Authorization: Bearer " + ADMIN_TOKEN.encode() + b"\r\n"
                     b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body) + body[:10])
        await writer.drain()
        await asyncio.sleep(0.2)  # the server has the first piece and waits for the rest
        writer.write(body[10:])
        await writer.drain()
        status_line = await reader.readline()
    finally:
        writer.close()
    assert b" 201 " in status_line, status_line


async def test_a_new_token_closes_a_desk_opened_with_the_old_one(routed: Api) -> None:
    # Before: a new token refused new desks with the old one, but a desk already open with it
    # (a leaked token in use) kept working and could still take and complete contacts.
    old_token = await new_agent(routed, "a1")
    ws, desk = await open_desk(routed, old_token)
    status, issued = await routed.admin("POST", "/v1/agents/a1/token")
    assert status == 201
    error = await desk.expect("error")
    assert error["code"] == "token_revoked"
    async with asyncio.timeout(5):
        await ws.wait_closed()
    assert ws.close_code == 4001
    new_ws, new_desk = await open_desk(routed, issued["token"])  # the new token works
    await new_ws.close()


async def test_desk_needs_a_valid_token(routed: Api) -> None:
    await new_agent(routed, "a1")
    with pytest.raises(websockets.exceptions.InvalidStatus) as info:
        await websockets.connect(f"ws://{routed.client.host}:{routed.client.port}/v1/agents/ws?token=nope")
    assert info.value.response.status_code == 401


async def test_agents_api_validates_and_records_changes(routed: Api) -> None:
    status, body = await routed.admin("POST", "/v1/agents", json={"id": "x", "name": "X", "skills": {"fraud": 9},
                                                                  "languages": ["zh"], "channels": {"phone": 1}})
    assert status == 422 and body["error"]["field"] == "skills.fraud"
    status, body = await routed.admin("POST", "/v1/agents", json={"id": "x", "name": "X", "skills": {},
                                                                  "languages": ["zh"], "channels": {"fax": 1}})
    assert status == 422 and body["error"]["field"].startswith("channels")
    await new_agent(routed, "a1")
    status, body = await routed.admin("POST", "/v1/agents", json={"id": "a1", "name": "again", "skills": {},
                                                                  "languages": ["zh"], "channels": {"phone": 1}})
    assert (status, body["error"]["code"]) == (409, "agent_exists")
    status, body = await routed.admin("PATCH", "/v1/agents/a1", json={"skills": {"sign_language": 4}})
    assert status == 200 and body["skills"] == {"sign_language": 4}
    status, body = await routed.admin("PATCH", "/v1/agents/nobody", json={"skills": {}})
    assert status == 404
    # A total never given follows the channels; one the admin gave stays.
    status, body = await routed.admin("PATCH", "/v1/agents/a1", json={"channels": {"phone": 1, "webchat": 3}})
    assert status == 200 and body["total_capacity"] == 3, body
    status, body = await routed.admin("PATCH", "/v1/agents/a1", json={"total_capacity": 2})
    status, body = await routed.admin("PATCH", "/v1/agents/a1", json={"channels": {"phone": 1, "webchat": 4}})
    assert status == 200 and body["total_capacity"] == 2, body
    status, listing = await routed.admin("GET", "/v1/agents")
    assert [a["id"] for a in listing["agents"]] == ["a1"]
    async with routed.client.get("/v1/agents", headers={"Authorization": "Bearer wrong"}) as resp:
        assert resp.status == 401


@pytest.mark.parametrize("field", ["name", "skills", "languages", "channels", "total_capacity"])
async def test_a_patch_cannot_clear_what_an_agent_needs(routed: Api, field: str) -> None:
    await new_agent(routed, "a1")
    stream = "SELECT count(*) FROM events WHERE stream_id = 'agent-default:a1'"  # the leader writes too
    conn = await asyncpg.connect(routed.dsn)
    before = await conn.fetchval(stream)
    status, body = await routed.admin("PATCH", "/v1/agents/a1", json={field: None})
    assert (status, body["error"]["code"], body["error"]["field"]) == (422, "invalid_field", field), body
    status, body = await routed.admin("PATCH", "/v1/agents/a1", json={"channels": {"phone": 0}})
    assert (status, body["error"]["field"]) == (422, "channels"), body
    # Named as a document path, as the policy endpoints do, with every problem listed.
    status, body = await routed.admin("PATCH", "/v1/agents/a1", json={"skills": {"Fraud": 4}, "languages": [1]})
    assert (status, body["error"]["field"]) == (422, "skills.Fraud"), body
    assert not body["error"]["message"].startswith("skills.Fraud: Value error"), body
    assert [e["field"] for e in body["error"]["details"]["errors"]] == ["skills.Fraud", "languages[0]"], body
    assert await conn.fetchval(stream) == before, "nothing stored for a refused change"
    await conn.close()
    status, body = await routed.admin("PATCH", "/v1/agents/a1", json={"team": None, "supervisor": None})
    assert status == 200 and body["team"] is None and body["name"] == "A1", body


async def test_queue_figures_and_metrics(routed: Api) -> None:
    ws, desk = await open_desk(routed, await new_agent(routed, "a1"))
    try:
        await desk.send(type="state", state="available")
        await desk.expect("state")
        await arrive(routed, "fig-1")
        offer = await desk.expect("offer")
        await desk.send(type="accept", offer_id=offer["offer_id"])
        await desk.expect("assigned")
        await arrive(routed, "fig-2")  # no free agent now: it waits
        for _ in range(100):
            status, body = await routed.admin("GET", "/v1/queues")
            queue = next(q for q in body["queues"] if q["queue"] == offer["contact"]["queue"])
            if queue["waiting"] == 1:
                break
            await asyncio.sleep(0.05)
        assert status == 200 and body["leader"] is True
        assert queue["waiting"] == 1 and queue["in_progress"] == 1
        assert queue["today"]["answered"] == 1 and queue["today"]["service_level_pct"] == 100.0
        assert queue["agents"]["busy"] == 1
        async with routed.client.get("/metrics") as resp:
            text = await resp.text()
        assert resp.status == 200
        assert resp.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
        name = queue["queue"]
        for line in (f'router_queue_waiting{{queue="{name}"}} 1.0', f'router_queue_in_progress{{queue="{name}"}} 1.0',
                     f'router_queue_answered_today{{queue="{name}"}} 1.0',
                     f'router_queue_service_level_today_ratio{{queue="{name}"}} 1.0',
                     f'router_queue_service_level_ratio{{queue="{name}"}} 1.0'):
            assert line in text, line
        lag = float(next(x for x in text.splitlines() if x.startswith("router_event_lag_seconds ")).split()[1])
        assert 0.0 <= lag < 5.0  # how late the newest event was applied, not the age of the log
        assert "router_decision_round_seconds_p99" in text and "router_seconds_since_last_event" in text
        assert "router_websocket_connections 1.0" in text and "router_is_leader 1.0" in text
    finally:
        await ws.close()


@pytest.mark.parametrize("path,needle", [("/desk", "Agent desk"), ("/admin", "supervisor")])
async def test_pages_are_served(routed: Api, path: str, needle: str) -> None:
    async with routed.client.get(path) as resp:
        assert resp.status == 200 and needle in await resp.text()
        assert "default-src 'self'" in resp.headers["Content-Security-Policy"]
        assert "frame-ancestors 'none'" in resp.headers["Content-Security-Policy"]
        assert resp.headers["X-Frame-Options"] == "DENY"


async def test_an_agent_token_on_an_admin_endpoint_is_forbidden(routed: Api) -> None:
    token = await new_agent(routed, "a1")
    async with routed.client.get("/v1/agents", headers={"Authorization": f"Bearer {token}"}) as resp:
        body = await resp.json()
    assert (resp.status, body["error"]["code"]) == (403, "forbidden")


FAST_OFFERS = """# offers expire after a second
queues:
  - {id: general, sla: {answer_within_s: 20, target_pct: 80}}
rules:
  - {id: everyone, queue: general, offer_timeout_s: 1}
"""


async def test_an_unanswered_offer_expires_and_goes_to_the_next_agent(routed: Api) -> None:
    """Through the real server and its scheduler: a desk that never answers loses the offer."""
    status, body = await routed.admin("PUT", "/v1/policies", data=FAST_OFFERS.encode(),
                                      headers={"Content-Type": "application/yaml", "If-Match": '"1"'})
    assert status == 201, body
    ws1, silent = await open_desk(routed, await new_agent(routed, "a1"))
    ws2, other = await open_desk(routed, await new_agent(routed, "a2"))
    try:
        await silent.send(type="state", state="available")
        await silent.expect("state")
        contact_id = await arrive(routed, "expiry-1")
        offer = await silent.expect("offer")
        assert offer["contact"]["id"] == contact_id
        await other.send(type="state", state="available")  # a2 comes in after the offer went to a1
        revoked = await silent.expect("offer_revoked", timeout_s=5)
        assert (revoked["offer_id"], revoked["reason"]) == (offer["offer_id"], "expired")
        second = await other.expect("offer", timeout_s=5)
        assert second["contact"]["id"] == contact_id and second["offer_id"] != offer["offer_id"]
        await silent.send(type="accept", offer_id=offer["offer_id"])  # too late
        error = await silent.expect("error")
        assert error["code"] == "offer_not_pending", error
    finally:
        await ws1.close()
        await ws2.close()
