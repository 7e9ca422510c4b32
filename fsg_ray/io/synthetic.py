"""Offline stand-ins for the paper's data: garments with masks, and style textures.

Fashion144k street photos, shop photos and style images cannot be downloaded here, so this
module draws deterministic substitutes from a seed and writes them as real JPEG/PNG files:
``garment`` (shirt, dress, trousers or skirt on a plain shop backdrop or a cluttered
street-like one, with its exact mask), ``style_texture`` (six periodic textures whose period is
about 1/6-1/10 of the side, so a 128 px crop of a 256 px texture shows the pattern) and
``write_dataset`` (all of it in the ``SyntheticLayout`` folders). All randomness comes from
``numpy.random.default_rng``; drawing is vectorised numpy plus ``PIL.ImageDraw``.
"""

from __future__ import annotations

import colorsys
import io
import logging
import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import NamedTuple

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

logger = logging.getLogger(__name__)

GARMENT_KINDS: tuple[str, ...] = ("shirt", "dress", "trousers", "skirt")
STYLE_NAMES: tuple[str, ...] = ("stripes", "dots", "waves", "leopard", "checks", "porcelain")
BACKGROUNDS: tuple[str, ...] = ("plain", "cluttered")
MIN_SIZE = 32
JPEG_QUALITY = 92

Points = list[tuple[float, float]]
Rng = np.random.Generator


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


def _check_choice(value: str, valid: Sequence[str], what: str) -> None:
    if value not in valid:
        raise ValueError(f"unknown {what} {value!r}; valid: {', '.join(valid)}")


def _check_size(size: int) -> None:
    if size < MIN_SIZE:
        raise ValueError(f"size must be >= {MIN_SIZE}, got {size}")


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
    xx, yy = _grid(size)
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
    _check_size(size)
    _check_choice(background, BACKGROUNDS, "background")
    if kind is not None:
        _check_choice(kind, GARMENT_KINDS, "garment kind")
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


# ---------------------------------------------------------------- style textures


def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    return xx, yy


def _pick(rng: Rng, palettes: Sequence[Sequence[tuple[int, int, int]]]) -> np.ndarray:
    return np.array(palettes[int(rng.integers(len(palettes)))], np.float32)


def _stripes(rng: Rng, size: int) -> np.ndarray:
    """Bold diagonal stripes in 2-3 colours."""
    pal = _pick(
        rng,
        [
            [(220, 40, 50), (250, 240, 225), (25, 40, 95)],
            [(255, 200, 30), (20, 20, 25)],
            [(0, 150, 140), (250, 120, 60), (250, 245, 230)],
        ],
    )
    xx, yy = _grid(size)
    a = np.deg2rad(rng.uniform(35, 55))
    u = (xx * np.cos(a) + yy * np.sin(a)) / size * rng.uniform(6, 9)
    bounds = np.cumsum(rng.dirichlet(np.full(len(pal), 4.0)))[:-1]
    return pal[np.searchsorted(bounds, u % 1.0)]


def _dots(rng: Rng, size: int) -> np.ndarray:
    """Polka dots on a staggered grid."""
    bg, dot = _pick(
        rng,
        [
            [(200, 20, 45), (255, 250, 240)],
            [(20, 30, 80), (255, 215, 60)],
            [(15, 15, 15), (245, 245, 245)],
        ],
    )
    xx, yy = _grid(size)
    p = size / rng.uniform(6.5, 8.5)
    xs = xx + (np.floor(yy / p) % 2) * p / 2
    d = np.hypot(xs % p - p / 2, yy % p - p / 2)
    alpha = np.clip(0.3 * p - d + 0.5, 0, 1)[..., None]  # 1 px anti-aliased edge
    return (1 - alpha) * bg + alpha * dot


