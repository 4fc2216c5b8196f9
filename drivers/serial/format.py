"""The character format of a serial line (baud rate, data bits, parity, stop bits: "19200 8N1"), checked
once here and shared by the settings of a serial sensor's line and of a Modbus RTU bus."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any


class Parity(enum.StrEnum):
    NONE = "N"
    EVEN = "E"
    ODD = "O"
    MARK = "M"
    SPACE = "S"


class StopBits(enum.Enum):
    ONE = 1
    ONE_POINT_FIVE = 1.5
    TWO = 2


@dataclass(frozen=True, slots=True)
class SerialFormat:
    """How each character goes on the wire; 9600 8N1 unless told otherwise."""

    baudrate: int = 9600
    bytesize: int = 8
    parity: Parity = Parity.NONE
    stopbits: StopBits = StopBits.ONE

    def __post_init__(self) -> None:
        if self.baudrate <= 0:
            raise ValueError(f"baudrate must be positive, got {self.baudrate}")
        if self.bytesize not in (5, 6, 7, 8):
            raise ValueError(f"bytesize must be 5, 6, 7 or 8, got {self.bytesize}")
        # the enums also take their plain values ("E", 2), as config files and pyserial spell them
        object.__setattr__(self, "parity", Parity(self.parity))
        object.__setattr__(self, "stopbits", StopBits(self.stopbits))

    @property
    def char_time_s(self) -> float:
        """Seconds one character takes on the wire: start bit, data bits, parity bit, stop bits."""
        bits = 1 + self.bytesize + (self.parity is not Parity.NONE) + float(self.stopbits.value)
        return bits / self.baudrate

    def wire_time_s(self, nbytes: int) -> float:
        return nbytes * self.char_time_s

    def pyserial(self) -> dict[str, Any]:
        """The keyword arguments of `serial.serial_for_url` that set this format."""
        return {
            "baudrate": self.baudrate,
            "bytesize": self.bytesize,
            "parity": self.parity.value,
            "stopbits": self.stopbits.value,
        }
