"""The policy admin API through the real server: versions as events, If-Match, validation,
rollback and simulation for the customers the brief names. Every rejection is checked in the store."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from eventstore.postgres import PostgresEventStore, StoreSettings
from policies.loader import default_policy_text, load_default_policy
from policies.vocabulary import AgentProfile, AgentSnapshot, Channel, Presence
from router.api import keys
from router.api import policies as policies_api
from router.api.auth import AGENT_TOKEN_CHECK
from router.api.errors import error_middleware
from router.policy_service import RosterProvider
from router.policy_service import PolicyService
from tests.conftest import reset_database
from tests.e2e.conftest import ADMIN_TOKEN, Api, make_config

STREAM = "policy-default:versions"
SHANGHAI = ZoneInfo("Asia/Shanghai")
MONDAY_10 = "2026-11-23T10:00:00+08:00"
DEFAULT = default_policy_text()
FASTER_VIP = DEFAULT.replace("sla: {answer_within_s: 10, target_pct: 90}, max_wait_s: 180",
                             "sla: {answer_within_s: 8, target_pct: 90}, max_wait_s: 180")
SMALL = """# a small policy
queues:
  - {id: general, sla: {answer_within_s: 20, target_pct: 80}}
  - {id: platinum, sla: {answer_within_s: 5, target_pct: 95}}
rules:
  - {id: vip_platinum, match: {segment: vip}, queue: platinum, priority: 900}
  - {id: everyone, queue: general, require: [{skill: general, min: 1}]}
"""
YAML = {"Content-Type": "application/yaml"}


async def stored(api: Api) -> list[dict[str, Any]]:
    """The policy stream, read straight from the database."""
    conn = await asyncpg.connect(api.dsn)
    try:
        rows = await conn.fetch("SELECT version, type, data, metadata FROM events WHERE stream_id = $1 "
                                "ORDER BY version", STREAM)
    finally:
        await conn.close()
    return [{"version": r["version"], "type": r["type"], "data": json.loads(r["data"]),
             "metadata": json.loads(r["metadata"])} for r in rows]


async def put(api: Api, text: str, if_match: str | None, *, content_type: str = "application/yaml",
              query: str = "") -> tuple[int, Any]:
    headers = {"Content-Type": content_type}
    if if_match is not None:
        headers["If-Match"] = if_match
    return await api.admin("PUT", f"/v1/policies{query}", data=io.BytesIO(text.encode()), headers=headers)


async def simulate(api: Api, body: Any) -> tuple[int, Any]:
    return await api.admin("POST", "/v1/policies/simulate", json=body)


def active_version(api: Api) -> int:
    return api.client.app[keys.POLICIES].active.current().version


def epoch(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


@asynccontextmanager
async def policies_only(dsn: str, provider: RosterProvider | None = None,
                        agent_tokens: Sequence[str] = ()) -> AsyncIterator[Api]:
    """A server with only the policy endpoints (no agents module), so a test decides whether
    there is a roster provider and which tokens are agents'."""
    await reset_database(dsn)
    config = make_config(dsn)
    app = web.Application(middlewares=[error_middleware])
    app[keys.SETTINGS], app[keys.CREDENTIALS] = config.settings, config.credentials
    app[AGENT_TOKEN_CHECK] = lambda token: token in agent_tokens
    if provider is not None:
        app[keys.ROSTER_PROVIDER] = provider

    async def resources(app: web.Application) -> AsyncIterator[None]:
        store = await PostgresEventStore.connect(dsn, StoreSettings(pool_min_size=1, pool_max_size=4))
        service = PolicyService(store)
        await service.start()
        app[keys.STORE], app[keys.POLICIES] = store, service
        yield
        await service.stop()
        await store.close()

    app.cleanup_ctx.append(resources)
    policies_api.add_routes(app)
    client = TestClient(TestServer(app))
    await client.start_server()
    try:
        yield Api(client, dsn)
    finally:
        await client.close()


# --- versions ----------------------------------------------------------------------------

async def test_the_default_policy_is_active_on_first_start(api: Api) -> None:
    async with api.client.get("/v1/policies/active", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}) as resp:
        body = await resp.json()
        assert (resp.status, resp.headers["ETag"]) == (200, '"1"')
    assert (body["version"], body["kind"], body["author"], body["active"]) == (1, "published", "system", True)
    assert body["name"] == "bank default policy" and body["source"] == DEFAULT
    assert body["document"] == load_default_policy().to_data()
    events = await stored(api)
    assert [(e["version"], e["type"], e["metadata"]["actor"]) for e in events] == [(1, "PolicyPublished", "system")]
    assert active_version(api) == 1


