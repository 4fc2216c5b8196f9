"""The inference plan: which LiteRT backends to try, in order, with the reason for each choice."""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field

from hal.accelerators import Accelerator, AcceleratorKind
from hal.system import Cpu

SMALL_MEMORY_MB = 2048
MAX_CPU_THREADS = 4  # XNNPACK gains little past 4 threads on the small models a QC line runs


class BackendKind(enum.StrEnum):
    EDGETPU = "edgetpu"  # Edge TPU delegate (libedgetpu)
    GPU = "gpu"  # LiteRT GPU delegate
    XNNPACK = "xnnpack"  # LiteRT's default CPU delegate, multithreaded
    CPU = "cpu"  # reference kernels, no delegate: the last resort


class ModelVariant(enum.StrEnum):
    FLOAT = "float"
    INT8 = "int8"


@dataclass(frozen=True, slots=True)
class PlannedBackend:
    kind: BackendKind
    reason: str
    delegate: str | None = None  # shared library to load as a LiteRT delegate
    delegate_options: tuple[tuple[str, str], ...] = ()
    threads: int = 1

    def to_dict(self) -> dict[str, object]:
        return {
            "backend": str(self.kind),
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


def cpu_threads(cores: int) -> int:
    """Threads for XNNPACK: all cores on a 1-2 core box, else leave one for polling, safety and the web."""
    return max(1, cores if cores <= 2 else min(cores - 1, MAX_CPU_THREADS))


def plan_inference(cpu: Cpu, memory_mb: int, accelerators: Sequence[Accelerator]) -> InferencePlan:
    backends: list[PlannedBackend] = []
    notes: list[str] = []
    for acc in accelerators:
        spec = acc.spec
        if spec.kind is AcceleratorKind.EDGETPU and spec.litert_delegate:
            device = "usb" if acc.found_at.startswith("/sys/bus/usb") else "pci"
            backends.append(
                PlannedBackend(
                    BackendKind.EDGETPU,
                    f"{spec.name} found at {acc.found_at}: runs compiled int8 models fastest",
                    spec.litert_delegate,
                    (("device", device),),
                )
            )
        elif spec.kind is AcceleratorKind.GPU and spec.litert_delegate:
            backends.append(
                PlannedBackend(
                    BackendKind.GPU,
                    f"{spec.name} found at {acc.found_at}: float models on the GPU delegate",
                    spec.litert_delegate,
                )
            )
        else:
            notes.append(f"{spec.name} is present but runs {spec.runs}; the LiteRT plan does not use it")
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
    variant, why = _variant(memory_mb, accelerators)
    return InferencePlan(tuple(backends), variant, why, tuple(notes))


def _variant(memory_mb: int, accelerators: Sequence[Accelerator]) -> tuple[ModelVariant, str]:
    needs = [a.spec.name for a in accelerators if a.spec.needs_int8 and a.spec.litert_delegate]
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
