"""SSD-style detection outputs, as TFLite's detection post-processing produces them: boxes [1, N, 4]
(ymin, xmin, ymax, xmax, 0..1), classes [1, N] (class index, 0-based, as floats), scores [1, N] and
count [1]. The policy sees, per label, the best score of its detections in the frame."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from appliance.qc.model import ModelError


@dataclass(frozen=True, slots=True)
class Detection:
    label: str
    score: float
    box: tuple[float, float, float, float]  # ymin, xmin, ymax, xmax, fractions of the frame


@dataclass(frozen=True, slots=True)
class DetectionOutputs:
    """Which output is which; TFLite's post-processing op emits them in this order."""

    boxes: int = 0
    classes: int = 1
    scores: int = 2
    count: int = 3

    def check(self, shapes: Sequence[Sequence[int]]) -> None:
        for name in ("boxes", "classes", "scores", "count"):
            if getattr(self, name) >= len(shapes):
                raise ModelError(
                    f"qc.detection.{name} = {getattr(self, name)}, but the model has {len(shapes)} outputs"
                )
        boxes, classes, scores = (list(shapes[i]) for i in (self.boxes, self.classes, self.scores))
        if len(boxes) != 3 or boxes[0] != 1 or boxes[2] != 4:
            raise ModelError(f"detection boxes output has shape {boxes}; expected [1, N, 4]")
        if classes != boxes[:2] or scores != boxes[:2]:
            raise ModelError(
                f"detection classes {classes} and scores {scores} must be [1, N] with N = {boxes[1]}"
            )


def parse(
    outputs: Sequence[npt.NDArray[np.float32]],
    which: DetectionOutputs,
    labels: Sequence[str],
    min_score: float = 0.0,
) -> list[Detection]:
    """The detections of one frame with at least `min_score`; unknown class indices are skipped."""
    boxes = outputs[which.boxes].reshape(-1, 4)
    classes = outputs[which.classes].reshape(-1)
    scores = outputs[which.scores].reshape(-1)
    count = round(float(outputs[which.count].reshape(-1)[0])) if which.count < len(outputs) else len(scores)
    found = []
    for i in range(max(0, min(count, len(scores)))):
        index = round(float(classes[i]))
        if 0 <= index < len(labels) and scores[i] >= min_score:
            ymin, xmin, ymax, xmax = (float(v) for v in boxes[i])
            found.append(Detection(labels[index], float(scores[i]), (ymin, xmin, ymax, xmax)))
    return found


def best_scores(detections: Sequence[Detection]) -> dict[str, float]:
    best: dict[str, float] = {}
    for d in detections:
        best[d.label] = max(best.get(d.label, 0.0), d.score)
    return best
