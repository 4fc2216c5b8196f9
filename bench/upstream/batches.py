"""Decodes sync batches from the wire format of docs/sync.md alone: an independent check on the appliance."""

from __future__ import annotations

import math
import struct
import zlib
from dataclasses import dataclass
from typing import Any

import zstandard

from bench.upstream.cursor import BadBatch, Cursor
from bench.upstream.readings import decode_readings

__all__ = ["CLASSES", "MAX_PAYLOAD", "STREAMS", "BadBatch", "Batch", "Header", "parse"]

STREAMS = ("readings", "events", "evidence")
CLASSES = ("critical", "important", "normal", "background")
MAX_PAYLOAD = 16 * 1024 * 1024
MAX_BODY = 64 * 1024 * 1024
MAX_RECORDS = 100_000
EXACT = 2**53  # the largest timestamp in microseconds the format allows
VERSION = 2
ZSTD_MAGIC = bytes.fromhex("28b52ffd")


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
    """A decoded batch: readings are (id, device, channel, unit, ts, value, quality), events
    (id, ts, kind, severity, source, message, data) and evidence (id, ts, event id, kind, name, media type,
    the file's bytes)."""

    header: Header
    records: tuple[tuple[Any, ...], ...]


def parse(payload: bytes) -> Batch:
    """The batch in `payload`, fully checked; BadBatch says what is wrong with it."""
    if len(payload) > MAX_PAYLOAD:
        raise BadBatch(f"payload of {len(payload)} bytes exceeds {MAX_PAYLOAD}")
    if len(payload) < 10 or payload[:3] != b"EAB":
        raise BadBatch(f"no batch magic: payload begins {bytes(payload[:8]).hex()}")
    if payload[3] != VERSION:
        raise BadBatch(f"unknown format version {payload[3]}")
    (crc,) = struct.unpack(">I", payload[-4:])
    if zlib.crc32(payload[:-4]) != crc:
        raise BadBatch("CRC-32 does not match: payload corrupted")
    head = Cursor(bytes(payload[:-4]), "envelope", 4)
    stream, klass = head.raw(1)[0], head.raw(1)[0]
    if stream >= len(STREAMS) or klass >= len(CLASSES):
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
    body = Cursor(_inflate(head.data[head.at :]), "body")
    if body.varint() != count:
        raise body.bad(f"record count differs from the header's {count}")
    ids = [first_id]
    while len(ids) < count:
        ids.append(ids[-1] + body.varint() + 1)
    if ids[-1] != header.last_id:
        raise body.bad(f"ids end at {ids[-1]} instead of {header.last_id}")
    if header.stream == "readings":
        return Batch(header, decode_readings(body, ids))
    stamps, micros = [], 0
    for _ in range(count):
        micros += body.signed()
        if abs(micros) > EXACT:
            raise body.bad(f"timestamp of {micros} microseconds out of range")
        stamps.append(micros / 1e6)
    if header.stream == "evidence":
        return Batch(header, _evidence(body, ids, stamps))
    fields = [[body.text() for _ in range(count)] for _column in range(5)]
    body.finished()
    return Batch(header, tuple(zip(ids, stamps, *fields, strict=True)))


def _evidence(body: Cursor, ids: list[int], stamps: list[float]) -> tuple[tuple[Any, ...], ...]:
    """Event ids, then the kind, name and media type columns, the file sizes and the files' bytes."""
    events = [body.varint() for _ in ids]
    kinds, names, media = ([body.text() for _ in ids] for _column in range(3))
    for name in names:
        if not name or "/" in name or "\\" in name or name.startswith(".") or "\0" in name:
            raise body.bad(f"evidence name {name!r} is not a plain file name")
    sizes = [body.varint() for _ in ids]
    files = [body.raw(size) for size in sizes]
    body.finished()
    return tuple(zip(ids, stamps, events, kinds, names, media, files, strict=True))


def _name(cursor: Cursor, what: str) -> str:
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
