"""Draws metal parts on a conveyor belt, each with a known label, deterministically from a seed.

Lengths are in units of the frame height, so every frame size shows the same scene. A :class:`Part` holds
everything random about one part (drawn once by :func:`make_part`); drawing it is then a pure function of the
part and where it is on the belt, which is what lets the conveyor carry one part across many frames.

    render(np.random.default_rng(7), "crack")   # 240 x 320 x 3 BGR uint8
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Literal

import cv2
import numpy as np
import numpy.typing as npt

from bench.camera import defects
from bench.camera.defects import SHIFT, Layer, fixed

LABELS: Final = ("ok", "scratch", "missing_hole", "crack", "stain", "misplaced")
DEFAULT_SIZE: Final = (320, 240)
Size = tuple[int, int]  # width, height in pixels, the order cv2 uses
Image = npt.NDArray[np.uint8]

RAIL: Final = 0.08  # the guide rails above and below the belt, as a fraction of the frame height
HOLE_RADIUS: Final = 0.15  # of the part's half size
MARGIN: Final = 1.6  # a part and its shadow fit in a box of this many half sizes around its centre


@dataclass(frozen=True)
class Lighting:
    gain: float
    gradient: tuple[float, float]  # relative brightness change per frame height along x and y
    tint: tuple[float, float, float]  # BGR multipliers: the lamp's colour temperature
    noise: float  # sensor noise, grey levels (standard deviation)

    def mix(self, other: Lighting, t: float) -> Lighting:
        """Between this lighting (t=0) and `other` (t=1): on the conveyor the lamp drifts, it never jumps."""

        def blend(a: Sequence[float], b: Sequence[float]) -> tuple[float, ...]:
            return tuple(x + (y - x) * t for x, y in zip(a, b, strict=True))

        gain, noise = blend((self.gain, self.noise), (other.gain, other.noise))
        gx, gy = blend(self.gradient, other.gradient)
        b, g, r = blend(self.tint, other.tint)
        return Lighting(gain, (gx, gy), (b, g, r), noise)


@dataclass(frozen=True)
class Part:
    """One part and its label; offset and angle are its pose relative to the belt's centre line."""

    label: str
    shape: Literal["plate", "disc"]
    holes: int  # drilled by design: 2 or 4
    missing: int | None  # the hole left undrilled ("missing_hole")
    offset: tuple[float, float]  # frame heights, along and across the belt
    angle: float  # degrees, clockwise on screen
    extent: float  # half size in frame heights
    metal: tuple[float, float, float]  # BGR
    light: Lighting
    seed: int  # textures, sensor noise and the shape of the defect

    def centre(self, size: Size, x: float | None = None) -> tuple[float, float]:
        """Pixel centre when the belt has brought the part's nominal position to `x` (default: mid-frame)."""
        w, h = size
        return (w / 2 if x is None else x) + self.offset[0] * h, h / 2 + self.offset[1] * h

    def hole_sites(self) -> list[tuple[float, float]]:
        """Hole centres in part coordinates (units of the half size), drilled or not."""
        if self.holes == 2:
            return [(-0.58, 0.0), (0.58, 0.0)]
        d = 0.58 if self.shape == "plate" else 0.44  # a disc's holes sit on a circle of radius 0.62
        return [(-d, -d), (d, -d), (d, d), (-d, d)]


