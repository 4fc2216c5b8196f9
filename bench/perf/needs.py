"""What the sections of `bench perf` need from the machine beyond the Python packages: programs, root, a
preloadable library. Each is checked before anything runs, so that a machine without mosquitto is told at
once, with the command that installs it, and the sections that can run without it still do.

A section lists the needs without which it cannot run at all (it is written as {"skipped": reason}) and
the parts it leaves out without others (its other figures are still measured); a section that leaves a
part out asks the same Need here, so the declaration and the behaviour cannot drift apart.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bench.harness import faketime
from bench.upstream.broker import find_mosquitto


@dataclass(frozen=True)
class Need:
    lacking: str  # what is wrong when it is absent: "mosquitto is not installed"
    check: Callable[[], bool]  # True when the machine has it
    install: str  # the command (or step) that provides it

    def present(self) -> bool:
        return self.check()

    @property
    def reason(self) -> str:
        return f"{self.lacking} ({self.install})"


MOSQUITTO = Need(
    "mosquitto is not installed", lambda: find_mosquitto() is not None, "apt-get install mosquitto"
)
PGREP = Need("pgrep is not installed", lambda: shutil.which("pgrep") is not None, "apt-get install procps")
FAKETIME = Need(
    "libfaketime is not installed", lambda: faketime.library() is not None, "apt-get install faketime"
)
ROOT = Need("not running as root", lambda: os.geteuid() == 0, "run `bench perf` as root, e.g. with sudo")
IPROUTE2 = Need(
    "ip or tc is not installed",
    lambda: all(shutil.which(tool) is not None for tool in ("ip", "tc")),
    "apt-get install iproute2",
)
LITERT = Need(
    "no LiteRT interpreter (ai_edge_litert) in this Python",
    lambda: importlib.util.find_spec("ai_edge_litert") is not None,
    "pip install ai-edge-litert, on x86_64 and aarch64 Linux",
)


def first_missing(needs: tuple[Need, ...]) -> Need | None:
    return next((need for need in needs if not need.present()), None)


@dataclass(frozen=True)
class Part:
    """A part of a section that is left out, the rest still measured, when one of its needs is missing."""

    name: str
    needs: tuple[Need, ...]
    figures: tuple[str, ...] = ()  # the goals' keys that only this part measures
    quick: bool = True  # False: `--quick` leaves it out anyway


@dataclass(frozen=True)
class Section:
    """A section of `bench perf`: how it is measured, its goals and what it needs."""

    measure: Callable[[bool], dict[str, Any]]  # quick -> its result
    goals: dict[str, tuple[str, float]]  # ratio key: (comparison, goal), the product's goals
    needs: tuple[Need, ...] = ()  # without one of these the section is skipped
    parts: tuple[Part, ...] = ()

    def part_of(self, figure: str) -> Part | None:
        return next((part for part in self.parts if figure in part.figures), None)
