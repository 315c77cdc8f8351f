"""Apply the alembic migrations in migrations/ (idempotent; safe from several processes)."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from alembic import command
from alembic.config import Config

import migrations

MIGRATIONS_DIR = Path(migrations.__file__).parent


def sqlalchemy_url(dsn: str) -> str:
    """asyncpg DSN -> SQLAlchemy URL for the asyncpg dialect."""
    scheme, sep, rest = dsn.partition("://")
    if not sep or scheme not in ("postgres", "postgresql", "postgresql+asyncpg"):
        raise ValueError(f"not a PostgreSQL URL: {dsn!r}")
    return f"postgresql+asyncpg://{rest}"


def alembic_config(dsn: str) -> Config:
    config = Config(str(MIGRATIONS_DIR / "alembic.ini"))
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    # '%' is alembic's interpolation character; escape it in passwords and query strings.
    config.set_main_option("sqlalchemy.url", sqlalchemy_url(dsn).replace("%", "%%"))
    return config


def upgrade(dsn: str, revision: str = "head") -> None:
    logging.getLogger("alembic").setLevel(logging.WARNING)  # alembic's INFO chatter buries our start-up lines
    command.upgrade(alembic_config(dsn), revision)
    logging.getLogger(__name__).info("database schema is at %s", revision)


async def upgrade_async(dsn: str, revision: str = "head") -> None:
    # alembic's env.py runs its own event loop, so it gets a thread of its own.
    await asyncio.to_thread(upgrade, dsn, revision)