def _waves(rng: Rng, size: int) -> np.ndarray:
    """Hokusai-like wavy bands: navy troughs, light blue slopes, white foam crests."""
    navy, light, foam = np.array([(15, 35, 90), (90, 150, 205), (245, 248, 250)], np.float32)
    xx, yy = _grid(size)
    p, lam = size / rng.uniform(6, 8), size / rng.uniform(4.5, 6)
    t = 2 * np.pi * xx / lam + rng.uniform(0, 2 * np.pi)
    f = (yy / p + 0.35 * np.sin(t) + 0.15 * np.sin(2 * t + 1.0)) % 1.0
    body = light + (navy - light) * np.clip((f[..., None] - 0.15) / 0.85, 0, 1)
    crest = (f < 0.12) | ((np.abs(f - 0.5) < 0.03) & (np.sin(3 * t) > 0))
    return np.where(crest[..., None], foam, body)


def _rosettes(rng: Rng, xx: np.ndarray, yy: np.ndarray, p: float) -> tuple[np.ndarray, ...]:
    """Masks (ring, centre) of one jittered, irregular, broken rosette per p x p cell."""
    n = int(np.ceil(max(xx.max(), yy.max()) / p)) + 3  # cells, padded by one on each side
    lo = np.array([-0.15, -0.15, 0.26, 0, 0, 0])[:, None]
    hi = np.array([0.15, 0.15, 0.38, 2 * np.pi, 2 * np.pi, 2 * np.pi])[:, None]
    table = rng.uniform(lo, hi, (6, n * n)).astype(np.float32)  # jitter x, y, radius, phases
    ci, cj = np.floor(xx / p).astype(np.intp), np.floor(yy / p).astype(np.intp)
    # A rosette reaches < 0.15 cell into a neighbour: test own cell + nearest neighbours.
    side_i, side_j = np.where(xx / p - ci < 0.5, -1, 1), np.where(yy / p - cj < 0.5, -1, 1)
    ring, centre = np.zeros(xx.shape, bool), np.zeros(xx.shape, bool)
    for fi, fj in ((0, 0), (1, 0), (0, 1), (1, 1)):
        i, j = ci + fi * side_i, cj + fj * side_j
        jx, jy, rad, ph0, ph1, ph2 = table.take((j + 1) * n + i + 1, axis=1)
        x0, y0 = (i.astype(np.float32) + 0.5 + jx) * p, (j.astype(np.float32) + 0.5 + jy) * p
        dx, dy = xx - x0, (yy - y0) * 1.2  # float32 throughout: trig dominates the cost
        r, th = np.hypot(dx, dy), np.arctan2(dy, dx)
        outer = rad * p * (1 + 0.2 * np.sin(3 * th + ph0) + 0.1 * np.sin(5 * th + ph1))
        ring |= (r < outer) & (r > 0.55 * outer) & (np.sin(2 * th + ph2) < 0.8)  # broken rings
        centre |= r <= 0.55 * outer
    return ring, centre


def _leopard(rng: Rng, size: int) -> np.ndarray:
    """Irregular, broken dark rosettes with orange-brown centres on tan."""
    xx, yy = _grid(size)
    p = size / rng.uniform(6, 8)
    ring, centre = _rosettes(rng, xx, yy, p)
    mottle = 1 + 0.06 * np.sin(xx / p * 1.7) * np.cos(yy / p * 1.3)
    tan, brown, dark = np.array([(215, 160, 85), (175, 100, 40), (40, 25, 15)], np.float32)
    out = np.where(centre[..., None], brown, tan * mottle[..., None])
    return np.where(ring[..., None], dark, out)


