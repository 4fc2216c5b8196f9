"""Decodes sync batches from the wire format of docs/sync.md alone: an independent check on the appliance."""

from __future__ import annotations

import math
import struct
import zlib
from dataclasses import dataclass
from typing import Any

import zstandard

STREAMS = ("readings", "events")
CLASSES = ("critical", "important", "normal", "background")
MAX_PAYLOAD = 16 * 1024 * 1024
MAX_BODY = 64 * 1024 * 1024
MAX_RECORDS = 100_000
EXACT = 2**53  # the largest mantissa, and timestamp in microseconds, the format allows
ZSTD_MAGIC = bytes.fromhex("28b52ffd")
_WIDTH = {3: 8, 4: 4}  # bytes of a float64 and a float32 word


class BadBatch(ValueError):
    """A payload that is not a valid batch; the message says what is wrong."""


@dataclass(frozen=True, slots=True)
class Header:
    """The envelope's fields, named as in the receiver's tables and report."""

    device: str
    store: str
    stream: str
    klass: str
    seq: int
    first_id: int
    last_id: int
    count: int
    thinned: int
    created: float

    @property
    def batch_id(self) -> str:
        return f"{self.device}/{self.store}/{self.stream}/{self.klass}/{self.seq}"


@dataclass(frozen=True, slots=True)
class Batch:
    """A decoded batch: readings are (id, device, channel, unit, ts, value, quality) and events
    (id, ts, kind, severity, source, message, data)."""

    header: Header
    records: tuple[tuple[Any, ...], ...]


class _Cursor:
    """Walks a byte string; every read past the end or malformed value is a BadBatch naming the offset."""

    def __init__(self, data: bytes, part: str, at: int = 0) -> None:
        self.data, self.part, self.at = data, part, at

    def bad(self, problem: str) -> BadBatch:
        return BadBatch(f"{self.part}, offset {self.at}: {problem}")

    def raw(self, size: int) -> bytes:
        end = self.at + size
        if end > len(self.data):
            raise self.bad(f"needs {size} more bytes, has {len(self.data) - self.at}")
        chunk, self.at = self.data[self.at : end], end
        return chunk

    def varint(self) -> int:
        value = 0
        for shift in range(0, 70, 7):
            byte = self.raw(1)[0]
            value += (byte & 0x7F) << shift
            if byte < 0x80:
                return value
        raise self.bad("varint runs past 10 bytes")

    def signed(self) -> int:
        value = self.varint()
        return (value >> 1) ^ -(value & 1)

    def text(self, length: int | None = None) -> str:
        data = self.raw(self.varint() if length is None else length)
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise self.bad(f"invalid UTF-8: {exc}") from exc

    def finished(self) -> None:
        if self.at != len(self.data):
            raise self.bad(f"{len(self.data) - self.at} bytes left over")


def parse(payload: bytes) -> Batch:
    """The batch in `payload`, fully checked; BadBatch says what is wrong with it."""
    if len(payload) > MAX_PAYLOAD:
        raise BadBatch(f"payload of {len(payload)} bytes exceeds {MAX_PAYLOAD}")
    if len(payload) < 10 or payload[:3] != b"EAB":
        raise BadBatch(f"no batch magic: payload begins {bytes(payload[:8]).hex()}")
    if payload[3] != 1:
        raise BadBatch(f"unknown format version {payload[3]}")
    (crc,) = struct.unpack(">I", payload[-4:])
    if zlib.crc32(payload[:-4]) != crc:
        raise BadBatch("CRC-32 does not match: payload corrupted")
    head = _Cursor(bytes(payload[:-4]), "envelope", 4)
    stream, klass = head.raw(1)[0], head.raw(1)[0]
    if stream > 1 or klass > 3:
        raise BadBatch(f"stream code {stream} / class code {klass} out of range")
    device = _name(head, "device")
    store = _name(head, "store")
    seq, first_id, span, count, thinned = (head.varint() for _ in range(5))
    (created,) = struct.unpack(">d", head.raw(8))
    if seq < 1 or not 1 <= count <= min(MAX_RECORDS, span + 1) or not math.isfinite(created):
        raise BadBatch(f"header out of range: seq {seq}, count {count} for span {span}, created {created}")
    header = Header(
        device,
        store,
        STREAMS[stream],
        CLASSES[klass],
        seq,
        first_id,
        first_id + span,
        count,
        thinned,
        created,
    )
    body = _Cursor(_inflate(head.data[head.at :]), "body")
    if body.varint() != count:
        raise body.bad(f"record count differs from the header's {count}")
    ids = [first_id]
    while len(ids) < count:
        ids.append(ids[-1] + body.varint() + 1)
    if ids[-1] != header.last_id:
        raise body.bad(f"ids end at {ids[-1]} instead of {header.last_id}")
    stamps, micros = [], 0
    for _ in range(count):
        micros += body.signed()
        if abs(micros) > EXACT:
            raise body.bad(f"timestamp of {micros} microseconds out of range")
        stamps.append(micros / 1e6)
    if header.stream == "events":
        fields = [[body.text() for _ in range(count)] for _column in range(5)]
        body.finished()
        return Batch(header, tuple(zip(ids, stamps, *fields, strict=True)))
    return Batch(header, _readings(body, ids, stamps))


