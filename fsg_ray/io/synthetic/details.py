"""The garment frame's vocabulary: points, details, shapes, and the construction details
(seams, hems, plackets with buttons, pockets, collars, logos) the silhouettes are built from.

A garment is drawn in its own frame: x right, y down, roughly within [-0.5, 0.5]. A detail is
either *shading* (``colour`` None: a seam, hem or crease drawn darker, ``tone`` > 0, or
lighter, ``tone`` < 0) or *paint* (an opaque ``colour``: a button, a logo, a contrasting
trim). Every detail is drawn inside the mask only: the mask is the union of ``outline``.
"""

from __future__ import annotations

import colorsys
from typing import NamedTuple

import numpy as np

from fsg_ray.io.synthetic._common import Rng

Points = list[tuple[float, float]]
Colour = tuple[float, float, float]

SEAM = 0.008  # width of a stitched seam, garment units (about 1 px at 160 px)


class Detail(NamedTuple):
    """A line (``width`` > 0) or a filled polygon (``width`` 0) in the garment frame."""

    points: Points
    width: float
    tone: float = 0.3  # shading: fraction darkened (> 0) or lightened (< 0)
    colour: Colour | None = None  # paint: an opaque RGB colour instead of shading


class Shape(NamedTuple):
    """A garment in its own frame."""

    outline: list[Points]  # union of filled polygons = the mask
    details: list[Detail]  # drawn in order (later paint covers earlier paint)
    half_width: float  # body half-width, for the lighting's roundness


# ---------------------------------------------------------------- geometry


def flip(points: Points) -> Points:
    """Mirror image about the centre line x = 0."""
    return [(-x, y) for x, y in points]


def mirror(right: Points) -> Points:
    """Closes a right half (top centre -> bottom, clockwise) with its mirror image."""
    return right + [(-x, y) for x, y in reversed(right) if abs(x) > 1e-9]


def rect(x0: float, y0: float, x1: float, y1: float) -> Points:
    return [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]


def circle(cx: float, cy: float, r: float, n: int = 12) -> Points:
    a = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return [(float(cx + r * np.cos(t)), float(cy + r * np.sin(t))) for t in a]


def closed(points: Points) -> Points:
    """The outline of a polygon as a line: its first point repeated at the end."""
    return points + points[:1]


# ---------------------------------------------------------------- colours


def contrast(rng: Rng, base: np.ndarray) -> Colour:
    """A trim colour that stands out from ``base``: off-white on dark, near-black on light,
    sometimes a saturated accent (brass, red, navy)."""
    if rng.random() < 0.3:
        accents = [(190, 150, 60), (190, 35, 40), (30, 40, 90), (240, 240, 235)]
        return accents[int(rng.integers(len(accents)))]
    return (238.0, 236.0, 228.0) if base.mean() < 120 else (28.0, 28.0, 32.0)


def second_colour(rng: Rng, base: np.ndarray) -> np.ndarray:
    """A print's second colour: white, or the base colour's hue turned and lightness shifted."""
    if rng.random() < 0.4:
        return np.array((240, 238, 232), np.float32)
    h, s, v = colorsys.rgb_to_hsv(*(base / 255))
    h2 = (h + rng.uniform(0.3, 0.7)) % 1.0
    v2 = 0.9 if v < 0.55 else 0.25
    return np.array(colorsys.hsv_to_rgb(h2, max(s, 0.4), v2), np.float32) * 255


# ---------------------------------------------------------------- construction details


def band(x0: float, y0: float, x1: float, y1: float, tone: float = 0.2) -> Detail:
    """A filled rectangle of shading: waistband, cuff, rib."""
    return Detail(rect(x0, y0, x1, y1), 0, tone)


def seam(points: Points, tone: float = 0.3, width: float = SEAM) -> Detail:
    return Detail(points, width, tone)


def hem(x0: float, x1: float, y: float, depth: float = 0.03) -> list[Detail]:
    """A hem: the fold line and, ``depth`` above it, its topstitching."""
    return [seam([(x0, y), (x1, y)], 0.35), seam([(x0, y - depth), (x1, y - depth)], 0.25)]


def buttons(
    x: float, y0: float, y1: float, count: int, radius: float, colour: Colour
) -> list[Detail]:
    """``count`` buttons from y0 to y1 on x: a dark rim, the painted face, two thread holes."""
    out: list[Detail] = []
    for y in np.linspace(y0, y1, count):
        out.append(Detail(circle(x, y, radius * 1.3), 0, 0.5))
        out.append(Detail(circle(x, y, radius), 0, 0, colour))
        for dx in (-0.35 * radius, 0.35 * radius):
            out.append(Detail(circle(x + dx, y, radius * 0.22, 6), 0, 0.6))
    return out


