"""TLS to the upstream: required unless the upstream is on this box or marked `insecure = true` (and flagged
in the status either way), `server_name` checked against a real certificate made for another name than the
address connected to, pinned keys checked after the handshake and before a byte of data or a credential
leaves, and the client key, token and password read as secret files."""

from __future__ import annotations

import base64
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from appliance.config.sync import HttpsUpstream, MqttUpstream, TlsSettings
from appliance.ops.secrets import SecretFileError
from appliance.sync.https import HttpsTransport
from appliance.sync.mqtt import MqttTransport
from appliance.sync.tls import tls_context
from appliance.sync.transport import Transport
from bench.harness.ports import free_port
from bench.upstream.broker import Mosquitto, TlsListener
from bench.upstream.certs import Certificates, make_certificates
from bench.upstream.receiver import Receiver, Tls
from tests.appliance.sync.test_transports import needs_mosquitto, send_three, until
from tests.appliance.test_insights import Health, healthy
from tests.conftest import ROOT

NAME = "upstream.test"  # the only name the server's certificate is good for: not the address connected to


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return make_certificates(tmp_path_factory.mktemp("certs"), [NAME], loopback=False)


def openssl(*args: str, data: bytes | None = None) -> bytes:
    return subprocess.run(["openssl", *args], input=data, capture_output=True, check=True, timeout=30).stdout


def key_pin(cert: Path) -> str:
    """base64 of the SHA-256 of the certificate's SubjectPublicKeyInfo, as openssl computes it."""
    public = openssl("x509", "-in", str(cert), "-pubkey", "-noout")
    der = openssl("pkey", "-pubin", "-outform", "der", data=public)
    return base64.b64encode(openssl("dgst", "-sha256", "-binary", data=der)).decode()


def cert_pin(cert: Path) -> str:
    """hex (with colons, as openssl prints it) of the SHA-256 of the whole certificate."""
    return (
        openssl("x509", "-in", str(cert), "-noout", "-fingerprint", "-sha256").decode().split("=")[1].strip()
    )


def tls(certs: Certificates, **keys: Any) -> TlsSettings:
    files = {"ca": str(certs.ca), "cert": str(certs.client_cert), "key": str(certs.client_key)}
    return TlsSettings(**(files | keys))


class TlsSink:
    """A TLS server on loopback with the server certificate that counts handshakes and keeps every byte a
    client sends after one: what a pinned client must never send to the wrong server."""

    def __init__(self, certs: Certificates) -> None:
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(certs.server_cert, certs.server_key)
        self.server = socket.create_server(("127.0.0.1", 0))
        self.server.settimeout(0.2)
        self.port = self.server.getsockname()[1]
        self.handshakes, self.received = 0, bytearray()
        self.stopping = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.stopping:
            try:
                conn, _ = self.server.accept()
            except TimeoutError:
                continue
            with conn:
                conn.settimeout(5)
                try:
                    with self.context.wrap_socket(conn, server_side=True) as tls_conn:
                        self.handshakes += 1
                        while chunk := tls_conn.recv(65536):
                            self.received += chunk
                except OSError:
                    continue

    def stop(self) -> None:
        self.stopping = True
        self.thread.join(5)
        self.server.close()


@pytest.fixture
def sink(certs: Certificates) -> Iterator[TlsSink]:
    server = TlsSink(certs)
    yield server
    server.stop()


# --- TLS required -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("upstream", "error"),
    [
        (
            {"type": "mqtt", "broker": "broker.plant:1883"},
            "MQTT to broker.plant:1883 without a tls table would send records and credentials in clear",
        ),
        (
            {"type": "https", "url": "http://ingest.plant/edge"},
            "http://ingest.plant/edge would send records and the token in clear",
        ),
        ({"type": "https", "url": "http://10.0.0.7:8080", "tls": {}}, "a tls table needs an https:// url"),
        ({"type": "mqtt", "broker": "broker.plant:8883", "tls": {}, "insecure": True}, "insecure = true"),
        ({"type": "https", "url": "https://ingest.plant", "insecure": True}, "insecure = true"),
        ({"type": "https", "url": "https://ingest.plant", "tls": {"pin_sha256": ["abc"]}}, "pin_sha256"),
    ],
)
def test_an_upstream_in_clear_is_a_config_error_unless_said(upstream: dict[str, Any], error: str) -> None:
    model = MqttUpstream if upstream["type"] == "mqtt" else HttpsUpstream
    with pytest.raises(ValidationError, match=error.replace("(", r"\(").replace(")", r"\)")):
        model.model_validate(upstream)


