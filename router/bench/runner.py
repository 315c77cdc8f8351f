"""Dispatch `contact-router bench SUITE` on a scratch database."""

from __future__ import annotations

import asyncio

from router.devdb import scratch_database
from router.migrate import upgrade

from . import machine, report


def run_bench(suite: str, *, as_json: bool, seconds: float, runs: int) -> int:
    figures: dict[str, object] = {}
    if suite in ("eventstore", "all"):
        from . import eventstore

        # A scratch database (BENCH_DATABASE_URL, else a throwaway one): never the live one.
        with scratch_database("BENCH_DATABASE_URL") as dsn:
            upgrade(dsn)
            figures.update(asyncio.run(eventstore.run(dsn, seconds, runs)))
    figures["machine"] = machine()
    report(f"contact-router bench {suite}", figures, as_json)
    return 0
