"""The command lines of `appliance health`, `appliance update` and `appliance credential` (docs/updates.md).

Only argparse here: what each command needs is imported when it runs (appliance/cli/main.py keeps `appliance
safety` small the same way).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from appliance.tomlfile import DEFAULT_CONFIG, ConfigError

NAMES = ("health", "update", "credential")


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, got {text!r}") from None
    if not 0 <= value <= 86400:
        raise argparse.ArgumentTypeError(f"expected 0 to 86400 seconds, got {text!r}")
    return value


def add_parsers(commands: Any, data_dir: Path) -> None:
    from appliance.update.health import DEFAULT_TIMEOUT_S, SYSTEMCTL, UNITS
    from appliance.update.rauc import RAUC
    from appliance.update.state import STATE_DIR_ENV, default_state_dir

    health = commands.add_parser("health", help="is this boot healthy enough to commit an update?")
    health.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="appliance.toml of the box")
    health.add_argument(
        "--timeout",
        type=_seconds,
        default=DEFAULT_TIMEOUT_S,
        help=f"seconds (default {DEFAULT_TIMEOUT_S:.0f})",
    )
    health.add_argument("--json", action="store_true", help="print the verdict as JSON")
    health.add_argument("--save", type=Path, metavar="FILE", help="also write the verdict as JSON here")
    health.add_argument(
        "--unit",
        action="append",
        metavar="NAME",
        help=f"a unit that must be active (default: {', '.join(UNITS)})",
    )
    health.add_argument("--systemctl", default=SYSTEMCTL, metavar="PATH", help=f"default {SYSTEMCTL}")

    update = commands.add_parser("update", help="install a RAUC bundle, show the slots, commit or fall back")
    update.add_argument("file", type=Path, nargs="?", metavar="FILE", help="a .raucb bundle to install")
    actions = update.add_mutually_exclusive_group()
    actions.add_argument("--status", action="store_true", help="the slots and the last update's outcome")
    actions.add_argument("--commit", action="store_true", help="after a healthy boot: mark it good")
    actions.add_argument("--fall-back", metavar="REASON", help="in a trial boot that failed: go back")
    actions.add_argument(
        "--from-request", action="store_true", help="install the bundle uploaded through the page"
    )
    update.add_argument("--json", action="store_true", help="with --status: print JSON")
    update.add_argument(
        "--no-reboot", action="store_true", help="do not reboot after an install or fall-back"
    )
    update.add_argument("--data-dir", type=Path, default=data_dir, help="with --from-request: the runtime's")
    update.add_argument("--rauc", default=RAUC, metavar="PATH", help=f"the rauc command (default {RAUC})")
    update.add_argument(
        "--state-dir",
        type=Path,
        default=default_state_dir(),
        help=f"the update state directory (default ${STATE_DIR_ENV} or {default_state_dir()})",
    )
    update.add_argument("--systemctl", default=SYSTEMCTL, metavar="PATH", help=f"default {SYSTEMCTL}")

    credential = commands.add_parser("credential", help="make the admin credential, its plain text to a file")
    credential.add_argument("--data-dir", type=Path, default=data_dir, help="the runtime's data directory")
    credential.add_argument("--write", type=Path, metavar="FILE", help="the plain text into FILE (mode 0600)")
    credential.add_argument(
        "--console", type=Path, nargs="?", const=Path("/dev/console"), metavar="DEVICE", help="and/or here"
    )
    credential.add_argument("--owner", metavar="USER", help="who runs `appliance run` (as root)")


def run(args: argparse.Namespace, argv: list[str]) -> int:
    if args.command == "health":
        return _health(args)
    if args.command == "credential":
        from appliance.cli.credential import provision

        return provision(args.data_dir, args.write, args.console, args.owner)
    return _update(args, argv)


def _health(args: argparse.Namespace) -> int:
    from appliance.config.loader import load_config
    from appliance.update.health import run, target

    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print("\n".join(exc.lines), file=sys.stderr)
        return 2
    units = tuple(args.unit) if args.unit else None
    where = target(config, units, args.systemctl) if units else target(config, systemctl=args.systemctl)
    return run(where, args.timeout, args.json, args.save)


def _update(args: argparse.Namespace, argv: list[str]) -> int:
    from appliance.update.installer import Tools, install, not_root
    from appliance.update.rauc import Rauc
    from appliance.update.state import StateDir

    chosen = [args.status, args.commit, args.fall_back is not None, args.from_request, args.file is not None]
    if sum(chosen) != 1:
        print(
            "appliance update: give one of FILE, --status, --commit, --fall-back REASON, --from-request",
            file=sys.stderr,
        )
        return 2
    if args.json and not args.status:
        print("appliance update: --json goes with --status", file=sys.stderr)
        return 2
    tools = Tools(Rauc(args.rauc), StateDir(args.state_dir), args.systemctl)
    if args.status:
        from appliance.update.report import show

        return show(tools, args.json)
    if (problem := not_root(" ".join(["appliance", *argv]))) is not None:
        print(problem, file=sys.stderr)
        return 1
    if args.file is not None:
        if not args.file.is_file():
            print(f"appliance update: {args.file}: no such file", file=sys.stderr)
            return 2
        return install(tools, args.file.resolve(), reboot=not args.no_reboot)
    if args.commit:
        from appliance.update.boot import commit

        return commit(tools)
    if args.fall_back is not None:
        from appliance.update.boot import fall_back

        if not args.fall_back.strip():
            print("appliance update: --fall-back: say why (the reason is recorded)", file=sys.stderr)
            return 2
        return fall_back(tools, args.fall_back.strip(), reboot=not args.no_reboot)
    from appliance.update.request import from_request

    return from_request(tools, args.data_dir, reboot=not args.no_reboot)
