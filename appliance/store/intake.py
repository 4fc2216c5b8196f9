"""Records as the writer takes them: their class, an id for each event (handed out here, in the order
events arrive, so the events API can list an event before it reaches the database), the evidence rows
an event names, all as the plain tuples the journal and the tables keep; critical ones apart."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from appliance.records import Event, Priority, Quality, Reading, is_file_name
from appliance.store.classes import Classifier
from appliance.store.tables import HeldEvent, HeldEvidence, HeldReading

QUALITY_CODES = {Quality.OK: 0, Quality.STALE: 1, Quality.ERROR: 2}
# Keys of an event's data that name a file in the evidence folder, sent upstream in the evidence stream.
EVIDENCE_KINDS = ("thumbnail", "image")
CRITICAL = int(Priority.CRITICAL)


@dataclass
class Taken:
    readings: list[HeldReading] = field(default_factory=list)
    events: list[HeldEvent] = field(default_factory=list)
    evidence: list[HeldEvidence] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.readings) + len(self.events) + len(self.evidence)

    def extend(self, other: Taken) -> None:
        self.readings.extend(other.readings)
        self.events.extend(other.events)
        self.evidence.extend(other.evidence)

    def frame(self) -> tuple[list[Any], list[Any], list[Any]]:
        return self.readings, self.events, self.evidence

    def plain(self) -> Taken:
        """The same records with Python's own types only, which marshal takes (a driver or a feature may
        hand numpy numbers); a value that is no number after all is kept as its text."""

        def value(v: Any) -> float | str | None:
            if v is None or isinstance(v, str):
                return v
            try:
                return float(v)
            except (TypeError, ValueError):
                return str(v)

        return Taken(
            [
                (str(d), str(c), str(u), value(v), float(ts), int(q), int(p))
                for d, c, u, v, ts, q, p in self.readings
            ],
            [
                (int(i), float(ts), str(k), str(s), str(src), str(m), str(data), int(p))
                for i, ts, k, s, src, m, data, p in self.events
            ],
            [(float(ts), int(e), str(k), str(n), int(p)) for ts, e, k, n, p in self.evidence],
        )

    @classmethod
    def of(cls, frame: Any) -> Taken:
        """A journal frame back (marshal gives lists for the tuples it was given)."""
        readings, events, evidence = frame
        return cls(
            [cast(HeldReading, tuple(r)) for r in readings],
            [cast(HeldEvent, tuple(e)) for e in events],
            [cast(HeldEvidence, tuple(e)) for e in evidence],
        )


class Intake:
    def __init__(self, classes: Classifier, next_event_id: int) -> None:
        self.classes = classes
        self.next_event_id = next_event_id
        self._sensors: dict[tuple[str, str], int] = {}  # (device, channel) -> class

    def take(self, records: Sequence[Reading | Event]) -> tuple[Taken, Taken]:
        """The critical records and the others."""
        sensors, codes = self._sensors, QUALITY_CODES
        try:  # the common case: a poll's readings of known channels (a Reading is a tuple)
            rows = [
                (r[0], r[1], r[3], r[2], r[4], codes[r[5]], sensors[r[0], r[1]])
                for r in cast(Sequence[Any], records)
            ]
        except (KeyError, TypeError):  # a channel not seen before, or an event among them
            return self._slowly(records)
        if not self.classes.critical_sensors:
            return Taken(), Taken(cast(list[HeldReading], rows))
        critical, other = Taken(), Taken()
        for row in rows:
            (critical if row[6] == CRITICAL else other).readings.append(cast(HeldReading, row))
        return critical, other

    def _slowly(self, records: Sequence[Reading | Event]) -> tuple[Taken, Taken]:
        critical, other = Taken(), Taken()
        for record in records:
            if type(record) is Event:
                self._event(record, critical, other)
                continue
            r = cast(Reading, record)
            prio = self._sensors.get((r.device, r.channel))
            if prio is None:
                prio = self._sensors[r.device, r.channel] = int(self.classes.sensor(r.sensor_id))
            value = r.value if r.value is None or isinstance(r.value, str) else float(r.value)
            row = (r.device, r.channel, r.unit, value, float(r.ts), QUALITY_CODES[r.quality], prio)
            (critical if prio == CRITICAL else other).readings.append(row)
        return critical, other

    def _event(self, event: Event, critical: Taken, other: Taken) -> None:
        prio = int(self.classes.event(event))
        event_id, self.next_event_id = self.next_event_id, self.next_event_id + 1
        row = (
            event_id,
            float(event.ts),
            event.kind,
            str(event.severity),
            event.source,
            event.message,
            event.data_json(),
            prio,
        )
        (critical if prio == CRITICAL else other).events.append(row)
        for kind in EVIDENCE_KINDS:
            name = event.data.get(kind)
            if isinstance(name, str) and is_file_name(name):
                klass = int(self.classes.evidence(kind))
                (critical if klass == CRITICAL else other).evidence.append(
                    (float(event.ts), event_id, kind, name, klass)
                )
