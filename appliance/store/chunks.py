"""Readings packed per channel: one row (a chunk) holds a run of one channel's readings of one class.

A row per reading cost some 40 bytes of pages, written twice (WAL frame, then checkpoint), plus the
indexes; a chunk keeps a reading in a few bytes of fixed-width big-endian columns, which the readings
view (view.py) can still take apart in plain SQL:

- ids: first_id, first_id + stride, ... (stride 1; the quota doubles it each time it thins the chunk);
- ts: microseconds, t0 + i * step + a signed residual of tw bytes (none when tw is 0): a polled channel's
  jitter takes one or two bytes;
- vals: `vw` bytes per reading, by `kind`: an integer mantissa m = base + the unsigned column, read as m,
  m * scale (a driver's `raw * 0.1`) or m / scale (a decimal text such as "21.73"); or the bits of a
  float32 or float64; or, for text, a JSON array in `texts` (one text for all when it repeats). The
  encoder keeps the shortest exact one: every value comes back to the bit, -0.0 and infinities included
  (the view gives -0.0 as 0.0, as SQLite does); a NaN comes back as no value, as SQLite's REAL column
  gave it before;
- flags: NULL when every reading is of quality ok with a value, else a byte each: quality | NO_VALUE.

Timestamps are kept to the microsecond (what the wire format carries upstream too).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import astuple, dataclass, replace
from typing import Any

import numpy as np
import numpy.typing as npt

NONE, INTEGER, SCALED, DECIMAL, FLOAT32, FLOAT64, TEXT = range(7)
NO_VALUE = 4  # a flags bit: the reading has no value (quality error, a gap)
MAX_READINGS = 1024  # per chunk: bounds a row, and the run the quota never thins (a class's newest chunk)
MAX_WIDTH = 4  # bytes of an integer column the view reads at once
MAX_EXACT = 2**53
SCALES = tuple(float(f"1e-{s}") for s in range(10))  # what parsing a config's `scale = 0.1` gives
POWERS = tuple(10.0**s for s in range(10))
COLUMNS = (
    "first_id, last_id, prio, channel_id, n, stride, t0, step, tw, ts, kind, vw, base, scale, vals, flags,"
    " texts"
)
CLASS_SHIFT = 40  # a row's place: its class in the bits above, its first id below


def place(prio: int, first_id: int = 0) -> int:
    """Where a chunk sits in the table: a class's chunks together, in id order."""
    return (prio << CLASS_SHIFT) | first_id


Value = float | str | None
Int64s = npt.NDArray[np.int64]
Floats = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class Chunk:
    first_id: int
    prio: int
    channel_id: int
    n: int
    stride: int
    t0: int
    step: int
    tw: int
    ts: bytes | None
    kind: int
    vw: int
    base: int
    scale: float | None
    vals: bytes | None
    flags: bytes | None
    texts: str | None

    @property
    def last_id(self) -> int:
        return self.first_id + (self.n - 1) * self.stride

    def row(self) -> tuple[Any, ...]:
        """Its place, then the values of COLUMNS."""
        return (place(self.prio, self.first_id), self.first_id, self.last_id, *astuple(self)[1:])

    @classmethod
    def of(cls, row: Sequence[Any]) -> Chunk:
        """A row of COLUMNS back into a chunk (last_id follows from the others)."""
        return cls(*row[:1], *row[2:])


def encode(
    first_id: int, prio: int, channel_id: int, micros: list[int], values: list[Value], quality: list[int]
) -> list[Chunk]:
    """A channel's readings, in the order given, as chunks with the ids first_id, first_id + 1, ...: a new
    chunk where the values change between numbers and text, and every MAX_READINGS."""
    chunks: list[Chunk] = []
    start = 0
    while start < len(values):
        end = _run_end(values, start)
        for at in range(start, end, MAX_READINGS):
            stop = min(end, at + MAX_READINGS)
            chunks.extend(
                _chunks(first_id + at, prio, channel_id, micros[at:stop], values[at:stop], quality[at:stop])
            )
        start = end
    return chunks


