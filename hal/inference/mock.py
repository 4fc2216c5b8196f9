"""A stand-in accelerator for desks and tests: an Edge TPU or GPU delegate that can be unplugged or made
to fail at run time on command. While healthy it computes with the real CPU interpreter, so the answers
are the model's own; when failing it raises as a real delegate does (RuntimeError from invoke, or a
delegate that cannot load).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from hal.inference.runner import BackendUnavailable, Fill, Loader, Runner, load_litert
from hal.plan import BackendKind, PlannedBackend

ACCELERATED = (BackendKind.EDGETPU, BackendKind.GPU)


class MockAccelerator:
    """The device: `plugged` (a delegate can load) and `failing` (invocations raise)."""

    def __init__(self, cpu_loader: Loader = load_litert) -> None:
        self.plugged = True
        self.failing = False
        self.loads = 0
        self.invocations = 0
        self._cpu_loader = cpu_loader
        self._lock = threading.Lock()

    def unplug(self) -> None:
        with self._lock:
            self.plugged, self.failing = False, True

    def plug_in(self) -> None:
        with self._lock:
            self.plugged, self.failing = True, False

    def loader(self, fallback: Loader = load_litert) -> Loader:
        """A loader that puts accelerated backends on this device and the rest on `fallback`."""

        def load(backend: PlannedBackend, model: Path) -> Runner:
            if backend.kind not in ACCELERATED:
                return fallback(backend, model)
            with self._lock:
                if not self.plugged:
                    raise BackendUnavailable(f"{backend.kind}: mock accelerator not present")
                self.loads += 1
            cpu = PlannedBackend(BackendKind.XNNPACK, "computes for the mock accelerator", threads=1)
            return _MockRunner(backend, self, self._cpu_loader(cpu, model))

        return load


class _MockRunner:
    def __init__(self, backend: PlannedBackend, device: MockAccelerator, compute: Runner) -> None:
        self.backend = backend
        self.device = device
        self.compute = compute

    def input_specs(self) -> list[tuple[tuple[int, ...], np.dtype[Any]]]:
        return self.compute.input_specs()

    def invoke(self, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        if self.device.failing:
            raise RuntimeError(f"{self.backend.kind}: mock accelerator stopped answering")
        self.device.invocations += 1
        return self.compute.invoke(inputs)

    def run(self, fill: Fill) -> list[np.ndarray]:
        if self.device.failing:
            raise RuntimeError(f"{self.backend.kind}: mock accelerator stopped answering")
        self.device.invocations += 1
        return self.compute.run(fill)

    def input_details(self) -> list[dict[str, Any]]:
        return self.compute.input_details()

    def output_details(self) -> list[dict[str, Any]]:
        return self.compute.output_details()

    def close(self) -> None:
        self.compute.close()
