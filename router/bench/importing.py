"""The customer-import benchmark: a directory posted to a running server while a probe asks
`GET /v1/health` every 50 ms, so that the figures say both how fast a directory goes in and
how long the server stops answering meanwhile (desks' heartbeats, gateways' events and routing
share that event loop).

Per run, on the real server (`python -m router serve`, its own process, a scratch database):
- a new directory of `customers` profiles -> `import_customers_per_s` (all stored);
- the same file again -> `import_unchanged_per_s` (every profile compared, nothing stored);
- the probe's answers during both -> `import_health_p99_ms`, `import_health_max_ms`.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from typing import Any

import aiohttp

from . import progress
from .ingest import Server, directory_lines, running_server

PROBE_EVERY_S = 0.05


async def _probe(port: int, stop: asyncio.Event, latencies_ms: list[float]) -> None:
    async with aiohttp.ClientSession() as http:
        while not stop.is_set():
            started = time.perf_counter()
            async with http.get(f"http://127.0.0.1:{port}/v1/health") as resp:
                await resp.read()
            latencies_ms.append((time.perf_counter() - started) * 1000)
            await asyncio.sleep(PROBE_EVERY_S)


async def _post(server: Server, body: bytes, latencies_ms: list[float]) -> tuple[float, dict[str, Any]]:
    stop = asyncio.Event()
    probe = asyncio.create_task(_probe(server.port, stop, latencies_ms))
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=3600)) as http:
            started = time.perf_counter()
            async with http.post(f"http://127.0.0.1:{server.port}/v1/customers/import", data=body,
                                 headers={"Authorization": f"Bearer {server.admin_token}",
                                          "Content-Type": "application/x-ndjson"}) as resp:
                answer = await resp.json()
                if resp.status != 200:
                    raise RuntimeError(f"the import was answered {resp.status}: {str(answer)[:500]}")
            elapsed = time.perf_counter() - started
    finally:
        stop.set()
        await probe
    return elapsed, answer


async def _run_once(server: Server, customers: int, run: int) -> dict[str, float]:
    lines = directory_lines(customers, seed=run, prefix=f"R{run}-", first_phone=run * customers)
    body = "\n".join(lines).encode()
    latencies_ms: list[float] = []
    first_s, first = await _post(server, body, latencies_ms)
    if first["stored"] != customers:
        raise RuntimeError(f"expected {customers} profiles stored, the answer was {first}")
    again_s, again = await _post(server, body, latencies_ms)
    if again["unchanged"] != customers:
        raise RuntimeError(f"expected {customers} profiles unchanged, the answer was {again}")
    return {
        "import_customers_per_s": customers / first_s,
        "import_unchanged_per_s": customers / again_s,
        "import_health_p99_ms": statistics.quantiles(latencies_ms, n=100, method="inclusive")[98],
        "import_health_max_ms": max(latencies_ms),
        "import_body_mb": len(body) / 1e6,
    }


def run(dsn: str, *, runs: int, customers: int) -> dict[str, Any]:
    progress(f"customer import benchmark: {customers:,} customers a run, {runs} runs, medians")
    results = []
    with running_server(dsn) as server:
        for run_number in range(1, runs + 1):
            result = asyncio.run(_run_once(server, customers, run_number))
            results.append(result)
            progress(f"  run {run_number}/{runs}: {result['import_body_mb']:.1f} MB stored at "
                     f"{result['import_customers_per_s']:,.0f} customers/s, again (unchanged) at "
                     f"{result['import_unchanged_per_s']:,.0f}/s; health answered in p99 "
                     f"{result['import_health_p99_ms']:.0f} ms, at worst {result['import_health_max_ms']:.0f} ms")
    figures: dict[str, Any] = {key: statistics.median(r[key] for r in results) for key in results[0]}
    figures["import_customers"] = customers
    return figures
