"""The bench's `babble` fault: an RTU slave that fills a share of its paced line's time with random bytes,
unasked, set and cleared through the fault API of a running `bench sim`."""

from __future__ import annotations

import json
import time
import urllib.error
from pathlib import Path

import pytest
import serial

from bench.harness.http_json import get_json, post_json
from bench.harness.ports import free_port
from bench.harness.sim import sim_world

CHAR_S = 10 / 19200  # 8N1


def world(control: int) -> str:
    return (
        f'[bench]\ncontrol = "127.0.0.1:{control}"\n'
        '[[bench.rtu_lines]]\nname = "line"\nlink = "{dir}/ttyB"\nbaudrate = 19200\n'
        "[[bench.rtu_lines.slaves]]\nunit = 4\n"
        '[[bench.rtu_lines.slaves.registers]]\ntable = "input"\naddress = 0\n'
        'signal = { type = "constant", value = 1.0 }\n'
    )


def heard(port: serial.Serial, seconds: float) -> bytes:
    out, end = bytearray(), time.monotonic() + seconds
    while time.monotonic() < end:
        out += port.read(4096)
    return bytes(out)


def test_a_babbling_slave_fills_its_share_of_the_line_until_cleared() -> None:
    control = free_port()
    faults = f"http://127.0.0.1:{control}/faults"
    with sim_world(world(control)) as folder:
        for bad in (1.5, -0.1, "lots", True):
            with pytest.raises(urllib.error.HTTPError) as refused:
                post_json(faults, {"target": "line/4", "babble": bad})
            assert refused.value.code == 400
            assert "babble: a share of the line's time from 0 to 1" in json.load(refused.value)["error"]
        port = serial.serial_for_url(str(Path(folder) / "ttyB"), baudrate=19200, timeout=0.05)
        try:
            assert heard(port, 0.3) == b""
            post_json(faults, {"target": "line/4", "babble": 0.3})
            assert get_json(faults) == {"line/4": {"babble": 0.3}}
            heard(port, 0.2)  # under way
            got = heard(port, 2.0)
            assert 0.7 * 0.3 * 2.0 / CHAR_S < len(got) < 1.1 * 0.3 * 2.0 / CHAR_S, len(got)
            assert len(set(got)) > 200  # random bytes, not a pattern
            post_json(f"{faults}/clear", {"target": "line/4"})
            heard(port, 0.2)  # what was on the wire still arrives
            assert heard(port, 0.5) == b""
        finally:
            port.close()
