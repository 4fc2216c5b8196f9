"""The inference plan: which backends to try, in order, with the reason for each choice.

Runners are entries of `INFERENCE_RUNNERS` (hal/registry.py). An entry says which accelerator kinds it
drives, makes the planned backend for one accelerator found, and names its loader, imported only when
the engine loads a model; its priority orders the accelerators' backends (higher first). LiteRT is the
built-in entry (the Edge TPU and GPU delegates); whatever the accelerators, LiteRT's XNNPACK and its
reference kernels close the plan, so the engine can always fall back to the CPU (docs/hardware.md).
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from hal.accelerators import Accelerator, AcceleratorKind
from hal.registry import Registry
from hal.system import Cpu

if TYPE_CHECKING:
    from hal.inference.runner import Runner

SMALL_MEMORY_MB = 2048
MAX_CPU_THREADS = 4  # XNNPACK gains little past 4 threads on the small models a QC line runs


class BackendKind(enum.StrEnum):
    """LiteRT's backends; a plugin's backends have kinds of their own (any string, such as "hailo")."""

    EDGETPU = "edgetpu"  # Edge TPU delegate (libedgetpu)
    GPU = "gpu"  # LiteRT GPU delegate
    XNNPACK = "xnnpack"  # LiteRT's default CPU delegate, multithreaded
    CPU = "cpu"  # reference kernels, no delegate: the last resort


class ModelVariant(enum.StrEnum):
    FLOAT = "float"
    INT8 = "int8"


@dataclass(frozen=True, slots=True)
class PlannedBackend:
    kind: str  # a BackendKind for LiteRT's
    reason: str
    delegate: str | None = None  # shared library to load as a LiteRT delegate
    delegate_options: tuple[tuple[str, str], ...] = ()
    threads: int = 1
    runner: str = "litert"  # the INFERENCE_RUNNERS entry that loads it

    def to_dict(self) -> dict[str, object]:
        return {
            "backend": str(self.kind),
            "runner": self.runner,
            "reason": self.reason,
            "delegate": self.delegate,
            "delegate_options": dict(self.delegate_options),
            "threads": self.threads,
        }


@dataclass(frozen=True, slots=True)
class InferencePlan:
    """Backends best first; the engine falls back along this list and probes its way back up."""

    backends: tuple[PlannedBackend, ...]
    variant: ModelVariant
    variant_reason: str
    notes: tuple[str, ...] = field(default=())

    def to_dict(self) -> dict[str, object]:
        return {
            "backends": [b.to_dict() for b in self.backends],
            "model_variant": str(self.variant),
            "variant_reason": self.variant_reason,
            "notes": list(self.notes),
        }


@dataclass(frozen=True, slots=True)
class RunnerPlugin:
    """An inference runner as the plan and the engine see it."""

    serves: tuple[AcceleratorKind, ...]  # the accelerator kinds it can drive
    plan: Callable[[Accelerator], PlannedBackend | None]  # its backend for one accelerator, or None
    # (planned backend, model file) -> a Runner (hal/inference/runner.py); "package.module:function" is
    # imported when a model is loaded, so planning (`appliance hal`) imports no runtime library
    loader: Callable[[PlannedBackend, Path], Runner] | str


INFERENCE_RUNNERS: Registry[RunnerPlugin] = Registry("inference runner")


def _litert_backend(acc: Accelerator) -> PlannedBackend | None:
    """LiteRT's delegate for an Edge TPU or a GPU that has one."""
    spec = acc.spec
    if spec.kind is AcceleratorKind.EDGETPU and spec.litert_delegate:
        device = "usb" if acc.found_at.startswith("/sys/bus/usb") else "pci"
        return PlannedBackend(
            BackendKind.EDGETPU,
            f"{spec.name} found at {acc.found_at}: runs compiled int8 models fastest",
            spec.litert_delegate,
            (("device", device),),
        )
    if spec.kind is AcceleratorKind.GPU and spec.litert_delegate:
        return PlannedBackend(
            BackendKind.GPU,
            f"{spec.name} found at {acc.found_at}: float models on the GPU delegate",
            spec.litert_delegate,
        )
    return None


INFERENCE_RUNNERS.register(
    "litert",
    RunnerPlugin(
        (AcceleratorKind.EDGETPU, AcceleratorKind.GPU), _litert_backend, "hal.inference.runner:load_litert"
    ),
    priority=0,
)


def cpu_threads(cores: int) -> int:
    """Threads for XNNPACK: all cores on a 1-2 core box, else leave one for polling, safety and the web."""
    return max(1, cores if cores <= 2 else min(cores - 1, MAX_CPU_THREADS))


def plan_inference(cpu: Cpu, memory_mb: int, accelerators: Sequence[Accelerator]) -> InferencePlan:
    notes: list[str] = []
    driven: list[Accelerator] = []  # the accelerators some runner planned a backend for
    ranked: list[tuple[int, PlannedBackend]] = []
    runners = [
        (e.key, e.priority or 0, INFERENCE_RUNNERS.get(e.key)) for e in INFERENCE_RUNNERS.by_priority()
    ]
    for acc in accelerators:
        planned = [
            (priority, replace(backend, runner=key))
            for key, priority, runner in runners
            if acc.spec.kind in runner.serves and (backend := runner.plan(acc)) is not None
        ]
        if planned:
            ranked += planned
            driven.append(acc)
        else:
            notes.append(
                f"{acc.spec.name} is present but runs {acc.spec.runs}; no inference runner drives it"
            )
    # higher priority first; accelerators of one priority in the order they were found
    backends = [backend for _, backend in sorted(ranked, key=lambda pair: -pair[0])]
    threads = cpu_threads(cpu.cores)
    simd = (
        ", ".join(f for f in cpu.features if f in ("avx2", "avx512f", "asimd", "neon", "asimddp"))
        or "no SIMD"
    )
    backends.append(
        PlannedBackend(
            BackendKind.XNNPACK,
            f"CPU: XNNPACK with {threads} of {cpu.cores} cores ({simd})"
            + ("" if threads == cpu.cores else "; one core left for polling, safety and the web"),
            threads=threads,
        )
    )
    backends.append(
        PlannedBackend(BackendKind.CPU, "reference CPU kernels, no delegate: last resort", threads=1)
    )
    variant, why = _variant(memory_mb, driven)
    return InferencePlan(tuple(backends), variant, why, tuple(notes))


def _variant(memory_mb: int, accelerators: Sequence[Accelerator]) -> tuple[ModelVariant, str]:
    needs = [a.spec.name for a in accelerators if a.spec.needs_int8]  # of those the plan drives
    if needs:
        return ModelVariant.INT8, f"{needs[0]} runs only full-integer models"
    if 0 < memory_mb < SMALL_MEMORY_MB:
        return (
            ModelVariant.INT8,
            f"{memory_mb} MB of memory is under {SMALL_MEMORY_MB} MB: int8 is 4x smaller",
        )
    return (
        ModelVariant.FLOAT,
        f"{memory_mb} MB of memory and no int8-only accelerator: float is most accurate",
    )
