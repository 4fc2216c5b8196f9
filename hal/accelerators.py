"""The inference accelerators the appliance knows, as data, and detection of those present."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from hal.boards import Board, BoardFamily
from hal.sysroot import SysRoot


class AcceleratorKind(enum.StrEnum):
    EDGETPU = "edgetpu"
    GPU = "gpu"
    HAILO = "hailo"
    NPU = "npu"


@dataclass(frozen=True, slots=True)
class AcceleratorSpec:
    """A known accelerator and the files that give it away; any one source is enough."""

    key: str
    name: str
    kind: AcceleratorKind
    runs: str  # what it can run, in a user's words
    usb_ids: tuple[tuple[str, str, str], ...] = ()  # (vendor, product, what that id means)
    pci_ids: tuple[tuple[str, str], ...] = ()  # (vendor, device)
    dev_nodes: tuple[str, ...] = ()  # globs under /dev
    dt_nodes: tuple[tuple[str, str], ...] = ()  # (device-tree node glob, compatible it must list)
    board_families: tuple[BoardFamily, ...] = ()  # only on these boards (empty: any)
    litert_delegate: str | None = None  # shared library of the LiteRT delegate that drives it
    needs_int8: bool = False


EDGETPU_RUNS = (
    "LiteRT full-integer (int8/uint8) models compiled with edgetpu_compiler; other ops run on the CPU"
)

ACCELERATORS: tuple[AcceleratorSpec, ...] = (
    AcceleratorSpec(
        "coral-usb",
        "Coral USB Accelerator (Edge TPU)",
        AcceleratorKind.EDGETPU,
        EDGETPU_RUNS,
        usb_ids=(
            ("1a6e", "089a", "firmware not loaded yet; the runtime loads it on first use"),
            ("18d1", "9302", "firmware loaded"),
        ),
        litert_delegate="libedgetpu.so.1",
        needs_int8=True,
    ),
    AcceleratorSpec(
        "coral-pcie",
        "Coral PCIe/M.2 Accelerator (Edge TPU)",
        AcceleratorKind.EDGETPU,
        EDGETPU_RUNS,
        pci_ids=(("0x1ac1", "0x089a"),),
        dev_nodes=("apex_*",),
        litert_delegate="libedgetpu.so.1",
        needs_int8=True,
    ),
    AcceleratorSpec(
        "hailo8",
        "Hailo-8/8L AI accelerator",
        AcceleratorKind.HAILO,
        "HEF models compiled with the Hailo Dataflow Compiler, through HailoRT (not LiteRT)",
        pci_ids=(("0x1e60", "0x2864"),),
        dev_nodes=("hailo[0-9]*",),
    ),
    AcceleratorSpec(
        "jetson-gpu",
        "NVIDIA Jetson integrated GPU (CUDA)",
        AcceleratorKind.GPU,
        "LiteRT float32/float16 models through the GPU delegate; TensorRT engines",
        dev_nodes=("nvhost-gpu", "nvhost-ctrl-gpu", "nvgpu/igpu0/*"),
        board_families=(BoardFamily.JETSON,),
        litert_delegate="libtensorflowlite_gpu_delegate.so",
    ),
    AcceleratorSpec(
        "rockchip-npu",
        "Rockchip NPU (RKNPU)",
        AcceleratorKind.NPU,
        "RKNN models converted with rknn-toolkit2, through rknn-toolkit-lite2 (not LiteRT)",
        dt_nodes=(("npu@*", "rockchip,rk3588-rknpu"), ("npu@*", "rockchip,rknpu")),
        board_families=(BoardFamily.ROCKCHIP,),
    ),
)


@dataclass(frozen=True, slots=True)
class Accelerator:
    """One accelerator found, with where it was found."""

    spec: AcceleratorSpec
    found_at: str
    detail: str = ""

    def to_dict(self) -> dict[str, object]:
        return {
            "key": self.spec.key,
            "name": self.spec.name,
            "kind": str(self.spec.kind),
            "found_at": self.found_at,
            "detail": self.detail or None,
            "runs": self.spec.runs,
            "litert_delegate": self.spec.litert_delegate,
            "needs_int8": self.spec.needs_int8,
        }


def detect_accelerators(root: SysRoot, board: Board) -> list[Accelerator]:
    usb = _ids(root, "/sys/bus/usb/devices/*", "idVendor", "idProduct")
    pci = _ids(root, "/sys/bus/pci/devices/*", "vendor", "device")
    found = []
    for spec in ACCELERATORS:
        if spec.board_families and board.spec.family not in spec.board_families:
            continue
        if hit := _find(root, spec, usb, pci):
            found.append(hit)
    return found


def _find(
    root: SysRoot, spec: AcceleratorSpec, usb: dict[tuple[str, str], str], pci: dict[tuple[str, str], str]
) -> Accelerator | None:
    for vendor, product, meaning in spec.usb_ids:
        if (where := usb.get((vendor, product))) is not None:
            return Accelerator(spec, where, f"USB {vendor}:{product}, {meaning}")
    for vendor, device in spec.pci_ids:
        if (where := pci.get((vendor, device))) is not None:
            return Accelerator(spec, where, f"PCI {vendor[2:]}:{device[2:]}")
    for pattern in spec.dev_nodes:
        if nodes := root.glob(f"/dev/{pattern}"):
            return Accelerator(spec, nodes[0])
    for pattern, compatible in spec.dt_nodes:
        for node in root.glob(f"/proc/device-tree/{pattern}"):
            if compatible in root.strings(f"{node}/compatible") and root.value(f"{node}/status") in (
                None,
                "okay",
            ):
                return Accelerator(spec, node)
    return None


def _ids(root: SysRoot, pattern: str, vendor_file: str, product_file: str) -> dict[tuple[str, str], str]:
    """(vendor, product) -> sysfs path of the device, lower-case as the kernel writes them."""
    ids: dict[tuple[str, str], str] = {}
    for path in root.glob(pattern):
        vendor, product = root.value(f"{path}/{vendor_file}"), root.value(f"{path}/{product_file}")
        if vendor and product:
            ids.setdefault((vendor.lower(), product.lower()), path)
    return ids
