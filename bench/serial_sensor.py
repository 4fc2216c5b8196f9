"""A simulated serial sensor on a pty: NMEA-style lines or binary frames, with faults injected on command.

The reader opens `SimulatedSerialSensor.path`, a symlink that always points at the current pty,
as it would open /dev/serial/by-id/... for a USB adapter. Unplugging closes the pty (the reader's
next read fails) and removes the symlink; replugging opens a fresh pty behind the same path.
The wire formats are written here from their definitions, independently of the appliance's
decoders, so the two check each other:

- ascii:  "$PSEN,T=21.53,P=1013.2,H=45.1*HH\\r\\n", HH = XOR of the bytes between "$" and "*".
- binary: STX 0x02, N, N bytes of (id uint8, float32 LE) pairs, CRC-16/MODBUS of N+payload LE, ETX 0x03;
          ids 1 temperature, 2 pressure, 3 humidity.
"""

from __future__ import annotations

import enum
import math
import os
import random
import shutil
import struct
import tempfile
import threading
import time
import tty
from dataclasses import dataclass
from pathlib import Path


class Wire(enum.StrEnum):
    """The two wire formats the simulated sensor can speak."""

    ASCII = "ascii"
    BINARY = "binary"


@dataclass(frozen=True, slots=True)
class SensorSettings:
    """What the sensor speaks and how often; the seed makes its noise and its garbage replayable."""

    wire: Wire = Wire.ASCII
    rate_hz: float = 10.0
    seed: int = 0
    directory: Path | None = None  # where the stable symlink lives; a private temp dir when None
    link_name: str = "sensor"


def nmea_sentence(body: str) -> bytes:
    checksum = 0
    for byte in body.encode("ascii"):
        checksum ^= byte
    return f"${body}*{checksum:02X}\r\n".encode("ascii")


def crc16_modbus(data: bytes) -> int:
    # bit by bit, as the protocol defines it; the driver uses a table, so each checks the other
    crc = 0xFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc


def binary_frame(values: dict[int, float]) -> bytes:
    payload = b"".join(struct.pack("<B", i) + struct.pack("<f", v) for i, v in values.items())
    body = bytes([len(payload)]) + payload
    crc = crc16_modbus(body)
    return b"\x02" + body + bytes([crc & 0xFF, crc >> 8]) + b"\x03"


class Weather:
    """Indoor air: temperature wandering slowly around a setpoint, noisy pressure, humidity following it."""

    def __init__(self, rng: random.Random) -> None:
        self.rng, self.t0 = rng, time.monotonic()
        self.drift = 0.0

    def sample(self) -> dict[str, float]:
        t = time.monotonic() - self.t0
        # mean-reverting random walk: slow, bounded wandering like a room under a thermostat
        self.drift += -0.05 * self.drift + self.rng.gauss(0.0, 0.02)
        temperature = 21.5 + 0.8 * math.sin(2 * math.pi * t / 600.0) + self.drift
        return {
            "temperature": temperature,
            "pressure": 1013.25 + self.rng.gauss(0.0, 0.15),
            "humidity": 45.0 - 1.5 * (temperature - 21.5) + self.rng.gauss(0.0, 0.3),
        }


class SimulatedSerialSensor:
    """One sensor writing to a pty in a background thread; `start()`, `stop()`, and fault methods."""

    def __init__(self, settings: SensorSettings) -> None:
        self.settings = settings
        self.weather = Weather(random.Random(settings.seed))
        self._faults = random.Random(settings.seed + 1)
        self._own_dir = settings.directory is None
        self.directory = settings.directory or Path(tempfile.mkdtemp(prefix="serial-sensor-"))
        self.path = self.directory / settings.link_name
        self._lock = threading.Lock()  # one writer at a time, so injected bytes never split a frame
        self._master: int | None = None
        self._slave: int | None = None
        self._silent = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.sent = 0  # good frames written
        self.dropped = 0  # frames not written because nobody drained the pty

    @property
    def plugged(self) -> bool:
        return self._master is not None

    def start(self) -> None:
        self.replug()
        self._thread = threading.Thread(target=self._run, name="serial-sensor", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2.0)
            self._thread = None
        self.unplug()
        if self._own_dir:
            shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> SimulatedSerialSensor:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def frame(self) -> bytes:
        v = self.weather.sample()
        if self.settings.wire is Wire.ASCII:
            return nmea_sentence(f"PSEN,T={v['temperature']:.2f},P={v['pressure']:.1f},H={v['humidity']:.1f}")
        return binary_frame({1: v["temperature"], 2: v["pressure"], 3: v["humidity"]})

    # faults

    def inject_garbage(self, size: int = 24) -> bytes:
        noise = bytes(self._faults.randrange(256) for _ in range(size))
        self._write(noise)
        return noise

    def inject_bad_checksum(self) -> bytes:
        good = self.frame()
        if self.settings.wire is Wire.ASCII:
            star = good.rindex(b"*")
            wrong = (int(good[star + 1 : star + 3], 16) ^ 0x5A) & 0xFF
            bad = good[: star + 1] + f"{wrong:02X}".encode() + good[star + 3 :]
        else:
            bad = good[:-3] + bytes([good[-3] ^ 0x5A]) + good[-2:]
        self._write(bad)
        return bad

    def inject_overrange(self) -> bytes:
        """A well-formed frame whose temperature is no finite number: `1e999` in a sentence, inf in binary."""
        v = self.weather.sample()
        if self.settings.wire is Wire.ASCII:
            frame = nmea_sentence(f"PSEN,T=1e999,P={v['pressure']:.1f},H={v['humidity']:.1f}")
        else:
            frame = binary_frame({1: math.inf, 2: v["pressure"], 3: v["humidity"]})
        self._write(frame)
        return frame

    def inject_truncated(self) -> bytes:
        whole = self.frame()
        cut = whole[: len(whole) // 2]  # the sensor reset mid-frame: no terminator, no ETX
        self._write(cut)
        return cut

    def silence(self, silent: bool = True) -> None:
        self._silent = silent

    def unplug(self) -> None:
        with self._lock:
            for fd in (self._master, self._slave):
                if fd is not None:
                    os.close(fd)
            self._master = self._slave = None
            self.path.unlink(missing_ok=True)

    def replug(self) -> None:
        self.unplug()
        with self._lock:
            master, slave = os.openpty()
            tty.setraw(slave)  # no echo, no newline translation: bytes pass as written
            os.set_blocking(master, False)  # a full pty with no reader must not stall the simulator
            link = self.path.with_name(self.path.name + ".new")
            link.unlink(missing_ok=True)
            link.symlink_to(os.ttyname(slave))
            link.replace(self.path)  # atomic: a reader never sees a half-made link
            self._master, self._slave = master, slave

    def _write(self, data: bytes) -> bool:
        with self._lock:
            if self._master is None:
                return False
            try:
                written = os.write(self._master, data)
            except (BlockingIOError, OSError):
                return False
            return written == len(data)

    def _run(self) -> None:
        period = 1.0 / self.settings.rate_hz
        next_at = time.monotonic()
        while not self._stop.wait(max(0.0, next_at - time.monotonic())):
            next_at += period
            if self._silent or not self.plugged:
                continue
            if self._write(self.frame()):
                self.sent += 1
            else:
                self.dropped += 1
