"""The sync batch wire format: records of one stream and class, in columns, zstd-compressed (docs/sync.md)."""

from __future__ import annotations

import contextlib
import itertools
import math
import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

import zstandard

CLASSES = ("critical", "important", "normal", "background")
STREAMS = ("readings", "events")
MAGIC = b"EAB"
VERSION = 1
MAX_PAYLOAD = 16 << 20
MAX_BODY = 64 << 20  # decompressed; a frame that claims more is refused before it is inflated
MAX_RECORDS = 100_000
# Value kinds, one byte per reading. DIV + s: m / 10**s correctly rounded, what a decimal literal parses
# to. MUL + s: float(m) * 1e-s, what a driver's `raw * 0.1` gives. s is the kind's low four bits.
NONE, STRING, REPEAT, FLOAT64, FLOAT32, DIV, MUL = 0, 1, 2, 3, 4, 16, 32
KINDS = frozenset((NONE, STRING, REPEAT, FLOAT64, FLOAT32, *range(DIV, DIV + 16), *range(MUL + 1, MUL + 16)))
_TENTHS = [float(f"1e-{s}") for s in range(16)]
_MUL_SEARCH = 6  # the scales the encoder tries for MUL; decoders accept all 15
_LIMIT = 1 << 53  # decimal mantissas and timestamps in microseconds: exact as doubles
_FORBIDDEN = frozenset("/+#\0")  # device and store are MQTT topic levels and parts of a batch id
_HEAD = struct.Struct(">3sBBB")  # magic, version, stream, class
_F64, _U64, _F32, _U32 = struct.Struct(">d"), struct.Struct(">Q"), struct.Struct(">f"), struct.Struct(">I")

ReadingRow = tuple[int, str, str, str, float, float | str | None, int]
EventRow = tuple[int, float, str, str, str, str, str]


class BatchFormatError(ValueError):
    """A batch that cannot be encoded or decoded; the message says what is wrong and where."""


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
            if not 1 <= len(_utf8(text, f"header {name}")) <= 255 or _FORBIDDEN & set(text):
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


def encode_readings(header: BatchHeader, rows: Sequence[ReadingRow], level: int) -> bytes:
    """One batch of readings, rows sorted by id: floats to the bit, timestamps to the microsecond."""
    body = _ids_and_times(header, "readings", rows, 4)
    channels: dict[tuple[str, str, str], int] = {}
    index, quality, values = _Writer(), bytearray(), _ValueEncoder()
    for rid, device, channel, unit, _, value, code in rows:
        if (number := channels.get((device, channel, unit))) is None:
            for text, name in ((device, "device"), (channel, "channel"), (unit, "unit")):
                _utf8(text, f"reading id {rid}: {name}")
            number = channels[device, channel, unit] = len(channels)
        index.uvarint(number)
        if code not in (0, 1, 2):
            raise BatchFormatError(f"reading id {rid}: quality {code!r} is not 0, 1 or 2")
        quality.append(code)
        values.add(rid, number, value)
    body.uvarint(len(channels))
    for text in itertools.chain.from_iterable(channels):
        body.text(text)
    body += index + quality + values.kinds + values.steps
    body += _planes(_U32, values.f32) + _planes(_U64, values.f64) + values.texts
    return _seal(header, bytes(body), level)


def encode_events(header: BatchHeader, rows: Sequence[EventRow], level: int) -> bytes:
    """One batch of events, rows sorted by id: texts exact, timestamps to the microsecond."""
    body = _ids_and_times(header, "events", rows, 1)
    for column, name in enumerate(("kind", "severity", "source", "message", "data"), start=2):
        for row in rows:
            body.text(row[column], f"event id {row[0]}: {name}")
    return _seal(header, bytes(body), level)


