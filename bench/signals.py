"""Physical signals for simulated sensors: what a channel reads at a given time."""

from __future__ import annotations

import math
import random
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Signal(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    def at(self, t: float) -> float:
        raise NotImplementedError


class Constant(_Signal):
    """A value that never changes (a setpoint, a serial number)."""

    type: Literal["constant"]
    value: float

    def at(self, t: float) -> float:
        return self.value


class Sine(_Signal):
    """A slow periodic swing with measurement noise: a temperature following a day cycle."""

    type: Literal["sine"]
    mean: float
    amplitude: float
    period_s: Annotated[float, Field(gt=0)]
    noise: Annotated[float, Field(ge=0)] = 0.0

    def at(self, t: float) -> float:
        wave = self.mean + self.amplitude * math.sin(2 * math.pi * t / self.period_s)
        return wave + (random.gauss(0.0, self.noise) if self.noise else 0.0)


class Ramp(_Signal):
    """A value that climbs (or falls) at a fixed rate and wraps: an hour meter, a part counter."""

    type: Literal["ramp"]
    start: float = 0.0
    per_s: float
    wrap_at: float | None = None

    @model_validator(mode="after")
    def _wrap_after_start(self) -> Ramp:
        if self.wrap_at is not None and self.wrap_at <= self.start:
            raise ValueError("wrap_at must be greater than start")
        return self

    def at(self, t: float) -> float:
        value = self.start + self.per_s * t
        if self.wrap_at is None:
            return value
        return self.start + math.fmod(value - self.start, self.wrap_at - self.start)


class Square(_Signal):
    """On/off with a duty cycle: a pump, a door switch."""

    type: Literal["square"]
    period_s: Annotated[float, Field(gt=0)]
    duty: Annotated[float, Field(ge=0, le=1)] = 0.5
    low: float = 0.0
    high: float = 1.0

    def at(self, t: float) -> float:
        return self.high if math.fmod(t, self.period_s) < self.duty * self.period_s else self.low


Signal = Annotated[Constant | Sine | Ramp | Square, Field(discriminator="type")]
