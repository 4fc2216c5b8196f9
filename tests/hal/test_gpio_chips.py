"""The right GPIO chip on real boards: the header chip by its kernel label, not the first /dev/gpiochip, and
errors that name every chip found, tried on the chip listings of real boards and through the mock backend."""

from __future__ import annotations

from pathlib import Path

import pytest

from hal.boards import BOARDS, Board, detect_board
from hal.gpio import GpioError, GpioLineSettings
from hal.gpio.chips import ChipInfo, choose_chip, describe, line_offset, parse_listing, resolve
from hal.gpio.mock import CHIPS_ENV, MockChip, MockOutputLine, journal_chip, journal_owner, read_journal
from hal.sysroot import ROOT_ENV, SysRoot, default_root

FIXTURES = Path(__file__).parent / "fixtures"


def board(name: str) -> Board:
    return detect_board(SysRoot(FIXTURES / name))


def chips(name: str) -> tuple[ChipInfo, ...]:
    return parse_listing((FIXTURES / name / "gpiodetect.txt").read_text())


# gpiodetect on a Pi 5 once the kernel numbers the RP1 chip gpiochip0 (Raspberry Pi kernels from 6.6.47)
RPI5_RENUMBERED = """\
gpiochip0 [pinctrl-rp1] (54 lines)
gpiochip10 [gpio-brcmstb@107d508500] (32 lines)
gpiochip11 [gpio-brcmstb@107d508520] (4 lines)
gpiochip12 [gpio-brcmstb@107d517c00] (17 lines)
gpiochip13 [gpio-brcmstb@107d517c20] (6 lines)
"""


def test_a_listing_reads_like_gpiodetect_and_gpioinfo() -> None:
    pi5 = chips("rpi5")
    assert [str(c) for c in pi5][:2] == [
        "gpiochip0 (gpio-brcmstb@107d508500, 32 lines)",
        "gpiochip1 (gpio-brcmstb@107d508520, 4 lines)",
    ]
    rp1 = pi5[4]
    assert (rp1.path, rp1.name, rp1.label, rp1.lines) == ("/dev/gpiochip4", "gpiochip4", "pinctrl-rp1", 54)
    assert rp1.line_names[17] == "GPIO17" and rp1.line_names[33] == "" and len(rp1.line_names) == 54
    assert pi5[0].line_names == ()  # no gpioinfo block for it: names unknown


@pytest.mark.parametrize(
    ("fixture", "expected"),
    [
        ("rpi5", "gpiochip4"),  # the first chip is a BCM2712 bank, not the header
        ("rpi4b", "gpiochip0"),
        ("jetson-orin-nano", "gpiochip0"),
    ],
)
def test_no_chip_means_the_header_chip_by_its_label(fixture: str, expected: str) -> None:
    assert choose_chip(chips(fixture), None, board(fixture)).name == expected


def test_the_pi5_header_is_found_whatever_number_the_kernel_gives_it() -> None:
    assert choose_chip(parse_listing(RPI5_RENUMBERED), None, board("rpi5")).name == "gpiochip0"


def test_a_missing_header_chip_names_the_label_and_every_chip_found() -> None:
    with pytest.raises(GpioError) as caught:
        choose_chip(chips("rpi5")[:4], None, board("rpi5"))  # pinctrl-rp1 not probed (RP1 firmware, say)
    assert str(caught.value) == (
        "no GPIO chip labelled 'pinctrl-rp1' (the header of the Raspberry Pi 5); found: "
        "gpiochip0 (gpio-brcmstb@107d508500, 32 lines), gpiochip1 (gpio-brcmstb@107d508520, 4 lines), "
        "gpiochip2 (gpio-brcmstb@107d517c00, 17 lines), gpiochip3 (gpio-brcmstb@107d517c20, 6 lines)"
    )


