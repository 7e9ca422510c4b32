"""Running generators on batches of uint8 images, one encoder pass per VGG encoder shared by
several styles: the common core of bulk restyling (:mod:`fsg_ray.distributed.restyle`) and
online serving (:mod:`fsg_ray.distributed.serve`). Pure PyTorch.

Every generator G_s = D_s o E_n of one catalogue uses the same frozen encoder E_n (VGG-19 up to
relu4_1), so styles that share a ``vgg_weights`` spec share one E_n module in memory
(:class:`fsg_ray.io.generators.EncoderCache`) and one encoder pass per batch
(:func:`run_styles`): N styles cost
E_n + N x D_s instead of N x (E_n + D_s), with D_s about 30 % of E_n
(:class:`fsg_ray.core.models.Decoder`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch

from fsg_ray.core.device import autocast
from fsg_ray.core.models import (
    ENCODER_STRIDE,
    RESIDUAL_EPS,
    Generator,
    pad_to_stride,
    shrink,
    upscale_change,
)


def run_styles(
    generators: Mapping[str, Generator],
    batch: np.ndarray,
    wanted: Mapping[str, Sequence[int]],
    device: torch.device,
    downscale: int = 1,
    cpu_bf16: bool = False,
) -> dict[str, np.ndarray]:
    """G_s(x) for each style s on the images ``wanted[s]`` of a same-size batch.

    Styles whose generators share an E_n module (loaded through one :class:`EncoderCache`)
    are encoded once; each then runs only its decoder D_s.

    Args:
        generators: Style -> its generator, on ``device``.
        batch: (B, H, W, 3) uint8 images.
        wanted: Style -> indices into ``batch``; styles not named, or with no index, are not run.
        device: Where the generators are.
        downscale: Run G on the batch shrunk by this factor and lay its change over the
            full-resolution images (:func:`fsg_ray.core.models.upscale_change`): about
            ``downscale**2`` times less work; 1 runs G at full resolution.
        cpu_bf16: bf16 autocast on the CPU too (``runtime: torch-bf16``); CUDA always has it.

    Returns:
        Style -> (len(wanted[s]), H, W, 3) uint8, rounded as ``images.to_image``. No
        gradients; on CUDA bf16 autocast and channels_last.
    """
    if not batch.flags.writeable:  # torch warns on read-only arrays (e.g. np.asarray(PIL))
        batch = batch.copy()
    x = torch.from_numpy(batch).to(device).permute(0, 3, 1, 2).float().div(255)  # (B, 3, H, W)
    h, w = x.shape[-2:]
    x = pad_to_stride(x, ENCODER_STRIDE * downscale).contiguous(memory_format=torch.channels_last)
    x_low = shrink(x, downscale)
    by_encoder: dict[int, list[str]] = {}
    for style, picked in wanted.items():
        if picked:
            by_encoder.setdefault(id(generators[style].encoder), []).append(style)
    out = {}
    with torch.inference_mode(), autocast(device, cpu_bf16):
        for styles in by_encoder.values():
            z = generators[styles[0]].encode(x_low)  # E_n(x): (B, 512, H/8f, W/8f)
            for style in styles:
                rows = list(wanted[style])
                y = generators[style].decoder(z[rows], x_low[rows])
                y = upscale_change(x[rows], x_low[rows], y, downscale, RESIDUAL_EPS)[..., :h, :w]
                y = y.float().clamp(0, 1).mul(255).round().to(torch.uint8)
                out[style] = y.permute(0, 2, 3, 1).cpu().numpy()  # (b, H, W, 3)
    return out
