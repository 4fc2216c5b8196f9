"""What serial protocol decoders produce: decoded frames, typed frame errors, and the framer contract."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol


class ErrorKind(enum.StrEnum):
    """Why bytes from a serial line did not become a frame; counted per kind in a line's status."""

    NO_MATCH = "no_match"  # text, but not the sentence the settings describe
    BAD_CHECKSUM = "bad_checksum"  # NMEA "*HH" missing or not the XOR of the sentence
    BAD_NUMBER = "bad_number"  # a channel value that is not a finite number
    NOT_TEXT = "not_text"  # bytes outside the encoding, or control characters inside a line
    TOO_LONG = "too_long"  # a line longer than the settings allow
    GARBAGE = "garbage"  # bytes skipped while looking for the start of a binary frame
    BAD_LENGTH = "bad_length"  # a length byte that cannot be, or no ETX where it says the frame ends
    BAD_CRC = "bad_crc"
    TRUNCATED = "truncated"  # a frame cut short by the next one, or by a reconnect


class FrameError(Exception):
    """Bytes that could not be decoded; `kind` says why, the message says what was seen."""

    def __init__(self, kind: ErrorKind, message: str) -> None:
        super().__init__(f"{kind}: {message}")
        self.kind = kind
        self.message = message


@dataclass(frozen=True, slots=True)
class Frame:
    """One decoded message: channel name -> value in engineering units (scale and offset applied)."""

    values: dict[str, float]


def preview(data: bytes, limit: int = 40) -> str:
    """A short printable form of some bytes for error messages, so a log line stays one line."""
    shown = repr(data[:limit])
    return shown + (f"... ({len(data)} bytes)" if len(data) > limit else "")


class Framer(Protocol):
    """Turns a stream of bytes, in chunks of any size, into frames and frame errors."""

    @property
    def channels(self) -> tuple[str, ...]:
        """Every channel name this protocol can deliver."""
        ...

    @property
    def units(self) -> Mapping[str, str]:
        """Unit of each channel ("" when the settings give none)."""
        ...

    def feed(self, data: bytes) -> list[Frame | FrameError]:
        """Frames and errors completed by `data`; an incomplete tail is kept for the next call."""
        ...

    def reset(self) -> list[FrameError]:
        """Forget a partial frame (the line was reopened); reports it as truncated if there was one."""
        ...