def decode(payload: bytes) -> tuple[BatchHeader, list[ReadingRow] | list[EventRow]]:
    """The header and rows of a batch; anything malformed raises BatchFormatError."""
    head = _Reader(_unwrap(bytes(payload)), "header", _HEAD.size)
    _, _, stream, klass = _HEAD.unpack_from(head.data)
    device, store = head.text(head.take(1)[0]), head.text(head.take(1)[0])
    seq, first_id, span, count, thinned = (head.uvarint() for _ in range(5))
    created = _F64.unpack(head.take(8))[0]
    header = BatchHeader(device, store, STREAMS[stream], CLASSES[klass], seq, first_id, first_id + span,
                         count, thinned, created)  # fmt: skip
    body = _Reader(_inflate(head.data[head.pos :]), "body")
    if (rows := body.uvarint()) != count:
        raise BatchFormatError(f"header says {count} records but the body holds {rows}")
    ids = [first_id]
    for _ in range(count - 1):
        ids.append(ids[-1] + 1 + body.uvarint())
    if ids[-1] != header.last_id:
        raise BatchFormatError(f"body ids end at {ids[-1]}, the header says {header.last_id}")
    micros, times = 0, []
    for _ in ids:
        if abs(micros := micros + body.zigzag()) > _LIMIT:
            raise body.fail(f"timestamp {micros} µs is beyond ±2**53")
        times.append(micros / 1_000_000)
    if header.stream == "events":
        columns = [[body.text() for _ in ids] for _ in range(5)]
        body.done()
        return header, list(zip(ids, times, *columns, strict=True))
    return header, _readings(body, ids, times)


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


def _readings(body: _Reader, ids: list[int], times: list[float]) -> list[ReadingRow]:
    channels = [(body.text(), body.text(), body.text()) for _ in range(body.uvarint())]
    index = [body.uvarint() for _ in ids]
    if max(index) >= len(channels):
        raise BatchFormatError(f"body: channel index {max(index)} but {len(channels)} channels")
    quality = body.take(len(ids))
    if max(quality) > 2:
        raise BatchFormatError(f"body: quality code {max(quality)} is not 0, 1 or 2")
    values = _decode_values(body, index, body.take(len(ids)))
    body.done()
    rows = zip(ids, index, times, values, quality, strict=True)
    return [(i, *channels[c], t, v, q) for i, c, t, v, q in rows]


def _ids_and_times(header: BatchHeader, stream: str, rows: Sequence[tuple[object, ...]], ts: int) -> _Writer:
    """The start of a body: the record count, the id gaps, the timestamps as microsecond steps."""
    if header.stream != stream or header.count != len(rows):
        raise BatchFormatError(f"header ({header.stream}, count {header.count}) for {len(rows)} {stream}")
    body, times = _Writer(), _Writer()
    body.uvarint(len(rows))
    previous_id, previous_us = header.first_id - 1, 0
    for row in rows:
        if len(row) != 7 or not isinstance(row[0], int) or row[0] <= previous_id:
            raise BatchFormatError(f"{stream} row {row!r}: needs 7 fields and an id above {previous_id}")
        rid, stamp = row[0], row[ts]
        if not isinstance(stamp, float | int) or not math.isfinite(stamp) or abs(stamp) * 1e6 > _LIMIT:
            raise BatchFormatError(f"{stream} id {rid}: timestamp {stamp!r} is not finite seconds")
        if rid != header.first_id:
            body.uvarint(rid - previous_id - 1)
        micros = round(stamp * 1_000_000)
        times.zigzag(micros - previous_us)
        previous_id, previous_us = rid, micros
    if previous_id != header.last_id or rows[0][0] != header.first_id:
        raise BatchFormatError(f"header ids {header.first_id}..{header.last_id} do not match the rows")
    body += times
    return body


def _seal(header: BatchHeader, body: bytes, level: int) -> bytes:
    """The envelope around a body: magic, version, header, the zstd frame, a CRC-32 of it all."""
    if not isinstance(level, int) or not 1 <= level <= 22:
        raise BatchFormatError(f"zstd level {level!r} is outside 1..22")
    if len(body) > MAX_BODY:
        raise BatchFormatError(f"batch body of {len(body)} bytes is over the {MAX_BODY} byte limit")
    out = _Writer(_HEAD.pack(MAGIC, VERSION, STREAMS.index(header.stream), CLASSES.index(header.priority)))
    for raw in (header.device.encode(), header.store.encode()):
        out += bytes([len(raw)]) + raw
    for number in (
        header.seq,
        header.first_id,
        header.last_id - header.first_id,
        header.count,
        header.thinned,
    ):
        out.uvarint(number)
    out += _F64.pack(header.created) + zstandard.ZstdCompressor(level=level).compress(body)
    out += _U32.pack(zlib.crc32(out))
    if len(out) > MAX_PAYLOAD:
        raise BatchFormatError(f"batch of {len(out)} bytes is over the {MAX_PAYLOAD} byte limit")
    return bytes(out)


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


