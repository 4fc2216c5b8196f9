"""The inference engine on real LiteRT: it runs the plan's best backend, falls back without a restart when
an accelerator fails, and a probe moves it back when the accelerator returns."""

from __future__ import annotations

import sys
import time
import types
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from bench.models.tflite_builder import affine_model, write
from hal.accelerators import ACCELERATORS, Accelerator
from hal.inference import BackendUnavailable, InferenceEngine, NoBackendAvailable
from hal.inference.mock import MockAccelerator
from hal.inference.runner import LiteRTRunner, litert_interpreter_module
from hal.plan import BackendKind, InferencePlan, PlannedBackend, plan_inference
from hal.system import Cpu

CPU = Cpu("x86_64", "test cpu", 4, ("avx2",))
CORAL = next(a for a in ACCELERATORS if a.key == "coral-usb")
X = np.array([[0.5, -0.25, 1.0, 0.0]], dtype=np.float32)
EXPECTED = X * 2.0 + 1.0


@pytest.fixture
def model(tmp_path: Path) -> Path:
    return write(tmp_path / "affine.tflite", affine_model(shape=(1, 4), scale=2.0, bias=1.0))


def coral_plan() -> InferencePlan:
    plan = plan_inference(CPU, 4096, [Accelerator(CORAL, "/sys/bus/usb/devices/2-1")])
    assert [b.kind for b in plan.backends] == [BackendKind.EDGETPU, BackendKind.XNNPACK, BackendKind.CPU]
    return plan


def wait_until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


def test_runs_on_xnnpack_and_on_plain_cpu_with_the_same_answers(model: Path) -> None:
    for backend in plan_inference(CPU, 4096, []).backends:
        runner = LiteRTRunner(backend, model)
        assert runner.input_specs() == [((1, 4), np.dtype(np.float32))]
        np.testing.assert_allclose(runner.invoke([X])[0], EXPECTED, rtol=1e-6)
        runner.close()


def test_a_missing_delegate_library_is_an_unavailable_backend(model: Path) -> None:
    # a delegate library that no machine has (a board with a Coral may well have libedgetpu): the real
    # LiteRT load_delegate fails
    plan = coral_plan()
    missing = replace(plan.backends[0], delegate="libdelegate-not-installed.so.1")
    plan = replace(plan, backends=(missing, *plan.backends[1:]))
    with pytest.raises(BackendUnavailable, match=r"cannot load delegate libdelegate-not-installed\.so\.1"):
        LiteRTRunner(missing, model)
    engine = InferenceEngine(model, plan, probe_interval_s=3600)
    engine.open()
    try:
        assert engine.active == "xnnpack"
        np.testing.assert_allclose(engine.invoke([X])[0], EXPECTED, rtol=1e-6)
        status = engine.status()
        assert status["backends"][0]["state"] == "failed"
        assert "libdelegate-not-installed.so.1" in status["backends"][0]["last_error"]
    finally:
        engine.close()


def test_an_accelerator_failing_at_run_time_falls_back_and_recovers(model: Path) -> None:
    device = MockAccelerator()
    engine = InferenceEngine(model, coral_plan(), loader=device.loader(), probe_interval_s=0.05)
    engine.open()
    try:
        assert engine.active == "edgetpu"
        np.testing.assert_allclose(engine.invoke([X])[0], EXPECTED, rtol=1e-6)
        assert device.invocations == 1
        device.unplug()
        # the failing call is not lost: it is answered by the next backend
        np.testing.assert_allclose(engine.invoke([X])[0], EXPECTED, rtol=1e-6)
        assert engine.active == "xnnpack"
        assert engine.status()["fallbacks"] == 1
        time.sleep(0.2)  # the probe runs, but the device is still gone
        assert engine.active == "xnnpack"
        device.plug_in()
        wait_until(lambda: engine.active == "edgetpu")
        engine.invoke([X])
        assert device.invocations >= 2  # the probe's trial run and ours
        status = engine.status()
        assert (status["fallbacks"], status["recoveries"]) == (1, 1)
        assert [b["state"] for b in status["backends"]] == ["active", "standby", "standby"]
    finally:
        engine.close()


def test_an_accelerator_absent_at_start_is_picked_up_when_it_arrives(model: Path) -> None:
    device = MockAccelerator()
    device.unplug()
    engine = InferenceEngine(model, coral_plan(), loader=device.loader(), probe_interval_s=0.05)
    engine.open()
    try:
        assert engine.active == "xnnpack"
        device.plug_in()
        wait_until(lambda: engine.active == "edgetpu")
        assert engine.status()["recoveries"] == 1
    finally:
        engine.close()


def test_every_backend_failing_is_one_clear_error(tmp_path: Path) -> None:
    junk = tmp_path / "not-a-model.tflite"
    junk.write_bytes(b"this is not a flatbuffer")
    engine = InferenceEngine(junk, plan_inference(CPU, 4096, []))
    with pytest.raises(NoBackendAvailable) as caught:
        engine.open()
    message = str(caught.value)
    assert "xnnpack: cannot load" in message and "cpu: cannot load" in message
    with pytest.raises(NoBackendAvailable, match="not open"):
        engine.invoke([X])


def test_the_last_backend_failing_at_run_time_raises(model: Path) -> None:
    device = MockAccelerator()
    only = InferencePlan(
        (PlannedBackend(BackendKind.GPU, "only the gpu", "libfake.so"),),
        plan_inference(CPU, 4096, []).variant,
        "test",
    )
    engine = InferenceEngine(model, only, loader=device.loader(), probe_interval_s=3600)
    engine.open()
    device.unplug()
    with pytest.raises(NoBackendAvailable, match="gpu: mock accelerator stopped answering"):
        engine.invoke([X])
    engine.close()


def test_tflite_runtime_is_the_fallback_when_litert_is_missing(
    model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ai_edge_litert.interpreter as litert

    monkeypatch.setitem(sys.modules, "ai_edge_litert.interpreter", None)
    monkeypatch.setitem(sys.modules, "tflite_runtime", types.ModuleType("tflite_runtime"))
    monkeypatch.setitem(sys.modules, "tflite_runtime.interpreter", litert)  # same interpreter API
    assert litert_interpreter_module() is litert
    runner = LiteRTRunner(plan_inference(CPU, 4096, []).backends[0], model)
    np.testing.assert_allclose(runner.invoke([X])[0], EXPECTED, rtol=1e-6)
    runner.close()


def test_no_interpreter_installed_is_reported_as_unavailable(
    model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "ai_edge_litert.interpreter", None)
    monkeypatch.setitem(sys.modules, "tflite_runtime.interpreter", None)
    engine = InferenceEngine(model, plan_inference(CPU, 4096, []))
    with pytest.raises(NoBackendAvailable, match="no LiteRT interpreter installed"):
        engine.open()
