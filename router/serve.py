"""Start-up and shutdown: database (embedded or DATABASE_URL), migrations, server."""

from __future__ import annotations

import asyncio
import errno
import gc
import logging
import os
import subprocess
import sys
import signal
from contextlib import contextmanager
from collections.abc import Callable, Iterator
from urllib.parse import urlsplit, urlunsplit

import asyncpg
from aiohttp import web

from eventstore.postgres import StoreSettings

from .app import AppConfig, build_app
from .config import Credentials, Settings, load_credentials
from .embedded import EmbeddedPostgres
from .migrate import upgrade
from .service import RouterSettings
from .timers import TimerSettings

log = logging.getLogger(__name__)


class StartupError(Exception):
    """Why a command cannot start, said to the operator in one line (no traceback)."""


def redacted(dsn: str) -> str:
    """A database URL fit for a message: the password, if any, replaced."""
    try:
        parts = urlsplit(dsn)
        if parts.password is None:
            return dsn
        netloc = parts.netloc.rpartition("@")
        user = netloc[0].partition(":")[0]
        return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc[2]}"))
    except ValueError:
        return "(a malformed URL)"


def database_problem(exc: BaseException) -> str | None:
    """What keeps the database from being used, if `exc` (or an error it was raised from)
    is about reaching it at all: refused or unknown host, no such database, login refused,
    the server starting or shutting down. None for anything else (a real bug keeps its
    traceback)."""
    seen: set[int] = set()
    pending: list[BaseException | None] = [exc]
    while pending:
        error = pending.pop()
        if error is None or id(error) in seen:
            continue
        seen.add(id(error))
        if isinstance(error, (TimeoutError, asyncio.TimeoutError)):
            return "it did not answer in time"
        if isinstance(error, ConnectionRefusedError):
            return "connection refused (is PostgreSQL running, on that host and port?)"
        if isinstance(error, OSError):
            return error.strerror or str(error) or type(error).__name__
        if isinstance(error, asyncpg.PostgresError) and str(getattr(error, "sqlstate", ""))[:2] in _REACH_CLASSES:
            return str(error)
        pending += [error.__cause__, error.__context__, getattr(error, "orig", None)]
    return None


# SQLSTATE classes that mean "cannot use this database at all": connection exceptions,
# invalid authorization, invalid catalog name (no such database), operator intervention.
_REACH_CLASSES = frozenset({"08", "28", "3D", "57"})


@contextmanager
def explained(dsn: str) -> Iterator[None]:
    """Turn a database that cannot be reached into a StartupError that says so."""
    try:
        yield
    except StartupError:
        raise
    except Exception as exc:
        reason = database_problem(exc)
        if reason is None:
            raise
        where = "DATABASE_URL" if os.environ.get("DATABASE_URL") else "the embedded PostgreSQL"
        raise StartupError(f"cannot use the database at {redacted(dsn)} ({where}): {reason}") from None


@contextmanager
def database(settings: Settings) -> Iterator[str]:
    """DATABASE_URL when set; else an embedded PostgreSQL in var/pgdata, stopped on exit."""
    if settings.database_url:
        yield settings.database_url
        return
    embedded = EmbeddedPostgres((settings.var_dir / "pgdata").resolve())
    try:
        dsn = embedded.start()
    except Exception as exc:  # noqa: BLE001  (whatever pgserver raised: the operator needs the folder and the log)
        log.debug("embedded PostgreSQL did not start", exc_info=True)
        first_line = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
        raise StartupError(
            f"the embedded PostgreSQL in {embedded.data_dir} did not start: {first_line}. Its log is "
            f"{embedded.data_dir / 'log'}; a data folder of another PostgreSQL version or a damaged one can be "
            "moved away to start afresh (or set DATABASE_URL to use another PostgreSQL)") from None
    try:
        yield dsn
    finally:
        embedded.stop()


def migrate_only(settings: Settings, revision: str) -> int:
    with database(settings) as dsn, explained(dsn):
        upgrade(dsn, revision)
    print("migrations applied")
    return 0


def app_config(settings: Settings, credentials: Credentials, dsn: str, *, demo: bool) -> AppConfig:
    """What `serve` runs, from the operator's settings."""
    timers = TimerSettings(disconnect_grace_s=settings.disconnect_grace_s, max_missed_offers=settings.max_missed_offers)
    return AppConfig(settings, credentials, dsn, demo=demo,
                     gateway_rate_per_s=settings.gateway_rate_per_s, gateway_burst=settings.gateway_burst,
                     store_settings=StoreSettings(max_inflight_batches=settings.store_batches_in_flight),
                     router_settings=RouterSettings(domain=settings.domain, timers=timers))


