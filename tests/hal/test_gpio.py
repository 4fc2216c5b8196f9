"""GPIO lines: the mock's recorded transitions, active levels, safe states at open, close and exit,
the real backends' use of their libraries, and the choice of backend."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import types
from pathlib import Path
from typing import Any

import gpiod
import pytest
from gpiod.line import Direction, Value

from hal.gpio import ActiveLevel, GpioError, GpioLineSettings, open_backend
from hal.gpio.chips import parse_listing
from hal.gpio.mock import MockChip, read_journal
from hal.sysroot import ROOT_ENV
from tests.conftest import ROOT

FIXTURES = Path(__file__).parent / "fixtures"

STOP = GpioLineSettings("stop", safe_state=False)


def test_an_output_starts_in_its_safe_state_and_every_edge_is_timestamped() -> None:
    chip = MockChip()
    line = chip.output(STOP)
    line.set(True)
    line.set(True)  # no edge: nothing recorded
    line.set(False)
    line.set(True)
    line.close()
    levels = [t.level for t in chip.history("stop")]
    assert levels == [0, 1, 0, 1, 0]  # open (safe), on, off, on, close (safe)
    times = [t.t_ns for t in chip.history("stop")]
    assert times == sorted(times) and len(set(times)) == len(times)
    assert line.closed and line.value is False


def test_active_low_lines_invert_on_the_wire() -> None:
    chip = MockChip()
    relay = chip.output(GpioLineSettings(17, active_level=ActiveLevel.LOW, safe_state=False))
    assert chip.level(17) == 1  # inactive = high on an active-low line
    relay.set(True)
    assert chip.level(17) == 0
    relay.close()
    assert chip.level(17) == 1


def test_a_safe_state_may_be_active() -> None:
    chip = MockChip()
    brake = chip.output(GpioLineSettings("brake", safe_state=True))
    assert chip.level("brake") == 1
    brake.set(False)
    brake.close()
    assert [t.level for t in chip.history("brake")] == [1, 0, 1]


def test_an_output_can_be_wired_to_an_input() -> None:
    chip = MockChip()
    out = chip.output(GpioLineSettings("relay"))
    feedback = chip.input(GpioLineSettings("relay_feedback"))
    inverted = chip.input(GpioLineSettings("relay_nc", active_level=ActiveLevel.LOW))
    chip.wire("relay", "relay_feedback")
    chip.wire("relay", "relay_nc")
    assert (feedback.get(), inverted.get()) == (False, True)
    out.set(True)
    assert (feedback.get(), inverted.get()) == (True, False)
    switch = chip.input(GpioLineSettings("door"))
    chip.drive("door", 1)
    assert switch.get()


def test_a_line_cannot_be_requested_twice_or_set_after_close() -> None:
    chip = MockChip()
    line = chip.output(STOP)
    with pytest.raises(GpioError, match="already requested"):
        chip.output(STOP)
    line.close()
    line.close()  # twice is fine
    with pytest.raises(GpioError, match="set after close"):
        line.set(True)
    chip.output(STOP).close()  # free again after close


EXITING = textwrap.dedent("""
    import os, signal, sys, time
    from pathlib import Path
    from hal.gpio import GpioLineSettings
    from hal.gpio.mock import MockChip
    chip = MockChip(Path(sys.argv[1]))
    line = chip.output(GpioLineSettings("stop", safe_state=False))
    line.set(True)
    how = sys.argv[2]
    if how == "raise":
        raise RuntimeError("crash")
    if how == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    sys.exit(0)
