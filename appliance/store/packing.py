"""The bytes under a chunk's columns (chunks.py describes the format): integers as fixed-width big-endian
numbers, and a run of values in its shortest exact form, a `kind` (INTEGER, SCALED, DECIMAL, FLOAT32,
FLOAT64, TEXT; NONE when no reading has a value) with its width, base and scale; and back."""

from __future__ import annotations

import json

import numpy as np
import numpy.typing as npt

NONE, INTEGER, SCALED, DECIMAL, FLOAT32, FLOAT64, TEXT = range(7)
MAX_WIDTH = 4  # bytes of an integer column the view reads at once
MAX_EXACT = 2**53
SCALES = tuple(float(f"1e-{s}") for s in range(10))  # what parsing a config's `scale = 0.1` gives
POWERS = tuple(10.0**s for s in range(10))

Value = float | str | None
Int64s = npt.NDArray[np.int64]
Floats = npt.NDArray[np.float64]


def encode_values(values: list[Value]) -> tuple[int, int, int, float | None, bytes | None, str | None]:
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
            vw = width_of(0, int(ints.max()) - base, signed=False)
            if vw > MAX_WIDTH:
                return None
            return kind, vw, base, scale, pack(ints - base, vw, signed=False) if vw else None, None
    return None


def decode_values(
    n: int, kind: int, vw: int, base: int, scale: float | None, vals: bytes | None, texts: str | None
) -> list[Value]:
    """The n values encode_values() packed; where a reading had none, the filler that stood for it (the
    chunk's flags say which: chunks.decode)."""
    if kind == NONE:
        return [None] * n
    if kind == TEXT:
        every: list[Value] = json.loads(texts or "[]")
        return every * n if len(every) == 1 else every
    if kind in (FLOAT32, FLOAT64):
        floats: list[Value] = np.frombuffer(vals or b"", ">f4" if kind == FLOAT32 else ">f8").tolist()
        return floats
    m = (base + unpack_unsigned(vals, vw, n)).astype(np.float64)
    if kind == SCALED:
        m = m * (scale or 1.0)
    elif kind == DECIMAL:
        m = m / (scale or 1.0)
    return m.tolist()  # type: ignore[no-any-return]


def width_of(low: int, high: int, signed: bool = True) -> int:
    """Bytes that hold every integer from low to high (0 when both are 0)."""
    if low == high == 0:
        return 0
    for width in range(1, 9):
        if signed and -(2 ** (8 * width - 1)) <= low and high < 2 ** (8 * width - 1):
            return width
        if not signed and high < 2 ** (8 * width):
            return width
    return 9


def pack(numbers: Int64s, width: int, signed: bool = True) -> bytes:
    """Each number as `width` big-endian bytes (two's complement when signed)."""
    wide = numbers.astype(">i8" if signed else ">u8").view(np.uint8).reshape(-1, 8)
    return wide[:, 8 - width :].tobytes()


def unpack_unsigned(data: bytes | None, width: int, n: int) -> Int64s:
    if not width or data is None:
        return np.zeros(n, np.int64)
    columns = np.frombuffer(data, np.uint8).reshape(n, width).astype(np.int64)
    result = np.zeros(n, np.int64)
    for k in range(width):
        result = (result << 8) | columns[:, k]
    return result


def unpack_signed(data: bytes | None, width: int, n: int) -> Int64s:
    numbers = unpack_unsigned(data, width, n)
    if width:
        numbers = np.where(numbers >= 1 << (8 * width - 1), numbers - (1 << (8 * width)), numbers)
    return numbers


def every_other(data: bytes | None, width: int) -> bytes | None:
    if data is None or not width:
        return data
    return np.frombuffer(data, np.uint8).reshape(-1, width)[::2].tobytes()
