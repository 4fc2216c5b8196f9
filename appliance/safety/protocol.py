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
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

TAG_BYTES = 16
MAX_DATAGRAM = 2048  # a request to the supervisor
MAX_REPLY = 16384  # the supervisor's status, with its latest changes
SECRET_BYTES = 32
MAX_AGE_NS = 2_000_000_000  # older messages are refused as replays


class Kind(enum.StrEnum):
    HEARTBEAT = "heartbeat"
    TRIP = "trip"
    RESET = "reset"
    STATUS = "status"


class ProtocolError(ValueError):
    """A packet refused: `reason` is one of too_large, unauthenticated, malformed, replayed, stale."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Message:
    kind: Kind
    sender: str
    seq: int
    sent_ns: int
    reason: str = ""
    data: Mapping[str, Any] = field(default_factory=dict)


def load_or_create_secret(path: Path) -> bytes:
    """The shared secret, made on first use with mode 0600; a file others may read is refused."""
    if path.exists():
        mode = path.stat().st_mode & 0o777
        if mode & 0o077:
            raise PermissionError(f"{path}: mode {mode:o} lets others read the safety secret; chmod 600 it")
        data = path.read_bytes()
        if len(data) != SECRET_BYTES:
            raise ValueError(f"{path}: {len(data)} bytes, a safety secret has {SECRET_BYTES}")
        return data
    path.parent.mkdir(parents=True, exist_ok=True)
    data = secrets.token_bytes(SECRET_BYTES)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
    return data


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
    ).encode()
    return hmac.new(secret, payload, hashlib.sha256).digest()[:TAG_BYTES] + payload


def decode(secret: bytes, datagram: bytes, limit: int = MAX_DATAGRAM) -> Message:
    """The message, or ProtocolError saying why it is refused; replays are `Sequencer`'s to catch."""
    if len(datagram) > limit:
        raise ProtocolError("too_large", f"{len(datagram)} bytes; at most {limit}")
    tag, payload = datagram[:TAG_BYTES], datagram[TAG_BYTES:]
    expected = hmac.new(secret, payload, hashlib.sha256).digest()[:TAG_BYTES]
    if len(tag) != TAG_BYTES or not hmac.compare_digest(tag, expected):
        raise ProtocolError("unauthenticated", "the tag does not match: wrong secret or altered message")
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
        raise ProtocolError("malformed", f"authenticated but not a message: {exc}") from None
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
        self.seq += 1
        return encode(
            self.secret, Message(kind, self.sender, self.seq, time.monotonic_ns(), reason, data or {})
        )
