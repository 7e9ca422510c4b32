"""Garment photos with exact masks: shirt, dress, trousers or skirt, drawn from a seed.

A silhouette is drawn in its own frame (polygons plus darker seams, hems and buttons), placed
on the canvas with a random scale, offset and slight rotation, shaded (light from above, side
falloff, folds, an optional subtle print) and put on a plain shop backdrop or a cluttered
street-like one. All randomness comes from one ``numpy.random.default_rng(seed)``.
"""

from __future__ import annotations

import colorsys
from collections.abc import Callable
from typing import NamedTuple

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from fsg_ray.io.synthetic._common import Rng, check_choice, check_size, grid

GARMENT_KINDS: tuple[str, ...] = ("shirt", "dress", "trousers", "skirt")
BACKGROUNDS: tuple[str, ...] = ("plain", "cluttered")

Points = list[tuple[float, float]]


class _Detail(NamedTuple):
    """A seam, hem, band or button drawn darker inside the garment (garment frame)."""

    points: Points
    darkness: float  # 0 = invisible, 1 = black
    width: float  # line width in garment units; 0 = filled polygon


class _Shape(NamedTuple):
    """A garment in its own frame: x right, y down, roughly within [-0.5, 0.5]."""

    outline: list[Points]  # union of filled polygons = the mask
    details: list[_Detail]
    half_width: float  # body half-width, for side shading


class _Placement(NamedTuple):
    """Garment frame -> pixels: ``p_pix = R(angle) p * scale + centre``."""

    centre: np.ndarray  # (2,) pixels
    scale: float  # pixels per garment unit
    angle: float  # radians


# ---------------------------------------------------------------- garment silhouettes


def _flip(points: Points) -> Points:
    return [(-x, y) for x, y in points]


def _mirror(right: Points) -> Points:
    """Closes a right half (top centre -> bottom, clockwise) with its mirror image."""
    return right + [(-x, y) for x, y in reversed(right) if abs(x) > 1e-9]


def _neckline(rng: Rng, top: float) -> Points:
    """Round or V neck, from the centre point up to the right neck side."""
    nw, nd = rng.uniform(0.06, 0.08), rng.uniform(0.05, 0.1)
    if rng.random() < 0.3:
        return [(0.0, top + 1.5 * nd), (nw, top)]
    return [(nw * np.sin(a), top + nd * np.cos(a)) for a in np.linspace(0, np.pi / 2, 6)]


def _band(x0: float, x1: float, y0: float, y1: float, darkness: float) -> _Detail:
    return _Detail([(x0, y0), (x1, y0), (x1, y1), (x0, y1)], darkness, 0)


def _shirt(rng: Rng) -> _Shape:
    w, top, bottom = rng.uniform(0.2, 0.25), -0.36, rng.uniform(0.36, 0.44)
    long = rng.random() < 0.45
    length = rng.uniform(0.3, 0.38) if long else rng.uniform(0.1, 0.16)
    a = np.deg2rad(rng.uniform(60, 70) if long else rng.uniform(30, 45))
    d, perp = np.array([np.cos(a), np.sin(a)]), np.array([-np.sin(a), np.cos(a)])
    shoulder = np.array([w + 0.03, top + 0.04])
    outer_top = shoulder + length * d
    outer_bot = outer_top + 0.1 * perp  # sleeve width 0.1
    armpit = outer_bot - (outer_bot[0] - w) / d[0] * d
    neck = _neckline(rng, top)
    right = neck + [tuple(p) for p in (shoulder, outer_top, outer_bot, armpit)]
    right += [(w + rng.uniform(0.0, 0.02), bottom), (0.0, bottom)]
    cuff: Points = [tuple(outer_top - 0.03 * d), tuple(outer_bot - 0.03 * d)]
    details = [
        _Detail(neck + _flip(neck[::-1])[1:], 0.35, 0.025),
        _Detail(cuff, 0.25, 0.012),
        _Detail(_flip(cuff), 0.25, 0.012),
        _band(-w, w, bottom - 0.035, bottom - 0.025, 0.2),
    ]
    outline = [_mirror(right)]
    if long and rng.random() < 0.6:  # button-down shirt: collar, placket, buttons
        (x0, y0), yc = neck[-1], neck[0][1]
        collar: Points = [(x0 + 0.02, y0 - 0.015), (0.01, yc), (x0 * 0.9, yc + 0.07)]
        outline += [collar, _flip(collar)]
        details += [_Detail(c + c[:1], 0.4, 0.008) for c in (collar, _flip(collar))]
        details += [_Detail([(0.0, yc), (0.0, bottom)], 0.3, 0.008)]
        details += [
            _band(0.012, 0.028, y - 0.008, y + 0.008, 0.5)
            for y in np.linspace(yc + 0.06, bottom - 0.06, 6)
        ]
    return _Shape(outline, details, w)


