"""The upstream receiver: takes batches over MQTT and HTTP(S), as a real backend would, into its ledger."""

from __future__ import annotations

import functools
import json
import logging
import socket
import ssl
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode

from bench.upstream.batches import MAX_PAYLOAD, STREAMS
from bench.upstream.ledger import Ledger

log = logging.getLogger(__name__)

CLIENT_ID = "bench-upstream"  # fixed: the broker keeps our session and queues QoS 1 while we are away


@dataclass(frozen=True, slots=True)
class Tls:
    """PEM files. MQTT: `ca` checks the broker, `cert`/`key` are our client certificate. HTTPS: `cert`/`key`
    are the server's, and with `ca` every client must show a certificate it signed."""

    ca: Path | None = None
    cert: Path | None = None
    key: Path | None = None


class Receiver:
    """Records every batch it receives; `report()` says what arrived, what repeated and what is missing.
    Evidence files that arrive are kept under `files` (FILES/DEVICE/NAME) when it is given."""

    def __init__(
        self,
        db: Path,
        mqtt_address: tuple[str, int] | None = None,
        prefix: str = "edge",
        http_address: tuple[str, int] | None = None,
        tls: Tls | None = None,
        client_id: str = CLIENT_ID,
        files: Path | None = None,
    ) -> None:
        self.prefix, self.tls = prefix, tls or Tls()
        self.subscribed = threading.Event()
        self.client: mqtt.Client | None = None
        self.http: ThreadingHTTPServer | None = None
        self._threads: list[threading.Thread] = []
        self.stopped = False
        self.ledger = Ledger(db, files)
        try:
            if mqtt_address is not None:
                self.client = self._mqtt_client(client_id)
                self.client.connect_async(*mqtt_address, keepalive=10)
            if http_address is not None:
                self.http = _BatchServer(http_address, self.ledger, self._server_context())
        except BaseException:  # a busy port, unreadable certificates
            self.ledger.close()
            raise

    @property
    def url(self) -> str:
        """Where to POST batches."""
        assert self.http is not None
        host, port = self.http.server_address[:2]
        return f"{'https' if self.tls.cert else 'http'}://{host!s}:{port}"

    def start(self, timeout: float = 10.0) -> None:
        """Listen, connect and subscribe; returns once batches can arrive (MQTT: when subscribed)."""
        if self.http is not None:
            serve = functools.partial(self.http.serve_forever, poll_interval=0.05)  # quick to shut down
            thread = threading.Thread(target=serve, name="upstream-http", daemon=True)
            thread.start()
            self._threads.append(thread)
        if self.client is not None:
            self.client.loop_start()
            if not self.subscribed.wait(timeout):
                self.stop()
                raise TimeoutError(f"not subscribed to the broker within {timeout} s")

    def stop(self) -> None:
        if self.stopped:
            return
        self.stopped = True
        if self.client is not None:
            self.client.disconnect()  # the session stays on the broker: it queues for our next start
            self.client.loop_stop()
        if self.http is not None:
            if self._threads:  # shutdown() waits for serve_forever(), which must have started
                self.http.shutdown()
            self.http.server_close()
        for thread in self._threads:
            thread.join(5)
        self.ledger.close()

    def report(self) -> dict[str, Any]:
        return self.ledger.report()

    def _mqtt_client(self, client_id: str) -> mqtt.Client:
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=False, protocol=mqtt.MQTTv311
        )
        if self.tls.ca is not None:
            context = ssl.create_default_context(cafile=str(self.tls.ca))
            if self.tls.cert is not None and self.tls.key is not None:
                context.load_cert_chain(self.tls.cert, self.tls.key)
            client.tls_set_context(context)
        client.reconnect_delay_set(min_delay=1, max_delay=2)  # back soon after a broker restart
        client.on_connect = self._connected
        client.on_subscribe = lambda *_: self.subscribed.set()
        client.on_message = self._message
        return client

    def _connected(self, client: mqtt.Client, _: Any, flags: Any, reason: ReasonCode, __: Any) -> None:
        if reason.is_failure:
            log.warning("broker refused the receiver: %s", reason)
            return
        topics = [f"{self.prefix}/+/{stream}/+" for stream in STREAMS] + [f"{self.prefix}/+/status"]
        client.subscribe([(topic, 1) for topic in topics])

    def _message(self, _: mqtt.Client, __: Any, message: mqtt.MQTTMessage) -> None:
        # Runs on paho's thread; it acknowledges the message (PUBACK) only after this returns, so a
        # batch is in the ledger before the broker forgets it.
        levels = message.topic.removeprefix(self.prefix + "/").split("/")  # device, stream, class | status
        if levels[1:] == ["status"]:
            self.ledger.status(levels[0], message.payload.decode(errors="replace"), bool(message.retain))
        elif len(levels) == 3:
            outcome = self.ledger.batch(
                bytes(message.payload), message.topic, (levels[0], levels[1], levels[2])
            )
            if outcome.error:
                log.warning("bad batch on %s: %s", message.topic, outcome.error)

    def _server_context(self) -> ssl.SSLContext | None:
        if self.tls.cert is None or self.tls.key is None:
            return None
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.tls.cert, self.tls.key)
        if self.tls.ca is not None:
            context.load_verify_locations(self.tls.ca)
            context.verify_mode = ssl.CERT_REQUIRED
        return context


class _BatchServer(ThreadingHTTPServer):
    """`POST /v1/batches` (and `/v1/probe`); TLS is set up in each handler's thread, not in accept()."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], ledger: Ledger, context: ssl.SSLContext | None) -> None:
        self.ledger, self.context = ledger, context
        super().__init__(address, _BatchHandler)

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, peer = self.socket.accept()
        if self.context is None:
            return sock, peer
        return self.context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False), peer


class _BatchHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: the appliance sends batch after batch on one connection
    timeout = 30
    server: _BatchServer

    def handle(self) -> None:
        if isinstance(self.connection, ssl.SSLSocket):
            try:
                self.connection.do_handshake()
            except (ssl.SSLError, OSError) as exc:  # e.g. a client without a certificate
                log.info("TLS handshake with %s failed: %s", self.client_address[0], exc)
                return
        super().handle()

    def do_POST(self) -> None:
        length = self.headers.get("Content-Length", "")
        size = int(length) if length.isdigit() else -1
        if self.path not in ("/v1/batches", "/v1/probe"):
            self._answer(404, {"error": f"no such endpoint: {self.path}"}, unread=size)
        elif size < 0:
            self._answer(411, {"error": "a Content-Length is required"}, unread=size)
        elif size > MAX_PAYLOAD:
            self._answer(413, {"error": f"body of {size} bytes; a batch is 0 to {MAX_PAYLOAD}"}, unread=size)
        elif self.path == "/v1/probe":
            self._answer(200, {"probe": len(self.rfile.read(size))})
        else:
            outcome = self.server.ledger.batch(self.rfile.read(size), f"http {self.client_address[0]}")
            if outcome.batch is None:
                self._answer(400, {"error": outcome.error})
            else:
                self._answer(200, {"batch": outcome.batch.header.batch_id, "duplicate": outcome.duplicate})

    def _answer(self, code: int, body: dict[str, Any], unread: int = 0) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if unread:  # a body left unread would be taken for the next request
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.client_address[0], *args)
