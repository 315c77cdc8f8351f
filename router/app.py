"""The composition root: builds the aiohttp application and its resources.

Nothing connects at import time; resources live under typed AppKeys and are opened
and closed by cleanup_ctx, in order.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

from aiohttp import web

from eventstore.postgres import PostgresEventStore, StoreSettings

from .api.errors import ApiError, error_middleware
from .api.openapi import OPENAPI_KEY, build_document, health_paths, openapi_handler
from .config import Credentials, Settings

log = logging.getLogger(__name__)

STORE_KEY = web.AppKey("store", PostgresEventStore)
SETTINGS_KEY = web.AppKey("settings", Settings)
CREDENTIALS_KEY = web.AppKey("credentials", Credentials)


@dataclass(frozen=True, slots=True)
class AppConfig:
    settings: Settings
    credentials: Credentials
    dsn: str
    store_settings: StoreSettings = StoreSettings()


def build_app(config: AppConfig) -> web.Application:
    app = web.Application(middlewares=[error_middleware], client_max_size=1024 * 1024)
    app[SETTINGS_KEY] = config.settings
    app[CREDENTIALS_KEY] = config.credentials
    app[OPENAPI_KEY] = build_document([health_paths])
    app.cleanup_ctx.append(_store_ctx(config))
    app.router.add_get("/v1/health", health)
    app.router.add_get("/v1/openapi.json", openapi_handler)
    return app


def _store_ctx(config: AppConfig):  # type: ignore[no-untyped-def]
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        store = await PostgresEventStore.connect(config.dsn, config.store_settings)
        app[STORE_KEY] = store
        yield
        await store.close()

    return ctx


async def health(request: web.Request) -> web.Response:
    store = request.app[STORE_KEY]
    try:
        await store.pool.fetchval("SELECT 1")
    except Exception as exc:
        raise ApiError(503, "database_unavailable", f"the database is unreachable: {exc}",
                       headers={"Retry-After": "2"}) from None
    return web.json_response({"status": "ok"})
