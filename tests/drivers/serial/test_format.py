"""SerialFormat: the character format a serial sensor's line and an RTU bus share, checked once."""

from __future__ import annotations

import pytest
import serial

from drivers.serial.format import Parity, SerialFormat, StopBits


def test_character_time_counts_start_parity_and_stop_bits() -> None:
    assert SerialFormat(19200).char_time_s == pytest.approx(10 / 19200)  # 8N1
    assert SerialFormat(9600, 7, Parity.EVEN, StopBits.TWO).char_time_s == pytest.approx(11 / 9600)
    assert SerialFormat(9600).wire_time_s(96) == pytest.approx(0.1)


def test_pyserial_opens_a_port_in_the_format() -> None:
    fmt = SerialFormat(19200, 7, Parity.ODD, StopBits.TWO)
    port = serial.serial_for_url("loop://", **fmt.pyserial(), timeout=0.1)
    try:
        assert (port.baudrate, port.bytesize, port.parity, port.stopbits) == (19200, 7, "O", 2)
    finally:
        port.close()


def test_plain_values_become_the_enums() -> None:
    fmt = SerialFormat(9600, 8, "E", 2)  # type: ignore[arg-type]  # as a config file spells them
    assert fmt.parity is Parity.EVEN and fmt.stopbits is StopBits.TWO
    assert fmt == SerialFormat(9600, 8, Parity.EVEN, StopBits.TWO)


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [({"bytesize": 9}, "bytesize"), ({"baudrate": 0}, "baudrate"), ({"parity": "X"}, "Parity")],
)
def test_a_bad_format_is_refused(kwargs: dict[str, object], error: str) -> None:
    with pytest.raises(ValueError, match=error):
        SerialFormat(**kwargs)  # type: ignore[arg-type]
