"""A projection process for the kill -9 test.

Usage: python -m tests.integration.procs.projector DSN
Projects every event into table projected(event_id PRIMARY KEY): a repeat would
violate the key and crash this process, so a clean exit proves exactly-once.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Sequence
from typing import Any

from eventstore import RecordedEvent
from eventstore.postgres import PostgresEventStore, StoreSettings
from eventstore.subscription import ProjectionRunner


class Projected:
    name = "projected"
    category = None

    async def apply(self, conn: Any, events: Sequence[RecordedEvent]) -> None:
        await conn.executemany(
            "INSERT INTO projected (event_id, stream_id, version) VALUES ($1, $2, $3)",
            [(e.event_id, e.stream_id, e.version) for e in events],
        )
        await asyncio.sleep(0.03)  # slow enough that a kill lands mid-run

    async def reset(self, conn: Any) -> None:
        await conn.execute("TRUNCATE projected")


async def main(dsn: str) -> None:
    store = await PostgresEventStore.connect(dsn, StoreSettings(pool_min_size=1, pool_max_size=2))
    runner = ProjectionRunner(store, Projected(), batch_size=25)
    await runner.catch_up()
    print("caught-up", flush=True)
    await store.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
