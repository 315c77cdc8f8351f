"""A writer process for the multi-process tests: appends with random commit delays.

Usage: python -m tests.integration.procs.writer DSN WORKER COUNT OUT_FILE
Every append the store reports as successful is written to OUT_FILE as a JSON line.
"""

from __future__ import annotations

import asyncio
import json
import random
import sys

from eventstore import ANY, NO_STREAM, ConcurrencyError, NewEvent
from eventstore.postgres import PostgresEventStore, StoreSettings

SHARED_STREAMS = 6


async def one_append(store: PostgresEventStore, worker: int, i: int, rng: random.Random) -> dict[str, object] | None:
    if rng.random() < 0.5:
        stream, expected = f"contact-default:w{worker}-{i}", NO_STREAM  # a stream of its own
    else:
        stream = f"agent-default:shared{rng.randrange(SHARED_STREAMS)}"
        expected = ANY if rng.random() < 0.5 else await store.stream_version(stream)
    events = [NewEvent("Tick", {"worker": worker, "i": i, "k": k}) for k in range(rng.randint(1, 3))]
    try:
        result = await store.append(stream, events, expected)
    except ConcurrencyError:
        return None  # lost a race on a shared stream: a legitimate, reported failure
    return {"stream": stream, "ids": [str(e.event_id) for e in events], "versions": list(result.versions)}


async def main(dsn: str, worker: int, count: int, out_file: str) -> None:
    rng = random.Random(worker)
    store = await PostgresEventStore.connect(
        dsn, StoreSettings(pool_min_size=2, pool_max_size=4, test_commit_jitter_s=0.004)
    )
    with open(out_file, "w") as out:
        for start in range(0, count, 16):
            batch = [one_append(store, worker, i, rng) for i in range(start, min(start + 16, count))]
            for done in await asyncio.gather(*batch):
                if done is not None:
                    out.write(json.dumps(done) + "\n")
    await store.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]))
