"""`bench import` kept honest on a small directory: it imports through the real server, checks
the server's answers (all stored, then all unchanged) and measures something."""

from __future__ import annotations

import asyncio

from router.bench import importing
from tests.conftest import reset_database


async def test_the_import_benchmark_stores_then_compares_every_profile(database_url: str) -> None:
    await reset_database(database_url)
    figures = await asyncio.to_thread(importing.run, database_url, runs=1, customers=300)
    assert figures["import_customers"] == 300
    assert figures["import_customers_per_s"] > 0 and figures["import_unchanged_per_s"] > 0
    assert 0 < figures["import_health_p99_ms"] <= figures["import_health_max_ms"]
