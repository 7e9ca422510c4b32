"""Garment photos with exact masks, drawn from a seed.

Seven kinds (:mod:`.shapes`): shirt, t-shirt, jacket, dress, trousers, shorts, skirt, each
with its construction details (:mod:`.details`: collars, plackets with buttons, pockets,
seams, hems, logos). A silhouette is drawn in its own frame, placed on the canvas with a
random scale, offset, slight rotation and a left-right flip, then coloured (:mod:`.fabric`:
a solid colour or an all-over print, folds, a directional light) and put on a backdrop
(:mod:`.backgrounds`: plain, coloured, gradient or cluttered). All randomness comes from
one ``numpy.random.default_rng(seed)``; the backdrop is drawn last, so the garment and its
mask do not depend on it.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from fsg_ray.io.synthetic import backgrounds, fabric
from fsg_ray.io.synthetic._common import Rng, check_choice, check_size
from fsg_ray.io.synthetic.backgrounds import BACKGROUNDS, PRODUCT_BACKGROUNDS
from fsg_ray.io.synthetic.details import Points, Shape
from fsg_ray.io.synthetic.shapes import SHAPES

GARMENT_KINDS: tuple[str, ...] = tuple(SHAPES)

__all__ = ["BACKGROUNDS", "GARMENT_KINDS", "PRODUCT_BACKGROUNDS", "garment"]


class _Placement(NamedTuple):
    """Garment frame -> pixels: ``p_pix = R(angle) (flip * p_x, p_y) * scale + centre``."""

    centre: np.ndarray  # (2,) pixels
    scale: float  # pixels per garment unit
    angle: float  # radians
    flip: float  # 1 as drawn, -1 mirrored left-right


def _to_pixels(points: Points, place: _Placement) -> Points:
    c, s = np.cos(place.angle), np.sin(place.angle)
    pts = np.asarray(points) * np.array([place.flip, 1.0])
    pix = (pts @ np.array([[c, s], [-s, c]])) * place.scale + place.centre
    return [(float(x), float(y)) for x, y in pix]


def _place(rng: Rng, size: int, shape: Shape) -> _Placement:
    """A random flip, rotation (up to 8 degrees) and scale (its longer side 62-90% of the
    canvas), then a random offset that keeps it inside a 4% margin."""
    flip = 1.0 if rng.random() < 0.5 else -1.0
    unit = _Placement(np.zeros(2), 1.0, np.deg2rad(rng.uniform(-8, 8)), flip)

    def corners(p: _Placement) -> np.ndarray:
        return np.array([q for poly in shape.outline for q in _to_pixels(poly, p)])

    lo, hi = 0.04 * size, 0.96 * size
    span = np.ptp(corners(unit), axis=0).max()
    scale = min(size * rng.uniform(0.62, 0.9), hi - lo) / span
    pts = corners(unit._replace(scale=scale))
    # Centre offset: uniform over the positions that keep every corner inside the margin.
    low, high = lo - pts.min(0), hi - pts.max(0)
    centre = low + rng.uniform(0.0, 1.0, 2) * np.maximum(high - low, 0.0)
    return unit._replace(scale=scale, centre=centre)


def _frame_coords(size: int, place: _Placement) -> tuple[np.ndarray, np.ndarray]:
    """Garment-frame coordinates (u, v) of every pixel centre, each (size, size)."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) + 0.5
    dx, dy = xx - np.float32(place.centre[0]), yy - np.float32(place.centre[1])
    c, s = np.float32(np.cos(place.angle)), np.float32(np.sin(place.angle))
    k = np.float32(1 / place.scale)
    return (c * dx + s * dy) * k * np.float32(place.flip), (-s * dx + c * dy) * k


def _draw_mask(shape: Shape, place: _Placement, size: int) -> Image.Image:
    mask = Image.new("L", (size, size), 0)
    draw = ImageDraw.Draw(mask)
    for poly in shape.outline:
        draw.polygon(_to_pixels(poly, place), fill=255)
    return mask


class _Layers(NamedTuple):
    """The details rasterised: shading (darker, lighter) and paint (colour, coverage)."""

    dark: np.ndarray  # (H, W) in [0, 1]
    light: np.ndarray  # (H, W) in [0, 1]
    paint: np.ndarray  # (H, W, 3) RGB
    cover: np.ndarray  # (H, W, 1) in [0, 1]


