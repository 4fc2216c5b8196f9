"""The wheelhouse: a wheel of this checkout's runtime and binary wheels of all it needs, for one architecture
and each target CPython, with a lock per CPython (pip requirements with hashes) that postinst installs."""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from debbuild.host import REPO, BuildError, pip_command, pyproject, run
from debbuild.pep508 import Requirement, Wheel, target_env

RUNTIME_PACKAGES = ("appliance", "hal", "drivers")  # pyproject's packages without the bench
# Of the `device` extra only gpiod: RPi.GPIO has no binary wheels (docs/install-deb.md).
DEVICE_TAKEN = {"gpiod"}
SHIPPED_EXTRAS = ("device", "tflite")  # in the wheel's metadata; `train` and `dev` are the checkout's
MACHINES = {"amd64": "x86_64", "arm64": "aarch64"}
# manylinux wheels up to glibc 2.35, Ubuntu 22.04's (JetPack 6); Debian 12 and Raspberry Pi OS have 2.36.
GLIBC_CEILING = 35


@dataclass(frozen=True)
class Wheelhouse:
    locks: dict[str, list[Wheel]]  # "3.11" -> what that CPython installs, the app first

    @property
    def wheels(self) -> list[Wheel]:
        """Every wheel to ship, once."""
        unique = {w.path.name: w for lock in self.locks.values() for w in lock}
        return [unique[name] for name in sorted(unique)]

    def glibc(self) -> tuple[int, int] | None:
        needs = [g for w in self.wheels if (g := w.glibc()) is not None]
        return max(needs) if needs else None


def build_app_wheel(version: str, work: Path, log: IO[str], env: dict[str, str]) -> Wheel:
    """A wheel of appliance, hal and drivers alone, at `version`, from a copy of this checkout."""
    src = work / "app-src"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for package in RUNTIME_PACKAGES:
        shutil.copytree(REPO / package, src / package, ignore=ignore)
    (src / "pyproject.toml").write_text(_runtime_pyproject(version))
    run([*pip_command(), "wheel", "--no-deps", "--wheel-dir", work / "app", src], log, env=env)
    wheels = list((work / "app").glob("*.whl"))
    if len(wheels) != 1:
        raise BuildError(f"pip wheel made {len(wheels)} wheels of the runtime, not one")
    return Wheel.at(wheels[0])


def _runtime_pyproject(version: str) -> str:
    """pyproject.toml narrowed to the runtime: its dependencies, the `appliance` command, no bench."""
    whole = pyproject()
    project, setuptools = whole["project"], whole["tool"]["setuptools"]
    q = json.dumps  # a JSON string or list of strings is TOML too
    package_data = {k: v for k, v in setuptools.get("package-data", {}).items() if k in RUNTIME_PACKAGES}
    lines = [
        "[build-system]",
        f"requires = {q(whole['build-system']['requires'])}",
        f"build-backend = {q(whole['build-system']['build-backend'])}",
        "[project]",
        *(f"{key} = {q(project[key])}" for key in ("name", "description", "requires-python", "license")),
        f"version = {q(version)}",
        f"dependencies = {q(project['dependencies'])}",
        "[project.optional-dependencies]",
        *(
            f"{q(key)} = {q(value)}"
            for key, value in project["optional-dependencies"].items()
            if key in SHIPPED_EXTRAS
        ),
        "[project.scripts]",
        f"appliance = {q(project['scripts']['appliance'])}",
        "[tool.setuptools.packages.find]",
        f"include = {q([f'{p}*' for p in RUNTIME_PACKAGES])}",
        "[tool.setuptools.package-data]",
        *(f"{key} = {q(value)}" for key, value in package_data.items()),
    ]
    return "\n".join(lines) + "\n"


def build_wheelhouse(app: Wheel, arch: str, pythons: list[str], work: Path, log: IO[str]) -> Wheelhouse:
    """Binary wheels of the runtime's dependencies for each CPython in `pythons` on Linux `arch`."""
    machine = MACHINES[arch]
    locks: dict[str, list[Wheel]] = {}
    for python in pythons:
        env = target_env(python, machine)
        requires = app.requires()
        roots = [r for r in requires if r.applies(env)]
        roots += [r for r in requires if r.name in DEVICE_TAKEN and r.applies(env, frozenset({"device"}))]
        dest = work / f"cp{python.replace('.', '')}-{machine}"
        wanted = roots
        for _ in range(3):  # pip judges markers by its own Python: fetch what it left out, by name
            _download(wanted, python, machine, dest, log)
            found = {app.name: app, **_index(dest)}
            taken, missing = _closure([Requirement(app.name, frozenset(), "", ""), *roots], found, env)
            if not missing:
                break
            wanted = [*wanted, *missing]
        else:
            names = ", ".join(sorted({r.name for r in missing}))
            raise BuildError(f"Python {python} on {machine}: no wheel found for {names}")
        locks[python] = [app, *sorted((w for w in taken if w is not app), key=lambda w: w.name)]
    return Wheelhouse(locks)


def _download(requirements: list[Requirement], python: str, machine: str, dest: Path, log: IO[str]) -> None:
    glibcs = range(17, GLIBC_CEILING + 1)
    platforms = [f"manylinux2014_{machine}", *(f"manylinux_2_{minor}_{machine}" for minor in glibcs)]
    run(
        [
            *pip_command(),
            "download",
            "--only-binary=:all:",
            "--implementation=cp",
            f"--python-version={python}",
            *(f"--platform={p}" for p in platforms),
            "--progress-bar=off",
            "--dest",
            dest,
            *(r.for_pip() for r in requirements),
        ],
        log,
    )


def _index(folder: Path) -> dict[str, Wheel]:
    wheels: dict[str, Wheel] = {}
    for path in sorted(folder.glob("*.whl")):
        wheel = Wheel.at(path)
        if wheel.name in wheels:
            raise BuildError(f"two versions of {wheel.name}: {wheels[wheel.name].path.name}, {path.name}")
        wheels[wheel.name] = wheel
    return wheels


def _closure(
    roots: list[Requirement], found: dict[str, Wheel], env: dict[str, str]
) -> tuple[list[Wheel], list[Requirement]]:
    """The wheels `roots` need on `env`, following each wheel's Requires-Dist; and the requirements with no
    wheel in `found`."""
    extras: dict[str, frozenset[str]] = {}
    missing: list[Requirement] = []
    queue = list(roots)
    while queue:
        req = queue.pop()
        wheel = found.get(req.name)
        if wheel is None:
            missing.append(req)
            continue
        if req.name in extras and req.extras <= extras[req.name]:
            continue
        extras[req.name] = extras.get(req.name, frozenset()) | req.extras
        queue += [dep for dep in wheel.requires() if dep.applies(env, extras[req.name])]
    return [found[name] for name in extras], missing


def write_lock(path: Path, python: str, arch: str, wheels: list[Wheel]) -> None:
    """The lock: pip requirements pinned by version and sha256; postinst installs it with --require-hashes."""
    lines = [
        f"# edge-appliance's wheels for CPython {python} on Linux {MACHINES[arch]}: postinst installs these,",
        "# offline: pip install --no-index --find-links /opt/appliance/wheels --require-hashes -r THIS",
    ]
    for wheel in wheels:
        digest = hashlib.sha256(wheel.path.read_bytes()).hexdigest()
        lines.append(f"{wheel.name}=={wheel.version} --hash=sha256:{digest}  # {wheel.path.name}")
    path.write_text("\n".join(lines) + "\n")


def lock_name(python: str) -> str:
    return f"lock-cp{python.replace('.', '')}.txt"