def decode(chunk: Chunk) -> tuple[list[int], list[int], list[Value], list[int]]:
    """Ids, timestamps (microseconds), values and quality codes of a chunk's readings."""
    n = chunk.n
    ids = list(range(chunk.first_id, chunk.last_id + 1, chunk.stride))
    residuals = _signed(chunk.ts, chunk.tw, n)
    micros = (chunk.t0 + np.arange(n, dtype=np.int64) * chunk.step + residuals).tolist()
    flags = np.frombuffer(chunk.flags, np.uint8) if chunk.flags is not None else np.zeros(n, np.uint8)
    values = _values(chunk)
    for i in np.flatnonzero(flags & NO_VALUE).tolist():
        values[i] = None
    return ids, micros, values, (flags & 3).tolist()


def thin(chunk: Chunk) -> Chunk:
    """Every other reading of the chunk, the first one kept: the series keeps its span at half the rate."""
    n = (chunk.n + 1) // 2
    texts = chunk.texts
    if texts is not None and len(every := json.loads(texts)) > 1:
        texts = json.dumps(every[::2], ensure_ascii=False)
    return replace(
        chunk,
        n=n,
        stride=chunk.stride * 2,
        step=chunk.step * 2,
        ts=_every_other(chunk.ts, chunk.tw),
        vals=_every_other(chunk.vals, chunk.vw),
        flags=_every_other(chunk.flags, 1),
        texts=texts,
    )


def _run_end(values: list[Value], start: int) -> int:
    """Where the run of values of one family (numbers or text; no value goes with either) ends."""
    family: type | None = None
    for i in range(start, len(values)):
        value = values[i]
        if value is None:
            continue
        kind = str if isinstance(value, str) else float
        if family is None:
            family = kind
        elif kind is not family:
            return i
    return len(values)


def _chunks(
    first_id: int, prio: int, channel_id: int, micros: list[int], values: list[Value], quality: list[int]
) -> list[Chunk]:
    n = len(micros)
    t0 = micros[0]
    step = int(np.median(np.diff(micros))) if n > 1 else 0
    residuals = np.array(micros, np.int64) - (t0 + np.arange(n, dtype=np.int64) * step)
    if n > 1 and int(np.abs(residuals).max()) >= 2**31:  # a clock step: each side of it on its own
        half = n // 2
        return _chunks(first_id, prio, channel_id, micros[:half], values[:half], quality[:half]) + _chunks(
            first_id + half, prio, channel_id, micros[half:], values[half:], quality[half:]
        )
    tw = _width(int(residuals.min()), int(residuals.max()))
    flags = bytes(q | (NO_VALUE if v is None or v != v else 0) for q, v in zip(quality, values, strict=True))
    kind, vw, base, scale, vals, texts = _encode_values(values)
    return [
        Chunk(
            first_id,
            prio,
            channel_id,
            n,
            1,
            t0,
            step,
            tw,
            _pack(residuals, tw) if tw else None,
            kind,
            vw,
            base,
            scale,
            vals,
            flags if any(flags) else None,
            texts,
        )
    ]


def _encode_values(values: list[Value]) -> tuple[int, int, int, float | None, bytes | None, str | None]:
    """kind, vw, base, scale, vals, texts: the shortest exact form of the values."""
    present = [v for v in values if v is not None]
    if not present:
        return NONE, 0, 0, None, None, None
    if isinstance(present[0], str):  # one text for all when it repeats (a serial number, a state)
        texts = present[:1] if len(set(present)) == 1 else values
        return TEXT, 0, 0, None, None, json.dumps(texts, ensure_ascii=False)
    filler = float(present[0])  # stands for the missing values: it widens no column
    numbers = np.array([filler if v is None or v != v else float(v) for v in values], np.float64)
    bits = numbers.view(np.int64)
    best: tuple[int, int, int, float | None, bytes | None, str | None] | None = None
    if np.isfinite(numbers).all() and float(np.abs(numbers).max()) < MAX_EXACT:
        for kind in (INTEGER, SCALED, DECIMAL):
            found = _mantissas(numbers, bits, kind)
            if found is not None and (best is None or found[1] < best[1]):
                best = found
                if found[1] == 0:
                    break
    if best is not None and best[1] <= 2:
        return best
    with np.errstate(over="ignore"):  # a float64 beyond float32's range is simply no float32
        narrowed = numbers.astype(np.float32).astype(np.float64)
    if np.array_equal(narrowed.view(np.int64), bits):
        floats = (FLOAT32, 4, 0, None, numbers.astype(">f4").tobytes(), None)
    else:
        floats = (FLOAT64, 8, 0, None, numbers.astype(">f8").tobytes(), None)
    return best if best is not None and best[1] <= floats[1] else floats


