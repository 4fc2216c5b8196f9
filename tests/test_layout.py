"""The house rules (docs/development.md) that code can check: import direction and module docstrings."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.conftest import ROOT

# package -> packages of ours it may import (hal <- drivers <- appliance; bench apart)
ALLOWED = {
    "hal": {"hal"},
    "drivers": {"drivers", "hal"},
    "appliance": {"appliance", "drivers", "hal"},
    # the bench reuses the config-file plumbing only; it talks to the box over its real protocols
    "bench": {"bench", "appliance.config"},
}
# bench/perf measures our own code against bare-library baselines, so it imports what it measures
EXEMPT = ("bench/perf/",)
OURS = set(ALLOWED)


def modules(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return {name for name in found if name.split(".")[0] in OURS}


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_imports_run_one_way(package: str) -> None:
    allowed = ALLOWED[package]
    wrong = [
        f"{path.relative_to(ROOT)} imports {name}"
        for path in modules(package)
        if not str(path.relative_to(ROOT)).startswith(EXEMPT)
        for name in imports(path)
        if not any(name == a or name.startswith(a + ".") for a in allowed)
    ]
    assert wrong == []


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_every_module_says_what_it_is_for(package: str) -> None:
    missing = [
        str(p.relative_to(ROOT)) for p in modules(package) if not ast.get_docstring(ast.parse(p.read_text()))
    ]
    assert missing == []