""")


@pytest.mark.parametrize(
    ("how", "levels", "code"),
    [
        ("exit", [0, 1, 0], 0),
        ("raise", [0, 1, 0], 1),
        # SIGKILL runs nothing: the line stays driven, which is why the stop relay must be wired to trip
        # when it is *not* driven (de-energize to trip) and why a separate supervisor owns it.
        ("kill", [0, 1], -signal.SIGKILL),
    ],
)
def test_the_safe_state_is_driven_when_the_process_exits(
    tmp_path: Path, how: str, levels: list[int], code: int
) -> None:
    journal = tmp_path / "journal"
    result = subprocess.run(
        [sys.executable, "-c", EXITING, str(journal), how],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == code, result.stderr
    assert [t.level for t in read_journal(journal)] == levels


class FakeRequest:
    """What gpiod.request_lines returns, recording the calls a real line request would get. Inputs read
    `wire` (offset -> the level on the pin) as the kernel does: a line requested active-low is active at 0 V.
    """

    def __init__(
        self, path: str, consumer: str, config: dict[Any, gpiod.LineSettings], wire: dict[int, int]
    ) -> None:
        ((self.line, self.settings),) = config.items()
        self.path, self.consumer, self.wire = path, consumer, wire
        self.offsets = [self.line]
        self.values: list[Value] = (
            [self.settings.output_value] if self.settings.direction == Direction.OUTPUT else []
        )
        self.released = False

    def set_value(self, offset: int, value: Value) -> None:
        assert offset == self.offsets[0] and not self.released
        self.values.append(value)

    def get_value(self, offset: int) -> Value:
        assert offset == self.offsets[0] and not self.released
        high = self.wire.get(offset, 0) == 1
        return Value.ACTIVE if high != self.settings.active_low else Value.INACTIVE

    def release(self) -> None:
        self.released = True


@pytest.fixture
def pi5_kernel(monkeypatch: pytest.MonkeyPatch) -> tuple[list[FakeRequest], dict[int, int]]:
    """A Pi 5's GPIO as the chardev backend sees it: the requests it makes, and the pins' levels."""
    from hal.gpio import chardev

    # No /dev/gpiochip here: the kernel's listing of a Pi 5's chips stands in for list_chips().
    pi5 = FIXTURES / "rpi5"
    monkeypatch.setattr(
        chardev, "list_chips", lambda dev: parse_listing((pi5 / "gpiodetect.txt").read_text())
    )
    monkeypatch.setenv(ROOT_ENV, str(pi5))
    requests: list[FakeRequest] = []
    wire: dict[int, int] = {}

    def request_lines(path: str, consumer: str, config: dict[Any, gpiod.LineSettings]) -> FakeRequest:
        requests.append(FakeRequest(path, consumer, config, wire))
        return requests[-1]

    monkeypatch.setattr(gpiod, "request_lines", request_lines)
    return requests, wire


def test_the_chardev_backend_requests_lines_with_libgpiod_v2(
    pi5_kernel: tuple[list[FakeRequest], dict[int, int]],
) -> None:
    from hal.gpio import chardev

    requests, wire = pi5_kernel
    settings = GpioLineSettings(
        23, chip="/dev/gpiochip4", active_level=ActiveLevel.LOW, safe_state=False, consumer="safety"
    )
    line = chardev.ChardevOutputLine(settings)
    line.set(True)
    line.close()
    (req,) = requests
    assert (req.path, req.consumer, req.line) == ("/dev/gpiochip4", "safety", 23)
    assert req.settings.direction == Direction.OUTPUT and req.settings.active_low is True
    # the request itself carries the safe value, then logical values follow (gpiod inverts active-low)
    assert req.values == [Value.INACTIVE, Value.ACTIVE, Value.INACTIVE]
    assert req.released
    button = chardev.ChardevInputLine(GpioLineSettings("GPIO17"))  # no chip: the header's, not gpiochip0
    wire[17] = 1
    assert button.get() is True
    assert (requests[1].path, requests[1].line) == ("/dev/gpiochip4", 17)
    assert requests[1].settings.direction == Direction.INPUT
    with pytest.raises(GpioError, match=r"no GPIO chip '/dev/gpiochip9'; found: gpiochip0 \(gpio-brcmstb"):
        chardev.ChardevOutputLine(GpioLineSettings(1, chip="/dev/gpiochip9"))
    assert len(requests) == 2  # refused before any request


def test_chardev_inputs_read_the_wire_through_their_active_level(
    pi5_kernel: tuple[list[FakeRequest], dict[int, int]],
) -> None:
    from hal.gpio import chardev

    requests, wire = pi5_kernel
    button = chardev.ChardevInputLine(GpioLineSettings("GPIO22"))  # closes to 3.3 V when pressed
    guard = chardev.ChardevInputLine(GpioLineSettings("GPIO27", active_level=ActiveLevel.LOW))  # pulls to 0 V
    assert [(r.line, r.settings.active_low) for r in requests] == [(22, False), (27, True)]
    seen = []
    for level in (0, 1, 0):
        wire[22] = wire[27] = level
        seen.append((level, button.get(), guard.get()))
    # the same voltage reads as opposite logical values: active-high follows it, active-low inverts it
    assert seen == [(0, False, True), (1, True, False), (0, False, True)]
    button.close()
    guard.close()
    assert all(r.released for r in requests)


def fake_rpi_gpio() -> types.ModuleType:
    """RPi.GPIO's API as a board has it, recording calls; there is no Pi header on this machine."""
    gpio = types.ModuleType("RPi.GPIO")
    calls: list[tuple[Any, ...]] = []
    gpio.calls = calls  # type: ignore[attr-defined]
    gpio.BCM, gpio.OUT, gpio.IN, gpio.HIGH, gpio.LOW = 11, 0, 1, 1, 0  # type: ignore[attr-defined]
    gpio.setwarnings = lambda flag: calls.append(("setwarnings", flag))  # type: ignore[attr-defined]
    gpio.setmode = lambda mode: calls.append(("setmode", mode))  # type: ignore[attr-defined]
    gpio.setup = lambda ch, d, initial=None: calls.append(("setup", ch, d, initial))  # type: ignore[attr-defined]
    gpio.output = lambda ch, v: calls.append(("output", ch, v))  # type: ignore[attr-defined]
    gpio.input = lambda ch: 0  # type: ignore[attr-defined]
    gpio.cleanup = lambda *a: calls.append(("cleanup", *a))  # type: ignore[attr-defined]
    return gpio