def _dress(rng: Rng) -> _Shape:
    top, waist, hem = -0.42, rng.uniform(-0.12, -0.04), rng.uniform(0.38, 0.46)
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
        (waist_w + 0.4 * (hem_w - waist_w), waist + 0.4 * (hem - waist)),
        (hem_w, hem),
        (hem_w * 0.5, hem + 0.025),
        (0.0, hem + 0.03),
    ]
    details = [
        _Detail(neck + _flip(neck[::-1])[1:], 0.3, 0.015),
        _Detail([(-waist_w, waist), (waist_w, waist)], 0.35, 0.02),
    ]
    return _Shape([_mirror(right)], details, 0.5 * (bust + hem_w))


def _trousers(rng: Rng) -> _Shape:
    top, hem, band = -0.44, 0.46, 0.05
    waist, outer = rng.uniform(0.17, 0.21), rng.uniform(0.16, 0.24)
    inner, crotch = max(0.015, outer - rng.uniform(0.11, 0.16)), rng.uniform(-0.12, -0.05)
    right = [
        (0.0, top),
        (waist, top),
        (waist + 0.02, -0.25),
        (outer, hem),
        (inner, hem),
        (0.0, crotch),
    ]
    fly: Points = [
        (0.0, top + band),
        (0.0, crotch - 0.02),
        (0.05, crotch - 0.06),
        (0.05, top + band),
    ]
    pocket: Points = [(waist - 0.07, top + band), (waist - 0.02, top + 0.15), (waist + 0.02, -0.22)]
    details = [
        _band(-waist, waist, top, top + band, 0.2),
        _Detail(fly, 0.3, 0.008),
        _Detail(pocket, 0.3, 0.008),
        _Detail(_flip(pocket), 0.3, 0.008),
    ]
    details += [
        _band(x - 0.006, x + 0.006, top, top + band, 0.45)  # belt loops
        for x in (waist - 0.1, 0.1 - waist)
    ]
    return _Shape([_mirror(right)], details, 0.5 * (waist + outer))


def _skirt(rng: Rng) -> _Shape:
    top, hem = rng.uniform(-0.36, -0.3), rng.uniform(0.3, 0.4)
    waist, hem_w, band = rng.uniform(0.16, 0.2), rng.uniform(0.3, 0.4), 0.05
    right = [
        (0.0, top),
        (waist, top),
        (waist + 0.01, top + 0.06),
        (hem_w, hem),
        (hem_w * 0.5, hem + 0.02),
        (0.0, hem + 0.025),
    ]
    hemline: Points = [(-hem_w + 0.02, hem - 0.025), (0.0, hem), (hem_w - 0.02, hem - 0.025)]
    details = [_band(-waist, waist, top, top + band, 0.2), _Detail(hemline, 0.2, 0.01)]
    if rng.random() < 0.5:  # pleats fanning out from the waistband
        details += [
            _Detail([(f * waist, top + band), (f * hem_w, hem)], 0.15, 0.008)
            for f in np.linspace(-0.8, 0.8, 7)
        ]
    return _Shape([_mirror(right)], details, 0.5 * (waist + hem_w))


_SHAPES: dict[str, Callable[[Rng], _Shape]] = {
    "shirt": _shirt,
    "dress": _dress,
    "trousers": _trousers,
    "skirt": _skirt,
}


# ---------------------------------------------------------------- placing and drawing


def _to_pixels(points: Points, place: _Placement) -> Points:
    c, s = np.cos(place.angle), np.sin(place.angle)
    pix = (np.asarray(points) @ np.array([[c, s], [-s, c]])) * place.scale + place.centre
    return [(float(x), float(y)) for x, y in pix]


