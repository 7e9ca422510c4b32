"""Pure image operations of bulk restyling: size limit, compositing, colour, encoding
(garment masks: :mod:`fsg_ray.core.masks`). Arrays are (H, W, 3) uint8 RGB and (H, W) bool
masks; no Ray import.

The order for one product photo x and one style's output G(x) (:mod:`fsg_ray.distributed.restyle`)::

    x = fit_long_side(decoded x, max_side)       the output's size; x is the reference
    m = given mask (resized) | auto_mask(x) | None
    y = G(x)  ->  with_strength(y, x, s)  ->  keep_chroma(y, x)  (optional)
              ->  composite(y, x, m)  ->  encode(...)

:func:`composite` picks whole pixels (``np.where``), so every pixel outside the mask is the
very byte triple of ``x``; a lossless format (PNG) keeps that exactly in the file.
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping
from typing import Any

import numpy as np
from PIL import Image

from fsg_ray.config.evaluate import MAX_STRENGTH

#: Output formats: name -> (file extension, Pillow format, save options).
FORMATS: dict[str, tuple[str, str, dict[str, Any]]] = {
    "png": ("png", "PNG", {}),
    "jpeg": ("jpg", "JPEG", {"quality": 92}),
    "webp": ("webp", "WEBP", {"quality": 90}),
}
# EXIF tags that carry the provenance tag: ImageDescription (a JSON object) and Software.
_EXIF_DESCRIPTION, _EXIF_SOFTWARE = 0x010E, 0x0131
_SOFTWARE = "fsg-ray"


def fit_long_side(img: Image.Image, max_side: int) -> Image.Image:
    """Shrinks ``img`` so that its long side is at most ``max_side``, keeping the aspect ratio.

    Lanczos resampling; an image that already fits is returned as it is (never enlarged).
    """
    w, h = img.size
    if max(w, h) <= max_side:
        return img
    scale = max_side / max(w, h)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return img.resize(size, Image.Resampling.LANCZOS)


def composite(styled: np.ndarray, original: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    """``styled`` inside the garment mask, ``original``'s exact pixels outside it.

    Args:
        styled: G(x), (H, W, 3) uint8.
        original: x at the same size, (H, W, 3) uint8.
        mask: (H, W) bool, True on the garment; None restyles the whole image.
    """
    if mask is None:
        return styled
    return np.where(mask[..., None], styled, original)


#: The input's and the output's bounds before their logits in :func:`with_strength`: those of
#: :func:`fsg_ray.core.strength.apply_strength` (this module needs no torch; a test pins them).
STRENGTH_X_EPS, STRENGTH_Y_EPS = 0.01, 1e-6


def with_strength(styled: np.ndarray, original: np.ndarray, strength: float) -> np.ndarray:
    """G(x)'s change scaled by ``strength``, sigmoid(logit(x) + s (logit(y) - logit(x))), as
    :func:`fsg_ray.core.strength.apply_strength` on (H, W, 3) uint8 arrays: 0 gives the photo
    back (clamped as the residual output clamps it), 1 G(x) itself, 2 twice its change.

    Raises:
        ValueError: The arrays differ in shape, or the strength is not in [0, 4].
    """
    if not 0.0 <= strength <= MAX_STRENGTH:  # NaN fails too
        raise ValueError(f"strength must be a number in [0, {MAX_STRENGTH:g}], got {strength!r}")
    if styled.shape != original.shape:
        raise ValueError(f"styled and original differ in shape: {styled.shape} vs {original.shape}")
    if strength == 1.0:
        return styled
    x = np.clip(original.astype(np.float32) / 255, STRENGTH_X_EPS, 1 - STRENGTH_X_EPS)
    y = np.clip(styled.astype(np.float32) / 255, STRENGTH_Y_EPS, 1 - STRENGTH_Y_EPS)
    logit_x = np.log(x) - np.log1p(-x)
    z = logit_x + np.float32(strength) * (np.log(y) - np.log1p(-y) - logit_x)
    out = 1 / (1 + np.exp(-z))
    return np.clip(np.rint(out * 255), 0, 255).astype(np.uint8)


def keep_chroma(styled: np.ndarray, original: np.ndarray) -> np.ndarray:
    """Luma (Y) of ``styled`` with the chroma (Cb, Cr) of ``original``: the style's texture in
    the product's colours.

    In full-range YCbCr (JPEG, BT.601) RGB is linear in Y with fixed Cb and Cr, so the result
    is ``original + (Y_styled - Y_original)`` on every channel, rounded. Where that leaves the
    RGB cube the clipping shifts the chroma there.
    """
    luma = np.array([0.299, 0.587, 0.114], np.float32)
    y_styled, y_original = styled.astype(np.float32) @ luma, original.astype(np.float32) @ luma
    out = original.astype(np.float32) + (y_styled - y_original)[..., None]
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def encode(rgb: np.ndarray, fmt: str, tag: Mapping[str, str]) -> bytes:
    """Encodes (H, W, 3) uint8 as ``fmt`` (a :data:`FORMATS` key) with a provenance tag.

    The tag (e.g. style, generator version, settings) is stored as JSON in the EXIF
    ImageDescription, which PNG, JPEG and WebP all carry; :func:`read_tag` gives it back.
    """
    _, pillow_format, options = FORMATS[fmt]
    exif = Image.Exif()
    exif[_EXIF_DESCRIPTION] = json.dumps(dict(tag), sort_keys=True)
    exif[_EXIF_SOFTWARE] = _SOFTWARE
    buf = io.BytesIO()
    Image.fromarray(rgb, "RGB").save(buf, format=pillow_format, exif=exif, **options)
    return buf.getvalue()


def read_tag(data: bytes) -> tuple[dict[str, str], tuple[int, int]] | None:
    """The provenance tag and (width, height) of a file written by :func:`encode`.

    Only the header is parsed. Returns None for anything else: other images, corrupt bytes.
    """
    try:
        with Image.open(io.BytesIO(data)) as img:
            exif = img.getexif()
            if exif.get(_EXIF_SOFTWARE) != _SOFTWARE:
                return None
            tag = json.loads(exif[_EXIF_DESCRIPTION])
            return {str(k): str(v) for k, v in tag.items()}, img.size
    except Exception:  # Pillow raises many kinds of errors on foreign or broken files
        return None
