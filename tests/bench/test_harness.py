"""The bench's harness (bench/harness): ports, JSON over HTTP, ending children, CPU load, the configs made
from examples/bench.toml, and the children it starts, on real sockets and processes."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import tomllib
import urllib.error
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from bench.harness import children
from bench.harness.http_json import get_json, post_json
from bench.harness.load import cpu_load
from bench.harness.ports import free_port, port_below_ephemeral
from bench.harness.sim import sim_world
from bench.harness.supervisor import supervisor
from bench.harness.worlds import CONTROL_PORT, EXAMPLE, WORLD_FILES, bench_world, world_config
from hal.gpio import mock


def test_the_journal_variable_is_the_one_the_mock_line_reads() -> None:
    assert children.JOURNAL_ENV == mock.JOURNAL_ENV


def test_a_supervisor_started_by_the_harness_journals_its_line_where_it_was_told(tmp_path: Path) -> None:
    config, journal = tmp_path / "appliance.toml", tmp_path / "journal"
    config.write_text('[safety]\nstop_line = { gpio = "mock", line = "STOP" }\n')
    with supervisor(config, tmp_path / "data", journal) as proc:
        assert mock.journal_owner(journal, "STOP") == proc.pid
    assert proc.returncode is not None and proc.stdout is not None and proc.stdout.closed


def test_free_ports_can_be_bound() -> None:
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    below = port_below_ephemeral()
    assert below < low
    for port in (free_port(), below):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))


@pytest.fixture
def server() -> Iterator[tuple[str, list[object]]]:
    """A loopback HTTP server: GET answers {"ok": true}, POST records its JSON body, /refuse is a 409."""
    posted: list[object] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self._answer(200, b'{"ok": true}')

        def do_POST(self) -> None:
            posted.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self._answer(409 if self.path == "/refuse" else 200, b"{}")

        def _answer(self, code: int, body: bytes) -> None:
            self.send_response(code)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/", posted
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_json_goes_both_ways_and_a_refusal_raises(server: tuple[str, list[object]]) -> None:
    url, posted = server
    assert get_json(url + "status") == {"ok": True}
    post_json(url + "camera", {"target": "line-cam", "action": "drop"})
    with pytest.raises(urllib.error.HTTPError):
        post_json(url + "refuse", {"action": "x"})
    assert posted == [{"target": "line-cam", "action": "drop"}, {"action": "x"}]


def test_ending_a_child_terminates_it_and_closes_its_pipe() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", "print('ready', flush=True); import time; time.sleep(60)"],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
    children.end(proc)
    assert proc.returncode == -15 and proc.stdout.closed


def _children() -> set[int]:
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == os.getpid() and fields[0] != "Z":
            found.add(int(stat.parent.name))
    return found


def test_cpu_load_runs_its_loops_only_inside_the_block() -> None:
    before = _children()
    with cpu_load(60, loops=2) as count:
        assert count == 2
        assert len(_children() - before) == 2
    assert _children() - before == set()


def test_the_bench_world_has_a_free_status_port_a_model_found_from_anywhere_and_our_safety() -> None:
    text = bench_world('[safety]\nstop_line = { gpio = "mock", line = "BENCH" }\n')
    config = tomllib.loads(text)
    assert config["http"]["listen"] == "127.0.0.1:0"
    assert config["safety"] == {"stop_line": {"gpio": "mock", "line": "BENCH"}}
    assert Path(config["qc"]["model"]).is_file()


@pytest.mark.parametrize("broker", [True, False])
def test_a_world_config_moves_the_worlds_ports_and_files_away(tmp_path: Path, broker: bool) -> None:
    text, moved = world_config(8123, broker, tmp_path)
    assert CONTROL_PORT in moved and set(moved) == {int(p) for p in moved}
    assert not any(str(port) in text for port in moved)
    assert WORLD_FILES not in text and str(tmp_path) in text
    config = tomllib.loads(text)
    assert config["http"]["listen"] == "127.0.0.1:8123"
    assert ("upstream" in config["bench"]) is broker
    assert EXAMPLE.is_file()


def test_sim_world_serves_until_the_block_ends() -> None:
    port = free_port()
    register = '[[bench.modbus_tcp.registers]]\ntable = "input"\naddress = 0\ndatatype = "int16"\n'
    register += 'signal = { type = "constant", value = 1.0 }\n'
    with sim_world(f'[[bench.modbus_tcp]]\nname = "t"\nport = {port}\n' + register) as folder:
        assert (folder / "world.toml").is_file()
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
