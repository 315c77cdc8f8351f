"""Gateways through the real server and a real PostgreSQL: every channel, signatures, bad input."""

from __future__ import annotations

import asyncio
import copy
import json
import logging
from pathlib import Path
import time
import uuid
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from channels.native import example_events
from channels.security import sign, signed_headers
from policies.vocabulary import Channel
from router.app import build_app
from tests.e2e.conftest import ADMIN_TOKEN, SECRETS, Api, documented_answer, make_config


def fresh(example: dict[str, Any], session: str) -> dict[str, Any]:
    """An example event with its own event id and session, so tests do not collide."""
    event = copy.deepcopy(example)
    event["event_id"] = f"{event['event_id']}-{uuid.uuid4().hex[:8]}"
    _set_session(event, session)
    return event


SESSION_FIELDS = ("call_id", "session_id", "room_id", "conversation_id")


def _set_session(node: Any, session: str) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            if key in SESSION_FIELDS and isinstance(value, str):
                node[key] = session
            else:
                _set_session(value, session)


@pytest.mark.parametrize("channel", [c.value for c in Channel])
async def test_every_example_event_of_a_channel_is_accepted_in_order(api: Api, channel: str) -> None:
    session = f"s-{uuid.uuid4().hex[:10]}"
    contact_ids = set()
    for example in example_events(Channel(channel)):
        status, body = await api.post_event(channel, fresh(example, session))
        assert status == 202, body
        assert isinstance(body["position"], int)
        contact_ids.add(body["contact_id"])
    assert len(contact_ids) == 1  # one session, one contact
    status, contact = await documented_answer(api, "GET", f"/v1/contacts/{contact_ids.pop()}",
                                              "/v1/contacts/{contact_id}")
    assert status == 200
    types = [e["type"] for e in contact["events"]]
    facts = [t for t in types if t != "GatewayEventIgnored"]  # e.g. call.ended after call.hung_up
    assert "ContactArrived" in facts and facts[-1] == "ContactEnded"
    assert contact["contact"]["status"] in ("ended", "abandoned")
    assert [e["version"] for e in contact["events"]] == list(range(1, len(types) + 1))
    for event in contact["events"]:
        assert "text" not in event["data"] and "caller_number" not in event["data"]


def phone_start(session: str, number: str = "+8613800001111", line: str = "+86955550000") -> dict[str, Any]:
    example = next(e for e in example_events(Channel.PHONE) if e["event_type"] == "call.started")
    event = fresh(example, session)
    event["caller"]["number"] = number
    return event


async def test_a_repeat_returns_the_first_answer_and_stores_nothing(api: Api) -> None:
    event = phone_start("dup-1")
    first = await api.post_event("phone", event)
    count = await api.event_count()
    again = await api.post_event("phone", event)
    assert first[0] == again[0] == 202
    assert again[1]["position"] == first[1]["position"] and again[1]["duplicate"] is True
    assert await api.event_count() == count


async def test_concurrent_duplicates_store_one_copy(api: Api) -> None:
    event = phone_start("dup-2")
    answers = await asyncio.gather(*(api.post_event("phone", event) for _ in range(12)))
    assert {a[0] for a in answers} == {202}
    assert len({a[1]["position"] for a in answers}) == 1
    status, contact = await api.get(f"/v1/contacts/{answers[0][1]['contact_id']}")
    assert len(contact["events"]) == await api.event_count()
    assert len([e for e in contact["events"] if e["metadata"]["gateway_event_id"] == event["event_id"]]) == len(contact["events"])


async def test_a_reused_event_id_with_another_body_is_a_conflict(api: Api) -> None:
    event = phone_start("reuse-1")
    status, first = await api.post_event("phone", event)
    assert status == 202
    count = await api.event_count()
    # The same event serialised again (keys reversed, other spacing) is a retry, not a conflict.
    again = json.dumps(dict(reversed(list(event.items()))), indent=2).encode()
    status, repeat = await api.post_event("phone", None, raw=again)
    assert status == 202 and repeat["position"] == first["position"] and repeat["duplicate"] is True, repeat
    assert await api.event_count() == count
    event["caller"]["number"] = "+8613900002222"
    status, body = await api.post_event("phone", event)
    assert (status, body["error"]["code"], body["error"]["field"]) == (409, "idempotency_conflict", "event_id")
    assert await api.event_count() == count


async def test_a_hang_up_before_the_start_and_a_retried_start(api: Api) -> None:
    session = "ooo-1"
    hung_up = next(e for e in example_events(Channel.PHONE) if e["event_type"] == "call.hung_up")
    assert (await api.post_event("phone", fresh(hung_up, session)))[0] == 202
    status, body = await api.post_event("phone", phone_start(session))  # the start arrives late
    assert status == 202 and body.get("ignored")
    status, again = await api.post_event("phone", phone_start(session))  # and is retried with a new id
    assert status == 202 and again.get("ignored")
    _, contact = await api.get(f"/v1/contacts/{body['contact_id']}")
    types = [e["type"] for e in contact["events"]]
    assert types.count("ContactArrived") == 0 and types.count("ContactEnded") == 1


