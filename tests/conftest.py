"""Shared fixtures: deterministic random VGG weights and tiny configs (CPU, seconds)."""

from __future__ import annotations

import pytest
import torch

from fsg_ray import config as C
from fsg_ray.models import VGGWeights, load_vgg

torch.set_num_threads(2)


@pytest.fixture(scope="session")
def vgg() -> VGGWeights:
    return load_vgg("random:0")


@pytest.fixture
def tiny_cfg() -> C.TrainConfig:
    """A tiny but complete Algorithm 1 run: 16->32 px global, 32 px patches."""
    return C.TrainConfig(
        model=C.ModelConfig(
            vgg_weights="random:0", decoder_channels=(32, 16, 16, 8), disc_channels=(16, 8)
        ),  # fmt: skip
        loss=C.LossConfig.random_vgg(),
        data=C.DataConfig(
            global_input_size=16,
            global_target_size=32,
            patch_size=32,
            patch_stride=16,
            style_size=48,
        ),  # fmt: skip
        schedule=C.ScheduleConfig(
            gan_init_steps=2,
            global_steps=2,
            patch_steps=2,
            batch_size=2,
            checkpoint_every=0,
            sample_every=0,
        ),  # fmt: skip
    )
