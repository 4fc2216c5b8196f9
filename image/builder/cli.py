"""`image/build --board BOARD --out DIR [--from N] [--only N]`: the stages in order, with progress."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO

from builder.boards import BOARDS, board
from builder.boot import build_boot
from builder.bundle import build_bundle, ensure_keys
from builder.context import Build, commit_epoch, project_version
from builder.host import BuildError, debian_mirror, preflight, security_mirror
from builder.layout import build_layout
from builder.manifest import build_manifest
from builder.rootfs import build_rootfs
from builder.runtime import build_runtime

Stage = Callable[[Build, IO[str]], None]
STAGES: list[tuple[int, str, Stage | None]] = [
    (10, "rootfs", build_rootfs),
    (20, "runtime", build_runtime),
    (30, "board", build_boot),
    (40, "layout", build_layout),
    (50, "bundle", build_bundle),
    (60, "manifest", None),  # needs the timings: run below
]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="image/build", description="Build the flashable image and its update bundle."
    )
    parser.add_argument("--board", required=True, choices=sorted(BOARDS), help="the board to build for")
    parser.add_argument(
        "--out", type=Path, required=True, help="output folder (the image, bundle, manifest, logs)"
    )
    parser.add_argument(
        "--from",
        dest="start",
        type=int,
        default=0,
        metavar="N",
        help="start at stage N (the earlier stages' results must be in --out)",
    )
    parser.add_argument("--only", type=int, metavar="N", help="run stage N alone")
    parser.add_argument("--keys", type=Path, help="signing PKI folder (default: OUT/keys, made if missing)")
    parser.add_argument("--mirror", help="Debian mirror URL (default: the one this host's apt uses)")
    parser.add_argument(
        "--security-mirror",
        help="mirror of Debian's security updates (default: the one this host's apt uses; 'none': without)",
    )
    parser.add_argument(
        "--compression",
        choices=["xz", "gzip"],
        default="xz",
        help="of the root slot's squashfs (default xz: smallest; gzip: quicker to build)",
    )
    parser.add_argument(
        "--version", help="the version the image and bundle carry (default: from the checkout)"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    the_board = board(args.board)
    out: Path = args.out.resolve()
    try:
        preflight(the_board)
        out.mkdir(parents=True, exist_ok=True)
        (out / "logs").mkdir(exist_ok=True)
        keys = (args.keys or out / "keys").resolve()
        with open(out / "logs/00-preflight.log", "w") as log:
            if ensure_keys(keys, log):
                print(f"image/build: made a development signing PKI in {keys} (bring your own with --keys)")
        security = args.security_mirror or security_mirror()
        if security in (None, "none"):
            security = None
            print("image/build: no security mirror: the image has the fixes of its last point release only")
        b = Build(
            the_board,
            out,
            args.mirror or debian_mirror(),
            keys,
            args.version or project_version(),
            commit_epoch(),
            args.compression,
            security,
        )
        return _run_stages(b, args.start, args.only)
    except BuildError as exc:
        print(f"image/build: {exc}", file=sys.stderr)
        return 1


def _run_stages(b: Build, start: int, only: int | None) -> int:
    chosen = [s for s in STAGES if (s[0] == only if only is not None else s[0] >= start)]
    timings_file = b.out / "logs/stage-seconds.json"
    timings: dict[str, float] = json.loads(timings_file.read_text()) if timings_file.exists() else {}
    print(f"image/build: {b.board.name} {b.version} into {b.out}", flush=True)
    for i, (number, name, fn) in enumerate(chosen, 1):
        label = f"{number:02d}-{name}"
        print(f"[{i}/{len(chosen)}] {label} ...", end="", flush=True)
        t0 = time.monotonic()
        with open(b.out / f"logs/{label}.log", "w") as log:
            try:
                if fn is not None:
                    fn(b, log)
                else:
                    report = build_manifest(b, log, timings)
            except BuildError as exc:
                print(" failed")
                raise BuildError(f"stage {label}: {exc}\n(log: {b.out}/logs/{label}.log)") from None
        timings[label] = round(time.monotonic() - t0, 1)
        timings_file.write_text(json.dumps(timings, indent=2))
        print(f" done ({timings[label]:.0f} s)", flush=True)
    if any(name == "manifest" for _, name, _ in chosen):
        _summary(report)
    return 0


def _summary(report: dict[str, object]) -> None:
    print(json.dumps(report, indent=2))