async def test_a_burst_of_events_for_one_contact_is_taken_in_turn(api: Api) -> None:
    # Before: twelve messages of one conversation at once all appended at one version and
    # retried against each other; some ran out of attempts and got an undocumented 409.
    examples = {e["event_type"]: e for e in example_events(Channel.APP)}
    session = f"burst-{uuid.uuid4().hex[:8]}"
    assert (await api.post_event("app", fresh(examples["conversation.opened"], session)))[0] == 202
    messages = [fresh(examples["message.created"], session) for _ in range(12)]
    answers = await asyncio.gather(*(api.post_event("app", m) for m in messages))
    assert [a[0] for a in answers] == [202] * 12, answers
    _, contact = await api.get(f"/v1/contacts/{answers[0][1]['contact_id']}")
    received = [e for e in contact["events"] if e["type"] == "MessageReceived"]
    assert sorted(e["metadata"]["gateway_event_id"] for e in received) == sorted(m["event_id"] for m in messages)


async def test_a_compressed_body_is_refused_with_the_reason(api: Api) -> None:
    import gzip

    body = json.dumps(phone_start("gz-1")).encode()
    packed = gzip.compress(body)
    for signed_over in (packed, body):
        headers = {**signed_headers(signed_over, SECRETS["phone"][0], int(time.time())),
                   "Content-Type": "application/json", "Content-Encoding": "gzip"}
        async with api.client.post("/v1/channels/phone/events", data=packed, headers=headers) as resp:
            answer = await resp.json()
            # Before: 401 bad_signature whichever bytes were signed (the body was inflated, then cut).
            assert (resp.status, answer["error"]["code"]) == (415, "unsupported_content_encoding")
    assert await api.event_count() == 0


async def test_repeated_signature_headers_count_as_one_list(api: Api) -> None:
    from multidict import CIMultiDict

    body = json.dumps(phone_start("sig-list-1")).encode()
    stamp = int(time.time())
    good = signed_headers(body, SECRETS["phone"][0], stamp)
    wrong = signed_headers(body, "an-old-secret-0123456789", stamp)
    headers = CIMultiDict([("X-Router-Timestamp", str(stamp)), ("Content-Type", "application/json"),
                           ("X-Router-Signature", wrong["X-Router-Signature"]),
                           ("X-Router-Signature", good["X-Router-Signature"])])
    async with api.client.post("/v1/channels/phone/events", data=body, headers=headers) as resp:
        assert resp.status == 202, await resp.text()  # before: only the first header was read (401)


@pytest.mark.parametrize(
    "mutate,status,code,field",
    [
        (lambda e: e.pop("event_id"), 422, "missing_field", "event_id"),
        (lambda e: e.update(event_type="call.teleported"), 422, "unknown_event_type", "event_type"),
        (lambda e: e["caller"].update(number="not a number"), 422, "invalid_field", "caller.number"),
        (lambda e: e.update(surprise=1), 422, "invalid_field", "surprise"),
    ],
)
async def test_bad_events_name_the_field_and_store_nothing(api: Api, mutate: Any, status: int, code: str, field: str) -> None:
    event = phone_start("bad-1")
    mutate(event)
    got, body = await api.post_event("phone", event)
    assert (got, body["error"]["code"], body["error"]["field"]) == (status, code, field)
    assert await api.event_count() == 0


async def test_invalid_json_and_oversized_bodies(api: Api) -> None:
    status, body = await api.post_event("phone", None, raw=b'{"event_id": ')
    assert (status, body["error"]["code"]) == (400, "invalid_json")
    status, body = await api.post_event("phone", None, raw=b"{" + b" " * (300 * 1024) + b"}")
    assert (status, body["error"]["code"]) == (413, "payload_too_large")
    status, body = await api.post_event("fax", {"a": 1}, secret="x" * 20)
    assert (status, body["error"]["code"]) == (404, "unknown_channel")
    assert await api.event_count() == 0


async def test_signatures(api: Api) -> None:
    event = phone_start("sig-1")
    body = repr(event).encode()
    status, answer = await api.post_event("phone", event, secret="forged-secret-0123456789")
    assert status == 401 and answer["error"]["code"] == "bad_signature"
    status, answer = await api.post_event("phone", event, timestamp_s=int(time.time()) - 301)
    assert status == 401 and answer["error"]["code"] == "stale_timestamp"
    status, answer = await api.post_event("webchat", event)  # phone's body signed with the webchat secret
    assert status in (401, 422)
    async with api.client.post("/v1/channels/phone/events", data=body) as resp:
        assert resp.status == 401
    assert await api.event_count() == 0
    assert (await api.post_event("phone", event))[0] == 202


