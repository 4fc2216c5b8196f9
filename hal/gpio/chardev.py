"""GPIO through the kernel's character device (/dev/gpiochipN) with the libgpiod v2 Python bindings.

The `gpiod` module is imported here only, so a box without it reports this backend unavailable. Before
a line is requested, every chip is listed and the line resolved (hal.gpio.chips): an unset chip is the
board's header chip by its label, never simply the first /dev/gpiochip.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from hal.boards import detect_board
from hal.gpio.base import ActiveLevel, GpioBackend, GpioError, GpioLineSettings, InputLine, OutputLine
from hal.gpio.chips import ChipInfo, resolve
from hal.sysroot import default_root

try:
    import gpiod
    from gpiod.line import Direction, Value
except ImportError as exc:  # the factory turns this into "backend unavailable"
    raise ImportError(f"libgpiod v2 Python bindings (gpiod) not installed: {exc}") from exc


def list_chips(dev: Path = Path("/dev")) -> tuple[ChipInfo, ...]:
    """Every GPIO chip the kernel exposes, asked through its own device; symlinks (the Pi 5's gpiochip4 ->
    gpiochip0 alias) are the same chip and are skipped."""
    chips = []
    for path in sorted(dev.glob("gpiochip*"), key=lambda p: int(re.sub(r"\D", "", p.name) or 0)):
        if path.is_symlink():
            continue
        try:
            with gpiod.Chip(str(path)) as chip:
                info = chip.get_info()
                names = tuple(chip.get_line_info(i).name or "" for i in range(info.num_lines))
        except OSError as exc:
            raise GpioError(f"{path}: {exc}") from exc
        chips.append(ChipInfo(str(path), info.name, info.label, info.num_lines, names))
    return tuple(chips)


def find_line(settings: GpioLineSettings, dev: Path = Path("/dev")) -> tuple[ChipInfo, int]:
    """The chip and offset of a line setting on this board, or a GpioError naming every chip found."""
    wanted = settings.chip
    if wanted is not None and wanted.startswith("/"):
        wanted = os.path.realpath(wanted)  # an alias such as /dev/gpiochip4 -> gpiochip0 names its target
    return resolve(list_chips(dev), wanted, settings.line, detect_board(default_root()))


class _Request:
    """One line requested from one chip."""

    def __init__(self, settings: GpioLineSettings, direction: Any, output_value: Any = None) -> None:
        chip, offset = find_line(settings)  # a chip or line that does not exist stops here, unrequested
        path = chip.path
        line_settings = gpiod.LineSettings(
            direction=direction, active_low=settings.active_level is ActiveLevel.LOW
        )
        if output_value is not None:
            line_settings.output_value = output_value
        try:
            self.request = gpiod.request_lines(
                path, consumer=settings.consumer, config={offset: line_settings}
            )
        except (OSError, ValueError) as exc:
            raise GpioError(f"{chip} line {settings.line}: {exc}") from exc
        self.offset = self.request.offsets[0]


class ChardevOutputLine(OutputLine):
    def __init__(self, settings: GpioLineSettings) -> None:
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
    def __init__(self, settings: GpioLineSettings) -> None:
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

    def output(self, settings: GpioLineSettings) -> OutputLine:
        return ChardevOutputLine(settings)

    def input(self, settings: GpioLineSettings) -> InputLine:
        return ChardevInputLine(settings)
