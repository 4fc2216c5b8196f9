"""The `bench` command: the simulated world around the appliance."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import signal
import sqlite3
import sys
import threading
from pathlib import Path

from appliance.config.loader import DEFAULT_CONFIG, ConfigError
from bench.config import load_bench_config
from bench.world import run_world

UPSTREAM_READY = "upstream receiver ready"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    sim = commands.add_parser("sim", help="start the simulated world on its own")
    sim.add_argument(
        "--config",
        type=Path,
        default=DEFAULT_CONFIG,
        help="file whose [bench] table describes the world (default: examples/bench.toml)",
    )
    sim.add_argument("--check", action="store_true", help="only validate the [bench] table; exit 2 on errors")
    sim.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    perf = commands.add_parser("perf", help="run the benchmarks; print a table and optionally write JSON")
    perf.add_argument("--quick", action="store_true", help="shorter runs, for a smoke test")
    perf.add_argument("--json", type=Path, help="write the results here (the format of docs/bench.md)")
    perf.add_argument(
        "sections",
        nargs="*",
        metavar="SECTION",
        help="run only these sections (qc, modbus, safety, store, sync, runtime, security); default: all",
    )
    perf.add_argument("--only", default="", metavar="SECTION[,SECTION]", help="the same, comma-separated")
    scenario = commands.add_parser(
        "scenario", help="run a named scenario against a box and judge its expectations (docs/bench.md)"
    )
    scenario.add_argument("name", nargs="?", help="a shipped scenario (see --list) or a scenario file")
    scenario.add_argument("--list", action="store_true", help="list the shipped scenarios and exit")
    scenario.add_argument("--target", help="the status page of a running box (default: start a fresh one)")
    scenario.add_argument(
        "--control",
        default="http://127.0.0.1:15099/",
        help="the bench world's fault API, with --target (default: http://127.0.0.1:15099/)",
    )
    scenario.add_argument("--report", type=Path, help="folder for report.json (default: ./scenario-NAME)")
    scenario.add_argument("--quick", action="store_true", help="the short form (under a minute)")
    upstream = commands.add_parser(
        "upstream",
        help="receive the appliance's batches over MQTT and HTTP(S) into a ledger, or report on it",
    )
    upstream.add_argument("--db", type=Path, required=True, help="the ledger: a SQLite file")
    upstream.add_argument("--report", action="store_true", help="print the ledger's report as JSON and exit")
    upstream.add_argument("--mqtt", type=address, metavar="HOST:PORT", help="subscribe at this broker")
    upstream.add_argument("--prefix", default="edge", help="MQTT topic prefix (default: edge)")
    upstream.add_argument("--http", type=address, metavar="HOST:PORT", help="take POST /v1/batches here")
    upstream.add_argument("--ca", type=Path, help="CA: checks the broker, and HTTPS clients must show a cert")
    upstream.add_argument("--cert", type=Path, help="our certificate: MQTT client, HTTPS server")
    upstream.add_argument("--key", type=Path, help="the key of --cert")
    upstream.add_argument("--files", type=Path, help="keep evidence files here, as DIR/DEVICE/NAME")
    upstream.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    args = parser.parse_args(argv)
    if args.command == "upstream":
        return run_upstream(args)
    if args.command == "scenario":
        from bench.scenario.runner import list_scenarios, run_scenario

        logging.getLogger("pymodbus").setLevel(logging.CRITICAL)
        if args.list:
            return list_scenarios(sys.stdout)
        if not args.name:
            scenario.error("give a scenario's NAME, or --list")
        return run_scenario(args.name, args.target, args.control, args.report, args.quick)
    if args.command == "perf":
        logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
        logging.getLogger("pymodbus").setLevel(logging.CRITICAL)
        from bench.perf.runner import SECTIONS  # measures our code: imported only when asked
        from bench.perf.runner import main as perf_main

        named = [*args.sections, *(s.strip() for s in args.only.split(",") if s.strip())]
        if unknown := [s for s in named if s not in SECTIONS]:
            print(
                f"bench perf: unknown section {unknown[0]!r}; known: {', '.join(SECTIONS)}",
                file=sys.stderr,
            )
            return 2
        only = list(dict.fromkeys(named))  # in the order given, once each; they run in the table's order
        return perf_main(args.quick, args.json, only)

    logging.basicConfig(
        level=args.log_level.upper(),
        stream=sys.stderr,
        format="%(asctime)s bench %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)  # it logs every client disconnect
    try:
        config = load_bench_config(args.config)
    except ConfigError as exc:
        print("\n".join(exc.lines), file=sys.stderr)
        return 2
    if args.check:
        return 0
    try:
        asyncio.run(run_world(config))
    except RuntimeError as exc:  # pymodbus: "Could not start listen" on a busy port
        print(f"bench sim: {exc}", file=sys.stderr)
        return 1
    return 0


def address(text: str) -> tuple[str, int]:
    """HOST:PORT, for argparse."""
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit() or int(port) > 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not HOST:PORT")
    return host, int(port)


def run_upstream(args: argparse.Namespace) -> int:
    """`bench upstream`: serve until SIGINT or SIGTERM, or with --report print the ledger's report."""
    from bench.upstream.ledger import report
    from bench.upstream.receiver import Receiver, Tls

    if args.report:
        if not args.db.exists():
            print(f"bench upstream: no ledger at {args.db}", file=sys.stderr)
            return 2
        with contextlib.closing(sqlite3.connect(f"file:{args.db}?mode=ro", uri=True)) as conn:
            print(json.dumps(report(conn), indent=2))
        return 0
    if args.mqtt is None and args.http is None:
        print("bench upstream: give --mqtt HOST:PORT, --http HOST:PORT or both", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=args.log_level.upper(),
        stream=sys.stderr,
        format="%(asctime)s upstream %(levelname)s %(message)s",
    )
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        receiver = Receiver(
            args.db, args.mqtt, args.prefix, args.http, Tls(args.ca, args.cert, args.key), files=args.files
        )
        receiver.start(timeout=30)
    except (OSError, TimeoutError) as exc:  # a busy port, unreadable certificates, no broker
        print(f"bench upstream: {exc}", file=sys.stderr)
        return 1
    if args.http is not None:
        print(f"upstream http {receiver.url}/v1/batches", flush=True)
    print(UPSTREAM_READY, flush=True)
    stop.wait()
    receiver.stop()
    return 0
