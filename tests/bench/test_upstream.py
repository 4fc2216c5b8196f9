"""The bench's upstream receiver against a real mosquitto and real HTTP(S) clients, and its own decoder."""

from __future__ import annotations

import http.client
import json
import random
import signal
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
import zstandard
from paho.mqtt.enums import CallbackAPIVersion

from appliance.sync.codec import (
    BatchFormatError,
    BatchHeader,
    decode,
    encode_events,
    encode_evidence,
    encode_readings,
)
from bench.upstream.batches import BadBatch, parse
from bench.upstream.broker import Mosquitto, TlsListener, find_mosquitto
from bench.upstream.certs import Certificates, make_certificates
from bench.upstream.receiver import Receiver, Tls
from bench.upstream.rig import SyncRig
from tests.appliance.sync.test_codec import bench_shaped, modbus_shaped, synthetic
from tests.appliance.sync.test_codec_refusals import head_bytes, sealed, zstd
from tests.conftest import ROOT, free_port

HOST = "127.0.0.1"


def batch(
    seq: int, ids: list[int], klass: str = "normal", device: str = "press-1", thinned: int = 0
) -> bytes:
    rows: list[Any] = [(i, device, "oil_temperature", "degC", 1795324473.0 + i, 40.0 + i / 8, 0) for i in ids]
    header = BatchHeader(
        device, "store-a", "readings", klass, seq, ids[0], ids[-1], len(ids), thinned, time.time()
    )
    return encode_readings(header, rows, 3)


def wait_for(
    receiver: Receiver, done: Callable[[dict[str, Any]], bool], timeout: float = 10.0
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while not done(report := receiver.report()):
        if time.monotonic() > deadline:
            raise AssertionError(f"not reached within {timeout} s: {json.dumps(report, indent=1)}")
        time.sleep(0.02)
    return report


class Publisher:
    """The appliance's side, reduced to what matters here: QoS 1 publishes on a paho client."""

    def __init__(self, port: int, tls: Tls | None = None, client_id: str = "appliance-press-1") -> None:
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv311)
        if tls is not None:
            self.client.tls_set(
                str(tls.ca), str(tls.cert) if tls.cert else None, str(tls.key) if tls.key else None
            )
        self.connected = threading.Event()
        self.client.on_connect = self._connected
        self.client.connect_async(HOST, port)
        self.client.loop_start()

    def _connected(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, properties: Any
    ) -> None:
        if not reason.is_failure:
            self.connected.set()

    def publish(self, topic: str, payload: bytes | str, retain: bool = False) -> None:
        assert self.connected.wait(5), "publisher not connected"
        self.client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(5)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    if find_mosquitto() is None:
        pytest.skip("mosquitto is not installed (Debian: apt-get install mosquitto)")
    server = Mosquitto(tmp_path / "broker", free_port())
    server.start()
    yield server
    server.kill()


@pytest.fixture
def receivers(tmp_path: Path) -> Iterator[Callable[..., Receiver]]:
    """Starts receivers on one ledger; stops whichever are still running at the end."""
    started: list[Receiver] = []

    def start(**options: Any) -> Receiver:
        receiver = Receiver(tmp_path / "ledger.db", **options)
        receiver.start()
        started.append(receiver)
        return receiver

    yield start
    for receiver in started:
        if not receiver.stopped:
            receiver.stop()


def test_mqtt_batches_are_counted_with_duplicates_gaps_order_and_bad_ones(
    broker: Mosquitto, receivers: Callable[..., Receiver]
) -> None:
    receiver = receivers(mqtt_address=(HOST, broker.port))
    appliance = Publisher(broker.port)
    topic = "edge/press-1/readings/normal"
    appliance.publish("edge/press-1/status", "online", retain=True)
    appliance.publish(topic, batch(1, [1, 2, 3]))
    appliance.publish(topic, batch(2, [5, 6], thinned=4))
    appliance.publish(topic, batch(2, [5, 6], thinned=4))  # at least once: the same batch again
    appliance.publish(topic, b"not a batch at all")
    appliance.publish("edge/press-1/readings/critical", batch(3, [7]))  # the topic names another class
    appliance.publish(topic, batch(5, [4, 9]))  # seq 3 and 4 never come; id 4 arrives after 5 and 6
    appliance.publish("edge/press-1/events/critical", encode_events(
        BatchHeader("press-1", "store-a", "events", "critical", 1, 8, 8, 1, 0, 1.0),
        [(8, 1795324474.2, "estop.trip", "critical", "safety", "trip", "{}")], 19))  # fmt: skip
    report = wait_for(receiver, lambda r: r["batches"] == 5 and r["bad_batches"] == 2)
    appliance.close()
    readings = report["streams"]["press-1/store-a/readings/normal"]
    assert {k: readings[k] for k in ("batches", "duplicate_batches", "records", "unique_records")} == {
        "batches": 4, "duplicate_batches": 1, "records": 9, "unique_records": 7}  # fmt: skip
    assert readings["duplicate_records"] == 2 and readings["thinned"] == 4
    assert readings["missing_seqs"] == [3, 4] and readings["order_violations"] == 1
    assert report["streams"]["press-1/store-a/events/critical"]["records"] == 1
    assert "topic says press-1/readings/critical but the batch is press-1/readings/normal" in report["errors"]
    assert any("magic" in error for error in report["errors"])
    assert report["status"]["press-1"]["status"] == "online"


