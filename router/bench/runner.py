"""Dispatch `contact-router bench SUITE` on a scratch database."""

from __future__ import annotations

import asyncio

from router.devdb import scratch_database
from router.migrate import upgrade

from . import machine, report


def run_bench(suite: str, *, as_json: bool, seconds: float, runs: int, connections: int = 128,
              rate: float = 4000.0, profile: str | None = None) -> int:
    figures: dict[str, object] = {}
    if suite in ("eventstore", "all"):
        from . import eventstore

        # A scratch database (BENCH_DATABASE_URL, else a throwaway one): never the live one.
        with scratch_database("BENCH_DATABASE_URL") as dsn:
            upgrade(dsn)
            figures.update(asyncio.run(eventstore.run(dsn, seconds, runs)))
    if suite in ("ingest", "all"):
        from . import ingest

        # The server migrates its database itself at start-up, as in production.
        with scratch_database("BENCH_DATABASE_URL") as dsn:
            figures.update(ingest.run(dsn, seconds=seconds, runs=runs, connections=connections,
                                      rate_per_s=rate, profile_path=profile))
    figures["machine"] = machine()
    report(f"contact-router bench {suite}", figures, as_json)
    return 0
