"""`appliance infer`: a model on images with the plan the box would use: dequantized outputs and latency."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from appliance.qc.model import ModelError, QcModel
from hal.inference import InferenceEngine, NoBackendAvailable
from hal.report import detect


def infer(
    model: Path,
    images: list[Path],
    as_json: bool,
    labels: list[str],
    color: str,
    input_range: tuple[float, float],
    root: Path,
    resize: str = "area",
) -> int:
    if not model.is_file():
        print(f"appliance infer: --model {model}: no such file", file=sys.stderr)
        return 2
    plan = detect(root).plan
    engine = InferenceEngine(model, plan, probe_interval_s=3600)
    try:
        engine.open()
        qc = QcModel(engine, color, input_range, resize)
    except (NoBackendAvailable, ModelError) as exc:
        print(f"appliance infer: {model}: {exc}", file=sys.stderr)
        engine.close()
        return 2
    results: list[dict[str, Any]] = []
    try:
        for path in images:
            frame = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if frame is None:
                print(f"appliance infer: {path}: not an image OpenCV can read", file=sys.stderr)
                return 2
            began = time.perf_counter()
            outputs = qc.run(frame.astype(np.uint8, copy=False))
            latency = (time.perf_counter() - began) * 1000
            results.append(
                {
                    "image": str(path),
                    "latency_ms": round(latency, 3),
                    "backend": engine.active,
                    "outputs": [
                        {
                            "name": o.name,
                            "shape": list(o.values.shape),
                            "values": o.values.reshape(-1).tolist(),
                        }
                        for o in outputs
                    ],
                }
            )
    finally:
        engine.close()
    if as_json:
        print(json.dumps({"model": str(model), "input": _input(qc), "results": results}, indent=2))
    else:
        print(_table(results, labels))
    return 0


def _input(qc: QcModel) -> dict[str, Any]:
    spec = qc.input
    return {
        "shape": [1, spec.height, spec.width, spec.channels],
        "dtype": str(spec.dtype),
        "quantization": [spec.scale, spec.zero_point],
        "direct": qc.pre.direct,
    }


def _table(results: list[dict[str, Any]], labels: list[str]) -> str:
    lines = []
    for result in results:
        lines.append(f"{result['image']}: {result['latency_ms']:.2f} ms on {result['backend']}")
        for output in result["outputs"]:
            values = output["values"]
            if len(values) <= 1 or len(output["shape"]) > 2:
                shown = ", ".join(f"{v:.4g}" for v in values[:12]) + (" ..." if len(values) > 12 else "")
                lines.append(f"  {output['name']} {output['shape']}: {shown}")
                continue
            ranked = sorted(range(len(values)), key=lambda i: -values[i])[:5]
            names = [labels[i] if i < len(labels) else str(i) for i in ranked]
            lines.append(
                f"  {output['name']} {output['shape']}: "
                + ", ".join(f"{n}={values[i]:.4f}" for n, i in zip(names, ranked, strict=True))
            )
    return "\n".join(lines)