@pytest.mark.parametrize("fixture", ["rk3588", "x86-pc"])
def test_a_board_without_a_header_chip_asks_for_one(fixture: str) -> None:
    listing = chips(fixture) if fixture == "rk3588" else ()
    with pytest.raises(GpioError, match="has no known header chip; set the line's chip") as caught:
        choose_chip(listing, None, board(fixture))
    if fixture == "rk3588":
        assert "gpiochip0 (gpio0, 32 lines)" in str(caught.value)
        assert "gpiochip5 (rk806-gpio, 3 lines)" in str(caught.value)
    else:
        assert "this board (x86_64 PC)" in str(caught.value) and "no GPIO chips at all" in str(caught.value)


def test_a_named_chip_is_found_by_path_name_or_label() -> None:
    pi5, rpi5 = chips("rpi5"), board("rpi5")
    for wanted in ("/dev/gpiochip4", "gpiochip4", "pinctrl-rp1"):
        assert choose_chip(pi5, wanted, rpi5).name == "gpiochip4"
    assert choose_chip(chips("rk3588"), "gpio3", board("rk3588")).name == "gpiochip3"
    with pytest.raises(GpioError, match=r"no GPIO chip '/dev/gpiochip9'; found: gpiochip0 \(gpio-brcmstb"):
        choose_chip(pi5, "/dev/gpiochip9", rpi5)


def test_two_chips_with_the_header_label_are_refused_not_guessed() -> None:
    twice = (ChipInfo("/dev/gpiochip0", "gpiochip0", "x", 8), ChipInfo("/dev/gpiochip1", "gpiochip1", "x", 8))
    with pytest.raises(GpioError, match="several GPIO chips 'x'"):
        choose_chip(twice, "x", board("rpi5"))


def test_lines_must_exist_on_the_chip() -> None:
    rp1 = chips("rpi5")[4]
    assert line_offset(rp1, 17) == 17 and line_offset(rp1, "GPIO17") == 17
    with pytest.raises(
        GpioError, match=r"gpiochip4 \(pinctrl-rp1, 54 lines\) has no line 54 \(offsets 0-53\)"
    ):
        line_offset(rp1, 54)
    with pytest.raises(GpioError, match="has no line named 'STOP'; its named lines: ID_SDA, ID_SCL, GPIO2"):
        line_offset(rp1, "STOP")
    with pytest.raises(GpioError, match=r"has no line named 'GPIO17' \(no named lines\)"):
        line_offset(chips("rpi5")[0], "GPIO17")


def test_a_line_error_names_every_chip_and_where_the_name_is() -> None:
    pi5 = chips("rpi5")
    with pytest.raises(GpioError) as caught:
        resolve(pi5, "gpiochip0", "GPIO17", board("rpi5"))
    message = str(caught.value)
    assert "'GPIO17' is on gpiochip4 (pinctrl-rp1, 54 lines)" in message
    assert message.endswith("; chips found: " + describe(pi5))
    assert resolve(pi5, None, "GPIO17", board("rpi5")) == (pi5[4], 17)


def test_the_board_table_names_the_header_chips_the_kernel_labels() -> None:
    labels = {spec.key: spec.gpio_chip for spec in BOARDS}
    assert {k: labels[k] for k in ("rpi5", "cm5", "rpi-bcm2712")} == dict.fromkeys(
        ("rpi5", "cm5", "rpi-bcm2712"), "pinctrl-rp1"
    )
    assert labels["rpi4b"] == labels["cm4"] == labels["rpi400"] == "pinctrl-bcm2711"
    assert labels["rpi3bplus"] == labels["rpi-zero2w"] == "pinctrl-bcm2835"
    assert labels["jetson-nano"] == "tegra-gpio"
    assert labels["jetson-orin-nano"] == labels["jetson-orin-nx"] == "tegra234-gpio"
    # headers wired to several chips: no single chip to guess
    assert (
        labels["rk3588"] is labels["rk3588s"] is labels["jetson-xavier-nx"] is labels["jetson-orin"] is None
    )


