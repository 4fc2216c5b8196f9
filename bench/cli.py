"""The `bench` command: the simulated world around the appliance."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path

from appliance.config.loader import DEFAULT_CONFIG, ConfigError
from bench.config import load_bench_config
from bench.world import run_world


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
    perf.add_argument("--json", type=Path, help="write the results here (CONTRACT.md's format)")
    args = parser.parse_args(argv)
    if args.command == "perf":
        logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
        logging.getLogger("pymodbus").setLevel(logging.CRITICAL)
        from bench.perf.runner import main as perf_main  # measures our code: imported only when asked

        return perf_main(args.quick, args.json)

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
