"""Which GPIO chip and line a setting means: the board's header chip when none is named, and errors that list
every chip found, so a stop line is never requested on the wrong chip.

The listing of chips comes from the kernel on a device (`hal.gpio.chardev.list_chips`) or from the text
that libgpiod's `gpiodetect` (and `gpioinfo`, for line names) prints on a board (`parse_listing`), which
is how the mock backend is told which chips a board has. Choosing from a listing is pure, so it is tested
with the listings of real boards.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from hal.boards import Board
from hal.gpio.base import GpioError

_DETECT = re.compile(r"^(gpiochip\d+)\s+\[(.*)\]\s+\((\d+) lines?\)\s*$")
_INFO_HEAD = re.compile(r"^(gpiochip\d+) - (\d+) lines?:\s*$")
_INFO_LINE = re.compile(r'^\s+line\s+(\d+):\s+(?:"([^"]*)"|(unnamed))')


@dataclass(frozen=True, slots=True)
class ChipInfo:
    """One GPIO chip as the kernel describes it (GPIO_GET_CHIPINFO, or a `gpiodetect` row)."""

    path: str  # /dev/gpiochipN
    name: str  # gpiochipN
    label: str  # what the driver calls it: pinctrl-rp1, tegra234-gpio, gpio0, ...
    lines: int
    line_names: tuple[str, ...] = ()  # by offset, "" for an unnamed line; () when not known

    def __str__(self) -> str:
        return f"{self.name} ({self.label}, {self.lines} lines)"


def describe(chips: Sequence[ChipInfo]) -> str:
    """Every chip found, for an error message."""
    return ", ".join(str(c) for c in chips) or "no GPIO chips at all"


def parse_listing(text: str, dev: str = "/dev") -> tuple[ChipInfo, ...]:
    """Chips from `gpiodetect` rows, with line names from `gpioinfo` blocks (v1 or v2 format) if given."""
    chips: dict[str, ChipInfo] = {}
    names: dict[str, dict[int, str]] = {}
    current = None
    for row in text.splitlines():
        if detected := _DETECT.match(row):
            name, label, lines = detected.groups()
            chips[name] = ChipInfo(f"{dev}/{name}", name, label, int(lines))
        elif head := _INFO_HEAD.match(row):
            current = names.setdefault(head.group(1), {})
        elif (line := _INFO_LINE.match(row)) and current is not None:
            current[int(line.group(1))] = line.group(2) or ""
    out = []
    for name, chip in chips.items():
        known = names.get(name, {})
        line_names = tuple(known.get(i, "") for i in range(chip.lines)) if known else ()
        out.append(ChipInfo(chip.path, chip.name, chip.label, chip.lines, line_names))
    return tuple(out)


def choose_chip(chips: Sequence[ChipInfo], wanted: str | None, board: Board | None) -> ChipInfo:
    """The chip a setting names (path, gpiochipN or label) or, for None, the board's header chip."""
    if wanted is None:
        label = board.spec.gpio_chip if board else None
        if board is None or label is None:
            name = board.spec.name if board else "unknown"
            raise GpioError(
                f"this board ({name}) has no known header chip; set the line's chip "
                f"(stop_line.chip for the stop output) to one of: {describe(chips)}"
            )
        matches = [c for c in chips if c.label == label]
        what = f"labelled {label!r} (the header of the {board.spec.name})"
    else:
        matches = [c for c in chips if wanted in (c.path, c.name, c.label)]
        what = repr(wanted)
    if not matches:
        raise GpioError(f"no GPIO chip {what}; found: {describe(chips)}")
    if len(matches) > 1:  # two chips with one label: guessing could drive the wrong relay
        raise GpioError(f"several GPIO chips {what}: {describe(matches)}; name one by its path")
    return matches[0]


def line_offset(chip: ChipInfo, line: int | str) -> int:
    """The offset of `line` (an offset or a line name) on `chip`, checked against what the chip has."""
    if isinstance(line, int):
        if 0 <= line < chip.lines:
            return line
        raise GpioError(f"{chip} has no line {line} (offsets 0-{chip.lines - 1})")
    if line in chip.line_names:
        return chip.line_names.index(line)
    named = [n for n in chip.line_names if n]
    shown = ", ".join(named[:12]) + (", ..." if len(named) > 12 else "")
    raise GpioError(
        f"{chip} has no line named {line!r}"
        + (f"; its named lines: {shown}" if named else " (no named lines)")
    )


def resolve(
    chips: Sequence[ChipInfo], wanted: str | None, line: int | str, board: Board
) -> tuple[ChipInfo, int]:
    """The chip and offset of a line setting, or a GpioError naming every chip found."""
    chip = choose_chip(chips, wanted, board)
    try:
        return chip, line_offset(chip, line)
    except GpioError as exc:
        elsewhere = [
            str(c) for c in chips if isinstance(line, str) and c is not chip and line in c.line_names
        ]
        hint = f"; {line!r} is on {', '.join(elsewhere)}" if elsewhere else ""
        raise GpioError(f"{exc}{hint}; chips found: {describe(chips)}") from None
