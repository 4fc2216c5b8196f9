"""Labelled images for the demo QC model, drawn by the synthetic camera's renderer from a seed.

Image `i` of a set with seed `s` comes from its own generator (`s`, `i`) and has label `CLASSES[i % 6]`,
so a set is balanced, the same on every machine and for any number of worker processes. Each frame goes
through a JPEG round trip, as frames from the MJPEG camera do, before it is preprocessed:

    frame (BGR uint8, 320 x 240) -> cv2.resize to 128 x 96 with INTER_AREA -> BGR to RGB -> uint8 (96, 128, 3)
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Final

import cv2
import numpy as np
import numpy.typing as npt

from bench.camera.render import DEFAULT_SIZE, LABELS, Image, Size, render

CLASSES: Final = LABELS  # the model's output order
INPUT_SIZE: Final = (128, 96)  # width, height: the camera's 4:3 frame at 0.4x, enough for a 2-pixel scratch
TRAIN_SEED: Final = 20240601
FRESH_SEED: Final = 777  # evaluation sets: never used for training
_CHUNK: Final = 200  # images per worker task


def camera_frame(rng: np.random.Generator, label: str, size: Size = DEFAULT_SIZE) -> Image:
    """A frame as the appliance receives it from the MJPEG camera: rendered, then JPEG-compressed."""
    image = render(rng, label, size)
    quality = int(rng.integers(70, 96))
    ok, jpeg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise RuntimeError("cv2.imencode failed")
    return np.asarray(cv2.imdecode(jpeg, cv2.IMREAD_COLOR), np.uint8)


def preprocess(frame: Image) -> Image:
    """A BGR frame of any size -> the model's input: RGB uint8 of shape (96, 128, 3)."""
    small = cv2.resize(frame, INPUT_SIZE, interpolation=cv2.INTER_AREA)
    return np.asarray(cv2.cvtColor(small, cv2.COLOR_BGR2RGB), np.uint8)


def sample(seed: int, index: int) -> tuple[Image, int]:
    """Image `index` of the set with this seed, preprocessed, and its class number."""
    label = index % len(CLASSES)
    return preprocess(camera_frame(np.random.default_rng([seed, index]), CLASSES[label])), label


def _chunk(seed: int, indices: Sequence[int]) -> tuple[Image, npt.NDArray[np.int64]]:
    pairs = [sample(seed, i) for i in indices]
    return np.stack([p[0] for p in pairs]), np.array([p[1] for p in pairs], np.int64)


def make_dataset(n: int, seed: int, workers: int = 1) -> tuple[Image, npt.NDArray[np.int64]]:
    """`n` images (N, 96, 128, 3) RGB uint8 and their class numbers (N,), balanced across CLASSES."""
    chunks = [range(start, min(n, start + _CHUNK)) for start in range(0, n, _CHUNK)]
    if workers > 1 and len(chunks) > 1:
        with ProcessPoolExecutor(workers) as pool:
            parts = list(pool.map(_chunk, [seed] * len(chunks), chunks))
    else:
        parts = [_chunk(seed, c) for c in chunks]
    if not parts:
        return np.zeros((0, INPUT_SIZE[1], INPUT_SIZE[0], 3), np.uint8), np.zeros(0, np.int64)
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
