"""`contact-router bench ...`: benchmarks that print a table and, with --json, one JSON line."""

from __future__ import annotations

import asyncio
import json
import os
import platform
import statistics
import sys
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

Measure = Callable[[], Awaitable[float]]
T = TypeVar("T")


def run_async(main: Coroutine[Any, Any, T]) -> T:
    """Run on the event loop and with the garbage-collector settings the server uses
    (ROUTER_EVENT_LOOP, uvloop by default; `tune_gc`), so the store's client side is measured
    as it runs in production, and load processes spend less of the shared cores on themselves."""
    from router.serve import event_loop_factory, tune_gc

    tune_gc()

    with asyncio.Runner(loop_factory=event_loop_factory(os.environ.get("ROUTER_EVENT_LOOP", "uvloop"))) as runner:
        return runner.run(main)


def progress(message: str) -> None:
    """Progress goes to stderr so that --json output stays one clean line on stdout."""
    print(message, file=sys.stderr, flush=True)


async def median_of(name: str, measure: Measure, runs: int) -> float:
    values = []
    for run in range(1, runs + 1):
        value = await measure()
        values.append(value)
        progress(f"  {name}: run {run}/{runs} -> {value:,.1f}")
    return statistics.median(values)


def machine() -> dict[str, Any]:
    return {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()}


def report(title: str, figures: dict[str, Any], as_json: bool) -> None:
    print(f"\n{title}")
    width = max(len(k) for k in figures)
    for key, value in figures.items():
        shown = f"{value:,.2f}" if isinstance(value, float) else str(value)
        print(f"  {key:<{width}}  {shown}")
    if as_json:
        print(json.dumps(figures))
