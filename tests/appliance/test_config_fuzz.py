"""Hostile config files: nesting and size extremes, random TOML values in random places of a valid config,
random bytes, files that never end. `appliance check-config` either accepts a file or exits 2 with one
`FILE: ...` line per mistake, never a traceback; `appliance run` refuses such a file before it creates its
data directory."""

from __future__ import annotations

import datetime
import io
import json
import math
import os
import tomllib
from collections.abc import Callable
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from appliance.cli.main import check_config
from appliance.config.loader import DEFAULT_CONFIG, ConfigError, load_config
from appliance.safety.settings import SettingsError, read_settings
from appliance.tomlfile import MAX_CONFIG_BYTES, MAX_DEPTH
from bench.config import load_bench_config
from tests.appliance.test_config import appliance_command
from tests.appliance.test_config import check_config as subprocess_check

TempPaths = pytest.TempPathFactory

LONGEST_LINE = 600  # a message a person reads: a huge value or key is cut, not echoed whole

# the embedded default without its [bench] world (checked by a child process; the fuzz stays in process)
VALID: dict[str, Any] = {k: v for k, v in tomllib.loads(DEFAULT_CONFIG.read_text()).items() if k != "bench"}

FUZZ = settings(
    max_examples=150, deadline=None, database=None, suppress_health_check=list(HealthCheck)
)  # fmt: skip


