"""Serial line sensors: ASCII and binary frame decoders and the reader that owns a pyserial port."""

from drivers.serial.ascii import AsciiDecoder, AsciiField, AsciiFramer, AsciiProtocol, Checksum
from drivers.serial.binary import BinaryChannel, BinaryFramer, BinaryProtocol, encode
from drivers.serial.format import Parity, SerialFormat, StopBits
from drivers.serial.frames import ErrorKind, Frame, FrameError, Framer
from drivers.serial.line import LineState, Record, SerialLine, SerialLineSettings, stale_channels

__all__ = [
    "AsciiDecoder",
    "AsciiField",
    "AsciiFramer",
    "AsciiProtocol",
    "BinaryChannel",
    "BinaryFramer",
    "BinaryProtocol",
    "Checksum",
    "ErrorKind",
    "Frame",
    "FrameError",
    "Framer",
    "LineState",
    "Parity",
    "Record",
    "SerialFormat",
    "SerialLine",
    "SerialLineSettings",
    "StopBits",
    "encode",
    "stale_channels",
]
