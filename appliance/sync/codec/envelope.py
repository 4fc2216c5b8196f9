"""A batch's envelope: the header, the zstd frame around the body, the checksum, and the body's id column."""

from __future__ import annotations

import math
import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

import zstandard

from appliance.sync.codec.wire import (
    MAX_BODY,
    MAX_PAYLOAD,
    MAX_RECORDS,
    BatchFormatError,
    Reader,
    Writer,
    utf8,
)

CLASSES = ("critical", "important", "normal", "background")
STREAMS = ("readings", "events", "evidence")
MAGIC = b"EAB"
VERSION = 2
_FORBIDDEN = frozenset("/+#\0")  # device and store are MQTT topic levels and parts of a batch id
_HEAD = struct.Struct(">3sBBB")  # magic, version, stream, class
_F64, _U32 = struct.Struct(">d"), struct.Struct(">I")


@dataclass(frozen=True, slots=True)
class BatchHeader:
    """Whose records a batch holds, of which stream and class, and where it sits in its sequence."""

    device: str
    store: str
    stream: str
    priority: str  # one of CLASSES; "class" on the wire and in docs
    seq: int
    first_id: int
    last_id: int
    count: int
    thinned: int
    created: float

    def __post_init__(self) -> None:
        for name in ("device", "store"):
            text = getattr(self, name)
            if not 1 <= len(utf8(text, f"header {name}")) <= 255 or _FORBIDDEN & set(text):
                raise BatchFormatError(f"header {name} {text!r}: 1 to 255 bytes without '/', '+', '#', NUL")
        if self.stream not in STREAMS:
            raise BatchFormatError(f"header stream {self.stream!r}: not one of {', '.join(STREAMS)}")
        if self.priority not in CLASSES:
            raise BatchFormatError(f"header class {self.priority!r}: not one of {', '.join(CLASSES)}")
        limits = {"seq": 1, "first_id": 0, "last_id": self.first_id, "count": 1, "thinned": 0}
        for name, low in limits.items():
            number = getattr(self, name)
            if not isinstance(number, int) or not low <= number < 1 << 63:
                raise BatchFormatError(f"header {name} {number!r}: must be a whole number from {low}")
        if self.count > min(MAX_RECORDS, self.last_id - self.first_id + 1):
            raise BatchFormatError(
                f"header count {self.count}: more than ids {self.first_id}..{self.last_id}"
            )
        if not isinstance(self.created, float | int) or not math.isfinite(self.created):
            raise BatchFormatError(f"header created {self.created!r}: must be finite seconds")

    @property
    def batch_id(self) -> str:
        return f"{self.device}/{self.store}/{self.stream}/{self.priority}/{self.seq}"


def start_body(header: BatchHeader, stream: str, rows: Sequence[tuple[object, ...]]) -> Writer:
    """The start of a body: the record count and the id gaps, once the rows fit the header."""
    if header.stream != stream or header.count != len(rows):
        raise BatchFormatError(f"header ({header.stream}, count {header.count}) for {len(rows)} {stream}")
    body = Writer()
    body.uvarint(len(rows))
    previous = header.first_id - 1
    for row in rows:
        if len(row) != 7 or not isinstance(row[0], int) or row[0] <= previous:
            raise BatchFormatError(f"{stream} row {row!r}: needs 7 fields and an id above {previous}")
        if row[0] != header.first_id:
            body.uvarint(row[0] - previous - 1)
        previous = row[0]
    if previous != header.last_id or rows[0][0] != header.first_id:
        raise BatchFormatError(f"header ids {header.first_id}..{header.last_id} do not match the rows")
    return body


def read_ids(header: BatchHeader, body: Reader) -> list[int]:
    if (rows := body.uvarint()) != header.count:
        raise BatchFormatError(f"header says {header.count} records but the body holds {rows}")
    ids = [header.first_id]
    for _ in range(header.count - 1):
        ids.append(ids[-1] + 1 + body.uvarint())
    if ids[-1] != header.last_id:
        raise BatchFormatError(f"body ids end at {ids[-1]}, the header says {header.last_id}")
    return ids


