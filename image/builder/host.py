"""What the build needs from the machine it runs on: tools, root, a Debian mirror, chroots."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO

from builder.boards import Board

# Host tool -> the Debian package that has it.
TOOLS = {
    "mmdebstrap": "mmdebstrap",
    "genimage": "genimage",
    "mksquashfs": "squashfs-tools",
    "unsquashfs": "squashfs-tools",
    "mke2fs": "e2fsprogs",
    "mkfs.vfat": "dosfstools",
    "mcopy": "mtools",
    "rauc": "rauc",
    "grub-mkimage": "grub-common",
    "grub-editenv": "grub-common",
    "openssl": "openssl",
    "sfdisk": "fdisk",
    "systemctl": "systemd",
    "systemd-analyze": "systemd",
}
# Files the boards need on the host, and their packages.
BOARD_FILES = {
    "amd64": {"/usr/lib/grub/x86_64-efi/linux.mod": "grub-efi-amd64-bin"},
    "arm64": {"/usr/libexec/qemu-binfmt/aarch64-binfmt-P": "qemu-user-static binfmt-support"},
}
# Another architecture's programs run in its rootfs through qemu-user, registered with binfmt_misc.
BINFMT = Path("/proc/sys/fs/binfmt_misc")
BINFMT_HANDLER = {"arm64": "qemu-aarch64"}


class BuildError(RuntimeError):
    """A build step failed; the message says which and where its log is."""


def preflight(board: Board) -> None:
    """Stop at once, naming the Debian packages to install, if a tool is missing."""
    if os.geteuid() != 0:
        raise BuildError("image/build must run as root (mmdebstrap --mode=root, chroot, loop mounts)")
    missing = {pkg for tool, pkg in TOOLS.items() if shutil.which(tool, path=_path()) is None}
    missing |= {pkg for path, pkg in BOARD_FILES[board.arch].items() if not Path(path).exists()}
    if missing:
        raise BuildError(
            f"missing host tools; install them with: apt-get install {' '.join(sorted(missing))}"
        )
    if board.arch in BINFMT_HANDLER:
        _enable_binfmt(BINFMT_HANDLER[board.arch])


def _enable_binfmt(handler: str) -> None:
    """Register qemu-user for the board's programs (a container may start without binfmt_misc mounted)."""
    if not (BINFMT / "register").exists():
        subprocess.run(["mount", "-t", "binfmt_misc", "binfmt_misc", BINFMT], capture_output=True)
    if not (BINFMT / handler).exists():
        env = {**os.environ, "PATH": _path()}
        subprocess.run(["update-binfmts", "--enable", handler], capture_output=True, env=env)
    if not (BINFMT / handler).exists():
        raise BuildError(
            f"{BINFMT / handler}: not registered, so the board's programs cannot run here; "
            f"mount binfmt_misc ({BINFMT}) and run: update-binfmts --enable {handler}"
        )


def _path() -> str:
    return os.environ.get("PATH", "") + ":/usr/sbin:/sbin"


def _apt_sources() -> list[tuple[str, list[str]]]:
    """(URI, suites) of every Debian source this host's apt uses, in both of apt's formats."""
    found: list[tuple[str, list[str]]] = []
    for path in [*sorted(Path("/etc/apt/sources.list.d").glob("*.sources")), Path("/etc/apt/sources.list")]:
        if not path.is_file():
            continue
        text = path.read_text()
        for stanza in re.split(r"\n\s*\n", text):
            uris = re.findall(r"^URIs:\s*(.+)$", stanza, re.M)
            suites = re.findall(r"^Suites:\s*(.+)$", stanza, re.M)
            if uris and suites:
                found += [(uri, suites[0].split()) for uri in uris[0].split()]
        for uri, suite in re.findall(r"^deb\s+(?:\[[^]]*\]\s+)?(\S+)\s+(\S+)", text, re.M):
            found.append((uri, [suite]))
    return [(uri, suites) for uri, suites in found if "debian" in uri]


def debian_mirror() -> str:
    """The Debian mirror this host's apt uses (the build takes packages from where the host does)."""
    for uri, _ in _apt_sources():
        if not uri.rstrip("/").endswith("-security"):
            return uri
    raise BuildError("no Debian mirror in /etc/apt/sources.list{,.d}: pass --mirror URL")


def security_mirror() -> str | None:
    """Where this host's apt takes Debian's security updates from, if it does."""
    for uri, suites in _apt_sources():
        if any(suite.endswith("-security") for suite in suites):
            return uri
    return None


def run(
    cmd: Sequence[object],
    log: IO[str],
    *,
    env: dict[str, str] | None = None,
    input: str | None = None,
    cwd: Path | None = None,
) -> str:
    """Run a command, its output into the stage's log; BuildError with the log's tail if it fails."""
    args = [str(c) for c in cmd]
    log.write(f"$ {' '.join(args)}\n")
    log.flush()
    full_env = {**os.environ, "PATH": _path(), **(env or {})}
    result = subprocess.run(args, capture_output=True, text=True, env=full_env, input=input, cwd=cwd)
    log.write(result.stdout + result.stderr)
    log.flush()
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-15:])
        raise BuildError(f"{args[0]} failed (exit {result.returncode}):\n{tail}")
    return str(result.stdout)


@contextlib.contextmanager
def chroot_mounts(root: Path, network: bool = False) -> Iterator[None]:
    """/proc, /sys and /dev inside the rootfs while commands run in it (and the host's DNS, with
    `network`); always undone after."""
    mounted: list[Path] = []
    resolv = root / "etc/resolv.conf"
    link = os.readlink(resolv) if resolv.is_symlink() else None
    try:
        for kind, target in (("proc", "proc"), ("sysfs", "sys")):
            (root / target).mkdir(exist_ok=True)
            subprocess.run(["mount", "-t", kind, kind, root / target], check=True)
            mounted.append(root / target)
        subprocess.run(["mount", "--rbind", "/dev", root / "dev"], check=True)
        subprocess.run(["mount", "--make-rslave", root / "dev"], check=True)
        mounted.append(root / "dev")
        if network and link is not None:
            resolv.unlink()
            shutil.copy2("/etc/resolv.conf", resolv)
        yield
    finally:
        for mount in reversed(mounted):
            subprocess.run(["umount", "-R", "--lazy", mount], check=False)
        if network and link is not None:
            resolv.unlink(missing_ok=True)
            resolv.symlink_to(link)
