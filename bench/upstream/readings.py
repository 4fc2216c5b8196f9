"""Decodes a readings body (docs/sync.md, "Readings body") independently of the appliance's codec."""

from __future__ import annotations

import struct
from collections import deque
from typing import Any

from bench.upstream.cursor import EXACT, Cursor

_KINDS = frozenset((0, 1, 2, 3, 4, *range(16, 32), *range(33, 48)))
_BITS = {3: 64, 4: 32}  # float64 and float32
_FORMAT = {3: (">d", ">Q"), 4: (">f", ">I")}


def decode_readings(body: Cursor, ids: list[int]) -> tuple[tuple[Any, ...], ...]:
    """Rows (id, device, channel, unit, ts, value, quality) from the columns after the id gaps."""
    n = len(ids)
    channels, periods, predictors = [], [], []
    for _ in range(body.varint()):
        channels.append((body.text(), body.text(), body.text()))
        periods.append(body.varint())
        predictors.append(body.byte())
    if any(p > 3 for p in predictors):
        raise body.bad("a channel's predictor is above 3")
    slots = [body.varint() for _ in range(n)]
    if any(slot >= len(channels) for slot in slots):
        raise body.bad(f"channel index beyond the {len(channels)} channels")
    quality = body.raw(n)
    if any(q > 2 for q in quality):
        raise body.bad("quality code above 2")
    flags = body.raw(n)
    if any(f > 1 for f in flags):
        raise body.bad("timestamp flag above 1")
    # Channel order: each channel's rows, in row order, one channel after the other.
    order = sorted(range(n), key=lambda row: slots[row])
    new_stamps = [row for row in order if flags[row]]
    residual_of = dict(zip(new_stamps, body.column(len(new_stamps), "timestamp residuals"), strict=True))
    stamps = _timestamps(body, slots, flags, periods, residual_of)
    kinds = dict(zip(order, body.raw(n), strict=True))
    if not set(kinds.values()) <= _KINDS:
        raise body.bad(f"value kinds {sorted(set(kinds.values()) - _KINDS)} are not defined")
    columns: dict[int, int] = {}  # row -> its residual, from the column of its kind's family
    for family, kinds_of in (("decimal", range(16, 48)), ("float32", (4,)), ("float64", (3,))):
        rows = [row for row in order if kinds[row] in kinds_of]
        columns.update(zip(rows, body.column(len(rows), f"{family} residuals"), strict=True))
    texts = {row: body.text() for row in order if kinds[row] == 1}
    values: dict[int, float | str | None] = {}
    state: dict[tuple[int, str], deque[tuple[int, int]]] = {}  # (slot, family) -> last (payload, scale)
    before: dict[int, int] = {}  # slot -> the channel's row before this one
    for row in order:
        slot, kind = slots[row], kinds[row]
        if kind == 1:
            values[row] = texts[row]
        elif kind == 2:
            if slot not in before:
                raise body.bad("a repeat on a channel without an earlier row")
            values[row] = values[before[slot]]
        elif kind == 0:
            values[row] = None
        else:
            family = "decimal" if kind >= 16 else str(kind)
            last = state.setdefault((slot, family), deque(maxlen=2))
            values[row] = _number(body, kind, last, predictors[slot], columns[row])
        before[slot] = row
    body.finished()
    return tuple((ids[r], *channels[slots[r]], stamps[r], values[r], quality[r]) for r in range(n))


def _timestamps(body: Cursor, slots: list[int], flags: bytes, periods: list[int],
                residual_of: dict[int, int]) -> list[float]:  # fmt: skip
    micros: list[int] = []
    latest: dict[int, int] = {}  # slot -> row of the channel's latest row so far
    for row, slot in enumerate(slots):
        before = micros[row - 1] if row else 0
        if not flags[row]:
            t = before
        elif periods[slot] and slot in latest:
            t = micros[latest[slot]] + periods[slot] + residual_of[row]
        else:
            j = latest.get(slot)
            step = micros[j] - micros[j - 1] if j else 0  # a first row's step is 0
            t = before + step + residual_of[row]
        if not -EXACT <= t <= EXACT:
            raise body.bad(f"timestamp of {t} microseconds out of range")
        micros.append(t)
        latest[slot] = row
    return [t / 1e6 for t in micros]


def _number(body: Cursor, kind: int, last: deque[tuple[int, int]], predictor: int, residual: int) -> float:
    scale = kind & 15
    if kind >= 16:
        known = [m * 10 ** (scale - s) if scale >= s else m // 10 ** (s - scale) for m, s in last]
    else:
        known = [payload for payload, _ in last]
    if not known:
        guess = 0
    elif len(known) == 1:
        guess = known[0]
    else:
        p2, p1 = known
        guess = (p1, 2 * p1 - p2, p2, (p1 + p2) // 2)[predictor]
    if kind >= 16:
        if abs(guess) > EXACT:
            guess = 0
        mantissa = guess + residual
        if abs(mantissa) > EXACT:
            raise body.bad(f"mantissa {mantissa} beyond 2**53")
        last.append((mantissa, scale))
        return mantissa / 10**scale if kind < 32 else float(mantissa) * float(f"1e-{scale}")
    width = _BITS[kind]
    ordinal = (guess + residual + 2 ** (width - 1)) % 2**width - 2 ** (width - 1)
    last.append((ordinal, 0))
    bits = ordinal if ordinal >= 0 else 2 ** (width - 1) - 1 - ordinal
    real, whole = _FORMAT[kind]
    return float(struct.unpack(real, struct.pack(whole, bits))[0])
