"""The `[store.classes]` and `[sync]` sections: priority classes, the upstream, the link tier policy."""

from __future__ import annotations

import base64
import ipaddress
import urllib.parse
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import AfterValidator, Field, model_validator

from appliance.config.base import Settings, tagged_union
from hal.registry import Registry

if TYPE_CHECKING:
    from appliance.sync.transport import TransportFactory

ClassName = Literal["critical", "important", "normal", "background"]
TierName = Literal["minimal", "conservative", "normal", "unmetered"]


def is_loopback(host: str) -> bool:
    """True for a host on this box: localhost, 127.0.0.0/8, ::1 (brackets allowed). A name that only
    resolves to loopback is not: what it resolves to can change."""
    host = host.removeprefix("[").removesuffix("]")
    if host.lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def pin_digest(pin: str) -> bytes:
    """The 32 bytes of a `pin_sha256` entry: base64, or hex with or without colons (as openssl prints)."""
    text = pin.strip()
    hexed = text.replace(":", "")
    if len(hexed) == 64:
        try:
            return bytes.fromhex(hexed)
        except ValueError:
            pass
    try:
        digest = base64.b64decode(text, validate=True)
    except ValueError:
        digest = b""
    if len(digest) != 32:
        raise ValueError(
            f"pin_sha256 entry {pin!r}: expected a SHA-256 in base64 (44 characters) or hex (64 digits)"
        )
    return digest


def _check_pin(pin: str) -> str:
    pin_digest(pin)
    return pin


def _check_host_port(value: str) -> str:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) <= 65535:
        raise ValueError(f"expected HOST:PORT (port 1-65535), got {value!r}")
    return value


class ClassSettings(Settings):
    """Which priority class each record gets when it is stored (docs/sync.md).

    `sensors` maps glob patterns over sensor ids (DEVICE.CHANNEL, features included) to a class and
    `event_kinds` patterns over event kinds; the first matching pattern wins, in file order.
    """

    readings: ClassName = "normal"
    # by severity; defaults critical -> critical, warning -> important, info -> normal
    events: dict[Literal["critical", "warning", "info"], ClassName] = {}
    sensors: dict[Annotated[str, Field(min_length=1)], ClassName] = {}
    event_kinds: dict[Annotated[str, Field(min_length=1)], ClassName] = {}
    # files an event names as its evidence; defaults thumbnail -> important, image -> background
    evidence: dict[Literal["thumbnail", "image"], ClassName] = {}


class TlsSettings(Settings):
    """TLS to the upstream: the CA that signed its certificate and, for mutual TLS, our certificate and key
    (files on the data partition; the key never lives in the config file, and is read as a secret file)."""

    ca: Annotated[str, Field(min_length=1)] | None = None  # None: the system's CAs
    cert: Annotated[str, Field(min_length=1)] | None = None
    key: Annotated[str, Field(min_length=1)] | None = None
    # the name the certificate must hold, and sent as SNI; default: the host connected to
    server_name: Annotated[str, Field(min_length=1, max_length=253, pattern=r"^[^\s/:@]+$")] | None = None
    # SHA-256 of the upstream certificate's public key (SubjectPublicKeyInfo) or of the whole certificate:
    # with any, the certificate must also match one of them, checked before anything is sent
    pin_sha256: Annotated[list[Annotated[str, AfterValidator(_check_pin)]], Field(max_length=16)] = []

    @model_validator(mode="after")
    def _cert_with_key(self) -> TlsSettings:
        if (self.cert is None) != (self.key is None):
            raise ValueError("cert and key go together (mutual TLS needs both)")
        return self


_INSECURE_WITH_TLS = (
    "insecure = true allows an upstream without TLS; it turns no certificate check off: with TLS, drop it"
)


class MqttUpstream(Settings):
    """An MQTT broker: QoS 1, persistent session, a retained last will (docs/sync.md, Topic layout)."""

    type: Literal["mqtt"]
    broker: Annotated[str, AfterValidator(_check_host_port)]
    topic_prefix: Annotated[str, Field(pattern=r"^[^#+/][^#+]*[^#+/]$|^[^#+/]$")] = "edge"
    client_id: Annotated[str, Field(min_length=1, max_length=128)] | None = None  # default: the device id
    keepalive_s: Annotated[int, Field(ge=5, le=3600)] = 30
    username: str | None = None
    password_file: str | None = None  # a file holding the password (secrets never live in this file)
    tls: TlsSettings | None = None
    insecure: bool = False  # send in clear to a broker that is not on this box, on purpose

    @model_validator(mode="after")
    def _tls_unless_said(self) -> MqttUpstream:
        host = self.broker.rpartition(":")[0]
        if self.tls is None and not self.insecure and not is_loopback(host):
            raise ValueError(
                f"MQTT to {self.broker} without a tls table would send records and credentials in clear: "
                "add tls = {} (the system's CAs) or tls = { ca = ... }, or insecure = true to do so on "
                "purpose"
            )
        if self.tls is not None and self.insecure:
            raise ValueError(_INSECURE_WITH_TLS)
        return self


