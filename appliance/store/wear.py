"""What the writer's thread sent towards the disk, as the kernel counts it: the store's measure of flash
wear (`bytes_written_per_record` in its status)."""

from __future__ import annotations


def written_bytes() -> int:
    """Bytes this thread sent towards the disk: page-cache pages it dirtied (the kernel's write_bytes),
    less those it truncated before they were written back (the journal's)."""
    try:
        with open("/proc/thread-self/io") as io:
            fields = dict(line.split(":") for line in io)
        return int(fields["write_bytes"]) - int(fields["cancelled_write_bytes"])
    except (OSError, KeyError, ValueError):
        return 0


class Meter:
    """Bytes the writer's thread wrote since `begin()`, brought up to date by `account()` after each write;
    both on that thread: the kernel counts per thread."""

    def __init__(self) -> None:
        self.total = self._seen = 0

    def begin(self) -> None:
        self._seen = written_bytes()

    def account(self) -> None:
        now = written_bytes()
        self.total += now - self._seen
        self._seen = now
