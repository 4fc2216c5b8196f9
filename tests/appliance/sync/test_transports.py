"""The transports against real peers: MQTT over TLS with client certificates to mosquitto, HTTPS POSTs to
the bench receiver, refusals (a missing certificate, a wrong password) seen as they happen, and the last
will when the runtime dies."""

from __future__ import annotations

import base64
import hashlib
import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from appliance.config.sync import HttpsUpstream, MqttUpstream, TlsSettings
from appliance.sync.codec import BatchHeader, encode_readings
from appliance.sync.https import HttpsTransport
from appliance.sync.mqtt import MqttTransport
from appliance.sync.transport import Transport
from bench.harness.ports import free_port
from bench.upstream.broker import Mosquitto, TlsListener, find_mosquitto
from bench.upstream.certs import Certificates, make_certificates
from bench.upstream.receiver import Receiver, Tls
from bench.upstream.rig import SyncRig

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
        return until(lambda: len(self.tokens) >= count, timeout)


def until(condition: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


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
        # the receiver reads the records and the status topic as they come: the offline word, said on the
        # way out, may land after the last record (1 run in 6 checked before it had)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not (
            receiver.report()["unique_records"] >= 3
            and receiver.report()["status"].get("box-1", {}).get("status") == "offline"
        ):
            time.sleep(0.05)
        assert receiver.report()["unique_records"] == 3
        assert receiver.report()["status"]["box-1"]["status"] == "offline"  # said so on the way out

        anonymous = MqttTransport(
            MqttUpstream(type="mqtt", broker=f"127.0.0.1:{listener.port}", tls=tls(certs, client=False)),
            "box-2",
            tmp_path,
        )
        logged = broker.log.stat().st_size
        refused = send_three(anonymous)
        try:
            # an attempt the broker turned down: the transport reports the link down, the broker says why
            assert until(lambda: False in refused.states), "the transport saw no refused attempt"
            assert until(lambda: "peer did not return a certificate" in broker.log.read_text()[logged:])
            assert refused.tokens == [] and True not in refused.states  # no certificate, no session
            assert not anonymous.connected
        finally:
            anonymous.stop()
    finally:
        receiver.stop()
        broker.stop()


class PasswordBroker(Mosquitto):
    """The bench broker with a password on its plain listener: `users` (name -> password) only."""

    def __init__(self, folder: Path, port: int, users: dict[str, str]) -> None:
        super().__init__(folder, port)
        self.users = users

    def write_config(self) -> None:
        super().write_config()
        passwords = self.folder / "passwords"
        passwords.write_text("".join(f"{user}:{hashed(word)}\n" for user, word in self.users.items()))
        listener = f"listener {self.port} {self.host}\n"
        text = self.config.read_text()
        assert listener + "allow_anonymous true\n" in text
        self.config.write_text(
            text.replace(
                listener + "allow_anonymous true\n",
                listener + f"allow_anonymous false\npassword_file {passwords}\n",
            )
        )


def hashed(password: str) -> str:
    """A mosquitto 2 password file entry: PBKDF2-SHA512, as mosquitto_passwd writes it."""
    salt = os.urandom(12)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, 101, 64)
    return f"$7$101${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


@needs_mosquitto
def test_mqtt_with_a_wrong_password_is_refused_and_says_why(tmp_path: Path) -> None:
    broker = PasswordBroker(tmp_path / "broker", free_port(), {"box-1": "right"})
    broker.start()

    def transport(password: str) -> MqttTransport:
        (tmp_path / f"{password}-password").write_text(password + "\n")
        (tmp_path / f"{password}-password").chmod(0o600)  # a secret file: the service user's alone
        upstream = MqttUpstream(
            type="mqtt",
            broker=f"127.0.0.1:{broker.port}",
            username="box-1",
            password_file=f"{password}-password",
        )
        return MqttTransport(upstream, "box-1", tmp_path)

    try:
        wrong = transport("wrong")
        refused = send_three(wrong)
        try:
            assert until(lambda: wrong.last_error is not None), "no refused attempt seen"
            assert wrong.last_error == "broker refused the connection: Not authorized"
            assert refused.tokens == [] and not wrong.connected and True not in refused.states
        finally:
            wrong.stop()
        right = transport("right")  # the same broker and user: the password is what it turned down
        acks = send_three(right)
        try:
            assert acks.wait(3) and right.connected and right.last_error is None
        finally:
            right.stop()
    finally:
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
        try:
            assert until(lambda: anonymous.last_error is not None), "the transport saw no refused attempt"
            assert refused.tokens == [] and not anonymous.connected, anonymous.status()
        finally:
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