def test_the_hal_root_can_be_pointed_at_a_fixture_tree(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ROOT_ENV, raising=False)
    assert default_root().root == Path("/")
    monkeypatch.setenv(ROOT_ENV, str(FIXTURES / "rpi5"))
    assert detect_board(default_root()).spec.key == "rpi5"


def test_the_mock_picks_the_header_chip_of_the_board_it_is_told_about(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ROOT_ENV, str(FIXTURES / "rpi5"))
    monkeypatch.setenv(CHIPS_ENV, str(FIXTURES / "rpi5" / "gpiodetect.txt"))
    journal = tmp_path / "journal"
    chip = MockChip(journal)
    relay = chip.output(GpioLineSettings("GPIO17"))
    assert isinstance(relay, MockOutputLine)
    assert (relay.chip_info.name, relay.offset) == ("gpiochip4", 17)
    assert journal_chip(journal, "GPIO17") == "gpiochip4" and journal_owner(journal, "GPIO17") is not None
    with pytest.raises(GpioError, match="already requested"):
        chip.output(GpioLineSettings(17))  # the same line of the same chip, by its offset
    relay.set(True)
    relay.close()
    assert [t.level for t in read_journal(journal)] == [0, 1, 0]
    other = chip.output(GpioLineSettings(3, chip="/dev/gpiochip1"))  # a named chip wins over the header
    assert isinstance(other, MockOutputLine)
    assert (other.chip_info.name, other.offset) == ("gpiochip1", 3)


@pytest.mark.parametrize(
    ("settings", "error"),
    [
        (GpioLineSettings(17, chip="pinctrl-bcm2711"), "no GPIO chip 'pinctrl-bcm2711'; found: gpiochip0"),
        (GpioLineSettings(60), r"gpiochip4 \(pinctrl-rp1, 54 lines\) has no line 60"),
        (GpioLineSettings("STOP"), "has no line named 'STOP'"),
        (GpioLineSettings(3, chip="gpiochip3"), None),
    ],
)
def test_the_mock_refuses_chips_and_lines_the_board_does_not_have_before_requesting_anything(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, settings: GpioLineSettings, error: str | None
) -> None:
    journal = tmp_path / "journal"
    chip = MockChip(journal, chips=chips("rpi5"), root=SysRoot(FIXTURES / "rpi5"))
    if error is None:
        chip.output(settings).close()
        assert journal_chip(journal, settings.line) == "gpiochip3"
        return
    with pytest.raises(GpioError, match=error):
        chip.output(settings)
    with pytest.raises(GpioError, match=error):
        chip.input(settings)
    assert journal.read_text() == "" and chip.transitions == []


def test_the_desk_mock_is_one_chip_with_lines_of_any_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(CHIPS_ENV, raising=False)
    monkeypatch.setenv(ROOT_ENV, str(FIXTURES / "x86-pc"))  # a desk has no header chip: the mock is the chip
    chip = MockChip()
    assert [str(c) for c in chip.chips] == ["gpiochip0 (gpio-mock, 64 lines)"]
    chip.output(GpioLineSettings("STOP")).close()
    chip.output(GpioLineSettings("STOP", chip="gpio-mock")).close()
    with pytest.raises(
        GpioError, match=r"no GPIO chip 'pinctrl-rp1'; found: gpiochip0 \(gpio-mock, 64 lines\)"
    ):
        chip.output(GpioLineSettings("STOP", chip="pinctrl-rp1"))


@pytest.mark.hil
def test_on_a_real_board_the_kernel_lists_its_header_chip() -> None:
    from hal.gpio import chardev

    found = chardev.list_chips()
    assert found and all(c.lines == len(c.line_names) for c in found)
    header = detect_board(SysRoot("/")).spec.gpio_chip
    if header is not None:
        assert choose_chip(found, None, detect_board(SysRoot("/"))).label == header
