"""A stand-in inference runner plugin, all in this one file as a real one (HailoRT, RKNN) would be: it
says which accelerator kind it drives, plans a backend for each one found, and loads models.

It computes with LiteRT's CPU interpreter, so its answers are the model's own, and fails at run time
when `FAILING` is set, as a real accelerator that stopped answering does.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from hal.accelerators import Accelerator, AcceleratorKind
from hal.inference.runner import BackendUnavailable, Fill, Runner, load_litert
from hal.plan import INFERENCE_RUNNERS, BackendKind, PlannedBackend, RunnerPlugin

KEY = "fakehailo"
FAILING = threading.Event()  # invocations raise while set
PRESENT = threading.Event()  # loading fails unless set (the device node went away)
PRESENT.set()
invocations = 0


def plan(acc: Accelerator) -> PlannedBackend | None:
    return PlannedBackend("hailo", f"{acc.spec.name} found at {acc.found_at}: the fake HailoRT")


class FakeHailoRunner:
    def __init__(self, backend: PlannedBackend, model: Path) -> None:
        if not PRESENT.is_set():
            raise BackendUnavailable(f"{backend.kind}: no Hailo device")
        self.backend = backend
        self.compute = load_litert(PlannedBackend(BackendKind.XNNPACK, "computes for the fake"), model)

    def _count(self) -> None:
        global invocations
        if FAILING.is_set():
            raise RuntimeError("hailo: device stopped answering")
        invocations += 1

    def input_specs(self) -> list[tuple[tuple[int, ...], np.dtype[Any]]]:
        return self.compute.input_specs()

    def invoke(self, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        self._count()
        return self.compute.invoke(inputs)

    def run(self, fill: Fill) -> list[np.ndarray]:
        self._count()
        return self.compute.run(fill)

    def input_details(self) -> list[dict[str, Any]]:
        return self.compute.input_details()

    def output_details(self) -> list[dict[str, Any]]:
        return self.compute.output_details()

    def close(self) -> None:
        self.compute.close()


def load(backend: PlannedBackend, model: Path) -> Runner:
    return FakeHailoRunner(backend, model)


# Above LiteRT's delegates (priority 0): a box with a Hailo and a GPU tries the Hailo first.
INFERENCE_RUNNERS.register(KEY, RunnerPlugin((AcceleratorKind.HAILO,), plan, load), priority=10)