def _place(rng: Rng, size: int, shape: _Shape) -> _Placement:
    """Random scale, offset and slight rotation, then fitted inside a 4% margin."""
    centre = size * (0.5 + rng.uniform(-0.06, 0.06, 2))
    place = _Placement(centre, size * rng.uniform(0.8, 0.95), np.deg2rad(rng.uniform(-6, 6)))
    lo, hi = 0.04 * size, 0.96 * size

    def corners(p: _Placement) -> np.ndarray:
        return np.array([q for poly in shape.outline for q in _to_pixels(poly, p)])

    span = np.ptp(corners(place), axis=0).max()
    if span > hi - lo:  # shrink about the centre until it fits
        place = place._replace(scale=place.scale * (hi - lo) / span)
    pts = corners(place)
    shift = np.maximum(lo - pts.min(0), 0) - np.maximum(pts.max(0) - hi, 0)
    return place._replace(centre=place.centre + shift)


def _frame_coords(size: int, place: _Placement) -> tuple[np.ndarray, np.ndarray]:
    """Garment-frame coordinates (u, v) of every pixel centre, each (size, size)."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) + 0.5
    dx, dy = xx - np.float32(place.centre[0]), yy - np.float32(place.centre[1])
    c, s = np.float32(np.cos(place.angle)), np.float32(np.sin(place.angle))
    k = np.float32(1 / place.scale)
    return (c * dx + s * dy) * k, (-s * dx + c * dy) * k


def _draw_mask(shape: _Shape, place: _Placement, size: int) -> Image.Image:
    mask = Image.new("L", (size, size), 0)
    draw = ImageDraw.Draw(mask)
    for poly in shape.outline:
        draw.polygon(_to_pixels(poly, place), fill=255)
    return mask


def _draw_details(shape: _Shape, place: _Placement, size: int) -> np.ndarray:
    """Darkness in [0, 1] of seams, bands and buttons, softened by a small blur."""
    layer = Image.new("L", (size, size), 0)
    draw = ImageDraw.Draw(layer)
    for det in shape.details:
        pix, value = _to_pixels(det.points, place), int(255 * det.darkness)
        if det.width == 0:
            draw.polygon(pix, fill=value)
        else:
            width = max(1, round(det.width * place.scale))
            draw.line(pix, fill=value, width=width, joint="curve")
    layer = layer.filter(ImageFilter.GaussianBlur(max(0.5, size / 400)))
    return np.asarray(layer, np.float32) / 255.0


def _base_colour(rng: Rng) -> np.ndarray:
    """Mostly saturated solid colours, sometimes a neutral (black, navy, grey, beige, denim)."""
    if rng.random() < 0.35:
        neutrals = np.array(
            [
                (32, 32, 35),
                (60, 62, 68),
                (128, 128, 130),
                (35, 45, 85),
                (200, 180, 150),
                (55, 85, 135),
                (215, 212, 205),
            ],
            np.float32,
        )
        return neutrals[rng.integers(len(neutrals))]
    rgb = colorsys.hsv_to_rgb(rng.random(), rng.uniform(0.35, 0.85), rng.uniform(0.35, 0.85))
    return np.array(rgb, np.float32) * 255


def _fabric_pattern(rng: Rng, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Multiplicative luminance of the fabric: solid 70% of the time, else a subtle print."""
    kind, freq, amp = rng.integers(10), rng.uniform(15, 40), rng.uniform(0.08, 0.18)
    if kind > 2:
        return np.ones_like(u)
    across, down = np.sin(2 * np.pi * freq * u), np.sin(2 * np.pi * freq * v)
    if kind == 0:  # pinstripes
        return 1 - amp * (across > 0.6)
    if kind == 1:  # breton stripes
        return 1 - amp * (down > 0.3)
    return 1 - 0.5 * amp * ((across > 0) ^ (down > 0))  # small gingham


