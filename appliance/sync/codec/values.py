"""Reading values: each one's exact kind, and its payload as a residual from the channel's predicted value."""

from __future__ import annotations

import math
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field

from appliance.sync.codec.wire import LIMIT, BatchFormatError, utf8, zigzag

# Value kinds, one byte per reading. DIV + s: m / 10**s correctly rounded, what a decimal literal parses
# to. MUL + s: float(m) * 1e-s, what a driver's `raw * 0.1` gives. s is the kind's low four bits.
NONE, TEXT, REPEAT, FLOAT64, FLOAT32, DIV, MUL = 0, 1, 2, 3, 4, 16, 32
KINDS = frozenset((NONE, TEXT, REPEAT, FLOAT64, FLOAT32, *range(DIV, DIV + 16), *range(MUL + 1, MUL + 16)))
FAMILIES = (DIV, FLOAT32, FLOAT64)  # a family's payloads predict each other; MUL shares DIV's mantissas
PREVIOUS, LINEAR, TWO_BACK, MEAN = range(4)  # how a channel predicts a payload from its last two
PREDICTORS = 4
_WIDTH = {FLOAT32: 32, FLOAT64: 64}
_TENTHS = [float(f"1e-{s}") for s in range(16)]
_MUL_SEARCH = 6  # the scales the encoder tries for MUL; decoders accept all 15
_MUL_DIGITS = 15  # raw * 0.1 misses raw / 10 by an ulp or so, which takes 16 or 17 digits to write
_SWITCH_BITS = 6  # what the encoder reckons a change of kind costs: the kinds column then has long runs
_F64, _U64, _F32, _U32 = struct.Struct(">d"), struct.Struct(">Q"), struct.Struct(">f"), struct.Struct(">I")

Value = float | str | None


@dataclass
class Channel:
    """One channel's rows of a batch: their kinds and, per family, the residuals from the predictions."""

    kinds: bytearray = field(default_factory=bytearray)
    predictor: int = PREVIOUS
    residuals: dict[int, list[int]] = field(default_factory=lambda: {family: [] for family in FAMILIES})
    texts: list[str] = field(default_factory=list)


def family(kind: int) -> int:
    return min(kind, DIV)


