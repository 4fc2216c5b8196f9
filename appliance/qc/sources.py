"""The builders of the built-in camera sources (appliance/config/camera.py registers them): a config
table in, a frame source of drivers/camera out, not yet opened. Imported when a camera opens."""

from __future__ import annotations

from appliance.config.camera import CameraSource, CaptureCamera, DirectoryCamera, FileCamera
from drivers.camera import FrameSource, SourceKind
from drivers.camera.source import CaptureSource, DirectorySource


def open_capture(settings: CameraSource) -> FrameSource:
    """An OpenCV capture: a V4L2 device, a GStreamer pipeline, a network stream or a video file."""
    assert isinstance(settings, CaptureCamera)
    loop = settings.loop if isinstance(settings, FileCamera) else True
    return CaptureSource(SourceKind(settings.type), settings.uri, loop, settings.width, settings.height)


def open_directory(settings: CameraSource) -> FrameSource:
    """The images of a folder at `fps`."""
    assert isinstance(settings, DirectoryCamera)
    return DirectorySource(settings.uri, settings.fps, settings.loop)
