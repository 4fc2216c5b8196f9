"""One model loaded on one backend: the LiteRT interpreter with its delegate, threads and op resolver.

LiteRT (`ai_edge_litert`) is imported here and only here; boards without a LiteRT wheel use the
`tflite_runtime` package, which has the same interpreter API.
"""

from __future__ import annotations

import ctypes
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any, Protocol

import numpy as np

from hal.plan import INFERENCE_RUNNERS, BackendKind, PlannedBackend
from hal.registry import load_object

log = logging.getLogger(__name__)


class BackendUnavailable(RuntimeError):
    """This backend cannot run here: its library or device is missing, or it refused the model."""


class InputError(ValueError):
    """Filling the input tensors failed: the caller's data, not the backend, is at fault."""


class Runner(Protocol):
    """A model loaded on one backend."""

    backend: PlannedBackend

    def input_specs(self) -> list[tuple[tuple[int, ...], np.dtype[Any]]]: ...

    def invoke(self, inputs: Sequence[np.ndarray]) -> list[np.ndarray]: ...

    def run(self, fill: Fill) -> list[np.ndarray]:
        """Let `fill` write the inputs straight into the input tensors, invoke, return the outputs."""
        ...

    def input_details(self) -> list[dict[str, Any]]: ...

    def output_details(self) -> list[dict[str, Any]]: ...

    def close(self) -> None: ...


Loader = Callable[[PlannedBackend, Path], Runner]
Fill = Callable[[list[np.ndarray]], None]  # writes into views of the input tensors


def litert_interpreter_module() -> ModuleType:
    """The interpreter module: LiteRT if installed, else tflite-runtime."""
    errors = []
    for name in ("ai_edge_litert.interpreter", "tflite_runtime.interpreter"):
        try:
            return __import__(name, fromlist=["Interpreter"])
        except ImportError as exc:
            errors.append(f"{name}: {exc}")
    raise BackendUnavailable("no LiteRT interpreter installed (" + "; ".join(errors) + ")")


class LiteRTRunner:
    """The LiteRT interpreter set up as `backend` says."""

    def __init__(self, backend: PlannedBackend, model: Path) -> None:
        self.backend = backend
        lite = litert_interpreter_module()
        delegates = []
        if backend.delegate:
            try:
                # Load the library ourselves first: LiteRT's Delegate raises from __del__ when its own
                # LoadLibrary fails, which would turn a missing accelerator into noise at garbage collection.
                ctypes.CDLL(backend.delegate)
                delegates.append(lite.load_delegate(backend.delegate, dict(backend.delegate_options)))
            except (ValueError, OSError, RuntimeError) as exc:
                raise BackendUnavailable(
                    f"{backend.kind}: cannot load delegate {backend.delegate}: {exc}"
                ) from exc
        options: dict[str, Any] = {"num_threads": backend.threads}
        if backend.kind is BackendKind.CPU:
            options["experimental_op_resolver_type"] = lite.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
        try:
            self.interpreter = lite.Interpreter(
                model_path=str(model), experimental_delegates=delegates, **options
            )
            self.interpreter.allocate_tensors()
        except ValueError as exc:  # not a model, unsupported op, delegate refused the graph
            raise BackendUnavailable(f"{backend.kind}: cannot load {model}: {exc}") from exc
        self._inputs = [d["index"] for d in self.interpreter.get_input_details()]
        self._outputs = [d["index"] for d in self.interpreter.get_output_details()]

    def input_specs(self) -> list[tuple[tuple[int, ...], np.dtype[Any]]]:
        return [(tuple(d["shape"]), np.dtype(d["dtype"])) for d in self.interpreter.get_input_details()]

    def invoke(self, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        for index, value in zip(self._inputs, inputs, strict=True):
            self.interpreter.set_tensor(index, value)
        self.interpreter.invoke()
        return [self.interpreter.get_tensor(i) for i in self._outputs]

    def run(self, fill: Fill) -> list[np.ndarray]:
        # The views alias the interpreter's buffers; LiteRT refuses to invoke while any is alive, so they
        # exist only for the call to `fill`.
        try:
            fill([self.interpreter.tensor(i)() for i in self._inputs])
        except Exception as exc:
            raise InputError(f"cannot fill the model's inputs: {exc}") from exc
        self.interpreter.invoke()
        return [self.interpreter.get_tensor(i) for i in self._outputs]

    def input_details(self) -> list[dict[str, Any]]:
        return list(self.interpreter.get_input_details())

    def output_details(self) -> list[dict[str, Any]]:
        return list(self.interpreter.get_output_details())

    def close(self) -> None:
        del self.interpreter


def load_litert(backend: PlannedBackend, model: Path) -> Runner:
    return LiteRTRunner(backend, model)


def load_planned(backend: PlannedBackend, model: Path) -> Runner:
    """The model on `backend`, by the loader of the runner that planned it (INFERENCE_RUNNERS)."""
    loader = INFERENCE_RUNNERS.get(backend.runner).loader
    load: Loader = load_object(loader) if isinstance(loader, str) else loader
    return load(backend, model)
