"""The `[safety]` section: the stop output line, the heartbeat between runtime and supervisor, the rules."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from appliance.config.base import Settings, key_literal
from appliance.safety.protocol import RULE_NAME_BYTES
from appliance.safety.settings import DEFAULT_SOCKET, LIMITS
from hal.gpio.factory import GPIO_BACKENDS

if TYPE_CHECKING:
    GpioChoice = str
else:  # "auto" and the registered backends; rebuilt when a plugin registers one (appliance/config/models.py)
    GpioChoice = key_literal(GPIO_BACKENDS, "auto")

SENSOR_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,200}$"
Severity = Literal["critical", "warning", "info"]


class StopLineSettings(Settings):
    """The output to the safety relay or PLC input; energized (active) only while all is well."""

    gpio: GpioChoice = "auto"  # a backend of hal/gpio/factory.py; auto: $APPLIANCE_GPIO, then probing
    line: Annotated[int, Field(ge=0)] | Annotated[str, Field(min_length=1)]  # offset, or the line's name
    # /dev/gpiochipN, gpiochipN or the chip's label; None: the board's header chip, found by its label
    chip: Annotated[str, Field(min_length=1)] | None = None
    active_level: Literal["high", "low"] = "high"


class _Rule(Settings):
    sensor: Annotated[str, Field(pattern=SENSOR_PATTERN)]  # DEVICE.CHANNEL, as the status API lists it
    severity: Severity = "critical"
    name: str = ""  # shown in events; default: the type and the sensor

    @field_validator("name")
    @classmethod
    def _short_name(cls, name: str) -> str:
        if len(name.encode()) > RULE_NAME_BYTES:  # bytes, not characters: it travels in the heartbeat
            raise ValueError(f"{len(name.encode())} bytes in UTF-8; at most {RULE_NAME_BYTES}")
        return name


class ThresholdRule(_Rule):
    """Fires above `above` or below `below`; clears only `hysteresis` back inside."""

    type: Literal["threshold"]
    above: float | None = None
    below: float | None = None
    hysteresis: Annotated[float, Field(ge=0)] = 0.0

    @model_validator(mode="after")
    def _a_limit(self) -> ThresholdRule:
        if self.above is None and self.below is None:
            raise ValueError("a threshold rule needs `above`, `below` or both")
        if self.above is not None and self.below is not None and self.below >= self.above:
            raise ValueError(f"below ({self.below}) must be less than above ({self.above})")
        return self


class RateRule(_Rule):
    """Fires while the value changes faster than `limit_per_s` (either way), fitted over `window_s`."""

    type: Literal["rate"]
    limit_per_s: Annotated[float, Field(gt=0)]
    window_s: Annotated[float, Field(gt=0, le=3600)] = 2.0


class SigmaRule(_Rule):
    """Fires while the value is more than `sigma` standard deviations from the baseline it learned."""

    type: Literal["sigma"]
    sigma: Annotated[float, Field(gt=0, le=1000)]
    baseline_samples: Annotated[int, Field(ge=2, le=1_000_000)] = 100


class StaleRule(_Rule):
    """Fires while the sensor has no fresh good value for `after_s` (a required input);
    `sensor = "qc.camera"` watches the QC camera's frames."""

    type: Literal["stale"]
    after_s: Annotated[float, Field(gt=0, le=86400)]


Rule = Annotated[ThresholdRule | RateRule | SigmaRule | StaleRule, Field(discriminator="type")]


def _limited(key: str) -> Any:
    """An integer key with the bounds and default the supervisor reads too (appliance/safety/settings.py)."""
    least, most, default = LIMITS[key]
    return Field(default, ge=least, le=most)


class SafetySettings(Settings):
    """The supervisor, its line and its deadline; the runtime's rules (docs/safety.md)."""

    supervisor: Literal["spawn", "external"] = "spawn"  # spawn: `appliance run` starts it (a desktop)
    socket: Annotated[str, Field(min_length=1)] = DEFAULT_SOCKET  # under the data directory
    heartbeat_interval_ms: int = _limited("heartbeat_interval_ms")
    heartbeat_deadline_ms: int = _limited("heartbeat_deadline_ms")
    tick_ms: int = _limited("tick_ms")
    realtime_priority: int = _limited("realtime_priority")  # SCHED_FIFO if allowed; 0: normal
    watchdog: Literal["auto", "none", "systemd", "kernel"] = "auto"  # auto: systemd's if started by it
    trip_on_qc: bool = True  # critical QC defects trip the line
    stop_line: StopLineSettings
    rules: list[Rule] = []

    @model_validator(mode="after")
    def _deadline(self) -> SafetySettings:
        if self.heartbeat_deadline_ms < 2 * self.heartbeat_interval_ms:
            raise ValueError(
                f"heartbeat_deadline_ms ({self.heartbeat_deadline_ms}) must be at least twice "
                f"heartbeat_interval_ms ({self.heartbeat_interval_ms}), or one late beat trips the line"
            )
        return self
