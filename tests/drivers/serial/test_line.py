"""SerialLine against a simulated sensor on a real pty, over loop:// and over socket://."""

from __future__ import annotations

import os
import socket
import threading
import time
import tty
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from bench.serial_sensor import SensorSettings, SimulatedSerialSensor, Wire, nmea_sentence
from drivers.serial.ascii import PSEN, TH_TEXT, AsciiFramer
from drivers.serial.binary import EXAMPLE_SENSOR, BinaryFramer, encode
from drivers.serial.frames import ErrorKind, Framer
from drivers.serial.line import LineState, Record, SerialLine, SerialLineSettings, stale_channels

CHANNELS = ["humidity", "pressure", "temperature"]


class Collector:
    """The record callback: keeps what arrives from the reader thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._records: list[Record] = []

    def __call__(self, record: Record) -> None:
        with self._lock:
            self._records.append(record)

    @property
    def records(self) -> list[Record]:
        with self._lock:
            return list(self._records)


def wait_for(predicate: Callable[[], bool], what: str, timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s")
        time.sleep(0.01)


def fast(
    url: str,
    *,
    read_timeout_s: float = 0.05,
    backoff_initial_s: float = 0.05,
    backoff_max_s: float = 0.2,
    stale_after_s: float = 0.3,
) -> SerialLineSettings:
    """Settings scaled down so a test sees backoff, staleness and reconnects within a second."""
    return SerialLineSettings(
        url,
        read_timeout_s=read_timeout_s,
        backoff_initial_s=backoff_initial_s,
        backoff_max_s=backoff_max_s,
        stale_after_s=stale_after_s,
    )


def framer_for(wire: Wire) -> Framer:
    return AsciiFramer(PSEN) if wire is Wire.ASCII else BinaryFramer(EXAMPLE_SENSOR)


def errors(line: SerialLine) -> int:
    return sum(line.status()["errors"].values())


@pytest.fixture(params=list(Wire))
def sensor(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SimulatedSerialSensor]:
    with SimulatedSerialSensor(SensorSettings(wire=request.param, rate_hz=50, directory=tmp_path)) as sim:
        yield sim


@pytest.fixture
def collector() -> Collector:
    return Collector()


@pytest.fixture
def line(sensor: SimulatedSerialSensor, collector: Collector) -> Iterator[SerialLine]:
    serial_line = SerialLine(fast(str(sensor.path)), framer_for(sensor.settings.wire), collector, name="sim")
    serial_line.start()
    yield serial_line
    serial_line.stop()


def test_values_arrive(sensor: SimulatedSerialSensor, line: SerialLine, collector: Collector) -> None:
    wait_for(lambda: len(collector.records) >= 5, "five records")
    record = collector.records[-1]
    assert sorted(record.values) == CHANNELS
    assert 15 < record.values["temperature"] < 28
    assert 1010 < record.values["pressure"] < 1017
    assert record.units["pressure"] == "hPa"
    assert abs(record.timestamp - time.time()) < 2
    status = line.status()
    assert status["state"] == "open"
    assert status["frames_ok"] >= 5
    assert status["stale"] == []


@pytest.mark.parametrize("fault", ["bad_checksum", "truncated"])  # garbage: the exact test below
def test_faults_are_counted_and_good_frames_keep_flowing(
    sensor: SimulatedSerialSensor, line: SerialLine, collector: Collector, fault: str
) -> None:
    wait_for(lambda: len(collector.records) >= 3, "first records")
    before_errors, before_ok = line.status()["errors"], line.status()["frames_ok"]
    inject = {
        "bad_checksum": sensor.inject_bad_checksum,
        "truncated": sensor.inject_truncated,
    }[fault]
    inject()
    wait_for(lambda: errors(line) > sum(before_errors.values()), f"{fault} counted")
    wait_for(lambda: line.status()["frames_ok"] >= before_ok + 5, "good frames after the fault")
    after = line.status()["errors"]
    expected = {
        (Wire.ASCII, "bad_checksum"): ErrorKind.BAD_CHECKSUM,
        (Wire.BINARY, "bad_checksum"): ErrorKind.BAD_CRC,
        (Wire.BINARY, "truncated"): ErrorKind.TRUNCATED,
    }.get((sensor.settings.wire, fault))
    if expected is not None:
        assert after[expected] > before_errors[expected]
    assert line.status()["state"] == "open"


NOISE = b"\xff\x00\x55\xaa line noise \x81\xfe"  # no STX and no line end in it


@pytest.mark.parametrize(
    ("wire", "kept", "counted"),
    [
        # binary framing skips the noise to the next STX: every frame around it is kept
        (Wire.BINARY, ["before", "after", "last"], ErrorKind.GARBAGE),
        # a text line the noise landed in cannot be trusted: that sentence goes, its neighbours stay
        (Wire.ASCII, ["before", "last"], ErrorKind.NOT_TEXT),
    ],
)
def test_garbage_between_frames_is_counted_and_the_frames_around_it_are_kept(
    collector: Collector, wire: Wire, kept: list[str], counted: ErrorKind
) -> None:
    values = {
        "before": {"temperature": 21.5, "pressure": 1013.25, "humidity": 45.0},
        "after": {"temperature": 22.0, "pressure": 1012.5, "humidity": 46.25},
        "last": {"temperature": 22.5, "pressure": 1012.0, "humidity": 47.5},
    }

    def frame(v: dict[str, float]) -> bytes:
        if wire is Wire.BINARY:
            return encode({1: v["temperature"], 2: v["pressure"], 3: v["humidity"]})
        return nmea_sentence(f"PSEN,T={v['temperature']},P={v['pressure']},H={v['humidity']}")

    master, slave = os.openpty()
    tty.setraw(slave)
    serial_line = SerialLine(fast(os.ttyname(slave)), framer_for(wire), collector, name="noisy")
    serial_line.start()
    try:
        wait_for(lambda: serial_line.status()["state"] == LineState.OPEN, "open")
        # the noise right before a frame, in one read: the framer must stop skipping exactly at its start
        for data in (frame(values["before"]), NOISE + frame(values["after"]), frame(values["last"])):
            os.write(master, data)
            time.sleep(0.02)
        wait_for(lambda: any(r.values == values["last"] for r in collector.records), "the last frame")
        status = serial_line.status()
    finally:
        serial_line.stop()
        os.close(slave)
        os.close(master)
    assert [r.values for r in collector.records] == [values[k] for k in kept]
    assert {k: n for k, n in status["errors"].items() if n} == {counted: 1}
    assert status["frames_ok"] == len(kept) and status["state"] == "open"


def test_silence_makes_channels_stale(
    sensor: SimulatedSerialSensor, line: SerialLine, collector: Collector
) -> None:
    wait_for(lambda: len(collector.records) >= 3, "first records")
    assert line.stale() == []
    sensor.silence()
    wait_for(lambda: line.stale() == CHANNELS, "every channel stale")
    status = line.status()
    assert status["stale"] == CHANNELS
    assert time.time() - max(status["last_good"].values()) > 0.3  # stale only after stale_after_s
    sensor.silence(False)
    wait_for(lambda: line.stale() == [], "fresh again")


def test_unplug_then_replug_reconnects(
    sensor: SimulatedSerialSensor, line: SerialLine, collector: Collector
) -> None:
    wait_for(lambda: len(collector.records) >= 3, "first records")
    assert line.status()["reconnects"] == 0
    sensor.unplug()
    wait_for(lambda: line.status()["open_failures"] >= 2, "failed reopens while unplugged")
    status = line.status()
    assert status["state"] == "connecting"
    assert "No such file" in status["last_error"] or "could not open" in status["last_error"]
    seen = len(collector.records)
    sensor.replug()
    wait_for(lambda: line.status()["reconnects"] == 1, "reconnected")
    wait_for(lambda: len(collector.records) >= seen + 5, "values flowing again")
    assert line.status()["state"] == "open"


def test_stop_returns_promptly(sensor: SimulatedSerialSensor, collector: Collector) -> None:
    serial_line = SerialLine(
        fast(str(sensor.path), read_timeout_s=0.5), framer_for(sensor.settings.wire), collector
    )
    serial_line.start()
    wait_for(lambda: len(collector.records) >= 1, "first record")
    started = time.monotonic()
    serial_line.stop()
    assert time.monotonic() - started < 1.0
    assert serial_line.status()["state"] == "stopped"


def test_a_missing_port_backs_off_without_dying(tmp_path: Path, collector: Collector) -> None:
    settings = fast(str(tmp_path / "nothing"), backoff_initial_s=0.02, backoff_max_s=0.08)
    serial_line = SerialLine(settings, AsciiFramer(TH_TEXT), collector)
    serial_line.start()
    wait_for(lambda: serial_line.status()["open_failures"] >= 4, "repeated open failures")
    started = time.monotonic()
    serial_line.stop()
    assert time.monotonic() - started < 0.5
    assert serial_line.stale() == ["humidity", "temperature"]  # never seen counts as stale


def test_loop_url_smoke(collector: Collector) -> None:
    serial_line = SerialLine(fast("loop://"), AsciiFramer(TH_TEXT), collector, name="loop")
    assert not serial_line.write(b"T:0 H:0\n")  # not open yet
    serial_line.start()
    try:
        wait_for(lambda: serial_line.status()["state"] == LineState.OPEN, "open")
        assert serial_line.write(b"T:21.50 H:45.2\r\nnot a reading\r\n")
        wait_for(lambda: len(collector.records) == 1, "the echoed line")
        wait_for(lambda: serial_line.status()["errors"]["no_match"] == 1, "the bad line counted")
    finally:
        serial_line.stop()
    assert collector.records[0].values == {"temperature": 21.5, "humidity": 45.2}


def test_a_failing_callback_does_not_stop_the_reader() -> None:
    calls: list[Record] = []

    def explode(record: Record) -> None:
        calls.append(record)
        raise RuntimeError("consumer bug")

    serial_line = SerialLine(fast("loop://"), BinaryFramer(EXAMPLE_SENSOR), explode)
    serial_line.start()
    try:
        wait_for(lambda: serial_line.status()["state"] == LineState.OPEN, "open")
        serial_line.write(encode({1: 1.0}) + encode({1: 2.0}))
        wait_for(lambda: serial_line.status()["callback_errors"] == 2, "both callbacks failed")
        assert serial_line.status()["frames_ok"] == 2
    finally:
        serial_line.stop()
    assert [r.values for r in calls] == [{"temperature": 1.0}, {"temperature": 2.0}]


def test_socket_url_reconnects_when_the_peer_closes(collector: Collector) -> None:
    def received(value: float) -> bool:
        return any(r.values == {"pressure": value} for r in collector.records)

    with socket.create_server(("127.0.0.1", 0)) as server:
        server.settimeout(3)
        port = server.getsockname()[1]
        serial_line = SerialLine(fast(f"socket://127.0.0.1:{port}"), BinaryFramer(EXAMPLE_SENSOR), collector)
        serial_line.start()
        try:
            for value in (1.0, 2.0):
                conn, _ = server.accept()
                with conn:
                    # pyserial drains the socket right after connecting, so keep sending like a sensor would
                    deadline = time.monotonic() + 3
                    while not received(value) and time.monotonic() < deadline:
                        conn.sendall(encode({2: value}))
                        time.sleep(0.02)
                    assert received(value)
            wait_for(lambda: serial_line.status()["reconnects"] == 1, "reconnected after the peer closed")
        finally:
            serial_line.stop()


def test_stale_channels_helper() -> None:
    last_good = {"a": 100.0, "b": 98.0}
    assert stale_channels(last_good, 1.5, now=100.5) == ["b"]
    assert stale_channels(last_good, 5.0, now=100.5, expected=["a", "c"]) == ["c"]
    assert stale_channels({}, 1.0, now=0.0) == []


@pytest.mark.parametrize(
    ("field", "value"),
    [("read_timeout_s", 2.0), ("backoff_initial_s", 0.0), ("stale_after_s", -1)],
)
def test_bad_line_settings_are_refused(field: str, value: float) -> None:
    with pytest.raises(ValueError, match=field.split("_s")[0]):
        SerialLineSettings("loop://", **{field: value})  # type: ignore[arg-type]
