from __future__ import annotations

import contextlib
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from typing import Any

import asyncpg
import pytest
from jsonschema import Draft202012Validator, FormatChecker
from aiohttp.test_utils import TestClient, TestServer

from channels.security import signed_headers
from router.app import AppConfig, build_app
from router.config import Credentials, Settings
from router.service import RouterSettings
from tests.conftest import reset_database

ADMIN_TOKEN = "admin-token-for-tests-0123456789"
SECRETS = {g: (f"{g}-secret-0123456789abcdef",) for g in ("phone", "webchat", "video", "app")}


@dataclass
class Api:
    client: TestClient
    dsn: str

    async def post_event(self, channel: str, payload: Any, *, secret: str | None = None,
                         timestamp_s: int | None = None, raw: bytes | None = None) -> tuple[int, dict[str, Any]]:
        body = raw if raw is not None else json.dumps(payload).encode()
        headers = signed_headers(body, secret or SECRETS[channel][0], timestamp_s or int(time.time()))
        headers["Content-Type"] = "application/json"
        async with self.client.post(f"/v1/channels/{channel}/events", data=body, headers=headers) as resp:
            return resp.status, await resp.json()

    async def admin(self, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {ADMIN_TOKEN}", **kwargs.pop("headers", {})}
        async with self.client.request(method, path, headers=headers, **kwargs) as resp:
            return resp.status, await resp.json()

    async def get(self, path: str, headers: dict[str, str] | None = None) -> tuple[int, Any]:
        """A read as the admin, unless `headers` says who is asking."""
        auth = {"Authorization": f"Bearer {ADMIN_TOKEN}"} if headers is None else headers
        async with self.client.get(path, headers=auth) as resp:
            return resp.status, await resp.json()

    async def event_count(self) -> int:
        conn = await asyncpg.connect(self.dsn)
        try:
            # Events stored by requests: the default policy the server publishes on first start is not one.
            return int(await conn.fetchval(
                "SELECT count(*) FROM events WHERE NOT (category = 'policy' AND metadata->>'actor' = 'system')"))
        finally:
            await conn.close()


def conforms_to_the_document(document: dict[str, Any], op: dict[str, Any], status: int, content_type: str,
                             raw: bytes, where: str = "") -> None:
    """The answer's body matches the schema the document gives for that status (refs resolved
    in the document): a documented answer shape that drifted from the code fails here."""
    media = op["responses"][str(status)].get("content", {}).get(content_type)
    if media is None or "schema" not in media or content_type != "application/json":
        return
    schema = {**media["schema"], "components": document["components"]}
    errors = sorted(Draft202012Validator(schema, format_checker=FormatChecker()).iter_errors(json.loads(raw)),
                    key=lambda e: list(e.path))
    assert not errors, (f"the answer does not match its documented schema ({errors[0].message} at "
                        f"{'/'.join(map(str, errors[0].path))}): {where}")


async def documented_answer(api: Api, method: str, path: str, template: str, **kwargs: Any) -> tuple[int, Any]:
    """An admin request whose answer is checked against the served OpenAPI document."""
    async with api.client.get("/v1/openapi.json") as resp:
        document = await resp.json()
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}", **kwargs.pop("headers", {})}
    async with api.client.request(method, path, headers=headers, **kwargs) as resp:
        status, raw = resp.status, await resp.read()
        conforms_to_the_document(document, document["paths"][template][method.lower()], status,
                                 resp.content_type, raw, f"{method} {path} -> {status}: {raw[:300]!r}")
    return status, json.loads(raw)


def make_config(dsn: str, *, lead: bool = False, **overrides: Any) -> AppConfig:
    """An app for tests; by default it never routes, so that only the test's own requests
    write events (routing tests pass lead=True)."""
    settings = Settings(database_url=dsn)
    return AppConfig(settings, Credentials(ADMIN_TOKEN, SECRETS), dsn,
                     router_settings=RouterSettings(lead=lead), **overrides)


@pytest.fixture
async def api(database_url: str) -> AsyncIterator[Api]:
    await reset_database(database_url)
    client = TestClient(TestServer(build_app(make_config(database_url))))
    await client.start_server()
    yield Api(client, database_url)
    await client.close()


@contextlib.asynccontextmanager
async def leading_server(database_url: str, *, disconnect_grace_s: float) -> AsyncIterator[Api]:
    """A leading server (it routes) on a fresh database, with a short disconnect grace period."""
    from router.timers import TimerSettings

    await reset_database(database_url)
    config = replace(make_config(database_url, lead=True),
                     router_settings=RouterSettings(timers=TimerSettings(disconnect_grace_s=disconnect_grace_s)))
    client = TestClient(TestServer(build_app(config)))
    await client.start_server()
    try:
        yield Api(client, database_url)
    finally:
        await client.close()