class _History:
    """What both ends remember of each channel: its last value, and its last number of each family."""

    def __init__(self) -> None:
        self.last: dict[int, float | str | None] = {}  # for REPEAT
        self.base: dict[tuple[int, int], tuple[int, int]] = {}  # (channel, family) -> (payload, kind)

    def reference(self, channel: int, kind: int) -> int:
        """What a payload is stored against; a decimal mantissa is rescaled from the last decimal's scale."""
        payload, previous = self.base.get((channel, min(kind, DIV)), (0, kind))
        shift = kind % 16 - previous % 16
        if kind < DIV or shift == 0:
            return payload
        rescaled = payload * 10**shift if shift > 0 else payload // 10**-shift
        return rescaled if abs(rescaled) <= _LIMIT else 0

    def remember(self, channel: int, kind: int, payload: int) -> None:
        self.base[channel, min(kind, DIV)] = (payload, kind)


class _ValueEncoder(_History):
    """Gives each reading the exact kind whose step from the channel's history is shortest."""

    def __init__(self) -> None:
        super().__init__()
        self.kinds, self.steps, self.texts = bytearray(), _Writer(), _Writer()
        self.f32: list[int] = []
        self.f64: list[int] = []
        self.decimal: dict[int, int] = {}  # channel -> its last decimal kind, tried first

    def add(self, rid: int, channel: int, value: object) -> None:
        if isinstance(value, int) and not isinstance(value, bool) and float(value) == value:
            value = float(value)  # what SQLite's REAL column gives back
        if value is not None and not isinstance(value, float | str):
            raise BatchFormatError(f"reading id {rid}: value {value!r} is not a float, text or None")
        if value is not None and channel in self.last and _same(self.last[channel], value):
            self.kinds.append(REPEAT)
        elif isinstance(value, float):
            kind, payload = self._number(channel, value)
            step = self._step(channel, kind, payload)[0]
            self.remember(channel, kind, payload)
            self.kinds.append(kind)
            if kind >= DIV:
                self.steps.zigzag(step)
            else:
                (self.f64 if kind == FLOAT64 else self.f32).append(step)
        else:
            self.kinds.append(NONE if value is None else STRING)
            if value is not None:
                self.texts.text(value, f"reading id {rid}: value")
        self.last[channel] = value

    def _number(self, channel: int, value: float) -> tuple[int, int]:
        """On a tie: the channel's last decimal kind, the shortest decimal, float32, float64."""
        bits, options = _bits(value), []
        for kind in self._decimal_kinds(channel, value):
            mantissa = round(value * 10 ** (kind % 16))
            if abs(mantissa) <= _LIMIT and _bits(_decimal(kind, mantissa)) == bits:
                options.append((kind, mantissa))
        with contextlib.suppress(OverflowError):  # beyond float32's range
            single = _F32.pack(value)
            if _bits(_F32.unpack(single)[0]) == bits:
                options.append((FLOAT32, _U32.unpack(single)[0]))
        options.append((FLOAT64, bits))
        kind, payload = min(options, key=lambda option: self._step(channel, *option)[1])
        if kind >= DIV:
            self.decimal[channel] = kind
        return kind, payload

    def _step(self, channel: int, kind: int, payload: int) -> tuple[int, int]:
        """What is stored for a payload (XOR of float bits, or a mantissa difference) and its size in bits."""
        reference = self.reference(channel, kind)
        if kind < DIV:
            return payload ^ reference, (payload ^ reference).bit_length()
        return payload - reference, (abs(payload - reference) << 1).bit_length()

    def _decimal_kinds(self, channel: int, value: float) -> list[int]:
        if not math.isfinite(value) or abs(value) >= _LIMIT:
            return []
        shortest = max(0, -int(Decimal(repr(value)).as_tuple().exponent))  # repr: the shortest exact decimal
        kinds = [DIV + shortest] if shortest < 16 else []
        if shortest > _MUL_SEARCH:  # a long decimal: perhaps a short one times a scale such as 0.1
            kinds += range(MUL + 1, MUL + _MUL_SEARCH + 1)
        last = self.decimal.get(channel)
        return kinds if last is None or last in kinds else [last, *kinds]


