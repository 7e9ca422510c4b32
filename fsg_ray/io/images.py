"""Decoding images and garment masks into tensors, and tensors back into images.

One decode path for every entry point (local folders, Ray Data, the CLI):

1. a byte limit (:data:`MAX_BYTES`) checked before Pillow sees the data, and empty input
   rejected;
2. only the formats in :data:`FORMATS` are tried (no EPS, no exotic plug-ins);
3. a pixel limit (:data:`MAX_PIXELS`) checked from the header, before any pixel is decoded
   (decompression bombs such as a PNG header claiming 100000 x 100000);
4. the pixels are decoded in full, so truncated files fail here and not later (a JPEG asked
   for at a smaller ``max_side`` or ``min_side`` is decoded at a reduced scale: draft mode);
5. 16/32-bit grey becomes 8-bit in integer arithmetic, the image is shrunk to ``max_side`` if
   one is given, then EXIF orientation is applied and any mode (L, P, RGBA, CMYK, ...) becomes
   RGB, with transparency composited over white. Shrinking before converting keeps the memory
   of a large photo at about one copy of its decoded pixels.

Every failure is an :class:`ImageDecodeError` whose message names the input and the reason.
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
#: Largest encoded input accepted, in bytes.
MAX_BYTES = 64 * 1024 * 1024
#: Pillow formats that are tried; anything else is "not a decodable image".
FORMATS = ("JPEG", "PNG", "WEBP", "BMP", "TIFF", "GIF")
#: Mask pixels at or above this grey level are garment.
MASK_THRESHOLD = 128


class ImageDecodeError(ValueError):
    """An input is not a decodable image within the limits; the message says why.

    Args:
        name: The input (a URI or path).
        reason: Why it was rejected, e.g. ``empty file (0 bytes)``.
    """

    def __init__(self, name: str, reason: str) -> None:
        super().__init__(name, reason)  # both in args, so the error pickles (Ray tasks)
        self.name, self.reason = name, reason

    def __str__(self) -> str:
        return f"{self.name}: {self.reason}"


class ImageTooLarge(ImageDecodeError):
    """An input is over the byte or pixel limit (checked before any pixel is decoded)."""


def decode_image(
    data: bytes,
    max_pixels: int = MAX_PIXELS,
    name: str = "<bytes>",
    max_bytes: int = MAX_BYTES,
    formats: tuple[str, ...] = FORMATS,
    max_side: int | None = None,
    min_side: int | None = None,
) -> Image.Image:
    """Decodes encoded bytes into an RGB PIL image, upright.

    Args:
        data: The encoded file.
        max_pixels: Largest width x height accepted, read from the header.
        name: How the input is named in error messages (a URI or path).
        max_bytes: Largest ``len(data)`` accepted.
        formats: The Pillow formats tried (a subset of :data:`FORMATS`).
        max_side: Shrink (Lanczos, never enlarge) so that the long side is at most this,
            before the conversion to RGB; None keeps the decoded size.
        min_side: The short side the caller will resize to. A JPEG larger than that is
            decoded at the smallest reduced scale (1/2, 1/4 or 1/8) whose short side is still
            at least ``min_side``; other formats, and None, decode at full size.

    Raises:
        ImageDecodeError: empty, not an image, or truncated; :class:`ImageTooLarge` over
            ``max_bytes`` or ``max_pixels``.
    """
    if not data:
        raise ImageDecodeError(name, "empty file (0 bytes)")
    if len(data) > max_bytes:
        raise ImageTooLarge(name, f"{len(data)} bytes exceeds the limit of {max_bytes} bytes")
    return _decode(data, max_pixels, name, formats, max_side, min_side)


def decode_mask(
    data: bytes,
    size: tuple[int, int] | None = None,
    name: str = "<bytes>",
    max_pixels: int = MAX_PIXELS,
) -> Tensor:
    """Decodes a garment mask (any mode) into a float tensor (H, W) in {0, 1}.

    The mask goes through the same checks as :func:`decode_image` (limits, EXIF orientation,
    transparency over white); pixels whose grey level is at least :data:`MASK_THRESHOLD` are
    garment.

    Args:
        data: The encoded mask.
        size: (height, width) to resize to with nearest-neighbour sampling, so the values stay
            in {0, 1}; None keeps the decoded size.
        name: How the input is named in error messages.
        max_pixels: Largest width x height accepted, read from the header.

    Raises:
        ImageDecodeError: as :func:`decode_image`.
    """
    img = decode_image(data, max_pixels, name)
    if size is not None and img.size != (size[1], size[0]):
        img = img.resize((size[1], size[0]), Image.Resampling.NEAREST)
    return mask_to_tensor(img)


def image_size(data: bytes, formats: tuple[str, ...] = FORMATS) -> tuple[int, int] | None:
    """(width, height) from the header of an encoded image (no pixel decoded), or None if it
    is not one of ``formats``."""
    try:
        with Image.open(io.BytesIO(data), formats=formats) as img:
            return img.size
    except Exception:  # Pillow plug-ins raise many kinds of errors on hostile input
        return None


def _decode(
    data: bytes,
    max_pixels: int,
    name: str,
    formats: tuple[str, ...],
    max_side: int | None,
    min_side: int | None = None,
) -> Image.Image:
    """Checks the pixel limit, decodes every pixel, shrinks, orients, converts to RGB."""
    try:
        opened = Image.open(io.BytesIO(data), formats=formats)
        w, h = opened.size  # read from the header; no pixels decoded yet
        if w * h > max_pixels:
            raise ImageTooLarge(name, f"{w}x{h} px exceeds the limit of {max_pixels} pixels")
        draft = max(max_side or 0, min_side or 0)
        if draft and opened.format == "JPEG":
            # Decodes at 1/2, 1/4 or 1/8 scale with both sides still at least ``draft``: the
            # full-size pixels of a large JPEG are never held, and the DCT does most of the
            # shrinking (a 1600 x 1200 photo for 256 px is decoded at 400 x 300: 3 against 22
            # ms with the resize, half a grey level apart on average; bench_decode.py).
            opened.draft("RGB", (draft, draft))
        opened.load()  # decode every pixel now, so a truncated file fails here and not later
        img = _to_8bit(opened)
        if max_side is not None:
            img = _shrink(img, max_side)
        return _to_rgb(ImageOps.exif_transpose(img))
    except ImageDecodeError:
        raise
    except Image.UnidentifiedImageError as e:  # its text holds a memory address: not kept
        raise ImageDecodeError(name, f"not a decodable image (not {', '.join(formats)})") from e
    except Image.DecompressionBombError as e:  # Pillow's own, larger limit, hit inside open()
        raise ImageTooLarge(name, f"exceeds the limit of {max_pixels} pixels ({e})") from e
    except Exception as e:  # Pillow plug-ins raise many kinds of errors on hostile input
        raise ImageDecodeError(name, f"not a decodable image ({e})") from e


#: Rows converted at once from 16/32-bit grey: bounds the temporaries to a few MB.
_ROWS_PER_BLOCK = 256


def _to_8bit(img: Image.Image) -> Image.Image:
    """16/32-bit grey (I;16*, I) -> L, scaled by its maximum, in integer arithmetic.

    Rounding is ``(v * 255 + m // 2) // m``; the work is done a block of rows at a time in
    int64, so the only full-size copies are the decoded pixels and the 8-bit result
    (float64 here once cost 8 bytes a pixel several times over).
    """
    if img.mode not in ("I;16", "I;16B", "I;16L", "I"):
        return img
    arr = np.asarray(img)  # (H, W) uint16 or int32
    peak = max(int(arr.max()), 1)
    out = np.empty(arr.shape, dtype=np.uint8)
    for top in range(0, arr.shape[0], _ROWS_PER_BLOCK):
        block = arr[top : top + _ROWS_PER_BLOCK].astype(np.int64).clip(0, None)
        out[top : top + _ROWS_PER_BLOCK] = (block * 255 + peak // 2) // peak
    img8 = Image.fromarray(out, mode="L")
    img8.info["exif"] = img.getexif().tobytes()  # keeps the orientation for exif_transpose
    return img8


def _shrink(img: Image.Image, max_side: int) -> Image.Image:
    """The long side to at most ``max_side`` (Lanczos; palette images through RGB(A) first,
    as Pillow resamples them by nearest neighbour), keeping the EXIF orientation tag."""
    w, h = img.size
    if max(w, h) <= max_side:
        return img
    exif = img.getexif()
    if img.mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    elif img.mode not in ("L", "LA", "RGB", "RGBA", "CMYK"):
        img = img.convert("RGB")
    scale = max_side / max(w, h)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    small = img.resize(size, Image.Resampling.LANCZOS)
    small.info["exif"] = exif.tobytes()
    return small


def _to_rgb(img: Image.Image) -> Image.Image:
    """Any mode -> RGB; transparency over white, 16/32-bit grey scaled by its maximum."""
    img = _to_8bit(img)
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
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
    return torch.from_numpy((arr >= MASK_THRESHOLD).astype(np.float32))


def to_image(t: Tensor) -> Image.Image:
    """Float tensor (3, H, W) in [0, 1] -> RGB PIL image."""
    arr = t.detach().float().clamp(0, 1).mul(255).round().byte().permute(1, 2, 0).cpu().numpy()
    return Image.fromarray(arr, mode="RGB")


def load_style_image(data: bytes, size: int, name: str = "<bytes>") -> Tensor:
    """The style image y_s from its bytes: (3, size, size) in [0, 1] (paper: 256 px).

    Raises:
        ImageDecodeError: Not a decodable image (the message names ``name``).
    """
    from fsg_ray.core.transforms import resize

    return resize(to_tensor(decode_image(data, name=name)), size)
