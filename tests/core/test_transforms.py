from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from fsg_ray.core import transforms


def test_patchify_counts_and_content() -> None:
    img = torch.arange(3 * 48 * 64, dtype=torch.float32).reshape(3, 48, 64)
    patches = transforms.patchify(img, size=32, stride=16)
    # (48 - 32) / 16 + 1 = 2 rows, (64 - 32) / 16 + 1 = 3 columns
    assert patches.shape == (6, 3, 32, 32)
    assert torch.equal(patches[0], img[:, :32, :32])
    assert torch.equal(patches[4], img[:, 16:48, 16:48])  # row 1, column 1
    assert torch.equal(patches[5], img[:, 16:48, 32:64])


def test_patchify_keeps_only_patches_inside_the_mask() -> None:
    img = torch.rand(3, 32, 64)
    mask = torch.zeros(32, 64)
    mask[:, :32] = 1  # left half is garment
    kept = transforms.patchify(img, 32, 16, mask, min_fraction=0.9)
    assert kept.shape[0] == 1 and torch.equal(kept[0], img[:, :, :32])
    assert (
        transforms.patchify(img, 32, 16, mask, min_fraction=0.5).shape[0] == 2
    )  # the half-covered one too


@pytest.mark.parametrize("fraction", [0.0, 0.5, 0.9])
def test_patch_windows_are_the_corners_of_the_patches_patchify_keeps(fraction: float) -> None:
    img = torch.rand(3, 48, 80)
    mask = torch.zeros(48, 80)
    mask[:40, 4:50] = 1
    windows = transforms.patch_windows(48, 80, 32, 16, mask, fraction)
    cut = torch.stack([img[:, t : t + 32, left : left + 32] for t, left in windows.tolist()])
    assert torch.equal(cut, transforms.patchify(img, 32, 16, mask, fraction))
    assert len(windows) == {0.0: 8, 0.5: 5, 0.9: 1}[fraction]  # of 2 x 4 windows


def test_patchify_errors() -> None:
    with pytest.raises(ValueError, match="smaller than one 32px patch"):
        transforms.patchify(torch.rand(3, 20, 40), 32, 16)
    with pytest.raises(ValueError, match="mask is"):
        transforms.patchify(torch.rand(3, 32, 32), 32, 16, torch.ones(10, 10), 0.5)
    with pytest.raises(ValueError, match="smaller than one 32px patch"):
        transforms.patch_windows(20, 40, 32, 16)


def test_random_global_pair_sizes_and_consistency() -> None:
    img = torch.rand(3, 100, 80)
    gen = torch.Generator().manual_seed(0)
    x, y_c = transforms.random_global_pair(img, low=18, high=72, gen=gen)
    assert x.shape == (3, 18, 18) and y_c.shape == (3, 72, 72)
    assert torch.allclose(x, transforms.resize(y_c, 18))  # x is the low-resolution version of y_c
    again = transforms.random_global_pair(img, 18, 72, torch.Generator().manual_seed(0))
    assert torch.equal(again[1], y_c)


def test_resize_short_side_keeps_aspect() -> None:
    assert transforms.resize_short_side(torch.rand(3, 100, 200), 50).shape == (3, 50, 100)
    assert transforms.resize(torch.rand(2, 3, 10, 10), (4, 6)).shape == (2, 3, 4, 6)


def test_resize_short_side_uint8_matches_the_float_path_within_one_level() -> None:
    gen = torch.Generator().manual_seed(0)
    img = torch.randint(0, 256, (3, 90, 120), dtype=torch.uint8, generator=gen)
    hwc = img.permute(1, 2, 0).numpy()  # a strided (H, W, 3) view, as a transposed photo is
    hwc.flags.writeable = False  # as Pillow's buffers are
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # torch warns on read-only arrays
        out = transforms.resize_short_side_uint8(hwc, 40)
    assert out.shape == (40, 53, 3) and out.dtype == np.uint8 and out.flags["C_CONTIGUOUS"]
    ref = transforms.resize_short_side(img.float() / 255, 40).mul(255).round().to(torch.uint8)
    diff = (torch.from_numpy(out).permute(2, 0, 1).int() - ref.int()).abs()
    assert diff.max() <= 1 and diff.float().mean() < 0.5
    # already at the side (the short side may be the width): the same pixels, contiguous
    same = transforms.resize_short_side_uint8(hwc, 90)
    assert np.array_equal(same, hwc) and same.flags["C_CONTIGUOUS"]
    assert transforms.resize_short_side_uint8(hwc[:, :60], 30).shape == (45, 30, 3)
