"""The bench's reader of the batch format's primitives (docs/sync.md, "Primitives"), faults named."""

from __future__ import annotations

EXACT = 2**53  # the largest mantissa, and timestamp in microseconds, the format allows
MAX_PLANES = 8


class BadBatch(ValueError):
    """A payload that is not a valid batch; the message says what is wrong."""


class Cursor:
    """Walks a byte string; every read past the end or malformed value is a BadBatch naming the offset."""

    def __init__(self, data: bytes, part: str, at: int = 0) -> None:
        self.data, self.part, self.at = data, part, at

    def bad(self, problem: str) -> BadBatch:
        return BadBatch(f"{self.part}, offset {self.at}: {problem}")

    def raw(self, size: int) -> bytes:
        end = self.at + size
        if end > len(self.data):
            raise self.bad(f"needs {size} more bytes, has {len(self.data) - self.at}")
        chunk, self.at = self.data[self.at : end], end
        return chunk

    def byte(self) -> int:
        return self.raw(1)[0]

    def varint(self) -> int:
        value = 0
        for shift in range(0, 70, 7):
            byte = self.byte()
            value += (byte & 0x7F) << shift
            if byte < 0x80:
                return value
        raise self.bad("varint runs past 10 bytes")

    def signed(self) -> int:
        return unzigzag(self.varint())

    def text(self, length: int | None = None) -> str:
        data = self.raw(self.varint() if length is None else length)
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise self.bad(f"invalid UTF-8: {exc}") from exc

    def column(self, n: int, what: str) -> list[int]:
        """A number column of n signed integers: k byte planes of the low bytes, then varints of the rest."""
        if not n:
            return []
        planes = self.byte()
        if planes > MAX_PLANES:
            raise self.bad(f"{what}: {planes} byte planes, at most {MAX_PLANES}")
        low = [0] * n
        for plane in range(planes):
            for i, byte in enumerate(self.raw(n)):
                low[i] |= byte << (8 * plane)
        return [unzigzag(low[i] | self.varint() << (8 * planes)) for i in range(n)]

    def finished(self) -> None:
        if self.at != len(self.data):
            raise self.bad(f"{len(self.data) - self.at} bytes left over")


def unzigzag(value: int) -> int:
    return (value >> 1) ^ -(value & 1)
