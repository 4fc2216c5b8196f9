"""A vibration waveform read over Modbus and analysed on the box: a bearing fault injected in the bench's
physics shows up as higher RMS, energy in the resonance band and a deviation of many sigma."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest

from tests.appliance.field.test_fieldbus import post
from tests.conftest import free_port, start_appliance

pytestmark = pytest.mark.slow


def feature(status: dict[str, Any], name: str) -> float | None:
    return next((s["value"] for s in status["sensors"] if s["id"] == f"pump.vibration.{name}"), None)


def test_a_bearing_fault_shows_in_rms_band_and_sigma(tmp_path: Path) -> None:
    port, control = free_port(), free_port()
    config = tmp_path / "a.toml"
    config.write_text(
        textwrap.dedent(f"""
        [http]
        listen = "127.0.0.1:0"
        [devices.pump]
        type = "modbus_tcp"
        host = "127.0.0.1"
        port = {port}
        poll_interval_s = 0.1
        [[devices.pump.registers]]
        channel = "vibration"
        table = "input"
        address = 0
        datatype = "int16"
        length = 120
        scale = 0.001
        unit = "g"
        features = {{ sample_rate_hz = 1000, bands = [[10, 60], [200, 500]], baseline_samples = 20 }}
        [bench]
        control = "127.0.0.1:{control}"
        [[bench.modbus_tcp]]
        name = "pump"
        port = {port}
        [[bench.modbus_tcp.registers]]
        table = "input"
        address = 0
        datatype = "int16"
        length = 120
        scale = 0.001
        sample_rate_hz = 1000
        signal = {{ type = "vibration", shaft_hz = 25.0, amplitude = 0.8, noise = 0.02 }}
    """)
    )
    app = start_appliance(config, tmp_path / "data")
    try:
        healthy = app.wait_for(lambda s: feature(s, "sigma") is not None)
        assert 0.4 < feature(healthy, "rms") < 0.8  # type: ignore[operator]  # 0.8 g sine + harmonic
        assert feature(healthy, "band_10-60Hz") > 5 * feature(healthy, "band_200-500Hz")  # type: ignore[operator]
        assert abs(feature(healthy, "sigma")) < 4  # type: ignore[arg-type]
        post(control, "/faults", {"target": "pump", "bearing_fault": 1.0})
        faulty = app.wait_for(lambda s: (feature(s, "sigma") or 0) > 6)
        assert feature(faulty, "rms") > 1.3 * feature(healthy, "rms")  # type: ignore[operator]
        assert feature(faulty, "band_200-500Hz") > 5 * feature(healthy, "band_200-500Hz")  # type: ignore[operator]
        post(control, "/faults/clear", {"target": "pump"})
        app.wait_for(lambda s: abs(feature(s, "sigma") or 99) < 4)
    finally:
        app.close()
