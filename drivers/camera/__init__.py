"""Camera frame sources: V4L2/USB, GStreamer/libcamera, RTSP and HTTP streams, video files, image folders."""

from drivers.camera.reader import CameraReader
from drivers.camera.source import Frame, FrameSource, SourceError, SourceKind, open_source

__all__ = ["CameraReader", "Frame", "FrameSource", "SourceError", "SourceKind", "open_source"]
