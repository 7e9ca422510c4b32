"""Garment masks estimated from product photos, pure NumPy: :func:`auto_mask` and the
morphology under it (a close, 4-connected components, hole filling). Arrays are (H, W, 3) uint8
RGB and (H, W) bool masks. Used by bulk restyling and serving (through
:mod:`fsg_ray.io.compositing`) and by the evaluation metrics.
"""

from __future__ import annotations

import numpy as np

#: auto_mask: a pixel this far (Euclidean RGB, 0-441) from the border colour is garment.
AUTO_MASK_DISTANCE = 40.0
#: auto_mask: side of the closing window, as a fraction of the long side (at least 3 px).
AUTO_MASK_CLOSE = 0.02


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
