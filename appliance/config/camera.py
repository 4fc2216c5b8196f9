"""The `[qc] camera` table: one config class per camera source, told apart by `type`.

Each source is an entry of `CAMERA_SOURCES` with its config class and a builder `(settings) ->
FrameSource` that is imported when the camera opens (OpenCV stays out of `appliance check-config`).
A new source is one module: a `CameraSource` subclass with `type: Literal["KEY"]`, a builder, and
`CAMERA_SOURCES.register("KEY", builder, config=...)` (docs/qc.md#cameras).

Every key a source table takes is one that source uses: `fps` only for a directory, `loop` for files
and directories, `width`/`height` for OpenCV captures.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, ClassVar, Literal

from pydantic import Field

from appliance.config.base import Settings, tagged_union
from hal.registry import Registry

if TYPE_CHECKING:
    from drivers.camera import FrameSource


class CameraSource(Settings):
    """What every source has: its type, where it is, and how long a silence means it must be reopened."""

    # a recording (a file, a folder) loses no frame when inference falls behind; a live camera drops
    # the oldest
    recorded: ClassVar[bool] = False

    type: str  # each source narrows it to Literal["its key"]
    uri: Annotated[str, Field(min_length=1)]  # /dev/video0 or 0; a pipeline; rtsp:// or http://; a path
    stall_s: Annotated[float, Field(gt=0, le=3600)] = 5.0  # no frame for this long: reopen the source


class CaptureCamera(CameraSource):
    """Anything OpenCV's VideoCapture opens, at the size asked for."""

    width: Annotated[int, Field(ge=0, le=10000)] = 0  # ask the camera for this size (0: its default)
    height: Annotated[int, Field(ge=0, le=10000)] = 0


class V4l2Camera(CaptureCamera):
    """/dev/videoN or an index: USB and CSI cameras through the kernel."""

    type: Literal["v4l2"]


class GstreamerCamera(CaptureCamera):
    """A pipeline ending in appsink: libcamera on a Pi, nvarguscamerasrc on a Jetson."""

    type: Literal["gstreamer"]


class StreamCamera(CaptureCamera):
    """rtsp://, http(s):// MJPEG, anything FFmpeg opens."""

    type: Literal["stream"]


class FileCamera(CaptureCamera):
    """A video file, looped or played once."""

    type: Literal["file"]
    recorded = True
    loop: bool = True  # start again at the end


class DirectoryCamera(CameraSource):
    """A folder of images in name order."""

    type: Literal["directory"]
    recorded = True
    fps: Annotated[float, Field(gt=0, le=1000)] = 10.0
    loop: bool = True  # start again at the end


CAMERA_SOURCES: Registry[Callable[[CameraSource], FrameSource]] = Registry("camera source")
for _key, _config in (
    ("v4l2", V4l2Camera),
    ("gstreamer", GstreamerCamera),
    ("stream", StreamCamera),
    ("file", FileCamera),
):
    CAMERA_SOURCES.register(_key, "appliance.qc.sources:open_capture", config=_config)
CAMERA_SOURCES.register("directory", "appliance.qc.sources:open_directory", config=DirectoryCamera)

if TYPE_CHECKING:  # the type checker knows the built-in sources; validation takes every registered one
    CameraSettings = V4l2Camera | GstreamerCamera | StreamCamera | FileCamera | DirectoryCamera
else:
    CameraSettings = tagged_union(CAMERA_SOURCES)
