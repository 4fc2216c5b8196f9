"""Binary framing: the documented layout, every error kind, and resynchronisation inside a stream."""

from __future__ import annotations

import math
import struct

import pytest

from drivers.serial.binary import (
    EXAMPLE_SENSOR,
    BinaryChannel,
    BinaryFramer,
    BinaryProtocol,
    crc16_modbus,
    encode,
)
from drivers.serial.frames import ErrorKind, Frame, FrameError


def framer() -> BinaryFramer:
    return BinaryFramer(EXAMPLE_SENSOR)


def kinds(items: list[Frame | FrameError]) -> list[ErrorKind | Frame]:
    return [item.kind if isinstance(item, FrameError) else item for item in items]


def with_crc(body: bytes) -> bytes:
    return b"\x02" + body + crc16_modbus(body).to_bytes(2, "little") + b"\x03"


def test_crc16_modbus_check_value() -> None:
    assert crc16_modbus(b"123456789") == 0x4B37  # the catalogue's check value for CRC-16/MODBUS


def test_layout_byte_by_byte() -> None:
    frame = encode({1: 21.5})
    assert frame[:7] == bytes([0x02, 0x05, 0x01, 0x00, 0x00, 0xAC, 0x41])
    assert frame[7:9] == crc16_modbus(frame[1:7]).to_bytes(2, "little")
    assert frame[9:] == b"\x03"


def test_round_trip_with_names_scale_and_unknown_ids() -> None:
    protocol = BinaryProtocol((BinaryChannel(7, "flow", scale=0.1, offset=1.0, unit="l/min"),))
    (frame,) = BinaryFramer(protocol).feed(encode({7: 100.0, 9: 2.5}))
    assert isinstance(frame, Frame)
    assert frame.values == {"flow": pytest.approx(11.0), "ch9": 2.5}
    assert BinaryFramer(protocol).units == {"flow": "l/min"}


def test_frames_split_across_any_chunks() -> None:
    stream = b"".join(encode({1: float(i), 2: 1000.0 + i}) for i in range(5))
    f = framer()
    out = [item for byte in stream for item in f.feed(bytes([byte]))]
    assert out == [Frame({"temperature": float(i), "pressure": 1000.0 + i}) for i in range(5)]


def test_garbage_before_and_between_frames_is_skipped() -> None:
    good = encode({1: 20.0})
    out = framer().feed(b"\xff\x00noise" + good + b"\x55\xaa" + good)
    assert kinds(out) == [ErrorKind.GARBAGE, Frame({"temperature": 20.0}), ErrorKind.GARBAGE, out[3]]


def test_bad_crc_is_rejected_and_the_next_frame_decodes() -> None:
    bad = bytearray(encode({1: 20.0}))
    bad[-3] ^= 0xFF
    out = framer().feed(bytes(bad) + encode({1: 21.0}))
    assert kinds(out)[0] is ErrorKind.BAD_CRC
    assert out[-1] == Frame({"temperature": 21.0})


@pytest.mark.parametrize("length", [0, 4, 7, 255])
def test_impossible_length_byte(length: int) -> None:
    out = framer().feed(bytes([0x02, length]) + encode({1: 1.0}))
    assert kinds(out)[0] is ErrorKind.BAD_LENGTH
    assert out[-1] == Frame({"temperature": 1.0})


def test_missing_etx_is_a_bad_length() -> None:
    frame = encode({1: 1.0})
    out = framer().feed(frame[:-1] + b"\x04" + encode({2: 2.0}))
    assert kinds(out)[0] is ErrorKind.BAD_LENGTH
    assert out[-1] == Frame({"pressure": 2.0})


def test_a_frame_cut_by_the_next_one_is_truncated() -> None:
    cut = encode({1: 1.0, 2: 2.0, 3: 3.0})[:9]
    f = framer()
    out = f.feed(cut)
    assert out == []  # kept: the rest may still come
    out = f.feed(encode({3: 3.0}))
    assert kinds(out) == [ErrorKind.TRUNCATED, Frame({"humidity": 3.0})]


def test_a_non_finite_value_is_delivered_for_its_channel_alone() -> None:
    """A probe's NaN is that channel's news (the appliance marks it a bad value), not a bad frame that
    would cost the other channels their good values."""
    body = bytes([10]) + struct.pack("<Bf", 1, float("nan")) + struct.pack("<Bf", 2, float("inf"))
    (frame,) = framer().feed(with_crc(body))
    assert isinstance(frame, Frame)
    assert math.isnan(frame.values["temperature"]) and frame.values["pressure"] == math.inf


def test_resynchronises_mid_stream() -> None:
    """Start listening in the middle of a frame, with every kind of damage in between."""
    good = [encode({1: float(i)}) for i in range(6)]
    bad_crc = bytearray(good[2])
    bad_crc[4] ^= 0x01
    stream = good[0][4:] + good[1] + bytes(bad_crc) + b"\x02" + good[3] + b"\x02\x05\x01" + good[4] + good[5]
    f = framer()
    out = [item for i in range(0, len(stream), 7) for item in f.feed(stream[i : i + 7])]
    frames = [item for item in out if isinstance(item, Frame)]
    assert frames == [Frame({"temperature": float(i)}) for i in (1, 3, 4, 5)]
    errors = {item.kind for item in out if isinstance(item, FrameError)}
    assert {ErrorKind.GARBAGE, ErrorKind.BAD_CRC, ErrorKind.TRUNCATED} <= errors


def test_reset_reports_a_pending_partial_frame() -> None:
    f = framer()
    assert f.feed(encode({1: 1.0})[:5]) == []
    assert [e.kind for e in f.reset()] == [ErrorKind.TRUNCATED]
    assert f.reset() == []


def test_encode_refuses_what_a_frame_cannot_carry() -> None:
    with pytest.raises(ValueError, match="1 to 50"):
        encode({})
    with pytest.raises(ValueError, match="cannot encode"):
        encode({256: 1.0})


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="unique"):
        BinaryProtocol((BinaryChannel(1, "a"), BinaryChannel(1, "b")))
    with pytest.raises(ValueError, match="one byte"):
        BinaryProtocol((BinaryChannel(300, "a"),))
    with pytest.raises(ValueError, match="max_payload"):
        BinaryProtocol((), max_payload=255)