def make_part(rng: np.random.Generator, label: str) -> Part:
    """A random part with this label."""
    if label not in LABELS:
        raise ValueError(f"unknown label {label!r}; known: {', '.join(LABELS)}")
    # Every label makes the same draws in the same order, so one seed gives the same part, pose and lighting
    # whatever the label: the defect is then the only difference from "ok".
    shape: Literal["plate", "disc"] = "plate" if rng.random() < 0.5 else "disc"
    holes = 2 if rng.random() < 0.5 else 4
    offset = (float(rng.uniform(-0.08, 0.08)), float(rng.uniform(-0.04, 0.04)))
    angle = float(rng.uniform(-6.0, 6.0))
    extent = float(rng.uniform(0.2, 0.235))
    grey = rng.uniform(110.0, 170.0) * (1.0 + rng.uniform(-0.03, 0.03, 3))
    gx, gy = rng.uniform(-0.2, 0.2, 2)
    tb, tg, tr = 1.0 + rng.uniform(-0.04, 0.04, 3)
    light = Lighting(float(rng.uniform(0.75, 1.15)), (gx, gy), (tb, tg, tr), float(rng.uniform(1.5, 5.0)))
    seed = int(rng.integers(2**31))
    hole = int(rng.integers(holes))
    side, turn = rng.choice([-1.0, 1.0], 2)
    shift, twist, along = rng.uniform(0.2, 0.28), rng.uniform(15.0, 40.0), rng.uniform(-0.15, 0.15)
    if label == "misplaced":  # pushed against a rail and skewed: far outside the pose jitter of a good part
        offset, angle = (float(along), float(side * shift)), angle + float(turn * twist)
    b, g, r = (float(v) for v in grey)
    missing = hole if label == "missing_hole" else None
    return Part(label, shape, holes, missing, offset, angle, extent, (b, g, r), light, seed)


class Belt:
    """The belt's surface, periodic along its travel so it can scroll for ever, between two fixed rails."""

    def __init__(self, size: Size, seed: int) -> None:
        rng = np.random.default_rng([seed, 3])
        w, h = size
        self.rows = slice(round(RAIL * h), h - round(RAIL * h))
        base = np.array([54.0, 56.0, 58.0], np.float32) * rng.uniform(0.85, 1.15)
        # rubber grain runs along the travel; blurring a wrapped tile keeps the grain periodic
        wrap = 12
        grain = np.pad(rng.standard_normal((h, w), np.float32) * 12.0, ((0, 0), (wrap, wrap)), "wrap")
        grain = cv2.GaussianBlur(grain, (0, 0), 3.0, None, 0.7)
        surface = base + grain[:, wrap:-wrap, None]
        for seam in rng.uniform(0, w, 2).astype(int):  # belt splices: darker bands across the belt
            surface[:, seam : seam + max(1, h // 120)] *= 0.75
        rail = 105.0 + cv2.GaussianBlur(rng.standard_normal((h, w), np.float32) * 8.0, (0, 0), 6.0, None, 0.5)
        surface[: self.rows.start] = rail[: self.rows.start, :, None]
        surface[self.rows.stop :] = rail[self.rows.stop :, :, None]
        surface[self.rows.start - 1 : self.rows.start + 1] = 30.0  # the rail's shadow line on the belt
        surface[self.rows.stop - 1 : self.rows.stop + 1] = 30.0
        self.surface = surface.astype(np.float32)

    def at(self, travel: float) -> Layer:
        """A copy of the scene's background once the belt has moved `travel` pixels to the right."""
        out = self.surface.copy()
        belt = slice(self.rows.start + 1, self.rows.stop - 1)
        out[belt] = np.roll(self.surface[belt], round(travel) % out.shape[1], axis=1)
        return out


def _outline(part: Part) -> npt.NDArray[np.float64]:
    if part.shape == "disc":
        a = np.linspace(0.0, 2 * math.pi, 48, endpoint=False)
        return np.stack([np.cos(a), np.sin(a)], axis=1)
    corner = 0.25  # a plate is a square with rounded corners
    points = []
    for k, (sx, sy) in enumerate(((1, 1), (-1, 1), (-1, -1), (1, -1))):
        for a in np.linspace(k * math.pi / 2, (k + 1) * math.pi / 2, 7):
            x, y = (1 - corner) * sx + corner * math.cos(a), (1 - corner) * sy + corner * math.sin(a)
            points.append((x, y))
    return np.array(points)


def paint_part(canvas: Layer, part: Part, x: float | None = None) -> None:
    """Lays `part`, its holes, defect and shadow onto the background `canvas`, in place."""
    h, w = canvas.shape[:2]
    cx, cy = part.centre((w, h), x)
    unit = part.extent * h
    reach = math.ceil(MARGIN * unit) + 2
    x0, y0 = max(0, math.floor(cx) - reach), max(0, math.floor(cy) - reach)
    x1, y1 = min(w, math.floor(cx) + reach + 1), min(h, math.floor(cy) + reach + 1)
    if x0 >= x1 or y0 >= y1:
        return
    box = canvas[y0:y1, x0:x1]
    a = math.radians(part.angle)
    rotation = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])

    origin = np.array([cx - x0, cy - y0])

    def px(local: npt.ArrayLike) -> npt.NDArray[np.float64]:
        pixels: npt.NDArray[np.float64] = np.asarray(local, np.float64) @ rotation.T * unit + origin
        return pixels

    outline = fixed(px(_outline(part)))
    mask = np.zeros(box.shape[:2], np.uint8)
    cv2.fillPoly(mask, [outline], 255, cv2.LINE_AA, SHIFT)
    # the lamp is above and behind the camera, a little to the left: shadows fall down and to the right
    shadow = np.zeros_like(mask)
    cv2.fillPoly(shadow, [outline + (1 << SHIFT) * max(1, round(0.1 * unit))], 255, cv2.LINE_AA, SHIFT)
    shade = cv2.GaussianBlur(shadow.astype(np.float32) / 255.0, (0, 0), max(1.0, 0.08 * unit))
    holes, rims = np.zeros_like(mask), np.zeros_like(mask)
    for i, site in enumerate(part.hole_sites()):
        if i != part.missing:
            centre = tuple(int(v) for v in fixed(px([site])[0]))
            radius = round(HOLE_RADIUS * unit * (1 << SHIFT))
            cv2.circle(holes, centre, radius, 255, -1, cv2.LINE_AA, SHIFT)
            cv2.circle(rims, centre, radius, 255, max(1, round(0.04 * unit)), cv2.LINE_AA, SHIFT)
    hole = holes.astype(np.float32)[..., None] / 255.0
    box *= 1.0 - 0.5 * shade[..., None] - 0.3 * hole  # through a hole: the belt, in the part's shade

    rng = np.random.default_rng([part.seed, 1])
    # brushed metal: streaks along x, a soft gradient across the part (one texture per part, cut to the box)
    size = 2 * reach + 1
    streaks = cv2.GaussianBlur(rng.normal(0.0, 10.0, (size, size)).astype(np.float32), (0, 0), 5.0, None, 0.6)
    streaks = streaks[y0 - (math.floor(cy) - reach) :, x0 - (math.floor(cx) - reach) :][: y1 - y0, : x1 - x0]
    along = (np.arange(x1 - x0, dtype=np.float32) + x0 - cx) / unit
    metal = np.array(part.metal, np.float32) * (1.0 + 0.08 * along)[None, :, None] + streaks[..., None]
    metal += 45.0 * rims.astype(np.float32)[..., None] / 255.0  # the chamfer at each hole catches the light
    defects.paint(part.label, metal, px, unit, rng, part.shape == "disc")
    alpha = (mask.astype(np.float32) / 255.0)[..., None] * (1.0 - hole)
    box[:] = box * (1.0 - alpha) + metal * alpha


