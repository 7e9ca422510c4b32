"""Eq. 2-5 and 7 against values computed by hand on tiny tensors."""

from __future__ import annotations

import math

import pytest
import torch

from fsg_ray.config import LossConfig
from fsg_ray.core import losses


def test_gram_known_value() -> None:
    # one image, C=2 channels, H*W=2: F = [[1, 2], [3, 4]] -> F F^T = [[5, 11], [11, 25]] / (2*1*2)
    f = torch.tensor([[1.0, 2.0], [3.0, 4.0]]).reshape(1, 2, 1, 2)
    assert torch.allclose(losses.gram(f), torch.tensor([[[5.0, 11.0], [11.0, 25.0]]]) / 4)


def test_centered_gram_is_the_covariance() -> None:
    f = torch.tensor([[1.0, 3.0], [2.0, 2.0]]).reshape(1, 2, 1, 2)  # means 2 and 2
    # centred: [[-1, 1], [0, 0]] -> [[2, 0], [0, 0]] / 4
    assert torch.allclose(losses.gram(f, centered=True), torch.tensor([[[0.5, 0.0], [0.0, 0.0]]]))


def test_gram_does_not_depend_on_image_size() -> None:
    f = torch.rand(1, 4, 3, 3)
    tiled = f.repeat(1, 1, 2, 2)  # same statistics, 4x the pixels
    assert torch.allclose(losses.gram(f), losses.gram(tiled), atol=1e-6)


def test_content_loss_eq2() -> None:
    a = torch.zeros(2, 2, 1, 2)
    b = torch.tensor([1.0, 2.0, 0.0, 1.0]).reshape(1, 2, 1, 2).repeat(2, 1, 1, 1)
    # per sample ||a - b||^2 = 1 + 4 + 0 + 1 = 6, divided by C*H*W = 4
    assert losses.content_loss(a, b).item() == pytest.approx(1.5)
    # relative: 6 / ||b||^2 = 6 / 6
    assert losses.content_loss(a, b, "relative").item() == pytest.approx(1.0)


def test_style_loss_eq3_paper_normalisation() -> None:
    cfg = LossConfig(style_layers=("relu1_1",))
    f_style = torch.tensor([[1.0, 2.0], [3.0, 4.0]]).reshape(1, 2, 1, 2)
    targets = losses.style_targets({"relu1_1": f_style}, cfg)
    f_hat = torch.zeros(1, 2, 1, 2)
    expected = ((torch.tensor([[5.0, 11.0], [11.0, 25.0]]) / 4) ** 2).sum()  # ||0 - Gram||_F^2
    assert losses.style_loss({"relu1_1": f_hat}, targets, cfg).item() == pytest.approx(
        expected.item()
    )
    assert losses.style_loss({"relu1_1": f_style}, targets, cfg).item() == pytest.approx(0.0)


def test_style_loss_mean_term_and_relative() -> None:
    cfg = LossConfig(
        style_layers=("relu1_1",), gram="centered", mean_weight=1.0, normalize="relative"
    )
    f_style = torch.tensor([[1.0, 3.0], [2.0, 2.0]]).reshape(1, 2, 1, 2)
    targets = losses.style_targets({"relu1_1": f_style}, cfg)
    # same covariance, means shifted by +1: Gram term 0, mean term ||(1,1)||^2 / ||(2,2)||^2
    shifted = f_style + 1
    assert losses.style_loss({"relu1_1": shifted}, targets, cfg).item() == pytest.approx(2 / 8)


def test_patch_content_loss_eq4_averages_over_patches() -> None:
    pred = torch.zeros(4, 1, 1, 2)
    target = torch.ones(4, 1, 1, 2)
    target[0] = 3.0  # patch 0: 9 + 9 = 18; others: 2 -> (18 + 2 + 2 + 2) / 4 / (C*H*W = 2)
    assert losses.patch_content_loss(pred, target).item() == pytest.approx(3.0)


