"""The `appliance` command: run the appliance or its safety supervisor, check a config file.

Heavy modules are imported by the command that needs them: `appliance safety` must not load the web
stack, the store or the sync code (docs/safety.md).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from appliance.cli import update as update_commands
from appliance.tomlfile import DEFAULT_CONFIG, ConfigError, read_toml

if TYPE_CHECKING:
    from appliance.runtime import Runtime

log = logging.getLogger("appliance")

DEFAULT_DATA_DIR = Path(os.environ.get("APPLIANCE_DATA_DIR", "data"))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="appliance", description="Edge appliance runtime.")
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="run the appliance")
    run.add_argument(
        "--config",
        type=Path,
        default=DEFAULT_CONFIG,
        help="appliance.toml (default: the embedded examples/bench.toml)",
    )
    run.add_argument(
        "--data-dir",
        type=Path,
        default=DEFAULT_DATA_DIR,
        help="where the store lives (default: $APPLIANCE_DATA_DIR or ./data)",
    )
    run.add_argument(
        "--http", metavar="HOST:PORT", help="serve the status page here instead of [http] listen"
    )
    run.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])

    safety = commands.add_parser("safety", help="the safety supervisor that owns the stop output line")
    safety.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="appliance.toml with [safety]")
    safety.add_argument(
        "--data-dir", type=Path, default=DEFAULT_DATA_DIR, help="the runtime's data directory (secret, latch)"
    )
    safety.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])

    check = commands.add_parser("check-config", help="validate a config file; exit 2 on errors")
    check.add_argument("file", type=Path)

    infer = commands.add_parser("infer", help="run a model on images with the plan this box would use")
    infer.add_argument("--model", type=Path, required=True, help="a .tflite model")
    infer.add_argument("images", type=Path, nargs="+", metavar="IMAGE")
    infer.add_argument("--json", action="store_true", help="print JSON instead of a table")
    infer.add_argument("--labels", default="", help="class names in output order, comma-separated")
    infer.add_argument("--color", choices=["rgb", "bgr"], default="rgb", help="channel order the model wants")
    infer.add_argument("--range", default="0,1", help="real input values for pixels 0 and 255 (default 0,1)")
    infer.add_argument(
        "--resize", choices=["area", "linear"], default="area", help="interpolation (default area)"
    )
    infer.add_argument("--root", type=Path, default=Path("/"), help="plan for the hardware under this root")

    hal = commands.add_parser("hal", help="the hardware report and the inference plan")
    hal.add_argument("--root", type=Path, default=Path("/"), help="read a fixture tree instead of /")
    hal.add_argument("--json", action="store_true", help="print JSON instead of a table")
    update_commands.add_parsers(commands, DEFAULT_DATA_DIR)  # health, update, credential
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = _parser().parse_args(argv)
    if args.command in update_commands.NAMES:
        return update_commands.run(args, argv)
    if args.command == "check-config":
        return check_config(args.file)
    if args.command == "hal":
        return show_hal(args.root, args.json)
    if args.command == "safety":
        return safety(args)
    if args.command == "infer":
        from appliance.cli.infer import infer

        try:
            low, high = (float(x) for x in args.range.split(","))
        except ValueError:
            print(f"--range: expected LOW,HIGH such as 0,1 or -1,1, got {args.range!r}", file=sys.stderr)
            return 2
        labels = [x.strip() for x in args.labels.split(",") if x.strip()]
        return infer(
            args.model, args.images, args.json, labels, args.color, (low, high), args.root, args.resize
        )
    return run(args)


def show_hal(root: Path, as_json: bool) -> int:
    from appliance.cli.hal import render
    from hal.report import detect

    if not root.is_dir():
        print(f"appliance hal: --root {root}: not a directory", file=sys.stderr)
        return 2
    import json

    report = detect(root)
    print(json.dumps(report.to_dict(), indent=2) if as_json else render(report))
    return 0


def check_config(path: Path) -> int:
    """Print every mistake as `FILE: key.path: problem`; exit 2 if there is any."""
    from appliance.config.loader import load_config

    lines: list[str] = []
    try:
        config = load_config(path)
    except ConfigError as exc:
        lines += exc.lines
        config = None
    has_bench = config.bench is not None if config else "bench" in _raw_or_empty(path)
    if has_bench:
        lines += _check_bench(path)
    if lines:
        print("\n".join(lines), file=sys.stderr)
        return 2
    print(f"{path}: ok")
    return 0


def _raw_or_empty(path: Path) -> dict[str, object]:
    try:
        return read_toml(path)
    except ConfigError:
        return {}


def _check_bench(path: Path) -> list[str]:
    """The [bench] table belongs to the bench; ask it, as a separate program, what it thinks."""
    import subprocess

    result = subprocess.run(
        [sys.executable, "-m", "bench", "sim", "--check", "--config", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode == 0:
        return []
    return result.stderr.strip().splitlines() or [
        f"{path}: bench: check failed with code {result.returncode}"
    ]


def safety(args: argparse.Namespace) -> int:
    """The supervisor reads only its own keys of [safety] (appliance/safety/settings.py): it stays small."""
    from appliance.safety.settings import SettingsError, read_settings
    from appliance.safety.supervisor import run_supervisor

    try:
        settings = read_settings(read_toml(args.config), str(args.config))
    except (ConfigError, SettingsError) as exc:
        print("\n".join(exc.lines), file=sys.stderr)
        return 2
    if code := _private_data_dir(args.data_dir, "appliance safety"):
        return code
    _log_to_stderr(args.log_level)
    return run_supervisor(settings, args.data_dir)


def _private_data_dir(data_dir: Path, command: str, create: bool = True) -> int:
    """Make what this process writes private and the data directory its user's alone (0 if so), before
    anything starts: 2 if it is another user's, 1 if it cannot be made."""
    from appliance.ops.datadir import DataDirError, private_data_dir, private_files

    private_files()
    try:
        changed = private_data_dir(data_dir, create)
    except DataDirError as exc:
        print(f"{command}: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"{command}: cannot start: the data directory {data_dir}: {exc}", file=sys.stderr)
        return 1
    if changed:
        print(f"{command}: {changed}", file=sys.stderr)
    return 0


def _log_to_stderr(level: str) -> None:
    logging.basicConfig(
        level=level.upper(), stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )


def run(args: argparse.Namespace) -> int:
    import signal

    asked: list[int] = []  # a stop asked for while it loads: honoured as soon as the loop runs
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda number, _: asked.append(number))

    from appliance.config.http import check_host_port
    from appliance.config.loader import load_config
    from appliance.lifecycle import BoundedLoop, leave
    from appliance.runtime import Runtime
    from appliance.store.migrations import SchemaTooNew
    from appliance.world import WorldFailed

    try:
        config = load_config(args.config)
        if args.http:
            check_host_port(args.http)
    except ConfigError as exc:
        print("\n".join(exc.lines), file=sys.stderr)
        return 2
    except ValueError as exc:
        print(f"--http: {exc}", file=sys.stderr)
        return 2
    if code := _private_data_dir(args.data_dir, "appliance", create=False):  # the store makes it
        return code
    _log_to_stderr(args.log_level)
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)  # we log failures ourselves, once
    from appliance.ops.memory import return_big_blocks

    return_big_blocks()  # a password check's 16 MB goes back to the system when it is done
    runtime = Runtime(config, args.config.resolve(), args.data_dir, args.http)
    code, loop = 0, BoundedLoop()
    try:
        loop.run(_serve(runtime, asked))
    except WorldFailed as exc:
        print(f"appliance: the simulated world did not start: {exc}", file=sys.stderr)
        code = 2 if exc.exit_code == 2 else 1
    except (OSError, SchemaTooNew) as exc:
        print(f"appliance: cannot start: {exc}", file=sys.stderr)
        code = 1
    # Everything was stopped and closed in order; the interpreter's own exit would only add its teardown
    # of modules (75 ms on a desk, twice that under load) or, if something would not end, wait for it.
    leave(code)


async def _serve(runtime: Runtime, asked: list[int]) -> None:
    import asyncio
    import signal

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    if asked:
        stop.set()
    await runtime.serve(stop)