def _checks(rng: Rng, size: int) -> np.ndarray:
    """Tartan: one sett of coloured bands crossed with itself, woven in a 2/2 twill."""
    pal = _pick(
        rng,
        [
            [(180, 20, 35), (20, 60, 40), (20, 30, 70), (240, 200, 40)],
            [(30, 50, 110), (20, 80, 60), (10, 10, 15), (235, 235, 230)],
        ],
    )
    sett = np.array([0, 0, 0, 0, 1, 1, 0, 0, 0, 0, 2, 2, 2, 3, 2, 2, 2])
    xx, yy = _grid(size)
    p = size / rng.uniform(6, 8)
    warp = pal[sett[(xx % p / p * len(sett)).astype(int)]]
    weft = pal[sett[(yy % p / p * len(sett)).astype(int)]]
    twill = (((xx + yy) // 2) % 2 == 0)[..., None]
    return 0.3 * (warp + weft) + 0.4 * np.where(twill, warp, weft)


def _porcelain(rng: Rng, size: int) -> np.ndarray:
    """Blue-and-white porcelain: cobalt spirals, five-petal flowers and vines on white."""
    xx, yy = _grid(size)
    p = size / rng.uniform(5.5, 7)
    cx, cy = xx % p - p / 2, yy % p - p / 2
    r, th = np.hypot(cx, cy), np.arctan2(cy, cx)
    odd = (np.floor(xx / p) + np.floor(yy / p)) % 2 > 0
    turn = (r / (0.03 * p) - np.where(odd, th, -th)) / (2 * np.pi)  # Archimedean spiral arms
    spiral = (np.abs(turn - np.round(turn)) * 0.06 * np.pi < 0.045) & (r < 0.42 * p)
    petal = 0.4 * p * np.abs(np.cos(2.5 * th + rng.uniform(0, np.pi)))
    flower = (np.abs(r - petal) < 0.035 * p) | (r < 0.08 * p)
    ink = np.where(odd, spiral, flower) + 0.25 * ((r < 0.8 * petal) & ~odd)
    ink = ink + 0.8 * (np.abs(cy + p / 2 - 0.06 * p * np.sin(4 * np.pi * xx / p)) < 0.02 * p)
    blur = ImageFilter.GaussianBlur(max(0.4, size / 400))  # ink bleeding into the glaze
    ink_img = Image.fromarray((np.clip(ink, 0, 1) * 255).astype(np.uint8)).filter(blur)
    alpha = np.asarray(ink_img, np.float32)[..., None] / 255
    white, cobalt = np.array([(246, 246, 240), (25, 55, 150)], np.float32)
    return (1 - alpha) * white + alpha * cobalt


_TEXTURES: dict[str, Callable[[Rng, int], np.ndarray]] = {
    "stripes": _stripes,
    "dots": _dots,
    "waves": _waves,
    "leopard": _leopard,
    "checks": _checks,
    "porcelain": _porcelain,
}


def style_texture(name: str, size: int = 256, seed: int = 0) -> Image.Image:
    """Draws a procedural style image.

    Args:
        name: One of ``STYLE_NAMES``.
        size: Side of the square image in pixels, at least 32.
        seed: Varies palette, angle, period and phase within the style.

    Returns:
        An RGB image tiled with the pattern, period about 1/6-1/10 of ``size``.

    Raises:
        ValueError: For an unknown name or a size below 32.
    """
    _check_choice(name, STYLE_NAMES, "style")
    _check_size(size)
    rgb = _TEXTURES[name](np.random.default_rng(seed), size)
    return Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8), "RGB")


# ---------------------------------------------------------------- dataset on disk


@dataclass(frozen=True)
class SyntheticLayout:
    """Folder names of a synthetic dataset, relative to its root."""

    full: str = "full"  # Fashion144k-like full images (cluttered backgrounds, JPEG)
    shop: str = "shop"  # shop photos (plain backgrounds, JPEG)
    shop_masks: str = "shop_masks"  # masks of shop photos, PNG, same file stem as the photo
    styles: str = "styles"  # one PNG per style, <name>.png
    heldout: str = "heldout"  # held-out test garments (plain background, JPEG) ...
    heldout_masks: str = "heldout_masks"  # ... and their masks (PNG)


_SPLIT_IDS = {"full": 0, "shop": 1, "heldout": 2}


def _image_seed(seed: int, split: str, index: int) -> int:
    """Independent per-image seed derived from (dataset seed, split, index)."""
    seq = np.random.SeedSequence(seed, spawn_key=(_SPLIT_IDS[split], index))
    return int(seq.generate_state(1, np.uint64)[0])


