"""Priority classes for records, from `[store.classes]`: glob patterns over sensor ids and event kinds."""

from __future__ import annotations

from collections.abc import Sequence
from fnmatch import fnmatchcase
from typing import cast

from appliance.config.sync import ClassSettings
from appliance.records import Event, Priority, Reading


class Classifier:
    """Answers a record's class; a sensor's class is worked out once and remembered."""

    def __init__(self, settings: ClassSettings) -> None:
        self.settings = settings
        self._sensors = [(pattern, Priority.parse(name)) for pattern, name in settings.sensors.items()]
        self._kinds = [(pattern, Priority.parse(name)) for pattern, name in settings.event_kinds.items()]
        self._by_severity = {
            "critical": Priority.CRITICAL,
            "warning": Priority.IMPORTANT,
            "info": Priority.NORMAL,
        }
        for severity, name in settings.events.items():
            self._by_severity[severity] = Priority.parse(name)
        self._evidence = {"thumbnail": Priority.IMPORTANT, "image": Priority.BACKGROUND}
        for kind, name in settings.evidence.items():
            self._evidence[kind] = Priority.parse(name)
        self._default = Priority.parse(settings.readings)
        self._cache: dict[str, Priority] = {}
        # whether any reading can be critical at all: spares the writer a look at every reading
        self.critical_sensors = Priority.CRITICAL in {self._default, *(p for _, p in self._sensors)}

    def sensor(self, sensor_id: str) -> Priority:
        """The class of a DEVICE.CHANNEL sensor's readings: the first matching pattern, else the default."""
        if (known := self._cache.get(sensor_id)) is not None:
            return known
        found = next((p for pattern, p in self._sensors if fnmatchcase(sensor_id, pattern)), self._default)
        self._cache[sensor_id] = found
        return found

    def event(self, event: Event) -> Priority:
        """A matching kind pattern first, then the event's severity."""
        for pattern, priority in self._kinds:
            if fnmatchcase(event.kind, pattern):
                return priority
        return self._by_severity[str(event.severity)]

    def evidence(self, kind: str) -> Priority:
        """The class of an evidence file: `thumbnail` or `image`."""
        return self._evidence[kind]

    def urgent(self, records: Sequence[Reading | Event]) -> bool:
        """A critical record among them: commit now rather than wait for the interval."""
        if type(records[0]) is Reading and not self.critical_sensors:
            return False  # the common case, a poll's readings with no critical sensor configured: no loop
        for record in records:
            if type(record) is Event:
                if self.event(record) is Priority.CRITICAL:
                    return True
            elif self.critical_sensors and self.sensor(cast(Reading, record).sensor_id) is Priority.CRITICAL:
                return True
        return False