def seal(header: BatchHeader, body: bytes, level: int) -> bytes:
    """The envelope around a body: magic, version, header, the zstd frame, a CRC-32 of it all."""
    if not isinstance(level, int) or not 1 <= level <= 22:
        raise BatchFormatError(f"zstd level {level!r} is outside 1..22")
    if len(body) > MAX_BODY:
        raise BatchFormatError(f"batch body of {len(body)} bytes is over the {MAX_BODY} byte limit")
    out = Writer(_HEAD.pack(MAGIC, VERSION, STREAMS.index(header.stream), CLASSES.index(header.priority)))
    for raw in (header.device.encode(), header.store.encode()):
        out += bytes([len(raw)]) + raw
    span = header.last_id - header.first_id
    for number in (header.seq, header.first_id, span, header.count, header.thinned):
        out.uvarint(number)
    out += _F64.pack(header.created) + zstandard.ZstdCompressor(level=level).compress(body)
    out += _U32.pack(zlib.crc32(out))
    if len(out) > MAX_PAYLOAD:
        raise BatchFormatError(f"batch of {len(out)} bytes is over the {MAX_PAYLOAD} byte limit")
    return bytes(out)


def open_batch(payload: bytes) -> tuple[BatchHeader, Reader]:
    """The header of a batch and a reader over its inflated body, once the envelope checks out."""
    head = Reader(_unwrap(bytes(payload)), "header", _HEAD.size)
    _, _, stream, klass = _HEAD.unpack_from(head.data)
    device, store = head.text(head.take(1)[0]), head.text(head.take(1)[0])
    seq, first_id, span, count, thinned = (head.uvarint() for _ in range(5))
    created = _F64.unpack(head.take(8))[0]
    header = BatchHeader(device, store, STREAMS[stream], CLASSES[klass], seq, first_id, first_id + span,
                         count, thinned, created)  # fmt: skip
    return header, Reader(_inflate(head.data[head.pos :]), "body")


def _unwrap(data: bytes) -> bytes:
    """The payload without its checksum, once magic, version, size and checksum are right."""
    if len(data) < _HEAD.size + 4:
        raise BatchFormatError(f"payload of {len(data)} bytes is too short for a batch")
    magic, version, stream, klass = _HEAD.unpack_from(data)
    if magic != MAGIC:
        raise BatchFormatError(f"not a batch: starts with {data[:3]!r}, not {MAGIC!r}")
    if version != VERSION:
        raise BatchFormatError(f"batch format version {version} is not supported (only {VERSION})")
    if len(data) > MAX_PAYLOAD:
        raise BatchFormatError(f"payload of {len(data)} bytes is over the {MAX_PAYLOAD} byte limit")
    if zlib.crc32(data[:-4]) != _U32.unpack_from(data, len(data) - 4)[0]:
        raise BatchFormatError("checksum mismatch: the payload is damaged or truncated")
    if stream >= len(STREAMS) or klass >= len(CLASSES):
        raise BatchFormatError(f"header: unknown stream code {stream} or class code {klass}")
    return data[:-4]


def _inflate(frame: bytes) -> bytes:
    if frame[:4] != b"\x28\xb5\x2f\xfd":
        raise BatchFormatError("body is not a zstd frame")
    try:
        size = zstandard.frame_content_size(frame)
        if not 0 <= size <= MAX_BODY:  # -1 is "unknown", which a bounded decoder cannot accept
            raise BatchFormatError(f"body: zstd frame claims {size} bytes; must declare 0..{MAX_BODY}")
        inflater = zstandard.ZstdDecompressor().decompressobj()
        body = inflater.decompress(frame)  # libzstd stops at the declared size: a bomb gets no further
    except zstandard.ZstdError as exc:
        raise BatchFormatError(f"body: zstd: {exc}") from exc
    if not inflater.eof or inflater.unused_data or len(body) != size:
        raise BatchFormatError("body: zstd frame is truncated, of another size, or followed by stray bytes")
    return body