def test_patch_style_loss_eq5_hinge() -> None:
    s = torch.tensor([2.0, 1.0, 0.0, -1.0]).reshape(1, 1, 2, 2)
    # max(0, 1 - s) = 0, 0, 1, 2 -> mean 0.75
    assert losses.patch_style_loss(s).item() == pytest.approx(0.75)


def test_gan_losses_eq7() -> None:
    zero = torch.zeros(1, 1, 2, 2)  # D = sigmoid(0) = 1/2 everywhere
    assert losses.discriminator_gan_loss(zero, zero).item() == pytest.approx(2 * math.log(2))
    assert losses.generator_gan_loss(zero).item() == pytest.approx(math.log(2))
    confident = torch.full((1, 1, 2, 2), 20.0)
    assert losses.discriminator_gan_loss(confident, -confident).item() == pytest.approx(
        0.0, abs=1e-6
    )
    assert losses.generator_gan_loss(-confident).item() > 19


def test_global_and_patch_loss_apply_the_lambdas() -> None:
    cfg = LossConfig(
        style_layers=("relu1_1",),
        content_layers=("relu2_1",),
        style_weight=3.0,
        content_weight=2.0,
        patch_content_weight=5.0,
    )
    feats = {"relu1_1": torch.rand(1, 2, 2, 2), "relu2_1": torch.rand(1, 2, 2, 2)}
    targets = losses.style_targets({"relu1_1": torch.rand(1, 2, 2, 2)}, cfg)
    content = {"relu2_1": torch.rand(1, 2, 2, 2)}
    total, parts = losses.global_loss(feats, feats, content, targets, cfg)
    assert total.item() == pytest.approx(3 * parts["global_style"] + 2 * parts["global_content"])
    scores = torch.zeros(1, 1, 2, 2)
    total, parts = losses.patch_loss(scores, feats["relu2_1"], content["relu2_1"], cfg)
    assert parts["patch_style"] == pytest.approx(1.0)
    assert total.item() == pytest.approx(1.0 + 5 * parts["patch_content"])


def test_luminance_view_ignores_colour_but_keeps_brightness() -> None:
    red, green = torch.zeros(1, 3, 2, 2), torch.zeros(1, 3, 2, 2)
    red[:, 0], green[:, 1] = 1.0, 0.509  # same Rec. 601 luma: 0.299
    assert torch.allclose(losses.luminance(red), losses.luminance(green), atol=1e-3)
    assert losses.luminance(red).shape == (1, 3, 2, 2)
    assert torch.allclose(losses.luminance(torch.ones(1, 3, 1, 1)), torch.ones(1, 3, 1, 1))
    cfg = LossConfig(content_luminance=True)
    assert torch.equal(losses.content_view(red, cfg), losses.luminance(red))
    assert torch.equal(losses.content_view(red, LossConfig()), red)


def test_matched_luma_views_ignore_brightness_or_contrast_but_keep_the_pattern() -> None:
    gen = torch.Generator().manual_seed(0)
    target = torch.rand(2, 3, 8, 8, generator=gen)
    brighter = target * 0.5 + 0.4  # the same design, brighter and flatter
    view = losses.luminance_like(brighter, target, "mean_std")
    assert view.shape == (2, 3, 8, 8)
    assert torch.allclose(view, losses.luminance(target), atol=1e-5)
    # "mean" takes the brightness only: the flatter copy stays flatter
    shifted = losses.luminance_like(target + 0.2, target, "mean")
    assert torch.allclose(shifted, losses.luminance(target), atol=1e-5)
    flatter = losses.luminance_like(brighter, target, "mean")
    assert not torch.allclose(flatter, losses.luminance(target), atol=1e-2)
    assert torch.allclose(flatter.mean(dim=(2, 3)), losses.luminance(target).mean(dim=(2, 3)))
    other = torch.rand(2, 3, 8, 8, generator=gen)  # another pattern stays another pattern
    assert not torch.allclose(losses.luminance_like(other, target, "mean_std"), view, atol=1e-2)
    flat = losses.luminance_like(torch.full((1, 3, 4, 4), 0.3), target[:1], "mean_std")
    assert torch.isfinite(flat).all()  # a flat image is not divided by zero
    with pytest.raises(ValueError, match="unknown luma match 'rgb'"):
        losses.luminance_like(target, target, "rgb")
    # gradients reach the generated image, not the target
    y_hat = brighter.clone().requires_grad_(True)
    losses.luminance_like(y_hat, target.requires_grad_(True), "mean").sum().backward()
    assert y_hat.grad is not None and target.grad is None
    on = LossConfig(content_luminance=True, content_luma_match="mean_std")
    assert torch.equal(losses.content_hat_view(brighter, target, on), view)
    luma = LossConfig(content_luminance=True)
    assert torch.equal(losses.content_hat_view(brighter, target, luma), losses.luminance(brighter))


