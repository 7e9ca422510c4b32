"""Metric sanity on constructed cases: identity, shifts, blur, compositing, masks."""

from __future__ import annotations

import pytest
import torch

from fsg_ray.core import metrics
from fsg_ray.core.models import VGG19Features, VGGWeights


def garment_scene(size: int = 48, shift: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A light background with a dark rectangle 'garment' holding a seam; and its mask."""
    img = torch.full((3, size, size), 0.9)
    mask = torch.zeros(size, size, dtype=torch.bool)
    mask[10 + shift : 38 + shift, 14:34] = True
    img[:, mask] = torch.tensor([0.3, 0.2, 0.5])[:, None]
    img[:, 20 + shift : 22 + shift, 14:34] = 0.05  # a seam across the garment
    return img, mask


def stripes(size: int = 40, period: int = 8) -> torch.Tensor:
    x = torch.arange(size)
    band = ((x[:, None] + x[None, :]) // (period // 2)) % 2  # diagonal stripes
    colours = torch.tensor([[0.9, 0.5, 0.1], [0.1, 0.6, 0.6]])
    return colours[band].permute(2, 0, 1).contiguous()


@pytest.fixture(scope="module")
def eval_phi(vgg: VGGWeights) -> VGG19Features:
    return VGG19Features(vgg.state, metrics.STYLE_LAYERS[-1])


def test_identical_images_give_zero_style_distance(eval_phi: VGG19Features) -> None:
    style = stripes()
    assert metrics.gram_style_distance(style, style, eval_phi) == 0.0
    assert metrics.sliced_wasserstein(style, style) == 0.0


def test_style_distances_rank_a_closer_texture_first(eval_phi: VGG19Features) -> None:
    style = stripes(period=8)
    near = stripes(period=8).roll(3, dims=2)  # the same texture, shifted
    other = stripes(period=20)  # the same colours, wider stripes
    flat = torch.full_like(style, 0.5)
    for dist in (
        lambda x: metrics.gram_style_distance(x, style, eval_phi),
        lambda x: metrics.sliced_wasserstein(x, style),
    ):
        assert dist(near) < dist(other) < dist(flat)


def test_sliced_wasserstein_ignores_arrangement_and_reads_only_the_garment() -> None:
    style = stripes(size=40)
    tiled = torch.cat([style, style], dim=2)  # twice the patches, same distribution
    assert metrics.sliced_wasserstein(tiled, style) < 0.05
    canvas = torch.zeros(3, 40, 80)
    canvas[:, :, :40] = style
    mask = torch.zeros(40, 80, dtype=torch.bool)
    mask[:, :40] = True
    assert (
        metrics.sliced_wasserstein(canvas, style, mask)
        < metrics.sliced_wasserstein(canvas, style) / 3
    )
    with pytest.raises(ValueError, match="no pixel patch"):
        metrics.sliced_wasserstein(canvas, style, torch.zeros(40, 80, dtype=torch.bool))


def test_an_image_against_itself_has_perfect_structure_silhouette_and_no_leakage() -> None:
    img, mask = garment_scene()
    assert metrics.structure_similarity(img, img, mask) == pytest.approx(1.0)
    assert metrics.silhouette_iou(mask, mask) == 1.0
    assert metrics.background_leakage(img, img, mask) == 0.0
    assert metrics.silhouette_iou(metrics.estimate_mask(img), mask) == 1.0


def test_shifted_or_blurred_edges_lower_the_structure_score() -> None:
    img, mask = garment_scene()
    shifted, _ = garment_scene(shift=3)
    blurred = metrics._gaussian_blur(img.reshape(-1, 48), 0).reshape(3, 48, 48)  # sigma 0: no-op
    assert torch.equal(blurred, img)
    blurred = torch.stack([metrics._gaussian_blur(c, 2.5) for c in img])
    brighter = (img * 0.5 + 0.1).clamp(0, 1)  # same edges, other contrast
    same = metrics.structure_similarity(img, brighter, mask)
    moved = metrics.structure_similarity(img, shifted, mask)
    soft = metrics.structure_similarity(img, blurred, mask)
    assert same == pytest.approx(1.0, abs=1e-6)
    assert moved < 0.6 and soft < 0.85  # 0.46 and 0.78, quoted in docs/metrics.md
    flat = torch.full_like(img, 0.5)
    assert metrics.structure_similarity(img, flat, mask) == 0.0  # every edge gone
    assert metrics.structure_similarity(flat, flat, mask) == 1.0


def test_leakage_is_exactly_zero_when_compositing_through_the_mask() -> None:
    img, mask = garment_scene()
    styled = torch.rand(3, 48, 48, generator=torch.Generator().manual_seed(0))
    composited = torch.where(mask, styled, img)
    assert metrics.background_leakage(img, composited, mask) == 0.0
    assert metrics.background_leakage(img, styled, mask) > 0.2
    full = torch.ones(48, 48, dtype=torch.bool)
    assert metrics.background_leakage(img, styled, full) == 0.0  # nothing outside


def test_silhouette_iou_of_a_shifted_mask_and_of_empty_masks() -> None:
    _, mask = garment_scene()
    _, moved = garment_scene(shift=7)  # 28 rows, 21 shared
    assert metrics.silhouette_iou(mask, moved) == pytest.approx(21 / 35)
    empty = torch.zeros(48, 48, dtype=torch.bool)
    assert metrics.silhouette_iou(empty, empty) == 1.0
    assert metrics.silhouette_iou(mask, empty) == 0.0
    with pytest.raises(ValueError, match="masks of different sizes"):
        metrics.silhouette_iou(mask, empty[:10])


def test_bad_shapes_are_named(eval_phi: VGG19Features) -> None:
    img, mask = garment_scene()
    with pytest.raises(ValueError, match="two images"):
        metrics.structure_similarity(img, img[:, :10], mask)
    with pytest.raises(ValueError, match="bool mask"):
        metrics.background_leakage(img, img, mask.float())
    with pytest.raises(ValueError, match="mask is empty"):
        metrics.gram_style_distance(img, img, eval_phi, torch.zeros_like(mask))
    with pytest.raises(ValueError, match="has no 7x7 patch"):
        metrics.sliced_wasserstein(img[:, :5, :5], img)
