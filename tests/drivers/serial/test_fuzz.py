"""Both decoders fed 2000 seeded random, truncated and corrupted byte strings: only FrameError comes out."""

from __future__ import annotations

import random

from drivers.serial.ascii import PSEN, TH_TEXT, WIMDA, AsciiDecoder, AsciiFramer, nmea_checksum
from drivers.serial.binary import EXAMPLE_SENSOR, BinaryFramer, encode
from drivers.serial.frames import Frame, FrameError, Framer

SAMPLES = 2000
PSEN_LINE = b"$PSEN,T=21.5,P=1013.2*%02X\r\n" % nmea_checksum(b"PSEN,T=21.5,P=1013.2")
WIMDA_LINE = b"$WIMDA,29.7544,I,1.0076,B,35.5,C,,,42.1,,20.6,C,116.4,T,107.7,M,1.2,N,0.6,M*66\r\n"


def mutations(rng: random.Random, good: bytes) -> bytes:
    choice = rng.randrange(5)
    if choice == 0:
        return bytes(rng.randrange(256) for _ in range(rng.randrange(64)))
    if choice == 1:
        return good[: rng.randrange(len(good) + 1)]
    if choice == 2:
        data = bytearray(good)
        for _ in range(rng.randrange(1, 4)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        return bytes(data)
    if choice == 3:
        cut = rng.randrange(len(good))
        return good[:cut] + bytes(rng.randrange(256) for _ in range(rng.randrange(8))) + good[cut:]
    return good


def test_ascii_decoder_raises_only_frame_errors() -> None:
    rng = random.Random(1234)
    decoders = [AsciiDecoder(p) for p in (PSEN, WIMDA, TH_TEXT)]
    goods = [PSEN_LINE, b"T:21.50 H:45.2\r\n", WIMDA_LINE]
    decoded = dict.fromkeys(range(len(decoders)), 0)
    failed = 0
    for _ in range(SAMPLES):
        data = mutations(rng, rng.choice(goods))
        for index, decoder in enumerate(decoders):
            try:
                values = decoder.decode(data)
            except FrameError:
                failed += 1
            else:
                assert all(isinstance(v, float) for v in values.values())
                decoded[index] += 1
    assert all(count > 0 for count in decoded.values())
    assert failed > SAMPLES


def test_streaming_framers_never_raise_and_stay_bounded() -> None:
    rng = random.Random(5678)
    framers: list[Framer] = [AsciiFramer(PSEN), AsciiFramer(TH_TEXT), BinaryFramer(EXAMPLE_SENSOR)]
    goods = [PSEN_LINE, b"T:21.50 H:45.2\n", encode({1: 21.5, 2: 1013.2, 3: 45.0})]
    counts = {Frame: 0, FrameError: 0}
    for _ in range(SAMPLES):
        data = mutations(rng, rng.choice(goods))
        for framer in framers:
            for item in framer.feed(data):
                counts[type(item)] += 1
    for framer in framers:
        for item in framer.feed(goods[2] + goods[0] + goods[1]):
            counts[type(item)] += 1
        framer.reset()
    assert counts[Frame] > 100
    assert counts[FrameError] > 100
