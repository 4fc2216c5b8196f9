"""The batch format refuses what is not a batch: truncations, flipped bytes, bombs, lying headers and
bodies that break a rule of docs/sync.md, each with what is wrong."""

from __future__ import annotations

import random
import struct
import zlib
from typing import Any

import pytest
import zstandard

from appliance.sync.codec import (
    MAX_BODY,
    BatchFormatError,
    BatchHeader,
    decode,
    encode_readings,
)
from tests.appliance.sync.test_codec import header_for, synthetic

# Fuzzing. The helpers build envelopes from docs/sync.md, so a test can seal a body that lies.


def varint(number: int) -> bytes:
    out = bytearray()
    while number > 0x7F:
        out.append(number & 0x7F | 0x80)
        number >>= 7
    return bytes(out + bytes([number]))


def head_bytes(h: BatchHeader, stream: int = 0, count: int | None = None) -> bytes:
    numbers = (h.seq, h.first_id, h.last_id - h.first_id, h.count if count is None else count, h.thinned)
    names = b"".join(bytes([len(n.encode())]) + n.encode() for n in (h.device, h.store))
    classes = ("critical", "important", "normal", "background")
    return (
        b"EAB\x02" + bytes([stream, classes.index(h.priority)]) + names
        + b"".join(varint(n) for n in numbers) + struct.pack(">d", h.created)
    )  # fmt: skip


def sealed(*parts: bytes) -> bytes:
    data = b"".join(parts)
    return data + struct.pack(">I", zlib.crc32(data))


def zstd(body: bytes, **options: Any) -> bytes:
    return zstandard.ZstdCompressor(level=3, **options).compress(body)


def refused(payload: bytes, match: str | None = None) -> str:
    with pytest.raises(BatchFormatError, match=match) as caught:
        decode(payload)
    return str(caught.value)


SAMPLE = synthetic(40, 11)
SAMPLE_HEADER = header_for(SAMPLE)
PAYLOAD = encode_readings(SAMPLE_HEADER, SAMPLE, 19)


def test_the_envelope_is_laid_out_as_documented() -> None:
    frame = PAYLOAD[len(head_bytes(SAMPLE_HEADER)) : -4]
    assert sealed(head_bytes(SAMPLE_HEADER), frame) == PAYLOAD
    assert zstandard.frame_content_size(frame) > 0


def test_every_truncation_and_every_flipped_byte_is_refused() -> None:
    for end in range(len(PAYLOAD)):
        refused(PAYLOAD[:end])
    for at in range(len(PAYLOAD)):
        for flip in (0x01, 0x80, 0xFF):
            damaged = bytearray(PAYLOAD)
            damaged[at] ^= flip
            refused(bytes(damaged))


def test_wrong_magic_version_and_codes_are_named() -> None:
    assert "not a batch" in refused(b"PK\x03\x04" + PAYLOAD[4:])
    assert "version 1 is not supported" in refused(sealed(PAYLOAD[:3], b"\x01", PAYLOAD[4:-4]))
    assert "stream code 3" in refused(sealed(PAYLOAD[:4], b"\x03", PAYLOAD[5:-4]))
    assert "too short" in refused(b"EAB\x02")


def test_random_garbage_is_refused() -> None:
    rnd = random.Random(5)
    for _ in range(2000):
        garbage = rnd.randbytes(rnd.randint(0, 300))
        refused(sealed(b"EAB\x02", garbage) if rnd.random() < 0.5 else garbage)


def test_a_zstd_bomb_is_refused_before_it_is_inflated() -> None:
    head = head_bytes(SAMPLE_HEADER)
    bomb = zstd(bytes(MAX_BODY + 1))  # 64 MiB of zeros in a few kB
    assert "claims 67108865 bytes" in refused(sealed(head, bomb))
    assert "claims -1 bytes" in refused(sealed(head, zstd(b"\0" * 100, write_content_size=False)))
    liar = bytearray(zstd(bytes(1 << 20)))  # declares 1 MiB in a 4-byte size field after the descriptor
    assert liar[4] >> 6 == 2
    liar[5:9] = (100).to_bytes(4, "little")
    refused(sealed(head, bytes(liar)), "zstd")