async def test_publish_with_if_match_makes_a_new_active_version(api: Api) -> None:
    status, body = await put(api, FASTER_VIP, '"1"', query="?comment=VIP%20answered%20faster")
    assert status == 201, body
    assert (body["version"], body["kind"], body["author"], body["comment"]) == (2, "published", "admin",
                                                                             "VIP answered faster")
    events = await stored(api)
    assert [(e["version"], e["type"]) for e in events] == [(1, "PolicyPublished"), (2, "PolicyPublished")]
    second = events[1]
    assert second["metadata"]["actor"] == "admin" and second["data"]["author"] == "admin"
    assert datetime.fromisoformat(second["data"]["at"]).tzinfo is not None
    assert second["data"]["source"] == FASTER_VIP  # YAML keeps its comments
    # The default policy has no warning of its own; with a live roster (no agents yet) it has gaps.
    assert second["data"]["warnings"] == body["warnings"]
    assert all(w["code"] == "roster_gap" for w in body["warnings"])
    policy = api.client.app[keys.POLICIES].active.current()
    assert (policy.version, policy.queue("vip").answer_within_s) == (2, 8)

    as_json = load_default_policy().to_data()
    as_json["name"] = "published as JSON"
    status, body = await put(api, json.dumps(as_json), "2", content_type="application/json")
    assert (status, body["version"]) == (201, 3)
    assert (await stored(api))[2]["data"]["source"] is None  # JSON: the document is all there is
    status, active = await api.admin("GET", "/v1/policies/active")
    assert (active["version"], active["name"]) == (3, "published as JSON")


async def test_concurrent_publishes_exactly_one_wins(api: Api) -> None:
    texts = [FASTER_VIP.replace("bank default policy", f"edit {i}") for i in range(5)]
    answers = await asyncio.gather(*(put(api, t, '"1"') for t in texts))
    statuses = sorted(status for status, _ in answers)
    assert statuses == [201, 409, 409, 409, 409]
    for status, body in answers:
        if status == 409:
            assert (body["error"]["code"], body["error"]["field"]) == ("version_conflict", "If-Match")
            assert body["error"]["details"] == {"current_version": 2, "based_on": 1}
            assert "version 2" in body["error"]["message"]
    assert [e["version"] for e in await stored(api)] == [1, 2]
    assert active_version(api) == 2


@pytest.mark.parametrize(("if_match", "status", "code"), [
    (None, 428, "if_match_required"), ("*", 400, "invalid_if_match"), ("v1", 400, "invalid_if_match"),
    ('"1", "2"', 400, "invalid_if_match"), ('"0"', 409, "version_conflict"), ("7", 409, "version_conflict"),
])
async def test_a_change_needs_the_version_it_was_based_on(api: Api, if_match: str | None, status: int,
                                                          code: str) -> None:
    got, body = await put(api, FASTER_VIP, if_match)
    assert (got, body["error"]["code"], body["error"]["field"]) == (status, code, "If-Match")
    assert len(await stored(api)) == 1 and active_version(api) == 1


INVALID = {
    "unknown overflow queue": ("""
queues:
  - {id: general, sla: {answer_within_s: 20, target_pct: 80}}
rules:
  - id: vip
    match: {segment: vip}
    queue: general
    escalate: [{after_s: 60, overflow: vip2}]
  - {id: everyone, queue: general}
""", "rules[0].escalate[0].overflow", "unknown queue 'vip2'"),
    "schema": ("""
queues:
  - {id: general, sla: {answer_within_s: 20, target_pct: 80}}
rules:
  - {id: vip, match: {segment: platinum}, queue: general}
  - {id: everyone, queue: general, priority: high}
""", "rules[0].match.segment[0]", "'mass', 'wealth', 'vip' or 'corporate'"),
    "overflow cycle": ("""
queues:
  - {id: general, sla: {answer_within_s: 20, target_pct: 80}}
  - {id: vip, sla: {answer_within_s: 10, target_pct: 90}, overflow_to: spill, max_wait_s: 60}
  - {id: spill, sla: {answer_within_s: 10, target_pct: 90}, overflow_to: vip, max_wait_s: 60}
rules:
  - {id: vip, match: {segment: vip}, queue: vip}
  - {id: everyone, queue: general}
""", "queues[1].overflow_to", "overflow cycle: vip -> spill -> vip"),
    "relaxes a hard requirement": ("""
queues:
  - {id: general, sla: {answer_within_s: 20, target_pct: 80}}
rules:
  - id: deaf
    match: {channel: video}
    queue: general
    require: [{skill: sign_language, min: 3, hard: true}]
    escalate: [{after_s: 60, relax: {skill: sign_language}}]
  - {id: everyone, queue: general}
""", "rules[0].escalate[0].relax", "relaxes hard requirement skill sign_language"),
    "no catch-all": ("""
queues:
  - {id: general, sla: {answer_within_s: 20, target_pct: 80}}
rules:
  - {id: vip, match: {segment: vip}, queue: general}
""", "rules", "no rule matches some contacts"),
    "not YAML": ("queues: [\n  - {id: general\n", None, "invalid YAML"),
    "duplicate key": ("rules: []\nrules: []\n", None, "duplicate key 'rules'"),
}


