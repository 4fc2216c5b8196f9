"""Messages between the runtime and the safety supervisor: one packet each, authenticated with
HMAC-SHA256 under a secret only the two share, numbered and stamped so a recorded message cannot be
played again.

A packet is a 16-byte tag followed by compact JSON: `{"kind": "heartbeat"|"trip"|"reset"|"status",
"sender": str, "seq": int, "sent_ns": int, "reason": str, "data": {...}}`, where the tag is the first
16 bytes of HMAC-SHA256(secret, json) and `sent_ns` is CLOCK_MONOTONIC in nanoseconds (one clock for
every process on the box, so latencies can be measured across them). `data` carries what a kind needs:
a heartbeat its `causes`, a trip its `cause_ns`, a status the supervisor's state.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import json
import os
import secrets
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from appliance.ops.secrets import create_secret, read_secret

TAG_BYTES = 16
MAX_DATAGRAM = 4096  # a request to the supervisor
MAX_REPLY = 16384  # the supervisor's status, with its latest changes
RECEIVE_BYTES = 1 << 18  # what the supervisor reads to authenticate an over-size request before refusing it
# Text is bounded in UTF-8 bytes, not characters: 200 emoji are 800 bytes. A trip's reason is cut to
# REASON_BYTES; a heartbeat carries at most CAUSES causes of CAUSE_BYTES each, so every request fits.
REASON_BYTES = 512
CAUSE_BYTES = 300
CAUSES = 8
RULE_NAME_BYTES = 120  # a rule's name, checked in the config: a cause is its name and what it saw
SECRET_BYTES = 32
MAX_AGE_NS = 2_000_000_000  # older messages are refused as replays


class Kind(enum.StrEnum):
    HEARTBEAT = "heartbeat"
    TRIP = "trip"
    RESET = "reset"
    STATUS = "status"


class ProtocolError(ValueError):
    """A packet refused: `reason` is one of too_large, unauthenticated, malformed, replayed, stale.
    `authentic` is True when the tag matched: the peer holds the secret but its message cannot be read."""

    def __init__(self, reason: str, message: str, authentic: bool = False) -> None:
        super().__init__(message)
        self.reason = reason
        self.authentic = authentic


@dataclass(frozen=True, slots=True)
class Message:
    kind: Kind
    sender: str
    seq: int
    sent_ns: int
    reason: str = ""
    data: Mapping[str, Any] = field(default_factory=dict)


def load_or_create_secret(path: Path) -> bytes:
    """The shared secret, made on first use with mode 0600; a file that is not the service user's alone is
    refused (appliance/ops/secrets.py)."""
    try:
        data = read_secret(path, "the safety key")
    except FileNotFoundError:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        data = secrets.token_bytes(SECRET_BYTES)
        try:
            create_secret(path, data)
        except FileExistsError:  # the other process made it first (or a link is there: refused below)
            data = read_secret(path, "the safety key")
    if len(data) != SECRET_BYTES:
        raise ValueError(f"{path}: {len(data)} bytes, a safety secret has {SECRET_BYTES}")
    return data


def clip(text: str, limit: int) -> str:
    """`text` cut to at most `limit` bytes of UTF-8 at a character boundary, marked with "..." when cut;
    characters UTF-8 cannot carry (lone surrogates from a JSON body) become "?"."""
    data = text.encode("utf-8", "replace")
    if len(data) <= limit:
        return data.decode("utf-8")
    return data[: max(0, limit - 3)].decode("utf-8", "ignore") + "..."


def bounded_causes(causes: Sequence[str]) -> list[str]:
    """Causes that fit a heartbeat: each clipped, at most CAUSES of them, the rest counted in the last
    (never fewer than given: an empty list means "healthy")."""
    kept = [clip(c, CAUSE_BYTES) for c in causes[:CAUSES]]
    if len(causes) > CAUSES:
        kept[-1] = f"and {len(causes) - CAUSES + 1} more causes"
    return kept


def encode(secret: bytes, message: Message) -> bytes:
    payload = json.dumps(
        {
            "kind": str(message.kind),
            "sender": message.sender,
            "seq": message.seq,
            "sent_ns": message.sent_ns,
            "reason": message.reason,
            "data": dict(message.data),
        },
        separators=(",", ":"),
        ensure_ascii=False,  # UTF-8: an emoji costs 4 bytes, not 12
    ).encode("utf-8", "replace")
    return hmac.new(secret, payload, hashlib.sha256).digest()[:TAG_BYTES] + payload


def decode(secret: bytes, datagram: bytes, limit: int = MAX_DATAGRAM, size: int | None = None) -> Message:
    """The message, or ProtocolError saying why it is refused; replays are `Sequencer`'s to catch.
    `size` is the packet's real length when the receive buffer cut it (then it cannot be authenticated)."""
    if size is not None and size > len(datagram):
        raise ProtocolError("too_large", f"{size} bytes; more than {len(datagram)} cannot be authenticated")
    tag, payload = datagram[:TAG_BYTES], datagram[TAG_BYTES:]
    expected = hmac.new(secret, payload, hashlib.sha256).digest()[:TAG_BYTES]
    if len(tag) != TAG_BYTES or not hmac.compare_digest(tag, expected):
        raise ProtocolError("unauthenticated", "the tag does not match: wrong secret or altered message")
    if len(datagram) > limit:
        raise ProtocolError("too_large", f"{len(datagram)} bytes; at most {limit}", authentic=True)
    try:
        fields = json.loads(payload)
        message = Message(
            Kind(fields["kind"]),
            str(fields["sender"]),
            int(fields["seq"]),
            int(fields["sent_ns"]),
            str(fields.get("reason", "")),
            dict(fields.get("data", {})),
        )
    except (ValueError, KeyError, TypeError) as exc:  # authentic but not ours: a bug on the other side
        raise ProtocolError("malformed", f"authenticated but not a message: {exc}", authentic=True) from None
    return message


