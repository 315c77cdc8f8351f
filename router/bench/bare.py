"""The ingest benchmark's baseline: the issue's "bare aiohttp handler that checks an HMAC
and appends through a group-commit batcher", measured on the same machine in the same run.

It does only that: one route, the gateway's signature checked with the router's own
`verify_signature`, the body parsed as JSON, one row per request appended to a plain
table through the store's own group committer (one transaction per batch, a multi-row
INSERT from arrays), 202 with the row's position. No validation, no enrichment, no
idempotency, no streams, no router.
The ingest benchmark loads it with the same requests as the real server, so the ratio
`ingest_eps / ingest_bare_eps` says how much the router's work costs on this machine,
whatever the machine's speed.

Run: `python -m router.bench.bare --port N --dsn DSN --secrets FILE` (one process, uvloop).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import asyncpg
import orjson
from aiohttp import web

from channels.security import SIGNATURE_HEADER, TIMESTAMP_HEADER, SignatureError, verify_signature
from eventstore.batcher import GroupCommitter, Pending

from . import run_async

TABLE = "bench_bare_events"


def committer(pool: asyncpg.Pool) -> GroupCommitter[tuple[str, str], int]:
    """The store's own group commit (batches bounded and merged the same way), writing plain
    rows: one transaction per batch, no version checks, no idempotency, no streams."""

    async def flush(batch: Sequence[Pending[tuple[str, str], int]]) -> None:
        async with pool.acquire() as conn, conn.transaction():
            ids = await conn.fetch(
                f"INSERT INTO {TABLE} (gateway, data) SELECT * FROM unnest($1::text[], $2::jsonb[]) "
                "RETURNING id", [p.item[0] for p in batch], [p.item[1] for p in batch])
        for pending, record in zip(batch, ids):
            if not pending.future.done():
                pending.future.set_result(record["id"])

    return GroupCommitter(flush)


def build(pool: asyncpg.Pool, secrets: dict[str, list[str]]) -> web.Application:
    batcher = committer(pool)

    async def post(request: web.Request) -> web.Response:
        gateway = request.match_info["gateway"]
        body = await request.read()
        try:
            verify_signature(body, request.headers.get(TIMESTAMP_HEADER), request.headers.get(SIGNATURE_HEADER),
                             secrets[gateway], now_s=time.time())
        except (KeyError, SignatureError):
            return web.json_response({"error": "unauthorized"}, status=401)
        try:
            orjson.loads(body)
        except orjson.JSONDecodeError:
            return web.json_response({"error": "invalid_json"}, status=400)
        position = await batcher.submit((gateway, body.decode()), 1)
        return web.Response(body=orjson.dumps({"position": position}), status=202, content_type="application/json")

    async def health(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    app = web.Application(client_max_size=256 * 1024)
    app.router.add_post("/v1/channels/{gateway}/events", post)
    app.router.add_get("/v1/health", health)
    return app


async def serve(port: int, dsn: str, secrets: dict[str, list[str]]) -> None:
    pool = await asyncpg.create_pool(dsn, min_size=2, max_size=8)
    async with pool.acquire() as conn:
        await conn.execute(f"DROP TABLE IF EXISTS {TABLE}; CREATE TABLE {TABLE} ("
                           "id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, gateway text NOT NULL, "
                           "data jsonb NOT NULL, recorded_at timestamptz NOT NULL DEFAULT now())")
    runner = web.AppRunner(build(pool, secrets), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        await asyncio.Event().wait()  # until SIGTERM ends the process
    finally:
        await runner.cleanup()
        await pool.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--dsn", required=True)
    parser.add_argument("--secrets", type=Path, required=True, help="JSON file: gateway -> secret")
    args = parser.parse_args()
    loaded: dict[str, Any] = json.loads(args.secrets.read_text())
    secrets = {gateway: [value] if isinstance(value, str) else list(value) for gateway, value in loaded.items()}
    run_async(serve(args.port, args.dsn, secrets))


if __name__ == "__main__":
    main()
