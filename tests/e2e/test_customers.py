"""The customer directory: import, enrichment of arrivals, repeat contacts, and the 503 path."""

from __future__ import annotations

import asyncio
import copy
import json
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import asyncpg
from aiohttp.test_utils import TestClient, TestServer

from channels.native import example_events
from channels.security import signed_headers
from policies.vocabulary import Channel
from router.api import keys
from router.app import build_app
from tests.e2e.conftest import SECRETS, Api, documented_answer, make_config

VIP = {"customer_id": "C9000001", "segment": "vip", "phone_numbers": ["+8613800009999"],
       "birth_date": "1950-02-01", "preferred_language": "zh", "dedicated_agent": "a-017",
       "callback_windows": ["after 15:00"]}
FOREIGN = {"customer_id": "C9000002", "segment": "wealth", "phone_numbers": ["+8613800008888"],
           "preferred_language": "ja", "languages": ["ja"]}
JSONL = "\n".join([json.dumps(VIP), json.dumps(FOREIGN), json.dumps({"customer_id": "C3", "segment": "platinum"})])


async def import_jsonl(api: Api, text: str, token: str | None = None) -> tuple[int, Any]:
    headers = {"Content-Type": "application/x-ndjson"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
        async with api.client.post("/v1/customers/import", data=text.encode(), headers=headers) as resp:
            return resp.status, await resp.json()
    return await documented_answer(api, "POST", "/v1/customers/import", "/v1/customers/import",
                                   data=text.encode(), headers=headers)


def call(number: str, session: str, *, at: datetime | None = None, language: str = "zh") -> list[dict[str, Any]]:
    start, ivr = (copy.deepcopy(e) for e in example_events(Channel.PHONE)[:2])
    when = (at or datetime.now(timezone.utc)).isoformat()
    for event in (start, ivr):
        event["event_id"] = f"{event['event_id']}-{uuid.uuid4().hex[:8]}"
        event["call_id"] = session
        event["occurred_at"] = when
    start["caller"]["number"] = number
    ivr["ivr"]["verified_customer_id"] = None
    ivr["ivr"]["intent"] = "complaint"
    ivr["ivr"]["language"] = language
    return [start, ivr]


async def arrival(api: Api, contact_id: str) -> dict[str, Any]:
    _, contact = await api.get(f"/v1/contacts/{contact_id}")
    arrived = [e for e in contact["events"] if e["type"] in ("ContactArrived",)]
    assert arrived, [e["type"] for e in contact["events"]]
    data = dict(arrived[0]["data"])
    for change in (e for e in contact["events"] if e["type"] == "ContactIntentChanged"):
        data.update(intent=change["data"]["intent"], repeat_count=change["data"]["repeat_count"])
    return data


async def wait_for_directory(api: Api, customer_id: str) -> None:
    state = api.client.app[keys.CUSTOMERS]
    for _ in range(100):
        if state.directory.get(customer_id) is not None:
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the import never reached the directory")


async def test_import_reports_rejected_lines_and_is_idempotent(api: Api) -> None:
    status, report = await import_jsonl(api, JSONL)
    assert status == 200, report
    assert report["stored"] == 2 and report["unchanged"] == 0
    assert [(r["line"], r["field"]) for r in report["rejected"]] == [(3, "segment")]
    count = await api.event_count()
    status, again = await import_jsonl(api, JSONL)
    assert (status, again["stored"], again["unchanged"]) == (200, 0, 2)
    assert await api.event_count() == count


async def test_import_needs_the_admin_token_and_a_valid_file(api: Api) -> None:
    assert (await import_jsonl(api, JSONL, token="wrong-token"))[0] == 401
    status, body = await import_jsonl(api, '{"customer_id": "C1", "segment": "gold"}')
    assert status == 422 and body["error"]["code"] == "nothing_to_import"
    assert body["error"]["details"]["rejected"][0]["field"] == "segment"
    assert await api.event_count() == 0
    status, body = await import_jsonl(api, '{"customer_id": "C1", "birth_date": "2090-01-01"}')
    assert status == 422 and body["error"]["details"]["rejected"][0]["field"] == "birth_date"


async def test_arrivals_are_enriched_from_the_directory(api: Api) -> None:
    await import_jsonl(api, JSONL)
    await wait_for_directory(api, "C9000002")
    for number, session, language in (("+8613800009999", "vip-1", "zh"), ("+8613800008888", "ja-1", "ja"),
                                      ("+8613700000000", "anon-1", "zh")):
        for event in call(number, session, language=language):
            assert (await api.post_event("phone", event))[0] == 202
    vip = await arrival(api, (await api.post_event("phone", call("+8613800009999", "vip-1")[0]))[1]["contact_id"])
    assert vip["segment"] == "vip" and "elderly" in vip["needs"] and vip["dedicated_agent"] == "a-017"
    assert vip["callback_windows"] == [{"start_min": 900, "end_min": 1440}]
    ja = await arrival(api, (await api.post_event("phone", call("+8613800008888", "ja-1")[0]))[1]["contact_id"])
    assert ja["language"] == "ja" and ja["segment"] == "wealth" and "foreign" in ja["needs"]
    anon = await arrival(api, (await api.post_event("phone", call("+8613700000000", "anon-1")[0]))[1]["contact_id"])
    assert anon["segment"] == "mass" and anon["customer_id"] is None


async def repeat_counts(api: Api, customer_id: str, number: Callable[[int], str], verified: bool) -> list[int]:
    """Three complaint calls, an hour apart, each counted once the history knows the one before."""
    counts = []
    for i in range(3):
        events = call(number(i), f"{customer_id}-rep-{i}", at=datetime.now(timezone.utc) - timedelta(hours=3 - i))
        if verified:
            events[1]["ivr"]["verified_customer_id"] = customer_id
        for event in events:
            status, body = await api.post_event("phone", event)
            assert status == 202, body
        counts.append((await arrival(api, body["contact_id"]))["repeat_count"])
        state = api.client.app[keys.CUSTOMERS]
        for _ in range(100):  # the history learns of this contact from the log before the next call
            if sum(p.intent == "complaint" for p in state.history(customer_id)) == i + 1:
                break
            await asyncio.sleep(0.02)
    return counts


async def test_the_third_contact_about_the_same_issue_counts_three(api: Api) -> None:
    await import_jsonl(api, JSONL)
    await wait_for_directory(api, "C9000001")
    assert await repeat_counts(api, "C9000001", lambda i: "+8613800009999", verified=False) == [1, 2, 3]


async def test_a_customer_the_directory_does_not_know_has_repeat_contacts_counted_too(api: Api) -> None:
    """An IVR-verified customer id with no imported profile: the history is theirs all the same."""
    assert await repeat_counts(api, "C7770001", lambda i: f"+86137000011{i:02d}", verified=True) == [1, 2, 3]


async def test_an_unreachable_database_answers_503_and_stores_nothing(database_url: str) -> None:
    """The app runs as an ordinary role; mid-run its login is revoked and its sessions ended."""
    from tests.conftest import reset_database

    await reset_database(database_url)
    role = f"cr_app_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(database_url)
    await admin.execute(f"CREATE ROLE {role} LOGIN")
    await admin.execute(f"GRANT ALL ON ALL TABLES IN SCHEMA public TO {role}")
    await admin.execute(f"GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO {role}")
    base, _, rest = database_url.partition("://")
    app_dsn = f"{base}://{role}@{rest.split('@', 1)[1]}"
    client = TestClient(TestServer(build_app(make_config(app_dsn))))
    await client.start_server()
    api = Api(client, database_url)
    try:
        await admin.execute(f"ALTER ROLE {role} NOLOGIN")
        await admin.execute(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{role}'")
        event = call("+8613700000001", "down-1")[0]
        raw = json.dumps(event).encode()
        headers = {**signed_headers(raw, SECRETS["phone"][0], int(time.time())), "Content-Type": "application/json"}
        async with client.post("/v1/channels/phone/events", data=raw, headers=headers) as resp:
            status, body = resp.status, await resp.json()
            assert status == 503 and body["error"]["code"] == "store_unavailable", body
            assert body["error"]["message"] and int(resp.headers["Retry-After"]) >= 1
        async with client.get("/v1/health") as resp:
            assert resp.status == 503 and "Retry-After" in resp.headers
    finally:
        await client.close()
        await admin.execute(f"DROP OWNED BY {role}")
        await admin.execute(f"DROP ROLE {role}")
        await admin.close()
    assert await api.event_count() == 0
