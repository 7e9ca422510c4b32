from __future__ import annotations

import pytest
import torch

from fsg_ray.config import LossConfig
from fsg_ray.core.baselines import gatys
from fsg_ray.core.models import VGG19Features, VGGWeights


def test_gatys_lowers_the_global_loss(vgg: VGGWeights) -> None:
    cfg = LossConfig.random_vgg()
    phi = VGG19Features(vgg.state, cfg.loss_layers()[-1])
    g = torch.Generator().manual_seed(0)
    content, style = torch.rand(2, 3, 24, 24, generator=g), torch.rand(1, 3, 32, 32, generator=g)
    out = gatys(content, style, phi, cfg, iterations=8)
    assert out.images.shape == content.shape
    assert out.images.min() >= 0 and out.images.max() <= 1
    assert out.evaluations >= 8
    assert out.losses[-1] < 0.8 * out.losses[0]
    assert not torch.equal(out.images, content)


def test_gatys_rejects_zero_iterations(vgg: VGGWeights) -> None:
    phi = VGG19Features(vgg.state, "relu5_1")
    with pytest.raises(ValueError, match="iterations must be >= 1"):
        gatys(torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 8), phi, LossConfig(), iterations=0)


def test_gatys_takes_a_permuted_image(vgg: VGGWeights) -> None:
    cfg = LossConfig.random_vgg()
    phi = VGG19Features(vgg.state, cfg.loss_layers()[-1])
    hwc = torch.rand(20, 24, 3, generator=torch.Generator().manual_seed(1))
    content = hwc.permute(2, 0, 1)[None]  # as images.to_tensor gives: not contiguous
    out = gatys(content, torch.rand(1, 3, 16, 16), phi, cfg, iterations=2)
    assert out.images.shape == (1, 3, 20, 24)
