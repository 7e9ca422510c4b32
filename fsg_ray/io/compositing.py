"""Pure image operations of bulk restyling: size limit, garment masks, compositing, colour,
encoding. Arrays are (H, W, 3) uint8 RGB and (H, W) bool masks; no Ray import.

The order for one product photo x and one style's output G(x) (:mod:`fsg_ray.distributed.restyle`)::

    x = fit_long_side(decoded x, max_side)       the output's size; x is the reference
    m = given mask (resized) | auto_mask(x) | None
    y = G(x)  ->  keep_chroma(y, x)  (optional)  ->  composite(y, x, m)  ->  encode(...)

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

#: Output formats: name -> (file extension, Pillow format, save options).
FORMATS: dict[str, tuple[str, str, dict[str, Any]]] = {
    "png": ("png", "PNG", {}),
    "jpeg": ("jpg", "JPEG", {"quality": 92}),
    "webp": ("webp", "WEBP", {"quality": 90}),
}
#: auto_mask: a pixel this far (Euclidean RGB, 0-441) from the border colour is garment.
AUTO_MASK_DISTANCE = 40.0
#: auto_mask: side of the closing window, as a fraction of the long side (at least 3 px).
AUTO_MASK_CLOSE = 0.02
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


def auto_mask(rgb: np.ndarray) -> np.ndarray:
    """Estimates the garment of a product shot on a plain, light background: (H, W) bool.

    1. The background colour is the median of the image's 1 px border.
    2. Garment candidates are the pixels farther than :data:`AUTO_MASK_DISTANCE` from it.
    3. A morphological close (a square of :data:`AUTO_MASK_CLOSE` x the long side) joins the
       garment across thin seams and low-contrast creases.
    4. The largest 4-connected component is kept: specks, noise and small props are dropped.
    5. Its holes (regions that the border cannot reach) are filled.

    Limits: the garment must not touch the border over a long stretch (the border *is* the
    background sample), must differ clearly from the backdrop (a white shirt on white fails,
    a light-grey one partly), and must be one piece (of a pair of shoes only the larger one
    is kept). Shadows darker than the threshold, mannequins, hangers and cluttered or
    gradient backgrounds end up in the mask. Give masks (``--masks PREFIX``) for such photos.
    """
    h, w = rgb.shape[:2]
    border = np.concatenate([rgb[0], rgb[-1], rgb[:, 0], rgb[:, -1]]).astype(np.float32)
    distance = np.linalg.norm(rgb.astype(np.float32) - np.median(border, axis=0), axis=-1)
    candidates = _close(distance > AUTO_MASK_DISTANCE, max(3, round(AUTO_MASK_CLOSE * max(h, w))))
    labels = components(candidates)
    sizes = np.bincount(labels.ravel())[1:]
    if sizes.size == 0:
        return np.zeros((h, w), bool)
    return fill_holes(labels == int(np.argmax(sizes)) + 1)


def _close(mask: np.ndarray, size: int) -> np.ndarray:
    """Morphological close (dilate, then erode) with a square of side ``size``, made odd.

    The image border does not erode: the mask is taken to continue beyond it.
    """
    r = size // 2
    dilated = _box_any(_box_any(mask, r, 0), r, 1)
    return ~_box_any(_box_any(~dilated, r, 0), r, 1)


def _box_any(mask: np.ndarray, r: int, axis: int) -> np.ndarray:
    """True where ``mask`` has a True within ``r`` pixels along ``axis`` (running sums, O(N))."""
    pad = [(0, 0), (0, 0)]
    pad[axis] = (r + 1, r)
    counts = np.cumsum(np.pad(mask, pad).astype(np.int32), axis=axis)
    n = mask.shape[axis]
    ahead = np.take(counts, np.arange(2 * r + 1, 2 * r + 1 + n), axis=axis)
    return ahead - np.take(counts, np.arange(n), axis=axis) > 0


def fill_holes(mask: np.ndarray) -> np.ndarray:
    """``mask`` (H, W) bool with every region of False that the border cannot reach set True."""
    outside = components(~mask)
    border = np.concatenate([outside[0], outside[-1], outside[:, 0], outside[:, -1]])
    reached = np.isin(outside, np.unique(border[border > 0]))
    return ~reached


def components(mask: np.ndarray) -> np.ndarray:
    """4-connected components of a (H, W) bool mask: labels 1..n inside, 0 outside.

    Union-find over the horizontal runs of each row, so the work grows with the number of
    runs (a few per row for a garment), not with the pixels.
    """
    h, w = mask.shape
    edges = np.diff(mask.astype(np.int8), axis=1, prepend=0, append=0)  # (H, W + 1)
    rows, starts = np.nonzero(edges == 1)
    ends = np.nonzero(edges == -1)[1]  # same row-major order: run k is [starts[k], ends[k])
    first = np.searchsorted(rows, np.arange(h + 1)).tolist()  # runs of row r: first[r]..
    parent = list(range(len(rows)))
    starts_l, ends_l = starts.tolist(), ends.tolist()
    for r in range(1, h):
        _link_rows(parent, starts_l, ends_l, (first[r - 1], first[r]), (first[r], first[r + 1]))
    roots = np.array([_find(parent, i) for i in range(len(parent))], np.int64)
    run_label = np.unique(roots, return_inverse=True)[1].astype(np.int32) + 1
    lengths = ends - starts
    before = np.cumsum(lengths) - lengths  # pixels in earlier runs
    pixels = np.repeat(rows * w + starts - before, lengths) + np.arange(int(lengths.sum()))
    labels = np.zeros(h * w, np.int32)
    labels[pixels] = np.repeat(run_label, lengths)
    return labels.reshape(h, w)


def _link_rows(
    parent: list[int],
    starts: list[int],
    ends: list[int],
    above: tuple[int, int],
    below: tuple[int, int],
) -> None:
    """Joins the runs of two adjacent rows that overlap in a column (a merge of two sorted
    interval lists)."""
    i, j = above
    while i < above[1] and j < below[1]:
        if starts[i] < ends[j] and starts[j] < ends[i]:
            parent[_find(parent, i)] = _find(parent, j)
        if ends[i] < ends[j]:
            i += 1
        else:
            j += 1


def _find(parent: list[int], i: int) -> int:
    """Root of ``i``'s set, halving the path on the way."""
    while parent[i] != i:
        parent[i] = parent[parent[i]]
        i = parent[i]
    return i
