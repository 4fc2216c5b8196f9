"""`bench sim` with `[bench.upstream]`: its own mosquitto and the receiver, reachable like a fleet's."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from appliance.sync.codec import BatchHeader, encode_events
from bench.harness.sim import sim_world
from bench.upstream.broker import find_mosquitto
from tests.conftest import ROOT, free_port

pytestmark = pytest.mark.skipif(find_mosquitto() is None, reason="needs mosquitto")


def test_bench_sim_runs_a_broker_and_a_receiver(tmp_path: Path) -> None:
    port, ledger = free_port(), tmp_path / "ledger.db"
    world = f'[bench]\nupstream = {{ mqtt = "127.0.0.1:{port}", ledger = "{ledger}" }}\n'
    header = BatchHeader("box-9", "0123456789abcdef", "events", "critical", 1, 5, 5, 1, 0, 1.8e9)
    payload = encode_events(header, [(5, 1.8e9, "estop.trip", "critical", "api", "manual", "{}")], 3)
    with sim_world(world):
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="test-publisher")
        client.connect("127.0.0.1", port)
        client.loop_start()
        client.publish("edge/box-9/events/critical", payload, qos=1).wait_for_publish(5)
        client.disconnect()
        client.loop_stop()
        deadline = time.monotonic() + 10
        while True:
            report = subprocess.run(
                [sys.executable, "-m", "bench", "upstream", "--report", "--db", str(ledger)],
                capture_output=True, text=True, cwd=ROOT, check=True,
            )  # fmt: skip
            found = json.loads(report.stdout)
            if found["unique_records"] == 1 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
    assert found["unique_records"] == 1 and found["bad_batches"] == 0, found