def test_a_header_that_lies_about_count_or_ids_is_refused() -> None:
    frame = PAYLOAD[len(head_bytes(SAMPLE_HEADER)) : -4]
    lie = head_bytes(SAMPLE_HEADER, count=39)
    assert "header says 39 records but the body holds 40" in refused(sealed(lie, frame))
    shorter = header_for(SAMPLE, last_id=SAMPLE[-1][0] - 1)
    assert "body ids end at" in refused(sealed(head_bytes(shorter), frame))
    assert "stray bytes" in refused(sealed(head_bytes(SAMPLE_HEADER), frame, b"\0"))


def test_mutated_bodies_behind_a_valid_checksum_never_raise_anything_else() -> None:
    head = head_bytes(SAMPLE_HEADER)
    body = zstandard.ZstdDecompressor().decompress(PAYLOAD[len(head) : -4])
    rnd, errors = random.Random(8), 0
    for _ in range(3000):
        mutated = bytearray(body)
        for _ in range(rnd.randint(1, 4)):
            at = rnd.randrange(len(mutated))
            action = rnd.random()
            if action < 0.6:
                mutated[at] = rnd.randrange(256)
            elif action < 0.8:
                del mutated[at : at + rnd.randint(1, 8)]
            else:
                mutated[at:at] = rnd.randbytes(rnd.randint(1, 8))
        try:
            decode(sealed(head, zstd(bytes(mutated))))
        except BatchFormatError:
            errors += 1
    assert errors > 2500  # almost every mutation is caught; the rest decode to other valid rows


def one_reading(
    names: bytes = b"\x01d\x01c\x01u",
    table: bytes = b"\x00\x00",  # period 0, predictor 0
    rows: bytes = b"\x00\x00\x01",  # channel index 0, quality ok, a new timestamp
    times: bytes = b"\x00" + varint(4_000_000),  # a number column without planes: the zigzag of 2 s
    values: bytes = b"\x10\x00\x0e",  # kind 16, a decimal column without planes: 7
) -> bytes:
    """A readings body of one row, laid out as docs/sync.md says, with any part replaced."""
    return varint(1) + varint(1) + names + table + rows + times + values


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (varint(1) + varint(0) + b"\x00" * 2, "stray bytes"),  # an events body with an empty text too many
        (varint(1) + varint(2**55), "timestamp"),  # events
        (one_reading(times=b"\x00" + varint(2**55)), "timestamp"),
        (one_reading(rows=b"\x01\x00\x01"), "channel index 1"),
        (one_reading(rows=b"\x00\x03\x01"), "quality code 3"),
        (one_reading(rows=b"\x00\x00\x02"), "flag 2"),
        (one_reading(table=b"\x00\x04"), "predictor 4"),
        (one_reading(times=b"\x09" + bytes(9) + b"\x00"), "9 low byte planes"),
        (one_reading(values=b"\x05"), "kinds \\[5\\]"),
        (one_reading(values=b"\x02"), "repeat"),
        (one_reading(values=b"\x10\x00" + varint(2**55)), "mantissa"),
        (one_reading(values=b"\x10\x00\x0e\x00"), "stray bytes"),
        (one_reading(names=b"\x02\xff\xfe\x01c\x01u"), "not UTF-8"),
    ],
)
def test_bodies_that_break_a_rule_are_refused_with_the_rule(body: bytes, message: str) -> None:
    one = header_for([(1,)], count=1, last_id=1)
    stream = 1 if len(body) < 12 else 0
    if message == "stray bytes" and stream:
        body = body[:2] + b"\x00" * 5 + body[2:]  # five empty texts, then the stray ones
    refused(sealed(head_bytes(one, stream=stream), zstd(body)), message)


def test_a_hand_built_body_decodes_as_documented() -> None:
    one = header_for([(1,)], count=1, last_id=1)
    rows = decode(sealed(head_bytes(one), zstd(one_reading())))[1]
    assert rows == [(1, "d", "c", "u", 2.0, 7.0, 0)]
    float32_row = one_reading(values=b"\x04\x00" + varint(2 * 0x3FC00000))  # ordinal of 1.5 as float32
    assert decode(sealed(head_bytes(one), zstd(float32_row)))[1][0][5] == 1.5
    negative = one_reading(values=b"\x04\x00" + varint(2 * 0x3FC00000 + 1))  # ordinal -0x3FC00001
    assert decode(sealed(head_bytes(one), zstd(negative)))[1][0][5] == -1.5
