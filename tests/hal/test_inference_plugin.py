"""An inference runner registered by a plugin module (tests/hal/fake_hailo.py) is planned when its
accelerator is present, runs the model, and the engine falls back to LiteRT on the CPU when it fails."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from bench.models.tflite_builder import affine_model, write
from hal.accelerators import ACCELERATORS, Accelerator
from hal.inference import InferenceEngine
from hal.plan import INFERENCE_RUNNERS, BackendKind, plan_inference
from hal.system import Cpu

CPU = Cpu("aarch64", "test cpu", 4, ("asimd",))
HAILO = next(a for a in ACCELERATORS if a.key == "hailo8")
CORAL = next(a for a in ACCELERATORS if a.key == "coral-usb")
X = np.array([[0.5, -0.25, 1.0, 0.0]], dtype=np.float32)
EXPECTED = X * 2.0 + 1.0


@pytest.fixture
def plugin() -> Iterator[ModuleType]:
    """The plugin imported as a site would import it, and unregistered afterwards."""
    module = importlib.import_module("tests.hal.fake_hailo")
    module.FAILING.clear()
    module.PRESENT.set()
    yield module
    INFERENCE_RUNNERS.unregister(module.KEY)
    sys.modules.pop("tests.hal.fake_hailo", None)


@pytest.fixture
def model(tmp_path: Path) -> Path:
    return write(tmp_path / "affine.tflite", affine_model(shape=(1, 4), scale=2.0, bias=1.0))


def test_without_the_plugin_a_hailo_is_only_a_note() -> None:
    plan = plan_inference(CPU, 4096, [Accelerator(HAILO, "/dev/hailo0")])
    assert [b.kind for b in plan.backends] == [BackendKind.XNNPACK, BackendKind.CPU]
    assert any("Hailo" in note and "no inference runner drives it" in note for note in plan.notes)


def test_the_plugin_is_planned_for_its_accelerator_by_its_priority(plugin: ModuleType) -> None:
    found = [Accelerator(CORAL, "/sys/bus/usb/devices/2-1"), Accelerator(HAILO, "/dev/hailo0")]
    plan = plan_inference(CPU, 4096, found)
    # the Hailo was found second, but its runner's priority (10) is above LiteRT's (0)
    assert [(b.kind, b.runner) for b in plan.backends] == [
        ("hailo", "fakehailo"),
        (BackendKind.EDGETPU, "litert"),
        (BackendKind.XNNPACK, "litert"),
        (BackendKind.CPU, "litert"),
    ]
    assert plan.notes == ()
    assert plan.backends[0].to_dict()["runner"] == "fakehailo"


def test_the_engine_runs_the_plugin_and_falls_back_to_the_cpu(plugin: ModuleType, model: Path) -> None:
    plan = plan_inference(CPU, 4096, [Accelerator(HAILO, "/dev/hailo0")])
    engine = InferenceEngine(model, plan, probe_interval_s=60)  # the default loader asks the registry
    engine.open()
    try:
        assert engine.active == "hailo"
        before = plugin.invocations
        np.testing.assert_allclose(engine.invoke([X])[0], EXPECTED, rtol=1e-6)
        assert plugin.invocations == before + 1
        plugin.FAILING.set()
        np.testing.assert_allclose(engine.invoke([X])[0], EXPECTED, rtol=1e-6)  # retried on the CPU
        assert engine.active == BackendKind.XNNPACK
        status = engine.status()
        assert status["fallbacks"] == 1
        assert status["backends"][0] == {
            "backend": "hailo",
            "state": "failed",
            "last_error": "RuntimeError: hailo: device stopped answering",
        }
    finally:
        engine.close()


def test_a_plugin_whose_device_is_gone_is_skipped_at_open(plugin: ModuleType, model: Path) -> None:
    plugin.PRESENT.clear()
    plan = plan_inference(CPU, 4096, [Accelerator(HAILO, "/dev/hailo0")])
    engine = InferenceEngine(model, plan, probe_interval_s=60)
    engine.open()
    try:
        assert engine.active == BackendKind.XNNPACK
        assert engine.errors[0] == "BackendUnavailable: hailo: no Hailo device"
        np.testing.assert_allclose(engine.invoke([X])[0], EXPECTED, rtol=1e-6)
    finally:
        engine.close()