@pytest.mark.parametrize("case", list(INVALID))
async def test_an_invalid_policy_is_422_with_the_report_and_nothing_is_stored(api: Api, case: str) -> None:
    text, path, message = INVALID[case]
    status, body = await put(api, text, '"1"')
    error = body["error"]
    assert (status, error["code"], error["field"]) == (422, "invalid_policy", path)
    report = error["details"]
    assert report["ok"] is False and report["errors"] >= 1
    assert any(i["path"] == (path or "") and message in i["message"] for i in report["issues"]), report
    assert len(await stored(api)) == 1 and active_version(api) == 1


async def test_a_schema_report_lists_every_error(api: Api) -> None:
    status, body = await put(api, INVALID["schema"][0], "1")
    assert status == 422
    paths = [i["path"] for i in body["error"]["details"]["issues"]]
    assert paths == ["rules[0].match.segment[0]", "rules[1].priority"]
    assert "(and 1 more error)" in body["error"]["message"]


async def test_oversized_and_undecodable_policies(api: Api) -> None:
    huge = "# " + "x" * (1024 * 1024) + "\n"
    status, body = await put(api, huge, "1")
    assert (status, body["error"]["code"]) == (413, "payload_too_large")
    too_big_to_store = DEFAULT + "# " + "y" * (300 * 1024) + "\n"  # under 1 MiB, over the store's event limit
    status, body = await put(api, too_big_to_store, "1")
    assert (status, body["error"]["code"]) == (413, "policy_too_large")
    async with api.client.put("/v1/policies", data=b"\xff\xfe\x00bad", headers={
            "Authorization": f"Bearer {ADMIN_TOKEN}", "If-Match": "1", **YAML}) as resp:
        assert (resp.status, (await resp.json())["error"]["code"]) == (400, "invalid_encoding")
    status, body = await put(api, DEFAULT, "1", content_type="application/x-www-form-urlencoded")
    assert (status, body["error"]["code"], body["error"]["field"]) == (415, "unsupported_media_type", "Content-Type")
    status, body = await put(api, DEFAULT, "1", query="?comment=" + "c" * 2001)
    assert (status, body["error"]["field"]) == (400, "comment")
    assert len(await stored(api)) == 1


# --- validate ------------------------------------------------------------------------------

async def test_validate_reports_and_never_publishes(database_url: str) -> None:
    async with policies_only(database_url) as api:
        await _validate_reports_and_never_publishes(api)


async def _validate_reports_and_never_publishes(api: Api) -> None:
    status, report = await api.admin("POST", "/v1/policies/validate", data=DEFAULT.encode(), headers=YAML)
    assert status == 200 and (report["ok"], report["errors"], report["warnings"]) == (True, 0, 0)
    assert report["roster"] == {"source": "none", "agents": 0, "checked": False,
                                "note": "no roster is available: agent checks were skipped"}
    text, path, message = INVALID["unknown overflow queue"]
    status, report = await api.admin("POST", "/v1/policies/validate", data=text.encode(), headers=YAML)
    assert status == 200 and report["ok"] is False
    assert [(i["severity"], i["path"], i["message"]) for i in report["issues"]] == [("error", path, message)]
    shadowed = SMALL + "  - {id: never, match: {segment: mass}, queue: general}\n"
    status, report = await api.admin("POST", "/v1/policies/validate", data=shadowed.encode(), headers=YAML)
    assert report["ok"] is True and report["warnings"] == 1 and report["issues"][0]["path"] == "rules[2]"
    status, report = await api.admin("POST", "/v1/policies/validate", json=load_default_policy().to_data())
    assert (status, report["ok"]) == (200, True)
    assert len(await stored(api)) == 1 and await api.event_count() == 0


async def test_validate_against_a_given_roster_names_the_gap(api: Api) -> None:
    roster = [{"id": "a1", "skills": {"general": 3}, "channels": {"phone": 1}}]
    status, report = await api.admin("POST", "/v1/policies/validate", json={"policy": SMALL, "roster": roster})
    assert status == 200 and report["ok"] is True and report["issues"] == []
    assert report["roster"]["source"] == "request" and report["roster"]["agents"] == 1
    needs_signers = SMALL.replace("queue: platinum,", "queue: platinum, require: [{skill: vip, min: 4}],")
    status, report = await api.admin("POST", "/v1/policies/validate",
                                     json={"policy": needs_signers, "roster": roster})
    gaps = [(i["severity"], i["path"], i["code"]) for i in report["issues"]]
    assert gaps == [("warning", "rules[0]", "roster_gap")]
    assert "no agent has skill vip>=4" in report["issues"][0]["message"]
    assert "agent 'a1' lacks skill vip>=4" in report["issues"][0]["message"]
    status, body = await api.admin("POST", "/v1/policies/validate",
                                   json={"policy": SMALL, "roster": [{"id": "a1", "channels": {"fax": 1}}]})
    assert (status, body["error"]["field"]) == (422, "roster[0].channels.fax")


# --- history, versions, rollback -----------------------------------------------------------

