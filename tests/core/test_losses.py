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