async def test_rotated_secrets_and_several_signatures(database_url: str) -> None:
    from tests.conftest import reset_database

    await reset_database(database_url)
    config = make_config(database_url)
    rotated = dict(config.credentials.gateway_secrets)
    rotated["phone"] = ("phone-new-secret-0123456789", "phone-old-secret-0123456789")
    from dataclasses import replace

    config = replace(config, credentials=replace(config.credentials, gateway_secrets=rotated))
    client = TestClient(TestServer(build_app(config)))
    await client.start_server()
    try:
        api = Api(client, database_url)
        assert (await api.post_event("phone", phone_start("rot-1"), secret="phone-old-secret-0123456789"))[0] == 202
        assert (await api.post_event("phone", phone_start("rot-2"), secret="phone-new-secret-0123456789"))[0] == 202
        import json as _json

        event = phone_start("rot-3")
        raw = _json.dumps(event).encode()
        now = int(time.time())
        both = f"{sign(raw, 'wrong-secret-000000000000', now)},{sign(raw, 'phone-new-secret-0123456789', now)}"
        headers = {"X-Router-Timestamp": str(now), "X-Router-Signature": both, "Content-Type": "application/json"}
        async with client.post("/v1/channels/phone/events", data=raw, headers=headers) as resp:
            assert resp.status == 202
    finally:
        await client.close()


async def test_a_rotation_written_to_the_secrets_file_applies_without_a_restart(database_url: str,
                                                                                 tmp_path: Path) -> None:
    from dataclasses import replace

    from router.config import GatewaySecrets
    from tests.conftest import reset_database

    await reset_database(database_url)
    old, new = "phone-old-secret-0123456789", "phone-new-secret-0123456789"
    path = tmp_path / "gateway-secrets.json"
    path.write_text(json.dumps({**{g: list(v) for g, v in SECRETS.items()}, "phone": old}))
    config = make_config(database_url)
    live = GatewaySecrets(path, check_every_s=0)  # every request looks (the server checks once a second)
    client = TestClient(TestServer(build_app(replace(config, credentials=replace(config.credentials,
                                                                                  gateway_secrets=live)))))
    await client.start_server()
    try:
        api = Api(client, database_url)
        assert (await api.post_event("phone", phone_start("live-1"), secret=old))[0] == 202
        assert (await api.post_event("phone", phone_start("live-2"), secret=new))[0] == 401
        for secrets, accepted in (([new, old], (new, old)), (new, (new,))):
            replacement = tmp_path / "next.json"
            replacement.write_text(json.dumps({**{g: list(v) for g, v in SECRETS.items()}, "phone": secrets}))
            replacement.replace(path)
            for i, secret in enumerate((new, old)):
                status, _ = await api.post_event("phone", phone_start(f"live-{secret[6:9]}-{len(accepted)}-{i}"),
                                                 secret=secret)
                assert status == (202 if secret in accepted else 401), (secrets, secret, status)
        path.write_text("{broken")  # a bad edit keeps the secrets in force instead of locking gateways out
        assert (await api.post_event("phone", phone_start("live-after-typo"), secret=new))[0] == 202
        assert await api.event_count() == 5
    finally:
        await client.close()


async def test_rate_limit_answers_429_with_retry_after(database_url: str) -> None:
    from tests.conftest import reset_database

    await reset_database(database_url)
    client = TestClient(TestServer(build_app(make_config(database_url, gateway_rate_per_s=1, gateway_burst=2))))
    await client.start_server()
    try:
        api = Api(client, database_url)
        for i in range(5):  # unsigned: refused, and they must not spend the real gateway's allowance
            async with client.post("/v1/channels/phone/events", json=phone_start(f"rl-forged-{i}")) as resp:
                assert resp.status == 401
        statuses, retry_after = [], []
        for i in range(4):
            raw = json.dumps(phone_start(f"rl-{i}")).encode()
            headers = {**signed_headers(raw, SECRETS["phone"][0], int(time.time())), "Content-Type": "application/json"}
            async with client.post("/v1/channels/phone/events", data=raw, headers=headers) as resp:
                statuses.append(resp.status)
                retry_after.append(resp.headers.get("Retry-After"))
        assert statuses[:2] == [202, 202] and 429 in statuses[2:], statuses
        assert int(retry_after[statuses.index(429)]) >= 1
        assert (await api.post_event("webchat", fresh(example_events(Channel.WEBCHAT)[0], "rl-w")))[0] == 202
        assert await api.event_count() == 3  # two phone starts and the web chat, nothing of the refused
    finally:
        await client.close()


