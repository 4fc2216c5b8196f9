"""Evidence is only what the appliance wrote: the route serves regular files of ours with an evidence name,
never through a link; the store counts and deletes only those; its folder lies in the data directory
unless the config says otherwise, and is private."""

from __future__ import annotations

import os
import pwd
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from starlette.testclient import TestClient

from appliance.qc.evidence import EvidenceStore
from appliance.qc.evidence_files import evidence_name
from appliance.web import build_app
from tests.conftest import ROOT
from tests.statuses import status

OURS = "20240102T030405.678_dent_7"
JPEG = b"\xff\xd8\xff\xe0 a small JPEG"
ROOT_ONLY = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give a file to another user")


def nobody() -> tuple[int, int]:
    entry = pwd.getpwnam("nobody")
    return entry.pw_uid, entry.pw_gid


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    secret = tmp_path / "outside" / "secret.jpg"
    secret.parent.mkdir()
    secret.write_bytes(b"not evidence: a file the appliance must never serve or delete")
    return secret


def test_the_route_serves_only_regular_files_of_ours_with_an_evidence_name(
    tmp_path: Path, outside: Path
) -> None:
    folder = tmp_path / "evidence"
    folder.mkdir()
    (folder / f"{OURS}.jpg").write_bytes(JPEG)
    (folder / f"{OURS}.thumb.jpg").write_bytes(JPEG)
    (folder / "20240102T030405.678_dent_8.jpg").symlink_to(outside)  # out of the folder
    (folder / "20240102T030405.678_dent_9.jpg").symlink_to(folder / f"{OURS}.jpg")  # a link all the same
    (folder / "holiday.jpg").write_bytes(JPEG)  # regular, ours, but no name the store gives
    (folder / "20240102T030405.678_dent_10.jpg").mkdir()
    os.mkfifo(folder / "20240102T030405.678_dent_11.jpg")  # opening it must not hang the route
    client = TestClient(build_app(lambda: status({}), evidence=folder), client=("127.0.0.1", 50000))
    for name in (f"{OURS}.jpg", f"{OURS}.thumb.jpg"):
        answer = client.get(f"/evidence/{name}")
        assert answer.status_code == 200 and answer.content == JPEG
        assert answer.headers["content-type"] == "image/jpeg"
    for name in ("dent_8", "dent_9", "dent_10", "dent_11"):
        answer = client.get(f"/evidence/20240102T030405.678_{name}.jpg")
        assert answer.status_code == 404, name
    assert client.get("/evidence/holiday.jpg").status_code == 404
    assert client.get("/evidence/..%2Foutside%2Fsecret.jpg").status_code == 404


@ROOT_ONLY
def test_the_route_does_not_serve_a_file_of_another_user(tmp_path: Path) -> None:
    folder = tmp_path / "evidence"
    folder.mkdir()
    (folder / f"{OURS}.jpg").write_bytes(JPEG)
    os.chown(folder / f"{OURS}.jpg", *nobody())
    client = TestClient(build_app(lambda: status({}), evidence=folder), client=("127.0.0.1", 50000))
    assert client.get(f"/evidence/{OURS}.jpg").status_code == 404


def save_all(store: EvidenceStore, count: int) -> list[str]:
    rng = np.random.default_rng(2)
    names = []
    for i in range(count):
        name = evidence_name("dent", i, time.time())
        store.save(name, rng.integers(0, 255, (120, 160, 3), dtype=np.uint8))
        deadline = time.monotonic() + 10
        while store.status().saved + store.status().errors < i + 1:
            assert time.monotonic() < deadline, store.status()
            time.sleep(0.002)
        names.append(name)
    return names


def test_the_store_counts_and_deletes_only_files_it_wrote(tmp_path: Path, outside: Path) -> None:
    folder = tmp_path / "evidence"
    folder.mkdir(mode=0o755)
    old = folder / "20200101T000000.000_dent_1.jpg"  # an earlier run's: counted, deleted first
    old.write_bytes(b"x" * 1000)
    os.utime(old, (1, 1))
    foreign = {
        "holiday.jpg": b"y" * 50_000,  # someone's photo in a folder the config pointed at
        "20200101T000000.000_dent_2.txt": b"z",
    }
    for name, data in foreign.items():
        (folder / name).write_bytes(data)
    (folder / "20200101T000000.000_dent_3.jpg").symlink_to(outside)
    store = EvidenceStore(folder, budget_bytes=60_000, thumbnail_px=32)
    store.start()
    try:
        assert store.status().files == 1 and store.status().bytes == 1000
        save_all(store, 12)
    finally:
        store.stop()
    assert not old.exists() and store.status().deleted > 1
    for name, data in foreign.items():
        assert (folder / name).read_bytes() == data, f"{name} was touched"
    assert (folder / "20200101T000000.000_dent_3.jpg").is_symlink() and outside.exists()
    assert (folder.stat().st_mode & 0o777) == 0o700  # made private


@ROOT_ONLY
def test_the_store_leaves_a_file_of_another_user_alone(tmp_path: Path) -> None:
    folder = tmp_path / "evidence"
    folder.mkdir()
    theirs = folder / "20200101T000000.000_dent_1.jpg"
    theirs.write_bytes(b"t" * 1000)
    os.chown(theirs, *nobody())
    store = EvidenceStore(folder, budget_bytes=20_000, thumbnail_px=32)
    store.start()
    try:
        assert store.status().files == 0
        save_all(store, 6)
    finally:
        store.stop()
    assert theirs.read_bytes() == b"t" * 1000


def test_a_new_evidence_folder_is_private(tmp_path: Path) -> None:
    folder = tmp_path / "data" / "evidence"
    store = EvidenceStore(folder, budget_bytes=20_000)
    store.start()
    store.stop()
    assert (folder.stat().st_mode & 0o777) == 0o700


def test_the_store_refuses_a_folder_that_is_a_link(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    target.mkdir()
    (tmp_path / "evidence").symlink_to(target)
    with pytest.raises(OSError, match=r"evidence.*a link"):
        EvidenceStore(tmp_path / "evidence", budget_bytes=20_000).start()


def check_config(tmp_path: Path, evidence: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "m.tflite").write_bytes(b"")
    config = tmp_path / "qc.toml"
    config.write_text(
        textwrap.dedent(f"""
            [qc]
            model = "m.tflite"
            labels = ["ok", "dent"]
            camera = {{ type = "directory", uri = "{tmp_path}", fps = 5 }}
            [qc.evidence]
        """)
        + evidence
    )
    return subprocess.run(
        [sys.executable, "-m", "appliance", "check-config", str(config)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )


@pytest.mark.parametrize("where", ["/etc", "../elsewhere", "evidence/../../etc", "..", ".", "evidence/.."])
def test_an_evidence_folder_outside_the_data_directory_is_a_config_error(tmp_path: Path, where: str) -> None:
    checked = check_config(tmp_path, f'dir = "{where}"\n')
    assert checked.returncode == 2, checked
    assert f"qc.evidence.dir: {where!r} is not a folder inside the data directory" in checked.stderr
    assert "outside_data_dir = true" in checked.stderr  # says how to mean it


def test_an_evidence_folder_outside_the_data_directory_when_the_config_says_so(tmp_path: Path) -> None:
    assert check_config(tmp_path, 'dir = "/srv/evidence"\noutside_data_dir = true\n').returncode == 0
    assert check_config(tmp_path, 'dir = "rejects/today"\n').returncode == 0
    checked = check_config(tmp_path, 'dir = "rejects"\noutside_data_dir = true\n')
    assert checked.returncode == 2 and "absolute path" in checked.stderr, checked
