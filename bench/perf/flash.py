"""The flash window of the `runtime` section of `bench perf`: flash_bytes_per_reading, the bytes the
`appliance run` process sent towards its storage per reading it stored, over a window of the whole bench
world (no load, the world's broker up so sync runs), with the checkpoint that the window's WAL frames still
owe; what its QC evidence thread wrote apart (flash_evidence_bytes_per_reading).
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Any

from bench.harness.watched import QuietRun, Run

PAGE = 4096  # the page cache's unit: what write_bytes counts a file's writes in


def _io(pid: int | str) -> int:
    """Bytes a process (or this thread: "thread-self") sent towards storage: its write_bytes, which the
    kernel counts as it dirties page-cache pages of a file (so repeated writes to a page before it is
    written back count once, and a page dirtied through a shared mmap such as SQLite's -shm counts too),
    less cancelled_write_bytes, what it truncated away before the kernel wrote it back. Both work here
    (ext4); on tmpfs write_bytes stays 0, so the window runs in a folder of the real disk. The file
    system's own metadata journal is written by a kernel thread and is in neither."""
    fields = dict(line.split(":") for line in Path(f"/proc/{pid}/io").read_text().splitlines())
    return int(fields["write_bytes"]) - int(fields["cancelled_write_bytes"])


def _wal(db: Path) -> tuple[bytes, int, list[int]]:
    """The WAL as a checkpoint would find it: its salt (a new one each time SQLite starts it over), its
    page size, and the page number of each frame up to the last commit (the runtime keeps the file locked
    for itself, so it is read as a file: docs/sync.md)."""
    try:
        data = (db.parent / (db.name + "-wal")).read_bytes()
    except FileNotFoundError:
        return b"", 0, []
    if len(data) < 32:
        return b"", 0, []
    size, salt = int.from_bytes(data[8:12], "big"), data[16:24]
    pages: list[int] = []
    committed = 0
    for at in range(32, len(data) - 24 - size + 1, 24 + size):
        if data[at + 8 : at + 16] != salt:
            break  # a frame of an earlier round: the valid ones end here
        pages.append(int.from_bytes(data[at : at + 4], "big"))
        if int.from_bytes(data[at + 4 : at + 8], "big"):
            committed = len(pages)
    return salt, size, pages[:committed]


def _blocks(size: int, pages: list[int]) -> set[int]:
    """The 4 KiB blocks of the database file that these pages lie in."""
    return {(page - 1) * size // PAGE for page in pages}


def _owed(before: tuple[bytes, int, list[int]], after: tuple[bytes, int, list[int]]) -> tuple[int, int]:
    """What the next checkpoint writes for the WAL frames written since `before`: the 4 KiB blocks of the
    database file they change and frames before them (since SQLite last started the WAL over) did not;
    those the same checkpoint writes anyway, once, however often they change. With those: an upper bound,
    as if a checkpoint came at the end of the window."""
    salt, size, pages = after
    earlier = before[2] if salt == before[0] else []
    changed = _blocks(size, pages[len(earlier) :])
    return len(changed - _blocks(size, earlier)) * PAGE, len(changed) * PAGE


def _threads(pid: int) -> dict[str, tuple[int, int]]:
    """Per thread of the process: its net bytes towards storage (as _io) and its wchar."""
    found = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            fields = dict(line.split(":") for line in (task / "io").read_text().splitlines())
        except OSError:
            continue  # ended meanwhile
        net = int(fields["write_bytes"]) - int(fields["cancelled_write_bytes"])
        found[task.name] = (net, int(fields["wchar"]))
    return found


def _evidence(folder: Path) -> dict[str, int]:
    with contextlib.suppress(FileNotFoundError):
        return {p.name: p.stat().st_size for p in folder.iterdir() if p.is_file()}
    return {}


def _evidence_writes(before: dict[str, tuple[int, int]], after: dict[str, tuple[int, int]], size: int) -> int:
    """Bytes the QC evidence thread sent towards storage: the thread that wrote exactly the new evidence
    files' bytes (it writes nothing else), its pages and the file system's bookkeeping of new files;
    else the new files' pages."""
    for tid, (net, wchar) in after.items():
        was = before.get(tid, (0, 0))
        if size and wchar - was[1] == size:
            return net - was[0]
    return -(-size // PAGE) * PAGE


def _store(run: Run) -> dict[str, Any]:
    return dict((run.status() or {}).get("services", {}).get("store", {}))


def _after_a_flush(run: Run, timeout: float) -> dict[str, Any]:
    """The store's status just after it next wrote records into the database: a window that starts and
    ends there holds whole flushes (a store without flushes commits every interval: any commit does)."""
    key = "flushes" if "flushes" in _store(run) else "commits"
    seen = _store(run).get(key)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        store = _store(run)
        if store.get(key) != seen:
            return store
        time.sleep(0.02)
    raise RuntimeError(f"the store did not commit within {timeout} s")


def flash_window(seconds: float, folder: Path) -> dict[str, Any]:
    """`appliance run` on the bench world of examples/bench.toml with its broker, warmed up; then for
    at least `seconds`, from just after a flush to just after a later one: the bytes its process wrote
    (the evidence thread's apart), plus the checkpoint its WAL frames still owe (_owed), per reading the
    store committed. `bytes_per_reading_upper` counts every block the window's frames change as if a
    checkpoint came at its end; a block changed again and again (an index's last page) is in fact written
    once per checkpoint, every few megabytes of WAL, not once per window."""
    run = QuietRun(folder, broker=True)
    try:
        if not run.wait_until(lambda s: bool((s.get("qc") or {}).get("frames")), timeout=60):
            raise RuntimeError("the bench world did not come up: " + "".join(run.tail))
        time.sleep(5.0)  # the first batches and probes of the sync, the feature windows filling
        data, pid = folder / "data", run.proc.pid
        store = _after_a_flush(run, 120)
        written, threads, wal = _io(pid), _threads(pid), _wal(data / "appliance.db")
        evidence = _evidence(data / "evidence")
        began = time.monotonic()
        time.sleep(seconds)
        end = _after_a_flush(run, 120)
        took = time.monotonic() - began
        written, threads_after = _io(pid) - written, _threads(pid)
        checkpoint, checkpoint_upper = _owed(wal, _wal(data / "appliance.db"))
        later = _evidence(data / "evidence")
        files = sum(size for name, size in later.items() if name not in evidence)
        readings = int(end["rows_committed"]) - int(store["rows_committed"])
    finally:
        run.stop()
    evidence_writes = _evidence_writes(threads, threads_after, files)
    return {
        "seconds": round(took, 1),
        "readings": readings,
        "readings_per_s": round(readings / took, 1),
        "process_bytes": written,
        "checkpoint_bytes": checkpoint,
        "evidence_files": len(later) - len(evidence),
        "evidence_file_bytes": files,
        "evidence_written_bytes": evidence_writes,
        "bytes_per_reading": round((written - evidence_writes + checkpoint) / readings, 1),
        "bytes_per_reading_upper": round((written - evidence_writes + checkpoint_upper) / readings, 1),
        "evidence_bytes_per_reading": round(evidence_writes / readings, 1),
    }
