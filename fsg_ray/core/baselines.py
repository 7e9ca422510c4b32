"""NeuralST (Gatys et al. 2015): per-image optimisation, the paper's slowest baseline (§3.2).

Each output is optimised from scratch with L-BFGS against the global loss L^(2) (Eq. 1-3)
of the same loss network phi the generator is trained with; the paper runs 200 iterations.
Every iteration needs a forward and a backward pass through phi, which is why a feed-forward
generator is "hundreds of times faster" (§3.4; measured in benchmarks/).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from fsg_ray.config import LossConfig
from fsg_ray.core import losses
from fsg_ray.core.models import VGG19Features


@dataclass(frozen=True)
class GatysResult:
    """The optimised images and what it took.

    Attributes:
        images: (B, 3, H, W) in [0, 1].
        evaluations: forward+backward passes through phi (L-BFGS may take more than one
            per iteration).
        losses: L^(2) after each evaluation.
    """

    images: Tensor
    evaluations: int
    losses: list[float]


def gatys(
    content: Tensor,
    style: Tensor,
    phi: VGG19Features,
    cfg: LossConfig,
    iterations: int = 200,
) -> GatysResult:
    """Stylises ``content`` (B, 3, H, W) with ``style`` (1, 3, S, S) by optimising pixels.

    The image starts from the content image (converges in fewer iterations than noise).

    Raises:
        ValueError: ``iterations`` < 1.
    """
    if iterations < 1:
        raise ValueError(f"iterations must be >= 1, got {iterations}")
    with torch.no_grad():
        targets = losses.style_targets(phi(style, cfg.style_layers), cfg, style)
        content_c = phi(losses.content_view(content, cfg), cfg.content_layers)
    # A contiguous copy: L-BFGS flattens the gradient with view(), which fails on the strides
    # of a permuted input (an HWC array made CHW, as images.to_tensor gives).
    image = content.detach().clone(memory_format=torch.contiguous_format).requires_grad_(True)
    # Tolerances below zero: run exactly `iterations` iterations, as the paper counts them.
    opt = torch.optim.LBFGS(
        [image],
        lr=1.0,
        max_iter=iterations,
        tolerance_grad=-1,
        tolerance_change=-1,
        history_size=50,
    )
    history: list[float] = []

    def closure() -> Tensor:
        opt.zero_grad(set_to_none=True)
        style_hat = phi(image, cfg.style_layers)
        content_hat = phi(losses.content_view(image, cfg), cfg.content_layers)
        loss, _ = losses.global_loss(style_hat, content_hat, content_c, targets, cfg, image)
        loss.backward()
        history.append(float(loss.detach()))
        return loss

    opt.step(closure)
    return GatysResult(image.detach().clamp(0, 1), len(history), history)
