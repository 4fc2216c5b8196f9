"""Requirements, markers and wheel names, as far as the package build needs them (no `packaging` here).

pip evaluates environment markers against the Python that runs it, not the one `--python-version` names,
so the build evaluates them itself for each target: a marker is a Python expression of names, strings,
comparisons, `and`, `or` and parentheses, which `ast` parses (`~=` and `===` are refused).
"""

from __future__ import annotations

import ast
import operator
import re
import zipfile
from dataclasses import dataclass
from email.parser import HeaderParser
from pathlib import Path

_NAME = re.compile(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[([^\]]*)\])?\s*(.*)")
_VERSION_VARS = {"python_version", "python_full_version", "implementation_version"}
_ORDER = {ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Lt: operator.lt, ast.LtE: operator.le}
_ORDER |= {ast.Gt: operator.gt, ast.GtE: operator.ge}


class RequirementError(ValueError):
    """A requirement or marker this build cannot read."""


def normalize(name: str) -> str:
    """PEP 503's form of a distribution name: `RPi.GPIO` and `rpi-gpio` are one project."""
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass(frozen=True)
class Requirement:
    name: str  # normalized
    extras: frozenset[str]
    spec: str  # `>=1.26,<3`, or empty
    marker: str  # empty: always

    @classmethod
    def parse(cls, text: str) -> Requirement:
        head, _, marker = text.partition(";")
        match = _NAME.fullmatch(head)
        if match is None:
            raise RequirementError(f"cannot read requirement {text!r}")
        name, extras, spec = match.groups()
        spec = spec.strip().removeprefix("(").removesuffix(")").strip()  # METADATA's `name (>=1)` form
        names = frozenset(normalize(e) for e in (extras or "").split(",") if e.strip())
        return cls(normalize(name), names, spec, marker.strip())

    def applies(self, env: dict[str, str], extras: frozenset[str] = frozenset()) -> bool:
        """Whether the marker holds on `env`, with `extra` set to each of `extras` (or "" if none)."""
        if not self.marker:
            return True
        return any(evaluate(self.marker, {**env, "extra": extra}) for extra in (extras or {""}))

    def for_pip(self) -> str:
        """The requirement for pip without its marker (already evaluated for the target)."""
        extras = f"[{','.join(sorted(self.extras))}]" if self.extras else ""
        return f"{self.name}{extras}{self.spec}"


def target_env(python: str, machine: str) -> dict[str, str]:
    """The marker variables of CPython `python` (3.11) on Linux on `machine` (x86_64, aarch64)."""
    return {
        "python_version": python,
        "python_full_version": f"{python}.0",
        "implementation_version": f"{python}.0",
        "implementation_name": "cpython",
        "platform_python_implementation": "CPython",
        "platform_machine": machine,
        "platform_system": "Linux",
        "sys_platform": "linux",
        "os_name": "posix",
        "platform_release": "",
        "platform_version": "",
    }


def evaluate(marker: str, env: dict[str, str]) -> bool:
    try:
        tree = ast.parse(marker.strip(), mode="eval").body
    except SyntaxError:
        raise RequirementError(f"cannot evaluate marker {marker!r}") from None
    return _truth(tree, env, marker)


def _truth(node: ast.expr, env: dict[str, str], marker: str) -> bool:
    if isinstance(node, ast.BoolOp):
        values = (_truth(v, env, marker) for v in node.values)
        return all(values) if isinstance(node.op, ast.And) else any(values)
    if isinstance(node, ast.Compare) and len(node.ops) == 1:
        left, right = node.left, node.comparators[0]
        return _compare(_value(left, env, marker), node.ops[0], _value(right, env, marker), _is_version(left))
    raise RequirementError(f"cannot evaluate marker {marker!r}")


def _value(node: ast.expr, env: dict[str, str], marker: str) -> str:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.Name) and (node.id in env or node.id == "extra"):
        return normalize(env.get(node.id, "")) if node.id == "extra" else env[node.id]
    raise RequirementError(f"cannot evaluate marker {marker!r}")


def _is_version(node: ast.expr) -> bool:
    return isinstance(node, ast.Name) and node.id in _VERSION_VARS


def _compare(left: str, op: ast.cmpop, right: str, version: bool) -> bool:
    if isinstance(op, ast.In | ast.NotIn):
        return (left in right) == isinstance(op, ast.In)
    if not isinstance(op, ast.Eq | ast.NotEq | ast.Lt | ast.LtE | ast.Gt | ast.GtE):
        raise RequirementError(f"cannot compare with {type(op).__name__}")
    if isinstance(op, ast.Eq | ast.NotEq) and not version:
        return (normalize(left) == normalize(right)) == isinstance(op, ast.Eq)
    if right.endswith(".*") and isinstance(op, ast.Eq | ast.NotEq):
        prefix = _numbers(right[:-2])
        return (_numbers(left)[: len(prefix)] == prefix) == isinstance(op, ast.Eq)
    a, b = _numbers(left), _numbers(right)
    width = max(len(a), len(b))
    a, b = a + (0,) * (width - len(a)), b + (0,) * (width - len(b))
    return bool(_ORDER[type(op)](a, b))


def _numbers(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", version.split("+")[0])[:3])


@dataclass(frozen=True)
class Wheel:
    path: Path
    name: str  # normalized
    version: str
    platforms: tuple[str, ...]  # `any`, `manylinux_2_17_x86_64`, ...

    @classmethod
    def at(cls, path: Path) -> Wheel:
        parts = path.name.removesuffix(".whl").split("-")
        if len(parts) not in (5, 6):
            raise RequirementError(f"not a wheel's file name: {path.name}")
        return cls(path, normalize(parts[0]), parts[1], tuple(parts[-1].split(".")))

    def requires(self) -> list[Requirement]:
        """Its METADATA's Requires-Dist."""
        with zipfile.ZipFile(self.path) as archive:
            names = archive.namelist()
            name = next(n for n in names if n.endswith(".dist-info/METADATA") and n.count("/") == 1)
            headers = HeaderParser().parsestr(archive.read(name).decode("utf-8"))
        return [Requirement.parse(line) for line in headers.get_all("Requires-Dist") or []]

    def glibc(self) -> tuple[int, int] | None:
        """The oldest glibc it runs on (None: no native code, or not a manylinux wheel)."""
        legacy = {"manylinux1": (2, 5), "manylinux2010": (2, 12), "manylinux2014": (2, 17)}
        found: list[tuple[int, int]] = []
        for tag in self.platforms:
            if match := re.match(r"manylinux_(\d+)_(\d+)_", tag):
                found.append((int(match[1]), int(match[2])))
            elif tag.split("_")[0] in legacy:
                found.append(legacy[tag.split("_")[0]])
        return min(found) if found else None
