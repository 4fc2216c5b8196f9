"""The `readings` view: every reading as a row (id, channel_id, ts, value, quality, prio), in plain SQL.

Readings are kept packed (chunks.py), and a few from before that as rows of `reading_rows`; the view
unpacks the chunks so that anything that read the old table (the sqlite3 shell, a test, a bench)
still can, with nothing loaded into SQLite: a byte of a column is found by its position in the 256
bytes of `store_bytes`, and floats are put together from their bits with pow(). It is exact, and it is
slow beside the store's own decoder (some microseconds a reading): the store, the outbox and the quota
never read through it. `INSERT INTO readings` still works too (a row in reading_rows).
"""

from __future__ import annotations

from appliance.store.chunks import NO_VALUE
from appliance.store.packing import DECIMAL, FLOAT32, FLOAT64, INTEGER, SCALED, TEXT

BYTES = "(SELECT b FROM store_bytes)"  # the 256 bytes 00 to FF: a byte is its position there
AT = "s.key"  # the reading's position in its chunk


def _byte(blob: str, pos: str) -> str:
    """The byte at 1-based `pos` of `blob`, as an integer (0 past the end)."""
    return f"(instr({BYTES}, substr({blob}, {pos}, 1)) - 1)"


def _unsigned(blob: str, width: str) -> str:
    """The reading's unsigned big-endian number of `width` (0 to 4) bytes in a column."""
    terms = [
        f"(CASE WHEN {width} > {k} THEN {_byte(blob, f'{AT} * {width} + {k + 1}')}"
        f" << (8 * ({width} - {k + 1})) ELSE 0 END)"
        for k in range(4)
    ]
    return "(" + " + ".join(terms) + ")"


def _float(pos: str, exponent_bits: int, fraction_bits: int) -> str:
    """The IEEE float (32 or 64 bits) at `pos` of vals: sign, exponent and fraction taken from the bytes;
    NULL for a NaN."""
    top = exponent_bits - 7  # exponent bits in the second byte
    fraction = f"({_byte('c.vals', f'{pos} + 1')} & {(1 << (8 - top)) - 1})"
    for k in range(2, (1 + exponent_bits + fraction_bits) // 8):
        fraction = f"(({fraction} << 8) | {_byte('c.vals', f'{pos} + {k}')})"
    first = _byte("c.vals", pos)
    exponent = f"((({first} & 127) << {top}) | ({_byte('c.vals', f'{pos} + 1')} >> {8 - top}))"
    sign = f"(1 - 2 * ({first} >> 7))"
    bias = (1 << (exponent_bits - 1)) - 1 + fraction_bits
    top_exponent = (1 << exponent_bits) - 1
    return (
        f"(CASE {exponent} WHEN {top_exponent} THEN (CASE WHEN {fraction} = 0 THEN {sign} * 1e999 END)"
        f" WHEN 0 THEN {sign} * {fraction} * pow(2.0, {1 - bias})"
        f" ELSE {sign} * ({fraction} + {1 << fraction_bits}) * pow(2.0, {exponent} - {bias}) END)"
    )


def _value() -> str:
    mantissa = f"(c.base + {_unsigned('c.vals', 'c.vw')})"
    return (
        f"CASE WHEN c.flags IS NOT NULL AND {_byte('c.flags', f'{AT} + 1')} & {NO_VALUE} THEN NULL"
        f" ELSE CASE c.kind WHEN {INTEGER} THEN CAST({mantissa} AS REAL)"
        f" WHEN {SCALED} THEN {mantissa} * c.scale"
        f" WHEN {DECIMAL} THEN {mantissa} / c.scale"
        f" WHEN {FLOAT32} THEN {_float(f'{AT} * 4 + 1', 8, 23)}"
        f" WHEN {FLOAT64} THEN {_float(f'{AT} * 8 + 1', 11, 52)}"
        f" WHEN {TEXT} THEN json_extract(c.texts, '$['"
        f" || (CASE WHEN json_array_length(c.texts) = 1 THEN 0 ELSE {AT} END) || ']') END END"
    )


def _ts() -> str:
    residual = _unsigned("c.ts", "c.tw")
    signed = (
        f"(CASE WHEN c.tw = 0 THEN 0 ELSE {residual} - (({residual} >> (8 * c.tw - 1)) << (8 * c.tw)) END)"
    )
    return f"(c.t0 + {AT} * c.step + {signed}) / 1000000.0"


def create_sql() -> str:
    """The view, its table of bytes, and the trigger that takes an INSERT."""
    every_byte = "".join(f"{b:02X}" for b in range(256))
    # one row per reading of a chunk: json_each over a JSON array of n zeros
    slots = "json_each('[' || substr(replace(printf('%.*c', c.n, 'x'), 'x', ',0'), 2) || ']') s"
    return f"""
    CREATE TABLE store_bytes (b BLOB NOT NULL);
    INSERT INTO store_bytes VALUES (x'{every_byte}');
    CREATE VIEW readings (id, channel_id, ts, value, quality, prio) AS
    SELECT id, channel_id, ts, value, quality, prio FROM reading_rows
    UNION ALL
    SELECT c.first_id + {AT} * c.stride, c.channel_id, {_ts()}, {_value()},
        CASE WHEN c.flags IS NULL THEN 0 ELSE {_byte("c.flags", f"{AT} + 1")} & 3 END, c.prio
    FROM reading_chunks c, {slots};
    CREATE TRIGGER readings_insert INSTEAD OF INSERT ON readings BEGIN
        INSERT INTO reading_rows (id, channel_id, ts, value, quality, prio) VALUES (
            coalesce(NEW.id, max(
                (SELECT coalesce(max(id), 0) FROM reading_rows),
                (SELECT coalesce(max(last_id), 0) FROM reading_chunks)) + 1),
            NEW.channel_id, NEW.ts, NEW.value, coalesce(NEW.quality, 0), coalesce(NEW.prio, 2));
    END;
    """
