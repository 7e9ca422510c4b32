"""Garment silhouettes with their construction details, one function per kind, in the
garment frame of :mod:`.details`. Each takes the seeded generator and the garment's base
colour (trims are chosen to contrast with it) and returns a :class:`~.details.Shape`.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from fsg_ray.io.synthetic._common import Rng
from fsg_ray.io.synthetic.details import (
    Detail,
    Points,
    Shape,
    band,
    buttons,
    closed,
    collar,
    contrast,
    flip,
    hem,
    logo,
    mirror,
    patch_pocket,
    placket,
    seam,
    welt_pocket,
)


def _neckline(rng: Rng, top: float) -> Points:
    """Round or V neck, from the centre point up to the right neck side."""
    nw, nd = rng.uniform(0.06, 0.08), rng.uniform(0.05, 0.1)
    if rng.random() < 0.3:
        return [(0.0, top + 1.5 * nd), (nw, top)]
    return [(nw * np.sin(a), top + nd * np.cos(a)) for a in np.linspace(0, np.pi / 2, 6)]


def _both(neck: Points) -> Points:
    """The whole neckline, left side to right side, from its right half."""
    return flip(neck[::-1]) + neck[1:]


def _torso(
    rng: Rng, w: float, top: float, bottom: float, sleeve: float, angle: float
) -> tuple[Points, Points, list[Points]]:
    """Right half of a sleeved top: (outline, neckline, [cuff line of the right sleeve])."""
    a = np.deg2rad(angle)
    d, perp = np.array([np.cos(a), np.sin(a)]), np.array([-np.sin(a), np.cos(a)])
    shoulder = np.array([w + 0.03, top + 0.04])
    outer_top = shoulder + sleeve * d
    outer_bot = outer_top + 0.1 * perp  # sleeve width 0.1
    armpit = outer_bot - (outer_bot[0] - w) / d[0] * d
    neck = _neckline(rng, top)
    right = neck + [tuple(p) for p in (shoulder, outer_top, outer_bot, armpit)]
    right += [(w + rng.uniform(0.0, 0.02), bottom), (0.0, bottom)]
    cuff: Points = [tuple(outer_top - 0.035 * d), tuple(outer_bot - 0.035 * d)]
    armhole: Points = [tuple(shoulder), tuple(armpit)]
    return right, neck, [cuff, armhole]


def _sleeve_seams(lines: list[Points]) -> list[Detail]:
    """Cuff and armhole seams of both sleeves."""
    return [seam(p, t) for p, t in zip(lines, (0.35, 0.25), strict=True) for p in (p, flip(p))]


def _shirt(rng: Rng, base: np.ndarray) -> Shape:
    """Button-down shirt: collar, placket with buttons, chest pocket, yoke, cuffs, curved hem."""
    w, top, bottom = rng.uniform(0.2, 0.24), -0.36, rng.uniform(0.36, 0.42)
    long = rng.random() < 0.6
    right, neck, lines = _torso(
        rng,
        w,
        top,
        bottom,
        rng.uniform(0.36, 0.42) if long else rng.uniform(0.12, 0.16),
        rng.uniform(62, 70) if long else rng.uniform(32, 42),
    )
    right[-2:] = [(w + 0.01, bottom - 0.04), (w * 0.5, bottom - 0.01), (0.0, bottom)]
    wing, stand = collar(neck, rng.uniform(0.8, 1.0), rng.uniform(0.06, 0.08))
    trim = contrast(rng, base)
    details = _sleeve_seams(lines)
    details += [seam([(-w - 0.03, top + 0.09), (w + 0.03, top + 0.09)], 0.25)]  # yoke
    details += placket(stand[0][1], bottom, 0.022, trim, int(rng.integers(5, 8)))
    details += patch_pocket(-w + 0.04, top + 0.15, 0.09, 0.1, rng.random() < 0.5, trim)
    details += [seam([(-w, bottom - 0.045), (0, bottom - 0.015), (w, bottom - 0.045)], 0.3)]
    for c in (wing, flip(wing)):
        details += [Detail(c, 0, -0.08), seam(closed(c), 0.45)]
    details += [seam(stand + flip(stand[::-1]), 0.3)]
    return Shape([mirror(right), wing, flip(wing)], details, w)


def _tshirt(rng: Rng, base: np.ndarray) -> Shape:
    """T-shirt: rib crew neck, short sleeves with hems, hem stitching, a chest logo or pocket."""
    w, top, bottom = rng.uniform(0.21, 0.25), -0.36, rng.uniform(0.34, 0.42)
    right, neck, (cuff, armhole) = _torso(
        rng, w, top, bottom, rng.uniform(0.12, 0.17), rng.uniform(25, 38)
    )
    details = [seam(_both(neck), 0.35, 0.03), seam(_both(neck), -0.1, 0.008)]  # rib, edge
    details += _sleeve_seams([cuff, armhole]) + hem(-w, w, bottom - 0.01)
    trim = contrast(rng, base)
    if rng.random() < 0.7:
        x = rng.choice([0.0, -w * 0.45])
        details += logo(rng, float(x), top + rng.uniform(0.2, 0.26), rng.uniform(0.05, 0.09), trim)
    else:
        details += patch_pocket(-w + 0.05, top + 0.14, 0.08, 0.09, False, None)
    return Shape([mirror(right)], details, w)


def _jacket(rng: Rng, base: np.ndarray) -> Shape:
    """Jacket or coat: lapels over a shirt front, buttons, flap and welt pockets, cuffs."""
    w, top, bottom = rng.uniform(0.22, 0.26), -0.38, rng.uniform(0.4, 0.46)
    right, _, lines = _torso(rng, w, top, bottom, rng.uniform(0.42, 0.48), rng.uniform(66, 74))
    right[0] = (0.0, top + 0.02)  # a high back collar: no scooped neck on a jacket
    right[1:-6] = [(0.07, top)]
    v_bottom = rng.uniform(-0.08, 0.02)
    shirt: Points = [(-0.06, top + 0.02), (0.06, top + 0.02), (0.0, v_bottom)]
    lapel: Points = [(0.06, top + 0.01), (0.13, top + 0.1), (0.1, top + 0.13), (0.0, v_bottom)]
    inner = (232.0, 230.0, 222.0) if base.mean() < 150 else (40.0, 45.0, 60.0)
    details = [Detail(shirt, 0, 0, inner), seam(closed(shirt), 0.5)]
    for lp in (lapel, flip(lapel)):
        details += [Detail(lp, 0, -0.1), seam(closed(lp), 0.5), seam(lp[1:3], 0.6, 0.012)]
    details += [seam([(0.0, v_bottom), (0.0, bottom)], 0.45)]
    trim = contrast(rng, base)
    details += buttons(
        0.025, v_bottom + 0.05, v_bottom + 0.05 + rng.uniform(0.1, 0.2), 2, 0.018, trim
    )
    for x0 in (-w + 0.03, w - 0.13):
        details += patch_pocket(x0, bottom - 0.17, 0.1, 0.08, True, None)
    details += welt_pocket(-w + 0.04, top + 0.2, 0.08)
    details += _sleeve_seams(lines) + hem(-w, w, bottom - 0.005, 0.02)
    return Shape([mirror(right)], details, w)


def _dress(rng: Rng, base: np.ndarray) -> Shape:
    """Sleeveless dress: waist seam, princess seams, an optional belt and bodice buttons."""
    top, waist, bottom = -0.42, rng.uniform(-0.12, -0.04), rng.uniform(0.38, 0.46)
    bust, hem_w = rng.uniform(0.13, 0.16), rng.uniform(0.28, 0.42)
    waist_w = bust - rng.uniform(0.02, 0.035)
    neck = _neckline(rng, top)
    strap = neck[-1][0] + rng.uniform(0.03, 0.06)
    right = neck + [
        (strap, top),
        (bust - 0.01, top + 0.09),
        (bust + 0.01, top + 0.16),
        (bust, waist - 0.1),
        (waist_w, waist),
        (waist_w + 0.4 * (hem_w - waist_w), waist + 0.4 * (bottom - waist)),
        (hem_w, bottom),
        (hem_w * 0.5, bottom + 0.025),
        (0.0, bottom + 0.03),
    ]
    details = [seam(_both(neck), 0.3, 0.015), seam([(-waist_w, waist), (waist_w, waist)], 0.35)]
    for f in (-0.5, 0.5):  # princess seams from the bust down the skirt
        details.append(seam([(f * bust, top + 0.12), (f * waist_w, waist), (f * hem_w, bottom)]))
    details += [
        seam([(-hem_w + 0.02, bottom - 0.02), (0, bottom + 0.01), (hem_w - 0.02, bottom - 0.02)])
    ]
    trim = contrast(rng, base)
    if rng.random() < 0.5:  # belt with a buckle
        details += [band(-waist_w, waist - 0.02, waist_w, waist + 0.02, 0.3)]
        details += [
            Detail(
                closed(
                    [
                        (-0.03, waist - 0.025),
                        (0.03, waist - 0.025),
                        (0.03, waist + 0.025),
                        (-0.03, waist + 0.025),
                    ]
                ),
                0.012,
                0,
                trim,
            )
        ]
    else:
        details += buttons(0.0, neck[0][1] + 0.04, waist - 0.04, 4, 0.013, trim)
    return Shape([mirror(right)], details, 0.5 * (bust + hem_w))


def _legs(rng: Rng, bottom: float, flare: float) -> tuple[Points, float, float, float, float]:
    """Right half of trousers or shorts: (outline, top, waist, band height, crotch)."""
    top, band_h = -0.44, 0.05
    waist = rng.uniform(0.17, 0.21)
    outer = waist + flare
    inner = max(0.015, outer - rng.uniform(0.12, 0.17) - 0.5 * flare)
    crotch = min(rng.uniform(-0.12, -0.05), bottom - 0.12)
    right = [(0.0, top), (waist, top), (waist + 0.02, -0.25), (outer, bottom), (inner, bottom)]
    return right + [(0.0, crotch)], top, waist, band_h, crotch


def _waist(
    rng: Rng, base: np.ndarray, top: float, waist: float, band_h: float, crotch: float
) -> list[Detail]:
    """Waistband with button and belt loops, fly stitching, slant side pockets."""
    fly: Points = [
        (0.0, top + band_h),
        (0.0, crotch - 0.02),
        (0.05, crotch - 0.06),
        (0.05, top + band_h),
    ]
    pocket: Points = [
        (waist - 0.08, top + band_h),
        (waist - 0.02, top + 0.16),
        (waist + 0.02, -0.22),
    ]
    out = [band(-waist, top, waist, top + band_h, 0.2), seam(fly), seam(pocket), seam(flip(pocket))]
    out += [
        band(x - 0.007, top - 0.004, x + 0.007, top + band_h + 0.004, 0.45)
        for x in (waist - 0.09, 0.09 - waist)
    ]
    return out + buttons(0.03, top + band_h / 2, top + band_h / 2, 1, 0.014, contrast(rng, base))


def _trousers(rng: Rng, base: np.ndarray) -> Shape:
    """Trousers: waistband, fly, side pockets, pressed creases, turn-up hems."""
    bottom = 0.46
    right, top, waist, band_h, crotch = _legs(rng, bottom, rng.uniform(-0.03, 0.05))
    outer, inner = right[3][0], right[4][0]
    mid = 0.5 * (outer + inner)
    details = _waist(rng, base, top, waist, band_h, crotch)
    for s in (1, -1):  # pressed crease: a light ridge down the middle of each leg
        details.append(
            seam([(s * (waist * 0.5), top + band_h + 0.02), (s * mid, bottom)], -0.15, 0.01)
        )
    details += hem(-outer, outer, bottom - 0.01, 0.035)
    return Shape([mirror(right)], details, 0.5 * (waist + outer))


def _shorts(rng: Rng, base: np.ndarray) -> Shape:
    """Shorts: trousers' waist over short, wide legs with cuffs."""
    bottom = rng.uniform(0.0, 0.12)
    right, top, waist, band_h, crotch = _legs(rng, bottom, rng.uniform(0.05, 0.09))
    outer = right[3][0]
    details = _waist(rng, base, top, waist, band_h, crotch)
    details += [
        band(-outer, bottom - 0.05, outer, bottom, 0.12),
        seam([(-outer, bottom - 0.05), (outer, bottom - 0.05)], 0.4),
    ]
    return Shape([mirror(right)], details, 0.5 * (waist + outer))


