"""A stand-in device type plugin, all in this one file as a real one would be: a config class whose
`type` is its key, a builder that makes its service, and the registration that joins them."""

from __future__ import annotations

import time
from typing import Annotated, Literal

from pydantic import Field

from appliance.config.base import NAME_PATTERN, Settings
from appliance.config.devices import DEVICE_TYPES
from appliance.field.fieldbus import FieldWiring
from appliance.records import Quality, Reading
from appliance.service import Service

KEY = "counter"


class CounterSettings(Settings):
    """A device that counts: one channel, one more each reading."""

    type: Literal["counter"]
    channel: Annotated[str, Field(pattern=NAME_PATTERN)]
    start: int = 0


class Counter(Service):
    def __init__(self, device_id: str, settings: CounterSettings, wiring: FieldWiring) -> None:
        super().__init__()
        self.name = f"counter:{device_id}"
        self.device_id, self.settings, self.sink = device_id, settings, wiring.sink
        self.value = settings.start

    def count(self) -> None:
        reading = Reading(
            self.device_id, self.settings.channel, float(self.value), "", time.time(), Quality.OK
        )
        self.sink([reading], time.monotonic_ns())
        self.value += 1


DEVICE_TYPES.register(KEY, Counter, config=CounterSettings)
