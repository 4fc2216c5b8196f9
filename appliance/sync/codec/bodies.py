"""The readings and events bodies, column by column (docs/sync.md, "Readings body" and "Events body")."""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence

from appliance.records import is_file_name
from appliance.sync.codec import timing, values
from appliance.sync.codec.envelope import BatchHeader, read_ids, seal, start_body
from appliance.sync.codec.values import DIV, FAMILIES, FLOAT32, FLOAT64, KINDS, PREDICTORS, TEXT, Value
from appliance.sync.codec.wire import BatchFormatError, Reader, micros, utf8

ReadingRow = tuple[int, str, str, str, float, float | str | None, int]
EventRow = tuple[int, float, str, str, str, str, str]
EvidenceRow = tuple[int, float, int, str, str, str, bytes]  # id, ts, event id, kind, name, media type, file
EVENT_FIELDS = ("kind", "severity", "source", "message", "data")
EVIDENCE_FIELDS = ("kind", "name", "media type")
EVIDENCE_LEVEL = 1  # files are JPEGs already: the body is framed, not squeezed again
_FAMILY_NAMES = {DIV: "decimal", FLOAT32: "float32", FLOAT64: "float64"}


def encode_readings(header: BatchHeader, rows: Sequence[ReadingRow], level: int) -> bytes:
    """One batch of readings, rows sorted by id: floats to the bit, timestamps to the microsecond."""
    body = start_body(header, "readings", rows)
    names: dict[tuple[str, str, str], int] = {}
    index, quality, stamps = [], bytearray(), []
    for rid, device, channel, unit, stamp, _, code in rows:
        stamps.append(micros(stamp, f"readings id {rid}"))
        if (number := names.get((device, channel, unit))) is None:
            for text, name in ((device, "device"), (channel, "channel"), (unit, "unit")):
                utf8(text, f"reading id {rid}: {name}")
            number = names[device, channel, unit] = len(names)
        index.append(number)
        if code not in (0, 1, 2):
            raise BatchFormatError(f"reading id {rid}: quality {code!r} is not 0, 1 or 2")
        quality.append(code)
    channels = [
        values.encode_channel([rows[i][0] for i in at], [rows[i][5] for i in at])
        for at in _rows_by_channel(index, len(names))
    ]
    periods, times = timing.encode_times(stamps, index, len(names))
    body.uvarint(len(names))
    for (device, channel, unit), period, coded in zip(names, periods, channels, strict=True):
        for text in (device, channel, unit):
            body.text(text)
        body.uvarint(period)
        body.append(coded.predictor)
    for number in index:
        body.uvarint(number)
    body += quality + times
    body += b"".join(coded.kinds for coded in channels)
    for family in FAMILIES:
        body.numbers([step for coded in channels for step in coded.residuals[family]])
    for text in itertools.chain.from_iterable(coded.texts for coded in channels):
        body.text(text)
    return seal(header, bytes(body), level)


def decode_readings(header: BatchHeader, body: Reader) -> list[ReadingRow]:
    ids = read_ids(header, body)
    names, periods, predictors = [], [], []
    for _ in range(body.uvarint()):
        names.append((body.text(), body.text(), body.text()))
        periods.append(body.uvarint())
        if (predictor := body.take(1)[0]) >= PREDICTORS:
            raise body.fail(f"predictor {predictor} is not one of 0..{PREDICTORS - 1}")
        predictors.append(predictor)
    index = [body.uvarint() for _ in ids]
    if max(index) >= len(names):
        raise BatchFormatError(f"body: channel index {max(index)} but {len(names)} channels")
    quality = body.take(len(ids))
    if max(quality) > 2:
        raise BatchFormatError(f"body: quality code {max(quality)} is not 0, 1 or 2")
    times = timing.decode_times(body, index, periods)
    kinds = body.take(len(ids))
    if unknown := set(kinds) - KINDS:
        raise BatchFormatError(f"body: unknown value kinds {sorted(unknown)}")
    residuals: dict[int, Iterator[int]] = {}
    for family in FAMILIES:
        count = sum(1 for kind in kinds if values.family(kind) == family)
        residuals[family] = iter(body.numbers(count, f"{_FAMILY_NAMES[family]} residuals"))
    texts = iter([body.text() for _ in range(kinds.count(TEXT))])
    row_values: list[Value] = [None] * len(ids)
    start = 0
    for channel, at in enumerate(_rows_by_channel(index, len(names))):
        decoded = values.decode_channel(kinds[start : start + len(at)], predictors[channel], residuals, texts)
        start += len(at)
        for row, value in zip(at, decoded, strict=True):
            row_values[row] = value
    body.done()
    rows = zip(ids, index, times, row_values, quality, strict=True)
    return [(i, *names[c], t, v, q) for i, c, t, v, q in rows]


