"""Evidence in the outbox: the files a reject's event names go upstream in a stream of their own, byte
for byte, in their class; files gone for good are reported as thinned, files on their way are waited for."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from appliance.config.models import StoreSettings
from appliance.config.sync import ClassSettings
from appliance.records import Event, Priority, Severity
from appliance.store import Store
from appliance.sync.codec import BatchFormatError, BatchHeader, EvidenceRow, decode, encode_evidence
from appliance.sync.packer import EVIDENCE_WAIT_S, BatchPacker
from bench.upstream.batches import parse
from bench.upstream.ledger import Ledger


def defect(ts: float, name: str, **data: Any) -> Event:
    return Event(
        ts,
        "qc.defect",
        Severity.WARNING,
        "qc",
        f"scratch on {name}",
        {"label": "scratch", "thumbnail": f"{name}.thumb.jpg", "image": f"{name}.jpg", **data},
    )


def with_store(
    tmp_path: Path, events: list[Event], work: Callable[[Store, BatchPacker], Any], classes: ClassSettings
) -> Any:
    """Commit the events, then run `work` (blocking; it may pack) against the running store."""
    store = Store(StoreSettings(commit_interval_ms=5, classes=classes), tmp_path)

    async def run() -> Any:
        await store.start()
        try:
            store.write(events)
            await asyncio.to_thread(store.call(lambda conn: None).result, 10)  # committed
            packer = await asyncio.to_thread(BatchPacker, store, "press-1", tmp_path / "evidence")
            try:
                return await asyncio.to_thread(work, store, packer)
            finally:
                packer.close()
        finally:
            await store.stop()

    return asyncio.run(run())


def evidence_rows(path: Path) -> list[tuple[Any, ...]]:
    with sqlite3.connect(path) as conn:
        return conn.execute("SELECT id, event_id, kind, name, prio FROM evidence ORDER BY id").fetchall()


def test_each_file_an_event_names_is_in_the_outbox_with_its_class(tmp_path: Path) -> None:
    now = time.time()
    events = [
        defect(now, "a"),
        Event(now, "estop.trip", Severity.CRITICAL, "safety", "trip", {"image": "../../etc/passwd"}),
        defect(now, "b", image=".hidden.jpg"),
        Event(now, "qc.defect", Severity.INFO, "qc", "no evidence", {"thumbnail": 7}),
    ]
    with_store(tmp_path, events, lambda *_: None, ClassSettings(evidence={"image": "normal"}))
    assert evidence_rows(tmp_path / "appliance.db") == [
        (1, 1, "thumbnail", "a.thumb.jpg", int(Priority.IMPORTANT)),
        (2, 1, "image", "a.jpg", int(Priority.NORMAL)),
        (3, 3, "thumbnail", "b.thumb.jpg", int(Priority.IMPORTANT)),  # a path or hidden name is no evidence
    ]


def test_files_go_byte_for_byte_up_to_the_batch_size_and_at_least_one(tmp_path: Path) -> None:
    folder = tmp_path / "evidence"
    folder.mkdir()
    now = time.time()
    files = {f"p{i}.thumb.jpg": os.urandom(3000 + i) for i in range(5)}
    for name, data in files.items():
        (folder / name).write_bytes(data)
    events = [defect(now + i, f"p{i}") for i in range(5)]

    def work(store: Store, packer: BatchPacker) -> list[Any]:
        # thumbnails are important; 7000 bytes hold two files of ~3 kB
        return [packer.pack("evidence", Priority.IMPORTANT, 100, 7000, 19) for _ in range(4)]

    batches = with_store(tmp_path, events, work, ClassSettings())
    assert [b.count if b else None for b in batches] == [2, 2, 1, None]
    got: list[Any] = [row for batch in batches[:3] for row in decode(batch.payload)[1]]
    assert [(r[0], r[2], r[3], r[4], r[5]) for r in got] == [
        (1 + 2 * i, i + 1, "thumbnail", f"p{i}.thumb.jpg", "image/jpeg") for i in range(5)
    ]
    assert all(r[6] == files[r[4]] for r in got)
    # the bench's own decoder reads the same
    assert [r[:6] for r in parse(batches[0].payload).records] == [tuple(r[:6]) for r in got[:2]]
    # one file larger than the cap still goes, alone
    (folder / "big.thumb.jpg").write_bytes(os.urandom(20000))

    def big(store: Store, packer: BatchPacker) -> Any:
        return packer.pack("evidence", Priority.IMPORTANT, 100, 7000, 19)

    batch = with_store(tmp_path, [defect(now, "big")], big, ClassSettings())
    assert batch.count == 1 and decode(batch.payload)[1][0][6] == (folder / "big.thumb.jpg").read_bytes()


class Clock:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_file_on_its_way_is_waited_for_and_one_gone_for_good_is_reported_thinned(tmp_path: Path) -> None:
    folder = tmp_path / "evidence"
    folder.mkdir()
    now = time.time()
    # ids 1, 3, 5 are thumbnails: 1 is gone for good (deleted by the budget), 3 there, 5 not written yet
    (folder / "b.thumb.jpg").write_bytes(b"\xff\xd8 b")
    events = [defect(now, "a"), defect(now, "b"), defect(now, "c")]

    def work(store: Store, packer: BatchPacker) -> list[Any]:
        packer.clock = clock = Clock()
        assert packer.pack("evidence", Priority.IMPORTANT, 100, 1 << 20, 19) is None  # a may be on its way
        clock.now += EVIDENCE_WAIT_S - 1
        assert packer.pack("evidence", Priority.IMPORTANT, 100, 1 << 20, 19) is None
        clock.now += 2
        first = packer.pack("evidence", Priority.IMPORTANT, 100, 1 << 20, 19)
        waiting = packer.pack("evidence", Priority.IMPORTANT, 100, 1 << 20, 19)
        (folder / "c.thumb.jpg").write_bytes(b"\xff\xd8 c")  # the evidence thread got to it
        last = packer.pack("evidence", Priority.IMPORTANT, 100, 1 << 20, 19)
        return [first, waiting, last]

    first, waiting, last = with_store(tmp_path, events, work, ClassSettings())
    header, rows = decode(first.payload)
    assert (header.first_id, header.thinned, [r[4] for r in rows]) == (3, 1, ["b.thumb.jpg"])
    assert waiting is None
    header, rows = decode(last.payload)
    assert (header.seq, header.thinned, [r[6] for r in rows]) == (2, 0, [b"\xff\xd8 c"])


def test_a_class_with_only_lost_files_moves_past_them_and_reports_them_next(tmp_path: Path) -> None:
    (tmp_path / "evidence").mkdir()
    events = [defect(time.time(), "a"), defect(time.time(), "b")]

    def work(store: Store, packer: BatchPacker) -> Any:
        packer.clock = clock = Clock()
        assert packer.pack("evidence", Priority.BACKGROUND, 100, 1 << 20, 19) is None  # waiting for a
        clock.now += EVIDENCE_WAIT_S + 1  # a is gone for good; b was first missed just now
        assert packer.pack("evidence", Priority.BACKGROUND, 100, 1 << 20, 19) is None
        clock.now += EVIDENCE_WAIT_S + 1
        assert packer.pack("evidence", Priority.BACKGROUND, 100, 1 << 20, 19) is None  # images: all gone
        store.write([defect(time.time(), "c")])
        (tmp_path / "evidence" / "c.jpg").write_bytes(b"c")
        store.call(lambda conn: None).result(10)
        return packer.pack("evidence", Priority.BACKGROUND, 100, 1 << 20, 19)

    batch = with_store(tmp_path, events, work, ClassSettings())
    header, rows = decode(batch.payload)
    assert (header.seq, header.first_id, header.thinned, rows[0][4]) == (1, 6, 2, "c.jpg")


def test_a_link_planted_in_the_folder_is_never_sent_upstream(tmp_path: Path) -> None:
    """The packer read an event's file through a link: whatever it pointed at went upstream."""
    folder = tmp_path / "evidence"
    folder.mkdir()
    secret = tmp_path / "elsewhere"
    secret.write_bytes(b"not evidence")
    (folder / "a.thumb.jpg").symlink_to(secret)
    (folder / "b.thumb.jpg").write_bytes(b"\xff\xd8 b")
    events = [defect(time.time(), "a"), defect(time.time(), "b")]

    def work(store: Store, packer: BatchPacker) -> Any:
        packer.clock = clock = Clock()
        assert packer.pack("evidence", Priority.IMPORTANT, 100, 1 << 20, 19) is None  # as if on its way
        clock.now += EVIDENCE_WAIT_S + 1
        return packer.pack("evidence", Priority.IMPORTANT, 100, 1 << 20, 19)

    batch = with_store(tmp_path, events, work, ClassSettings())
    header, rows = decode(batch.payload)
    assert (header.thinned, [(r[4], r[6]) for r in rows]) == (1, [("b.thumb.jpg", b"\xff\xd8 b")])


