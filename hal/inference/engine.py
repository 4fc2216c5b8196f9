"""The inference engine: runs on the best backend that works, falls back without a restart, and moves
back up when a background probe finds the better backend working again. Every switch is logged and counted.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from hal.inference.runner import Fill, InputError, Loader, Runner, load_planned
from hal.plan import InferencePlan

log = logging.getLogger(__name__)


class NoBackendAvailable(RuntimeError):
    """No backend of the plan could load or run the model; the message says why for each."""


class InferenceEngine:
    """One model on the plan's backends; `invoke()` is called from one inference thread."""

    def __init__(
        self, model: Path, plan: InferencePlan, loader: Loader = load_planned, probe_interval_s: float = 30.0
    ) -> None:
        self.model = model
        self.plan = plan
        self.loader = loader
        self.probe_interval_s = probe_interval_s
        self.errors: list[str | None] = [None] * len(plan.backends)
        self.counts: collections.Counter[str] = collections.Counter()
        self.last_latency_ms = 0.0
        self._lock = threading.Lock()  # held while invoking and while swapping runners
        self._runner: Runner | None = None
        self._index = -1
        self._stop = threading.Event()
        self._probe: threading.Thread | None = None

    @property
    def active(self) -> str | None:
        return str(self.plan.backends[self._index].kind) if self._runner else None

    def open(self) -> None:
        """Load on the best backend that works; start the probe if that is not the best one."""
        runner, index = self._load_from(0)
        with self._lock:
            self._runner, self._index = runner, index
        self._start_probe()

    def close(self) -> None:
        self._stop.set()
        if self._probe is not None:
            self._probe.join()
        with self._lock:
            if self._runner is not None:
                self._runner.close()
                self._runner = None

    def invoke(self, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Outputs of the model; a failing backend is dropped for the next one and the call retried there."""
        return self._call(lambda runner: runner.invoke(inputs))

    def run(self, fill: Fill) -> list[np.ndarray]:
        """Like invoke, but `fill` writes the inputs straight into the input tensors (no copy); after a
        fallback it is called again for the next backend's tensors."""
        return self._call(lambda runner: runner.run(fill))

    def input_details(self) -> list[dict[str, Any]]:
        with self._lock:
            if self._runner is None:
                raise NoBackendAvailable("the engine is not open")
            return self._runner.input_details()

    def output_details(self) -> list[dict[str, Any]]:
        with self._lock:
            if self._runner is None:
                raise NoBackendAvailable("the engine is not open")
            return self._runner.output_details()

    def _call(self, call: Callable[[Runner], list[np.ndarray]]) -> list[np.ndarray]:
        with self._lock:
            while True:
                runner = self._runner
                if runner is None:
                    raise NoBackendAvailable("the engine is not open")
                began = time.perf_counter()
                try:
                    outputs = call(runner)
                except InputError:
                    raise  # bad input data: no other backend would do better
                except Exception as exc:
                    self._fall_back(exc)
                    continue
                self.last_latency_ms = (time.perf_counter() - began) * 1000
                self.counts["invocations"] += 1
                return outputs

    def status(self) -> dict[str, Any]:
        return {
            "model": str(self.model),
            "active": self.active,
            "invocations": self.counts["invocations"],
            "fallbacks": self.counts["fallbacks"],
            "recoveries": self.counts["recoveries"],
            "last_latency_ms": round(self.last_latency_ms, 3),
            "backends": [
                {
                    "backend": str(b.kind),
                    "state": "active"
                    if i == self._index and self._runner
                    else "failed"
                    if self.errors[i]
                    else "standby",
                    "last_error": self.errors[i],
                }
                for i, b in enumerate(self.plan.backends)
            ],
        }

    def _load_from(self, start: int) -> tuple[Runner, int]:
        for index in range(start, len(self.plan.backends)):
            backend = self.plan.backends[index]
            try:
                runner = self.loader(backend, self.model)
            except Exception as exc:
                self.errors[index] = f"{type(exc).__name__}: {exc}"
                log.warning("inference: %s unavailable (%s); trying the next backend", backend.kind, exc)
                continue
            self.errors[index] = None
            log.info("inference: running %s on %s", self.model.name, backend.kind)
            return runner, index
        raise NoBackendAvailable("no backend can run the model: " + "; ".join(e for e in self.errors if e))

    def _fall_back(self, exc: Exception) -> None:
        """Called with the lock held, after the active backend failed to invoke."""
        failed = self.plan.backends[self._index]
        self.errors[self._index] = f"{type(exc).__name__}: {exc}"
        self.counts["fallbacks"] += 1
        assert self._runner is not None
        self._runner.close()
        self._runner = None
        log.error("inference: %s failed at run time (%s); falling back", failed.kind, exc)
        self._runner, self._index = self._load_from(self._index + 1)
        self._start_probe()

    def _start_probe(self) -> None:
        if (
            self._index > 0
            and (self._probe is None or not self._probe.is_alive())
            and not self._stop.is_set()
        ):
            self._probe = threading.Thread(target=self._probe_loop, name="inference-probe", daemon=True)
            self._probe.start()

    def _probe_loop(self) -> None:
        """Every interval, try the backends better than the active one; move up to the first that works."""
        while not self._stop.wait(self.probe_interval_s):
            with self._lock:
                better = self._index
            for index in range(better):
                candidate = self._try(index)
                if candidate is None:
                    continue
                with self._lock:
                    if self._stop.is_set() or index >= self._index:
                        candidate.close()
                        return
                    old, self._runner, self._index = self._runner, candidate, index
                    self.errors[index] = None
                    self.counts["recoveries"] += 1
                    if old is not None:
                        old.close()
                log.info("inference: %s works again; moved back to it", self.plan.backends[index].kind)
                break
            with self._lock:
                if self._index == 0:
                    return

    def _try(self, index: int) -> Runner | None:
        """A runner on backend `index` that loaded and ran the model once on zeros, or None."""
        try:
            runner = self.loader(self.plan.backends[index], self.model)
        except Exception as exc:
            self.errors[index] = f"{type(exc).__name__}: {exc}"
            return None
        try:
            runner.invoke([np.zeros(shape, dtype) for shape, dtype in runner.input_specs()])
        except Exception as exc:
            self.errors[index] = f"{type(exc).__name__}: {exc}"
            runner.close()
            return None
        return runner
