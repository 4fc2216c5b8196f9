"""A Modbus device's register map in the config: one `[[devices.ID.registers]]` table per value, with
the features computed for it."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, model_validator

from appliance.config.base import NAME_PATTERN, Settings
from appliance.field.features import WaveformSettings
from drivers.modbus.registers import ByteOrder, DataType, Point, Table

# Enum fields take their string value from TOML (strict mode alone would want the enum object).
TableField = Annotated[Table, Field(strict=False)]
DataTypeField = Annotated[DataType, Field(strict=False)]
OrderField = Annotated[ByteOrder, Field(strict=False)]


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
