"""The sync batch format: exact round trips, clear errors for bad rows, fuzzed payloads refused cleanly."""

from __future__ import annotations

import gzip
import json
import math
import random
import struct
from collections.abc import Callable
from typing import Any

import pytest

from appliance.sync.codec import (
    BatchFormatError,
    BatchHeader,
    EventRow,
    ReadingRow,
    decode,
    encode_events,
    encode_readings,
)
from appliance.sync.codec.wire import Reader, Writer

QUALITY = ("ok", "stale", "error")


def header_for(rows: list[Any], stream: str = "readings", **changes: Any) -> BatchHeader:
    fields: dict[str, Any] = {
        "device": "press-1",
        "store": "5f0c9a2e",
        "stream": stream,
        "priority": "normal",
        "seq": 7,
        "first_id": rows[0][0] if rows else 1,
        "last_id": rows[-1][0] if rows else 1,
        "count": len(rows),
        "thinned": 3,
        "created": 1795324480.123456789,
    }
    return BatchHeader(**(fields | changes))


def bits(value: float) -> bytes:
    return struct.pack(">d", value)


def float32(value: float) -> float:
    return float(struct.unpack(">f", struct.pack(">f", value))[0])


def assert_round_trip(rows: list[ReadingRow], level: int = 19) -> bytes:
    header = header_for(rows)
    payload = encode_readings(header, rows, level)
    got_header, got = decode(payload)
    assert got_header == header
    assert len(got) == len(rows)
    for sent, back in zip(rows, got, strict=True):
        assert back[:4] == sent[:4] and back[6] == sent[6]
        assert back[4] == round(sent[4] * 1e6) / 1e6
        if isinstance(sent[5], float):
            assert isinstance(back[5], float) and bits(back[5]) == bits(sent[5]), (sent, back)
        else:
            assert type(back[5]) is type(sent[5]) and back[5] == sent[5]
    return payload


def synthetic(count: int, seed: int) -> list[ReadingRow]:
    """Readings of every shape the field produces, with random id gaps and shared poll timestamps."""
    rnd = random.Random(seed)
    makers: dict[tuple[str, str, str], Callable[[], float | str]] = {
        ("press-1", "oil_temperature", "degC"): lambda: float32(rnd.uniform(-40, 150)),
        ("press-1", "hydraulic_pressure", "bar"): lambda: rnd.randint(-32768, 32767) * 0.1,
        ("air", "humidity", "%RH"): lambda: round(rnd.uniform(0, 100), rnd.randint(0, 3)),
        ("press-1", "bearing_vibration.rms", "g"): lambda: rnd.gauss(0, 1) * 10 ** rnd.randint(-300, 300),
        ("press-1", "serial_number", ""): lambda: rnd.choice(["PX-2207-0419", "", "ünï ✓ 𝄞 漢字"]),
        ("Gerät-ü", "température", "°C"): lambda: rnd.choice(
            [-0.0, 0.0, math.inf, -math.inf, 5e-324, 2.0**60]
        ),
        ("press-1", "stroke_count", "strokes"): lambda: float(rnd.randint(0, 2**53)),
    }
    channels = list(makers)
    rows: list[ReadingRow] = []
    rid, ts = rnd.randint(1, 1000), 1795324473.0
    for _ in range(count):
        device, channel, unit = rnd.choice(channels)
        quality = rnd.choice((0, 0, 0, 1, 2))
        value = None if quality == 2 else makers[device, channel, unit]()
        rows.append((rid, device, channel, unit, ts, value, quality))
        rid += rnd.choice((1, 1, 2, 17, 2**40))
        ts += rnd.choice((0.0, 0.0, rnd.uniform(-0.5, 2.0)))
    return rows


@pytest.mark.parametrize(("count", "seed"), [(1, 0), (2, 1), (50, 2), (1000, 3), (3000, 4)])
def test_every_kind_of_reading_comes_back_exactly(count: int, seed: int) -> None:
    assert_round_trip(synthetic(count, seed))