async def test_rollback_is_a_new_version_with_the_old_document(api: Api) -> None:
    assert (await put(api, FASTER_VIP, "1", query="?comment=faster"))[0] == 201
    status, body = await api.admin("POST", "/v1/policies/rollback", json={"to_version": 1, "reason": "SLA too tight"},
                                   headers={"If-Match": '"2"'})
    assert status == 201, body
    assert (body["version"], body["kind"], body["rolled_back_to"], body["comment"], body["author"]) == (
        3, "rolled_back", 1, "SLA too tight", "admin")
    events = await stored(api)
    assert [e["type"] for e in events] == ["PolicyPublished", "PolicyPublished", "PolicyRolledBack"]
    back = events[2]
    assert back["data"]["document"] == events[0]["data"]["document"]
    assert (back["data"]["to_version"], back["data"]["version"], back["data"]["reason"]) == (1, 3, "SLA too tight")
    assert back["metadata"]["actor"] == "admin"
    policy = api.client.app[keys.POLICIES].active.current()
    assert (policy.version, policy.queue("vip").answer_within_s) == (3, 10)


async def test_a_rollback_without_if_match_is_based_on_the_newest_version(api: Api) -> None:
    assert (await put(api, FASTER_VIP, "1", query="?comment=faster"))[0] == 201
    status, body = await api.admin("POST", "/v1/policies/rollback", json={"to_version": 1, "reason": "undo"})
    assert (status, body["version"], body["rolled_back_to"]) == (201, 3, 1), body
    assert [e["type"] for e in await stored(api)] == ["PolicyPublished", "PolicyPublished", "PolicyRolledBack"]


async def test_history_and_versions(api: Api) -> None:
    assert (await put(api, FASTER_VIP, "1", query="?comment=faster"))[0] == 201
    await api.admin("POST", "/v1/policies/rollback", json={"to_version": 1, "reason": "undo"},
                    headers={"If-Match": "2"})
    status, history = await api.admin("GET", "/v1/policies/history")
    assert (status, history["active_version"], history["newest_version"]) == (200, 3, 3)
    assert [(v["version"], v["kind"], v["author"], v["comment"], v["rolled_back_to"])
            for v in history["versions"]] == [
        (3, "rolled_back", "admin", "undo", 1), (2, "published", "admin", "faster", None),
        (1, "published", "system", "the default policy, published on first start", None)]
    assert [v["version"] for v in (await api.admin("GET", "/v1/policies/history?limit=1"))[1]["versions"]] == [3]
    assert [v["version"] for v in (await api.admin("GET", "/v1/policies/history?before=3"))[1]["versions"]] == [2, 1]
    status, body = await api.admin("GET", "/v1/policies/history?limit=0")
    assert (status, body["error"]["field"]) == (400, "limit")

    status, first = await api.admin("GET", "/v1/policies/1")
    assert (status, first["version"], first["active"], first["source"]) == (200, 1, False, DEFAULT)
    status, second = await api.admin("GET", "/v1/policies/2")
    assert second["document"]["queues"][9]["sla"]["answer_within_s"] == 8
    status, third = await api.admin("GET", "/v1/policies/3")
    assert third["active"] is True and third["document"] == first["document"]
    async with api.client.get("/v1/policies/2", headers={"Authorization": f"Bearer {ADMIN_TOKEN}",
                                                         "Accept": "application/yaml"}) as resp:
        assert (resp.status, resp.content_type, resp.headers["ETag"]) == (200, "application/yaml", '"2"')
        assert await resp.text() == FASTER_VIP
    for missing in ("99", "0", "99999999999"):
        status, body = await api.admin("GET", f"/v1/policies/{missing}")
        assert (status, body["error"]["code"], body["error"]["field"]) == (404, "version_not_found", "version")
    assert (await api.admin("GET", "/v1/policies/latest"))[0] == 404


@pytest.mark.parametrize(("body", "if_match", "status", "code", "field"), [
    ({"to_version": 42, "reason": "x"}, "1", 404, "version_not_found", "to_version"),
    ({"to_version": 1, "reason": "x"}, "1", 422, "already_active", "to_version"),
    ({"to_version": 1, "reason": "x"}, None, 422, "already_active", "to_version"),
    ({"to_version": 1, "reason": "x"}, "v1", 400, "invalid_if_match", "If-Match"),
    ({"to_version": 1}, "1", 422, "invalid_field", "reason"),
    ({"to_version": "1", "reason": "x"}, "1", 422, "invalid_field", "to_version"),
    ({"to_version": 0, "reason": "x"}, "1", 422, "invalid_field", "to_version"),
    ({"to_version": 1, "reason": "x", "force": True}, "1", 422, "invalid_field", "force"),
    ([1], "1", 422, "invalid_field", None),
])
async def test_bad_rollbacks_store_nothing(api: Api, body: Any, if_match: str | None, status: int, code: str,
                                           field: str | None) -> None:
    headers = {"If-Match": if_match} if if_match else {}
    got, answer = await api.admin("POST", "/v1/policies/rollback", json=body, headers=headers)
    assert (got, answer["error"]["code"], answer["error"]["field"]) == (status, code, field)
    assert len(await stored(api)) == 1