def placket(y0: float, y1: float, half: float, button_colour: Colour, count: int) -> list[Detail]:
    """A button placket on the centre line: its two stitch lines and its buttons."""
    out = [seam([(x, y0), (x, y1)], 0.3) for x in (-half, half)]
    return out + buttons(0.0, y0 + 0.05, y1 - 0.06, count, 0.016, button_colour)


def patch_pocket(
    x0: float, y0: float, w: float, h: float, flap: bool, button_colour: Colour | None
) -> list[Detail]:
    """A patch pocket: a faint shadow under it, its stitched outline, a hem or a flap."""
    body = rect(x0, y0, x0 + w, y0 + h)
    out = [
        Detail(rect(x0 + 0.006, y0 + 0.006, x0 + w + 0.006, y0 + h + 0.006), 0, 0.15),
        Detail(body, 0, -0.05),
        seam(closed(body), 0.35),
        seam(closed(rect(x0 + 0.008, y0 + 0.008, x0 + w - 0.008, y0 + h - 0.008)), 0.2, 0.005),
    ]
    if flap:
        f = [(x0 - 0.005, y0), (x0 + w + 0.005, y0), (x0 + w + 0.005, y0 + 0.3 * h)]
        f += [(x0 + w / 2, y0 + 0.4 * h), (x0 - 0.005, y0 + 0.3 * h)]
        out += [Detail(f, 0, 0.12), seam(closed(f), 0.4)]
        if button_colour is not None:
            out += buttons(x0 + w / 2, y0 + 0.3 * h, y0 + 0.3 * h, 1, 0.012, button_colour)
    else:
        out.append(seam([(x0, y0 + 0.02), (x0 + w, y0 + 0.02)], 0.25))
    return out


def welt_pocket(x0: float, y0: float, w: float) -> list[Detail]:
    """A welt (jetted) pocket: a thin dark slit with a raised lip."""
    return [band(x0, y0, x0 + w, y0 + 0.012, 0.45), band(x0, y0 + 0.012, x0 + w, y0 + 0.02, -0.1)]


def collar(neck: Points, spread: float, drop: float) -> tuple[Points, Points]:
    """A shirt collar's right wing from the right neck point: (outline polygon, stand line)."""
    (xr, yr), yc = neck[-1], neck[0][1]
    wing: Points = [(xr + 0.02, yr - 0.015), (0.01, yc), (xr * spread, yc + drop)]
    return wing, [(0.0, yc), (xr, yr)]


def logo(rng: Rng, cx: float, cy: float, r: float, colour: Colour) -> list[Detail]:
    """A chest logo or print of radius about ``r``: a roundel, a star, three stripes or a
    block monogram, in ``colour``."""
    kind = int(rng.integers(4))
    if kind == 0:  # roundel with a bar
        return [
            Detail(circle(cx, cy, r, 20), 0, 0, colour),
            Detail(circle(cx, cy, 0.6 * r, 16), 0, 0.5),
            Detail(rect(cx - r, cy - 0.15 * r, cx + r, cy + 0.15 * r), 0, 0, colour),
        ]
    if kind == 1:  # five-pointed star
        a = np.linspace(-np.pi / 2, 1.5 * np.pi, 10, endpoint=False)
        rad = np.where(np.arange(10) % 2 == 0, r, 0.42 * r)
        xs, ys = cx + rad * np.cos(a), cy + rad * np.sin(a)
        star = [(float(x), float(y)) for x, y in zip(xs, ys, strict=True)]
        return [Detail(star, 0, 0, colour)]
    if kind == 2:  # three slanted stripes
        return [
            Detail([(cx + dx - 0.2 * r, cy + r), (cx + dx + 0.2 * r, cy - r)], 0.22 * r, 0, colour)
            for dx in (-0.55 * r, 0.0, 0.55 * r)
        ]
    # A block letter "H" over a bar: a monogram.
    w = 0.18 * r
    return [
        Detail(rect(cx - 0.7 * r, cy - r, cx - 0.7 * r + w, cy + 0.5 * r), 0, 0, colour),
        Detail(rect(cx + 0.7 * r - w, cy - r, cx + 0.7 * r, cy + 0.5 * r), 0, 0, colour),
        Detail(rect(cx - 0.7 * r, cy - 0.3 * r, cx + 0.7 * r, cy - 0.3 * r + w), 0, 0, colour),
        Detail(rect(cx - r, cy + 0.75 * r, cx + r, cy + 0.75 * r + w), 0, 0, colour),
    ]