def test_sliced_wasserstein_known_value_and_order_invariance() -> None:
    # 1 channel, direction +1: sorted pred [0, 1], sorted target [1, 3] -> (1 + 4) / 2 = 2.5
    pred = torch.tensor([1.0, 0.0]).reshape(1, 1, 1, 2)
    target = torch.tensor([3.0, 1.0]).reshape(1, 1, 2, 1)
    d = torch.ones(1, 1)
    assert losses.sliced_wasserstein_loss(pred, target, d, "paper").item() == pytest.approx(2.5)
    # relative: divided by the target's mean squared projection (1 + 9) / 2 = 5
    assert losses.sliced_wasserstein_loss(pred, target, d).item() == pytest.approx(0.5)
    # the same points in any arrangement (and batch split) are at distance 0
    f = torch.rand(1, 4, 3, 3)
    points = f.permute(0, 2, 3, 1).reshape(9, 4)[torch.randperm(9)]  # (9, C)
    shuffled = points.reshape(3, 1, 3, 4).permute(0, 3, 1, 2)  # (B=3, C, 1, 3)
    dirs = losses.random_directions(4, 16, torch.Generator().manual_seed(0))
    assert torch.allclose(dirs.norm(dim=0), torch.ones(16))
    assert losses.sliced_wasserstein_loss(shuffled, f, dirs).item() == pytest.approx(0, abs=1e-7)


def test_sliced_wasserstein_matches_quantiles_of_sets_of_other_sizes() -> None:
    # target 4 points {0, 1, 2, 3}; pred 2 points at the target's end quantiles -> 0
    target = torch.arange(4.0).reshape(1, 1, 2, 2)
    pred = torch.tensor([3.0, 0.0]).reshape(1, 1, 1, 2)
    assert losses.sliced_wasserstein_loss(pred, target, torch.ones(1, 1)).item() == 0


def test_patch_swd_loss_gives_every_feature_a_gradient_and_sums_layers() -> None:
    cfg = LossConfig(patch_swd_weight=1.0, patch_swd_layers=("relu1_1", "relu2_1"))
    feats = {
        "relu1_1": torch.rand(2, 3, 4, 4, requires_grad=True),
        "relu2_1": torch.rand(2, 5, 2, 2),
    }
    targets = losses.style_targets({"relu1_1": torch.rand(1, 3, 6, 6),
                                    "relu2_1": torch.rand(1, 5, 3, 3),
                                    "relu2_2": torch.rand(1, 5, 3, 3)}, cfg)  # fmt: skip
    assert set(targets.patches) == {"relu1_1", "relu2_1"}
    loss = losses.patch_swd_loss(feats, targets, cfg)
    loss.backward()
    assert loss.item() > 0 and feats["relu1_1"].grad is not None
    assert feats["relu1_1"].grad.abs().flatten(1).sum(dim=1).gt(0).all()
    off = losses.style_targets({"relu2_2": torch.rand(1, 5, 3, 3)}, LossConfig())
    assert off.patches == {}