def test_the_receiver_keeps_the_files_it_gets(tmp_path: Path) -> None:
    rows: list[EvidenceRow] = [
        (4, 1795324474.5, 2, "thumbnail", "x.thumb.jpg", "image/jpeg", b"\xff\xd8thumb"),
        (5, 1795324474.5, 2, "image", "x.jpg", "image/jpeg", os.urandom(50000)),
    ]
    header = BatchHeader("press-1", "s1", "evidence", "important", 1, 4, 5, 2, 0, 1.0)
    payload = encode_evidence(header, rows)
    ledger = Ledger(tmp_path / "ledger.db", tmp_path / "files")
    try:
        assert ledger.batch(payload, "test").batch is not None
        assert ledger.batch(payload, "test").duplicate
        assert ledger.report()["unique_records"] == 2
    finally:
        ledger.close()
    assert {p.name: p.read_bytes() for p in (tmp_path / "files" / "press-1").iterdir()} == {
        r[4]: r[6] for r in rows
    }


@pytest.mark.parametrize("name", ["", "../x.jpg", "a/b.jpg", ".x.jpg", "a\\b.jpg", "a\0.jpg"])
def test_only_plain_file_names_are_encoded(name: str) -> None:
    rows: list[EvidenceRow] = [(1, 1.0, 1, "image", name, "image/jpeg", b"x")]
    with pytest.raises(BatchFormatError, match="plain file name"):
        encode_evidence(BatchHeader("press-1", "s1", "evidence", "background", 1, 1, 1, 1, 0, 1.0), rows)


