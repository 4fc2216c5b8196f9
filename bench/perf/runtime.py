"""The `runtime` section of `bench perf`: bounded stops and starts, measured with the stop harness
(stops.py) on the whole bench world of examples/bench.toml under two busy loops on every core.

- stop_s_max, stop_s_p99: from SIGTERM to the exit, over 500 stops (25 with `--quick`) at the harness's
  moments (while starting, running, just after a commit, during a camera reconnect, with the broker down);
- start_s_p99: from the spawn to the first status answer, over the runs that got that far;
- records_lost_on_stop: readings the runtime said it committed that the next start could not find;
- flash_bytes_per_reading: bytes the `appliance run` process sent towards its storage per reading it
  stored, over a window of the whole bench world (no load, the world's broker up so sync runs), with the
  checkpoint that the window's WAL frames still owe; what its QC evidence thread wrote apart
  (flash_evidence_bytes_per_reading).
"""

from __future__ import annotations

import collections
import contextlib
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from bench.harness.load import cpu_load
from bench.harness.watched import Run
from bench.perf.stops import StopRun, stop_runs

RUNS, QUICK_RUNS = 500, 25
RUN_S = 8.0  # the load outlasts this many seconds a run at most
FLASH_S, QUICK_FLASH_S = 90.0, 30.0  # the flash window, at least; it ends at the store's next flush
PAGE = 4096  # the page cache's unit: what write_bytes counts a file's writes in


def _p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] if ordered else 0.0


def _progress(i: int, run: StopRun) -> None:
    if (i + 1) % 25 == 0 or not run.clean or run.overran:
        note = f" code {run.code}, overran {run.overran}, lost {run.lost}" if run.code or run.overran else ""
        print(f"runtime: stop {i + 1}: {run.moment} {run.stop_s:.2f} s{note}", flush=True)


def run(quick: bool) -> dict[str, Any]:
    count = QUICK_RUNS if quick else RUNS
    if shutil.which("pgrep") is None:
        return {"skipped": "pgrep (Debian package procps) is not installed"}
    began = time.monotonic()
    with tempfile.TemporaryDirectory() as folder:
        flash = flash_window(QUICK_FLASH_S if quick else FLASH_S, Path(folder))
    with tempfile.TemporaryDirectory() as folder, cpu_load(count * RUN_S) as loops:
        runs = stop_runs(count, Path(folder), progress=_progress)
        failed = {f"run{i}": r.as_dict() for i, r in enumerate(runs) if not r.clean}
    stops = [r.stop_s for r in runs]
    starts = [r.start_s for r in runs if r.start_s is not None]
    by_moment: dict[str, list[float]] = collections.defaultdict(list)
    for r in runs:
        by_moment[r.moment].append(r.stop_s)
    lost = sum(r.lost for r in runs)
    figures = {
        "stop_s_max": {"measured": len(stops), "baseline": "budget 2.0 s", "unit": "stops"},
        "stop_s_p99": {"measured": len(stops), "baseline": "-", "unit": "s"},
        "start_s_p99": {"measured": len(starts), "baseline": "first status answer", "unit": "s"},
        "records_lost_on_stop": {
            "measured": sum(r.committed for r in runs),
            "baseline": "committed",
            "unit": "readings",
        },
        "flash_bytes_per_reading": {
            "measured": flash["readings"],
            "baseline": "process writes",
            "unit": "bytes/reading",
        },
        "flash_evidence_bytes_per_reading": {
            "measured": flash["evidence_files"],
            "baseline": "evidence files",
            "unit": "bytes/reading",
        },
    }
    return {
        "stop_s_max": round(max(stops), 3),
        "stop_s_p99": round(_p(stops, 0.99), 3),
        "start_s_p99": round(_p(starts, 0.99), 3),
        "records_lost_on_stop": lost,
        "flash_bytes_per_reading": flash["bytes_per_reading"],
        "flash_evidence_bytes_per_reading": flash["evidence_bytes_per_reading"],
        "figures": figures,
        "detail": {
            "flash": flash,
            "stops": len(stops),
            "busy_loops": loops,
            "stop_s_p50": round(_p(stops, 0.5), 3),
            "start_s_p50": round(_p(starts, 0.5), 3),
            "start_s_max": round(max(starts, default=0.0), 3),
            "stop_s_max_by_moment": {m: round(max(v), 3) for m, v in sorted(by_moment.items())},
            "stops_by_moment": {m: len(v) for m, v in sorted(by_moment.items())},
            "exits_not_zero": sum(r.code != 0 and not r.early for r in runs),
            "ended_before_python_took_the_signal": sum(r.early for r in runs),
            "services_overran": dict(collections.Counter(s for r in runs for s in r.overran)),
            "leftover_processes": sum(r.leftover for r in runs),
            "failed_runs": failed,
            "seconds": round(time.monotonic() - began, 1),
        },
    }


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


class _QuietRun(Run):
    """A run whose log goes to a pipe rather than a file on the disk being measured (a box logs to the
    journal, another process); the pipe is drained, its tail kept for an error."""

    def __init__(self, folder: Path) -> None:
        super().__init__(folder, broker=True, stderr=subprocess.PIPE)
        self.tail: collections.deque[str] = collections.deque(maxlen=50)
        self._drain = threading.Thread(target=self._read, daemon=True)
        self._drain.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.tail.append(line.decode(errors="replace"))

    def stop(self) -> tuple[float, int | None]:
        result = super().stop()
        self._drain.join(5)
        self.log.write_text("".join(self.tail))
        return result


def flash_window(seconds: float, folder: Path) -> dict[str, Any]:
    """`appliance run` on the bench world of examples/bench.toml with its broker, warmed up; then for
    at least `seconds`, from just after a flush to just after a later one: the bytes its process wrote
    (the evidence thread's apart), plus the checkpoint its WAL frames still owe (_owed), per reading the
    store committed. `bytes_per_reading_upper` counts every block the window's frames change as if a
    checkpoint came at its end; a block changed again and again (an index's last page) is in fact written
    once per checkpoint, every few megabytes of WAL, not once per window."""
    run = _QuietRun(folder)
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