async def test_a_rollback_based_on_a_stale_version_conflicts(api: Api) -> None:
    assert (await put(api, FASTER_VIP, "1"))[0] == 201
    status, body = await api.admin("POST", "/v1/policies/rollback", json={"to_version": 1, "reason": "x"},
                                   headers={"If-Match": "1"})
    assert (status, body["error"]["code"], body["error"]["details"]["current_version"]) == (409, "version_conflict", 2)
    async with api.client.post("/v1/policies/rollback", data=b'{"to_version": ', headers={
            "Authorization": f"Bearer {ADMIN_TOKEN}", "If-Match": "2"}) as resp:
        assert (resp.status, (await resp.json())["error"]["code"]) == (400, "invalid_json")
    assert len(await stored(api)) == 2


# --- simulate ------------------------------------------------------------------------------

def agent(agent_id: str, skills: dict[str, int], *, languages: Sequence[str] = ("zh",),
          channels: dict[str, int] | None = None, idle_min: float = 0, **extra: Any) -> dict[str, Any]:
    idle_since = datetime.fromisoformat(MONDAY_10) - timedelta(minutes=idle_min)
    return {"id": agent_id, "skills": skills, "languages": list(languages), "channels": channels or {"phone": 1},
            "idle_since": idle_since.isoformat(), **extra}


def by_wait(result: dict[str, Any]) -> dict[float, dict[str, Any]]:
    return {t["waited_s"]: t for t in result["timeline"]}


@pytest.mark.parametrize("at", ["0001-01-01T00:00:00+14:00", "9999-12-31T23:00:00-14:00"])
async def test_simulating_at_an_instant_out_of_range_is_a_clear_422(api: Api, at: str) -> None:
    status, out = await simulate(api, {"contact": {"channel": "phone"}, "at": at})  # a 500 before (an audit)
    assert (status, out["error"]["field"]) == (422, "at"), out


async def test_simulate_a_vip_with_a_dedicated_relationship_manager(api: Api) -> None:
    roster = [agent("rm7", {"vip": 4, "senior": 4}, idle_min=1), agent("senior", {"vip": 5, "senior": 5}, idle_min=60),
              agent("junior", {"vip": 3}, idle_min=90)]
    status, out = await simulate(api, {"contact": {"channel": "phone", "segment": "vip", "dedicated_agent": "rm7"},
                                       "at": MONDAY_10, "roster": roster})
    assert status == 200, out
    assert (out["rule"]["id"], out["queue"]["id"], out["strategy"]) == ("private_banking_vip", "vip", "dedicated_first")
    assert out["queue"]["answer_within_s"] == 10 and out["policy"] == {"source": "active", "version": 1}
    assert [a["agent_id"] for a in out["agents"]["eligible"]] == ["rm7", "senior"]  # dedicated first, then idle
    assert out["agents"]["ineligible"] == [{"agent_id": "junior", "reasons": ["missing skill senior"]}]
    assert by_wait(out)[60.0]["eligible_agents"] == ["junior", "rm7", "senior"]  # senior relaxed after a minute
    assert by_wait(out)[180.0]["queue"] == "wealth"
    assert [r["id"] for r in out["earlier_rules"]][:2] == ["urgent_sign_language", "urgent_lost_card_fraud"]
    assert out["roster"]["source"] == "request" and out["at"] == "2026-11-23T02:00:00+00:00"


async def test_simulate_a_deaf_customer_on_the_video_desk_only_ever_reaches_a_signer(api: Api) -> None:
    roster = [agent("signer", {"sign_language": 4}, channels={"video": 1}),
              agent("signer_on_phone", {"sign_language": 5}, channels={"phone": 1}),
              agent("voice_star", {"general": 5, "fraud": 5, "complaints": 5}, channels={"phone": 1, "webchat": 3})]
    status, out = await simulate(api, {"contact": {"channel": "video", "sign_language": "csl"},
                                       "at": MONDAY_10, "roster": roster, "horizon_s": 3600})
    assert status == 200, out
    assert (out["rule"]["id"], out["queue"]["id"]) == ("sign_language_desk", "sign_language")
    assert "deaf" in out["contact"]["needs"]
    assert {"kind": "skill", "name": "sign_language", "min_level": 3, "hard": True} in out["requirements"]
    assert {"kind": "channel", "name": "video", "min_level": 0, "hard": True} in out["requirements"]
    assert len(out["timeline"]) >= 5
    assert all(t["eligible_agents"] == ["signer"] for t in out["timeline"])  # never voice only, however long
    reasons = {a["agent_id"]: a["reasons"] for a in out["agents"]["ineligible"]}
    assert "does not serve channel video" in reasons["signer_on_phone"]
    assert "missing skill sign_language" in reasons["voice_star"]


