"""The config loader and `appliance check-config`: every mistake, with its key path, exit 2."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from appliance.config import ConfigError, ModbusTcpDeviceSettings, load_config
from appliance.config.loader import DEFAULT_CONFIG
from drivers.modbus.registers import ByteOrder, DataType, Table
from tests.conftest import ROOT

DEVICE = """
[devices.d1]
type = "modbus_tcp"
host = "127.0.0.1"
[[devices.d1.registers]]
channel = "t"
table = "input"
address = 0
"""


def errors_of(tmp_path: Path, text: str) -> list[str]:
    path = tmp_path / "bad.toml"
    path.write_text(textwrap.dedent(text))
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    for line in caught.value.lines:
        assert line.startswith(f"{path}: "), line
    return [line.removeprefix(f"{path}: ") for line in caught.value.lines]


def test_the_embedded_default_is_valid() -> None:
    config = load_config(DEFAULT_CONFIG)
    press = config.devices["press-1"]
    assert isinstance(press, ModbusTcpDeviceSettings)
    assert press.port == 15020
    points = {p.channel: p for p in press.register_map().points}
    assert points["oil_temperature"].datatype is DataType.FLOAT32
    assert points["stroke_count"].word_order is ByteOrder.LITTLE
    assert points["pump_running"].table is Table.DISCRETE_INPUT
    assert config.bench is not None


def test_defaults_fill_what_is_left_out(tmp_path: Path) -> None:
    path = tmp_path / "min.toml"
    path.write_text("")
    config = load_config(path)
    assert config.http.listen == "127.0.0.1:8080"
    assert config.store.path == "appliance.db"
    assert config.devices == {}
    assert config.bench is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("colour = 1", "colour: unknown key"),
        ("[store]\nfolder = 'x'", "store.folder: unknown key"),
        (
            "[store]\ncommit_interval_ms = 'fast'",
            "store.commit_interval_ms: expected an integer, got string 'fast'",
        ),
        ("[store]\ncommit_interval_ms = 0", "store.commit_interval_ms: out of range: must be >= 1, got 0"),
        ("[http]\nlisten = 'localhost'", "http.listen: expected HOST:PORT"),
        ("[device]\nid = 'has space'", "device.id: 'has space' does not match the pattern"),
        ("store = 3", "store: expected a table, got integer 3"),
        (DEVICE.replace('host = "127.0.0.1"', ""), "devices.d1.host: missing (required)"),
        (DEVICE.replace("modbus_tcp", "modbus_rtux"), "devices.d1.type: unknown type 'modbus_rtux'"),
        (DEVICE.replace('type = "modbus_tcp"', ""), "devices.d1: missing key 'type'"),
        (DEVICE + "port = 70000", "devices.d1.registers[0].port: unknown key"),
        (
            DEVICE.replace("address = 0", "address = -1"),
            "devices.d1.registers[0].address: out of range: must be >= 0",
        ),
        (DEVICE.replace('"input"', '"inputs"'), "devices.d1.registers[0].table: must be one of"),
        (
            DEVICE.replace('"input"', '"coil"') + "datatype = 'float32'",
            "devices.d1.registers[0]: a coil is one bit",
        ),
        (
            DEVICE + DEVICE.split("[[devices.d1.registers]]")[1].join(["[[devices.d1.registers]]", ""]),
            "devices.d1: channel 't' is defined twice",
        ),
        (DEVICE.replace("address = 0", "address = 65535\ndatatype = 'float32'"), "runs past register 65535"),
    ],
)
def test_each_kind_of_mistake_names_its_key(tmp_path: Path, text: str, expected: str) -> None:
    errors = errors_of(tmp_path, text)
    assert any(expected in e for e in errors), errors


def test_overlapping_registers_are_refused(tmp_path: Path) -> None:
    text = DEVICE.replace("address = 0", "address = 0\ndatatype = 'float32'") + (
        "[[devices.d1.registers]]\nchannel = 'u'\ntable = 'input'\naddress = 1\n"
    )
    assert errors_of(tmp_path, text) == ["devices.d1: 'u' overlaps 't' in the input table at address 1"]


def test_every_mistake_is_reported_at_once(tmp_path: Path) -> None:
    text = """
        bogus = true
        [http]
        listen = 8080
        [store]
        batch_max = 0
        [devices.d1]
        type = "modbus_tcp"
        host = "h"
        port = "502"
        registers = []
    """
    assert sorted(errors_of(tmp_path, text)) == sorted(
        [
            "bogus: unknown key",
            "http.listen: expected a string, got integer 8080",
            "store.batch_max: out of range: must be >= 1, got 0",
            "devices.d1.port: expected an integer, got string '502'",
            "devices.d1.registers: array should have at least 1 item after validation, not 0",
        ]
    )


def test_file_problems_are_config_errors(tmp_path: Path) -> None:
    cases = {
        tmp_path / "missing.toml": "file not found",
        tmp_path: "is a directory",
    }
    (tmp_path / "binary.toml").write_bytes(b"\xff\xfe\x00")
    cases[tmp_path / "binary.toml"] = "not UTF-8 text"
    (tmp_path / "broken.toml").write_text("[store\npath = 1\n")
    cases[tmp_path / "broken.toml"] = "not valid TOML"
    for path, expected in cases.items():
        with pytest.raises(ConfigError) as caught:
            load_config(path)
        assert caught.value.lines[0].startswith(f"{path}: {expected}"), caught.value.lines


def appliance_command(*args: str) -> subprocess.CompletedProcess[str]:
    """`python -m appliance ARGS` from the repository, its output captured, bounded in time."""
    return subprocess.run(
        [sys.executable, "-m", "appliance", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
        timeout=60,
    )


def check_config(path: Path) -> subprocess.CompletedProcess[str]:
    return appliance_command("check-config", str(path))


def test_check_config_accepts_a_valid_file() -> None:
    result = check_config(DEFAULT_CONFIG)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"{DEFAULT_CONFIG}: ok"


def test_check_config_reports_appliance_and_bench_mistakes_and_exits_2(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(
        DEVICE + "\n[store]\ncommit_interval_ms = -5\n"
        "[[bench.modbus_tcp]]\nname = 'x'\nport = 'one'\nregisters = []\n"
    )
    result = check_config(path)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        f"{path}: store.commit_interval_ms: out of range: must be >= 1, got -5",
        f"{path}: bench.modbus_tcp[0].port: expected an integer, got string 'one'",
        f"{path}: bench.modbus_tcp[0].registers: array should have at least 1 item after validation, not 0",
    ]


def test_check_config_on_a_file_that_is_not_toml(tmp_path: Path) -> None:
    path = tmp_path / "x.toml"
    path.write_text("this is = = not toml")
    result = check_config(path)
    assert result.returncode == 2
    assert result.stderr.startswith(f"{path}: not valid TOML")
    assert len(result.stderr.splitlines()) == 1


def test_run_with_a_bad_config_exits_2_before_touching_state(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("[store]\npath = 3\n")
    data = tmp_path / "data"
    result = subprocess.run(
        [sys.executable, "-m", "appliance", "run", "--config", str(path), "--data-dir", str(data)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr.strip() == f"{path}: store.path: expected a string, got integer 3"
    assert not data.exists()
