"""Register maps: where a device keeps each value and how to turn its registers into engineering units."""

from __future__ import annotations

import enum
import itertools
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt


class Table(enum.StrEnum):
    """The four Modbus data tables."""

    COIL = "coil"
    DISCRETE_INPUT = "discrete_input"
    HOLDING = "holding"
    INPUT = "input"

    @property
    def is_bits(self) -> bool:
        return self in (Table.COIL, Table.DISCRETE_INPUT)


class DataType(enum.StrEnum):
    """How many registers a value takes and how its bits are read."""

    BOOL = "bool"
    INT16 = "int16"
    UINT16 = "uint16"
    INT32 = "int32"
    UINT32 = "uint32"
    FLOAT32 = "float32"
    FLOAT64 = "float64"
    STRING = "string"  # `length` registers, two characters each

    @property
    def registers(self) -> int:
        return _LAYOUT[self][1]


class ByteOrder(enum.StrEnum):
    """Order of bytes inside a register, or of registers inside a value ("word order")."""

    BIG = "big"
    LITTLE = "little"


# struct format character and register count for each type
_LAYOUT: dict[DataType, tuple[str, int]] = {
    DataType.BOOL: ("", 1),
    DataType.INT16: ("h", 1),
    DataType.UINT16: ("H", 1),
    DataType.INT32: ("i", 2),
    DataType.UINT32: ("I", 2),
    DataType.FLOAT32: ("f", 2),
    DataType.FLOAT64: ("d", 4),
    DataType.STRING: ("", 1),
}
# big-endian numpy types of the numeric types, for waveforms
_SAMPLES = {
    DataType.INT16: ">i2",
    DataType.UINT16: ">u2",
    DataType.INT32: ">i4",
    DataType.UINT32: ">u4",
    DataType.FLOAT32: ">f4",
    DataType.FLOAT64: ">f8",
}


_STRUCTS = {dt: struct.Struct(">" + fmt) for dt, (fmt, _) in _LAYOUT.items() if fmt}


class DecodeError(ValueError):
    """Registers that cannot be turned into a value (wrong count, out of range)."""


@dataclass(frozen=True, slots=True)
class Point:
    """One named value in a device's register map: a number, a string, or a waveform (`length` samples)."""

    channel: str
    table: Table
    address: int
    datatype: DataType = DataType.UINT16
    byte_order: ByteOrder = ByteOrder.BIG
    word_order: ByteOrder = ByteOrder.BIG
    scale: float = 1.0
    offset: float = 0.0
    unit: str = ""
    length: int = 1  # strings: registers of two characters; numbers: samples in a row (a waveform)

    @property
    def count(self) -> int:
        """Registers (or bits, for coils and discrete inputs) this point occupies."""
        return 1 if self.table.is_bits else self.datatype.registers * self.length

    @property
    def end(self) -> int:
        return self.address + self.count

    @property
    def is_waveform(self) -> bool:
        return self.length > 1 and self.datatype is not DataType.STRING and not self.table.is_bits

    @property
    def is_plain(self) -> bool:
        """A single big-endian number: what `decode_from` handles."""
        return (
            not self.table.is_bits
            and self.datatype in _STRUCTS
            and self.length == 1
            and self.byte_order is ByteOrder.BIG
            and self.word_order is ByteOrder.BIG
        )

    def unpacker(self) -> struct.Struct:
        """The struct that reads this plain point's raw number (big-endian)."""
        return _STRUCTS[self.datatype]

    def decode_from(self, packed: bytes, offset: int) -> float:
        """Fast path for a plain point: decode from a block packed once as big-endian words, `offset`
        words into it. Other orders, bits, strings and waveforms go through `decode`/`decode_samples`."""
        try:
            raw: float = _STRUCTS[self.datatype].unpack_from(packed, 2 * offset)[0]
        except struct.error as exc:
            raise DecodeError(f"{self.channel}: {exc}") from exc
        return raw * self.scale + self.offset

    def decode(self, words: Sequence[int] | Sequence[bool]) -> float | str:
        """Engineering value from this point's registers (or its single bit); text for strings."""
        if len(words) != self.count:
            raise DecodeError(f"{self.channel}: expected {self.count} register(s), got {len(words)}")
        if self.datatype is DataType.STRING and not self.table.is_bits:
            return _text(words, self.byte_order)
        if self.is_waveform:
            raise DecodeError(f"{self.channel}: a waveform of {self.length} samples; use decode_samples")
        if self.table.is_bits or self.datatype is DataType.BOOL:
            raw: float = 1.0 if words[0] else 0.0
        else:
            raw = _unpack(self.datatype, words, self.byte_order, self.word_order)
        return raw * self.scale + self.offset

    def decode_samples(self, words: Sequence[int] | Sequence[bool]) -> npt.NDArray[np.float64]:
        """A waveform: `length` samples in engineering units; word order applies within each sample."""
        if len(words) != self.count:
            raise DecodeError(f"{self.channel}: expected {self.count} registers, got {len(words)}")
        if any(not 0 <= int(w) <= 0xFFFF for w in words):
            raise DecodeError(f"{self.channel}: a register value is not a 16-bit word")
        data = np.asarray(words, dtype=np.uint16)
        per = self.datatype.registers
        if self.word_order is ByteOrder.LITTLE and per > 1:
            data = data.reshape(-1, per)[:, ::-1].reshape(-1)
        if self.byte_order is ByteOrder.LITTLE:
            data = data.byteswap()
        samples = np.frombuffer(data.astype(">u2").tobytes(), dtype=_SAMPLES[self.datatype])
        return samples.astype(np.float64) * self.scale + self.offset


def _text(words: Sequence[int] | Sequence[bool], byte_order: ByteOrder) -> str:
    """Two characters a register, the first in the high byte unless the byte order is little; trailing
    NULs and spaces are padding."""
    try:
        data = b"".join(int(w).to_bytes(2, "big" if byte_order is ByteOrder.BIG else "little") for w in words)
    except OverflowError as exc:
        raise DecodeError("a register value is not a 16-bit word") from exc
    return data.decode("latin-1").rstrip("\x00 ")


def _unpack(
    datatype: DataType, words: Sequence[int] | Sequence[bool], byte_order: ByteOrder, word_order: ByteOrder
) -> float:
    for word in words:
        if not 0 <= int(word) <= 0xFFFF:
            raise DecodeError(f"register value {word} is not a 16-bit word")
    ordered = list(words) if word_order is ByteOrder.BIG else list(reversed(words))
    data = b"".join(int(w).to_bytes(2, "big" if byte_order is ByteOrder.BIG else "little") for w in ordered)
    value: float = struct.unpack(">" + _LAYOUT[datatype][0], data)[0]
    return value


@dataclass(frozen=True)
class RegisterMap:
    """All points of one device, checked for overlaps and duplicate channel names."""

    points: tuple[Point, ...]

    def __post_init__(self) -> None:
        seen: dict[str, Point] = {}
        for point in self.points:
            if point.channel in seen:
                raise ValueError(f"channel {point.channel!r} is defined twice")
            seen[point.channel] = point
        for table in Table:
            spans = sorted((p.address, p.end, p.channel) for p in self.points if p.table is table)
            for (_, end, name), (start, _, other) in itertools.pairwise(spans):
                if start < end:
                    raise ValueError(f"{other!r} overlaps {name!r} in the {table} table at address {start}")

    @classmethod
    def of(cls, points: Iterable[Point]) -> RegisterMap:
        return cls(tuple(points))

    def in_table(self, table: Table) -> list[Point]:
        return sorted((p for p in self.points if p.table is table), key=lambda p: p.address)
