"""ASCII line sensors: a regex with named groups turns each line (optionally an NMEA sentence) into values."""

from __future__ import annotations

import codecs
import enum
import functools
import operator
import re
from collections.abc import Mapping
from dataclasses import dataclass

from drivers.serial.frames import ErrorKind, Frame, FrameError, preview

# A plain decimal number: float() alone would also take "nan", "inf" and "1_000", which no sensor means.
_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_HEX2 = re.compile(r"[0-9A-Fa-f]{2}")


class Checksum(enum.StrEnum):
    """How a line proves it arrived intact."""

    NONE = "none"
    NMEA = "nmea"  # "$BODY*HH": HH is the XOR of the bytes of BODY, two hex digits


@dataclass(frozen=True, slots=True)
class AsciiField:
    """A named regex group that holds a numeric channel: value = number * scale + offset."""

    name: str
    scale: float = 1.0
    offset: float = 0.0
    unit: str = ""


@dataclass(frozen=True, slots=True)
class AsciiProtocol:
    """One line format. The regex must match the whole line, without terminator and without "*HH".

    Groups that are not fields (a talker id, a status letter) are matched but not delivered. A field
    whose group is empty or did not take part in the match is left out: NMEA sends ",," for "no data".
    A line ends at the terminator's last character; the characters before it are optional, so the
    default "\\r\\n" also accepts a bare "\\n".
    """

    pattern: str
    fields: tuple[AsciiField, ...]
    checksum: Checksum = Checksum.NONE
    terminator: str = "\r\n"
    encoding: str = "ascii"
    max_line: int = 256

    def __post_init__(self) -> None:
        try:
            groups = re.compile(self.pattern).groupindex
        except re.error as exc:
            raise ValueError(f"pattern {self.pattern!r} is not a regular expression: {exc}") from exc
        names = [f.name for f in self.fields]
        if not names:
            raise ValueError("an ASCII protocol needs at least one field")
        if len(set(names)) != len(names):
            raise ValueError(f"field names must be unique, got {names}")
        if missing := [n for n in names if n not in groups]:
            raise ValueError(f"fields {missing} are not named groups of pattern {self.pattern!r}")
        if not self.terminator:
            raise ValueError("terminator must not be empty")
        if self.max_line < 1:
            raise ValueError("max_line must be at least 1")
        codecs.lookup(self.encoding)  # raises LookupError for an unknown encoding, at settings time


def nmea_checksum(body: bytes) -> int:
    """XOR of every byte between "$" and "*"."""
    return functools.reduce(operator.xor, body, 0)


class AsciiDecoder:
    """Decodes single lines of one `AsciiProtocol`."""

    def __init__(self, protocol: AsciiProtocol) -> None:
        self.protocol = protocol
        self._regex = re.compile(protocol.pattern)

    def decode(self, line: bytes) -> dict[str, float]:
        """Values of one line (its terminator may be present or not); raises `FrameError` if it is bad."""
        p = self.protocol
        line = line.rstrip(p.terminator.encode(p.encoding))
        if len(line) > p.max_line:
            raise FrameError(ErrorKind.TOO_LONG, f"{len(line)} bytes, at most {p.max_line} allowed")
        try:
            text = line.decode(p.encoding)
        except UnicodeDecodeError as exc:
            raise FrameError(
                ErrorKind.NOT_TEXT, f"not {p.encoding} at byte {exc.start}: {preview(line)}"
            ) from None
        for index, char in enumerate(text):
            if (char < " " and char != "\t") or char == "\x7f":
                raise FrameError(
                    ErrorKind.NOT_TEXT, f"control character {ord(char):#04x} at {index}: {preview(line)}"
                )
        if p.checksum is Checksum.NMEA:
            text = self._verified_nmea(text, line)
        match = self._regex.fullmatch(text)
        if match is None:
            raise FrameError(ErrorKind.NO_MATCH, f"does not match the pattern: {preview(line)}")
        values: dict[str, float] = {}
        for field in p.fields:
            raw = (match.group(field.name) or "").strip()
            if not raw:
                continue
            if not _NUMBER.fullmatch(raw):
                raise FrameError(
                    ErrorKind.BAD_NUMBER, f"{field.name}={raw!r} is not a number: {preview(line)}"
                )
            values[field.name] = float(raw) * field.scale + field.offset
        return values

    def _verified_nmea(self, text: str, line: bytes) -> str:
        if not text.startswith("$"):
            raise FrameError(ErrorKind.NO_MATCH, f"not a $-sentence: {preview(line)}")
        star = text.rfind("*")
        if star < 0 or not _HEX2.fullmatch(text[star + 1 :]):
            raise FrameError(ErrorKind.BAD_CHECKSUM, f"no *HH checksum at the end: {preview(line)}")
        expected = nmea_checksum(text[1:star].encode(self.protocol.encoding))
        if int(text[star + 1 :], 16) != expected:
            raise FrameError(
                ErrorKind.BAD_CHECKSUM,
                f"*{text[star + 1 :]} but the sentence sums to {expected:02X}: {preview(line)}",
            )
        return text[:star]


