"""Paints the surface defects of the synthetic camera's parts onto a part's metal, in the part's own frame.

Only the defects that mark the surface live here: "scratch", "crack" and "stain". A missing hole and a
misplaced part change the part itself (which holes are drilled, where it lies), so the renderer draws those.
Every painter works on the metal layer before it is laid on the belt, so a defect never spills off the part.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Final

import cv2
import numpy as np
import numpy.typing as npt

Layer = npt.NDArray[np.float32]
ToPixels = Callable[[npt.ArrayLike], npt.NDArray[np.float64]]
"""Part coordinates (units of the part's half size, origin at its centre) to pixels of the layer."""

SHIFT: Final = 4  # cv2 draws at 1/16 pixel so thin lines keep their place when the part moves
# BGR: rust, oil, and the blue-purple tint of overheated steel
STAIN_COLOURS: Final = ((45.0, 85.0, 150.0), (55.0, 50.0, 45.0), (150.0, 95.0, 115.0))


def fixed(points: npt.NDArray[np.float64]) -> npt.NDArray[np.int32]:
    """Pixel coordinates in cv2's fixed point (see SHIFT)."""
    return np.round(points * (1 << SHIFT)).astype(np.int32)


def _line_mask(shape: tuple[int, ...], polyline: npt.NDArray[np.float64], thickness: int) -> Layer:
    mask = np.zeros(shape[:2], np.uint8)  # cv2 antialiases only 8-bit images
    cv2.polylines(mask, [fixed(polyline)], False, 255, thickness, cv2.LINE_AA, SHIFT)
    return (mask.astype(np.float32) / 255.0)[..., None]


def scratch(metal: Layer, px: ToPixels, unit: float, rng: np.random.Generator) -> None:
    """A tool dragged across the face: straight and thin, polished bright or dark with dirt in the groove."""
    radius, phi = 0.45 * math.sqrt(rng.random()), rng.uniform(0.0, 2 * math.pi)
    centre = np.array([radius * math.cos(phi), radius * math.sin(phi)])
    psi, half = rng.uniform(0.0, math.pi), rng.uniform(0.55, 0.85)
    direction = np.array([math.cos(psi), math.sin(psi)])
    ends = px(np.stack([centre - half * direction, centre + half * direction]))
    # relative to the metal, so a bright scratch still shows on a dark part under a dim lamp
    factor = rng.uniform(1.45, 1.7) if rng.random() < 0.5 else rng.uniform(0.35, 0.5)
    metal *= 1.0 + (factor - 1.0) * _line_mask(metal.shape, ends, max(1, round(unit * 0.035)))


def crack(metal: Layer, px: ToPixels, unit: float, rng: np.random.Generator, disc: bool) -> None:
    """A jagged dark fracture that opens at the edge and runs inward, sometimes with a branch."""
    theta = rng.uniform(0.0, 2 * math.pi)
    outward = np.array([math.cos(theta), math.sin(theta)])
    # start just outside the outline (a square's edge is farther out off-axis) so the crack meets the edge
    start = outward * (1.05 if disc else 1.05 / max(abs(outward[0]), abs(outward[1])))
    inward, heading = theta + math.pi, theta + math.pi
    points, length = [start], rng.uniform(0.55, 0.85)
    step = 0.1
    for _ in range(max(3, round(length / step))):
        # a random walk held within a cone pointing inward: jagged, yet it goes somewhere
        heading = inward + float(np.clip(heading - inward + rng.normal(0.0, 0.6), -0.9, 0.9))
        points.append(points[-1] + step * np.array([math.cos(heading), math.sin(heading)]))
    thickness = max(1, round(unit * 0.05))
    dark = _line_mask(metal.shape, px(np.stack(points)), thickness)
    if rng.random() < 0.5:
        fork = points[len(points) // 2]
        angle = inward + rng.choice([-1.0, 1.0]) * rng.uniform(0.6, 1.1)
        branch = [fork]
        for _ in range(int(rng.integers(2, 4))):
            angle += rng.normal(0.0, 0.4)
            branch.append(branch[-1] + step * np.array([math.cos(angle), math.sin(angle)]))
        dark = np.maximum(dark, _line_mask(metal.shape, px(np.stack(branch)), max(1, thickness - 1)))
    metal *= 1.0 - 0.8 * dark


def stain(metal: Layer, px: ToPixels, unit: float, rng: np.random.Generator) -> None:
    """A blotchy discoloured patch: a few overlapping soft blobs of rust, oil or heat tint."""
    radius, phi = 0.4 * math.sqrt(rng.random()), rng.uniform(0.0, 2 * math.pi)
    centre = np.array([radius * math.cos(phi), radius * math.sin(phi)])
    mask = np.zeros(metal.shape[:2], np.uint8)
    for _ in range(int(rng.integers(3, 7))):
        blob = px((centre + rng.normal(0.0, 0.15, 2))[None, :])[0]
        axes = rng.uniform(0.12, 0.26, 2) * unit
        cv2.ellipse(
            mask,
            tuple(int(v) for v in fixed(blob)),
            tuple(int(v) for v in fixed(axes)),
            rng.uniform(0.0, 180.0),
            0.0,
            360.0,
            255,
            -1,
            cv2.LINE_AA,
            SHIFT,
        )
    sigma = max(0.8, 0.07 * unit)
    blurred = cv2.GaussianBlur(mask.astype(np.float32) / 255.0, (0, 0), sigma)
    alpha = (blurred * np.float32(rng.uniform(0.6, 0.85)))[..., None]
    colour = np.array(STAIN_COLOURS[int(rng.integers(len(STAIN_COLOURS)))], np.float32)
    metal[:] = metal * (1.0 - alpha) + colour * alpha


def paint(label: str, metal: Layer, px: ToPixels, unit: float, rng: np.random.Generator, disc: bool) -> None:
    """Paints the surface defect `label` names, if it names one."""
    if label == "scratch":
        scratch(metal, px, unit, rng)
    elif label == "crack":
        crack(metal, px, unit, rng, disc)
    elif label == "stain":
        stain(metal, px, unit, rng)
