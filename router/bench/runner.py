"""Dispatch `contact-router bench SUITE` on a scratch database."""

from __future__ import annotations

import statistics

from router.devdb import scratch_database
from router.migrate import upgrade

from . import machine, progress, report, run_async


def run_bench(suite: str, *, as_json: bool, seconds: float, runs: int, connections: int = 128,
              rate: float = 4000.0, profile: str | None = None, agents: int = 300,
              offer_rate: float = 150.0, customers: int = 100_000) -> int:
    figures: dict[str, object] = {}
    if suite in ("eventstore", "all"):
        from . import eventstore

        # A scratch database (BENCH_DATABASE_URL, else a throwaway one): never the live one.
        with scratch_database("BENCH_DATABASE_URL") as dsn:
            upgrade(dsn)
            figures.update(run_async(eventstore.run(dsn, seconds, runs)))
    if suite in ("ingest", "all"):
        from . import ingest

        # The server migrates its database itself at start-up, as in production.
        with scratch_database("BENCH_DATABASE_URL") as dsn:
            figures.update(ingest.run(dsn, seconds=seconds, runs=runs, connections=connections,
                                      rate_per_s=rate, profile_path=profile))
    if suite in ("import", "all"):
        from . import importing

        with scratch_database("BENCH_DATABASE_URL") as dsn:
            figures.update(importing.run(dsn, runs=runs, customers=customers))
    if suite in ("policy", "all"):
        figures.update(_policy(seconds, runs))
    if suite in ("route", "all"):
        from . import route

        # Scratch databases of its own (one for the end-to-end runs, a fresh one for memory).
        figures.update(route.run(seconds=seconds, runs=runs, agents=agents, rate_per_s=offer_rate,
                                 profile_path=profile))
    figures["machine"] = machine()
    report(f"contact-router bench {suite}", figures, as_json)
    return 0


def _policy(seconds: float, runs: int) -> dict[str, object]:
    """Policy evaluations per second on one core (no database); medians of `runs` runs."""
    from policies.bench import run_policy_bench

    progress(f"policy benchmark: {runs} runs of {seconds:.0f} s each, medians reported")
    results = []
    for run in range(1, runs + 1):
        results.append(run_policy_bench(seconds))
        progress(f"  policy_evals_per_s: run {run}/{runs} -> {results[-1]['policy_evals_per_s']:,}")
    return {key: statistics.median(r[key] for r in results) for key in results[0]}
