"""Backdrops behind a garment: a plain light shop backdrop, a coloured one, a two-colour
studio gradient, or street-like clutter. The product-shot backdrops are lit by the garment's
light (a faint falloff away from it) and carry its soft drop shadow, cast away from the light.
"""

from __future__ import annotations

import colorsys

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from fsg_ray.io.synthetic._common import Rng, grid
from fsg_ray.io.synthetic.fabric import Light

BACKGROUNDS: tuple[str, ...] = ("plain", "coloured", "gradient", "cluttered")
PRODUCT_BACKGROUNDS: tuple[str, ...] = ("plain", "coloured", "gradient")


def _shadow(mask: Image.Image, light: Light, size: int) -> np.ndarray:
    """The garment's blurred silhouette moved away from the light, (H, W, 1) in [0, 1]."""
    dx, dy = -light.x * size * 0.02, -light.y * size * 0.02
    moved = mask.transform(mask.size, Image.Transform.AFFINE, (1, 0, -dx, 0, 1, -dy))
    blurred = moved.filter(ImageFilter.GaussianBlur(size / 40))
    return (np.asarray(blurred, np.float32) / 255)[..., None]


def _falloff(light: Light, size: int) -> np.ndarray:
    """Brightness factor across the backdrop: up to a few percent brighter towards the light."""
    xx, yy = grid(size)
    t = ((xx / size - 0.5) * light.x + (yy / size - 0.5) * light.y) * light.strength
    return (1 + 0.12 * t)[..., None]


def _finish(rng: Rng, rgb: np.ndarray, mask: Image.Image, light: Light, size: int) -> np.ndarray:
    """Lights a backdrop, darkens its shadow and adds faint sensor noise."""
    shade = 1 - rng.uniform(0.06, 0.12) * _shadow(mask, light, size)
    noise = 1.5 * rng.standard_normal((size, size, 3), np.float32)
    return rgb * _falloff(light, size) * shade + noise


def plain(rng: Rng, size: int, mask: Image.Image, light: Light) -> np.ndarray:
    """Near-white product-shot backdrop."""
    level = (rng.uniform(240, 250) + rng.uniform(-3, 3, 3)).astype(np.float32)
    return _finish(rng, np.broadcast_to(level, (size, size, 3)), mask, light, size)


def _pastel(rng: Rng) -> np.ndarray:
    h, s, v = rng.random(), rng.uniform(0.15, 0.45), rng.uniform(0.7, 0.92)
    return np.array(colorsys.hsv_to_rgb(h, s, v), np.float32) * 255


def coloured(rng: Rng, size: int, mask: Image.Image, light: Light) -> np.ndarray:
    """A solid pastel or mid-tone backdrop (a coloured seamless paper)."""
    return _finish(rng, np.broadcast_to(_pastel(rng), (size, size, 3)), mask, light, size)


def gradient(rng: Rng, size: int, mask: Image.Image, light: Light) -> np.ndarray:
    """A studio sweep: a wall blending into a darker floor of a neighbouring colour."""
    top = _pastel(rng)
    bottom = 0.5 * (top + _pastel(rng)) * rng.uniform(0.6, 0.8)
    _, yy = grid(size)
    t = np.clip((yy / size - rng.uniform(0.3, 0.6)) * rng.uniform(1.5, 3.0) + 0.5, 0, 1)
    return _finish(rng, top + t[..., None] * (bottom - top), mask, light, size)


def cluttered(rng: Rng, size: int, mask: Image.Image, light: Light) -> np.ndarray:
    """Street-photo-like clutter: a gradient, rectangles and blobs, blur and sensor noise
    (no studio light or shadow: ``mask`` and ``light`` are unused)."""
    del mask, light
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


DRAW = {"plain": plain, "coloured": coloured, "gradient": gradient, "cluttered": cluttered}
