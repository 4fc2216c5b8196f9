"""GPIO through an RPi.GPIO-compatible module: RPi.GPIO, rpi-lgpio (installs as RPi.GPIO) or Jetson.GPIO.

Lines are BCM numbers. The module is imported here only, when the backend is chosen, so a box
without it reports the backend unavailable. RPi.GPIO's `cleanup()` would turn an output back into a
floating input, so closing a line drives its safe state and leaves it driven.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from hal.gpio.base import GpioBackend, GpioError, GpioLineSettings, InputLine, OutputLine

MODULES = ("RPi.GPIO", "Jetson.GPIO")


def import_gpio_module(name: str | None = None) -> ModuleType:
    errors = []
    for candidate in (name,) if name else MODULES:
        try:
            return importlib.import_module(candidate)
        except (ImportError, RuntimeError) as exc:  # RPi.GPIO raises RuntimeError off a Pi
            errors.append(f"{candidate}: {exc}")
    raise ImportError("no RPi.GPIO-compatible module: " + "; ".join(errors))


def _channel(settings: GpioLineSettings) -> int:
    if not isinstance(settings.line, int):
        raise GpioError(f"RPi.GPIO-compatible backends take BCM numbers, not {settings.line!r}")
    return settings.line


class RpiGpioOutputLine(OutputLine):
    def __init__(self, gpio: ModuleType, settings: GpioLineSettings) -> None:
        self.gpio = gpio
        self.channel = _channel(settings)
        gpio.setup(self.channel, gpio.OUT, initial=settings.physical(settings.safe_state))
        super().__init__(settings)

    def _write(self, physical: int) -> None:
        self.gpio.output(self.channel, self.gpio.HIGH if physical else self.gpio.LOW)


class RpiGpioInputLine(InputLine):
    def __init__(self, gpio: ModuleType, settings: GpioLineSettings) -> None:
        super().__init__(settings)
        self.gpio = gpio
        self.channel = _channel(settings)
        gpio.setup(self.channel, gpio.IN)

    def get(self) -> bool:
        return int(self.gpio.input(self.channel)) == self.settings.physical(True)


class RpiGpioBackend(GpioBackend):
    name = "rpigpio"

    def __init__(self, module: str | None = None) -> None:
        self.gpio = import_gpio_module(module)
        self.gpio.setwarnings(False)
        self.gpio.setmode(self.gpio.BCM)

    def output(self, settings: GpioLineSettings) -> OutputLine:
        return RpiGpioOutputLine(self.gpio, settings)

    def input(self, settings: GpioLineSettings) -> InputLine:
        return RpiGpioInputLine(self.gpio, settings)