def _draw_details(shape: Shape, place: _Placement, size: int, light_stitches: bool) -> _Layers:
    """Draws every detail on its layer; shading is softened by a small blur (stitches and
    folds are not razor sharp), paint only anti-aliased. With ``light_stitches`` the darker
    lines are drawn lighter instead: on black or navy cloth a darker seam would barely show,
    and such garments are sewn with contrast thread."""
    dark, light = Image.new("L", (size, size)), Image.new("L", (size, size))
    paint, cover = Image.new("RGB", (size, size)), Image.new("L", (size, size))
    pens = {id(im): ImageDraw.Draw(im) for im in (dark, light, paint, cover)}
    for det in shape.details:
        pix = _to_pixels(det.points, place)
        if det.colour is None:
            lighter = det.tone < 0 or (light_stitches and det.width > 0)
            targets = [(light if lighter else dark, int(255 * abs(det.tone)))]
        else:
            rgb = tuple(int(c) for c in det.colour)
            targets = [(paint, rgb), (cover, 255)]  # type: ignore[list-item]
        for image, fill in targets:
            pen = pens[id(image)]
            if det.width == 0:
                pen.polygon(pix, fill=fill)
            else:
                pen.line(
                    pix, fill=fill, width=max(1, round(det.width * place.scale)), joint="curve"
                )
    soft = ImageFilter.GaussianBlur(max(0.5, size / 320))
    aa = ImageFilter.GaussianBlur(max(0.35, size / 640))

    def arr(im: Image.Image, f: ImageFilter.Filter) -> np.ndarray:
        return np.asarray(im.filter(f), np.float32) / 255.0

    return _Layers(
        arr(dark, soft), arr(light, soft), np.asarray(paint, np.float32), arr(cover, aa)[..., None]
    )


def _garment_pixels(
    rng: Rng,
    shape: Shape,
    base: np.ndarray,
    place: _Placement,
    mask: Image.Image,
    light: fabric.Light,
) -> np.ndarray:
    """Float RGB of the garment over the whole canvas: cloth (colour or print) under the
    painted details, times light, folds, seams and a darker rim where the cloth turns away."""
    size = mask.size[0]
    u, v = _frame_coords(size, place)
    cloth = fabric.fabric(rng, base, u, v)
    layers = _draw_details(shape, place, size, light_stitches=float(base.mean()) < 80)
    cloth = cloth * (1 - layers.cover) + layers.paint * layers.cover
    rim = np.asarray(mask.filter(ImageFilter.GaussianBlur(size / 80)), np.float32) / 255.0
    lum = fabric.shading(light, place.flip * u / shape.half_width, v) * (0.78 + 0.22 * rim)
    lum *= (1 + fabric.folds(rng, u, v)) * (1 - 0.6 * layers.dark)
    rgb = cloth * lum[..., None]
    # Lighter details move towards white rather than scale up, so they show on dark cloth.
    return rgb + (255 - rgb) * (0.5 * layers.light[..., None])


def garment(
    seed: int, size: int = 256, kind: str | None = None, background: str = "plain"
) -> tuple[Image.Image, Image.Image]:
    """Draws a garment photo and its mask.

    Args:
        seed: Seed of everything random (silhouette, details, colour, print, placement,
            light, background).
        size: Side of the square image in pixels, at least 32.
        kind: One of ``GARMENT_KINDS``; None picks one from the seed (naming that same kind
            gives the identical image).
        background: One of ``BACKGROUNDS``: ``"plain"`` (near-white shop backdrop),
            ``"coloured"``, ``"gradient"`` (studio sweep) or ``"cluttered"`` (street). It
            changes only the pixels outside the mask.

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
    base = fabric.base_colour(rng)
    shape = SHAPES[kind or drawn_kind](rng, base)
    place = _place(rng, size, shape)
    light = fabric.draw_light(rng)
    mask = _draw_mask(shape, place, size)
    cloth = _garment_pixels(rng, shape, base, place, mask, light)
    bg = backgrounds.DRAW[background](rng, size, mask, light)  # last: the garment ignores it
    rgb = np.where(np.asarray(mask)[..., None] > 0, cloth, bg)
    return Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8), "RGB"), mask