def _name(cursor: _Cursor, what: str) -> str:
    length = cursor.raw(1)[0]
    name = cursor.text(length)
    if length == 0 or any(c in name for c in "/+#\0"):
        raise cursor.bad(f"{what} {name!r} is empty or holds '/', '+', '#' or NUL")
    return name


def _inflate(frame: bytes) -> bytes:
    if not frame.startswith(ZSTD_MAGIC):
        raise BadBatch("body: not a zstd frame")
    try:
        declared = zstandard.get_frame_parameters(frame).content_size
        if declared > MAX_BODY:  # also "unknown", which zstandard reports as 2**64 - 1
            raise BadBatch(f"body: zstd frame declares {declared} bytes, over {MAX_BODY}, or no size")
        reader = zstandard.ZstdDecompressor().decompressobj()
        body = reader.decompress(frame)
    except zstandard.ZstdError as exc:
        raise BadBatch(f"body: zstd refused it: {exc}") from exc
    if not reader.eof or reader.unused_data or len(body) != declared:
        raise BadBatch(f"body: zstd frame incomplete, of the wrong size or with trailing bytes ({len(body)})")
    return body


def _readings(body: _Cursor, ids: list[int], stamps: list[float]) -> tuple[tuple[Any, ...], ...]:
    channels = [tuple(body.text() for _ in range(3)) for _ in range(body.varint())]
    slots = [body.varint() for _ in ids]
    if any(slot >= len(channels) for slot in slots):
        raise body.bad(f"channel index beyond the {len(channels)} channels")
    quality, kinds = body.raw(len(ids)), body.raw(len(ids))
    if any(q > 2 for q in quality):
        raise body.bad("quality code above 2")
    values = _Values(body, slots, kinds).decode()
    body.finished()
    return tuple((ids[n], *channels[slots[n]], stamps[n], values[n], quality[n]) for n in range(len(ids)))


class _Values:
    """The value column: kinds, mantissa steps, float planes, texts, and the per-channel references."""

    def __init__(self, body: _Cursor, slots: list[int], kinds: bytes) -> None:
        valid = {0, 1, 2, 3, 4, *range(16, 32), *range(33, 48)}
        if not set(kinds) <= valid:
            raise body.bad(f"value kinds {sorted(set(kinds) - valid)} are not defined")
        self.slots, self.kinds = slots, kinds
        self.steps = [body.signed() for k in kinds if k >= 16]
        self.singles = _words(body.raw(4 * kinds.count(4)), 4)
        self.doubles = _words(body.raw(8 * kinds.count(3)), 8)
        self.texts = [body.text() for k in kinds if k == 1]
        self.body = body

    def decode(self) -> list[float | str | None]:
        steps, texts = iter(self.steps), iter(self.texts)
        words = {3: iter(self.doubles), 4: iter(self.singles)}
        previous: dict[int, float | str | None] = {}  # slot -> the value of its last row
        references: dict[tuple[int, int], tuple[int, int]] = {}  # (slot, 3 | 4 | 16) -> (payload, scale)
        out: list[float | str | None] = []
        for slot, kind in zip(self.slots, self.kinds, strict=True):
            value: float | str | None = None
            if kind == 1:
                value = next(texts)
            elif kind == 2:
                if slot not in previous:
                    raise self.body.bad("a repeat on a channel without an earlier row")
                value = previous[slot]
            elif kind in (3, 4):
                bits = references.get((slot, kind), (0, 0))[0] ^ next(words[kind])
                references[slot, kind] = (bits, 0)
                value = struct.unpack(">d" if kind == 3 else ">f", bits.to_bytes(_WIDTH[kind], "big"))[0]
            elif kind >= 16:
                scale = kind & 15
                mantissa = _rescaled(references.get((slot, 16)), scale) + next(steps)
                if abs(mantissa) > EXACT:
                    raise self.body.bad(f"mantissa {mantissa} beyond 2**53")
                references[slot, 16] = (mantissa, scale)
                if kind < 32:
                    value = float(mantissa) / float(10**scale)
                else:
                    value = float(mantissa) * float(f"1e-{scale}")
            previous[slot] = value
            out.append(value)
        return out


def _rescaled(last: tuple[int, int] | None, scale: int) -> int:
    if last is None:
        return 0
    mantissa, was = last
    value = mantissa * 10 ** (scale - was) if scale >= was else mantissa // 10 ** (was - scale)
    return value if -EXACT <= value <= EXACT else 0


def _words(planes: bytes, width: int) -> list[int]:
    n = len(planes) // width
    columns = [planes[i * n : (i + 1) * n] for i in range(width)]
    return [int.from_bytes(bytes(word), "big") for word in zip(*columns, strict=True)]