@pytest.mark.parametrize("step_h", [6, -6])
def test_a_wall_clock_step_neither_thins_a_file_on_its_way_nor_waits_hours(
    step_h: int, tmp_path: Path
) -> None:
    folder = tmp_path / "evidence"
    folder.mkdir()
    then = time.time() - step_h * 3600.0  # recorded just before the clock stepped by step_h
    events = [defect(then, "a"), defect(then, "b")]

    def work(store: Store, packer: BatchPacker) -> list[Any]:
        packer.clock = clock = Clock()
        waiting = packer.pack("evidence", Priority.IMPORTANT, 100, 1 << 20, 19)
        (folder / "a.thumb.jpg").write_bytes(b"\xff\xd8 a")  # b's never comes
        sent = packer.pack("evidence", Priority.IMPORTANT, 100, 1 << 20, 19)
        clock.now += EVIDENCE_WAIT_S + 1  # given up on b after the wait, not hours later
        store.write([defect(time.time(), "c")])
        (folder / "c.thumb.jpg").write_bytes(b"\xff\xd8 c")
        store.call(lambda conn: None).result(10)
        return [waiting, sent, packer.pack("evidence", Priority.IMPORTANT, 100, 1 << 20, 19)]

    waiting, sent, after = with_store(tmp_path, events, work, ClassSettings())
    assert waiting is None  # not thinned at once, however old its event looks
    assert [r[4] for r in decode(sent.payload)[1]] == ["a.thumb.jpg"]
    header, rows = decode(after.payload)
    assert (header.thinned, [r[4] for r in rows]) == (1, ["c.thumb.jpg"])