async def test_a_gateway_without_a_configured_secret_is_refused_clearly(database_url: str) -> None:
    from dataclasses import replace

    from tests.conftest import reset_database

    await reset_database(database_url)
    config = make_config(database_url)
    secrets = {k: v for k, v in config.credentials.gateway_secrets.items() if k != "app"}
    client = TestClient(TestServer(build_app(replace(config, credentials=replace(config.credentials,
                                                                                   gateway_secrets=secrets)))))
    await client.start_server()
    try:
        api = Api(client, database_url)
        status, body = await api.post_event("app", fresh(example_events(Channel.APP)[0], "nosecret"),
                                            secret="any-secret-at-all-0123456789")
        assert (status, body["error"]["code"]) == (401, "gateway_not_configured"), body
        assert "app" in body["error"]["message"]
        assert await api.event_count() == 0
    finally:
        await client.close()


async def test_unknown_contact_is_404(api: Api) -> None:
    status, body = await api.get(f"/v1/contacts/{uuid.uuid4()}")
    assert (status, body["error"]["code"]) == (404, "contact_not_found")


async def test_who_may_read_a_contact(api: Api) -> None:
    """The admin, or the contact's own gateway signing the read; nobody else."""
    status, body = await api.post_event("phone", phone_start("reader-1"))
    assert status == 202
    path = f"/v1/contacts/{body['contact_id']}"
    now = int(time.time())
    assert (await api.get(path))[0] == 200  # the admin
    status, contact = await api.get(path, signed_headers(b"", SECRETS["phone"][0], now))
    assert status == 200 and contact["contact"]["channel"] == "phone"
    refused = [
        ({}, 401, "unauthorized"),
        ({"Authorization": "Bearer not-the-token"}, 401, "unauthorized"),
        (signed_headers(b"", SECRETS["webchat"][0], now), 403, "forbidden"),  # another channel's gateway
        (signed_headers(b"", SECRETS["phone"][0], now - 3600), 401, "stale_timestamp"),  # a replayed read
        (signed_headers(b"", "x" * 32, now), 401, "bad_signature"),
        (signed_headers(b"{}", SECRETS["phone"][0], now), 401, "bad_signature"),  # signed another body
    ]
    for headers, want_status, code in refused:
        status, answer = await api.get(path, headers)
        assert (status, answer["error"]["code"]) == (want_status, code), headers
        assert "events" not in answer



async def test_logs_never_hold_a_full_phone_number_or_a_message_text(database_url: str,
                                                                      caplog: pytest.LogCaptureFixture) -> None:
    """Every channel's events, refused ones and a customer import, with the router deciding,
    at DEBUG on every logger: no record holds a caller's number or what a customer wrote."""
    from tests.conftest import reset_database

    await reset_database(database_url)
    number, words = "+8613955501234", "my secret complaint about card 6222 0212 3456 7890"
    caplog.set_level(logging.DEBUG)
    client = TestClient(TestServer(build_app(make_config(database_url, lead=True))))
    await client.start_server()
    try:
        api = Api(client, database_url)
        headers = {"Authorization": f"Bearer {ADMIN_TOKEN}", "Content-Type": "application/x-ndjson"}
        line = json.dumps({"customer_id": "C7700001", "phone_numbers": [number, "+8613955509999x"]})
        async with client.post("/v1/customers/import", data=f"{line}\n{json.dumps({'customer_id': 'C7700002', 'phone_numbers': [number]})}\n",
                               headers=headers) as resp:
            assert resp.status == 200
        for channel in Channel:
            session = f"logs-{channel.value}"
            for example in example_events(channel):
                event = json.loads(json.dumps(fresh(example, session)).replace("+8613812345678", number))
                _replace_texts(event, words)
                assert (await api.post_event(channel.value, event))[0] == 202
                broken = copy.deepcopy(event)
                broken["occurred_at"] = words  # refused (422): the message must not echo the input either
                assert (await api.post_event(channel.value, broken))[0] == 422
        status, _ = await api.post_event("phone", raw=f'{{"caller": "{number}", "text": "{words}"'.encode(),
                                         payload=None)
        assert status == 400
        await asyncio.sleep(0.3)  # the router's follower and decisions log what they do
    finally:
        await client.close()
    logged = "\n".join(f"{r.getMessage()} {r.exc_text or ''}" for r in caplog.records)
    assert len(caplog.records) > 10, "the check needs the server to have logged something"
    digits = number.lstrip("+")
    assert digits not in logged and digits[-9:] not in logged, [m for m in logged.splitlines() if digits[-9:] in m][:3]
    assert "secret complaint" not in logged and "6222" not in logged


def _replace_texts(node: Any, words: str) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "text" and isinstance(value, str):
                node[key] = words
            else:
                _replace_texts(value, words)
    elif isinstance(node, list):
        for item in node:
            _replace_texts(item, words)
