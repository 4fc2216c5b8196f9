"""image/compare on two build folders' manifests: equal lists pass, another version or file fails."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def manifest(out: Path, files: list[str], packages: list[str]) -> Path:
    folder = out / "manifest"
    folder.mkdir(parents=True)
    (folder / "files.tsv").write_text("".join(f"{line}\n" for line in files))
    (folder / "packages.tsv").write_text("".join(f"{line}\n" for line in packages))
    (folder / "python-packages.txt").write_text("numpy==1.26.4\n")
    return out


def compare(a: Path, b: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, REPO / "image/compare", a, b], capture_output=True, text=True, timeout=30
    )


FILES = ["/etc/hostname\t0644\t9\taa", "/usr/bin/python3\tlink\t-> python3.11", "/x.pyc\t0644\t10\tbb"]
PACKAGES = ["python3\t3.11.2-1+b1\tarm64", "rauc\t1.8-2\tarm64"]


def test_same_lists_and_versions_agree_and_other_content_is_listed(tmp_path: Path) -> None:
    a = manifest(tmp_path / "a", FILES, PACKAGES)
    b = manifest(tmp_path / "b", [*FILES[:2], "/x.pyc\t0644\t10\tcc"], PACKAGES)
    done = compare(a, b)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "files whose content differs (same path and mode): 1\n  /x.pyc" in done.stdout
    assert done.stdout.rstrip().endswith("agree")


def test_another_package_version_or_file_differs(tmp_path: Path) -> None:
    a = manifest(tmp_path / "a", FILES, PACKAGES)
    b = manifest(tmp_path / "b", FILES[:2], [PACKAGES[0], "rauc\t1.8-3\tarm64"])
    done = compare(a, b)
    assert done.returncode == 1
    assert "rauc\t1.8-3\tarm64" in done.stdout and "/x.pyc" in done.stdout and "DIFFER" in done.stdout


def test_a_folder_without_a_manifest_is_a_usage_error(tmp_path: Path) -> None:
    done = compare(manifest(tmp_path / "a", FILES, PACKAGES), tmp_path / "empty")
    assert done.returncode == 2 and "no files.tsv" in done.stderr
