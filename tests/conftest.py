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
        ),
        loss=C.LossConfig.random_vgg(),
        data=C.DataConfig(
            global_input_size=16,
            global_target_size=32,
            patch_size=32,
            patch_stride=16,
            style_size=48,
        ),
        schedule=C.ScheduleConfig(
            gan_init_steps=2,
            global_steps=2,
            patch_steps=2,
            batch_size=2,
            checkpoint_every=0,
            sample_every=0,
        ),
    )


# S3 fixtures: a real S3 API (moto) on 127.0.0.1; see tests/s3_server.py.
import uuid  # noqa: E402
from collections.abc import Iterator  # noqa: E402
from typing import Any  # noqa: E402


@pytest.fixture(scope="session")
def s3_server() -> Iterator[str]:
    """Endpoint URL of an in-process moto S3 server, with fake AWS credentials set."""
    from s3_server import fake_aws_credentials, moto_server  # moto is slow to import

    with fake_aws_credentials(), moto_server() as url:
        yield url


@pytest.fixture(scope="session")
def s3_client(s3_server: str) -> Any:
    """A boto3 S3 client for the moto server, to set up and inspect buckets."""
    import boto3

    return boto3.client("s3", endpoint_url=s3_server, region_name="us-east-1")


@pytest.fixture
def s3_bucket(s3_client: Any) -> str:
    """A fresh, empty bucket on the moto server, as ``s3://<bucket>``."""
    name = f"test-{uuid.uuid4().hex[:16]}"
    s3_client.create_bucket(Bucket=name)
    return f"s3://{name}"