def test_batches_published_while_the_receiver_is_away_arrive_when_it_is_back(
    broker: Mosquitto, receivers: Callable[..., Receiver]
) -> None:
    receivers(mqtt_address=(HOST, broker.port)).stop()  # its session, with the subscriptions, stays
    appliance = Publisher(broker.port)
    for seq in range(1, 6):
        appliance.publish("edge/press-1/readings/normal", batch(seq, [seq * 10, seq * 10 + 1]))
    appliance.close()
    report = wait_for(receivers(mqtt_address=(HOST, broker.port)), lambda r: r["batches"] == 5)
    assert report["unique_records"] == 10 and report["missing_seqs"] == 0


def test_a_broker_restart_keeps_the_queued_batches(
    broker: Mosquitto, receivers: Callable[..., Receiver]
) -> None:
    receivers(mqtt_address=(HOST, broker.port)).stop()
    appliance = Publisher(broker.port)
    for seq in range(1, 4):
        appliance.publish("edge/press-1/readings/important", batch(seq, [seq], klass="important"))
    appliance.close()
    broker.restart()  # SIGTERM: the broker saves its queue to disk and loads it again
    report = wait_for(receivers(mqtt_address=(HOST, broker.port)), lambda r: r["batches"] == 3)
    assert report["streams"]["press-1/store-a/readings/important"]["max_seq"] == 3


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return make_certificates(tmp_path_factory.mktemp("certs"), hosts=["10.0.0.2", "upstream.local"])


def test_mqtt_over_tls_takes_client_certificates_and_refuses_a_client_without_one(
    tmp_path: Path, certificates: Certificates, receivers: Callable[..., Receiver]
) -> None:
    if find_mosquitto() is None:
        pytest.skip("mosquitto is not installed (Debian: apt-get install mosquitto)")
    c = certificates
    broker = Mosquitto(
        tmp_path / "tls", free_port(), tls=TlsListener(free_port(), c.ca, c.server_cert, c.server_key)
    )
    broker.start()
    try:
        assert broker.tls is not None
        receiver = receivers(mqtt_address=(HOST, broker.tls.port), tls=Tls(c.ca, c.server_cert, c.server_key))
        appliance = Publisher(broker.tls.port, Tls(c.ca, c.client_cert, c.client_key))
        appliance.publish("edge/press-1/readings/normal", batch(1, [1, 2]))
        appliance.close()
        wait_for(receiver, lambda r: r["unique_records"] == 2)
        stranger = Publisher(broker.tls.port, Tls(c.ca), client_id="no-certificate")
        assert not stranger.connected.wait(2)
        stranger.close()
    finally:
        broker.kill()


def post(
    url: str, path: str, body: bytes, context: ssl.SSLContext | None = None, length: int | None = None
) -> tuple[int, Any]:
    host, port = url.split("://")[1].split(":")
    conn = (
        http.client.HTTPSConnection(host, int(port), timeout=5, context=context)
        if url.startswith("https")
        else http.client.HTTPConnection(host, int(port), timeout=5)
    )
    try:
        headers = {"Content-Type": "application/octet-stream"}
        conn.request("POST", path, body, headers | ({"Content-Length": str(length)} if length else {}))
        answer = conn.getresponse()
        return answer.status, json.loads(answer.read())
    finally:
        conn.close()


def test_http_post_answers_duplicates_bad_batches_and_oversize_bodies(
    receivers: Callable[..., Receiver],
) -> None:
    receiver = receivers(http_address=(HOST, 0))
    payload = batch(1, [1, 2, 3])
    assert post(receiver.url, "/v1/batches", payload) == (
        200, {"batch": "press-1/store-a/readings/normal/1", "duplicate": False})  # fmt: skip
    assert post(receiver.url, "/v1/batches", payload)[1]["duplicate"] is True
    status, answer = post(receiver.url, "/v1/batches", payload[:-1])
    assert status == 400 and "CRC-32" in answer["error"]
    assert post(receiver.url, "/v1/batches", b"", length=17 << 20)[0] == 413
    assert post(receiver.url, "/v1/probe", bytes(1000)) == (200, {"probe": 1000})
    report = receiver.report()
    assert report["batches"] == 2 and report["duplicate_batches"] == 1 and report["bad_batches"] == 1