def _mantissas(
    numbers: Floats, bits: Int64s, kind: int
) -> tuple[int, int, int, float | None, bytes | None, str | None] | None:
    """The first scale (0 to 9 decimal places) at which every number is exactly m, m * scale or
    m / scale for integers m whose span fits MAX_WIDTH bytes; None if there is none."""
    for s in range(1 if kind != INTEGER else 0, len(SCALES) if kind != INTEGER else 1):
        with np.errstate(over="ignore", invalid="ignore"):
            m = np.rint(
                numbers if kind == INTEGER else numbers / SCALES[s] if kind == SCALED else numbers * POWERS[s]
            )
        if not np.isfinite(m).all() or float(np.abs(m).max()) > MAX_EXACT:
            return None
        ints = m.astype(np.int64)
        back = ints.astype(np.float64)  # from the integers, as the view and decode() make it (no -0.0)
        scale = None if kind == INTEGER else (SCALES[s] if kind == SCALED else POWERS[s])
        if kind == SCALED:
            back = back * SCALES[s]
        elif kind == DECIMAL:
            back = back / POWERS[s]
        if np.array_equal(back.view(np.int64), bits):
            base = int(ints.min())
            vw = _width(0, int(ints.max()) - base, signed=False)
            if vw > MAX_WIDTH:
                return None
            return kind, vw, base, scale, _pack(ints - base, vw, signed=False) if vw else None, None
    return None


def _values(chunk: Chunk) -> list[Value]:
    kind, n = chunk.kind, chunk.n
    if kind == NONE:
        return [None] * n
    if kind == TEXT:
        texts: list[Value] = json.loads(chunk.texts or "[]")
        return texts * n if len(texts) == 1 else texts
    if kind in (FLOAT32, FLOAT64):
        floats: list[Value] = np.frombuffer(chunk.vals or b"", ">f4" if kind == FLOAT32 else ">f8").tolist()
        return floats
    m = (chunk.base + _unsigned(chunk.vals, chunk.vw, n)).astype(np.float64)
    if kind == SCALED:
        m = m * (chunk.scale or 1.0)
    elif kind == DECIMAL:
        m = m / (chunk.scale or 1.0)
    return m.tolist()  # type: ignore[no-any-return]


def _width(low: int, high: int, signed: bool = True) -> int:
    """Bytes that hold every integer from low to high (0 when both are 0)."""
    if low == high == 0:
        return 0
    for width in range(1, 9):
        if signed and -(2 ** (8 * width - 1)) <= low and high < 2 ** (8 * width - 1):
            return width
        if not signed and high < 2 ** (8 * width):
            return width
    return 9


def _pack(numbers: Int64s, width: int, signed: bool = True) -> bytes:
    """Each number as `width` big-endian bytes (two's complement when signed)."""
    wide = numbers.astype(">i8" if signed else ">u8").view(np.uint8).reshape(-1, 8)
    return wide[:, 8 - width :].tobytes()


def _unsigned(data: bytes | None, width: int, n: int) -> Int64s:
    if not width or data is None:
        return np.zeros(n, np.int64)
    columns = np.frombuffer(data, np.uint8).reshape(n, width).astype(np.int64)
    result = np.zeros(n, np.int64)
    for k in range(width):
        result = (result << 8) | columns[:, k]
    return result


def _signed(data: bytes | None, width: int, n: int) -> Int64s:
    numbers = _unsigned(data, width, n)
    if width:
        numbers = np.where(numbers >= 1 << (8 * width - 1), numbers - (1 << (8 * width)), numbers)
    return numbers


def _every_other(data: bytes | None, width: int) -> bytes | None:
    if data is None or not width:
        return data
    return np.frombuffer(data, np.uint8).reshape(-1, width)[::2].tobytes()
