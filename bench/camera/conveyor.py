"""The conveyor: parts carried across the camera's view one after another, and the truth of every frame.

Part `i` is centred in frame `i * frames_per_part + frames_per_part // 2`. Its label and looks come from
its own seed (the conveyor's seed and `i`), so a frame depends only on its counter: two conveyors with the
same settings show the same film, and ground truth can be recomputed for any frame.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from bench.camera.render import (
    DEFAULT_SIZE,
    LABELS,
    MARGIN,
    Belt,
    Image,
    Part,
    Size,
    expose,
    make_part,
    paint_part,
)

DEFECTS = LABELS[1:]
HISTORY = 200  # frames of ground truth kept for /truth
_MAX_EXTENT = 0.235 + 0.3  # a part's half size plus its largest pose offset, in frame heights


@dataclass(frozen=True)
class ConveyorSettings:
    size: Size = DEFAULT_SIZE
    frames_per_part: int = 30
    pitch: float = 1.25  # distance between parts, in frame widths (above 1: empty belt between parts)
    defect_rate: float = 0.2  # chance that a part is defective
    weights: tuple[tuple[str, float], ...] = ()  # relative weight of each defect label; missing ones: 0
    centred_within: float = 0.05  # a part counts as centred while within this fraction of the width
    seed: int = 0

    def __post_init__(self) -> None:
        if self.frames_per_part < 1:
            raise ValueError("frames_per_part must be at least 1")
        if not 0.0 <= self.defect_rate <= 1.0:
            raise ValueError("defect_rate must be between 0 and 1")
        if self.pitch <= 0 or self.centred_within < 0 or min(self.size) < 16:
            raise ValueError("pitch must be positive, centred_within not negative, size at least 16 x 16")
        for label, weight in self.weights:
            if label not in DEFECTS or weight < 0:
                raise ValueError(f"weights: {label!r} must be one of {', '.join(DEFECTS)} with a weight >= 0")
        if self.weights and sum(w for _, w in self.weights) <= 0:
            raise ValueError("weights: at least one defect needs a positive weight")


@dataclass(frozen=True)
class Truth:
    """What the camera saw in one frame."""

    counter: int  # frames since the conveyor started, from 0
    ts: float  # time.monotonic() when the frame was made (the same clock in every process on Linux)
    label: str | None  # label of the part centred in the frame; None while no part is centred
    part: int | None  # that part's number on the belt


class Conveyor:
    """Makes frames in order; `history` holds the truth of the most recent ones."""

    def __init__(self, settings: ConveyorSettings | None = None) -> None:
        self.settings = settings or ConveyorSettings()
        s = self.settings
        self.belt = Belt(s.size, s.seed)
        self.speed = s.pitch * s.size[0] / s.frames_per_part  # pixels per frame
        self.counter = 0
        self.history: deque[Truth] = deque(maxlen=HISTORY)
        self._parts: dict[int, Part] = {}
        weights = dict(s.weights) if s.weights else dict.fromkeys(DEFECTS, 1.0)
        total = sum(weights.values())
        self._defect_p = [weights.get(label, 0.0) / total for label in DEFECTS]
        # parts [first, last) that carry one label whatever the dice say: a burst ordered while it runs
        self._burst: tuple[int, int, str] = (0, 0, "ok")

    def label(self, index: int) -> str:
        return self.part(index).label

    def part(self, index: int) -> Part:
        """Part number `index` (from 0) on the belt."""
        if index not in self._parts:
            rng = np.random.default_rng([self.settings.seed, index])
            defective = rng.random() < self.settings.defect_rate
            label = str(rng.choice(DEFECTS, p=self._defect_p)) if defective else "ok"
            first, last, forced = self._burst
            if first <= index < last:
                label = forced
            self._parts[index] = make_part(rng, label)
            for old in [i for i in self._parts if i < index - 8]:  # parts only ever come back while in view
                del self._parts[old]
        return self._parts[index]

    def burst(self, label: str, parts: int) -> tuple[int, int]:
        """The next `parts` parts not yet in view all carry `label` (a batch of bad stock); their numbers.
        One tuple is swapped in, so the camera's worker thread sees the old burst or the new one whole."""
        if label not in LABELS or parts < 1:
            raise ValueError(f"a burst is at least one part of one of {', '.join(LABELS)}")
        first = max(list(self._parts), default=-1) + 1  # a part already made keeps its looks
        self._burst = (first, first + parts, label)
        return first, first + parts

    def position(self, index: int, counter: int) -> float:
        """x in pixels of part `index`'s nominal position in frame `counter`; the belt runs left to right."""
        n = self.settings.frames_per_part
        return self.settings.size[0] / 2 + (counter - index * n - n // 2) * self.speed

    def truth_of(self, counter: int) -> tuple[str | None, int | None]:
        n = self.settings.frames_per_part
        index = max(0, round((counter - n // 2) / n))
        w = self.settings.size[0]
        if abs(self.position(index, counter) - w / 2) <= self.settings.centred_within * w + 1e-9:
            return self.label(index), index
        return None, None

    def frame(self, counter: int) -> Image:
        """Frame number `counter`, BGR uint8 of shape (height, width, 3)."""
        s = self.settings
        w, h = s.size
        n = s.frames_per_part
        # frames during which a part is in view, either side of its centred frame
        reach = (w / 2 + MARGIN * _MAX_EXTENT * h) / self.speed
        first = max(0, math.floor((counter - n // 2 - reach) / n))
        last = math.ceil((counter - n // 2 + reach) / n)
        canvas = self.belt.at(counter * self.speed)
        for index in range(first, last + 1):
            paint_part(canvas, self.part(index), self.position(index, counter))
        # the lamp drifts from one part's lighting to the next's as they pass, so no frame flickers
        t = max(0.0, (counter - n // 2) / n)
        light = self.part(math.floor(t)).light.mix(self.part(math.floor(t) + 1).light, t - math.floor(t))
        return expose(canvas, light, np.random.default_rng([s.seed, counter, 2]))

    def next_frame(self) -> tuple[Image, Truth]:
        """The next frame and its truth, which also goes into `history`."""
        image = self.frame(self.counter)
        label, part = self.truth_of(self.counter)
        truth = Truth(self.counter, time.monotonic(), label, part)
        self.history.append(truth)
        self.counter += 1
        return image, truth

    def __iter__(self) -> Iterator[tuple[Image, Truth]]:
        while True:
            yield self.next_frame()
