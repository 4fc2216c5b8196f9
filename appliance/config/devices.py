"""The `[devices]` and `[buses]` sections: each device type is an entry of `DEVICE_TYPES`, keyed by the
`type` its table writes, with its config class and the builder that makes its service
(appliance/field/fieldbus.py).

A new device type is one module: a config class with `type: Literal["KEY"]` (a `Settings`), a builder
`(device_id, settings, wiring) -> Service`, and `DEVICE_TYPES.register("KEY", builder, config=...)`;
the `[devices]` union is built from the registry (docs/config.md#adding-a-device-type).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from appliance.config.base import NAME_PATTERN, Settings, tagged_union
from appliance.config.registers import RegisterSettings
from drivers.modbus.registers import RegisterMap
from hal.registry import Registry

if TYPE_CHECKING:
    from appliance.field.fieldbus import DeviceBuilder


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


class SerialFormat(Settings):
    """A serial port and its character format, declared once for serial sensors and RTU buses."""

    url: Annotated[str, Field(min_length=1)]  # /dev/ttyUSB0, a pty path, socket://host:port, rfc2217://...
    baudrate: Annotated[int, Field(ge=50, le=4_000_000)] = 9600
    bytesize: Literal[5, 6, 7, 8] = 8
    parity: Literal["N", "E", "O", "M", "S"] = "N"
    stopbits: Literal[1, 2] = 1


class SerialLineOptions(SerialFormat):
    """A sensor's port and character format, and when a silent channel turns stale."""

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


class RtuBusSettings(SerialFormat):
    """A serial line with Modbus RTU slaves on it: one master serves them all in turn."""

    type: Literal["modbus_rtu"]

    @model_validator(mode="before")
    @classmethod
    def _rtu_default_baudrate(cls, data: Any) -> Any:
        # 19200 is Modbus RTU's default rate (the Modbus serial line specification), not a sensor's 9600
        if isinstance(data, dict) and "baudrate" not in data:
            return {**data, "baudrate": 19200}
        return data

    # what Modbus RTU framing and its timing allow of the one character format above
    @field_validator("baudrate")
    @classmethod
    def _rtu_baudrate(cls, value: int) -> int:
        if not 300 <= value <= 921600:
            raise ValueError(f"Modbus RTU runs at 300 to 921600 baud, got {value}")
        return value

    @field_validator("bytesize")
    @classmethod
    def _rtu_bytesize(cls, value: int) -> int:
        if value not in (7, 8):
            raise ValueError(f"Modbus RTU takes 7 or 8 data bits, got {value}")
        return value

    @field_validator("parity")
    @classmethod
    def _rtu_parity(cls, value: str) -> str:
        if value not in ("N", "E", "O"):
            raise ValueError(f"Modbus RTU takes parity 'N', 'E' or 'O', got {value!r}")
        return value


DEVICE_TYPES: Registry[DeviceBuilder] = Registry("device type")
DEVICE_TYPES.register(
    "modbus_tcp", "appliance.field.fieldbus:modbus_tcp_poller", config=ModbusTcpDeviceSettings
)
DEVICE_TYPES.register(
    "modbus_rtu", "appliance.field.fieldbus:modbus_rtu_poller", config=ModbusRtuDeviceSettings
)
DEVICE_TYPES.register(
    "serial_ascii", "appliance.field.fieldbus:serial_sensor", config=SerialAsciiDeviceSettings
)
DEVICE_TYPES.register(
    "serial_binary", "appliance.field.fieldbus:serial_sensor", config=SerialBinaryDeviceSettings
)

if TYPE_CHECKING:  # the type checker knows the built-in kinds; validation takes every registered one
    DeviceSettings = (
        ModbusTcpDeviceSettings
        | ModbusRtuDeviceSettings
        | SerialAsciiDeviceSettings
        | SerialBinaryDeviceSettings
    )
else:
    DeviceSettings = tagged_union(DEVICE_TYPES)
BusSettings = Annotated[RtuBusSettings, Field(discriminator="type")]
