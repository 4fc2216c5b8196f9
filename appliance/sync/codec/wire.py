"""The batch format's primitives: limits, varints, zigzag, texts and number columns (docs/sync.md)."""

from __future__ import annotations

import math

MAX_PAYLOAD = 16 << 20
MAX_BODY = 64 << 20  # decompressed; a frame that claims more is refused before it is inflated
MAX_RECORDS = 100_000
LIMIT = 1 << 53  # decimal mantissas and timestamps in microseconds: exact as doubles
MAX_SPLIT = 8  # low byte planes a number column may have: all of a 64-bit word


class BatchFormatError(ValueError):
    """A batch that cannot be encoded or decoded; the message says what is wrong and where."""


def utf8(text: object, what: str) -> bytes:
    if not isinstance(text, str):
        raise BatchFormatError(f"{what} {text!r} is not text")
    try:
        return text.encode()
    except UnicodeEncodeError as exc:
        raise BatchFormatError(f"{what} {text!r} is not valid Unicode ({exc.reason})") from exc


def micros(stamp: object, what: str) -> int:
    """A timestamp in seconds as whole microseconds, which the format keeps."""
    if not isinstance(stamp, float | int) or not math.isfinite(stamp) or abs(stamp) * 1e6 > LIMIT:
        raise BatchFormatError(f"{what}: timestamp {stamp!r} is not finite seconds")
    return round(stamp * 1_000_000)


def zigzag(number: int) -> int:
    return number << 1 if number >= 0 else (-number << 1) - 1


def unzigzag(number: int) -> int:
    return -(number >> 1) - 1 if number & 1 else number >> 1


class Writer(bytearray):
    """Bytes being built: LEB128 varints, zigzag for signed numbers, texts after their byte length."""

    def uvarint(self, number: int) -> None:
        while number > 0x7F:
            self.append(number & 0x7F | 0x80)
            number >>= 7
        self.append(number)

    def zigzag(self, number: int) -> None:
        self.uvarint(zigzag(number))

    def text(self, text: object, what: str = "text") -> None:
        raw = utf8(text, what)
        self.uvarint(len(raw))
        self += raw

    def numbers(self, values: list[int]) -> None:
        """A number column: zigzags split into low byte planes and varints of the rest. A low byte that
        three numbers in four fill is mostly noise, which zstd codes best side by side in a plane."""
        if not values:
            return  # a column of no numbers has no split byte either
        folded = [zigzag(value) for value in values]
        lengths = sorted(number.bit_length() for number in folded)
        split = min(lengths[len(lengths) * 3 // 4] // 8, MAX_SPLIT)
        self.append(split)
        for part in _split(folded, split):
            self += part


def _split(folded: list[int], split: int) -> list[bytes]:
    """The low `split` bytes as planes, lowest byte first, then one varint for each remaining high part."""
    planes = []
    if split:
        raw = b"".join((value & ((1 << 8 * split) - 1)).to_bytes(split, "little") for value in folded)
        planes = [raw[i::split] for i in range(split)]
    high = Writer()
    for value in folded:
        high.uvarint(value >> 8 * split)
    return [*planes, bytes(high)]


class Reader:
    """Reads what Writer wrote; anything short or malformed is reported with its part and offset."""

    def __init__(self, data: bytes, part: str, pos: int = 0) -> None:
        self.data, self.part, self.pos = data, part, pos

    def fail(self, what: str) -> BatchFormatError:
        return BatchFormatError(f"{self.part} byte {self.pos}: {what}")

    def take(self, size: int) -> bytes:
        if size > len(self.data) - self.pos:
            raise self.fail(f"truncated: {size} bytes needed, {len(self.data) - self.pos} left")
        self.pos += size
        return self.data[self.pos - size : self.pos]

    def uvarint(self) -> int:
        number = shift = 0
        for pos in range(self.pos, min(self.pos + 10, len(self.data))):
            number |= (self.data[pos] & 0x7F) << shift
            if self.data[pos] < 0x80:
                self.pos = pos + 1
                return number
            shift += 7
        raise self.fail("truncated varint, or one longer than 10 bytes")

    def zigzag(self) -> int:
        return unzigzag(self.uvarint())

    def text(self, size: int | None = None) -> str:
        raw = self.take(self.uvarint() if size is None else size)
        try:
            return raw.decode()
        except UnicodeDecodeError as exc:
            raise self.fail(f"text is not UTF-8 ({exc.reason})") from exc

    def numbers(self, count: int, what: str) -> list[int]:
        """A number column of `count` signed numbers."""
        if count == 0:
            return []
        split = self.take(1)[0]
        if split > MAX_SPLIT:
            raise self.fail(f"{what}: {split} low byte planes, more than {MAX_SPLIT}")
        planes = [self.take(count) for _ in range(split)]
        low = b"".join(bytes(word) for word in zip(*planes, strict=True)) if split else b""
        values = []
        for i in range(count):
            value = self.uvarint() << 8 * split
            if split:
                value |= int.from_bytes(low[i * split : (i + 1) * split], "little")
            values.append(unzigzag(value))
        return values

    def done(self) -> None:
        if self.pos != len(self.data):
            raise self.fail(f"{len(self.data) - self.pos} stray bytes after the last column")
