"""The typed settings of appliance.toml; each backend validates its own options (`type = "..."`)."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from appliance.config.qc import QcSettings
from appliance.config.safety import SafetySettings
from appliance.config.sync import ClassSettings, SyncSettings
from appliance.features import WaveformSettings
from drivers.modbus.registers import ByteOrder, DataType, Point, RegisterMap, Table

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"


class Settings(BaseModel):
    """Base of every section: unknown keys are errors and TOML types are taken as they are."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


def check_host_port(value: str) -> str:
    """`value` if it is HOST:PORT, else ValueError saying what is expected."""
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"expected HOST:PORT (port 0-65535, 0 = any free port), got {value!r}")
    return value


HostPort = Annotated[str, AfterValidator(check_host_port)]


def split_host_port(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    return host.strip("[]"), int(port)


# Enum fields take their string value from TOML (strict mode alone would want the enum object).
TableField = Annotated[Table, Field(strict=False)]
DataTypeField = Annotated[DataType, Field(strict=False)]
OrderField = Annotated[ByteOrder, Field(strict=False)]


class DeviceIdentity(Settings):
    """Who this box is; on a device the image's first boot provisions it."""

    id: Annotated[str, Field(pattern=NAME_PATTERN)] = "appliance"
    name: str = ""


class HalSettings(Settings):
    """Hardware detection."""

    root: Annotated[str, Field(min_length=1)] = "/"  # read /proc, /sys, /dev, /etc under here


class TlsFiles(Settings):
    """A certificate and its key for the status page's HTTPS (PEM files; relative to the config file)."""

    cert: Annotated[str, Field(min_length=1)]
    key: Annotated[str, Field(min_length=1)]


class HttpSettings(Settings):
    """The local status page and JSON API (docs/web.md)."""

    listen: HostPort = "127.0.0.1:8080"
    # Who may read the status without logging in: "remote" (default) asks everyone but loopback clients,
    # "always" asks everyone, "never" nobody. Control actions always need the admin credential.
    status_login: Literal["remote", "always", "never"] = "remote"
    # "off" (plain HTTP), "self-signed" (a certificate made on first start, kept in the data directory),
    # or { cert = "...", key = "..." }.
    tls: Literal["off", "self-signed"] | TlsFiles = "off"
    session_hours: Annotated[float, Field(gt=0, le=24 * 30)] = 12.0  # a login lasts this long


class StoreSettings(Settings):
    """The local SQLite store under the data directory."""

    path: Annotated[str, Field(min_length=1)] = "appliance.db"
    # How long records gather before one commit to the journal, which a killed process leaves behind.
    commit_interval_ms: Annotated[int, Field(ge=1, le=60_000)] = 200
    # How often the journal's records go into the database (critical ones go at once); default 100 commit
    # intervals, 20 s at 200 ms. Fewer flushes, fewer writes to the SD card (docs/sync.md).
    flush_interval_s: Annotated[float, Field(gt=0, le=3600)] | None = None
    batch_max: Annotated[int, Field(ge=1, le=100_000)] = 2000
    # The database's share of the disk; past it the oldest records go, lowest class first (docs/sync.md).
    quota_mb: Annotated[float, Field(gt=0, le=10_000_000)] = 1024.0
    # A new database file's page size in bytes (an existing file keeps its own), and the WAL size in KiB
    # that makes a checkpoint: small pages and rare checkpoints for flash.
    page_size: Literal[512, 1024, 2048, 4096, 8192, 16384, 32768, 65536] = 1024
    checkpoint_kb: Annotated[int, Field(ge=64, le=1_048_576)] = 4096
    # Where the journal and the batches waiting for the upstream are kept: a RAM file system spares the SD
    # card; "" keeps them beside the database (relative paths start at the data directory). Unset: the
    # systemd unit's RuntimeDirectory ($RUNTIME_DIRECTORY) if it has one, else /dev/shm.
    journal_dir: str | None = None
    classes: ClassSettings = ClassSettings()

    @property
    def flush_s(self) -> float:
        return self.flush_interval_s or self.commit_interval_ms / 10

    @property
    def journal_folder(self) -> str:
        """journal_dir, or where it goes when unset: /dev/shm does not outlive a crash of a unit with
        RemoveIPC= or PrivateDevices=, a RuntimeDirectory with RuntimeDirectoryPreserve= does."""
        if self.journal_dir is not None:
            return self.journal_dir
        return os.environ.get("RUNTIME_DIRECTORY", "").split(":")[0] or "/dev/shm"


class RuntimeSettings(Settings):
    """How `appliance run` itself behaves (docs/running.md)."""

    # The whole stop, every service within it; the systemd unit's TimeoutStopSec leaves a margin above.
    stop_budget_s: Annotated[float, Field(ge=0.5, le=60)] = 2.0


class FeatureSettings(Settings):
    """Features computed for a channel: over a time window, against a learned baseline, and for waveforms
    RMS, peak and band energies (see docs/drivers.md)."""

    window_s: Annotated[float, Field(gt=0, le=86400)] = 10.0
    baseline_samples: Annotated[int, Field(ge=2, le=1_000_000)] = 100
    sample_rate_hz: Annotated[float, Field(gt=0, le=1_000_000)] | None = None  # waveforms only
    bands: list[Annotated[list[float], Field(min_length=2, max_length=2)]] = []  # [[low_hz, high_hz], ...]

    def waveform(self) -> WaveformSettings | None:
        if self.sample_rate_hz is None:
            return None
        return WaveformSettings(self.sample_rate_hz, tuple((b[0], b[1]) for b in self.bands))


class RegisterSettings(Settings):
    """One value in a device's register map."""

    channel: Annotated[str, Field(pattern=NAME_PATTERN)]
    table: TableField
    address: Annotated[int, Field(ge=0, le=65535)]
    datatype: DataTypeField = DataType.UINT16
    byte_order: OrderField = ByteOrder.BIG
    word_order: OrderField = ByteOrder.BIG
    scale: float = 1.0
    offset: float = 0.0
    unit: str = ""
    length: Annotated[int, Field(ge=1, le=125)] = 1  # strings: registers; numbers: samples (a waveform)
    features: FeatureSettings | None = None

    @model_validator(mode="after")
    def _fits(self) -> RegisterSettings:
        if self.table.is_bits and self.datatype not in (DataType.BOOL, DataType.UINT16):
            raise ValueError(f"a {self.table} is one bit: datatype must be 'bool', not {self.datatype!r}")
        point = self.point()
        if point.count > 125:
            raise ValueError(
                f"{self.length} x {self.datatype} is {point.count} registers; one read takes 125"
            )
        if self.address + point.count > 65536:
            raise ValueError(f"{self.datatype} at address {self.address} runs past register 65535")
        if self.datatype is DataType.STRING and self.features is not None:
            raise ValueError("a string has no features")
        if point.is_waveform and (self.features is None or self.features.sample_rate_hz is None):
            raise ValueError(f"a waveform ({self.length} samples) needs features.sample_rate_hz")
        if self.features is not None and not point.is_waveform and self.features.sample_rate_hz is not None:
            raise ValueError("features.sample_rate_hz is for waveforms (length > 1)")
        if self.features is not None:
            self.features.waveform()  # band limits against the Nyquist frequency
        return self

    def point(self) -> Point:
        datatype = DataType.BOOL if self.table.is_bits else self.datatype
        return Point(
            self.channel,
            self.table,
            self.address,
            datatype,
            self.byte_order,
            self.word_order,
            self.scale,
            self.offset,
            self.unit,
            self.length,
        )


class ModbusDeviceSettings(Settings):
    """What every Modbus device has: a register map polled on an interval."""

    poll_interval_s: Annotated[float, Field(ge=0.01, le=3600)] = 1.0
    # unused registers a read may span; "auto" tunes it from the measured cost of requests and registers
    max_gap: Annotated[int, Field(ge=0, le=124)] | Literal["auto"] = 8
    registers: Annotated[list[RegisterSettings], Field(min_length=1)]

    @model_validator(mode="after")
    def _consistent(self) -> ModbusDeviceSettings:
        self.register_map()  # raises ValueError on duplicate channels and overlaps
        return self

    def register_map(self) -> RegisterMap:
        return RegisterMap.of(r.point() for r in self.registers)


class ModbusTcpDeviceSettings(ModbusDeviceSettings):
    """A Modbus TCP unit polled on an interval."""

    type: Literal["modbus_tcp"]
    host: Annotated[str, Field(min_length=1)]
    port: Annotated[int, Field(ge=1, le=65535)] = 502
    unit: Annotated[int, Field(ge=0, le=255)] = 1
    timeout_s: Annotated[float, Field(gt=0, le=60)] = 1.0


class ModbusRtuDeviceSettings(ModbusDeviceSettings):
    """A slave on a serial line (see [buses]); its timeout follows from the baud rate and `turnaround_s`."""

    type: Literal["modbus_rtu"]
    bus: Annotated[str, Field(pattern=NAME_PATTERN)]
    unit: Annotated[int, Field(ge=1, le=247)]
    turnaround_s: Annotated[float, Field(gt=0, le=5)] = 0.05  # longest the slave takes to start answering


class SerialFieldSettings(Settings):
    """A numeric value in a sensor's frames, delivered as a channel."""

    name: Annotated[str, Field(pattern=NAME_PATTERN)]
    scale: float = 1.0
    offset: float = 0.0
    unit: str = ""


class SerialChannelSettings(SerialFieldSettings):
    """A channel of the binary protocol: its id in the frame."""

    id: Annotated[int, Field(ge=0, le=255)]


class SerialLineOptions(Settings):
    """The port and its character format, and when a silent channel turns stale."""

    url: Annotated[str, Field(min_length=1)]  # /dev/ttyUSB0, a pty path, socket://host:port, loop://
    baudrate: Annotated[int, Field(ge=50, le=4_000_000)] = 9600
    bytesize: Literal[5, 6, 7, 8] = 8
    parity: Literal["N", "E", "O", "M", "S"] = "N"
    stopbits: Literal[1, 2] = 1
    stale_after_s: Annotated[float, Field(gt=0, le=86400)] = 5.0


class SerialAsciiDeviceSettings(SerialLineOptions):
    """A sensor printing text lines: a regex with named groups picks the values out of each line."""

    type: Literal["serial_ascii"]
    pattern: Annotated[str, Field(min_length=1)]
    checksum: Literal["none", "nmea"] = "none"
    fields: Annotated[list[SerialFieldSettings], Field(min_length=1)]

    @model_validator(mode="after")
    def _pattern_names_fields(self) -> SerialAsciiDeviceSettings:
        try:
            groups = re.compile(self.pattern).groupindex
        except re.error as exc:
            raise ValueError(f"pattern is not a regular expression: {exc}") from None
        if missing := [f.name for f in self.fields if f.name not in groups]:
            raise ValueError(f"fields {missing} are not named groups (?P<name>...) of the pattern")
        return self


class SerialBinaryDeviceSettings(SerialLineOptions):
    """A sensor sending the framed binary protocol of docs/drivers.md."""

    type: Literal["serial_binary"]
    channels: Annotated[list[SerialChannelSettings], Field(min_length=1)]

    @model_validator(mode="after")
    def _ids_unique(self) -> SerialBinaryDeviceSettings:
        ids = [c.id for c in self.channels]
        if dupes := sorted({i for i in ids if ids.count(i) > 1}):
            raise ValueError(f"channel id {dupes[0]} is used twice")
        return self


DeviceSettings = Annotated[
    ModbusTcpDeviceSettings
    | ModbusRtuDeviceSettings
    | SerialAsciiDeviceSettings
    | SerialBinaryDeviceSettings,
    Field(discriminator="type"),
]


class RtuBusSettings(Settings):
    """A serial line with Modbus RTU slaves on it: one master serves them all in turn."""

    type: Literal["modbus_rtu"]
    url: Annotated[str, Field(min_length=1)]  # /dev/ttyUSB0, a pty, socket://host:port, rfc2217://...
    baudrate: Annotated[int, Field(ge=300, le=921600)] = 19200
    bytesize: Literal[7, 8] = 8
    parity: Literal["N", "E", "O"] = "N"
    stopbits: Literal[1, 2] = 1


BusSettings = Annotated[RtuBusSettings, Field(discriminator="type")]


class ApplianceConfig(Settings):
    """The whole appliance.toml."""

    device: DeviceIdentity = DeviceIdentity()
    hal: HalSettings = HalSettings()
    http: HttpSettings = HttpSettings()
    store: StoreSettings = StoreSettings()
    runtime: RuntimeSettings = RuntimeSettings()
    buses: dict[Annotated[str, Field(pattern=NAME_PATTERN)], BusSettings] = {}
    devices: dict[Annotated[str, Field(pattern=NAME_PATTERN)], DeviceSettings] = {}
    # Owned and validated by the bench (`bench sim --config`): when present, `appliance run`
    # starts that simulated world beside the runtime.
    qc: QcSettings | None = None
    safety: SafetySettings | None = None
    sync: SyncSettings | None = None
    bench: dict[str, Any] | None = None

    def cross_check(self, folder: Path | None = None) -> list[tuple[str, str]]:
        """Mistakes between sections and against the disk, as (key path, problem); `folder` is where the
        config file is, which relative paths start from."""
        problems = []
        if self.qc is not None and folder is not None and not (folder / self.qc.model).is_file():
            problems.append(("qc.model", f"no such file: {folder / self.qc.model}"))
        for name, device in self.devices.items():
            if isinstance(device, ModbusRtuDeviceSettings) and device.bus not in self.buses:
                known = ", ".join(self.buses) or "none"
                problems.append((f"devices.{name}.bus", f"no bus {device.bus!r} in [buses] (known: {known})"))
        if self.safety is not None:
            for i, rule in enumerate(self.safety.rules):
                if rule.sensor == "qc.camera" and self.qc is None:
                    problems.append((f"safety.rules.{i}.sensor", "qc.camera, but there is no [qc] section"))
                elif rule.sensor != "qc.camera" and self.sensor_device(rule.sensor) is None:
                    known = ", ".join(self.devices) or "none"
                    problem = f"{rule.sensor!r} is on no device in [devices] ({known})"
                    problems.append((f"safety.rules.{i}.sensor", problem))
        return problems

    def sensor_device(self, sensor: str) -> tuple[str, str] | None:
        """(device, channel) of a DEVICE.CHANNEL sensor id, the longest matching device id first."""
        for device in sorted(self.devices, key=len, reverse=True):
            if sensor.startswith(device + ".") and len(sensor) > len(device) + 1:
                return device, sensor[len(device) + 1 :]
        return None
