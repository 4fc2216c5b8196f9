"""The house rules (docs/architecture.md, docs/development.md) that code can check: import direction, module
docstrings and sizes, the appliance package's root, typed service statuses, no citations from outside."""

from __future__ import annotations

import ast
import subprocess
from pathlib import Path

import pytest

from tests.conftest import ROOT

# package or subpackage -> names of ours its modules may import (hal <- drivers <- appliance; bench apart).
# A module follows the longest entry it is in.
ALLOWED = {
    "hal": {"hal"},
    "drivers": {"drivers", "hal"},
    "appliance": {"appliance", "drivers", "hal"},
    # the bench reuses the config-file plumbing only; it talks to the box over its real protocols
    "bench": {"bench", "appliance.config"},
    # bench/perf measures our own code against bare-library baselines, so it imports what it measures
    "bench.perf": {"appliance", "bench", "drivers", "hal"},
    # `bench perf` is the one way from the rest of the bench into bench/perf
    "bench.cli": {"bench", "appliance.config", "bench.perf.runner"},
}
# entry -> names its modules may not import although a shorter allowed name covers them: what bench/perf
# imports stays out of the rest of the bench (its shared helpers are in bench/harness). Of an allowed and a
# denied name that both cover an import, the longer decides.
DENIED = {
    "bench": {"bench.perf"},
    "bench.cli": {"bench.perf"},
}
PACKAGES = sorted({entry.split(".")[0] for entry in ALLOWED})


def modules(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def covers(prefix: str, name: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def entry(module: str) -> str:
    """The longest entry of ALLOWED that `module` is in."""
    return max((key for key in ALLOWED if covers(key, module)), key=len)


def may_import(module: str, name: str) -> bool:
    key = entry(module)
    allowed = max((len(a) for a in ALLOWED[key] if covers(a, name)), default=-1)
    denied = max((len(d) for d in DENIED.get(key, ()) if covers(d, name)), default=-1)
    return allowed > denied


def imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return {name for name in found if name.split(".")[0] in PACKAGES}


@pytest.mark.parametrize("key", sorted(ALLOWED))
def test_imports_run_one_way(key: str) -> None:
    wrong = [
        f"{path.relative_to(ROOT)} imports {name}"
        for path in modules(key.split(".")[0])
        if entry(module_name(path)) == key
        for name in imports(path)
        if not may_import(module_name(path), name)
    ]
    assert wrong == []


@pytest.mark.parametrize(
    ("module", "name", "allowed"),
    [
        ("bench.perf.safety", "hal.gpio.mock", True),  # what it measures
        ("bench.perf.runner", "bench.harness.runtime", True),
        ("bench.harness.runtime", "hal.gpio.mock", False),  # the harness is bench like the rest
        ("bench.upstream.rig", "bench.perf.processes", False),
        ("bench.upstream.rig", "bench.harness.sim", True),
        ("bench.cli", "bench.perf.runner", True),
        ("bench.cli", "bench.perf.stops", False),
        ("bench.cli", "appliance.config.loader", True),
        ("bench.perfect", "appliance.store", False),  # a name that only begins like bench.perf
    ],
)
def test_the_rules_say_what_they_mean(module: str, name: str, allowed: bool) -> None:
    assert may_import(module, name) is allowed


@pytest.mark.parametrize("package", PACKAGES)
def test_every_module_says_what_it_is_for(package: str) -> None:
    missing = [
        str(p.relative_to(ROOT)) for p in modules(package) if not ast.get_docstring(ast.parse(p.read_text()))
    ]
    assert missing == []


MAX_LINES = 300  # a module a reader takes in at one sitting; tests may be longer (one test per scene)


@pytest.mark.parametrize("package", [*PACKAGES, "image"])
def test_no_module_is_over_300_lines(package: str) -> None:
    long = {
        str(p.relative_to(ROOT)): n
        for p in sorted((ROOT / package).rglob("*.py"))
        if (n := len(p.read_text().splitlines())) > MAX_LINES
    }
    assert long == {}


# The appliance package's root: the composition root and what every part shares. The field side, the
# commands and the runtime's self-watch have their own packages (docs/architecture.md).
APPLIANCE_ROOT = {
    "__init__",
    "__main__",
    "runtime",
    "service",
    "lifecycle",
    "child",
    "records",
    "tomlfile",
    "world",
}


def test_the_appliance_root_holds_the_composition_root_and_what_all_share() -> None:
    assert {p.stem for p in (ROOT / "appliance").glob("*.py")} == APPLIANCE_ROOT


def test_every_service_status_model_is_typed_by_its_service_name() -> None:
    """A status read back from JSON (a test, a client) gets each service's own model: every model of a kind
    of service is registered under that kind."""
    import appliance.status.document  # noqa: F401  (every section module)
    from appliance.status.service import SERVICE_KINDS, ServiceStatus

    def subclasses(cls: type[ServiceStatus]) -> set[type[ServiceStatus]]:
        return {s for c in cls.__subclasses__() for s in {c, *subclasses(c)}}

    assert subclasses(ServiceStatus) <= set(SERVICE_KINDS.values())


def test_nothing_cites_documents_outside_the_repository() -> None:
    """Code and docs cite docs/ (docs/architecture.md first), never planning files kept elsewhere."""
    outside = ("DESIGN" + ".md", "CONTRACT" + ".md", "MISSION" + ".md")
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    citing = [
        name
        for name in tracked.split()
        if (path := ROOT / name).suffix in {".py", ".md", ".toml", ".sh", ".txt", ".cfg", ""}
        and path.is_file()
        and any(doc in path.read_text(errors="replace") for doc in outside)
    ]
    assert citing == []