def _write_atomic(image: Image.Image, path: Path) -> None:
    """Encodes ``image`` (JPEG or PNG by suffix) to a temp file beside ``path``, then renames."""
    buf = io.BytesIO()
    if path.suffix == ".jpg":
        image.save(buf, format="JPEG", quality=JPEG_QUALITY)
    else:
        image.save(buf, format="PNG")
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(buf.getvalue())
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def _images(
    seed: int, n_full: int, n_shop: int, n_heldout: int, full_size: int, shop_size: int
) -> list[tuple[str, str, Image.Image]]:
    """(folder, file name, image) of every garment image and mask of the dataset."""
    out = []
    for i in range(n_full):
        image, _ = garment(_image_seed(seed, "full", i), full_size, background="cluttered")
        out.append(("full", f"{i:06d}.jpg", image))
    for i in range(n_shop):
        image, mask = garment(_image_seed(seed, "shop", i), shop_size)
        out += [("shop", f"{i:06d}.jpg", image), ("shop_masks", f"{i:06d}.png", mask)]
    for i in range(n_heldout):
        kind = GARMENT_KINDS[i % len(GARMENT_KINDS)]
        image, mask = garment(_image_seed(seed, "heldout", i), shop_size, kind=kind)
        out += [("heldout", f"{i:06d}.jpg", image), ("heldout_masks", f"{i:06d}.png", mask)]
    return out


def write_dataset(
    out_dir: str | os.PathLike,
    *,
    seed: int = 0,
    n_full: int = 64,
    n_shop: int = 16,
    n_heldout: int = 4,
    full_size: int = 256,
    shop_size: int = 256,
    style_size: int = 256,
    styles: Sequence[str] = STYLE_NAMES,
) -> dict[str, list[str]]:
    """Writes a synthetic dataset in ``SyntheticLayout`` under ``out_dir``.

    Full images (cluttered), shop photos and held-out garments (plain) use disjoint
    per-image seeds derived from (seed, split, index); held-out garments cycle through
    ``GARMENT_KINDS``. The same arguments give byte-identical files; each file is written
    atomically.

    Args:
        out_dir: Root folder; created if missing.
        seed: Dataset seed (non-negative).
        n_full: Number of full (street-like) images.
        n_shop: Number of shop photos, each with a mask of the same stem.
        n_heldout: Number of held-out garments, each with a mask of the same stem.
        full_size: Side of full images in pixels.
        shop_size: Side of shop photos, held-out garments and their masks.
        style_size: Side of style images.
        styles: Style names to write, each from ``STYLE_NAMES``.

    Returns:
        Folder name -> sorted relative paths written, e.g. ``"shop_masks/000003.png"``.

    Raises:
        ValueError: For an unknown style, a negative count or a size below 32.
    """
    for name in styles:
        _check_choice(name, STYLE_NAMES, "style")
    for size in (full_size, shop_size, style_size):
        _check_size(size)
    if min(n_full, n_shop, n_heldout) < 0:
        raise ValueError(f"counts must be >= 0, got {n_full=}, {n_shop=}, {n_heldout=}")
    layout, root = SyntheticLayout(), Path(out_dir)
    items = _images(seed, n_full, n_shop, n_heldout, full_size, shop_size)
    items += [("styles", f"{name}.png", style_texture(name, style_size, seed)) for name in styles]
    written: dict[str, list[str]] = {f.name: [] for f in fields(layout)}
    for folder in written:
        (root / getattr(layout, folder)).mkdir(parents=True, exist_ok=True)
    for folder, file_name, image in items:
        rel = f"{getattr(layout, folder)}/{file_name}"
        _write_atomic(image, root / rel)
        written[folder].append(rel)
    logger.info("wrote synthetic dataset to %s: %s", root, {k: len(v) for k, v in written.items()})
    return {k: sorted(v) for k, v in written.items()}
