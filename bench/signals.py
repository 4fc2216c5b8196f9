"""Physical signals for simulated sensors: what a channel reads at a given time."""

from __future__ import annotations

import math
import random
from typing import Annotated, Literal

from pydantic import Field, PrivateAttr, model_validator

from appliance.config.base import Settings


class _Signal(Settings):
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


class Drift(_Signal):
    """A value wandering around a mean and pulled back to it (Ornstein-Uhlenbeck): a process temperature,
    a tank level. Successive reads continue one path."""

    type: Literal["drift"]
    mean: float
    pull_per_s: Annotated[float, Field(gt=0)] = 0.05  # how fast it returns to the mean
    noise_per_s: Annotated[float, Field(ge=0)] = 0.1  # how far it wanders in one second
    seed: int = 0
    _state: list[float] = PrivateAttr(default_factory=list)  # [t, value]
    _rng: random.Random = PrivateAttr(default_factory=random.Random)

    def at(self, t: float) -> float:
        if not self._state:
            self._rng.seed(self.seed)
            self._state[:] = [t, self.mean]
        last_t, value = self._state
        dt = max(t - last_t, 0.0)
        if dt:
            decay = math.exp(-self.pull_per_s * dt)
            spread = self.noise_per_s * math.sqrt((1 - decay * decay) / (2 * self.pull_per_s))
            value = self.mean + (value - self.mean) * decay + self._rng.gauss(0.0, spread)
            self._state[:] = [t, value]
        return value


class Text(_Signal):
    """A fixed text: a serial number, a firmware version (string registers)."""

    type: Literal["text"]
    value: str

    def at(self, t: float) -> float:
        raise TypeError("a text signal has no number")


class Vibration(_Signal):
    """Acceleration of a rotating machine, as a block of samples: the shaft frequency and its harmonics,
    broadband noise, and, with a bearing fault, impacts repeating at the bearing's defect frequency that
    ring a high-frequency resonance (the classic outer-race fault signature)."""

    type: Literal["vibration"]
    shaft_hz: Annotated[float, Field(gt=0)] = 25.0
    amplitude: Annotated[float, Field(ge=0)] = 1.0
    noise: Annotated[float, Field(ge=0)] = 0.05
    defect_hz: Annotated[float, Field(gt=0)] = 89.0  # outer-race defect frequency (BPFO) of the bearing
    resonance_hz: Annotated[float, Field(gt=0)] = 320.0
    fault_amplitude: Annotated[float, Field(ge=0)] = 4.0  # impact size at full fault severity
    seed: int = 0
    _rng: random.Random = PrivateAttr(default_factory=random.Random)

    def at(self, t: float) -> float:
        return self.block(t, 1, 1.0, 0.0)[0]

    def block(self, t_end: float, n: int, sample_rate_hz: float, fault: float) -> list[float]:
        """`n` samples ending at `t_end`; `fault` is the bearing fault's severity, 0 (none) to 1."""
        out = []
        for i in range(n):
            t = t_end - (n - 1 - i) / sample_rate_hz
            x = self.amplitude * (
                math.sin(2 * math.pi * self.shaft_hz * t)
                + 0.3 * math.sin(2 * math.pi * 2 * self.shaft_hz * t + 0.5)
            )
            if fault > 0:
                since_impact = math.fmod(t, 1 / self.defect_hz)  # time since the last impact
                ring = math.exp(-since_impact * 60.0) * math.sin(
                    2 * math.pi * self.resonance_hz * since_impact
                )
                x += fault * self.fault_amplitude * ring
            out.append(x + (self._rng.gauss(0.0, self.noise) if self.noise else 0.0))
        return out


Signal = Annotated[Constant | Sine | Ramp | Square | Drift | Text | Vibration, Field(discriminator="type")]
