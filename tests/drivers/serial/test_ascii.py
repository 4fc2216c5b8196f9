"""ASCII line decoding: the example protocols, NMEA checksums, every error kind, and line splitting."""

from __future__ import annotations

import pytest

from drivers.serial.ascii import PSEN, TH_TEXT, WIMDA, AsciiDecoder, AsciiField, AsciiFramer, AsciiProtocol
from drivers.serial.frames import ErrorKind, Frame, FrameError


def sentence(body: str) -> bytes:
    checksum = 0
    for byte in body.encode():
        checksum ^= byte
    return f"${body}*{checksum:02X}\r\n".encode()


def kind_of(decoder: AsciiDecoder, line: bytes) -> ErrorKind:
    with pytest.raises(FrameError) as caught:
        decoder.decode(line)
    return caught.value.kind


def test_psen_sentence_with_checksum() -> None:
    assert AsciiDecoder(PSEN).decode(sentence("PSEN,T=21.5,P=1013.2")) == {
        "temperature": 21.5,
        "pressure": 1013.2,
    }
    values = AsciiDecoder(PSEN).decode(sentence("PSEN,T=-3.25,P=998,H=45.2").rstrip())
    assert values == {"temperature": -3.25, "pressure": 998.0, "humidity": 45.2}


def test_a_real_wimda_sentence_with_empty_fields_and_scaling() -> None:
    # as a weather station sends it: no water temperature (",,,"), checksum 0x66
    line = b"$WIMDA,29.7544,I,1.0076,B,35.5,C,,,42.1,,20.6,C,116.4,T,107.7,M,1.2,N,0.6,M*66\r\n"
    values = AsciiDecoder(WIMDA).decode(line)
    assert values["pressure_bar"] == pytest.approx(1007.6)  # bar scaled to hPa
    assert values["air_temperature"] == 35.5
    assert values["relative_humidity"] == 42.1
    assert values["dew_point"] == 20.6
    assert values["wind_speed"] == 0.6
    assert "water_temperature" not in values  # an empty field means no data, not an error


def test_plain_text_line_without_checksum() -> None:
    assert AsciiDecoder(TH_TEXT).decode(b"T:21.50 H:45.2\n") == {"temperature": 21.5, "humidity": 45.2}


def test_scale_offset_and_lowercase_checksum() -> None:
    protocol = AsciiProtocol(
        r"\$RAW,(?P<adc>\d+)", (AsciiField("adc", scale=0.5, offset=-10.0),), checksum=PSEN.checksum
    )
    line = sentence("RAW,102")
    assert line.endswith(b"*5B\r\n")
    assert AsciiDecoder(protocol).decode(line.replace(b"*5B", b"*5b")) == {"adc": 41.0}


@pytest.mark.parametrize(
    ("protocol", "line", "kind"),
    [
        (PSEN, b"hello world", ErrorKind.NO_MATCH),
        (PSEN, sentence("PXYZ,T=1,P=2"), ErrorKind.NO_MATCH),
        (TH_TEXT, b"T:21.5", ErrorKind.NO_MATCH),
        (PSEN, b"$PSEN,T=21.5,P=1013.2*00\r\n", ErrorKind.BAD_CHECKSUM),
        (PSEN, b"$PSEN,T=21.5,P=1013.2\r\n", ErrorKind.BAD_CHECKSUM),
        (PSEN, b"$PSEN,T=21.5,P=1013.2*G1\r\n", ErrorKind.BAD_CHECKSUM),
        (PSEN, sentence("PSEN,T=warm,P=1013.2"), ErrorKind.BAD_NUMBER),
        (PSEN, sentence("PSEN,T=nan,P=1013.2"), ErrorKind.BAD_NUMBER),
        (TH_TEXT, b"T:1e999x H:4", ErrorKind.BAD_NUMBER),
        (TH_TEXT, b"T:21.5 H:\xff\xfe", ErrorKind.NOT_TEXT),
        (TH_TEXT, b"T:21.5\x00 H:4", ErrorKind.NOT_TEXT),
        (TH_TEXT, b"T:" + b"1" * 300 + b" H:4", ErrorKind.TOO_LONG),
    ],
)
def test_every_error_kind(protocol: AsciiProtocol, line: bytes, kind: ErrorKind) -> None:
    assert kind_of(AsciiDecoder(protocol), line) is kind


def test_framer_splits_chunks_and_accepts_bare_newlines() -> None:
    framer = AsciiFramer(TH_TEXT)
    stream = b"T:1.0 H:2.0\r\n\r\nT:3.0 H:4.0\nT:5.0 H:6.0\r\n"
    out: list[Frame | FrameError] = []
    for i in range(0, len(stream), 3):
        out += framer.feed(stream[i : i + 3])
    assert out == [Frame({"temperature": t, "humidity": h}) for t, h in ((1, 2), (3, 4), (5, 6))]
    assert framer.units == {"temperature": "degC", "humidity": "%RH"}


def test_framer_reports_an_endless_line_once_and_recovers() -> None:
    framer = AsciiFramer(TH_TEXT)
    out = framer.feed(b"x" * 200) + framer.feed(b"y" * 200) + framer.feed(b"z" * 200 + b"\nT:1 H:2\n")
    kinds = [item.kind if isinstance(item, FrameError) else item for item in out]
    assert kinds == [ErrorKind.TOO_LONG, Frame({"temperature": 1.0, "humidity": 2.0})]


def test_framer_errors_do_not_stop_the_stream_and_reset_reports_a_partial_line() -> None:
    framer = AsciiFramer(PSEN)
    out = framer.feed(b"\x00\x01junk\r\n" + sentence("PSEN,T=1,P=2") + b"$PSEN,T=")
    assert isinstance(out[0], FrameError)
    assert out[0].kind is ErrorKind.NOT_TEXT
    assert out[1] == Frame({"temperature": 1.0, "pressure": 2.0})
    (error,) = framer.reset()
    assert error.kind is ErrorKind.TRUNCATED
    assert framer.reset() == []


@pytest.mark.parametrize(
    ("pattern", "fields", "message"),
    [
        (r"(?P<a>", (AsciiField("a"),), "not a regular expression"),
        (r"(?P<a>\d+)", (AsciiField("b"),), "not named groups"),
        (r"(?P<a>\d+)", (AsciiField("a"), AsciiField("a")), "unique"),
        (r"(?P<a>\d+)", (), "at least one field"),
    ],
)
def test_bad_settings_are_refused(pattern: str, fields: tuple[AsciiField, ...], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        AsciiProtocol(pattern, fields)
