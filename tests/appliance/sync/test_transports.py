"""The transports against real peers: MQTT over TLS with client certificates to mosquitto, HTTPS POSTs to
the bench receiver, refusals when the certificate is missing, and the last will when the runtime dies."""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path

import pytest

from appliance.config.sync import HttpsUpstream, MqttUpstream, TlsSettings
from appliance.sync.codec import BatchHeader, encode_readings
from appliance.sync.https import HttpsTransport
from appliance.sync.mqtt import MqttTransport
from appliance.sync.transport import Transport
from bench.upstream.broker import Mosquitto, TlsListener, find_mosquitto
from bench.upstream.certs import Certificates, make_certificates
from bench.upstream.receiver import Receiver, Tls
from bench.upstream.rig import SyncRig, free_port

needs_mosquitto = pytest.mark.skipif(find_mosquitto() is None, reason="needs mosquitto")


def batch(seq: int) -> bytes:
    header = BatchHeader("box-1", "00aa11bb22cc33dd", "readings", "normal", seq, seq, seq, 1, 0, 1.8e9)
    return encode_readings(header, [(seq, "line", "temperature", "degC", 1.8e9 + seq, 20.5, 0)], 19)


class Acks:
    def __init__(self) -> None:
        self.tokens: list[object] = []
        self.states: list[bool] = []
        self.event = threading.Event()

    def ack(self, token: object) -> None:
        self.tokens.append(token)
        self.event.set()

    def state(self, up: bool) -> None:
        self.states.append(up)

    def wait(self, count: int, timeout: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout
        while len(self.tokens) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        return len(self.tokens) >= count


def tls(certs: Certificates, client: bool = True) -> TlsSettings:
    if not client:
        return TlsSettings(ca=str(certs.ca))
    return TlsSettings(ca=str(certs.ca), cert=str(certs.client_cert), key=str(certs.client_key))


def send_three(transport: Transport) -> Acks:
    acks = Acks()
    transport.start(acks.ack, acks.state)
    for seq in (1, 2, 3):
        transport.send("readings", "normal", batch(seq), seq)
    return acks


@needs_mosquitto
def test_mqtt_over_tls_with_a_client_certificate(tmp_path: Path) -> None:
    certs = make_certificates(tmp_path / "certs", ["127.0.0.1"])
    listener = TlsListener(free_port(), certs.ca, certs.server_cert, certs.server_key)
    broker = Mosquitto(tmp_path, free_port(), tls=listener)
    broker.start()
    receiver = Receiver(tmp_path / "ledger.db", ("127.0.0.1", broker.port))
    receiver.start()
    try:
        upstream = MqttUpstream(type="mqtt", broker=f"127.0.0.1:{listener.port}", tls=tls(certs))
        transport = MqttTransport(upstream, "box-1", tmp_path)
        acks = send_three(transport)
        assert acks.wait(3), acks.tokens
        assert sorted(acks.tokens) == [1, 2, 3] and acks.states[0] is True  # type: ignore[type-var]
        transport.stop()
        deadline = time.monotonic() + 10
        while receiver.report()["unique_records"] < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert receiver.report()["unique_records"] == 3
        assert receiver.report()["status"]["box-1"]["status"] == "offline"  # said so on the way out

        anonymous = MqttTransport(
            MqttUpstream(type="mqtt", broker=f"127.0.0.1:{listener.port}", tls=tls(certs, client=False)),
            "box-2",
            tmp_path,
        )
        refused = send_three(anonymous)
        time.sleep(2.0)
        assert refused.tokens == [] and not anonymous.connected  # no certificate, no session
        anonymous.stop()
    finally:
        receiver.stop()
        broker.stop()


def test_https_with_a_client_certificate_and_without(tmp_path: Path) -> None:
    certs = make_certificates(tmp_path / "certs", ["127.0.0.1"])
    receiver = Receiver(
        tmp_path / "ledger.db",
        http_address=("127.0.0.1", free_port()),
        tls=Tls(ca=certs.ca, cert=certs.server_cert, key=certs.server_key),
    )
    receiver.start()
    try:
        transport = HttpsTransport(
            HttpsUpstream(type="https", url=receiver.url, tls=tls(certs)), "box-1", tmp_path
        )
        acks = send_three(transport)
        assert acks.wait(3), (acks.tokens, transport.last_error)
        assert acks.tokens == [1, 2, 3] and transport.connected  # one worker: in order
        transport.send("readings", "normal", batch(2), "again")
        assert acks.wait(4) and receiver.report()["duplicate_batches"] == 1
        transport.stop()

        anonymous = HttpsTransport(
            HttpsUpstream(type="https", url=receiver.url, tls=tls(certs, client=False)), "box-2", tmp_path
        )
        refused = send_three(anonymous)
        time.sleep(1.5)
        assert refused.tokens == [] and not anonymous.connected and anonymous.last_error, anonymous.status()
        anonymous.stop()
        assert receiver.report()["unique_records"] == 3
    finally:
        receiver.stop()


@needs_mosquitto
@pytest.mark.slow
def test_the_broker_says_offline_when_the_runtime_is_killed(tmp_path: Path) -> None:
    with SyncRig(tmp_path) as rig:
        runtime = rig.start()
        rig.wait(runtime, lambda s: s["records_acked"] > 0, 20, "records acknowledged")
        assert rig.receiver.report()["status"]["sync-box"]["status"] == "online"
        rig.stop(runtime, signal.SIGKILL)
        deadline = time.monotonic() + 3 * rig.settings.keepalive_s
        while rig.receiver.report()["status"]["sync-box"]["status"] != "offline":
            assert time.monotonic() < deadline, "no last will within 1.5 keepalives"
            time.sleep(0.2)
