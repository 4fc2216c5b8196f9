"""Upstream over MQTT: QoS 1 on a persistent session, TLS with client certificates, a retained last will.

Topics (docs/sync.md): `{prefix}/{device}/{stream}/{class}` carry batches, `{prefix}/{device}/status` is
"online" while we are connected and "offline" (the broker publishes our last will) when we vanish,
`{prefix}/{device}/probe` carries filler for link measurements that nobody subscribes to.

paho keeps every QoS 1 message until its PUBACK and sends it again after a reconnect, so within one run
a batch is handed over once; after a restart the sync service sends the batches the store still holds.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode

from appliance.config.sync import MqttUpstream, is_loopback
from appliance.ops.secrets import read_secret
from appliance.sync.tls import tls_context
from appliance.sync.transport import Ack, StateChange, Transport

log = logging.getLogger(__name__)

_STATUS = object()  # the token of our own status messages: their PUBACKs are nobody's business


def publish_size(topic: str, payload_bytes: int) -> int:
    """Bytes of an MQTT 3.1.1 QoS 1 PUBLISH packet: fixed header, topic, packet id, payload."""
    remaining = 2 + len(topic.encode()) + 2 + payload_bytes
    length_bytes = 1 if remaining < 128 else 2 if remaining < 16384 else 3 if remaining < 2097152 else 4
    return 1 + length_bytes + remaining


class MqttTransport(Transport):
    kind = "mqtt"

    def __init__(self, settings: MqttUpstream, device: str, folder: Path) -> None:
        super().__init__()
        self.settings = settings
        self.topic = f"{settings.topic_prefix}/{device}"
        self.host, _, port = settings.broker.rpartition(":")
        self.port = int(port)
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=settings.client_id or f"appliance-{device}",
            clean_session=False,  # the broker keeps our session (and any subscriptions) across reconnects
            protocol=mqtt.MQTTv311,
        )
        client.will_set(f"{self.topic}/status", "offline", qos=1, retain=True)
        self.context = tls_context(settings.tls, folder) if settings.tls is not None else None
        self.secure, self.loopback = self.context is not None, is_loopback(self.host)
        if self.context is not None:
            client.tls_set_context(self.context)
        if settings.username is not None:
            password = None
            if settings.password_file:
                secret = read_secret(folder / settings.password_file, "the upstream's password_file")
                password = secret.decode().strip()
            client.username_pw_set(settings.username, password)
        client.reconnect_delay_set(min_delay=1, max_delay=30)
        client.max_inflight_messages_set(64)
        client.max_queued_messages_set(0)  # no limit: the sync service bounds what it hands over
        client.on_pre_connect = self._connecting
        client.on_connect_fail = self._not_connected
        client.on_connect = self._connected
        client.on_disconnect = self._disconnected
        client.on_publish = self._published
        self.client = client
        self._lock = threading.Lock()
        self._tokens: dict[int, object] = {}
        self._early: set[int] = set()  # PUBACKs that arrived before publish() returned their mid
        self._on_ack: Ack = lambda token: None
        self._on_state: StateChange = lambda up: None

    def start(self, on_ack: Ack, on_state: StateChange) -> None:
        self._on_ack, self._on_state = on_ack, on_state
        self.plain(self.settings.broker)
        self.client.connect_async(self.host, self.port, keepalive=self.settings.keepalive_s)
        self.client.loop_start()

    def send(self, stream: str, priority: str, payload: bytes, token: object) -> None:
        self._publish(f"{self.topic}/{stream}/{priority}", payload, token)

    def probe(self, payload: bytes, token: object) -> None:
        self._publish(f"{self.topic}/probe", payload, token)

    def stop(self) -> None:
        was = self.connected
        if was:
            self._publish(f"{self.topic}/status", b"offline", _STATUS, retain=True).wait_for_publish(0.5)
        self.client.disconnect()
        self.connected = False
        if was:  # its network thread sends the DISCONNECT, then ends
            self.client.loop_stop()
        else:  # it may be in paho's wait between reconnect attempts (sleeps of up to 1 s): not waited for
            threading.Thread(target=self.client.loop_stop, name="mqtt-stop", daemon=True).start()

    def _publish(
        self, topic: str, payload: bytes, token: object, retain: bool = False
    ) -> mqtt.MQTTMessageInfo:
        info = self.client.publish(topic, payload, qos=1, retain=retain)
        self.bytes_sent += publish_size(topic, len(payload))
        with self._lock:
            if info.mid not in self._early:
                self._tokens[info.mid] = token
                return info
            self._early.discard(info.mid)
        if token is not _STATUS:
            self._on_ack(token)
        return info

    def _published(
        self, client: mqtt.Client, userdata: object, mid: int, reason: ReasonCode, properties: object
    ) -> None:
        with self._lock:
            token = self._tokens.pop(mid, None)
            if token is None:
                self._early.add(mid)
                return
        if token is not _STATUS:
            self._on_ack(token)

    def _connecting(self, client: mqtt.Client, userdata: object) -> None:
        if self.context is not None:
            self.context.failure = None

    def _not_connected(self, client: mqtt.Client, userdata: object) -> None:
        """No connection (no answer, or TLS refused: a certificate or a pin), so nothing was sent."""
        failure = self.context.failure if self.context is not None else None
        error = failure or f"cannot connect to {self.host}:{self.port}"
        if failure and error != self.last_error:  # once, not at every retry
            log.warning("MQTT %s:%d: %s", self.host, self.port, failure)
        self.last_error = error
        self._on_state(False)

    def _connected(
        self, client: mqtt.Client, userdata: object, flags: object, reason: ReasonCode, properties: object
    ) -> None:
        if reason.is_failure:
            self.last_error = f"broker refused the connection: {reason}"
            log.warning("MQTT %s:%d: %s", self.host, self.port, self.last_error)
            return
        self._publish(f"{self.topic}/status", b"online", _STATUS, retain=True)
        self.connected = True
        self.last_error = None
        log.info("MQTT connected to %s:%d", self.host, self.port)
        self._on_state(True)

    def _disconnected(
        self, client: mqtt.Client, userdata: object, flags: object, reason: ReasonCode, properties: object
    ) -> None:
        was, self.connected = self.connected, False
        if was:
            self.last_error = f"disconnected: {reason}"
            log.warning("MQTT %s:%d %s", self.host, self.port, self.last_error)
        self._on_state(False)
