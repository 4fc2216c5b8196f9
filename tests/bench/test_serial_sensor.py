"""The simulated serial sensor, read with plain pyserial and checked against the drivers' decoders."""

from __future__ import annotations

import itertools
import os
import random
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import serial

from bench.serial_sensor import (
    SensorSettings,
    SimulatedSerialSensor,
    Weather,
    Wire,
    binary_frame,
    crc16_modbus,
)
from drivers.serial.ascii import PSEN, AsciiDecoder, AsciiFramer
from drivers.serial.binary import EXAMPLE_SENSOR, BinaryFramer
from drivers.serial.frames import ErrorKind, Frame, FrameError


def read_for(port: serial.Serial, seconds: float) -> bytes:
    data = b""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        data += port.read(256)
    return data


@pytest.fixture
def ascii_sensor(tmp_path: Path) -> Iterator[SimulatedSerialSensor]:
    with SimulatedSerialSensor(SensorSettings(Wire.ASCII, rate_hz=50, directory=tmp_path)) as sim:
        yield sim


@pytest.fixture
def port(ascii_sensor: SimulatedSerialSensor) -> Iterator[serial.Serial]:
    with serial.serial_for_url(str(ascii_sensor.path), timeout=0.05) as opened:
        yield opened


def test_path_is_a_stable_symlink_to_a_pty(ascii_sensor: SimulatedSerialSensor) -> None:
    assert ascii_sensor.path.is_symlink()
    assert os.readlink(ascii_sensor.path).startswith("/dev/pts/")


def test_ascii_lines_carry_valid_nmea_checksums(port: serial.Serial) -> None:
    data = read_for(port, 0.3)
    lines = data.split(b"\r\n")[1:-1]  # the first and last may be partial
    assert len(lines) >= 5
    decoder = AsciiDecoder(PSEN)
    for line in lines:
        values = decoder.decode(line)
        assert sorted(values) == ["humidity", "pressure", "temperature"]


def test_binary_frames_agree_with_the_drivers_crc(tmp_path: Path) -> None:
    assert crc16_modbus(b"123456789") == 0x4B37
    with (
        SimulatedSerialSensor(SensorSettings(Wire.BINARY, rate_hz=50, directory=tmp_path)) as sim,
        serial.serial_for_url(str(sim.path), timeout=0.05) as opened,
    ):
        out = BinaryFramer(EXAMPLE_SENSOR).feed(read_for(opened, 0.3))
    frames = [item for item in out if isinstance(item, Frame)]
    assert len(frames) >= 5
    assert all(isinstance(item, Frame) for item in out[1:])  # only the first may be cut
    assert 1010 < frames[-1].values["pressure"] < 1017


def test_faults_produce_what_they_say(ascii_sensor: SimulatedSerialSensor) -> None:
    decoder = AsciiDecoder(PSEN)
    with pytest.raises(FrameError) as caught:
        decoder.decode(ascii_sensor.inject_bad_checksum())
    assert caught.value.kind is ErrorKind.BAD_CHECKSUM
    truncated = ascii_sensor.inject_truncated()
    assert truncated.startswith(b"$PSEN,")
    assert not truncated.endswith(b"\n")
    garbage = ascii_sensor.inject_garbage(10)
    assert len(garbage) == 10
    again = SimulatedSerialSensor(
        SensorSettings(Wire.ASCII, directory=ascii_sensor.directory, link_name="other")
    )
    assert again.inject_garbage(10) == garbage  # seeded: a failing run can be replayed


def test_silence_stops_the_bytes(ascii_sensor: SimulatedSerialSensor, port: serial.Serial) -> None:
    assert read_for(port, 0.1)
    ascii_sensor.silence()
    time.sleep(0.05)  # let a frame already written drain
    port.reset_input_buffer()
    assert read_for(port, 0.2) == b""
    ascii_sensor.silence(False)
    assert read_for(port, 0.1)


def test_unplug_closes_the_port_and_replug_brings_a_new_one(
    ascii_sensor: SimulatedSerialSensor, port: serial.Serial
) -> None:
    ascii_sensor.unplug()
    assert not ascii_sensor.path.exists()
    with pytest.raises(serial.SerialException):
        read_for(port, 0.2)
    ascii_sensor.replug()
    assert ascii_sensor.path.is_symlink()
    with serial.serial_for_url(str(ascii_sensor.path), timeout=0.05) as reopened:
        frames = AsciiFramer(PSEN).feed(read_for(reopened, 0.2))
    assert any(isinstance(item, Frame) for item in frames)


def test_stop_removes_its_own_temp_dir() -> None:
    sim = SimulatedSerialSensor(SensorSettings(rate_hz=50))
    sim.start()
    assert sim.path.is_symlink()
    sim.stop()
    assert not sim.directory.exists()


def test_weather_drifts_slowly_with_noisy_pressure() -> None:
    weather = Weather(random.Random(3))
    samples = [weather.sample() for _ in range(500)]
    temperatures = [s["temperature"] for s in samples]
    assert max(abs(b - a) for a, b in itertools.pairwise(temperatures)) < 0.2
    assert min(temperatures) > 19
    assert max(temperatures) < 24
    pressures = {round(s["pressure"], 2) for s in samples}
    assert len(pressures) > 50
    assert all(1011 < p < 1015.5 for p in pressures)


def test_binary_frame_layout() -> None:
    frame = binary_frame({1: 21.5})
    assert frame[:7] == bytes([0x02, 0x05, 0x01, 0x00, 0x00, 0xAC, 0x41])
    assert frame[-1] == 0x03
