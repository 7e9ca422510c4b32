"""Pure tensor transforms that turn decoded images into the two training sets.

X^(2) (global stage): random square crop of a full image -> y_c at the high resolution and
x, its low-resolution version (paper §3.1: 72 px and 288 px).
X^(1) (patch stage): every patch_size x patch_size patch of a shop photo at a fixed stride
(paper: 128 px, stride 16), optionally only patches mostly inside the garment mask.

Images are float tensors (3, H, W) in [0, 1], except in :func:`resize_short_side_uint8`,
for pipelines that store decoded photos as (H, W, 3) uint8. No Ray import: the local loader
and the Ray Data pipelines share these functions.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor


def resize(img: Tensor, size: int | tuple[int, int]) -> Tensor:
    """Antialiased bilinear resize of (3, H, W) or (B, 3, H, W) to ``size`` (side or (h, w))."""
    hw = (size, size) if isinstance(size, int) else size
    batch = img if img.dim() == 4 else img.unsqueeze(0)
    out = F.interpolate(batch, size=hw, mode="bilinear", align_corners=False, antialias=True)
    return out.clamp(0, 1) if img.dim() == 4 else out[0].clamp(0, 1)


def resize_short_side(img: Tensor, side: int) -> Tensor:
    """Resizes (3, H, W) so that its shorter side is ``side``, keeping the aspect ratio."""
    h, w = img.shape[-2:]
    scale = side / min(h, w)
    return resize(img, (max(side, round(h * scale)), max(side, round(w * scale))))


def resize_short_side_uint8(img: np.ndarray, side: int) -> np.ndarray:
    """:func:`resize_short_side` of an (H, W, 3) uint8 photo, in uint8: (h, w, 3), contiguous.

    The same antialiased bilinear filter, computed in uint8 on the channels-last layout
    (within one grey level of the float path, 1.5-3.5x faster: no conversion to float and
    back); a photo already at ``side`` is returned as it is.
    """
    h, w = img.shape[:2]
    scale = side / min(h, w)
    hw = (max(side, round(h * scale)), max(side, round(w * scale)))
    if hw == (h, w):
        return np.ascontiguousarray(img)
    # (1, 3, H, W) view of the (H, W, 3) array: channels_last memory, copied only when strided
    # or read-only (torch warns on read-only arrays).
    batch = torch.from_numpy(np.require(img, requirements=["C", "W"])).permute(2, 0, 1)[None]
    out = F.interpolate(batch, size=hw, mode="bilinear", align_corners=False, antialias=True)
    return out[0].permute(1, 2, 0).contiguous().numpy()


def random_global_pair(
    img: Tensor, low: int, high: int, gen: torch.Generator, min_scale: float = 0.6
) -> tuple[Tensor, Tensor]:
    """A training pair of the global stage: (x at low px, y_c at high px).

    A random square covering ``min_scale``-1 of the image's shorter side is cropped and
    resized to ``high`` (y_c); x is y_c downsampled to ``low`` (paper: 72 and 288).
    """
    _, h, w = img.shape
    side = int(min(h, w) * (min_scale + (1 - min_scale) * torch.rand(1, generator=gen).item()))
    top = int(torch.randint(0, h - side + 1, (1,), generator=gen))
    left = int(torch.randint(0, w - side + 1, (1,), generator=gen))
    y_c = resize(img[:, top : top + side, left : left + side], high)
    return resize(y_c, low), y_c


def patchify(
    img: Tensor, size: int, stride: int, mask: Tensor | None = None, min_fraction: float = 0.0
) -> Tensor:
    """Every size x size patch of ``img`` at ``stride``: (N, 3, size, size).

    Args:
        img: (3, H, W) with H, W >= size.
        size: patch side (paper: 128).
        stride: step between patches (paper: 16).
        mask: optional garment mask (H, W) in [0, 1].
        min_fraction: keep only patches with at least this fraction of mask pixels.

    Raises:
        ValueError: the image is smaller than one patch, or the mask's size differs.
    """
    _, h, w = img.shape
    keep = _kept(h, w, size, stride, mask, min_fraction)
    patches = img.unfold(1, size, stride).unfold(2, size, stride)  # (3, nh, nw, size, size)
    patches = patches.permute(1, 2, 0, 3, 4).reshape(-1, 3, size, size)  # (N, 3, size, size)
    return patches.contiguous() if keep is None else patches[keep].contiguous()


def patch_windows(
    h: int, w: int, size: int, stride: int, mask: Tensor | None = None, min_fraction: float = 0.0
) -> Tensor:
    """Top-left corners (top, left) of the patches :func:`patchify` keeps, row-major: (N, 2).

    The Ray Data pipeline stores these few integers per photo instead of the patches, which
    are cut where they are consumed (81 patches of 128 px are 16x the photo's bytes).
    """
    keep = _kept(h, w, size, stride, mask, min_fraction)
    tops = torch.arange(0, h - size + 1, stride)
    lefts = torch.arange(0, w - size + 1, stride)
    corners = torch.cartesian_prod(tops, lefts).reshape(-1, 2)  # (N, 2), row-major
    return corners if keep is None else corners[keep]


def _kept(
    h: int, w: int, size: int, stride: int, mask: Tensor | None, min_fraction: float
) -> Tensor | None:
    """Which patches of an (h, w) image to keep, row-major (None: all of them)."""
    if h < size or w < size:
        raise ValueError(f"image of {h}x{w} px is smaller than one {size}px patch")
    if mask is None or min_fraction <= 0:
        return None
    if mask.shape != (h, w):
        raise ValueError(f"mask is {tuple(mask.shape)} but the image is {(h, w)}")
    cover = mask.unfold(0, size, stride).unfold(1, size, stride).mean(dim=(-1, -2)).reshape(-1)
    return cover >= min_fraction
