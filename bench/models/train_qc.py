"""Trains the demo QC classifier on synthetic camera images; writes float and int8 .tflite files and a card.

Run by hand, with TensorFlow (not a project dependency, so it is imported only inside functions here):

    python -m bench.models.train_qc --out bench/models

It writes qc_demo_float.tflite, qc_demo_int8.tflite (full integer, uint8 input and output) and
QC_MODEL_CARD.md, whose accuracies are measured on a fresh set with LiteRT's interpreter, as the box runs
them.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import os
import platform
import shutil
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from bench.models import qc_card
from bench.models.qc_dataset import CLASSES, FRESH_SEED, INPUT_SIZE, TRAIN_SEED, make_dataset

FLOAT_FILE = "qc_demo_float.tflite"
INT8_FILE = "qc_demo_int8.tflite"
CARD_FILE = "QC_MODEL_CARD.md"
COMMAND = "python -m bench.models.train_qc --out bench/models"


def build_model(tf: Any) -> Any:
    """Five 3x3 conv blocks, then max and mean pooling side by side: max finds a small defect anywhere,
    mean keeps the overall look (a part pushed against a rail). About 120k weights."""
    layers = tf.keras.layers
    inputs = tf.keras.Input((INPUT_SIZE[1], INPUT_SIZE[0], 3), batch_size=None, name="image")
    x = layers.Rescaling(1.0 / 255.0)(inputs)  # the model takes raw 0..255 pixels: nothing to get wrong
    for filters, pool in ((16, True), (32, True), (64, True), (64, True), (96, False)):
        x = layers.Conv2D(filters, 3, padding="same", use_bias=False)(x)
        x = layers.BatchNormalization()(x)
        x = layers.ReLU()(x)
        if pool:
            x = layers.MaxPooling2D()(x)
    x = layers.Concatenate()([layers.GlobalMaxPooling2D()(x), layers.GlobalAveragePooling2D()(x)])
    x = layers.Dropout(0.2)(x)
    outputs = layers.Dense(len(CLASSES), activation="softmax", name="scores")(x)
    return tf.keras.Model(inputs, outputs, name="qc_demo")


def train(tf: Any, images: npt.NDArray[np.uint8], labels: npt.NDArray[Any], epochs: int, seed: int) -> Any:
    tf.keras.utils.set_random_seed(seed)
    order = np.random.default_rng(seed).permutation(len(images))
    split = len(images) // 10  # a held-out tenth picks the best epoch
    val, fit = order[:split], order[split:]
    data = tf.data.Dataset.from_tensor_slices((images[fit], labels[fit])).shuffle(len(fit), seed=seed)

    def augment(x: Any, y: Any) -> Any:
        # every label survives a mirror image (the holes are symmetric, rails are top and bottom)
        return tf.image.random_flip_left_right(tf.cast(x, tf.float32), seed=seed), y

    data = data.map(augment, num_parallel_calls=tf.data.AUTOTUNE).batch(64).prefetch(tf.data.AUTOTUNE)
    model = build_model(tf)
    steps = epochs * len(data)
    schedule = tf.keras.optimizers.schedules.CosineDecay(3e-3, steps, warmup_target=None)
    model.compile(
        optimizer=tf.keras.optimizers.Adam(schedule),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    checkpoint = str(Path(tempfile.mkdtemp(prefix="qc_demo_")) / "best.weights.h5")
    best = tf.keras.callbacks.ModelCheckpoint(
        checkpoint, monitor="val_accuracy", save_best_only=True, save_weights_only=True
    )
    validation = (images[val].astype(np.float32), labels[val])
    model.fit(data, epochs=epochs, validation_data=validation, callbacks=[best], shuffle=False, verbose=2)
    model.load_weights(checkpoint)
    shutil.rmtree(Path(checkpoint).parent)
    return model


def convert(tf: Any, model: Any, calibration: npt.NDArray[np.uint8]) -> tuple[bytes, bytes]:
    """The float model and its full-integer twin (uint8 input and output), from the real converter."""
    # through a SavedModel, whose loader freezes the weights into constants (a concrete function taken
    # straight from Keras 3 keeps them as resource variables, which the calibrator cannot run)
    archive = tf.keras.export.ExportArchive()
    archive.track(model)
    signature = tf.TensorSpec((1, INPUT_SIZE[1], INPUT_SIZE[0], 3), tf.float32, name="image")
    archive.add_endpoint(
        "serving_default", lambda image: {"scores": model(image, training=False)}, input_signature=[signature]
    )
    saved = tempfile.mkdtemp(prefix="qc_demo_")
    archive.write_out(saved, verbose=False)
    float_model: bytes = tf.lite.TFLiteConverter.from_saved_model(saved).convert()

    def representative() -> Iterator[list[npt.NDArray[np.float32]]]:
        # The first sample holds both 0 and 255 so the input range calibrates to exactly 0..255: the uint8
        # input's scale is then 1 and its zero point 0, i.e. raw pixels go straight into the tensor.
        first = calibration[:1].astype(np.float32)
        first[0, 0, 0], first[0, -1, -1] = 0.0, 255.0
        yield [first]
        for image in calibration[1:]:
            yield [image[None].astype(np.float32)]

    converter = tf.lite.TFLiteConverter.from_saved_model(saved)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.uint8
    converter.inference_output_type = tf.uint8
    int8_model: bytes = converter.convert()
    shutil.rmtree(saved)
    return float_model, int8_model


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("bench/models"))
    parser.add_argument("--train", type=int, default=9000, help="training images (a tenth held out)")
    parser.add_argument("--fresh", type=int, default=1200, help="fresh images for the card's accuracies")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # only here, and untyped: TensorFlow is needed to train, never to run the model
    tf: Any = importlib.import_module("tensorflow")

    started = time.monotonic()
    images, labels = make_dataset(args.train, TRAIN_SEED, args.workers)
    fresh_images, fresh_labels = make_dataset(args.fresh, FRESH_SEED, args.workers)
    generated = time.monotonic() - started
    print(f"{len(images)} training and {len(fresh_images)} fresh images in {generated:.0f} s", flush=True)
    model = train(tf, images, labels, args.epochs, TRAIN_SEED)
    calibration = images[np.random.default_rng(TRAIN_SEED).permutation(len(images))[:300]]
    float_model, int8_model = convert(tf, model, calibration)
    trained = time.monotonic() - started
    args.out.mkdir(parents=True, exist_ok=True)
    files = {FLOAT_FILE: float_model, INT8_FILE: int8_model}
    for name, data in files.items():
        (args.out / name).write_bytes(data)
    results = {name: qc_card.evaluate(data, fresh_images, fresh_labels) for name, data in files.items()}
    facts = qc_card.Facts(
        train_images=len(images),
        train_seed=TRAIN_SEED,
        epochs=args.epochs,
        fresh_images=len(fresh_images),
        fresh_seed=FRESH_SEED,
        params=int(model.count_params()),
        seconds=trained,
        machine=f"{platform.machine()}, {os.cpu_count()} CPUs, TensorFlow {tf.__version__}",
        command=COMMAND,
        sha256={name: hashlib.sha256(data).hexdigest() for name, data in files.items()},
    )
    (args.out / CARD_FILE).write_text(qc_card.card(facts, results))
    for name, result in results.items():
        print(f"{name}: {len(files[name])} bytes, accuracy {result.accuracy:.4f} on fresh images", flush=True)
    print(f"trained and converted in {trained:.0f} s; card at {args.out / CARD_FILE}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