def serve(settings: Settings, *, demo: bool, workers: int = 1) -> int:
    try:
        credentials = load_credentials(settings)
    except ValueError as exc:  # the secrets file is broken: say which and why, no traceback
        print(f"contact-router: {exc}", file=sys.stderr)
        return 2
    with database(settings) as dsn:
        with explained(dsn):
            upgrade(dsn)
        app = build_app(app_config(settings, credentials, dsn, demo=demo))
        kept = "set by ROUTER_ADMIN_TOKEN" if settings.admin_token else f"kept in {settings.var_dir}/admin-token"
        banner = (f"contact router on http://{settings.host}:{settings.port}  (pages: /admin, /desk)\n"
                  f"admin token ({kept}): {credentials.admin_token}")
        children = _spawn_workers(settings, dsn, workers - 1)
        try:
            with asyncio.Runner(loop_factory=event_loop_factory(settings.event_loop)) as runner:
                runner.run(_run(app, settings, reuse_port=workers > 1, banner=banner))
        finally:
            _stop_workers(children)
    return 0


def tune_gc() -> None:
    """The garbage collector's settings for a long-running service process, once started.

    What exists now (the state rebuilt at start-up) lives as long as the process: freeze it
    out of the collector's scans, and collect young objects less often. Full collections of
    a large heap stalled the event loop for 100+ ms under load (measured by the ingest
    benchmark), and young collections every 700 allocations cost an appending process a
    quarter of its events/s (bench eventstore, 256 appenders: 7.4-8.1k -> 10.3-10.7k)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)


def event_loop_factory(name: str) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop by default: the same asyncio API, with sockets, timers and callbacks in C
    (measured: less CPU per request and per websocket frame). ROUTER_EVENT_LOOP=asyncio
    selects the standard library's loop."""
    if name == "asyncio":
        return None
    if name != "uvloop":
        raise SystemExit(f"ROUTER_EVENT_LOOP must be 'uvloop' or 'asyncio', not {name!r}")
    try:
        import uvloop
    except ImportError:  # e.g. a platform uvloop has no build for
        log.warning("uvloop is not installed; using the standard asyncio event loop")
        return None
    return uvloop.new_event_loop


def _spawn_workers(settings: Settings, dsn: str, count: int) -> list[subprocess.Popen[bytes]]:
    """More processes on the same port (SO_REUSEPORT): the kernel spreads connections over
    them. Each follows the log; the leader lock makes sure only one of them routes."""
    env = {**os.environ, "DATABASE_URL": dsn, "ROUTER_WORKER": "1"}
    command = [sys.executable, "-m", "router", "serve", "--host", settings.host, "--port", str(settings.port)]
    return [subprocess.Popen(command, env=env) for _ in range(count)]


def _stop_workers(children: list[subprocess.Popen[bytes]]) -> None:
    for child in children:
        child.terminate()
    for child in children:
        try:
            child.wait(timeout=15)
        except subprocess.TimeoutExpired:
            child.kill()


async def _run(app: web.Application, settings: Settings, *, reuse_port: bool = False, banner: str = "") -> None:
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    tune_gc()
    reuse_port = reuse_port or os.environ.get("ROUTER_WORKER") == "1"
    site = web.TCPSite(runner, settings.host, settings.port, reuse_port=reuse_port or None)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()  # the router, its leadership and its store stop as on a signal
        reason = ("the address is in use: another program (or another contact-router) listens there; "
                  "stop it or pass --port" if exc.errno == errno.EADDRINUSE else f"{exc.strerror or exc}; check --host")
        raise StartupError(f"cannot listen on {settings.host}:{settings.port}: {reason}") from None
    if banner and os.environ.get("ROUTER_WORKER") != "1":
        print(banner, flush=True)  # once listening: the address it names answers
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("shutting down")
    await runner.cleanup()


def check_only(settings: Settings, *, as_json: bool) -> int:
    """Read the whole log and verify the invariants; exit 1 with a report when one fails."""
    import json
    import sys
    import time

    from eventstore.postgres import PostgresEventStore

    from .check import check_log

    def progress(count: int) -> None:
        if count % 50_000 < 5000:
            print(f"  read {count:,} events", file=sys.stderr, flush=True)

    async def run(dsn: str) -> dict[str, object]:
        store = await PostgresEventStore.connect(dsn)
        try:
            return await check_log(store, time.time(), progress)
        finally:
            await store.close()

    with database(settings) as dsn, explained(dsn):
        report = asyncio.run(run(dsn))
    if as_json:
        print(json.dumps(report))
    else:
        print(f"checked {report['events']:,} events: {report['contacts']} contacts, {report['agents']} agents, "
              f"{report['offers']} offers, {report['assigned']} assigned, {report['open_offers']} offers open, "
              f"{report['not_finished']} contacts not finished")
        for line in report["violations"]:  # type: ignore[union-attr]
            print(f"VIOLATION: {line}")
        print("all invariants hold" if report["ok"] else f"{report['violation_count']} violations")
    return 0 if report["ok"] else 1
