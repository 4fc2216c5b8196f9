"""A scenario file: the world, a timeline of steps at given seconds, and what must hold (the expectations).

Every table refuses unknown keys; a mistake is reported as `FILE: key.path: problem`, as config files are.
Steps and expectations are told apart by their `type`. The model says only what a scenario is; the runner
(runner.py) plays it and checks.py judges it.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, ValidationError, model_validator

from appliance.config.base import Settings
from appliance.config.errors import describe
from appliance.config.loader import ConfigError, read_toml

SCENARIOS = Path(__file__).resolve().parents[1] / "scenarios"
QUICK_MAX_S = 60.0  # a quick run is for the test suite
NAME = re.compile(r"[a-z0-9][a-z0-9-]*")
DEFECTS = Literal["scratch", "missing_hole", "crack", "stain", "misplaced"]
Name = Annotated[str, Field(min_length=1, max_length=80)]
Seconds = Annotated[float, Field(gt=0)]


class CameraWorld(Settings):
    """Changes to the bench camera of examples/bench.toml (docs/bench.md has each key)."""

    defect_rate: Annotated[float, Field(ge=0, le=1)] | None = None
    weights: dict[DEFECTS, Annotated[float, Field(ge=0)]] | None = None  # none given: the example's
    seed: int | None = None


class World(Settings):
    """The bench world of examples/bench.toml, with the world's MQTT broker or without, and these changes."""

    broker: bool = False
    # how the Modbus TCP slaves answer a read of registers between their points: refused (the example's, as
    # many devices do), or read as 0; refused, the box's `max_gap = "auto"` planner marks a read's channels
    # error once when it first tries one that spans them, some time in its first minute (docs/drivers.md)
    holes: Literal["invalid", "zero"] | None = None
    camera: CameraWorld = CameraWorld()


class Quick(Settings):
    """The `--quick` run: every moment and the duration times `scale`; bounds stay as they are."""

    scale: Annotated[float, Field(gt=0, le=1)]


class _Step(Settings):
    at_s: Annotated[float, Field(ge=0)]  # seconds after the box was ready (times quick.scale with --quick)
    name: Name | None = None  # what expectations call it by


class FaultStep(_Step):
    """POST /faults on the bench's fault API: a slave misbehaves until cleared."""

    type: Literal["fault"]
    target: Name  # a TCP slave's name, or LINE/UNIT for an RTU slave
    no_answer: bool | None = None
    late_s: Annotated[float, Field(ge=0)] | None = None
    exception: Annotated[int, Field(ge=1, le=255)] | None = None
    bad_crc: bool | None = None
    garbage: bool | None = None
    truncate: bool | None = None
    bearing_fault: Annotated[float, Field(ge=0, le=1)] | None = None
    babble: Annotated[float, Field(ge=0, le=1)] | None = None

    def faults(self) -> dict[str, object]:
        return self.model_dump(exclude={"at_s", "name", "type", "target"}, exclude_none=True)


class TargetStep(_Step):
    """A fault cleared, a TCP slave's connections dropped, an RTU line unplugged or plugged back in."""

    type: Literal["clear", "disconnect", "unplug", "plug_in"]
    target: Name


class SerialStep(_Step):
    type: Literal["serial"]
    target: Name
    action: Literal[
        "garbage", "bad_checksum", "truncated", "overrange", "silence", "resume", "unplug", "replug"
    ]


class CameraStep(_Step):
    type: Literal["camera"]
    target: Name
    action: Literal["freeze", "resume", "drop"]


class BurstStep(_Step):
    """The camera's next `parts` parts all carry `label`."""

    type: Literal["camera_burst"]
    target: Name
    label: DEFECTS
    parts: Annotated[int, Field(ge=1, le=1000)] = 5


class EstopStep(_Step):
    """A reset or a manual trip of the stop line through the box's API, as its admin."""

    type: Literal["estop_reset", "estop_trip"]
    reason: Annotated[str, Field(max_length=300)] | None = None


Step = Annotated[
    FaultStep | TargetStep | SerialStep | CameraStep | BurstStep | EstopStep, Field(discriminator="type")
]


class _Check(Settings):
    name: Name | None = None  # in the verdicts; default: the type


class NeverTripped(_Check):
    """The stop line never tripped: no trip counted, none seen, no trip event."""

    type: Literal["never_tripped"]


class TrippedWithin(_Check):
    """The stop line tripped within `within_s` after the step `after`."""

    type: Literal["tripped_within"]
    after: Name
    within_s: Seconds