@pytest.mark.parametrize(
    "upstream",
    [
        {"type": "mqtt", "broker": "127.0.0.1:1883"},  # on this box: nothing crosses a network
        {"type": "mqtt", "broker": "localhost:1883"},
        {"type": "mqtt", "broker": "[::1]:1883"},
        {"type": "mqtt", "broker": "broker.plant:1883", "insecure": True},
        {"type": "mqtt", "broker": "broker.plant:8883", "tls": {}},  # the system's CAs
        {"type": "https", "url": "http://127.0.0.2:8080/edge"},
        {"type": "https", "url": "http://10.0.0.7:8080", "insecure": True},
        {"type": "https", "url": "https://ingest.plant"},
        {"type": "https", "url": "https://ingest.plant", "tls": {"pin_sha256": ["ab" * 32, "q" * 43 + "="]}},
    ],
)
def test_tls_loopback_or_said_in_so_many_words(upstream: dict[str, Any]) -> None:
    model = MqttUpstream if upstream["type"] == "mqtt" else HttpsUpstream
    model.model_validate(upstream)


def test_check_config_refuses_a_plain_upstream_with_exit_2(tmp_path: Path) -> None:
    config = tmp_path / "appliance.toml"
    config.write_text('[sync.upstream]\ntype = "mqtt"\nbroker = "broker.plant:1883"\n')
    done = subprocess.run(
        [sys.executable, "-m", "appliance", "check-config", str(config)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert done.returncode == 2
    assert f"{config}: sync.upstream: MQTT to broker.plant:1883 without a tls table" in done.stderr
    assert "or insecure = true" in done.stderr


def test_a_plain_upstream_says_so_in_the_status_and_the_insights(tmp_path: Path) -> None:
    plain = MqttTransport(MqttUpstream(type="mqtt", broker="127.0.0.1:1"), "box-1", tmp_path)
    assert plain.status() | {"connected": False} == {
        "kind": "mqtt",
        "connected": False,
        "last_error": None,
        "secure": False,
        "loopback": True,
    }
    far = HttpsTransport(
        HttpsUpstream(type="https", url="http://10.0.0.7:8080", insecure=True), "box-1", tmp_path
    )
    assert (far.status()["secure"], far.status()["loopback"]) == (False, False)
    now = time.time()
    health = Health()
    for upstream, severity in ((plain, "info"), (far, "warning")):
        status = healthy(now)
        status["sync"]["upstream"] = upstream.status()
        found = [i for i in health.assess(status, now) if i["id"] == "sync-plain"]
        assert len(found) == 1 and found[0]["severity"] == severity, found
        assert "without TLS" in found[0]["message"]
    status = healthy(now)
    status["sync"]["upstream"] |= {"secure": True, "loopback": False}
    assert [i for i in health.assess(status, now) if i["id"] == "sync-plain"] == []


# --- server_name ----------------------------------------------------------------------------------------


def receiver_with(certs: Certificates, tmp_path: Path) -> Receiver:
    receiver = Receiver(
        tmp_path / "ledger.db",
        http_address=("127.0.0.1", free_port()),
        tls=Tls(cert=certs.server_cert, key=certs.server_key),
    )
    receiver.start()
    return receiver


def https(receiver: Receiver, tmp_path: Path, settings: TlsSettings) -> HttpsTransport:
    return HttpsTransport(HttpsUpstream(type="https", url=receiver.url, tls=settings), "box-1", tmp_path)


def refused(transport: Transport, why: str) -> None:
    acks = send_three(transport)
    try:
        assert until(lambda: why in (transport.last_error or "")), transport.status()
        assert acks.tokens == [] and not transport.connected
    finally:
        transport.stop()


def test_https_checks_the_certificate_against_server_name(certs: Certificates, tmp_path: Path) -> None:
    receiver = receiver_with(certs, tmp_path)
    try:
        # checked against the address connected to by default, which the certificate does not name
        refused(https(receiver, tmp_path, tls(certs)), "certificate is not valid for '127.0.0.1'")
        refused(
            https(receiver, tmp_path, tls(certs, server_name="other.test")),
            "Hostname mismatch, certificate is not valid for 'other.test'",
        )
        named = https(receiver, tmp_path, tls(certs, server_name=NAME))
        acks = send_three(named)
        try:
            assert acks.wait(3), named.status()
        finally:
            named.stop()
        assert receiver.report()["unique_records"] == 3
    finally:
        receiver.stop()


def broker_with(certs: Certificates, tmp_path: Path) -> tuple[Mosquitto, Receiver]:
    listener = TlsListener(free_port(), certs.ca, certs.server_cert, certs.server_key)
    broker = Mosquitto(tmp_path / "broker", free_port(), tls=listener)
    broker.start()
    receiver = Receiver(tmp_path / "ledger.db", ("127.0.0.1", broker.port))
    receiver.start()  # on the broker's plain loopback listener
    return broker, receiver


def mqtt(port: int, tmp_path: Path, settings: TlsSettings, device: str = "box-1") -> MqttTransport:
    upstream = MqttUpstream(type="mqtt", broker=f"127.0.0.1:{port}", tls=settings)
    return MqttTransport(upstream, device, tmp_path)


@needs_mosquitto
def test_mqtt_checks_the_certificate_against_server_name(certs: Certificates, tmp_path: Path) -> None:
    broker, receiver = broker_with(certs, tmp_path)
    assert broker.tls is not None
    try:
        refused(
            mqtt(broker.tls.port, tmp_path, tls(certs), "box-2"), "certificate is not valid for '127.0.0.1'"
        )
        named = mqtt(broker.tls.port, tmp_path, tls(certs, server_name=NAME))
        acks = send_three(named)
        try:
            assert acks.wait(3), named.status()
        finally:
            named.stop()
        assert until(lambda: receiver.report()["unique_records"] == 3)
    finally:
        receiver.stop()
        broker.stop()


# --- pinning --------------------------------------------------------------------------------------------


def test_https_with_a_pin_that_matches_and_one_that_does_not(
    certs: Certificates, tmp_path: Path, sink: TlsSink
) -> None:
    wrong = key_pin(certs.client_cert)  # a real key's pin, but not the server's
    settings = tls(certs, server_name=NAME, pin_sha256=[wrong])
    transport = HttpsTransport(
        HttpsUpstream(
            type="https", url=f"https://127.0.0.1:{sink.port}", tls=settings, token_file=str(token(tmp_path))
        ),
        "box-1",
        tmp_path,
    )
    refused(transport, f"matches no pin_sha256 (its key's is {key_pin(certs.server_cert)})")
    assert sink.handshakes >= 1 and bytes(sink.received) == b""  # not a request, not the token
    assert transport.status()["secure"] is True

    receiver = receiver_with(certs, tmp_path)
    try:
        for pin in (key_pin(certs.server_cert), cert_pin(certs.server_cert)):
            pinned = https(receiver, tmp_path, tls(certs, server_name=NAME, pin_sha256=[wrong, pin]))
            acks = send_three(pinned)
            try:
                assert acks.wait(3), pinned.status()
            finally:
                pinned.stop()
    finally:
        receiver.stop()


@needs_mosquitto
def test_mqtt_with_a_pin_that_matches_and_one_that_does_not(
    certs: Certificates, tmp_path: Path, sink: TlsSink
) -> None:
    wrong = key_pin(certs.client_cert)
    password = secret(tmp_path / "password", b"hunter2")
    upstream = MqttUpstream(
        type="mqtt",
        broker=f"127.0.0.1:{sink.port}",
        tls=tls(certs, server_name=NAME, pin_sha256=[wrong]),
        username="box-1",
        password_file=str(password),
    )
    refused(MqttTransport(upstream, "box-1", tmp_path), "matches no pin_sha256")
    assert sink.handshakes >= 1 and bytes(sink.received) == b""  # no CONNECT: no user, no password

    broker, receiver = broker_with(certs, tmp_path)
    assert broker.tls is not None
    try:
        pinned = mqtt(
            broker.tls.port,
            tmp_path,
            tls(certs, server_name=NAME, pin_sha256=[wrong, key_pin(certs.server_cert)]),
        )
        acks = send_three(pinned)
        try:
            assert acks.wait(3), pinned.status()
        finally:
            pinned.stop()
    finally:
        receiver.stop()
        broker.stop()


# --- secret files ----------------------------------------------------------------------------------------


def secret(path: Path, data: bytes, mode: int = 0o600) -> Path:
    path.write_bytes(data)
    path.chmod(mode)
    return path


def token(tmp_path: Path) -> Path:
    return secret(tmp_path / "token", b"t0ken\n")


@pytest.mark.parametrize("what", ["token_file", "password_file", "key"])
def test_the_client_key_token_and_password_are_read_as_secret_files(
    certs: Certificates, tmp_path: Path, what: str
) -> None:
    def make(path: Path) -> object:
        if what == "key":
            return tls_context(tls(certs, key=str(path)), tmp_path)
        if what == "token_file":
            https = HttpsUpstream(type="https", url="https://ingest.plant", token_file=str(path))
            return HttpsTransport(https, "box-1", tmp_path)
        broker = MqttUpstream(type="mqtt", broker="127.0.0.1:1", username="u", password_file=str(path))
        return MqttTransport(broker, "box-1", tmp_path)

    name = "the upstream's TLS client key" if what == "key" else f"the upstream's {what}"
    loose = secret(tmp_path / "loose", certs.client_key.read_bytes() if what == "key" else b"s3cret", 0o644)
    with pytest.raises(SecretFileError, match=f"{name} {loose} has mode 644"):
        make(loose)
    loose.chmod(0o600)
    make(loose)  # the same file, private: taken
    (tmp_path / "link").symlink_to(loose)
    with pytest.raises(SecretFileError, match=f"{name} {tmp_path / 'link'} is a symbolic link"):
        make(tmp_path / "link")
