"""The supervisor's datagrams: authentic ones pass; altered, foreign, replayed and garbage ones do not."""

from __future__ import annotations

import os
import random
import stat
from pathlib import Path

import pytest

from appliance.safety.protocol import (
    Kind,
    Message,
    ProtocolError,
    Sender,
    Sequencer,
    decode,
    encode,
    load_or_create_secret,
)


def test_the_secret_is_private_and_kept(tmp_path: Path) -> None:
    path = tmp_path / "run" / "safety.key"
    secret = load_or_create_secret(path)
    assert len(secret) == 32 and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_or_create_secret(path) == secret
    os.chmod(path, 0o644)
    with pytest.raises(PermissionError, match="lets others read"):
        load_or_create_secret(path)


def test_round_trip_and_sequence() -> None:
    secret = b"k" * 32
    sender = Sender(secret, "runtime")
    sequencer = Sequencer()
    first = decode(secret, sender.message(Kind.HEARTBEAT))
    trip = decode(secret, sender.message(Kind.TRIP, "crack on frame 12"))
    for message in (first, trip):
        sequencer.accept(message)
    assert (trip.kind, trip.reason, trip.seq) == (Kind.TRIP, "crack on frame 12", 2)
    assert trip.sent_ns >= first.sent_ns and trip.sender == first.sender
    with pytest.raises(ProtocolError) as caught:
        sequencer.accept(first)
    assert caught.value.reason == "replayed"


@pytest.mark.parametrize(
    ("datagram", "reason"),
    [
        (b"", "unauthenticated"),
        (b"\x00" * 16 + b'{"kind":"reset"}', "unauthenticated"),
        (bytes(3000), "too_large"),
    ],
)
def test_foreign_datagrams_are_refused(datagram: bytes, reason: str) -> None:
    with pytest.raises(ProtocolError) as caught:
        decode(b"k" * 32, datagram)
    assert caught.value.reason == reason


def test_altered_or_wrongly_keyed_messages_are_refused() -> None:
    good = encode(b"k" * 32, Message(Kind.RESET, "api", 1, 5, "operator"))
    altered = good.replace(b"operator", b"attacker")
    for secret, datagram in ((b"k" * 32, altered), (b"x" * 32, good)):
        with pytest.raises(ProtocolError, match="tag does not match"):
            decode(secret, datagram)


def test_authentic_but_malformed_is_its_own_reason() -> None:
    import hashlib
    import hmac

    payload = b'{"kind":"explode","sender":"x","seq":1,"sent_ns":1}'
    datagram = hmac.new(b"k" * 32, payload, hashlib.sha256).digest()[:16] + payload
    with pytest.raises(ProtocolError) as caught:
        decode(b"k" * 32, datagram)
    assert caught.value.reason == "malformed"


def test_garbage_never_raises_anything_else() -> None:
    rng = random.Random(5)
    secret = b"k" * 32
    for _ in range(3000):
        datagram = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 80)))
        with pytest.raises(ProtocolError):
            decode(secret, datagram)