def _skirt(rng: Rng, base: np.ndarray) -> Shape:
    """Skirt: waistband with button, pleats or panel seams with a button front, hem."""
    top, bottom = rng.uniform(-0.36, -0.3), rng.uniform(0.3, 0.4)
    waist, hem_w, band_h = rng.uniform(0.16, 0.2), rng.uniform(0.3, 0.4), 0.05
    right = [
        (0.0, top),
        (waist, top),
        (waist + 0.01, top + 0.06),
        (hem_w, bottom),
        (hem_w * 0.5, bottom + 0.02),
        (0.0, bottom + 0.025),
    ]
    trim = contrast(rng, base)
    details = [band(-waist, top, waist, top + band_h, 0.2)]
    details += buttons(0.0, top + band_h / 2, top + band_h / 2, 1, 0.014, trim)
    details += [
        seam([(-hem_w + 0.02, bottom - 0.025), (0.0, bottom), (hem_w - 0.02, bottom - 0.025)], 0.25)
    ]
    if rng.random() < 0.5:  # pleats fanning out from the waistband: a fold line and its shadow
        for f in np.linspace(-0.8, 0.8, 7):
            details += [seam([(f * waist, top + band_h), (f * hem_w, bottom)], 0.25)]
            details += [
                seam([(f * waist + 0.01, top + band_h), (f * hem_w + 0.02, bottom)], -0.12, 0.012)
            ]
    else:  # panel seams and a buttoned front
        details += [seam([(f * waist, top + band_h), (f * hem_w, bottom)]) for f in (-0.6, 0.6)]
        details += buttons(0.0, top + band_h + 0.06, bottom - 0.06, 5, 0.013, trim)
    return Shape([mirror(right)], details, 0.5 * (waist + hem_w))


SHAPES: dict[str, Callable[[Rng, np.ndarray], Shape]] = {
    "shirt": _shirt,
    "tshirt": _tshirt,
    "jacket": _jacket,
    "dress": _dress,
    "trousers": _trousers,
    "shorts": _shorts,
    "skirt": _skirt,
}