class AsciiFramer:
    """Splits a byte stream into lines and decodes each; the `Framer` for ASCII sensors."""

    def __init__(self, protocol: AsciiProtocol) -> None:
        self.decoder = AsciiDecoder(protocol)
        terminator = protocol.terminator.encode(protocol.encoding)
        self._end, self._optional = terminator[-1:], terminator[:-1]
        self._limit = protocol.max_line + len(self._optional)
        self._buffer = bytearray()
        self._discarding = False  # inside an overlong line that was already reported

    @property
    def channels(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.decoder.protocol.fields)

    @property
    def units(self) -> Mapping[str, str]:
        return {f.name: f.unit for f in self.decoder.protocol.fields}

    def feed(self, data: bytes) -> list[Frame | FrameError]:
        self._buffer += data
        out: list[Frame | FrameError] = []
        while (end := self._buffer.find(self._end)) >= 0:
            line = bytes(self._buffer[:end])
            del self._buffer[: end + 1]
            if self._discarding:
                self._discarding = False
                continue
            if self._optional and line.endswith(self._optional):
                line = line[: -len(self._optional)]
            if not line.strip():
                continue  # blank lines between sentences carry nothing and are not errors
            try:
                out.append(Frame(self.decoder.decode(line)))
            except FrameError as error:
                out.append(error)
        if len(self._buffer) > self._limit:
            # keep memory bounded on a line that never ends (wrong baud rate, binary data)
            if not self._discarding:
                out.append(FrameError(ErrorKind.TOO_LONG, f"no terminator within {self._limit} bytes"))
            self._discarding = True
            self._buffer.clear()
        return out

    def reset(self) -> list[FrameError]:
        partial, self._discarding = bytes(self._buffer), False
        self._buffer.clear()
        return (
            [FrameError(ErrorKind.TRUNCATED, f"line cut by a reconnect: {preview(partial)}")]
            if partial
            else []
        )


# Examples: a vendor sentence with a checksum, the NMEA 0183 weather sentence, and a plain text sensor.
PSEN = AsciiProtocol(
    pattern=r"\$PSEN,T=(?P<temperature>[^,]*),P=(?P<pressure>[^,]*)(?:,H=(?P<humidity>[^,]*))?",
    fields=(
        AsciiField("temperature", unit="degC"),
        AsciiField("pressure", unit="hPa"),
        AsciiField("humidity", unit="%RH"),
    ),
    checksum=Checksum.NMEA,
)
"""`$PSEN,T=21.5,P=1013.2*HH`, optionally with `,H=45.2` before the checksum."""

WIMDA = AsciiProtocol(
    pattern=(
        # unit letters are optional: real stations leave them out with the value (",,," for no water)
        r"\$(?P<talker>[A-Z]{2})MDA,(?P<pressure_inhg>[^,]*),I?,(?P<pressure_bar>[^,]*),B?,"
        r"(?P<air_temperature>[^,]*),C?,(?P<water_temperature>[^,]*),C?,(?P<relative_humidity>[^,]*),"
        r"(?P<absolute_humidity>[^,]*),(?P<dew_point>[^,]*),C?,(?P<wind_direction_true>[^,]*),T?,"
        r"(?P<wind_direction_magnetic>[^,]*),M?,(?P<wind_speed_knots>[^,]*),N?,(?P<wind_speed>[^,]*),M?"
    ),
    fields=(
        AsciiField("pressure_bar", scale=1000.0, unit="hPa"),  # delivered in hPa, not bar
        AsciiField("air_temperature", unit="degC"),
        AsciiField("water_temperature", unit="degC"),
        AsciiField("relative_humidity", unit="%RH"),
        AsciiField("dew_point", unit="degC"),
        AsciiField("wind_direction_true", unit="deg"),
        AsciiField("wind_speed", unit="m/s"),
    ),
    checksum=Checksum.NMEA,
)
"""NMEA 0183 MDA (meteorological composite), as weather stations such as Airmar's send it."""

TH_TEXT = AsciiProtocol(
    pattern=r"T:(?P<temperature>\S+)\s+H:(?P<humidity>\S+)",
    fields=(AsciiField("temperature", unit="degC"), AsciiField("humidity", unit="%RH")),
)
"""`T:21.50 H:45.2`: a hobby-grade temperature/humidity board printing to its UART."""
