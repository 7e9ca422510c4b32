"""Garment masks estimated from product photos (fsg_ray.core.masks)."""

from __future__ import annotations

import numpy as np

from fsg_ray.core import masks
from fsg_ray.io import synthetic


def test_auto_mask_finds_a_garment_on_a_white_background() -> None:
    for seed in range(6):
        image, mask = synthetic.garment(seed, 96)
        truth, found = np.asarray(mask) > 127, masks.auto_mask(np.asarray(image))
        assert (found & truth).sum() / (found | truth).sum() > 0.97, seed
    assert not masks.auto_mask(np.full((32, 48, 3), 245, np.uint8)).any()  # nothing on the backdrop


def test_components_and_hole_filling_on_a_ring() -> None:
    yy, xx = np.mgrid[:21, :21]
    ring = np.abs(np.hypot(yy - 10, xx - 10) - 6) < 1.5
    speck = np.zeros_like(ring)
    speck[0, 0] = True
    labels = masks.components(ring | speck)
    assert labels.max() == 2 and len(np.unique(labels[ring])) == 1
    filled = masks.fill_holes(ring)
    assert filled[10, 10] and filled[ring].all() and not filled[0, 0]