def test_the_rpigpio_backend_drives_bcm_channels(monkeypatch: pytest.MonkeyPatch) -> None:
    gpio = fake_rpi_gpio()
    monkeypatch.setitem(sys.modules, "RPi", types.ModuleType("RPi"))
    monkeypatch.setitem(sys.modules, "RPi.GPIO", gpio)
    backend = open_backend("rpigpio")
    relay = backend.output(GpioLineSettings(18, active_level=ActiveLevel.LOW))
    relay.set(True)
    relay.close()
    low_input = backend.input(GpioLineSettings(24, active_level=ActiveLevel.LOW))
    assert low_input.get() is True  # reads 0 V, active low
    assert gpio.calls == [
        ("setwarnings", False),
        ("setmode", 11),
        ("setup", 18, 0, 1),  # set up already at the safe level: inactive = high
        ("output", 18, 0),
        ("output", 18, 1),  # active, then safe again at close; no cleanup()
        ("setup", 24, 1, None),
    ]
    with pytest.raises(GpioError, match="BCM numbers"):
        backend.output(GpioLineSettings("STOP"))


def test_backend_choice_config_then_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APPLIANCE_GPIO", "mock")
    assert open_backend().name == "mock"
    assert open_backend("auto").name == "mock"
    with pytest.raises(GpioError, match=r"'gpiod' \(from config\) is unavailable"):
        open_backend("gpiod")  # config wins over the environment
    monkeypatch.setenv("APPLIANCE_GPIO", "sysfs")
    with pytest.raises(GpioError, match="unknown GPIO backend 'sysfs'; known: gpiod, rpigpio, mock"):
        open_backend()


def test_probing_never_falls_back_to_the_mock_and_says_why(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("APPLIANCE_GPIO", raising=False)
    monkeypatch.setitem(sys.modules, "gpiod", None)  # the native module is missing
    monkeypatch.delitem(sys.modules, "hal.gpio.chardev", raising=False)
    monkeypatch.setitem(sys.modules, "RPi.GPIO", None)
    monkeypatch.setitem(sys.modules, "Jetson.GPIO", None)
    with pytest.raises(GpioError) as caught:
        open_backend()
    message = str(caught.value)
    assert "gpiod: libgpiod v2 Python bindings (gpiod) not installed" in message
    assert "rpigpio: no RPi.GPIO-compatible module" in message
    assert 'set gpio = "mock" on a desk' in message


def test_probing_without_gpio_chips_reports_the_chardev_backend_unavailable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("APPLIANCE_GPIO", raising=False)
    monkeypatch.setitem(sys.modules, "RPi.GPIO", None)
    monkeypatch.setitem(sys.modules, "Jetson.GPIO", None)
    if list(Path("/dev").glob("gpiochip*")):
        pytest.skip("this machine has GPIO chips")
    with pytest.raises(GpioError, match=r"gpiod: no /dev/gpiochip\* devices"):
        open_backend()