class HttpsUpstream(Settings):
    """An HTTP(S) endpoint: each batch is POSTed to `{url}/v1/batches`; a 2xx answer acknowledges it."""

    type: Literal["https"]
    url: Annotated[str, Field(pattern=r"^https?://[^/\s]+(/\S*)?$")]
    tls: TlsSettings | None = None
    token_file: str | None = None  # a file holding a bearer token, sent as `Authorization: Bearer ...`
    insecure: bool = False  # an http:// url to a host that is not this box, on purpose

    @model_validator(mode="after")
    def _tls_unless_said(self) -> HttpsUpstream:
        url = urllib.parse.urlsplit(self.url)
        if url.scheme == "http":
            if self.tls is not None:
                raise ValueError(f"a tls table needs an https:// url, not {self.url}")
            if not self.insecure and not is_loopback(url.hostname or ""):
                raise ValueError(
                    f"{self.url} would send records and the token in clear: use https://, or insecure = true "
                    "to do so on purpose"
                )
        elif self.insecure:
            raise ValueError(_INSECURE_WITH_TLS)
        return self


# The ways upstream, by `type`: the config class and the transport that class configures, imported when
# the sync service starts (paho stays out of `appliance check-config`). A new transport is one module:
# a `Settings` with `type: Literal["KEY"]`, a `Transport` (appliance/sync/transport.py) taking
# (settings, device, folder), and `TRANSPORTS.register("KEY", TransportClass, config=...)` (docs/sync.md).
TRANSPORTS: Registry[TransportFactory] = Registry("upstream type")
TRANSPORTS.register("mqtt", "appliance.sync.mqtt:MqttTransport", config=MqttUpstream)
TRANSPORTS.register("https", "appliance.sync.https:HttpsTransport", config=HttpsUpstream)

if TYPE_CHECKING:  # the type checker knows the built-in transports; validation takes every registered one
    Upstream = MqttUpstream | HttpsUpstream
else:
    Upstream = tagged_union(TRANSPORTS)


class TierOverride(Settings):
    """Changes to one tier's row of the default policy (docs/sync.md's table)."""

    classes: list[ClassName] | None = None
    zstd_level: Annotated[int, Field(ge=1, le=22)] | None = None
    batch_records: Annotated[int, Field(ge=1, le=1_000_000)] | None = None
    batch_bytes: Annotated[int, Field(ge=1024, le=64 * 1024 * 1024)] | None = None
    interval_s: Annotated[float, Field(ge=0, le=86400)] | None = None


class ThresholdSettings(Settings):
    """Where the measured goodput puts the link, and how sticky the tier is."""

    minimal_below_mbit: Annotated[float, Field(gt=0)] = 5.0
    normal_above_mbit: Annotated[float, Field(gt=0)] = 25.0
    hysteresis: Annotated[float, Field(ge=0, lt=1)] = 0.2
    hold_s: Annotated[float, Field(ge=0, le=3600)] = 10.0
    probe_interval_s: Annotated[float, Field(ge=1, le=86400)] = 60.0

    @model_validator(mode="after")
    def _ordered(self) -> ThresholdSettings:
        if self.minimal_below_mbit >= self.normal_above_mbit:
            raise ValueError("minimal_below_mbit must be below normal_above_mbit")
        return self


class SyncSettings(Settings):
    """Sending the store's records upstream, most important first, as far as the link allows."""

    upstream: Upstream
    metered: bool = False  # a hint: a metered link never reaches the unmetered tier
    link: Literal["ethernet", "wifi", "cellular", "satellite", "other"] = "other"  # reported only
    max_tier: TierName | None = None  # never go above this tier
    max_inflight: Annotated[int, Field(ge=1, le=64)] = 8  # batches sent and not yet acknowledged
    ack_timeout_s: Annotated[float, Field(gt=0, le=600)] = 15.0
    thresholds: ThresholdSettings = ThresholdSettings()
    tiers: dict[TierName, TierOverride] = {}