class Sequencer:
    """Per sender, numbers must grow, and no message may be older than MAX_AGE_NS: a message played
    again is refused, on the same connection or a new one."""

    def __init__(self) -> None:
        self.last: dict[str, int] = {}

    def accept(self, message: Message, now_ns: int | None = None) -> None:
        now_ns = time.monotonic_ns() if now_ns is None else now_ns
        age = now_ns - message.sent_ns
        if not -MAX_AGE_NS < age < MAX_AGE_NS:
            raise ProtocolError("stale", f"{message.sender} #{message.seq} was sent {age / 1e9:.1f} s ago")
        last = self.last.get(message.sender, -1)
        if message.seq <= last:
            raise ProtocolError("replayed", f"{message.sender} #{message.seq} after #{last}")
        self.last[message.sender] = message.seq


class Sender:
    """Numbers and stamps the messages of one sender (a fresh sender id each process start)."""

    def __init__(self, secret: bytes, name: str) -> None:
        self.secret = secret
        self.sender = f"{name}-{os.getpid()}-{secrets.token_hex(4)}"
        self.seq = 0

    def message(self, kind: Kind, reason: str = "", data: Mapping[str, Any] | None = None) -> bytes:
        """The packet; its reason clipped to REASON_BYTES. A trip that still does not fit goes without its
        extra data; anything else that does not fit is the caller's bug (ValueError), never sent cut."""
        self.seq += 1
        message = Message(
            kind, self.sender, self.seq, time.monotonic_ns(), clip(reason, REASON_BYTES), data or {}
        )
        packet = encode(self.secret, message)
        if len(packet) <= MAX_DATAGRAM:
            return packet
        if kind is Kind.TRIP:
            cause = {k: v for k, v in message.data.items() if k == "cause_ns"}
            return encode(
                self.secret, Message(kind, self.sender, self.seq, message.sent_ns, message.reason, cause)
            )
        raise ValueError(f"a {kind} message of {len(packet)} bytes; at most {MAX_DATAGRAM}")