def toml(value: Any) -> str:
    """`value` as a TOML value: tables inline, so a whole document is `key = value` lines."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return "nan" if math.isnan(value) else repr(value)
    if isinstance(value, str):  # JSON's escapes are TOML's, but TOML wants DEL escaped too
        return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")
    if isinstance(value, datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, list):
        return "[" + ", ".join(toml(v) for v in value) + "]"
    assert isinstance(value, dict)
    return "{" + ", ".join(f"{toml(str(k))} = {toml(v)}" for k, v in value.items()) + "}"


def document(table: dict[str, Any]) -> str:
    return "".join(f"{toml(k)} = {toml(v)}\n" for k, v in table.items())


def checked(path: Path) -> tuple[int, list[str]]:
    """What `appliance check-config` does, in process: its exit code and its error lines, which must each
    name the file and be short enough to read."""
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = check_config(path)
    lines = err.getvalue().splitlines()
    assert code in (0, 2), (code, lines)
    if code == 0:
        assert out.getvalue() == f"{path}: ok\n"
    else:
        assert lines
    for line in lines:
        assert line.startswith(f"{path}: "), line[:200]
        assert len(line) <= LONGEST_LINE, line[:200]
        assert "Traceback" not in line
    return code, lines


scalars = (
    st.booleans()
    | st.integers()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats()
    | st.text(max_size=40)
    | st.datetimes(timezones=st.none() | st.just(datetime.UTC))
    | st.dates()
    | st.times()
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=20,
)


def nested(kind: str, depth: int) -> str:
    """A value nested `depth` deep, as TOML text."""
    if kind == "array":
        return "[" * depth + "1" + "]" * depth
    if kind == "inline":
        return "{a = " * depth + "1" + "}" * depth
    if kind == "mixed":
        return "[{a = " * (depth // 2) + "1" + "}]" * (depth // 2)
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["array", "inline", "mixed"])
@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 300, 2000, 20000])
def test_values_nested_too_deeply_are_refused_with_a_message(tmp_path: Path, kind: str, depth: int) -> None:
    path = tmp_path / "deep.toml"
    path.write_text(f'[device]\nid = "box"\n[store]\npath = {nested(kind, depth)}\n')
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert len(caught.value.lines) == 1
    assert caught.value.lines[0].startswith(f"{path}: ")
    assert f"nested more than {MAX_DEPTH} levels deep" in caught.value.lines[0]
    assert checked(path)[0] == 2


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 5000])
def test_tables_nested_too_deeply_are_refused_with_their_key(tmp_path: Path, depth: int) -> None:
    dotted = tmp_path / "dotted.toml"
    dotted.write_text("x." + ".".join(["a"] * depth) + " = 1\n")
    header = tmp_path / "header.toml"
    header.write_text("[x." + ".".join(["a"] * depth) + "]\nb = 1\n")
    for path in (dotted, header):
        with pytest.raises(ConfigError) as caught:
            load_config(path)
        line = caught.value.lines[0]
        assert line.startswith(f"{path}: x.a.a.a"), line[:200]
        assert f"nested more than {MAX_DEPTH} levels deep" in line
        assert len(line) <= LONGEST_LINE


def test_nesting_up_to_the_limit_is_left_to_the_settings(tmp_path: Path) -> None:
    path = tmp_path / "limit.toml"
    path.write_text(f"[store]\npath = {nested('array', MAX_DEPTH - 1)}\n")  # the table, then the arrays
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    shown = "[" * 31 + "1" + "]" * 28  # of 63 characters, the first 60
    expected = f"{path}: store.path: expected a string, got array {shown}... (63 characters)"
    assert caught.value.lines == [expected]


def test_huge_values_and_keys_are_cut_in_the_message(tmp_path: Path) -> None:
    path = tmp_path / "big.toml"
    key = "k" * 100_000
    long_id, long_array = "x" * 500_000, "1, " * 50_000
    path.write_text(f'[device]\nid = "{long_id}"\n[store]\n{key} = 1\ncommit_interval_ms = [{long_array}]\n')
    code, lines = checked(path)
    assert code == 2
    assert len(lines) == 3
    assert any(line.startswith(f"{path}: device.id: ") for line in lines)
    assert any(line.startswith(f"{path}: store.kkkk") and "unknown key" in line for line in lines)
    assert any("expected an integer, got array [1, 1, 1" in line for line in lines)


def test_non_finite_numbers_are_refused_where_a_number_is_expected(tmp_path: Path) -> None:
    raw = tomllib.loads(DEFAULT_CONFIG.read_text())
    raw.pop("bench")
    raw["safety"]["rules"][0]["above"] = math.nan
    raw["devices"]["tank-1"]["registers"][0]["scale"] = math.inf
    path = tmp_path / "nan.toml"
    path.write_text(document(raw))
    code, lines = checked(path)
    assert code == 2
    assert f"{path}: safety.rules[0].above: must be a finite number, got nan" in lines
    assert f"{path}: devices.tank-1.registers[0].scale: must be a finite number, got inf" in lines


def test_the_fuzz_serialiser_round_trips_the_default() -> None:
    assert tomllib.loads(document(VALID)) == VALID


def put_a_random_value(raw: Any, data: Any) -> None:
    """Walk down to a random table or array of `raw`, then set, replace or add a random value in it."""
    node: Any = raw
    while True:
        keys = list(node) if isinstance(node, dict) else list(range(len(node)))
        if not keys or data.draw(st.booleans()):
            break
        key = data.draw(st.sampled_from(keys))
        if not isinstance(node[key], dict | list):
            break
        node = node[key]
    value = data.draw(values)
    if isinstance(node, dict):
        key = data.draw(st.sampled_from(list(node)) | st.text(max_size=12)) if node else data.draw(st.text())
        node[key] = value
    elif node and data.draw(st.booleans()):
        node[data.draw(st.integers(0, len(node) - 1))] = value
    else:
        node.append(value)


@given(data=st.data())
@FUZZ
def test_a_random_value_anywhere_in_a_valid_config(tmp_path_factory: TempPaths, data: Any) -> None:
    raw = json.loads(json.dumps(VALID))  # a deep copy (the default has no dates)
    put_a_random_value(raw, data)
    path = tmp_path_factory.mktemp("fuzz") / "appliance.toml"
    path.write_text(document(raw))
    checked(path)


@given(data=st.data())
@FUZZ
def test_a_random_value_anywhere_in_the_bench_world(tmp_path_factory: TempPaths, data: Any) -> None:
    """The [bench] table, which `check-config` has `bench sim --check` judge with the same plumbing."""
    raw = {"bench": tomllib.loads(DEFAULT_CONFIG.read_text())["bench"]}
    put_a_random_value(raw, data)
    path = tmp_path_factory.mktemp("fuzz") / "appliance.toml"
    path.write_text(document(raw))
    try:
        load_bench_config(path)
    except ConfigError as exc:
        for line in exc.lines:
            assert line.startswith(f"{path}: ") and len(line) <= LONGEST_LINE, line[:200]


@given(data=st.data())
@FUZZ
def test_a_random_value_anywhere_in_what_the_supervisor_reads(tmp_path_factory: TempPaths, data: Any) -> None:
    """`appliance safety` reads its keys of [safety] without the config models, by hand."""
    raw = {"safety": json.loads(json.dumps(VALID["safety"]))}
    put_a_random_value(raw, data)
    try:
        read_settings(tomllib.loads(document(raw)), "appliance.toml")
    except SettingsError as exc:
        assert exc.lines
        for line in exc.lines:
            assert line.startswith("appliance.toml: ") and len(line) <= LONGEST_LINE, line[:200]
            assert len(line.splitlines()) == 1, line


@given(table=st.dictionaries(st.text(max_size=12), values, max_size=6))
@FUZZ
def test_random_documents(tmp_path_factory: TempPaths, table: dict[str, Any]) -> None:
    path = tmp_path_factory.mktemp("fuzz") / "appliance.toml"
    path.write_text(document(table))
    checked(path)


@given(blob=st.binary(max_size=2000))
@FUZZ
def test_random_bytes(tmp_path_factory: TempPaths, blob: bytes) -> None:
    path = tmp_path_factory.mktemp("fuzz") / "appliance.toml"
    path.write_bytes(blob)
    checked(path)


@given(
    kind=st.sampled_from(["array", "inline", "mixed"]),
    depth=st.integers(1, 3000),
    where=st.sampled_from(["store.path", "device.id", "http.listen", "x.y", "safety.rules"]),
)
@FUZZ
def test_nesting_anywhere(tmp_path_factory: TempPaths, kind: str, depth: int, where: str) -> None:
    table, key = where.split(".")
    path = tmp_path_factory.mktemp("fuzz") / "appliance.toml"
    path.write_text(f"[{table}]\n{key} = {nested(kind, depth)}\n")
    code, lines = checked(path)
    assert code == 2
    levels = 1 + (2 * (depth // 2) if kind == "mixed" else depth)  # the table, then the values
    assert any("nested more than" in line for line in lines) == (levels > MAX_DEPTH)


@given(size=st.integers(0, 3 * MAX_CONFIG_BYTES), count=st.integers(0, 20_000))
@settings(max_examples=12, deadline=None, database=None, suppress_health_check=list(HealthCheck))
def test_size_extremes(tmp_path_factory: TempPaths, size: int, count: int) -> None:
    path = tmp_path_factory.mktemp("fuzz") / "appliance.toml"
    keys = "".join(f"k{i} = {i}\n" for i in range(count))
    path.write_text(f'[device]\nid = "{"x" * size}"\n[store]\n{keys}')
    code, lines = checked(path)
    assert code == 2 or count == 0  # every k is an unknown key; a short id alone is a valid config
    if path.stat().st_size > MAX_CONFIG_BYTES:
        assert lines == [f"{path}: {path.stat().st_size} bytes; a config file may be at most 1 MiB"]


def fifo(tmp_path: Path) -> Path:
    path = tmp_path / "fifo.toml"
    os.mkfifo(path)
    return path


def big(tmp_path: Path) -> Path:
    path = tmp_path / "big.toml"
    path.write_text("# " + "x" * MAX_CONFIG_BYTES + "\n")
    return path


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda _: Path("/dev/zero"), "not a regular file (a character device)"),
        (fifo, "not a regular file (a FIFO)"),
        (big, f"{MAX_CONFIG_BYTES + 3} bytes; a config file may be at most 1 MiB"),
    ],
)
def test_files_that_never_end_are_refused_unread(
    tmp_path: Path, make: Callable[[Path], Path], expected: str
) -> None:
    path = make(tmp_path)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert caught.value.lines == [f"{path}: {expected}"]
    result = subprocess_check(path)  # a FIFO with no writer: refused, not waited on
    assert (result.returncode, result.stderr) == (2, f"{path}: {expected}\n")


@pytest.mark.parametrize(
    "text",
    [
        f"[store]\npath = {nested('array', 5000)}\n",
        f"[store]\npath = {nested('inline', 400)}\n",
        "[x." + ".".join(["a"] * 5000) + "]\n",
        "a = 1\n\x00\x1b[2J",
        "\udcff\udcfe garbage",  # bytes that are no UTF-8
    ],
)
def test_check_config_and_run_exit_2_without_a_traceback(tmp_path: Path, text: str) -> None:
    path = tmp_path / "hostile.toml"
    path.write_bytes(text.encode("utf-8", "surrogateescape"))
    result = subprocess_check(path)
    assert result.returncode == 2, result.stderr[-2000:]
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith(f"{path}: ")
    assert len(result.stderr.splitlines()) == 1
    data = tmp_path / "data"
    run = appliance_command("run", "--config", str(path), "--data-dir", str(data))
    assert (run.returncode, run.stderr) == (2, result.stderr)
    assert not data.exists()
    supervisor = appliance_command("safety", "--config", str(path), "--data-dir", str(data))
    assert (supervisor.returncode, supervisor.stderr) == (2, result.stderr)
    assert not data.exists()
