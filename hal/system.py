"""CPU, memory and storage of the box, read from /proc and /sys."""

from __future__ import annotations

from dataclasses import dataclass

from hal.sysroot import SysRoot

# ARM "CPU part" numbers (implementer 0x41, Arm Ltd) as /proc/cpuinfo reports them.
ARM_CORES = {
    "0xd03": "Cortex-A53",
    "0xd04": "Cortex-A35",
    "0xd05": "Cortex-A55",
    "0xd07": "Cortex-A57",
    "0xd08": "Cortex-A72",
    "0xd09": "Cortex-A73",
    "0xd0a": "Cortex-A75",
    "0xd0b": "Cortex-A76",
    "0xd0c": "Neoverse-N1",
    "0xd0d": "Cortex-A77",
    "0xd41": "Cortex-A78",
    "0xd42": "Cortex-A78AE",
    "0xd4b": "Cortex-A78C",
    "0xd46": "Cortex-A510",
    "0xd47": "Cortex-A710",
}
# NVIDIA's own cores (implementer 0x4e).
NVIDIA_CORES = {"0x004": "Carmel"}

# The CPU features that matter for inference kernels (XNNPACK picks its kernels from these).
X86_FEATURES = ("sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8")
ARM_FEATURES = ("neon", "asimd", "asimdhp", "asimddp", "i8mm", "bf16", "sve", "sve2")


@dataclass(frozen=True, slots=True)
class Cpu:
    architecture: str  # x86_64, arm64, arm
    model: str
    cores: int
    features: tuple[str, ...]

    def to_dict(self) -> dict[str, object]:
        return {
            "architecture": self.architecture,
            "model": self.model,
            "cores": self.cores,
            "features": list(self.features),
        }


@dataclass(frozen=True, slots=True)
class Disk:
    name: str
    kind: str  # sd/emmc, nvme, disk
    size_gb: float
    removable: bool
    holds_root: bool

    def to_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "kind": self.kind,
            "size_gb": self.size_gb,
            "removable": self.removable,
            "holds_root": self.holds_root,
        }


def _cpu_blocks(cpuinfo: str) -> tuple[list[dict[str, str]], dict[str, str]]:
    """Per-processor blocks, and the trailing machine-wide fields some ARM kernels add (Hardware, Model)."""
    blocks: list[dict[str, str]] = []
    current: dict[str, str] = {}
    for line in [*cpuinfo.splitlines(), ""]:
        if not line.strip():
            if current:
                blocks.append(current)
            current = {}
            continue
        key, _, value = line.partition(":")
        current[key.strip()] = value.strip()
    processors = [b for b in blocks if "processor" in b]
    machine: dict[str, str] = {}
    for block in blocks:
        if "processor" not in block:
            machine.update(block)
    return processors, machine


def detect_cpu(root: SysRoot) -> Cpu:
    processors, machine = _cpu_blocks(root.text("/proc/cpuinfo") or "")
    cores = _online_count(root.value("/sys/devices/system/cpu/online")) or len(processors) or 1
    first = processors[0] if processors else {}
    if "flags" in first:
        flags = set(first["flags"].split())
        features = tuple(f for f in X86_FEATURES if f in flags)
        return Cpu("x86_64" if "lm" in flags else "x86", first.get("model name", "x86"), cores, features)
    flags = set(first.get("Features", "").split())
    features = tuple(f for f in ARM_FEATURES if f in flags)
    arch = "arm64" if first.get("CPU architecture") == "8" or "asimd" in flags else "arm"
    parts = sorted({_core_name(p) for p in processors if "CPU part" in p})
    # "Hardware" is a poor last resort: Raspberry Pi kernels report BCM2835 on every model
    model = " + ".join(parts) or first.get("model name", "") or machine.get("Hardware", "") or arch
    return Cpu(arch, model, cores, features)


def _core_name(block: dict[str, str]) -> str:
    part = block.get("CPU part", "").lower()
    table = NVIDIA_CORES if block.get("CPU implementer", "").lower() == "0x4e" else ARM_CORES
    return table.get(part, f"ARM core {part}")


def _online_count(spec: str | None) -> int:
    """CPUs in a kernel cpu list such as "0-3" or "0-1,4-5"."""
    if not spec:
        return 0
    total = 0
    for part in spec.split(","):
        low, _, high = part.partition("-")
        total += int(high) - int(low) + 1 if high else 1
    return total


def detect_memory_mb(root: SysRoot) -> int:
    for line in (root.text("/proc/meminfo") or "").splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) // 1024
    return 0


def _root_device(root: SysRoot) -> str:
    """The block device behind /, e.g. mmcblk0p2; older Pi OS mounts it as /dev/root, see /proc/cmdline."""
    device = ""
    for line in (root.text("/proc/mounts") or "").splitlines():
        fields = line.split()
        if len(fields) > 1 and fields[1] == "/" and fields[0].startswith("/dev/"):
            device = fields[0].removeprefix("/dev/")
    if device == "root":
        for arg in (root.text("/proc/cmdline") or "").split():
            if arg.startswith("root=/dev/"):
                return arg.removeprefix("root=/dev/")
    return device


def detect_storage(root: SysRoot) -> list[Disk]:
    root_device = _root_device(root)
    disks = []
    for path in root.glob("/sys/block/*"):
        name = path.rsplit("/", 1)[1]
        if name.startswith(("loop", "ram", "zram", "mtdblock")) or name.endswith(("boot0", "boot1", "rpmb")):
            continue
        sectors = int(root.value(f"{path}/size") or 0)
        kind = "sd/emmc" if name.startswith("mmcblk") else "nvme" if name.startswith("nvme") else "disk"
        disks.append(
            Disk(
                name,
                kind,
                round(sectors * 512 / 1e9, 1),
                root.value(f"{path}/removable") == "1",
                bool(root_device) and root_device.startswith(name),
            )
        )
    if root_device == "root" and len(disks) == 1:  # /dev/root and no cmdline: the only disk holds it
        disks = [Disk(d.name, d.kind, d.size_gb, d.removable, True) for d in disks]
    return disks
