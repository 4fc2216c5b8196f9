"""GPIO through the kernel's character device (/dev/gpiochipN) with the libgpiod v2 Python bindings.

The `gpiod` module is imported here only, so a box without it reports this backend unavailable.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hal.gpio.base import ActiveLevel, GpioBackend, GpioError, InputLine, LineSettings, OutputLine

try:
    import gpiod
    from gpiod.line import Direction, Value
except ImportError as exc:  # the factory turns this into "backend unavailable"
    raise ImportError(f"libgpiod v2 Python bindings (gpiod) not installed: {exc}") from exc


def find_chip(chip: str | None, dev: Path = Path("/dev")) -> str:
    """The /dev/gpiochipN path for a path or a chip label (None: the first chip)."""
    if chip and chip.startswith("/"):
        return chip
    paths = sorted(str(p) for p in dev.glob("gpiochip*"))
    if not paths:
        raise GpioError(f"no GPIO chips in {dev}")
    if chip is None:
        return paths[0]
    for path in paths:
        with gpiod.Chip(path) as handle:
            if handle.get_info().label == chip:
                return path
    raise GpioError(f"no GPIO chip labelled {chip!r} among {', '.join(paths)}")


class _Request:
    """One line requested from one chip."""

    def __init__(self, settings: LineSettings, direction: Any, output_value: Any = None) -> None:
        path = find_chip(settings.chip)
        line_settings = gpiod.LineSettings(
            direction=direction, active_low=settings.active_level is ActiveLevel.LOW
        )
        if output_value is not None:
            line_settings.output_value = output_value
        try:
            self.request = gpiod.request_lines(
                path, consumer=settings.consumer, config={settings.line: line_settings}
            )
        except (OSError, ValueError) as exc:
            raise GpioError(f"{path} line {settings.line}: {exc}") from exc
        self.offset = self.request.offsets[0]


class ChardevOutputLine(OutputLine):
    def __init__(self, settings: LineSettings) -> None:
        # The request itself sets the safe value, so the line never shows anything else.
        safe = Value.ACTIVE if settings.safe_state else Value.INACTIVE
        self._req = _Request(settings, Direction.OUTPUT, safe)
        super().__init__(settings)

    def _write(self, physical: int) -> None:
        # the request was made with active_low, so gpiod wants the logical value back
        active = physical == self.settings.physical(True)
        self._req.request.set_value(self._req.offset, Value.ACTIVE if active else Value.INACTIVE)

    def _release(self) -> None:
        self._req.request.release()


class ChardevInputLine(InputLine):
    def __init__(self, settings: LineSettings) -> None:
        super().__init__(settings)
        self._req = _Request(settings, Direction.INPUT)

    def get(self) -> bool:
        return bool(self._req.request.get_value(self._req.offset) == Value.ACTIVE)

    def close(self) -> None:
        self._req.request.release()


class ChardevBackend(GpioBackend):
    name = "gpiod"

    def __init__(self) -> None:
        if not any(Path("/dev").glob("gpiochip*")):
            raise GpioError("no /dev/gpiochip* devices: the kernel exposes no GPIO chips here")

    def output(self, settings: LineSettings) -> OutputLine:
        return ChardevOutputLine(settings)

    def input(self, settings: LineSettings) -> InputLine:
        return ChardevInputLine(settings)
