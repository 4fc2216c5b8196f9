"""The supervisor's datagrams: authentic ones pass; altered, foreign, replayed and garbage ones do not."""

from __future__ import annotations

import hashlib
import hmac
import os
import random
import stat
from pathlib import Path

import pytest

from appliance.safety.protocol import (
    CAUSES,
    MAX_DATAGRAM,
    REASON_BYTES,
    Kind,
    Message,
    ProtocolError,
    Sender,
    Sequencer,
    bounded_causes,
    clip,
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
    with pytest.raises(PermissionError, match="has mode 644: its group or others may read it"):
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
    ("datagram", "size", "reason"),
    [
        (b"", None, "unauthenticated"),
        (b"\x00" * 16 + b'{"kind":"reset"}', None, "unauthenticated"),
        (bytes(5000), None, "unauthenticated"),  # big garbage is garbage first
        (bytes(100), 300_000, "too_large"),  # cut by the receive buffer: cannot be authenticated
    ],
)
def test_foreign_datagrams_are_refused(datagram: bytes, size: int | None, reason: str) -> None:
    with pytest.raises(ProtocolError) as caught:
        decode(b"k" * 32, datagram, size=size)
    assert caught.value.reason == reason and caught.value.authentic is False


def _signed(payload: bytes) -> bytes:
    return hmac.new(b"k" * 32, payload, hashlib.sha256).digest()[:16] + payload


def test_an_authentic_message_too_large_or_unreadable_is_refused_as_authentic() -> None:
    big = _signed(b'{"kind":"trip","sender":"x","seq":1,"sent_ns":1,"reason":"' + b"a" * 5000 + b'"}')
    for datagram, reason in ((big, "too_large"), (_signed(b"not json"), "malformed")):
        with pytest.raises(ProtocolError) as caught:
            decode(b"k" * 32, datagram)
        assert caught.value.reason == reason and caught.value.authentic is True


def test_text_is_bounded_in_utf8_bytes_not_characters() -> None:
    emoji = "\U0001f525" * 200  # 800 bytes of UTF-8, 2400 as JSON \\u escapes
    assert clip(emoji, 512).encode() == ("\U0001f525" * 127).encode() + b"..."
    assert clip("guard open", 512) == "guard open"
    assert clip("lone \ud83d surrogate", 100) == "lone ? surrogate"  # what a JSON body may carry
    sender = Sender(b"k" * 32, "runtime")
    for reason in (emoji * 10, "\ud83d" * 3000, "x" * 100_000):
        packet = sender.message(Kind.TRIP, reason, {"cause_ns": 7})
        message = decode(b"k" * 32, packet)
        assert len(packet) <= MAX_DATAGRAM and message.data == {"cause_ns": 7}
        assert len(message.reason.encode()) <= REASON_BYTES


def test_causes_always_fit_a_heartbeat_and_never_shrink_to_none() -> None:
    sender = Sender(b"k" * 32, "runtime")
    for causes in (
        [],
        ["oil too hot: 91 above 80"],
        ["\U0001f525" * 500] * 3,
        [f"rule {i}" * 40 for i in range(50)],
    ):
        bounded = bounded_causes(causes)
        assert len(bounded) == min(len(causes), CAUSES)
        packet = sender.message(Kind.HEARTBEAT, data={"causes": bounded})
        assert len(packet) <= MAX_DATAGRAM
    assert bounded_causes([str(i) for i in range(20)])[-1] == "and 13 more causes"
    with pytest.raises(ValueError, match="at most"):
        sender.message(Kind.HEARTBEAT, data={"causes": ["x" * 5000]})


def test_altered_or_wrongly_keyed_messages_are_refused() -> None:
    good = encode(b"k" * 32, Message(Kind.RESET, "api", 1, 5, "operator"))
    altered = good.replace(b"operator", b"attacker")
    for secret, datagram in ((b"k" * 32, altered), (b"x" * 32, good)):
        with pytest.raises(ProtocolError, match="tag does not match"):
            decode(secret, datagram)


def test_authentic_but_malformed_is_its_own_reason() -> None:
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
