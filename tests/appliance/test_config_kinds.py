"""The tables whose kind is chosen by `type` or by a registry's key: their errors name the key and the
known kinds, and each kind takes only its own keys."""

from __future__ import annotations

import tomllib

import pytest

from appliance.config import ConfigError, parse_config

QC = '[qc]\nmodel = "m.tflite"\nlabels = ["ok"]\n'


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(tomllib.loads(text), "t.toml")
    return caught.value.lines


def test_the_camera_sources_are_kinds_by_type() -> None:
    assert problems(QC + 'camera = { type = "usb", uri = "0" }') == [
        "t.toml: qc.camera.type: unknown type 'usb'; known types: "
        "'v4l2', 'gstreamer', 'stream', 'file', 'directory'"
    ]
    assert problems(QC + 'camera = { uri = "0" }') == [
        "t.toml: qc.camera: missing key 'type' that says which kind this is"
    ]
    # fps paces a folder of images; a live stream has its own rate
    assert problems(QC + 'camera = { type = "stream", uri = "rtsp://cam/1", fps = 5 }') == [
        "t.toml: qc.camera.fps: unknown key"
    ]
    config = parse_config(tomllib.loads(QC + 'camera = { type = "directory", uri = "x", fps = 5 }'), "t")
    assert config.qc is not None and config.qc.camera.recorded


def test_one_character_format_with_modbus_rtu_narrowing_it() -> None:
    sensor = '[devices.s]\ntype = "serial_binary"\nurl = "loop://"\nchannels = [{ id = 1, name = "t" }]\n'
    bus = '[buses.line]\ntype = "modbus_rtu"\nurl = "loop://"\n'
    config = parse_config(tomllib.loads(sensor + bus), "t.toml")
    assert config.devices["s"].baudrate == 9600  # type: ignore[union-attr]
    assert config.buses["line"].baudrate == 19200  # Modbus RTU's default rate
    assert parse_config(tomllib.loads(sensor + "bytesize = 5\n"), "t").devices["s"].bytesize == 5  # type: ignore[union-attr]
    assert problems(bus + 'bytesize = 5\nparity = "M"\nbaudrate = 50\n') == [
        "t.toml: buses.line.baudrate: Modbus RTU runs at 300 to 921600 baud, got 50",
        "t.toml: buses.line.bytesize: Modbus RTU takes 7 or 8 data bits, got 5",
        "t.toml: buses.line.parity: Modbus RTU takes parity 'N', 'E' or 'O', got 'M'",
    ]
    assert problems(bus + "bytesize = 9\n") == [
        "t.toml: buses.line.bytesize: must be one of 5, 6, 7 or 8, got 9"
    ]


def test_the_gpio_backends_and_transports_are_the_registries() -> None:
    safety = '[safety]\nstop_line = { gpio = "spi", line = 17 }\n'
    assert problems(safety) == [
        "t.toml: safety.stop_line.gpio: must be one of 'auto', 'gpiod', 'rpigpio' or 'mock', got 'spi'"
    ]
    assert problems('[sync]\nupstream = { type = "kafka" }\n') == [
        "t.toml: sync.upstream.type: unknown type 'kafka'; known types: 'mqtt', 'https'"
    ]


@pytest.mark.parametrize("label", ["../../x", "a/b", "back\\slash", ".hidden", "tab\there", "x" * 65])
def test_a_label_that_cannot_name_an_evidence_file_is_refused(label: str) -> None:
    """Labels go into evidence file names: one with a slash wrote a reject's frame into another folder."""
    text = f'[qc]\nmodel = "m.tflite"\nlabels = ["ok", {tomllib_string(label)}]\n'
    (line,) = problems(text + 'camera = { type = "file", uri = "x.mp4" }\n')
    assert line.startswith("t.toml: qc.labels[1]: "), line


def tomllib_string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\t", "\\t") + '"'
