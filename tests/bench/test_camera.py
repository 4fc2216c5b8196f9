"""The synthetic camera's renderer and conveyor: every label draws, deterministically, where it should."""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
import pytest

from bench.camera.conveyor import HISTORY, Conveyor, ConveyorSettings
from bench.camera.render import HOLE_RADIUS, LABELS, Part, make_part, render

SEEDS = range(6)


def changed(a: npt.NDArray[np.uint8], b: npt.NDArray[np.uint8]) -> npt.NDArray[np.bool_]:
    """Pixels where two frames differ by more than noise could explain."""
    diff: npt.NDArray[np.bool_] = np.abs(a.astype(np.int16) - b.astype(np.int16)).max(axis=2) > 12
    return diff


def render_seeded(seed: int, label: str) -> npt.NDArray[np.uint8]:
    return render(np.random.default_rng(seed), label)


def distances(mask: npt.NDArray[np.bool_], centre: tuple[float, float]) -> npt.NDArray[np.float64]:
    ys, xs = np.nonzero(mask)
    found: npt.NDArray[np.float64] = np.hypot(xs - centre[0], ys - centre[1])
    return found


@pytest.mark.parametrize("label", LABELS)
@pytest.mark.parametrize("size", [(320, 240), (160, 120), (640, 480)])
def test_every_label_renders_at_any_size(label: str, size: tuple[int, int]) -> None:
    image = render(np.random.default_rng(1), label, size)
    assert image.shape == (size[1], size[0], 3)
    assert image.dtype == np.uint8
    assert 20 < image.mean() < 200  # neither black nor blown out
    assert image.std() > 10  # a part on a belt, not a flat field


def test_rendering_is_deterministic_per_seed() -> None:
    for label in LABELS:
        first = render(np.random.default_rng(42), label)
        assert np.array_equal(first, render(np.random.default_rng(42), label))
        assert not np.array_equal(first, render(np.random.default_rng(43), label))


def test_unknown_labels_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown label 'dent'"):
        render(np.random.default_rng(0), "dent")


@pytest.mark.parametrize("label", ["scratch", "crack", "stain"])
def test_surface_defects_change_only_the_part(label: str) -> None:
    for seed in SEEDS:
        part = make_part(np.random.default_rng(seed), label)
        diff = changed(render_seeded(seed, label), render_seeded(seed, "ok"))
        assert diff.sum() >= 20, f"seed {seed}: the {label} is hardly visible"
        # on the part: a rounded square reaches 1.31 half sizes from its centre at the corners
        assert distances(diff, part.centre((320, 240))).max() <= 1.35 * part.extent * 240, f"seed {seed}"


def test_a_missing_hole_changes_only_that_hole() -> None:
    for seed in SEEDS:
        part = make_part(np.random.default_rng(seed), "missing_hole")
        assert part.missing is not None
        diff = changed(render_seeded(seed, "missing_hole"), render_seeded(seed, "ok"))
        unit = part.extent * 240
        hole_area = math.pi * (HOLE_RADIUS * unit) ** 2
        assert diff.sum() >= 0.5 * hole_area, f"seed {seed}"
        site = np.array(part.hole_sites()[part.missing])
        a = math.radians(part.angle)
        cx, cy = part.centre((320, 240))
        x = cx + unit * (site[0] * math.cos(a) - site[1] * math.sin(a))
        y = cy + unit * (site[0] * math.sin(a) + site[1] * math.cos(a))
        # the hole and the belt's shadow seen through it, a little down and to the right
        assert distances(diff, (x, y)).max() <= (HOLE_RADIUS + 0.15) * unit, f"seed {seed}"


def test_a_misplaced_part_is_far_off_its_nominal_pose() -> None:
    for seed in SEEDS:
        good, bad = (
            make_part(np.random.default_rng(seed), "ok"),
            make_part(np.random.default_rng(seed), "misplaced"),
        )
        assert abs(bad.offset[1]) >= 0.2 > 0.05 >= abs(good.offset[1])
        assert abs(bad.angle - good.angle) >= 15
        diff = changed(render_seeded(seed, "misplaced"), render_seeded(seed, "ok"))
        outside = distances(diff, good.centre((320, 240))) > 1.35 * good.extent * 240
        assert outside.sum() > 500, f"seed {seed}: the part must show up away from where a good one lies"


def part_labels(conveyor: Conveyor, frames: int) -> dict[int, set[str | None]]:
    seen: dict[int, set[str | None]] = {}
    for _ in range(frames):
        _, truth = conveyor.next_frame()
        if truth.part is not None:
            seen.setdefault(truth.part, set()).add(truth.label)
    return seen


def test_the_conveyor_records_the_centred_part() -> None:
    settings = ConveyorSettings(size=(160, 120), frames_per_part=10, defect_rate=0.5, seed=9)
    conveyor = Conveyor(settings)
    labels = []
    for _ in range(100):
        _, truth = conveyor.next_frame()
        labels.append(truth.label)
        if truth.part is not None:
            assert truth.label == conveyor.label(truth.part)
            assert abs(conveyor.position(truth.part, truth.counter) - 80) <= 0.05 * 160 + 1e-9
    assert [t.counter for t in conveyor.history] == list(range(100))
    assert all(b.ts >= a.ts for a, b in zip(conveyor.history, list(conveyor.history)[1:], strict=False))
    # centred for a moment in each pass of ten frames, empty belt in between
    assert labels[5] == conveyor.label(0) and labels[15] == conveyor.label(1)
    assert labels[0] is None and labels[10] is None
    assert {label for label in labels if label} - {"ok"}, "half the parts should be defective"


def test_the_conveyor_is_deterministic_and_keeps_bounded_history() -> None:
    settings = ConveyorSettings(size=(160, 120), seed=4)
    a, b = Conveyor(settings), Conveyor(settings)
    for _ in range(HISTORY + 20):
        frame_a, truth_a = a.next_frame()
        frame_b, truth_b = b.next_frame()
        assert (truth_a.counter, truth_a.label) == (truth_b.counter, truth_b.label)
    assert np.array_equal(frame_a, frame_b)
    assert np.array_equal(a.frame(57), Conveyor(settings).frame(57))  # any frame, in any order
    assert len(a.history) == HISTORY and a.history[0].counter == 20


def test_defect_rate_and_weights_choose_the_labels() -> None:
    clean = Conveyor(ConveyorSettings(defect_rate=0.0))
    assert {clean.label(i) for i in range(200)} == {"ok"}
    cracked = Conveyor(ConveyorSettings(defect_rate=1.0, weights=(("crack", 1.0), ("stain", 0.0))))
    assert {cracked.label(i) for i in range(200)} == {"crack"}
    mixed = Conveyor(ConveyorSettings(defect_rate=0.3, seed=2))
    share = np.mean([mixed.label(i) != "ok" for i in range(1000)])
    assert 0.25 < share < 0.35


@pytest.mark.parametrize(
    "kwargs",
    [
        {"frames_per_part": 0},
        {"defect_rate": 1.5},
        {"weights": (("dent", 1.0),)},
        {"weights": (("crack", 0.0),)},
        {"size": (8, 8)},
    ],
)
def test_bad_conveyor_settings_are_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 (each case has its own message)
        ConveyorSettings(**kwargs)  # type: ignore[arg-type]


def test_a_part_is_frozen_data() -> None:
    part: Part = make_part(np.random.default_rng(0), "ok")
    with pytest.raises(AttributeError):
        part.label = "crack"  # type: ignore[misc]
