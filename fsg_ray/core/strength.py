"""Style strength: how far an output goes along G's change, and the trade-off it traces.

A residual generator predicts a change in logit space, G(x) = sigmoid(logit(x) + D_e(E_n(x)))
(``ModelConfig.output``). Scaling that change by a strength ``s``,

    y_s = sigmoid(logit(x) + s * (logit(G(x)) - logit(x))),

gives the input at s = 0, G(x) at s = 1, and more style than training settled on above 1.
The formula needs only x and G(x), so it applies to any output (a direct-output generator,
Gatys optimisation), where it is a path from x to G(x) and beyond in logit space.

Every method lands at one point of its own style/design trade-off, and where it lands varies
from seed to seed more than methods differ (docs/experiments.md, rounds 6-14). Sweeping ``s``
traces the method's whole *front*: the most structure it keeps at each style distance.
Comparing fronts at equal style distance separates "how good the trade-off is" from "where on
it training stopped" (:func:`compare_fronts`). Pure PyTorch; no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from fsg_ray.core.models import RESIDUAL_EPS

#: Largest strength accepted: beyond it the change saturates most pixels to 0 or 1.
MAX_STRENGTH = 4.0
#: The output's own bound before its logit: G(x) may reach 0 or 1 in float, and a tighter
#: bound than the input's keeps a saturated change large (as models.upscale_change).
_OUT_EPS = 1e-6
#: Points of the common style-distance range at which two fronts are compared.
_GRID = 64


def check_strength(value: float, name: str = "strength") -> float:
    """``value`` as a float in [0, :data:`MAX_STRENGTH`].

    Raises:
        ValueError: Not a finite number in that range (the message names ``name``).
    """
    s = float(value)
    if not math.isfinite(s) or not 0.0 <= s <= MAX_STRENGTH:
        raise ValueError(f"{name} must be a number in [0, {MAX_STRENGTH:g}], got {value!r}")
    return s


def apply_strength(x: Tensor, y: Tensor, strength: float) -> Tensor:
    """y_s = sigmoid(logit(x) + s (logit(y) - logit(x))), computed in fp32.

    x is clamped to [RESIDUAL_EPS, 1 - RESIDUAL_EPS] as the residual output clamps it, so for
    a residual generator ``s`` scales D_e's change exactly. ``s == 1`` returns ``y`` itself.

    Args:
        x: The photo, (..., 3, H, W) in [0, 1].
        y: G(x), the same shape.
        strength: In [0, :data:`MAX_STRENGTH`].

    Raises:
        ValueError: The shapes differ, or the strength is out of range.
    """
    s = check_strength(strength)
    if x.shape != y.shape:
        raise ValueError(f"x and y differ in shape: {tuple(x.shape)} vs {tuple(y.shape)}")
    if s == 1.0:
        return y
    xf = x.float().clamp(RESIDUAL_EPS, 1 - RESIDUAL_EPS)
    yf = y.float().clamp(_OUT_EPS, 1 - _OUT_EPS)
    logit_x = torch.log(xf) - torch.log1p(-xf)
    change = torch.log(yf) - torch.log1p(-yf) - logit_x
    return torch.sigmoid(logit_x + s * change).to(y.dtype)


@dataclass(frozen=True)
class FrontPoint:
    """A method's mean style distance and structure at one strength."""

    strength: float
    style_swd: float
    structure: float


def structure_at(front: Sequence[FrontPoint], swd: float) -> float | None:
    """The most structure the front keeps at a style distance of at most ``swd``.

    The front is the polyline through its points in strength order; a point on a segment is
    reachable with a strength between the segment's two. None when no point of the front is
    that close to the style.
    """
    pts = sorted(front, key=lambda p: p.strength)
    best: float | None = None
    for p in pts:
        if p.style_swd <= swd:
            best = p.structure if best is None else max(best, p.structure)
    for a, b in zip(pts, pts[1:], strict=False):  # consecutive points
        lo, hi = (a, b) if a.style_swd <= b.style_swd else (b, a)
        if lo.style_swd <= swd < hi.style_swd:  # the segment crosses the level swd
            t = (swd - lo.style_swd) / (hi.style_swd - lo.style_swd)
            crossing = lo.structure + t * (hi.structure - lo.structure)
            best = crossing if best is None else max(best, crossing)
    return best


def lowest_swd(front: Sequence[FrontPoint]) -> float:
    """The closest the front comes to the style."""
    return min(p.style_swd for p in front)


@dataclass(frozen=True)
class FrontComparison:
    """Front ``a`` against front ``b`` at equal style distance (:func:`compare_fronts`).

    Attributes:
        low: The common range's lowest style distance (the nearer of the two reaches).
        high: Its highest: the smaller of the two fronts' largest distances (the input's,
            when both start at strength 0).
        min_gap: The least of structure_at(a) - structure_at(b) over the range.
        max_gap: The most of it.
        mean_gap: Its mean over evenly spaced distances of the range (the area between the
            fronts over the range's width).
        a_reach: The lowest style distance of ``a``; ``b_reach`` that of ``b``.
    """

    low: float
    high: float
    min_gap: float
    max_gap: float
    mean_gap: float
    a_reach: float
    b_reach: float

    @property
    def outcome(self) -> str:
        """``higher``: a keeps at least as much structure as b at every common style
        distance; ``lower``: at most as much; ``crossing``: more at some, less at others."""
        if self.min_gap >= 0:
            return "higher"
        if self.max_gap <= 0:
            return "lower"
        return "crossing"


def compare_fronts(a: Sequence[FrontPoint], b: Sequence[FrontPoint]) -> FrontComparison:
    """Structure of ``a`` minus structure of ``b`` at equal style distance, over the range of
    distances both fronts reach (:func:`structure_at` at every point's distance in the range
    and at :data:`_GRID` levels).

    Both fronts should start at strength 0 (the input: the same point for both), so their
    ranges overlap from the input's distance down to the nearer of their reaches.

    Raises:
        ValueError: A front is empty, or the two share no style distance.
    """
    if not a or not b:
        raise ValueError("compare_fronts needs two non-empty fronts")
    low = max(lowest_swd(a), lowest_swd(b))
    high = min(max(p.style_swd for p in a), max(p.style_swd for p in b))
    if low > high:
        raise ValueError(f"the fronts share no style distance ({low:.3g} > {high:.3g})")
    # Both are piecewise linear in the level, bent at the fronts' points: those levels hold
    # the extremes of the gap; the grid covers the bends where a front turns back.
    grid = [low + (high - low) * i / (_GRID - 1) for i in range(_GRID)]
    points = {p.style_swd for p in (*a, *b) if low <= p.style_swd <= high}
    gaps: dict[float, float] = {}
    for level in sorted({*grid, *points}):
        sa, sb = structure_at(a, level), structure_at(b, level)
        if sa is not None and sb is not None:
            gaps[level] = sa - sb
    even = [gaps[level] for level in grid if level in gaps]
    return FrontComparison(
        low, high, min(gaps.values()), max(gaps.values()), sum(even) / len(even),
        lowest_swd(a), lowest_swd(b),
    )  # fmt: skip
