"""Style strength (core.strength): the blend along G's change, the front's structure at a
style distance, and the comparison of two fronts at equal style distance."""

from __future__ import annotations

import math

import pytest
import torch

from fsg_ray.core.models import RESIDUAL_EPS
from fsg_ray.core.strength import (
    FrontPoint,
    apply_strength,
    check_strength,
    compare_fronts,
    structure_at,
)


def _logit(t: torch.Tensor) -> torch.Tensor:
    return torch.log(t) - torch.log1p(-t)


def test_strength_scales_a_residual_change_exactly() -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 8, 8, generator=gen) * 0.9 + 0.05
    change = torch.randn(2, 3, 8, 8, generator=gen)
    y = torch.sigmoid(_logit(x) + change)  # what a residual generator outputs
    for s in (0.0, 0.5, 2.0):
        expected = torch.sigmoid(_logit(x) + s * change)
        assert torch.allclose(apply_strength(x, y, s), expected, atol=1e-5), s
    assert torch.allclose(apply_strength(x, y, 0.0), x, atol=1e-5)
    assert apply_strength(x, y, 1.0) is y  # as trained: the output itself


def test_strength_clamps_the_input_as_the_residual_output_does() -> None:
    x = torch.tensor([0.0, 1.0, 0.5]).reshape(1, 3, 1, 1)
    y = torch.tensor([0.2, 0.7, 1.0]).reshape(1, 3, 1, 1)  # a saturated output stays finite
    out = apply_strength(x, y, 0.0)
    assert torch.allclose(out.flatten(), torch.tensor([RESIDUAL_EPS, 1 - RESIDUAL_EPS, 0.5]))
    assert torch.isfinite(apply_strength(x, y, 3.0)).all()
    # More strength moves each pixel further the way G moved it.
    half, double = apply_strength(x, y, 0.5).flatten(), apply_strength(x, y, 2.0).flatten()
    assert half[0] < 0.2 < double[0] and double[2] > half[2] > 0.5


@pytest.mark.parametrize("bad", [-0.1, 4.5, math.nan, math.inf])
def test_strength_out_of_range_is_refused(bad: float) -> None:
    with pytest.raises(ValueError, match=r"strength must be a number in \[0, 4\]"):
        check_strength(bad)
    with pytest.raises(ValueError, match="strength must be"):
        apply_strength(torch.rand(3, 4, 4), torch.rand(3, 4, 4), bad)


def test_strength_needs_two_images_of_one_shape() -> None:
    with pytest.raises(ValueError, match=r"x and y differ in shape: \(3, 4, 4\) vs \(3, 4, 5\)"):
        apply_strength(torch.rand(3, 4, 4), torch.rand(3, 4, 5), 0.5)


def _front(*points: tuple[float, float, float]) -> list[FrontPoint]:
    return [FrontPoint(*p) for p in points]


def test_structure_at_interpolates_and_says_when_out_of_reach() -> None:
    front = _front((0, 0.4, 1.0), (1, 0.2, 0.8), (2, 0.1, 0.3))
    assert structure_at(front, 0.3) == pytest.approx(0.9)
    assert structure_at(front, 0.2) == pytest.approx(0.8)
    assert structure_at(front, 0.15) == pytest.approx(0.55)
    assert structure_at(front, 0.5) == pytest.approx(1.0)  # farther than the input: the input
    assert structure_at(front, 0.05) is None  # closer to the style than any strength
    # A front that turns back (more strength, farther from the style): the best point counts.
    back = _front((0, 0.4, 1.0), (1, 0.2, 0.8), (2, 0.25, 0.5))
    assert structure_at(back, 0.22) == pytest.approx(0.82)  # on the way down, not 0.5
    assert structure_at(back, 0.19) is None


def test_compare_fronts_at_equal_style_distance() -> None:
    ours = _front((0, 0.4, 1.0), (1, 0.2, 0.85), (2, 0.15, 0.5))
    theirs = _front((0, 0.4, 1.0), (1, 0.2, 0.7), (2, 0.1, 0.3))
    c = compare_fronts(ours, theirs)
    assert c.outcome == "higher" and c.min_gap == pytest.approx(0.0)  # equal at the input
    assert c.max_gap == pytest.approx(0.15)  # at SWD 0.2: 0.85 vs 0.7
    assert 0 < c.mean_gap < c.max_gap
    assert (c.low, c.high) == (pytest.approx(0.15), pytest.approx(0.4))
    assert (c.a_reach, c.b_reach) == (0.15, 0.1)
    assert compare_fronts(theirs, ours).outcome == "lower"
    crossing = _front((0, 0.4, 1.0), (1, 0.3, 0.95), (2, 0.15, 0.2))
    c = compare_fronts(crossing, ours)
    assert c.outcome == "crossing" and c.min_gap < 0 < c.max_gap


def test_compare_fronts_needs_two_fronts_with_a_common_range() -> None:
    with pytest.raises(ValueError, match="two non-empty fronts"):
        compare_fronts([], _front((0, 0.4, 1.0)))
    with pytest.raises(ValueError, match="share no style distance"):
        compare_fronts(_front((0, 0.4, 1.0), (1, 0.3, 0.9)), _front((1, 0.2, 0.8)))


def test_the_numpy_strength_of_restyle_and_serve_matches_the_core() -> None:
    """io.compositing.with_strength (no torch) computes apply_strength on uint8 arrays."""
    import numpy as np

    from fsg_ray.config.evaluate import MAX_STRENGTH as CONFIG_MAX
    from fsg_ray.core.strength import MAX_STRENGTH
    from fsg_ray.io import compositing

    assert (compositing.STRENGTH_X_EPS, CONFIG_MAX) == (RESIDUAL_EPS, MAX_STRENGTH)
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (6, 5, 3), dtype=np.uint8)
    y = rng.integers(0, 256, (6, 5, 3), dtype=np.uint8)
    for s in (0.0, 0.5, 2.0):
        core = apply_strength(torch.from_numpy(x) / 255, torch.from_numpy(y) / 255, s)
        expected = (core * 255).round().to(torch.uint8).numpy()
        assert np.abs(compositing.with_strength(y, x, s).astype(int) - expected).max() <= 1, s
    assert compositing.with_strength(y, x, 1.0) is y
    with pytest.raises(ValueError, match=r"strength must be a number in \[0, 4\], got 4.5"):
        compositing.with_strength(y, x, 4.5)
    with pytest.raises(ValueError, match="differ in shape"):
        compositing.with_strength(y, x[:3], 0.5)
