"""A mock GPIO chip for desks and tests: every transition is recorded with a monotonic timestamp, inputs
can be driven by hand or wired to an output, and transitions can be appended to a journal file so
another process (a test, the bench) can watch the line as it would watch a real relay.

The journal also records which process owns each output. When that process dies, the kernel releases
its line requests; on pinctrl-backed chips (the Raspberry Pi's bcm2835 among them) a released line
becomes an input, so the wire goes to whatever its pull resistor says. `wire_level` models exactly that,
which is what makes a killed owner safe with the wiring of docs/safety.md. Owner rows read
`t_ns line owner PID gpiochipN`, so a test can also see which chip a process chose.

Which chips: on a desk the mock is one chip, `gpiochip0 [gpio-mock] (64 lines)`, whose lines take any
name or offset (you name your own wires) and which is what an unset chip means. To stand in for a
board, give it that board's chips: `chips=` in code, or $APPLIANCE_GPIO_MOCK_CHIPS naming a file of
what `gpiodetect` prints on the board, optionally followed by `gpioinfo` blocks for line names (the
fixture trees in tests/hal/fixtures carry one as `gpiodetect.txt`). The board itself is read from the
HAL's root ($APPLIANCE_HAL_ROOT, else `/`). Lines then resolve exactly as on the kernel's character
device: an unset chip is the board's header chip by its label, and a chip or line the board does not
have is a GpioError naming the chips found, raised before anything is requested or journalled.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from hal.boards import detect_board
from hal.gpio.base import GpioBackend, GpioError, GpioLineSettings, InputLine, OutputLine
from hal.gpio.chips import ChipInfo, choose_chip, parse_listing, resolve
from hal.sysroot import SysRoot, default_root

JOURNAL_ENV = "APPLIANCE_GPIO_MOCK_JOURNAL"
CHIPS_ENV = "APPLIANCE_GPIO_MOCK_CHIPS"
DESK_CHIP = ChipInfo("/dev/gpiochip0", "gpiochip0", "gpio-mock", 64)


@dataclass(frozen=True, slots=True)
class Transition:
    """The wire changed to `level` at `t_ns` (time.monotonic_ns)."""

    t_ns: int
    line: str
    level: int


def read_journal(path: Path) -> list[Transition]:
    """Transitions a mock chip appended to `path` (rows `t_ns line level`; owner rows skipped)."""
    out = []
    for row in path.read_text().splitlines():
        fields = row.split()
        if len(fields) == 3:
            out.append(Transition(int(fields[0]), fields[1], int(fields[2])))
    return out


def _owner_row(path: Path, line: int | str) -> list[str] | None:
    row = None
    for text in path.read_text().splitlines():
        fields = text.split()
        if len(fields) >= 4 and fields[1] == str(line) and fields[2] == "owner":
            row = fields
    return row


def journal_owner(path: Path, line: int | str) -> int | None:
    """The pid of the process that last opened `line` as an output, from the journal."""
    row = _owner_row(path, line)
    return int(row[3]) if row else None


def journal_chip(path: Path, line: int | str) -> str | None:
    """The chip (gpiochipN) on which `line` was last opened as an output, from the journal."""
    row = _owner_row(path, line)
    return row[4] if row and len(row) > 4 else None


def process_alive(pid: int) -> bool:
    """True while `pid` runs (a zombie has released its files, so its lines too)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def wire_level(path: Path, line: int | str, pull: int = 0) -> int:
    """The level on the wire as an observer would measure it: the last one driven while the owner lives,
    the pull resistor's once the owner is gone (its line released, the pin an input)."""
    owner = journal_owner(path, line)
    if owner is None or not process_alive(owner):
        return pull
    levels = [t.level for t in read_journal(path) if t.line == str(line)]
    return levels[-1] if levels else pull


