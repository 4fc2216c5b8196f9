"""The simulated world's settings: the `[bench]` table of a config file."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, ValidationError, model_validator

# The bench reuses only the appliance's config-file plumbing (reading TOML, wording errors),
# never its protocol code, so it stays an independent peer of every protocol the box speaks.
from appliance.config.base import Settings
from appliance.config.errors import describe
from appliance.config.loader import ConfigError, read_toml
from bench.signals import Signal

WORDS = {"int16": 1, "uint16": 1, "int32": 2, "uint32": 2, "float32": 2, "float64": 4, "bool": 1, "string": 1}


class SimRegister(Settings):
    """One value a simulated slave serves, encoded as a real device would."""

    table: Literal["coil", "discrete_input", "holding", "input"]
    address: Annotated[int, Field(ge=0, le=65535)]
    datatype: Literal["bool", "int16", "uint16", "int32", "uint32", "float32", "float64", "string"] = "uint16"
    byte_order: Literal["big", "little"] = "big"
    word_order: Literal["big", "little"] = "big"
    scale: float = 1.0
    offset: float = 0.0
    length: Annotated[int, Field(ge=1, le=125)] = 1  # strings: registers; numbers: samples (a waveform)
    sample_rate_hz: Annotated[float, Field(gt=0)] = 1000.0  # waveforms: spacing of the samples
    signal: Signal

    @property
    def is_bit(self) -> bool:
        return self.table in ("coil", "discrete_input")

    @property
    def words(self) -> int:
        return 1 if self.is_bit else WORDS[self.datatype] * self.length

    @model_validator(mode="after")
    def _fits(self) -> SimRegister:
        if self.scale == 0:
            raise ValueError("scale must not be 0")
        if self.is_bit and self.datatype != "bool":
            raise ValueError(f"a {self.table} is one bit: datatype must be 'bool'")
        if not self.is_bit and self.datatype == "bool":
            raise ValueError(f"'bool' is for coils and discrete inputs, not {self.table} registers")
        if (self.datatype == "string") != (self.signal.type == "text"):
            raise ValueError("strings take a text signal, and a text signal needs datatype 'string'")
        if self.address + self.words > 65536:
            raise ValueError(f"{self.datatype} at address {self.address} runs past register 65535")
        return self


class ModbusTcpSlave(Settings):
    """A Modbus TCP device on loopback."""

    name: Annotated[str, Field(min_length=1)]
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=0, le=65535)]
    unit: Annotated[int, Field(ge=1, le=247)] = 1
    registers: Annotated[list[SimRegister], Field(min_length=1)]
    holes: Literal["invalid", "zero"] = "invalid"  # registers between points: refused, or read as 0

    @model_validator(mode="after")
    def _no_overlap(self) -> ModbusTcpSlave:
        for table in ("coil", "discrete_input", "holding", "input"):
            spans = sorted((r.address, r.address + r.words) for r in self.registers if r.table == table)
            for (_, end), (start, _) in itertools.pairwise(spans):
                if start < end:
                    raise ValueError(f"two registers overlap in the {table} table at address {start}")
        return self


class RtuSlave(Settings):
    """One slave on a simulated RS-485 line."""

    unit: Annotated[int, Field(ge=1, le=247)]
    registers: Annotated[list[SimRegister], Field(min_length=1)]
    holes: Literal["invalid", "zero"] = "invalid"


class RtuLine(Settings):
    """A paced RS-485 line and the slaves on it; the appliance opens `link`."""

    name: Annotated[str, Field(min_length=1)]
    link: Annotated[str, Field(min_length=1)]  # path of the symlink to the appliance's end of the line
    baudrate: Annotated[int, Field(ge=300, le=921600)] = 19200
    bytesize: Literal[7, 8] = 8
    parity: Literal["N", "E", "O"] = "N"
    stopbits: Literal[1, 2] = 1
    slaves: Annotated[list[RtuSlave], Field(min_length=1)]

    @model_validator(mode="after")
    def _units_unique(self) -> RtuLine:
        units = [s.unit for s in self.slaves]
        if dupes := sorted({u for u in units if units.count(u) > 1}):
            raise ValueError(f"unit {dupes[0]} is on the line twice")
        return self


class SerialSensorSim(Settings):
    """A sensor writing frames to a pty; the appliance opens `link`."""

    name: Annotated[str, Field(min_length=1)]
    link: Annotated[str, Field(min_length=1)]
    wire: Literal["ascii", "binary"] = "ascii"  # $PSEN,T=..,P=..,H=..*HH lines, or the framed binary protocol
    rate_hz: Annotated[float, Field(gt=0, le=1000)] = 10.0
    seed: int = 0


class CameraSim(Settings):
    """The synthetic conveyor camera, served as an MJPEG IP camera at http://HOST:PORT/stream.mjpg."""

    name: Annotated[str, Field(min_length=1)]
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=0, le=65535)]
    fps: Annotated[float, Field(gt=0, le=120)] = 10.0
    width: Annotated[int, Field(ge=64, le=4096)] = 320
    height: Annotated[int, Field(ge=48, le=4096)] = 240
    frames_per_part: Annotated[int, Field(ge=4, le=10_000)] = 30
    defect_rate: Annotated[float, Field(ge=0, le=1)] = 0.2
    # relative weight of each defect on a defective part, e.g. { crack = 1.0 }; none: all alike
    weights: dict[
        Literal["scratch", "missing_hole", "crack", "stain", "misplaced"], Annotated[float, Field(ge=0)]
    ] = {}
    triggered: bool = True  # only frames with a part in position, as a photo-eye-triggered camera sends
    seed: int = 0


class UpstreamSim(Settings):
    """The upstream: a mosquitto broker started here (`spawn_broker`) on `mqtt`'s port, and the receiver that
    records every batch it gets over MQTT (and over HTTP when `http` is set) into `ledger`; the evidence files
    it receives go to the folder `evidence` beside the ledger."""

    mqtt: Annotated[str, Field(pattern=r"^[^:]+:\d{1,5}$")] | None = "127.0.0.1:1883"
    spawn_broker: bool = True
    http: Annotated[str, Field(pattern=r"^[^:]+:\d{1,5}$")] | None = None
    prefix: Annotated[str, Field(min_length=1)] = "edge"
    ledger: Annotated[str, Field(min_length=1)] = "/tmp/edge-appliance-bench/upstream.db"


class BenchConfig(Settings):
    """Everything `bench sim` starts."""

    modbus_tcp: list[ModbusTcpSlave] = []
    rtu_lines: list[RtuLine] = []
    serial_sensors: list[SerialSensorSim] = []
    cameras: list[CameraSim] = []
    control: Annotated[str, Field(pattern=r"^[^:]+:\d{1,5}$")] | None = None  # HOST:PORT of the fault API
    upstream: UpstreamSim | None = None


def load_bench_config(path: Path) -> BenchConfig:
    """The `[bench]` table of `path`, or ConfigError with one `FILE: key.path: problem` per mistake."""
    raw = read_toml(path)
    if "bench" not in raw:
        raise ConfigError([f"{path}: bench: missing (the simulated world is described under [bench])"])
    try:
        return BenchConfig.model_validate(raw["bench"])
    except ValidationError as exc:
        raise ConfigError([f"{path}: bench.{line}" for line in describe(exc, raw["bench"])]) from None