def recent(history: list[tuple[int, int]], kind: int) -> list[int]:
    """The family's last two payloads, oldest first; a decimal's rescaled to the kind's scale, rounding
    toward minus infinity."""
    if kind < DIV:
        return [payload for payload, _ in history[-2:]]
    scale = kind % 16
    return [m * 10 ** (scale - s) if scale >= s else m // 10 ** (s - scale) for m, s in history[-2:]]


def guesses(last: list[int], kind: int) -> tuple[int, ...]:
    """What each predictor expects next from a family's last two payloads (oldest first): the last one,
    the line through both, the older one, their mean rounded down. With one payload each expects it, with
    none 0; for a decimal, a guess beyond ±2**53 counts as 0."""
    if len(last) == 2:
        older, newer = last
        options: tuple[int, ...] = (newer, 2 * newer - older, older, (newer + older) >> 1)
    else:
        options = (last[0] if last else 0,) * PREDICTORS
    return options if kind < DIV else tuple(0 if abs(guess) > LIMIT else guess for guess in options)


def residual(payload: int, guess: int, kind: int) -> int:
    """Decimals store the difference; floats the difference wrapped to their width, so it always fits."""
    return payload - guess if kind >= DIV else _wrap(payload - guess, _WIDTH[kind])


def encode_channel(rids: list[int], values: list[object]) -> Channel:
    """The kinds and residuals of one channel's values, by the predictor whose residuals are shortest."""
    out, previous, previous_kind = Channel(), None, None
    chosen: list[tuple[int, int, list[int]]] = []  # kind, payload, the family's last two at its scale
    history: dict[int, list[tuple[int, int]]] = {f: [] for f in FAMILIES}
    for rid, value in zip(rids, values, strict=True):
        if isinstance(value, int) and not isinstance(value, bool) and float(value) == value:
            value = float(value)  # what SQLite's REAL column gives back
        if value is not None and not isinstance(value, float | str):
            raise BatchFormatError(f"reading id {rid}: value {value!r} is not a float, text or None")
        if isinstance(value, str) and out.kinds and _same(previous, value):
            out.kinds.append(REPEAT)  # only texts: a number repeats as a residual of 0 in an unbroken run
        elif isinstance(value, float):
            options = _exact_kinds(value, previous_kind)
            kind, payload = min(options, key=lambda o: _cost(o[0], o[1], history, previous_kind))
            chosen.append((kind, payload, recent(history[family(kind)], kind)))
            history[family(kind)].append((payload, kind % 16))
            out.kinds.append(previous_kind := kind)
        else:
            out.kinds.append(NONE if value is None else TEXT)
            if value is not None:
                utf8(value, f"reading id {rid}: value")
                out.texts.append(value)
        previous = value
    trials = [[residual(p, guess, k) for guess in guesses(last, k)] for k, p, last in chosen]
    bits = [sum(zigzag(steps[p]).bit_length() for steps in trials) for p in range(PREDICTORS)]
    out.predictor = bits.index(min(bits))
    for (kind, _, _), steps in zip(chosen, trials, strict=True):
        out.residuals[family(kind)].append(steps[out.predictor])
    return out


def decode_channel(kinds: bytes, predictor: int, residuals: dict[int, Iterator[int]],
                   texts: Iterator[str]) -> list[Value]:  # fmt: skip
    history: dict[int, list[tuple[int, int]]] = {f: [] for f in FAMILIES}
    values: list[Value] = []
    for kind in kinds:
        value: Value = None
        if kind == REPEAT:
            if not values:
                raise BatchFormatError("body: a repeat on a channel that has no earlier row")
            value = values[-1]
        elif kind == TEXT:
            value = next(texts)
        elif kind != NONE:
            guess = guesses(recent(history[family(kind)], kind), kind)[predictor]
            payload = guess + next(residuals[family(kind)])
            if kind < DIV:
                payload = _wrap(payload, _WIDTH[kind])
            elif abs(payload) > LIMIT:
                raise BatchFormatError(f"body: a decimal mantissa of {payload}, beyond ±2**53")
            history[family(kind)].append((payload, kind % 16))
            value = _value(kind, payload)
        values.append(value)
    return values


def _cost(kind: int, payload: int, history: dict[int, list[tuple[int, int]]], previous: int | None) -> int:
    """Bits of the residual from the family's last payload, plus what a change of kind costs."""
    step = residual(payload, guesses(recent(history[family(kind)][-1:], kind), kind)[PREVIOUS], kind)
    return zigzag(step).bit_length() + (kind != previous) * _SWITCH_BITS


def _exact_kinds(value: float, previous: int | None) -> list[tuple[int, int]]:
    """Every (kind, payload) the encoder tries that gives `value` back to the bit: the channel's previous
    decimal kind, the shortest decimal, a short decimal times a scale, float32, float64."""
    bits, options, single = _bits(value), [], None
    try:
        single = _U32.unpack(_F32.pack(value))[0]
        if _bits(_F32.unpack(_U32.pack(single))[0]) != bits:
            single = None
    except OverflowError:  # beyond float32's range
        pass
    if math.isfinite(value) and abs(value) < LIMIT:
        digits, shortest = _shortest(value)
        # repr's decimal is the shortest that reads back as the value, so every scale from its own up
        # gives the value back, and no smaller scale does; -0.0 is no decimal at all
        for kind in dict.fromkeys((previous, DIV + shortest)):
            if kind is None or not DIV + shortest <= kind < MUL or (not digits and bits):
                continue
            if abs(mantissa := digits * 10 ** (kind - DIV - shortest)) <= LIMIT:
                options.append((kind, mantissa))
        products = [previous] if previous is not None and previous > MUL else []
        if single is None and len(str(abs(digits))) >= _MUL_DIGITS:  # a short decimal times 0.1, say
            products += range(MUL + 1, MUL + _MUL_SEARCH + 1)
        for kind in dict.fromkeys(products):
            mantissa = round(value * 10 ** (kind - MUL))
            if abs(mantissa) <= LIMIT and _bits(_value(kind, mantissa)) == bits:
                options.append((kind, mantissa))
    if single is not None:
        options.append((FLOAT32, _ordinal(single, 32)))
    if not options or previous == FLOAT64:  # float64 costs a full mantissa: the last resort, but sticky
        options.append((FLOAT64, _ordinal(bits, 64)))
    return options


def _shortest(value: float) -> tuple[int, int]:
    """The digits and scale of the shortest decimal that reads back as `value`: repr's."""
    text, _, exponent = repr(value).partition("e")
    whole, _, fraction = text.partition(".")
    fraction = fraction.rstrip("0")
    scale = len(fraction) - int(exponent or 0)
    digits = int(whole + fraction)
    return (digits, scale) if scale >= 0 else (digits * 10**-scale, 0)


def _value(kind: int, payload: int) -> float:
    if kind == FLOAT64:
        return float(_F64.unpack(_U64.pack(_unordinal(payload, 64)))[0])
    if kind == FLOAT32:
        return float(_F32.unpack(_U32.pack(_unordinal(payload, 32)))[0])
    if kind < MUL:
        return float(payload / 10 ** (kind - DIV))
    return float(payload) * _TENTHS[kind - MUL]


def _ordinal(bits: int, width: int) -> int:
    """A float's bits as a signed number in the floats' order: neighbours differ by little."""
    half = 1 << (width - 1)
    return bits if bits < half else half - 1 - bits


def _unordinal(ordinal: int, width: int) -> int:
    half = 1 << (width - 1)
    return ordinal if ordinal >= 0 else half - 1 - ordinal


def _wrap(number: int, width: int) -> int:
    half = 1 << (width - 1)
    return ((number + half) & ((1 << width) - 1)) - half


def _same(a: object, b: float | str) -> bool:
    """Identical to the bit: 0.0 is not -0.0, and a NaN repeats only a NaN of the same payload."""
    if isinstance(a, float) and isinstance(b, float):
        return _bits(a) == _bits(b)
    return type(a) is type(b) and a == b


def _bits(value: float) -> int:
    return int(_U64.unpack(_F64.pack(value))[0])