@pytest.mark.parametrize(
    "value",
    [-0.0, math.inf, -math.inf, 5e-324, -2.2250738585072014e-308, 1.7976931348623157e308, 192.60000000000002,
     13.67, 1e-300, 0.1 + 0.2, float32(0.1), 2.0**53, 2.0**53 + 2, -(2.0**63), 1e22, 123456789.0],
)  # fmt: skip
def test_floats_are_bit_exact(value: float) -> None:
    rows: list[ReadingRow] = [
        (i, "d", "c", "u", 1.0, v, 0) for i, v in enumerate([1.5, value, value, 7.25, value], 1)
    ]
    assert_round_trip(rows)


def test_nan_stays_nan_with_its_payload() -> None:
    quiet_with_payload = struct.unpack(">d", bytes.fromhex("7ff8000000abcdef"))[0]
    assert_round_trip([(1, "d", "c", "", 1.0, math.nan, 0), (2, "d", "c", "", 1.0, quiet_with_payload, 0)])


def test_timestamps_keep_the_microsecond_and_a_second_trip_changes_nothing() -> None:
    rows: list[ReadingRow] = [
        (1, "d", "c", "", 1795324473.9246836, 1.0, 0),
        (2, "d", "c", "", -12.0000016, 2.0, 0),
    ]
    _, once = decode(encode_readings(header_for(rows), rows, 3))
    assert [r[4] for r in once] == [1795324473.924684, -12.000002]
    _, twice = decode(encode_readings(header_for(once), once, 3))  # type: ignore[arg-type]
    assert twice == once


def test_an_int_value_comes_back_as_the_same_float() -> None:
    rows: list[Any] = [(1, "d", "c", "", 1.0, 42, 0), (2, "d", "c", "", 1.0, 2**60, 0)]
    _, got = decode(encode_readings(header_for(rows), rows, 3))
    assert [(r[5], type(r[5])) for r in got] == [(42.0, float), (2.0**60, float)]


def test_events_come_back_exactly() -> None:
    rows: list[EventRow] = [
        (5, 1795324474.2005606, "estop.trip", "critical", "safety", "QC: crack (1.00) on frame 5", '{"a":1}'),
        (9, 1795324475.5, "qc.defect", "warning", "qc", "Fleck — ünïcödé 𝄞", "{}"),
        (2**50, 1795324475.5, "", "info", "", "", '{"nested":{"x":[1,2,null]}}'),
    ]
    header = header_for(rows, "events", priority="critical")
    got_header, got = decode(encode_events(header, rows, 19))
    assert got_header == header and got_header.batch_id == "press-1/5f0c9a2e/events/critical/7"
    assert got == [(r[0], round(r[1] * 1e6) / 1e6, *r[2:]) for r in rows]


def modbus_shaped(count: int) -> list[ReadingRow]:
    """Polls of a few devices: float32 process values, scaled registers, decimals, a counter, a flag."""
    rnd = random.Random(9)
    devices: dict[str, list[tuple[str, str, Callable[[float], float]]]] = {
        "tank-1": [("level", "%", lambda t: float32(50 + 20 * math.sin(t / 3) + rnd.gauss(0, 0.2)))],
        "press-1": [
            ("oil_temperature", "degC", lambda t: float32(48 + rnd.gauss(0, 0.3))),
            ("hydraulic_pressure", "bar", lambda t: rnd.randint(1850, 2100) * 0.1),
            ("motor_current", "A", lambda t: rnd.randint(1300, 1600) * 0.01),
            ("stroke_count", "strokes", lambda t: float(1200000 + int(t * 2))),
            ("pump_running", "", lambda t: 1.0),
        ],
        "air": [("temperature", "degC", lambda t: round(21.5 + rnd.gauss(0, 0.05), 2)),
                ("humidity", "%RH", lambda t: round(45 + rnd.gauss(0, 0.3), 1))],
    }  # fmt: skip
    polled: list[tuple[str, str, str, float, float]] = []
    t = 1795324473.0
    while len(polled) < count:
        t += 0.5
        for device, points in devices.items():
            ts = t + rnd.uniform(0, 0.02)
            polled += [(device, name, unit, ts, read(t)) for name, unit, read in points]
    return [(i, d, c, u, ts, v, 0) for i, (d, c, u, ts, v) in enumerate(polled[:count], 1)]