async def test_simulate_a_japanese_speaker_who_speaks_no_chinese(api: Api) -> None:
    roster = [agent("zh_expert", {"general": 5}, idle_min=120), agent("ja_speaker", {"general": 2}, languages=["ja", "zh"])]
    status, out = await simulate(api, {"contact": {"channel": "phone", "language": "ja", "languages": ["ja"]},
                                       "at": MONDAY_10, "roster": roster})
    assert status == 200, out
    assert (out["rule"]["id"], out["queue"]["id"]) == ("foreign_language", "foreign")
    assert out["contact"]["needs"] == ["foreign"]
    assert {"kind": "language", "name": "ja", "min_level": 0, "hard": True} in out["requirements"]
    assert all(t["eligible_agents"] == ["ja_speaker"] for t in out["timeline"])  # also after the overflow
    assert by_wait(out)[300.0]["queue"] == "general"
    assert out["agents"]["ineligible"] == [{"agent_id": "zh_expert", "reasons": ["does not speak ja"]}]

    status, bilingual = await simulate(api, {"contact": {"channel": "phone", "language": "ja", "languages": ["ja", "zh"]},
                                             "at": MONDAY_10, "roster": roster})
    assert bilingual["rule"]["id"] == "general" and by_wait(bilingual)[120.0]["eligible_agents"] == [
        "ja_speaker", "zh_expert"]  # speaks Chinese too: the language is relaxed after 90 s


async def test_simulate_a_lost_card_at_night_jumps_every_queue(api: Api) -> None:
    sunday_3am = "2026-11-22T03:00:00+08:00"
    status, out = await simulate(api, {"contact": {"channel": "app", "intent": "lost_card"}, "at": sunday_3am})
    assert status == 200, out
    assert (out["rule"]["id"], out["queue"]["id"], out["priority"]) == ("urgent_lost_card_fraud", "urgent", 1000)
    assert out["after_hours"] is True and out["callback_at_s"] is None  # urgent is 24/7: no callback
    assert {"kind": "skill", "name": "fraud", "min_level": 3, "hard": True} in out["requirements"]
    assert [(e["after_s"], e["action"]) for e in out["escalations"]] == [(30.0, "raise_priority"),
                                                                         (60.0, "page_supervisor")]
    assert out["agents"]["eligible"] == [] and out["roster"]["agents"] == 0  # nobody is logged in


async def test_simulate_without_any_roster_says_so(database_url: str) -> None:
    async with policies_only(database_url) as api:
        status, out = await simulate(api, {"contact": {"channel": "app", "intent": "fraud"}, "at": MONDAY_10})
    assert (status, out["rule"]["id"]) == (200, "urgent_lost_card_fraud")
    assert out["agents"] == {"strategy": "longest_idle", "eligible": [], "ineligible": []}
    assert out["roster"] == {"source": "empty", "agents": 0, "checked": True,
                             "note": "no roster is available: simulated with no agents"}


async def test_simulate_a_complaint_escalation_timeline(api: Api) -> None:
    status, out = await simulate(api, {"contact": {"channel": "phone", "intent": "complaint",
                                                   "tags": ["money_at_stake"]}, "at": MONDAY_10})
    assert status == 200, out
    assert out["rule"]["id"] == "complaint_money_at_stake"
    steps = [(e["after_s"], e["action"], e["params"]["level"], e["queue"]) for e in out["escalations"]]
    assert steps == [(60.0, "escalate", "supervisor", "complaints_supervisor"),
                     (240.0, "escalate", "expert_team", "complaints_expert")]
    assert [(t["waited_s"], t["queue"]) for t in out["timeline"]] == [
        (0.0, "complaints"), (30.0, "complaints"), (60.0, "complaints_supervisor"), (120.0, "complaints_supervisor"),
        (240.0, "complaints_expert"), (300.0, "complaints_expert")]
    assert out["deadlines"] == {"follow_up": epoch(MONDAY_10) + 48 * 3600}
    status, plain = await simulate(api, {"contact": {"channel": "phone", "intent": "complaint"}, "at": MONDAY_10})
    assert plain["rule"]["id"] == "complaint" and [e["after_s"] for e in plain["escalations"]] == [120.0, 600.0]


async def test_simulate_after_hours_gets_a_callback_in_the_customers_hours(api: Api) -> None:
    status, out = await simulate(api, {"contact": {"channel": "webchat", "intent": "loan",
                                                   "callback_windows": ["after 15:00"]},
                                       "at": "2026-11-23T22:00:00+08:00"})
    assert status == 200, out
    assert (out["rule"]["id"], out["queue"]["id"], out["after_hours"]) == ("after_hours", "callbacks", True)
    assert out["callback_at_s"] == epoch("2026-11-24T15:00:00+08:00")
    assert any("outside business hours" in r for r in out["reasons"])
    status, daytime = await simulate(api, {"contact": {"channel": "webchat", "intent": "loan"}, "at": MONDAY_10})
    assert (daytime["rule"]["id"], daytime["after_hours"]) == ("loan", False)


