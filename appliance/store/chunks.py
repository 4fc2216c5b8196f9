"""Readings packed per channel: one row (a chunk) holds a run of one channel's readings of one class.

A row per reading cost some 40 bytes of pages, written twice (WAL frame, then checkpoint), plus the
indexes; a chunk keeps a reading in a few bytes of fixed-width big-endian columns, which the readings
view (view.py) can still take apart in plain SQL:

- ids: first_id, first_id + stride, ... (stride 1; the quota doubles it each time it thins the chunk);
- ts: microseconds, t0 + i * step + a signed residual of tw bytes (none when tw is 0): a polled channel's
  jitter takes one or two bytes;
- vals: `vw` bytes per reading, by `kind` (packing.py): an integer mantissa m = base + the unsigned
  column, read as m, m * scale (a driver's `raw * 0.1`) or m / scale (a decimal text such as "21.73");
  or the bits of a float32 or float64; or, for text, a JSON array in `texts` (one text for all when it
  repeats). The encoder keeps the shortest exact one: every value comes back to the bit, -0.0 and
  infinities included (the view gives -0.0 as 0.0, as SQLite does); a NaN comes back as no value, as
  SQLite's REAL column gave it before;
- flags: NULL when every reading is of quality ok with a value, else a byte each: quality | NO_VALUE.

Timestamps are kept to the microsecond (what the wire format carries upstream too).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import astuple, dataclass, replace
from typing import Any

import numpy as np

from appliance.store.packing import (
    Value,
    decode_values,
    encode_values,
    every_other,
    pack,
    unpack_signed,
    width_of,
)

NO_VALUE = 4  # a flags bit: the reading has no value (quality error, a gap)
MAX_READINGS = 1024  # per chunk: bounds a row, and the run the quota never thins (a class's newest chunk)
COLUMNS = (
    "first_id, last_id, prio, channel_id, n, stride, t0, step, tw, ts, kind, vw, base, scale, vals, flags,"
    " texts"
)
CLASS_SHIFT = 40  # a row's place: its class in the bits above, its first id below


def place(prio: int, first_id: int = 0) -> int:
    """Where a chunk sits in the table: a class's chunks together, in id order."""
    return (prio << CLASS_SHIFT) | first_id


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
    residuals = unpack_signed(chunk.ts, chunk.tw, n)
    micros = (chunk.t0 + np.arange(n, dtype=np.int64) * chunk.step + residuals).tolist()
    flags = np.frombuffer(chunk.flags, np.uint8) if chunk.flags is not None else np.zeros(n, np.uint8)
    values = decode_values(chunk.n, chunk.kind, chunk.vw, chunk.base, chunk.scale, chunk.vals, chunk.texts)
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
        ts=every_other(chunk.ts, chunk.tw),
        vals=every_other(chunk.vals, chunk.vw),
        flags=every_other(chunk.flags, 1),
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
    tw = width_of(int(residuals.min()), int(residuals.max()))
    flags = bytes(q | (NO_VALUE if v is None or v != v else 0) for q, v in zip(quality, values, strict=True))
    kind, vw, base, scale, vals, texts = encode_values(values)
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
            pack(residuals, tw) if tw else None,
            kind,
            vw,
            base,
            scale,
            vals,
            flags if any(flags) else None,
            texts,
        )
    ]