def test_patch_loss_adds_the_weighted_swd_term() -> None:
    cfg = LossConfig(patch_swd_weight=0.5)
    scores, feat = torch.full((1, 1, 2, 2), 2.0), torch.ones(1, 2, 2, 2)
    base, parts = losses.patch_loss(scores, feat, feat, cfg)
    assert base.item() == 0 and "patch_swd" not in parts
    total, parts = losses.patch_loss(scores, feat, feat, cfg, torch.tensor(3.0))
    assert total.item() == pytest.approx(1.5) and parts["patch_swd"] == pytest.approx(3.0)


def test_colour_loss_is_zero_for_the_style_itself_and_grows_with_a_foreign_palette() -> None:
    cfg = LossConfig(colour_weight=1.0, normalize="relative")
    style = torch.rand(1, 3, 16, 16) * 0.5 + 0.5  # a light palette
    targets = losses.style_targets({"relu2_2": torch.rand(1, 2, 4, 4)}, cfg, style)
    assert targets.colours is not None
    same = losses.colour_loss(style.flip(-1), targets, cfg)  # same pixels, other places
    dark = losses.colour_loss(style * 0.3, targets, cfg)
    assert float(same) < 1e-6 < float(dark)


def test_chroma_colour_loss_ignores_brightness_along_the_grey_axis_but_not_hue() -> None:
    cfg = LossConfig(colour_weight=1.0, normalize="relative", colour_space="chroma")
    style = torch.rand(1, 3, 16, 16) * 0.4 + 0.3
    targets = losses.style_targets({"relu2_2": torch.rand(1, 2, 4, 4)}, cfg, style)
    brighter = losses.colour_loss(style + 0.2, targets, cfg)  # the same chroma, lighter
    bluer = losses.colour_loss(style + torch.tensor([0.0, 0.0, 0.2]).view(1, 3, 1, 1), targets, cfg)
    assert float(brighter) < 1e-6 < float(bluer)
    rgb = LossConfig(colour_weight=1.0, normalize="relative")
    rgb_targets = losses.style_targets({"relu2_2": torch.rand(1, 2, 4, 4)}, rgb, style)
    assert float(losses.colour_loss(style + 0.2, rgb_targets, rgb)) > 1e-3


def test_chroma_colour_loss_of_a_grey_style_stays_finite() -> None:
    cfg = LossConfig(colour_weight=1.0, normalize="relative", colour_space="chroma")
    grey = torch.full((1, 3, 8, 8), 0.5)
    targets = losses.style_targets({"relu2_2": torch.rand(1, 2, 4, 4)}, cfg, grey)
    red = losses.colour_loss(grey + torch.tensor([0.3, 0.0, 0.0]).view(1, 3, 1, 1), targets, cfg)
    assert 0 < float(red) < 1


def test_chroma_directions_are_unit_and_orthogonal_to_grey() -> None:
    d = losses.chroma_directions(32)
    assert d.shape == (3, 32)
    assert torch.allclose(d.norm(dim=0), torch.ones(32), atol=1e-6)
    assert torch.allclose(d.sum(dim=0), torch.zeros(32), atol=1e-6)


def test_colour_term_joins_the_global_loss_and_needs_the_image() -> None:
    cfg = LossConfig(style_layers=("relu1_1",), content_layers=("relu1_1",), colour_weight=2.0)
    style = torch.rand(1, 3, 8, 8)
    feats = {"relu1_1": torch.rand(1, 4, 8, 8)}
    targets = losses.style_targets(feats, cfg, style)
    total, parts = losses.global_loss(feats, feats, feats, targets, cfg, image=style * 0.1)
    assert parts["global_colour"] > 0
    plain = cfg.style_weight * parts["global_style"] + cfg.content_weight * parts["global_content"]
    assert float(total) == pytest.approx(plain + 2.0 * parts["global_colour"], rel=1e-5)
    with pytest.raises(ValueError, match="needs the generated image"):
        losses.global_loss(feats, feats, feats, targets, cfg)
    with pytest.raises(ValueError, match="needs the style image"):
        losses.style_targets(feats, cfg)
