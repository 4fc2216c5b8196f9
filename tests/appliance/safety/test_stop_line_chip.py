"""`appliance safety` on fixture boards whose first gpiochip is not the header: with no chip configured it
drives the header chip's line, and a chip or line the board does not have stops it before it requests any
line or writes any file, naming the chips it found."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from hal.gpio.mock import CHIPS_ENV, JOURNAL_ENV, journal_chip, journal_owner
from hal.sysroot import ROOT_ENV
from tests.appliance.safety.processes import run_supervisor, safety_toml, start_supervisor, wait_level

FIXTURES = Path(__file__).resolve().parents[2] / "hal" / "fixtures"


def board_env(fixture: str, journal: Path | None = None) -> dict[str, str]:
    env = {ROOT_ENV: str(FIXTURES / fixture), CHIPS_ENV: str(FIXTURES / fixture / "gpiodetect.txt")}
    return env | ({JOURNAL_ENV: str(journal)} if journal else {})


def stop_line(line: str) -> str:
    return safety_toml().replace('stop_line = { gpio = "mock", line = "STOP" }', f"stop_line = {line}")


@pytest.mark.parametrize("line", ["17", '"GPIO17"'])
def test_the_supervisor_drives_the_header_chip_of_a_pi5_not_its_first_chip(tmp_path: Path, line: str) -> None:
    toml = stop_line(f'{{ gpio = "mock", line = {line} }}')
    sup = start_supervisor(tmp_path, toml, env=board_env("rpi5"))
    try:
        key = line.strip('"')
        assert journal_chip(sup.journal, key) == "gpiochip4"  # pinctrl-rp1; gpiochip0 is a BCM2712 bank
        assert journal_owner(sup.journal, key) == sup.proc.pid
        wait_level(sup, 0)
    finally:
        assert sup.stop() == 0


@pytest.mark.parametrize(
    ("fixture", "line", "said"),
    [
        (
            "rpi5",
            '{ gpio = "mock", line = 17, chip = "pinctrl-bcm2711" }',  # a Pi 4 config on a Pi 5
            "no GPIO chip 'pinctrl-bcm2711'; found: gpiochip0 (gpio-brcmstb@107d508500, 32 lines)",
        ),
        ("rpi5", '{ gpio = "mock", line = 54 }', "gpiochip4 (pinctrl-rp1, 54 lines) has no line 54"),
        (
            "rpi5",
            '{ gpio = "mock", line = "STOP" }',
            "gpiochip4 (pinctrl-rp1, 54 lines) has no line named 'STOP'",
        ),
        (
            "rk3588",
            '{ gpio = "mock", line = 5 }',
            "this board (Rockchip RK3588 board) has no known header chip",
        ),
    ],
)
def test_a_chip_or_line_the_board_lacks_stops_the_supervisor_before_it_touches_anything(
    tmp_path: Path, fixture: str, line: str, said: str
) -> None:
    config, data, journal = tmp_path / "appliance.toml", tmp_path / "data", tmp_path / "journal"
    config.write_text(stop_line(line))
    result = run_supervisor(config, data, {**os.environ, **board_env(fixture, journal)})
    assert result.returncode == 1, result.stderr
    assert "appliance safety: cannot start: " in result.stderr and said in result.stderr
    for chip in (
        ("gpiochip0", "gpiochip4") if fixture == "rpi5" else ("gpiochip0 (gpio0", "gpiochip5 (rk806-gpio")
    ):
        assert chip in result.stderr  # every chip found, with its label
    assert not journal.exists() or journal.read_text() == ""  # no line was requested, none driven
    assert not (data / "safety.key").exists()