class MockChip(GpioBackend):
    """Lines by name or offset; each output starts at its safe level, each input at 0 (pulled down)."""

    name = "mock"

    def __init__(
        self,
        journal: Path | None = None,
        chips: tuple[ChipInfo, ...] | None = None,
        root: SysRoot | None = None,
    ) -> None:
        journal = journal or (Path(p) if (p := os.environ.get(JOURNAL_ENV)) else None)
        if chips is None and (listing := os.environ.get(CHIPS_ENV)):
            chips = parse_listing(Path(listing).read_text())
        self.desk = chips is None
        self.chips: tuple[ChipInfo, ...] = (DESK_CHIP,) if chips is None else chips
        self.root = root
        self.levels: dict[str, int] = {}
        self.transitions: list[Transition] = []
        self.outputs: dict[str, MockOutputLine] = {}
        self._wires: dict[str, str] = {}  # input -> output
        self._lock = threading.Lock()
        self._journal = os.open(journal, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644) if journal else None

    def locate(self, settings: GpioLineSettings) -> tuple[ChipInfo, int | str]:
        """The chip and offset of a line, as the character device would resolve them (desk: any line)."""
        if self.desk:
            chip = DESK_CHIP if settings.chip is None else choose_chip(self.chips, settings.chip, None)
            return chip, settings.line
        board = detect_board(self.root or default_root())
        return resolve(self.chips, settings.chip, settings.line, board)

    def output(self, settings: GpioLineSettings) -> OutputLine:
        chip, offset = self.locate(settings)  # a chip or line that does not exist stops here
        key = str(settings.line)
        taken = [
            o for o in self.outputs.values() if not o.closed and (o.chip_info, o.offset) == (chip, offset)
        ]
        if taken or (key in self.outputs and not self.outputs[key].closed):
            raise GpioError(f"mock line {key} is already requested")
        if self._journal is not None:
            os.write(self._journal, f"{time.monotonic_ns()} {key} owner {os.getpid()} {chip.name}\n".encode())
        line = MockOutputLine(self, settings, chip, offset)
        self.outputs[key] = line
        return line

    def input(self, settings: GpioLineSettings) -> InputLine:
        self.locate(settings)
        return MockInputLine(self, settings)

    def wire(self, output: int | str, to_input: int | str) -> None:
        """Connect an output to an input: the input then reads the output's level."""
        self._wires[str(to_input)] = str(output)

    def drive(self, line: int | str, level: int) -> None:
        """Set an unwired input's level from outside (a switch, a sensor)."""
        self._record(str(line), level)

    def level(self, line: int | str) -> int:
        key = str(line)
        return self.levels.get(self._wires.get(key, key), 0)

    def history(self, line: int | str) -> list[Transition]:
        return [t for t in self.transitions if t.line == str(line)]

    def close(self) -> None:
        if self._journal is not None:
            os.close(self._journal)
            self._journal = None

    def _record(self, line: str, level: int) -> None:
        with self._lock:
            if self.levels.get(line) == level:
                return  # no edge, nothing on the wire changed
            transition = Transition(time.monotonic_ns(), line, level)
            self.levels[line] = level
            self.transitions.append(transition)
            if self._journal is not None:
                os.write(self._journal, f"{transition.t_ns} {line} {level}\n".encode())


class MockOutputLine(OutputLine):
    def __init__(
        self,
        chip: MockChip,
        settings: GpioLineSettings,
        chip_info: ChipInfo = DESK_CHIP,
        offset: int | str = 0,
    ) -> None:
        super().__init__(settings)
        self.chip = chip
        self.chip_info, self.offset = chip_info, offset
        self._write(settings.physical(settings.safe_state))

    def _write(self, physical: int) -> None:
        self.chip._record(str(self.settings.line), physical)


class MockInputLine(InputLine):
    def __init__(self, chip: MockChip, settings: GpioLineSettings) -> None:
        super().__init__(settings)
        self.chip = chip

    def get(self) -> bool:
        return self.chip.level(self.settings.line) == self.settings.physical(True)
