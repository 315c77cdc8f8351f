"""`contact-router bench ...`: benchmarks that print a table and, with --json, one JSON line."""

from __future__ import annotations

import json
import platform
import statistics
import sys
from collections.abc import Awaitable, Callable
from typing import Any

Measure = Callable[[], Awaitable[float]]


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
    import os

    return {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()}


def report(title: str, figures: dict[str, Any], as_json: bool) -> None:
    print(f"\n{title}")
    width = max(len(k) for k in figures)
    for key, value in figures.items():
        shown = f"{value:,.2f}" if isinstance(value, float) else str(value)
        print(f"  {key:<{width}}  {shown}")
    if as_json:
        print(json.dumps(figures))
