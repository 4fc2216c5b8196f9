"""`image/deb/build --out DIR [--arch amd64|arm64] [--python 3.11,3.12,3.13]`: the .deb (docs/install-deb.md).

The build needs the network (pip); the package it makes installs without."""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
import time
from pathlib import Path

from debbuild.host import BuildError, commit_epoch, preflight, project_version, run
from debbuild.layout import PACKAGE, stage
from debbuild.wheels import MACHINES, build_app_wheel, build_wheelhouse

DEFAULT_PYTHONS = "3.11,3.12,3.13"  # Debian 12 and Raspberry Pi OS 12, Ubuntu 24.04, Debian 13


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="image/deb/build", description="Build the appliance's .deb.")
    parser.add_argument("--out", type=Path, required=True, help="folder for the .deb and the build log")
    parser.add_argument("--arch", choices=sorted(MACHINES), default="amd64", help="Debian architecture")
    parser.add_argument("--python", default=DEFAULT_PYTHONS, help=f"CPython versions ({DEFAULT_PYTHONS})")
    parser.add_argument("--version", help="the package's version (default: pyproject's, +g and the commit)")
    name, email = (
        os.environ.get("DEBFULLNAME", "Edge appliance"),
        os.environ.get("DEBEMAIL", "root@localhost"),
    )
    parser.add_argument(
        "--maintainer", default=f"{name} <{email}>", help="(default: $DEBFULLNAME <$DEBEMAIL>)"
    )
    return parser


def pythons(text: str) -> list[str]:
    versions = [v.strip() for v in text.split(",") if v.strip()]
    for version in versions:
        if not re.fullmatch(r"3\.\d+", version) or int(version.split(".")[1]) < 11:
            raise BuildError(f"--python {version}: the appliance needs CPython 3.11 or newer (3.11,3.12,...)")
    if not versions:
        raise BuildError("--python: name at least one version")
    return sorted(set(versions), key=lambda v: int(v.split(".")[1]))


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    out: Path = args.out.resolve()
    t0 = time.monotonic()
    try:
        preflight()
        targets = pythons(args.python)
        version = args.version or project_version()
        out.mkdir(parents=True, exist_ok=True)
        deb = out / f"{PACKAGE}_{version}_{args.arch}.deb"
        env = {"SOURCE_DATE_EPOCH": str(commit_epoch()), "LC_ALL": "C.UTF-8"}
        with open(out / "build-deb.log", "w") as log, tempfile.TemporaryDirectory(prefix="edge-deb-") as tmp:
            work = Path(tmp)
            _step(f"{PACKAGE} {version} for {args.arch}, CPython {', '.join(targets)}")
            _step("the runtime's wheel")
            app = build_app_wheel(version, work / "app", log, env)
            _step("binary wheels of its dependencies")
            house = build_wheelhouse(app, args.arch, targets, work / "download", log)
            _step("the package")
            root = work / "root"
            stage(root, house, args.arch, version, args.maintainer)
            # The wheels are zip files already: xz would take a minute to save 0.2 %, gzip takes seconds.
            run(["dpkg-deb", "--root-owner-group", "-Zgzip", "--build", root, deb], log, env=env)
        size = deb.stat().st_size / 2**20
        _step(f"{deb} ({size:.0f} MiB, {len(house.wheels)} wheels) in {time.monotonic() - t0:.0f} s")
        return 0
    except BuildError as exc:
        print(f"image/deb/build: {exc}\n(log: {out}/build-deb.log)", file=sys.stderr)
        return 1


def _step(text: str) -> None:
    print(f"image/deb/build: {text}", flush=True)