def json_lines_gzip(rows: list[ReadingRow]) -> int:
    lines = (
        json.dumps({"device": d, "channel": c, "value": v, "unit": u, "ts": ts, "quality": QUALITY[q]})
        for _, d, c, u, ts, v, q in rows
    )
    return len(gzip.compress("\n".join(lines).encode(), compresslevel=9))


def test_modbus_shaped_readings_take_under_three_tenths_of_gzipped_json() -> None:
    rows = modbus_shaped(1000)
    payload = assert_round_trip(rows)
    assert len(payload) / json_lines_gzip(rows) < 0.25  # the sync benchmark's goal is 0.30; seeded


def bench_shaped(count: int) -> list[ReadingRow]:
    """Polls shaped like the bench world's press: one timestamp per poll group on a jittered schedule,
    float32 and scaled registers, a counter, a flag, a serial number, and features rounded to 6 digits."""
    rnd, t = random.Random(4), 1795324473.0
    rows: list[ReadingRow] = []
    while len(rows) < count:
        t += 0.5
        poll = t + rnd.uniform(0, 0.003)
        rms = 0.59 + 0.01 * (-1) ** round(t * 2) + rnd.gauss(0, 0.003)  # alternates from poll to poll
        groups: list[list[tuple[str, str, float | str]]] = [
            [("pump_running", "", 1.0), ("stroke_count", "strokes", float(int(t) // 2 - 896462236))],
            [("serial_number", "", "PX-2207-0419")],
            [("oil_temperature", "degC", float32(48 + rnd.gauss(0, 0.3))),
             ("hydraulic_pressure", "bar", round(1900 + 250 * math.sin(t / 3)) * 0.1),
             ("hydraulic_pressure.rate", "bar/s", float(f"{83 * math.cos(t / 3) + rnd.gauss(0, 1):.6g}"))],
            [("bearing_vibration.rms", "g", float(f"{rms:.6g}")),
             ("bearing_vibration.band_60-200Hz", "g", float(f"{0.075 + rnd.gauss(0, 0.005):.6g}"))],
        ]  # fmt: skip
        for group in groups:
            poll += rnd.uniform(0.0003, 0.002)
            for channel, unit, value in group:
                rows.append((len(rows) + 1, "press-1", channel, unit, poll, value, 0))
    return rows[:count]


def test_bench_shaped_readings_meet_the_sync_benchmarks_goal() -> None:
    rows = bench_shaped(2800)  # a minute of the bench world's readings
    payload = assert_round_trip(rows)
    assert len(payload) / json_lines_gzip(rows) < 0.30


@pytest.mark.parametrize(
    ("make", "most_bytes"),
    [
        (lambda i: float32(20 + 5 * math.sin(i / 7)), 3.5),  # float32 widened: no more than float32 costs
        (lambda i: (1850 + i % 97) * 0.1, 1.5),  # raw * 0.1, like 192.60000000000002
        (lambda i: round(13 + (i * 7919 % 400) / 100, 2), 2.0),  # two decimals
        (lambda i: 1013.1, 0.1),  # unchanged: a residual of 0
        (lambda i: round(0.58 + 0.02 * (-1) ** i + (i * 7919 % 97) / 1e5, 6), 1.5),  # alternating
        (lambda i: round(1900 + 250 * math.sin(i / 3)) * 0.1, 1.0),  # a smooth scaled register
    ],
)
def test_each_value_shape_is_stored_compactly(make: Any, most_bytes: float) -> None:
    rows: list[ReadingRow] = [(i, "d", "c", "u", 1e9 + i, make(i), 0) for i in range(1, 1001)]
    payload = assert_round_trip(rows)
    assert (len(payload) - 60) / 1000 < most_bytes  # 60: envelope and one timestamp step a row


@pytest.mark.parametrize("bits", [0, 4, 12, 20, 66])
def test_a_number_column_gives_back_any_integers_with_their_noise_in_planes(bits: int) -> None:
    rnd = random.Random(bits)
    numbers = [rnd.randint(-(2**bits), 2**bits) for _ in range(500)] + [-(2**63), 2**64, 0]
    column = Writer()
    column.numbers(numbers)
    assert column[0] == min(bits + 1, 64) // 8  # the low bytes three numbers in four fill: their planes
    reader = Reader(bytes(column), "column")
    assert reader.numbers(len(numbers), "numbers") == numbers and reader.pos == len(column)


@pytest.mark.parametrize(
    "changes",
    [{"device": ""}, {"device": "a/b"}, {"store": "x" * 256}, {"store": "s+"}, {"stream": "metrics"},
     {"priority": "urgent"}, {"seq": 0}, {"first_id": -1}, {"last_id": 0}, {"count": 0}, {"count": 6},
     {"thinned": -1}, {"created": math.nan}, {"seq": 1.5}, {"device": "\udc80"}],
)  # fmt: skip
def test_a_bad_header_is_refused_with_the_field_named(changes: dict[str, Any]) -> None:
    with pytest.raises(BatchFormatError, match=f"header {next(iter(changes)).replace('priority', 'class')}"):
        header_for([(1,), (5,)], **changes)


ROWS: list[Any] = [(1, "d", "c", "u", 1.0, 1.5, 0), (4, "d", "c", "u", 2.0, 2.5, 0)]


@pytest.mark.parametrize(
    ("rows", "changes", "message"),
    [
        (ROWS, {"count": 1, "last_id": 1}, "count 1"),
        (ROWS, {"last_id": 5}, "ids 1..5"),
        (ROWS, {"stream": "events"}, "events"),
        ([ROWS[1], ROWS[0]], {"first_id": 4, "last_id": 1}, "last_id"),
        ([ROWS[0], ROWS[0]], {"last_id": 1, "count": 2}, "count 2"),
        ([ROWS[0], (1, *ROWS[1][1:])], {"last_id": 4}, "id above 1"),
        ([ROWS[0], ROWS[1][:6]], {}, "7 fields"),
        ([ROWS[0], (4, "d", "c", "u", math.inf, 1.0, 0)], {}, "timestamp inf"),
        ([ROWS[0], (4, "d", "c", "u", 2.0, 1.0, 3)], {}, "quality 3"),
        ([ROWS[0], (4, "d", "c", "u", 2.0, True, 0)], {}, "value True"),
        ([ROWS[0], (4, "d", "c", "u", 2.0, b"\x01", 0)], {}, "is not a float"),
        ([ROWS[0], (4, "d", "c", "u", 2.0, 2**80 + 1, 0)], {}, "is not a float"),
        ([ROWS[0], (4, "d", "c", "u", 2.0, "\ud800", 0)], {}, "reading id 4: value"),
        ([ROWS[0], (4, "d", None, "u", 2.0, 1.0, 0)], {}, "reading id 4: channel None"),
    ],
)
def test_rows_that_do_not_fit_are_refused_with_what_and_where(
    rows: list[Any], changes: dict[str, Any], message: str
) -> None:
    with pytest.raises(BatchFormatError, match=message):
        encode_readings(header_for(rows, **changes), rows, 3)


def test_an_empty_batch_and_a_bad_level_are_refused() -> None:
    with pytest.raises(BatchFormatError, match="count 0"):
        encode_readings(header_for([]), [], 3)
    with pytest.raises(BatchFormatError, match="count 1"):
        encode_readings(header_for([], count=1), [], 3)
    for level in (0, 23):
        with pytest.raises(BatchFormatError, match="level"):
            encode_readings(header_for(ROWS), ROWS, level)
