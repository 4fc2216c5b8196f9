"""GPIO lines with an active level and, for outputs, a safe state held at open, close and exit."""

from hal.gpio.base import ActiveLevel, GpioBackend, GpioError, GpioLineSettings, InputLine, OutputLine
from hal.gpio.factory import GPIO_BACKENDS, open_backend

__all__ = [
    "GPIO_BACKENDS",
    "ActiveLevel",
    "GpioBackend",
    "GpioError",
    "GpioLineSettings",
    "InputLine",
    "OutputLine",
    "open_backend",
]
