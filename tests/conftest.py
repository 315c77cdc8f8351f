from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import asyncpg
import pytest

from eventstore.postgres import PostgresEventStore, StoreSettings
from router.migrate import upgrade
from router.devdb import scratch_database


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    """A migrated database for this test run."""
    with scratch_database() as dsn:
        upgrade(dsn)
        yield dsn


async def reset_database(dsn: str) -> None:
    """Empty every table the migrations made (not alembic's own), keeping the schema."""
    conn = await asyncpg.connect(dsn)
    try:
        tables = await conn.fetch(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND NOT c.relispartition "
            "AND c.relname <> 'alembic_version'"
        )
        names = ", ".join(f'"{t["relname"]}"' for t in tables)
        await conn.execute(f"TRUNCATE {names} RESTART IDENTITY CASCADE")
    finally:
        await conn.close()


@pytest.fixture
async def pg_store(database_url: str) -> AsyncIterator[PostgresEventStore]:
    await reset_database(database_url)
    store = await PostgresEventStore.connect(database_url, StoreSettings(pool_min_size=1, pool_max_size=4))
    yield store
    await store.close()