def expose(canvas: Layer, light: Lighting, rng: np.random.Generator) -> Image:
    """What the sensor makes of the scene under `light`: gain, gradient, tint, noise, 8 bits."""
    h, w = canvas.shape[:2]
    xs = (np.arange(w, dtype=np.float32) - w / 2) / h
    ys = (np.arange(h, dtype=np.float32) - h / 2) / h
    ramp = light.gain * (1.0 + light.gradient[0] * xs[None, :] + light.gradient[1] * ys[:, None])
    image = canvas * ramp[..., None] * np.array(light.tint, np.float32)
    # luminance noise only: a third of the random numbers, and it is what an 8-bit sensor mostly shows
    image += rng.standard_normal((h, w, 1), np.float32) * light.noise
    exposed: Image = np.clip(image + 0.5, 0, 255).astype(np.uint8)
    return exposed


def draw(part: Part, size: Size = DEFAULT_SIZE) -> Image:
    """One frame with `part` centred on the belt (within its pose jitter), BGR uint8 of height x width."""
    canvas = Belt(size, part.seed).at(0.0)
    paint_part(canvas, part)
    return expose(canvas, part.light, np.random.default_rng([part.seed, 2]))


def render(rng: np.random.Generator, label: str, size: Size = DEFAULT_SIZE) -> Image:
    """A random part with this label, centred on the belt: BGR uint8 of shape (height, width, 3)."""
    return draw(make_part(rng, label), size)
