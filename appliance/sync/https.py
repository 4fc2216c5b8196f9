"""Upstream over HTTP(S): each batch is POSTed to `{url}/v1/batches`; a 2xx answer acknowledges it.

One worker thread sends in order over a kept-alive connection. Anything but a 2xx answer (no connection,
a timeout, a 5xx, a 4xx) marks the link down and the same batch is tried again with backoff, so order
within a class holds and nothing is dropped: a receiver that refuses a batch (a 400 from an older
receiver, a 401 for a revoked token) stops the outbox, loudly, until someone fixes the receiver or the
credentials; the records wait on the box.
"""

from __future__ import annotations

import http.client
import logging
import queue
import urllib.parse
from pathlib import Path

from appliance.config.sync import HttpsUpstream, TlsSettings, is_loopback
from appliance.ops.secrets import read_secret
from appliance.sync.tls import tls_context
from appliance.sync.transport import Ack, StateChange, Transport
from drivers.backoff import Backoff
from drivers.worker import Worker

log = logging.getLogger(__name__)

TIMEOUT_S = 30.0
RETRY_INITIAL_S, RETRY_MAX_S = 1.0, 30.0
_STOP = object()


class HttpsTransport(Transport):
    kind = "https"

    def __init__(self, settings: HttpsUpstream, device: str, folder: Path) -> None:
        super().__init__()
        self.settings = settings
        self.device = device
        url = urllib.parse.urlsplit(settings.url)
        self.secure = url.scheme == "https"
        self.host, self.port = url.hostname or "", url.port or (443 if self.secure else 80)
        self.base = url.path.rstrip("/")
        self.loopback = is_loopback(self.host)
        self.context = tls_context(settings.tls or TlsSettings(), folder) if self.secure else None
        self.token = None
        if settings.token_file:
            self.token = (
                read_secret(folder / settings.token_file, "the upstream's token_file").decode().strip()
            )
        self._queue: queue.Queue[tuple[str, bytes, object] | object] = queue.Queue()
        # a stop queues _STOP behind the batches and cuts a retry's wait short
        self._worker = Worker("sync-https", self._run, TIMEOUT_S + 5, wake=lambda: self._queue.put(_STOP))
        self._conn: http.client.HTTPConnection | None = None
        self._on_ack: Ack = lambda token: None
        self._on_state: StateChange = lambda up: None

    def start(self, on_ack: Ack, on_state: StateChange) -> None:
        self._on_ack, self._on_state = on_ack, on_state
        self.plain(self.settings.url)
        self._worker.start()
        self._queue.put(("/v1/probe", b"", None))  # connect now, so the link's state is known early

    def send(self, stream: str, priority: str, payload: bytes, token: object) -> None:
        self._queue.put(("/v1/batches", payload, token))

    def probe(self, payload: bytes, token: object) -> None:
        self._queue.put(("/v1/probe", payload, token))

    def stop(self) -> None:
        self._worker.stop()
        if self._conn is not None:
            self._conn.close()

    def _run(self) -> None:
        while (item := self._queue.get()) is not _STOP:
            assert isinstance(item, tuple)
            path, payload, token = item
            backoff = Backoff(RETRY_INITIAL_S, RETRY_MAX_S)  # each batch starts afresh
            while not self._post(path, payload):
                if self._worker.wait(backoff.next()):
                    return  # stopped; the batch stays in the outbox
            if token is not None:
                self._on_ack(token)

    def _post(self, path: str, payload: bytes) -> bool:
        """True once the upstream has the batch (or refused it for good)."""
        headers = {"Content-Type": "application/octet-stream", "X-Device": self.device}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        try:
            conn = self._connection()
            conn.request("POST", self.base + path, body=payload, headers=headers)
            answer = conn.getresponse()
            body = answer.read()
        except (OSError, http.client.HTTPException) as exc:
            self._down(f"{type(exc).__name__}: {exc}")
            return False
        self.bytes_sent += len(payload)
        if not 200 <= answer.status < 300:
            self._down(f"HTTP {answer.status}: {body[:200].decode(errors='replace')}")
            if 400 <= answer.status < 500 and answer.status not in (408, 429):
                log.error(
                    "upstream refuses a batch (HTTP %d): the outbox waits until it takes it", answer.status
                )
            return False
        if not self.connected:
            self.connected, self.last_error = True, None
            self._on_state(True)
        return True

    def _connection(self) -> http.client.HTTPConnection:
        if self._conn is None:
            if self.secure:
                self._conn = http.client.HTTPSConnection(
                    self.host, self.port, timeout=TIMEOUT_S, context=self.context
                )
            else:
                self._conn = http.client.HTTPConnection(self.host, self.port, timeout=TIMEOUT_S)
        return self._conn

    def _down(self, error: str) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        self.last_error = error
        if self.connected:
            log.warning("upstream %s:%d down: %s", self.host, self.port, error)
            self.connected = False
        self._on_state(False)
