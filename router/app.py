"""The composition root: builds the aiohttp application and its resources.

Nothing connects at import time; resources live under typed AppKeys (router.api.keys)
and are opened and closed by cleanup_ctx, in order.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from dataclasses import dataclass, field

from aiohttp import web

from channels.security import RateLimiter
from eventstore.postgres import PostgresEventStore, StoreSettings

from .api import channels as channels_api
from .api import customers as customers_api
from .api import keys
from .api import agents as agents_api
from .api import queues as queues_api
from .api import policies as policies_api
from .api.auth import AGENT_TOKEN_CHECK
from .api.errors import ApiError, error_middleware
from .api.openapi import OPENAPI_KEY, build_document, health_paths, openapi_handler
from .config import Credentials, Settings
from .customers import CustomerState
from .agents import AgentDirectory
from .demo import demo_startup
from .desk import DeskHub
from .ingest import IngestService
from .leader import Leadership, instance_alive
from .service import RouterService, RouterSettings
from .snapshots import SnapshotSettings
from .policy_service import PolicyService
from .tasks import TaskBoard, supervised

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class AppConfig:
    settings: Settings
    credentials: Credentials
    dsn: str
    store_settings: StoreSettings = StoreSettings()
    router_settings: RouterSettings = field(default_factory=RouterSettings)
    demo: bool = False
    gateway_rate_per_s: float = 5000.0
    gateway_burst: float = 10000.0


def build_app(config: AppConfig) -> web.Application:
    app = web.Application(middlewares=[error_middleware], client_max_size=64 * 1024 * 1024)
    app[keys.SETTINGS] = config.settings
    app[keys.CREDENTIALS] = config.credentials
    app[keys.GATEWAY_RATE_LIMITER] = RateLimiter(config.gateway_rate_per_s, config.gateway_burst)
    app[keys.TASKS] = TaskBoard()
    app[OPENAPI_KEY] = build_document([health_paths, channels_api.openapi_paths, customers_api.openapi_paths,
                                        policies_api.openapi_paths, agents_api.openapi_paths,
                                        queues_api.openapi_paths])
    app.cleanup_ctx.append(_store_ctx(config))
    app.cleanup_ctx.append(_policies_ctx)
    app.cleanup_ctx.append(_router_ctx(config))  # also the customer directory: one log follower feeds both
    app.cleanup_ctx.append(_ingest_ctx)
    if config.demo:
        app.on_startup.append(demo_startup(config.settings.var_dir))
    app.router.add_get("/v1/health", health)
    app.router.add_get("/admin", _page("admin.html"))
    app.router.add_get("/desk", _page("desk.html"))
    app.router.add_get("/static/dom.js", _page("dom.js"))
    app.router.add_get("/v1/openapi.json", openapi_handler)
    channels_api.add_routes(app)
    customers_api.add_routes(app)
    policies_api.add_routes(app)
    agents_api.add_routes(app)
    queues_api.add_routes(app)
    return app


def _store_ctx(config: AppConfig) -> Callable[[web.Application], AsyncIterator[None]]:
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        store = await PostgresEventStore.connect(config.dsn, config.store_settings)
        app[keys.STORE] = store
        yield
        await store.close()

    return ctx


async def _ingest_ctx(app: web.Application) -> AsyncIterator[None]:
    app[keys.INGEST] = IngestService(app[keys.STORE], app[keys.CUSTOMERS], domain=app[keys.SETTINGS].domain)
    yield


async def _policies_ctx(app: web.Application) -> AsyncIterator[None]:
    policies = PolicyService(app[keys.STORE], domain=app[keys.SETTINGS].domain, board=app[keys.TASKS])
    await policies.start()
    app[keys.POLICIES] = policies
    yield
    await policies.stop()


def _router_ctx(config: AppConfig) -> Callable[[web.Application], AsyncIterator[None]]:
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        policies = app[keys.POLICIES]
        customers = CustomerState()
        app[keys.CUSTOMERS] = customers
        key = config.credentials.snapshot_key
        snapshots = SnapshotSettings(key, every_s=config.settings.snapshot_every_s) if key else None
        router = RouterService(app[keys.STORE], lambda: policies.active.current(), config.router_settings,
                               consumers=[customers.apply], snapshots=snapshots,
                               snapshot_parts={"customers": customers},
                               instance_alive=lambda instance: instance_alive(app[keys.STORE].pool, instance),
                               board=app[keys.TASKS])
        hub = DeskHub(router.state, time.time, config.router_settings.instance)
        hub.unrecorded = agents_api.desk_reclaimer(router, hub)
        router.on_change = lambda contacts, agents: hub.sync(agents)
        await router.start()
        directory = AgentDirectory(router, config.settings.domain)
        app[agents_api.ROUTER], app[agents_api.HUB], app[agents_api.AGENTS] = router, hub, directory
        app[keys.ROSTER_PROVIDER] = directory
        app[AGENT_TOKEN_CHECK] = lambda token: directory.agent_for_token(token) is not None
        # Every instance holds its lease on this connection (desks here are alive while it is);
        # only instances that may lead contend for the leader's lock.
        leadership = Leadership(config.dsn, config.settings.domain, instance=config.router_settings.instance,
                                contend=config.router_settings.lead)
        leading = supervised(leadership.run(router.on_elected, router.on_lost), "leadership", app[keys.TASKS])
        try:
            # Why wait: a desk opened here before the lease is held would look, to the leader,
            # like a desk of an instance that is gone.
            await asyncio.wait_for(leadership.leased.wait(), 15)
        except TimeoutError:
            log.warning("this instance's lease is not held yet; desks opened here may be taken for gone "
                        "until it is (they are recorded again then)")
        yield
        leadership.stop()
        await router.stop()
        await asyncio.gather(leading, return_exceptions=True)

    return ctx


STATIC = Path(__file__).parent / "static"


def _page(name: str) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def page(request: web.Request) -> web.StreamResponse:
        return web.FileResponse(STATIC / name, headers={"Content-Security-Policy": "default-src 'self'; "
                                "script-src 'unsafe-inline' 'self'; style-src 'unsafe-inline' 'self'; "
                                "connect-src 'self' ws: wss:; frame-ancestors 'none'",
                                "X-Frame-Options": "DENY"})  # no clickjacking of the admin's buttons

    return page


async def health(request: web.Request) -> web.Response:
    """200 when this instance can do its work: the database answers (within 2 s) and none of
    its long-running tasks (log follower, routing loop, leadership) was stopped by an error;
    else 503, so that an orchestrator takes it out of service or restarts it."""
    try:
        await request.app[keys.STORE].pool.fetchval("SELECT 1", timeout=2)
    except Exception as exc:
        raise ApiError(503, "database_unavailable", f"the database is unreachable: {exc or type(exc).__name__}",
                       headers={"Retry-After": "2"}) from None
    stopped = request.app[keys.TASKS].stopped()
    if stopped:
        raise ApiError(503, "instance_stalled", f"background work stopped by an error: {', '.join(stopped)}; "
                       "restart this instance (its log says why; the event log keeps everything)")
    router = request.app[agents_api.ROUTER]
    return web.json_response({
        "status": "ok",
        "instance": router.settings.instance,
        "domain": router.settings.domain,
        "role": "leader" if router.is_leader else "standby",
        "event_lag_s": round(router.event_lag_s(), 3),
    })
