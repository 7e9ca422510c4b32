"""Style images: six procedural periodic textures, drawn from a seed.

The period is about 1/6-1/10 of the side, so a 128 px crop of a 256 px texture shows the
whole pattern (the paper's 128 px patches of a 256 px style image).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from PIL import Image, ImageFilter

from fsg_ray.io.synthetic._common import Rng, check_choice, check_size, grid

STYLE_NAMES: tuple[str, ...] = ("stripes", "dots", "waves", "leopard", "checks", "porcelain")


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
    xx, yy = grid(size)
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
    xx, yy = grid(size)
    p = size / rng.uniform(6.5, 8.5)
    xs = xx + (np.floor(yy / p) % 2) * p / 2
    d = np.hypot(xs % p - p / 2, yy % p - p / 2)
    alpha = np.clip(0.3 * p - d + 0.5, 0, 1)[..., None]  # 1 px anti-aliased edge
    return (1 - alpha) * bg + alpha * dot


def _waves(rng: Rng, size: int) -> np.ndarray:
    """Hokusai-like wavy bands: navy troughs, light blue slopes, white foam crests."""
    navy, light, foam = np.array([(15, 35, 90), (90, 150, 205), (245, 248, 250)], np.float32)
    xx, yy = grid(size)
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
    xx, yy = grid(size)
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
    xx, yy = grid(size)
    p = size / rng.uniform(6, 8)
    warp = pal[sett[(xx % p / p * len(sett)).astype(int)]]
    weft = pal[sett[(yy % p / p * len(sett)).astype(int)]]
    twill = (((xx + yy) // 2) % 2 == 0)[..., None]
    return 0.3 * (warp + weft) + 0.4 * np.where(twill, warp, weft)


def _porcelain(rng: Rng, size: int) -> np.ndarray:
    """Blue-and-white porcelain: cobalt spirals, five-petal flowers and vines on white."""
    xx, yy = grid(size)
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
    check_choice(name, STYLE_NAMES, "style")
    check_size(size)
    rgb = _TEXTURES[name](np.random.default_rng(seed), size)
    return Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8), "RGB")