def _decode_values(body: _Reader, index: list[int], kinds: bytes) -> list[float | str | None]:
    if unknown := set(kinds) - KINDS:
        raise BatchFormatError(f"body: unknown value kinds {sorted(unknown)}")
    steps = iter([body.zigzag() for kind in kinds if kind >= DIV])
    floats = {
        FLOAT32: iter(_unplanes(_U32, body.take(4 * kinds.count(FLOAT32)))),
        FLOAT64: iter(_unplanes(_U64, body.take(8 * kinds.count(FLOAT64)))),
    }
    texts = iter([body.text() for _ in range(kinds.count(STRING))])
    history, values = _History(), []
    for row, (channel, kind) in enumerate(zip(index, kinds, strict=True)):
        value: float | str | None = None
        if kind == REPEAT:
            if channel not in history.last:
                raise BatchFormatError(f"body: row {row} repeats a channel that has no earlier value")
            value = history.last[channel]
        elif kind == STRING:
            value = next(texts)
        elif kind != NONE:
            reference = history.reference(channel, kind)
            payload = reference + next(steps) if kind >= DIV else reference ^ next(floats[kind])
            history.remember(channel, kind, payload)
            if kind == FLOAT64:
                value = _F64.unpack(_U64.pack(payload))[0]
            elif kind == FLOAT32:
                value = _F32.unpack(_U32.pack(payload))[0]
            elif abs(payload) > _LIMIT:
                raise BatchFormatError(f"body: row {row} has a decimal mantissa beyond ±2**53")
            else:
                value = _decimal(kind, payload)
        history.last[channel] = value
        values.append(value)
    return values


class _Writer(bytearray):
    """Bytes being built: LEB128 varints, zigzag for signed numbers, texts after their byte length."""

    def uvarint(self, number: int) -> None:
        while number > 0x7F:
            self.append(number & 0x7F | 0x80)
            number >>= 7
        self.append(number)

    def zigzag(self, number: int) -> None:
        self.uvarint(number << 1 if number >= 0 else (-number << 1) - 1)

    def text(self, text: object, what: str = "text") -> None:
        raw = _utf8(text, what)
        self.uvarint(len(raw))
        self += raw


class _Reader:
    """Reads what _Writer wrote; anything short or malformed is reported with its part and offset."""

    def __init__(self, data: bytes, part: str, pos: int = 0) -> None:
        self.data, self.part, self.pos = data, part, pos

    def fail(self, what: str) -> BatchFormatError:
        return BatchFormatError(f"{self.part} byte {self.pos}: {what}")

    def take(self, size: int) -> bytes:
        if size > len(self.data) - self.pos:
            raise self.fail(f"truncated: {size} bytes needed, {len(self.data) - self.pos} left")
        self.pos += size
        return self.data[self.pos - size : self.pos]

    def uvarint(self) -> int:
        number = shift = 0
        for pos in range(self.pos, min(self.pos + 10, len(self.data))):
            number |= (self.data[pos] & 0x7F) << shift
            if self.data[pos] < 0x80:
                self.pos = pos + 1
                return number
            shift += 7
        raise self.fail("truncated varint, or one longer than 10 bytes")

    def zigzag(self) -> int:
        number = self.uvarint()
        return -(number >> 1) - 1 if number & 1 else number >> 1

    def text(self, size: int | None = None) -> str:
        raw = self.take(self.uvarint() if size is None else size)
        try:
            return raw.decode()
        except UnicodeDecodeError as exc:
            raise self.fail(f"text is not UTF-8 ({exc.reason})") from exc

    def done(self) -> None:
        if self.pos != len(self.data):
            raise self.fail(f"{len(self.data) - self.pos} stray bytes after the last column")


def _utf8(text: object, what: str) -> bytes:
    if not isinstance(text, str):
        raise BatchFormatError(f"{what} {text!r} is not text")
    try:
        return text.encode()
    except UnicodeEncodeError as exc:
        raise BatchFormatError(f"{what} {text!r} is not valid Unicode ({exc.reason})") from exc


def _same(a: float | str | None, b: float | str) -> bool:
    """Identical to the bit: 0.0 is not -0.0, and a NaN repeats only a NaN of the same payload."""
    if isinstance(a, float) and isinstance(b, float):
        return _bits(a) == _bits(b)
    return type(a) is type(b) and a == b


def _bits(value: float) -> int:
    return int(_U64.unpack(_F64.pack(value))[0])


def _decimal(kind: int, mantissa: int) -> float:
    return mantissa / 10 ** (kind - DIV) if kind < MUL else float(mantissa) * _TENTHS[kind - MUL]


def _planes(word: struct.Struct, values: list[int]) -> bytes:
    """Byte i of every word side by side: the high bytes of XORed neighbours are mostly zero."""
    raw = b"".join(word.pack(value) for value in values)
    return b"".join(raw[i :: word.size] for i in range(word.size))


def _unplanes(word: struct.Struct, raw: bytes) -> list[int]:
    words, count = bytearray(len(raw)), len(raw) // word.size
    for i in range(word.size):
        words[i :: word.size] = raw[i * count : (i + 1) * count]
    return [int(value) for (value,) in word.iter_unpack(words)]