def _folds(rng: Rng, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Darkness of a few soft, curved, mostly diagonal creases, in [0, 0.45]."""
    dark = np.zeros_like(u)
    for _ in range(rng.integers(2, 6)):
        a, b = (u, v) if rng.random() < 0.75 else (v, u)  # some creases run across
        x0, slope = rng.uniform(-0.3, 0.3), rng.uniform(-0.5, 0.5)
        wiggle = 0.02 * np.sin(rng.uniform(4, 10) * b + rng.uniform(0, 2 * np.pi))
        dist = (a - (x0 + slope * b + wiggle)) / rng.uniform(0.01, 0.03)
        window = np.exp(-(((b - rng.uniform(-0.2, 0.2)) / rng.uniform(0.1, 0.3)) ** 4))
        dark += rng.uniform(0.12, 0.3) * np.exp(-(dist**2)) * window
    return np.minimum(dark, 0.45)


def _garment_pixels(
    rng: Rng, shape: _Shape, place: _Placement, size: int, mask: Image.Image
) -> np.ndarray:
    """Float RGB of the fabric over the whole canvas: colour x shading x folds x seams."""
    u, v = _frame_coords(size, place)
    side = np.minimum(np.abs(u) / shape.half_width, 1.3)
    light = (1.1 - 0.25 * (v + 0.5)) * (1 - 0.3 * side**2)  # lit from above, darker at sides
    edge = np.asarray(mask.filter(ImageFilter.GaussianBlur(size / 80)), np.float32) / 255.0
    lum = light * (0.75 + 0.25 * edge) * _fabric_pattern(rng, u, v) * (1 - _folds(rng, u, v))
    lum *= 1 - 0.6 * _draw_details(shape, place, size)
    return _base_colour(rng) * lum[..., None]


# ---------------------------------------------------------------- backgrounds


def _plain_background(rng: Rng, size: int, mask: Image.Image) -> np.ndarray:
    """Near-white product-shot backdrop with a faint gradient and a soft drop shadow."""
    level = (rng.uniform(240, 250) + rng.uniform(-3, 3, 3)).astype(np.float32)
    ramp = np.linspace(3, -3, size, dtype=np.float32)[:, None, None]
    dx, dy = round(size * 0.015), round(size * 0.02)
    shadow = mask.transform(mask.size, Image.Transform.AFFINE, (1, 0, -dx, 0, 1, -dy))
    shade = np.asarray(shadow.filter(ImageFilter.GaussianBlur(size / 40)), np.float32) / 255
    noise = 1.5 * rng.standard_normal((size, size, 3), np.float32)
    return (level + ramp) * (1 - 0.08 * shade[..., None]) + noise


def _cluttered_background(rng: Rng, size: int) -> np.ndarray:
    """Street-photo-like clutter: a gradient, rectangles and blobs, blur and sensor noise."""
    c0, c1 = rng.uniform(30, 230, (2, 3))
    a = rng.uniform(0, 2 * np.pi)
    xx, yy = grid(size)
    xx, yy = xx / size, yy / size
    t = np.clip(0.5 + (xx - 0.5) * np.cos(a) + (yy - 0.5) * np.sin(a), 0, 1)[..., None]
    canvas = Image.fromarray(((1 - t) * c0 + t * c1).astype(np.uint8))
    draw = ImageDraw.Draw(canvas)
    for _ in range(rng.integers(8, 16)):
        x0, y0 = rng.uniform(-0.1, 0.9, 2) * size
        w, h = rng.uniform(0.08, 0.45, 2) * size
        shape_fn = draw.rectangle if rng.random() < 0.5 else draw.ellipse
        shape_fn((x0, y0, x0 + w, y0 + h), fill=tuple(int(c) for c in rng.integers(0, 256, 3)))
    canvas = canvas.filter(ImageFilter.GaussianBlur(rng.uniform(0.5, 2.0) * size / 256))
    return np.asarray(canvas, np.float32) + 8 * rng.standard_normal((size, size, 3), np.float32)


def garment(
    seed: int, size: int = 256, kind: str | None = None, background: str = "plain"
) -> tuple[Image.Image, Image.Image]:
    """Draws a garment photo and its mask.

    Args:
        seed: Seed of everything random (silhouette, colour, placement, background).
        size: Side of the square image in pixels, at least 32.
        kind: One of ``GARMENT_KINDS``; None picks one from the seed (naming that same kind
            gives the identical image).
        background: ``"plain"`` (near-white shop backdrop) or ``"cluttered"`` (street).

    Returns:
        The RGB image (size x size) and its "L" mask: 255 exactly where the garment was
        drawn, 0 elsewhere.

    Raises:
        ValueError: For an unknown kind or background, or a size below 32.
    """
    check_size(size)
    check_choice(background, BACKGROUNDS, "background")
    if kind is not None:
        check_choice(kind, GARMENT_KINDS, "garment kind")
    rng = np.random.default_rng(seed)
    drawn_kind = GARMENT_KINDS[int(rng.integers(len(GARMENT_KINDS)))]
    shape = _SHAPES[kind or drawn_kind](rng)
    place = _place(rng, size, shape)
    mask = _draw_mask(shape, place, size)
    fabric = _garment_pixels(rng, shape, place, size, mask)
    if background == "plain":
        bg = _plain_background(rng, size, mask)
    else:
        bg = _cluttered_background(rng, size)
    rgb = np.where(np.asarray(mask)[..., None] > 0, fabric, bg)
    return Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8), "RGB"), mask
