"""The GPIO line interface every backend implements.

Values are logical: `True` means active. The active level maps them to the wire (an active-low line
is at 0 V when active). An output line declares its safe state, the logical value it is driven to
when it is opened (before anything else can happen), when it is closed, and when the interpreter
exits, normally or through an unhandled exception. Nothing can run on SIGKILL or a power cut: the
wiring has to make "no drive" the safe state (de-energize to trip; docs/safety.md).
"""

from __future__ import annotations

import abc
import atexit
import enum
import logging
import threading
import weakref
from dataclasses import dataclass

log = logging.getLogger(__name__)


class ActiveLevel(enum.StrEnum):
    HIGH = "high"
    LOW = "low"


class GpioError(RuntimeError):
    """A line that cannot be opened or driven; the message names the chip and line."""


@dataclass(frozen=True, slots=True)
class GpioLineSettings:
    """Where a line is and how it behaves; `line` is an offset on the chip or a line name."""

    line: int | str
    chip: str | None = None  # /dev/gpiochipN, gpiochipN or a label; None: the board's header chip (chips.py)
    active_level: ActiveLevel = ActiveLevel.HIGH
    safe_state: bool = False  # outputs: the logical value held at open, close and exit
    consumer: str = "appliance"

    def physical(self, active: bool) -> int:
        """The level on the wire for a logical value."""
        return int(active) if self.active_level is ActiveLevel.HIGH else int(not active)


class InputLine(abc.ABC):
    def __init__(self, settings: GpioLineSettings) -> None:
        self.settings = settings

    @abc.abstractmethod
    def get(self) -> bool:
        """True if the line is active."""

    def close(self) -> None:  # noqa: B027 - most inputs hold nothing to release
        """Release the line."""


_open_outputs: weakref.WeakSet[OutputLine] = weakref.WeakSet()
_registry_lock = threading.Lock()


class OutputLine(abc.ABC):
    """An output; subclasses implement `_write` and `_release`, this class keeps the safe state."""

    def __init__(self, settings: GpioLineSettings) -> None:
        self.settings = settings
        self.value = settings.safe_state
        self.closed = False
        with _registry_lock:
            _open_outputs.add(self)

    @abc.abstractmethod
    def _write(self, physical: int) -> None:
        """Drive the wire to `physical` (0 or 1)."""

    def _release(self) -> None:  # noqa: B027 - backends that hold a request release it here
        """Give the line back to the kernel or library, leaving it driven where it is."""

    def set(self, active: bool) -> None:
        if self.closed:
            raise GpioError(f"line {self.settings.line}: set after close")
        self._write(self.settings.physical(active))
        self.value = active

    def to_safe_state(self) -> None:
        self._write(self.settings.physical(self.settings.safe_state))
        self.value = self.settings.safe_state

    def close(self) -> None:
        """Drive the safe state, then release the line; safe to call twice."""
        if self.closed:
            return
        try:
            self.to_safe_state()
        finally:
            self.closed = True
            self._release()
            with _registry_lock:
                _open_outputs.discard(self)


class GpioBackend(abc.ABC):
    """A way to reach GPIO lines (kernel character device, RPi.GPIO-compatible module, mock)."""

    name: str = "gpio"

    @abc.abstractmethod
    def output(self, settings: GpioLineSettings) -> OutputLine:
        """Open an output, already driven to its safe state."""

    @abc.abstractmethod
    def input(self, settings: GpioLineSettings) -> InputLine:
        """Open an input."""

    def close(self) -> None:  # noqa: B027 - most backends hold nothing beyond their lines
        """Release what the backend holds."""


@atexit.register
def _safe_state_at_exit() -> None:
    with _registry_lock:
        lines = list(_open_outputs)
    for line in lines:
        try:
            line.close()
        except Exception:  # exit must go on; a line we cannot drive is logged, nothing more can be done
            log.exception("could not drive line %s to its safe state at exit", line.settings.line)
