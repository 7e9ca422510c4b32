"""The cloth itself: base colour, all-over prints, folds and directional lighting.

Prints and folds are functions of the garment-frame coordinates (u, v) of every pixel, so
they turn and flip with the garment; the light is one direction in the picture's frame,
shared with the background's shading and drop shadow.
"""

from __future__ import annotations

import colorsys
from typing import NamedTuple

import numpy as np

from fsg_ray.io.synthetic._common import Rng
from fsg_ray.io.synthetic.details import second_colour

_NEUTRALS = np.array(
    [
        (40, 40, 44),  # black
        (60, 62, 68),  # charcoal
        (128, 128, 130),  # grey
        (35, 45, 85),  # navy
        (200, 180, 150),  # beige
        (55, 85, 135),  # denim
        (150, 120, 80),  # camel
        (85, 95, 60),  # olive
    ],
    np.float32,
)


class Light(NamedTuple):
    """A directional light: (x, y) towards the light in the picture plane, and its strength."""

    x: float
    y: float
    strength: float  # 0 = flat, about 0.5 = strong side light


def draw_light(rng: Rng) -> Light:
    """A studio light from above, from the upper left to the upper right."""
    a = np.deg2rad(rng.uniform(-155, -25))  # image y points down: -90 deg is straight above
    return Light(float(np.cos(a)), float(np.sin(a)), float(rng.uniform(0.2, 0.5)))


def base_colour(rng: Rng) -> np.ndarray:
    """Mostly saturated solid colours, sometimes a neutral (black, navy, grey, beige, denim)."""
    if rng.random() < 0.4:
        return _NEUTRALS[rng.integers(len(_NEUTRALS))]
    rgb = colorsys.hsv_to_rgb(rng.random(), rng.uniform(0.35, 0.85), rng.uniform(0.35, 0.85))
    return np.array(rgb, np.float32) * 255


def fabric(rng: Rng, base: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """RGB of the cloth at every pixel, (H, W, 3) float: solid half of the time, else an
    all-over print in the base colour and a second one (stripes, pinstripes, gingham,
    polka dots, a small floral)."""
    kind, freq = int(rng.integers(10)), rng.uniform(12, 24)
    other = second_colour(rng, base)
    if kind >= 5:
        return np.broadcast_to(base, (*u.shape, 3)).copy()
    across, down = np.sin(2 * np.pi * freq * u), np.sin(2 * np.pi * freq * v)
    if kind == 0:  # pinstripes
        t = (np.sin(2 * np.pi * 1.5 * freq * u) > 0.85).astype(np.float32)
    elif kind == 1:  # breton stripes
        t = (down > 0.2).astype(np.float32)
    elif kind == 2:  # gingham: half-tone where one band crosses, full where both do
        t = 0.5 * (across > 0).astype(np.float32) + 0.5 * (down > 0).astype(np.float32)
    elif kind == 3:  # polka dots on a half-drop grid
        t = _dots(u, v + 0.5 / freq * (np.floor(u * freq) % 2), freq, 0.28)
    else:  # a small floral: five dots around a centre dot
        t = _dots(u, v, freq * 0.5, 0.12)
        for a in np.linspace(0, 2 * np.pi, 5, endpoint=False):
            du, dv = 0.3 / freq * np.cos(a), 0.3 / freq * np.sin(a)
            t = np.maximum(t, _dots(u + du, v + dv, freq * 0.5, 0.1))
    return base + t[..., None] * (other - base)


def _dots(u: np.ndarray, v: np.ndarray, freq: float, radius: float) -> np.ndarray:
    """1 inside dots of ``radius`` (a fraction of the period) on a square grid, else 0."""
    fu, fv = (u * freq) % 1.0 - 0.5, (v * freq) % 1.0 - 0.5
    return (fu**2 + fv**2 < radius**2).astype(np.float32)


def folds(rng: Rng, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Signed relief of a few soft, curved creases: each a shadow beside a highlight (the
    derivative of a Gaussian across the crease), mostly diagonal. Multiply luminance by
    ``1 + folds``; values lie in about [-0.35, 0.2]."""
    relief = np.zeros_like(u)
    for _ in range(int(rng.integers(2, 6))):
        a, b = (u, v) if rng.random() < 0.75 else (v, u)  # some creases run across
        x0, slope = rng.uniform(-0.3, 0.3), rng.uniform(-0.5, 0.5)
        wiggle = 0.02 * np.sin(rng.uniform(4, 10) * b + rng.uniform(0, 2 * np.pi))
        dist = (a - (x0 + slope * b + wiggle)) / rng.uniform(0.012, 0.03)
        window = np.exp(-(((b - rng.uniform(-0.2, 0.2)) / rng.uniform(0.1, 0.3)) ** 4))
        relief += rng.uniform(0.15, 0.35) * dist * np.exp(-(dist**2)) * window
    return np.clip(relief, -0.35, 0.2)


def shading(light: Light, side: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Luminance factor of a garment lit by ``light``, taken as a cylinder about its centre
    line: ``side`` in [-1, 1] is the pixel's horizontal position across the body in the
    picture's frame (the surface normal's x part), ``v`` the garment-frame height."""
    s = np.clip(side, -1.0, 1.0)
    normal_z = np.sqrt(1.0 - 0.85 * s**2)  # the front faces the camera
    lambert = 0.55 * normal_z + light.strength * light.x * s * 0.8
    return 0.55 + lambert + light.strength * light.y * 0.3 * v  # brighter towards the light