class RestoredWithin(_Check):
    """The stop line was energized again within `within_s` after the step `after` (a reset)."""

    type: Literal["restored_within"]
    after: Name
    within_s: Seconds


class StaleThenRecovered(_Check):
    """Some channel of `sensors` (ids, or a device: every channel of it) lost its quality (stale or error)
    within `stale_within_s` after the step `after`, and all were ok within `recover_within_s` after the step
    `recovered`."""

    type: Literal["stale_then_recovered"]
    sensors: Annotated[list[Name], Field(min_length=1)]
    after: Name
    stale_within_s: Seconds
    recovered: Name
    recover_within_s: Seconds


class SensorsOk(_Check):
    """Every sensor but those in `ignore` (ids or devices) kept quality ok in every sample."""

    type: Literal["sensors_ok"]
    ignore: list[Name] = []


class InsightRaisedAndCleared(_Check):
    """The insight `insight` (an id, or its kind: `estop-tripped`, `bus-garbage` for every `bus-garbage:*`)
    was listed, within `raised_within_s` after the step `after` when given, then no longer, within
    `cleared_within_s` after the step `cleared_by` when given (else before the end)."""

    type: Literal["insight_raised_and_cleared"]
    insight: Name
    after: Name | None = None
    raised_within_s: Seconds | None = None
    cleared_by: Name | None = None
    cleared_within_s: Seconds | None = None


class InsightRaised(_Check):
    """The insight `insight` was listed within `within_s` after the step `after` (one that lasts: a rising
    counter's insight stays 2 min after its last rise)."""

    type: Literal["insight_raised"]
    insight: Name
    after: Name
    within_s: Seconds


class QcDecides(_Check):
    """The QC pipeline decided on at least `min_frames` frames during the run, its p99 latency at the end
    at most `max_p99_ms` when given."""

    type: Literal["qc_decides"]
    min_frames: Annotated[int, Field(ge=1)]
    max_p99_ms: Seconds | None = None


Expectation = Annotated[
    NeverTripped
    | TrippedWithin
    | RestoredWithin
    | StaleThenRecovered
    | SensorsOk
    | InsightRaisedAndCleared
    | InsightRaised
    | QcDecides,
    Field(discriminator="type"),
]


class Scenario(Settings):
    description: Annotated[str, Field(min_length=1)]
    duration_s: Seconds
    quick: Quick
    settle_s: Annotated[float, Field(ge=0, le=300)] = 10.0  # the box's uptime before the timeline starts
    world: World = World()
    steps: list[Step] = []
    expect: Annotated[list[Expectation], Field(min_length=1)]

    @model_validator(mode="after")
    def _consistent(self) -> Scenario:
        if self.duration_s * self.quick.scale > QUICK_MAX_S:
            raise ValueError(
                f"quick.scale: the quick run takes {self.duration_s * self.quick.scale:g} s; "
                f"at most {QUICK_MAX_S:g} s (duration_s x scale)"
            )
        names = [s.name for s in self.steps if s.name is not None]
        if dupes := sorted({n for n in names if names.count(n) > 1}):
            raise ValueError(f"steps: two steps are named {dupes[0]!r}")
        for step in self.steps:
            if step.at_s >= self.duration_s:
                raise ValueError(f"steps: {step.type} at {step.at_s:g} s is not before duration_s")
        checks = [c.name or c.type for c in self.expect]
        if dupes := sorted({n for n in checks if checks.count(n) > 1}):
            raise ValueError(f"expect: two expectations are named {dupes[0]!r}: give each a name")
        for check in self.expect:
            for ref in ("after", "recovered", "cleared_by"):
                called = getattr(check, ref, None)
                if called is not None and called not in names:
                    raise ValueError(f"expect: {check.name or check.type}: {ref}: no step named {called!r}")
        return self


def scenario_path(name: str) -> Path:
    return SCENARIOS / f"{name}.toml"


def shipped() -> list[str]:
    return sorted(p.stem for p in SCENARIOS.glob("*.toml"))


def load_scenario(path: Path) -> Scenario:
    """The scenario in `path`, or ConfigError with one `FILE: key.path: problem` line per mistake."""
    raw = read_toml(path)
    try:
        return Scenario.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError([f"{path}: {line}" for line in describe(exc, raw)]) from None


def find_scenario(name: str) -> Path:
    """A shipped scenario's file by its name, or a path to a file; ConfigError if there is none."""
    if NAME.fullmatch(name):
        path = scenario_path(name)
        if path.is_file():
            return path
    elif Path(name).is_file():
        return Path(name)
    raise ConfigError([f"no scenario {name!r}; shipped: {', '.join(shipped())} (or give a file)"])