def test_https_takes_only_clients_with_a_certificate(
    certificates: Certificates, receivers: Callable[..., Receiver]
) -> None:
    c = certificates
    receiver = receivers(http_address=(HOST, 0), tls=Tls(c.ca, c.server_cert, c.server_key))
    trusted = ssl.create_default_context(cafile=str(c.ca))
    with pytest.raises((ssl.SSLError, ConnectionError)):
        post(receiver.url, "/v1/batches", batch(1, [1]), trusted)
    trusted.load_cert_chain(c.client_cert, c.client_key)
    assert post(receiver.url, "/v1/batches", batch(1, [1]), trusted)[0] == 200


def test_bench_upstream_command_serves_until_signalled_then_reports(tmp_path: Path) -> None:
    db, port = tmp_path / "ledger.db", free_port()
    command = [sys.executable, "-m", "bench", "upstream", "--db", str(db)]
    with subprocess.Popen(
        [*command, "--http", f"{HOST}:{port}"], stdout=subprocess.PIPE, text=True, cwd=ROOT
    ) as proc:
        try:
            assert proc.stdout is not None
            lines = [proc.stdout.readline(), proc.stdout.readline()]
            assert lines == [f"upstream http http://{HOST}:{port}/v1/batches\n", "upstream receiver ready\n"]
            assert post(f"http://{HOST}:{port}", "/v1/batches", batch(1, [4, 5]))[0] == 200
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(10) == 0
        finally:
            proc.kill()
    done = subprocess.run(
        [*command, "--report"], capture_output=True, text=True, timeout=30, check=True, cwd=ROOT
    )
    assert json.loads(done.stdout)["unique_records"] == 2


@pytest.mark.parametrize("seed", range(6))
def test_the_independent_decoder_agrees_with_the_appliance(seed: int) -> None:
    rows = (synthetic(500, seed), modbus_shaped(500), bench_shaped(500))[seed % 3]
    header = BatchHeader(
        "press-1", "s", "readings", "background", 3, rows[0][0], rows[-1][0], len(rows), 0, 2.5
    )
    payload = encode_readings(header, rows, 19)
    assert parse(payload).header.batch_id == header.batch_id and parse(payload).header.created == 2.5
    assert same_verdict(payload) == "both decode"
    assert_damage_read_alike(payload, head_bytes(header), random.Random(seed))


def assert_damage_read_alike(payload: bytes, head: bytes, rnd: random.Random) -> None:
    """Bodies damaged behind a valid checksum: both refuse, or both read the same rows."""
    body = zstandard.ZstdDecompressor().decompress(payload[len(head) : -4])
    verdicts = set()
    for _ in range(300):
        damaged = bytearray(body)
        damaged[rnd.randrange(len(damaged))] = rnd.randrange(256)
        verdicts.add(same_verdict(sealed(head, zstd(bytes(damaged)))))
    assert verdicts == {"both decode", "both refuse"}


@pytest.mark.parametrize("seed", range(3))
def test_the_independent_decoder_reads_evidence_as_the_appliance_does(seed: int) -> None:
    rnd = random.Random(seed)
    rows: list[Any] = [
        (i * 2 + 1, 1795324474.0 + i / 3, i + 10, ("thumbnail", "image")[i % 2], f"r{i}.jpg", "image/jpeg",
         rnd.randbytes(rnd.randrange(0, 300)))
        for i in range(20)
    ]  # fmt: skip
    header = BatchHeader("press-1", "s", "evidence", "important", 1, 1, 39, 20, 0, 2.5)
    payload = encode_evidence(header, rows)
    assert same_verdict(payload) == "both decode"
    assert [r[6] for r in parse(payload).records] == [r[6] for r in rows]
    assert_damage_read_alike(payload, head_bytes(header, stream=2), rnd)


def same_verdict(payload: bytes) -> str:
    try:
        ours: list[Any] | None = decode(payload)[1]
    except BatchFormatError:
        ours = None
    try:
        theirs: list[Any] | None = list(parse(payload).records)
    except BadBatch:
        theirs = None
    # repr, so that NaN and -0.0 compare too
    assert (ours is None) == (theirs is None) and repr(ours) == repr(theirs), (ours, theirs)
    return "both refuse" if ours is None else "both decode"


def test_a_rig_left_by_a_failed_test_takes_its_runtime_along(tmp_path: Path) -> None:
    """A test that fails with a runtime running must not leave `appliance run` behind (it would load the
    machine for the rest of the suite)."""
    started = []

    def failing_test() -> None:
        with SyncRig(tmp_path) as rig:
            started.append(rig.start())
            raise AssertionError("the test failed here")

    with pytest.raises(AssertionError, match="failed here"):
        failing_test()
    assert started[0].proc.poll() is not None, "appliance run still runs after the rig ended"
