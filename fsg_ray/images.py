"""Decoding images into tensors, and tensors back into images.

One decode path for every entry point: a pixel limit checked from the header before the
pixels are decoded (decompression bombs), EXIF orientation applied, any mode converted to RGB
(transparency composited over white).
"""

from __future__ import annotations

import io
import os

import numpy as np
import torch
from PIL import Image, ImageOps
from torch import Tensor

#: Largest image decoded, in pixels (about 8k x 8k).
MAX_PIXELS = 64_000_000


class ImageDecodeError(ValueError):
    """An input is not a decodable image within the limits; the message says why."""


def decode_image(data: bytes, max_pixels: int = MAX_PIXELS, name: str = "<bytes>") -> Image.Image:
    """Decodes encoded bytes into an RGB PIL image, upright.

    Raises:
        ImageDecodeError: not an image, truncated, or over ``max_pixels``.
    """
    try:
        img = Image.open(io.BytesIO(data))
        w, h = img.size  # read from the header; no pixels decoded yet
        if w * h > max_pixels:
            raise ImageDecodeError(f"{name}: {w}x{h} px exceeds the limit of {max_pixels} pixels")
        return _to_rgb(ImageOps.exif_transpose(img))
    except ImageDecodeError:
        raise
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
        raise ImageDecodeError(f"{name}: not a decodable image ({e})") from e


def _to_rgb(img: Image.Image) -> Image.Image:
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(img, dtype=np.float64)
        img = Image.fromarray((arr / max(arr.max(), 1) * 255).astype(np.uint8))
    return img.convert("RGB")


def load_image(path: str | os.PathLike[str], max_pixels: int = MAX_PIXELS) -> Image.Image:
    """Reads and decodes a local image file (see :func:`decode_image`)."""
    with open(path, "rb") as f:
        return decode_image(f.read(), max_pixels, name=os.fspath(path))


def to_tensor(img: Image.Image) -> Tensor:
    """RGB PIL image -> float tensor (3, H, W) in [0, 1]."""
    arr = np.asarray(img.convert("RGB"), dtype=np.uint8)
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).float().div(255)


def mask_to_tensor(img: Image.Image) -> Tensor:
    """Mask image (any mode) -> float tensor (H, W) in {0, 1} (pixels >= 128 are garment)."""
    arr = np.asarray(img.convert("L"), dtype=np.uint8)
    return torch.from_numpy((arr >= 128).astype(np.float32))


def to_image(t: Tensor) -> Image.Image:
    """Float tensor (3, H, W) in [0, 1] -> RGB PIL image."""
    arr = t.detach().float().clamp(0, 1).mul(255).round().byte().permute(1, 2, 0).cpu().numpy()
    return Image.fromarray(arr, mode="RGB")