async def test_simulate_a_draft_instead_of_the_active_policy(api: Api) -> None:
    contact = {"channel": "phone", "segment": "vip"}
    status, out = await simulate(api, {"contact": contact, "at": MONDAY_10, "policy": SMALL})
    assert status == 200, out
    assert (out["rule"]["id"], out["queue"]["id"], out["priority"]) == ("vip_platinum", "platinum", 900)
    assert out["policy"]["source"] == "draft" and out["policy"]["report"]["ok"] is True
    as_object = {"queues": [{"id": "general", "sla": {"answer_within_s": 20, "target_pct": 80}}],
                 "rules": [{"id": "all", "queue": "general"}]}
    status, out = await simulate(api, {"contact": contact, "at": MONDAY_10, "policy": as_object})
    assert (status, out["rule"]["id"]) == (200, "all")
    status, body = await simulate(api, {"contact": contact, "policy": SMALL.replace("queue: platinum", "queue: gold")})
    assert (status, body["error"]["code"], body["error"]["field"]) == (422, "invalid_policy", "policy.rules[0].queue")
    assert len(await stored(api)) == 1 and active_version(api) == 1


@pytest.mark.parametrize(("body", "field"), [
    ({}, "contact"),
    ({"contact": {}}, "contact.channel"),
    ({"contact": {"channel": "fax"}}, "contact.channel"),
    ({"contact": {"channel": "phone", "needs": ["deaf", "tall"]}}, "contact.needs[1]"),
    ({"contact": {"channel": "phone", "repeat_count": "3"}}, "contact.repeat_count"),
    ({"contact": {"channel": "phone", "callback_windows": ["tea time"]}}, "contact.callback_windows[0]"),
    ({"contact": {"channel": "phone", "language": "Japanese"}}, "contact.language"),
    ({"contact": {"channel": "phone"}, "at": "2026-11-23T10:00:00"}, "at"),
    ({"contact": {"channel": "phone"}, "roster": [agent("a1", {}), agent("a2", {"fraud": 9})]}, "roster[1].skills.fraud"),
    ({"contact": {"channel": "phone"}, "roster": [agent("a1", {}, channels={"fax": 1})]}, "roster[0].channels.fax"),
    ({"contact": {"channel": "phone"}, "roster": [agent("a1", {}, presence="busy")]}, "roster[0].presence"),
    ({"contact": {"channel": "phone"}, "policy": 5}, "policy"),
    ({"contact": {"channel": "phone"}, "horizon_s": 0}, "horizon_s"),
    ({"contact": {"channel": "phone"}, "surprise": 1}, "surprise"),
    ([], None),
])
async def test_bad_simulations_name_the_field(api: Api, body: Any, field: str | None) -> None:
    status, answer = await simulate(api, body)
    assert (status, answer["error"]["code"], answer["error"]["field"]) == (422, "invalid_field", field), answer
    assert answer["error"]["message"]


async def test_simulate_rejects_bad_json_and_huge_bodies(api: Api) -> None:
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}", "Content-Type": "application/json"}
    async with api.client.post("/v1/policies/simulate", data=b'{"contact": ', headers=headers) as resp:
        assert (resp.status, (await resp.json())["error"]["code"]) == (400, "invalid_json")
    huge = json.dumps({"contact": {"channel": "phone"}, "policy": "#" * (3 * 1024 * 1024)}).encode()
    async with api.client.post("/v1/policies/simulate", data=io.BytesIO(huge), headers=headers) as resp:
        assert (resp.status, (await resp.json())["error"]["code"]) == (413, "payload_too_large")


class FakeRoster:
    """What the agents module will provide: the live roster."""

    def __init__(self) -> None:
        phone = {Channel.PHONE: 1}
        self.agents = [
            AgentSnapshot(AgentProfile("care4", skills={"elderly_care": 4, "general": 2}, channels=phone),
                          Presence.AVAILABLE, idle_since_s=epoch(MONDAY_10) - 300),
            AgentSnapshot(AgentProfile("away", skills={"elderly_care": 5}, channels=phone), Presence.AWAY),
        ]

    def profiles(self) -> Sequence[AgentProfile]:
        return [a.profile for a in self.agents]

    def snapshots(self) -> Sequence[AgentSnapshot]:
        return self.agents


async def test_a_roster_provider_is_used_when_none_is_given(database_url: str) -> None:
    async with policies_only(database_url, FakeRoster()) as api:
        status, out = await simulate(api, {"contact": {"channel": "phone", "needs": ["elderly"]}, "at": MONDAY_10})
        assert status == 200 and out["rule"]["id"] == "elderly"
        assert out["roster"]["source"] == "provider" and out["roster"]["agents"] == 2
        assert [a["agent_id"] for a in out["agents"]["eligible"]] == ["care4"]
        assert out["agents"]["ineligible"] == [{"agent_id": "away", "reasons": ["presence is away"]}]
        status, out = await simulate(api, {"contact": {"channel": "phone", "needs": ["elderly"]}, "at": MONDAY_10,
                                           "roster": []})
        assert out["roster"]["source"] == "request" and out["agents"]["eligible"] == []  # a given roster wins
        status, report = await api.admin("POST", "/v1/policies/validate", data=DEFAULT.encode(), headers=YAML)
        assert report["ok"] is True and report["roster"]["checked"] is True
        assert any(i["code"] == "roster_gap" and "sign_language" in i["message"] for i in report["issues"])
        status, body = await put(api, DEFAULT, "1", query="?comment=with%20the%20live%20roster")
        assert status == 201 and body["roster"]["source"] == "provider"
        assert body["warnings"] and (await stored(api))[1]["data"]["warnings"] == body["warnings"]


