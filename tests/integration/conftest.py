"""Fixtures of the integration tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from eventstore import MemoryEventStore
from eventstore.postgres import PostgresEventStore, StoreSettings
from tests.conftest import reset_database

CONTRACT_MAX_EVENT_BYTES = 4096  # small, so the size limit is cheap to reach


@pytest.fixture(params=["memory", "postgres"])
async def store(request: pytest.FixtureRequest, database_url: str) -> AsyncIterator[Any]:
    """Each store in turn, empty: the contract holds for both."""
    if request.param == "memory":
        yield MemoryEventStore(max_event_bytes=CONTRACT_MAX_EVENT_BYTES)
        return
    await reset_database(database_url)
    pg = await PostgresEventStore.connect(
        database_url, StoreSettings(pool_min_size=1, pool_max_size=4, max_event_bytes=CONTRACT_MAX_EVENT_BYTES))
    yield pg
    await pg.close()