def encode_events(header: BatchHeader, rows: Sequence[EventRow], level: int) -> bytes:
    """One batch of events, rows sorted by id: texts exact, timestamps to the microsecond."""
    body = start_body(header, "events", rows)
    body += timing.encode_steps([micros(row[1], f"events id {row[0]}") for row in rows])
    for column, name in enumerate(EVENT_FIELDS, start=2):
        for row in rows:
            body.text(row[column], f"event id {row[0]}: {name}")
    return seal(header, bytes(body), level)


def decode_events(header: BatchHeader, body: Reader) -> list[EventRow]:
    ids = read_ids(header, body)
    times = timing.decode_steps(body, len(ids))
    columns = [[body.text() for _ in ids] for _ in EVENT_FIELDS]
    body.done()
    return list(zip(ids, times, *columns, strict=True))


def encode_evidence(header: BatchHeader, rows: Sequence[EvidenceRow]) -> bytes:
    """One batch of evidence files, rows sorted by id; each file's bytes exactly as on disk."""
    body = start_body(header, "evidence", rows)
    body += timing.encode_steps([micros(row[1], f"evidence id {row[0]}") for row in rows])
    for row in rows:
        if not isinstance(row[2], int) or row[2] < 0:
            raise BatchFormatError(f"evidence id {row[0]}: event id {row[2]!r} is not a whole number")
        body.uvarint(row[2])
    for column, name in enumerate(EVIDENCE_FIELDS, start=3):
        for row in rows:
            body.text(row[column], f"evidence id {row[0]}: {name}")
    for row in rows:
        if not is_file_name(row[4]):
            raise BatchFormatError(f"evidence id {row[0]}: name {row[4]!r} is not a plain file name")
        if not isinstance(row[6], bytes | bytearray):
            raise BatchFormatError(f"evidence id {row[0]}: file content is not bytes")
        body.uvarint(len(row[6]))
    for row in rows:
        body += row[6]
    return seal(header, bytes(body), EVIDENCE_LEVEL)


def decode_evidence(header: BatchHeader, body: Reader) -> list[EvidenceRow]:
    ids = read_ids(header, body)
    times = timing.decode_steps(body, len(ids))
    events = [body.uvarint() for _ in ids]
    columns = [[body.text() for _ in ids] for _ in EVIDENCE_FIELDS]
    if bad := next((name for name in columns[1] if not is_file_name(name)), None):
        raise body.fail(f"evidence name {bad!r} is not a plain file name")
    sizes = [body.uvarint() for _ in ids]
    files = [body.take(size) for size in sizes]
    body.done()
    return list(zip(ids, times, events, *columns, files, strict=True))


def _rows_by_channel(index: list[int], count: int) -> list[list[int]]:
    """Each channel's rows in row order: the value columns hold channel 0's rows, then channel 1's, ..."""
    rows: list[list[int]] = [[] for _ in range(count)]
    for row, channel in enumerate(index):
        rows[channel].append(row)
    return rows