async def test_the_servers_own_agents_are_the_roster(api: Api) -> None:
    new_agent = {"id": "a-101", "name": "Wang Fang", "skills": {"general": 3, "fraud": 4},
                 "languages": ["zh", "en"], "channels": {"phone": 1, "webchat": 3}}
    assert (await api.admin("POST", "/v1/agents", json=new_agent))[0] in (200, 201)
    status, report = await api.admin("POST", "/v1/policies/validate", data=DEFAULT.encode(), headers=YAML)
    assert (status, report["roster"]["source"], report["roster"]["agents"]) == (200, "provider", 1)
    assert any("closest: agent 'a-101'" in i["message"] for i in report["issues"])
    status, out = await simulate(api, {"contact": {"channel": "phone", "intent": "fraud"}, "at": MONDAY_10})
    assert out["roster"]["source"] == "provider"
    assert [a["agent_id"] for a in out["agents"]["eligible"] + out["agents"]["ineligible"]] == ["a-101"]


# --- auth, many processes, OpenAPI ---------------------------------------------------------

ENDPOINTS = [("GET", "/v1/policies/active"), ("GET", "/v1/policies/history"), ("GET", "/v1/policies/1"),
             ("PUT", "/v1/policies"), ("POST", "/v1/policies/validate"), ("POST", "/v1/policies/rollback"),
             ("POST", "/v1/policies/simulate")]


@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
async def test_every_endpoint_needs_the_admin_token(api: Api, method: str, path: str) -> None:
    for headers in ({}, {"Authorization": "Bearer wrong-token-0123456789"}, {"Authorization": "Basic YWRtaW4="}):
        async with api.client.request(method, path, data=DEFAULT.encode(),
                                      headers={"If-Match": "1", **YAML, **headers}) as resp:
            body = await resp.json()
            assert (resp.status, body["error"]["code"]) == (401, "unauthorized")
            assert resp.headers["WWW-Authenticate"] == "Bearer"
    assert len(await stored(api)) == 1


async def test_an_agents_token_is_forbidden(database_url: str) -> None:
    agent_token = "agent-desk-token-0123456789"
    async with policies_only(database_url, agent_tokens=[agent_token]) as api:
        for method, path in ENDPOINTS:
            async with api.client.request(method, path, data=DEFAULT.encode(), headers={
                    "If-Match": "1", **YAML, "Authorization": f"Bearer {agent_token}"}) as resp:
                body = await resp.json()
                assert (resp.status, body["error"]["code"]) == (403, "forbidden"), (method, path)
        assert len(await stored(api)) == 1


async def test_processes_starting_at_once_publish_the_default_once(database_url: str) -> None:
    await reset_database(database_url)
    stores = [await PostgresEventStore.connect(database_url, StoreSettings(pool_min_size=1, pool_max_size=2))
              for _ in range(4)]
    services = [PolicyService(s) for s in stores]
    try:
        await asyncio.gather(*(s.start() for s in services))
        assert {s.active.current().version for s in services} == {1}
        conn = await asyncpg.connect(database_url)
        try:
            assert await conn.fetchval("SELECT count(*) FROM events WHERE stream_id = $1", STREAM) == 1
        finally:
            await conn.close()
    finally:
        for service, store in zip(services, stores):
            await service.stop()
            await store.close()


async def test_a_version_published_by_another_process_becomes_active_here(api: Api) -> None:
    store = await PostgresEventStore.connect(api.dsn, StoreSettings(pool_min_size=1, pool_max_size=2))
    other = PolicyService(store)
    try:
        await other.start()
        from policies.loader import parse_policy_text

        await other.publish(parse_policy_text(SMALL), based_on=1, author="admin", comment="from process B")
        for _ in range(500):  # no request here: only the follower can bring it
            if active_version(api) == 2:
                break
            await asyncio.sleep(0.02)
        policy = api.client.app[keys.POLICIES].active.current()
        assert (policy.version, policy.rules[0].spec.id) == (2, "vip_platinum")
    finally:
        await other.stop()
        await store.close()


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        return ([node["$ref"]] if "$ref" in node else []) + [r for v in node.values() for r in _refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in _refs(v)]
    return []


async def test_the_openapi_document_describes_every_policy_endpoint(api: Api) -> None:
    status, doc = await api.get("/v1/openapi.json")
    assert status == 200
    for method, path in ENDPOINTS:
        described = path.replace("/1", "/{version}")
        operation = doc["paths"][described][method.lower()]
        assert operation["security"] == [{"admin": []}] and "401" in operation["responses"]
    schemas = doc["components"]["schemas"]
    assert {r.rsplit("/", 1)[1] for r in _refs(doc)} <= set(schemas)
    assert "$defs" not in json.dumps(doc)
    assert "PolicyDocument" in schemas and "contact" in schemas["SimulateRequest"]["properties"]
