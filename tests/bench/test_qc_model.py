"""The committed demo QC models, run by LiteRT on fresh synthetic frames preprocessed as their card says."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt
import pytest
from ai_edge_litert.interpreter import Interpreter

from bench.models.qc_dataset import CLASSES, TRAIN_SEED, camera_frame

MODELS = Path(__file__).resolve().parents[2] / "bench" / "models"
FILES = ("qc_demo_float.tflite", "qc_demo_int8.tflite")
SEED = 31337  # neither the training seed nor the card's evaluation seed
IMAGES = 360  # 60 per class
Fresh = tuple[npt.NDArray[np.uint8], npt.NDArray[np.int64]]


def preprocess(frame: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    """As QC_MODEL_CARD.md says: the whole frame resized to 128 x 96 with INTER_AREA, then BGR to RGB."""
    rgb = cv2.cvtColor(cv2.resize(frame, (128, 96), interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2RGB)
    return np.asarray(rgb, np.uint8)


@pytest.fixture(scope="module")
def fresh() -> Fresh:
    assert SEED != TRAIN_SEED
    labels = np.arange(IMAGES) % len(CLASSES)
    frames = [camera_frame(np.random.default_rng([SEED, i]), CLASSES[k]) for i, k in enumerate(labels)]
    return np.stack([preprocess(f) for f in frames]), labels


def load(name: str) -> Any:
    interpreter = Interpreter(model_path=str(MODELS / name), num_threads=2)
    interpreter.allocate_tensors()
    return interpreter


def predict(interpreter: Any, images: npt.NDArray[np.uint8]) -> npt.NDArray[np.int64]:
    source, sink = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    out = np.empty(len(images), np.int64)
    for i, image in enumerate(images):
        tensor: npt.NDArray[Any] = image[None].astype(np.float32)  # the float model takes 0..255
        if source["dtype"] == np.uint8:
            scale, zero_point = source["quantization"]
            tensor = np.clip(np.round(tensor / scale) + zero_point, 0, 255).astype(np.uint8)
        interpreter.set_tensor(source["index"], tensor)
        interpreter.invoke()
        out[i] = int(np.argmax(interpreter.get_tensor(sink["index"])[0]))
    return out


@pytest.fixture(scope="module")
def predictions(fresh: Fresh) -> dict[str, npt.NDArray[np.int64]]:
    return {name: predict(load(name), fresh[0]) for name in FILES}


def test_the_files_have_the_documented_signature() -> None:
    float_model, int8_model = load(FILES[0]), load(FILES[1])
    for interpreter in (float_model, int8_model):
        assert list(interpreter.get_input_details()[0]["shape"]) == [1, 96, 128, 3]
        assert list(interpreter.get_output_details()[0]["shape"]) == [1, len(CLASSES)]
    assert float_model.get_input_details()[0]["dtype"] == np.float32
    source, sink = int8_model.get_input_details()[0], int8_model.get_output_details()[0]
    assert (source["dtype"], sink["dtype"]) == (np.uint8, np.uint8)
    assert source["quantization"] == (1.0, 0)  # raw pixels go straight in
    for name in FILES:
        assert (MODELS / name).stat().st_size < 1_000_000


def test_the_card_documents_classes_in_output_order() -> None:
    card = (MODELS / "QC_MODEL_CARD.md").read_text()
    rows = [f"| {k} | `{name}` |" for k, name in enumerate(CLASSES)]
    assert all(row in card for row in rows)
    assert [card.index(row) for row in rows] == sorted(card.index(row) for row in rows)
    assert "INTER_AREA" in card and "RGB" in card and "uint8 input" in card


@pytest.mark.parametrize("name", FILES)
def test_accuracy_on_fresh_images(
    name: str,
    fresh: Fresh,
    predictions: dict[str, npt.NDArray[np.int64]],
) -> None:
    labels = fresh[1]
    assert np.mean(predictions[name] == labels) >= 0.95
    for k, label in enumerate(CLASSES):  # no class is given up for the others
        assert np.mean(predictions[name][labels == k] == k) >= 0.85, label


def test_int8_agrees_with_float(predictions: dict[str, npt.NDArray[np.int64]]) -> None:
    assert np.mean(predictions[FILES[0]] == predictions[FILES[1]]) >= 0.95
