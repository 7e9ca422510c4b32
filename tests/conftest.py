"""Shared fixtures: deterministic random VGG weights and tiny configs (CPU, seconds)."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from fsg_ray import config
from fsg_ray.core import algorithm
from fsg_ray.core.models import VGGWeights, load_vgg

torch.set_num_threads(2)


@pytest.fixture(scope="session")
def vgg() -> VGGWeights:
    return load_vgg("random:0")


def tiny_config() -> config.TrainConfig:
    """A tiny but complete Algorithm 1 run: 16->32 px global, 32 px patches."""
    return config.TrainConfig(
        model=config.ModelConfig(
            vgg_weights="random:0", decoder_channels=(32, 16, 16, 8), disc_channels=(16, 8)
        ),
        loss=config.LossConfig.random_vgg(),
        data=config.DataConfig(
            global_input_size=16,
            global_target_size=32,
            patch_size=32,
            patch_stride=16,
            style_size=48,
        ),
        schedule=config.ScheduleConfig(
            gan_init_steps=2,
            global_steps=2,
            patch_steps=2,
            batch_size=2,
            checkpoint_every=0,
            sample_every=0,
        ),
    )


def micro_config() -> config.TrainConfig:
    """Smaller still, for generators whose training does not matter (registry, restyle)."""
    return config.TrainConfig(
        model=config.ModelConfig(
            vgg_weights="random:0", decoder_channels=(16, 8, 8, 8), disc_channels=(8, 8)
        ),
        loss=config.LossConfig.random_vgg(),
        data=config.DataConfig(
            global_input_size=16, global_target_size=32, patch_size=32, style_size=32
        ),
    )


def tiny_state(vgg: VGGWeights, seed: int, output: str = "image", noise: int = 0) -> dict[str, Any]:
    """A tiny generator whose decoder is random (by ``seed``) with contrast: a stand-in style.

    An untrained decoder gives a flat grey (BatchNorm's running variance is 1); a smaller one
    and perturbed weights give a textured output that differs from seed to seed. ``output``
    and ``noise`` are ``ModelConfig.output`` and ``ModelConfig.decoder_noise``.
    """
    cfg = config.override(micro_config(), model={"output": output, "decoder_noise": noise})
    cpu = torch.device("cpu")
    state = algorithm.generator_state(algorithm.new_run(cfg, vgg, torch.zeros(1, 3, 32, 32), cpu))
    gen = torch.Generator().manual_seed(seed)
    decoder = {}
    for key, value in state["decoder"].items():
        if key.endswith("running_var"):
            value = torch.full_like(value, 0.1)
        elif value.is_floating_point() and not key.endswith("running_mean"):
            value = value + 0.05 * torch.randn(value.shape, generator=gen)
        decoder[key] = value
    return {**state, "decoder": decoder}


def tiny_registry(
    uri: str, vgg: VGGWeights, styles: tuple[str, ...], meta: dict[str, Any] | None = None
) -> str:
    """Publishes ``tiny_state(vgg, i)`` as the i-th of ``styles`` (a style named twice gets two
    versions) to a registry at ``uri``, straight from the state (no Ray Train); returns ``uri``."""
    from fsg_ray.io import registry
    from fsg_ray.io.storage import Storage

    for seed, style in enumerate(styles):
        registry.publish(Storage(), uri, style, tiny_state(vgg, seed), dict(meta or {}))
    return uri


@pytest.fixture
def tiny_cfg() -> config.TrainConfig:
    return tiny_config()


# S3 fixtures: a real S3 API (moto) on 127.0.0.1; see tests/s3_server.py.
import uuid  # noqa: E402
from collections.abc import Iterator  # noqa: E402


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


# Data-plane fixtures: one local Ray for the session, and a small dataset full of odd files,
# on local disk and in an S3 bucket (tests/test_data.py, tests/test_datacmd.py).
import hashlib  # noqa: E402
import io  # noqa: E402
import os  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
from imagefiles import png_header  # noqa: E402
from PIL import Image  # noqa: E402

TESTS_DIR = Path(__file__).resolve().parent
#: Inputs of the odd-files dataset that cannot be used, by relative path (reason checked apart).
BAD_FULL = ("full/corrupt.jpg", "full/empty.jpg", "full/huge.png", "full/not_an_image.jpg")
BAD_FULL += ("full/truncated.jpg",)
BAD_SHOP = ("shop/broken.jpg",)


@pytest.fixture(scope="session")
def ray_local() -> Iterator[None]:
    """One local Ray instance (2 CPUs, no dashboard) shared by every Ray test."""
    import ray
    from s3_server import FAKE_CREDENTIALS

    # Workers get their environment from here, not from the driver's later changes: the fake
    # AWS credentials for moto, and tests/ and its folders on the path for functions defined
    # in test modules (cloudpickle ships those by name, e.g. test_trainer's on_step hook).
    folders = sorted(d for d in TESTS_DIR.iterdir() if d.is_dir() and d.name[0].isalpha())
    env = {**FAKE_CREDENTIALS, "PYTHONPATH": os.pathsep.join(map(str, [TESTS_DIR, *folders]))}
    # The API key of test_serve's strict app, passed as `fsg serve` passes FSG_API_KEY.
    env["FSG_TEST_SERVE_KEY_SHA256"] = hashlib.sha256(b"test-key-5b8f2c").hexdigest()
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        runtime_env={"env_vars": env},
    )
    yield
    ray.shutdown()


def _encode(img: Image.Image, fmt: str, **kw: Any) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def odd_files() -> dict[str, bytes]:
    """Relative path -> bytes of the odd files added to the synthetic dataset."""
    rng = np.random.default_rng(0)
    noise = Image.fromarray(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8))
    jpeg = _encode(noise, "JPEG")
    exif = Image.Exif()
    exif[0x0112] = 6  # shown rotated 90 degrees clockwise: 48x24 stored, 24x48 decoded
    palette = Image.fromarray(rng.integers(0, 8, (40, 32), dtype=np.uint8), mode="P")
    palette.putpalette(list(rng.integers(0, 256, 768)))
    palette.info["transparency"] = 0
    ramp = np.arange(32 * 40, dtype=np.uint16).reshape(32, 40) * 40
    wide = np.tile(np.linspace(0, 255, 96, dtype=np.uint8)[None, :, None], (48, 1, 3))
    return {
        "full/cmyk.jpg": _encode(Image.new("CMYK", (40, 32), (0, 128, 255, 0)), "JPEG"),
        "full/gray16.png": _encode(Image.fromarray(ramp), "PNG"),
        "full/palette.png": _encode(palette, "PNG"),
        "full/rgba.png": _encode(Image.new("RGBA", (36, 36), (255, 0, 0, 128)), "PNG"),
        "full/rotated.jpg": _encode(noise.resize((48, 24)), "JPEG", exif=exif),
        "full/corrupt.jpg": jpeg[:20] + bytes(rng.integers(0, 256, 400, dtype=np.uint8)),
        "full/truncated.jpg": jpeg[: len(jpeg) // 2],
        "full/empty.jpg": b"",
        "full/not_an_image.jpg": b"<html>404 not found</html>\n",
        "full/huge.png": png_header(100_000, 100_000),
        "full/README.txt": b"not an input: no image suffix\n",
        "shop/wide.jpg": _encode(Image.fromarray(wide), "JPEG"),
        "shop/broken.jpg": jpeg[: len(jpeg) // 3],
    }


def small_dataset(root: Path, seed: int, n_full: int) -> Path:
    """Synthetic data at test sizes: ``n_full`` 48 px full images, 3 shop photos of 64 px with
    masks, and the stripes and dots styles at 48 px."""
    from fsg_ray.io import synthetic

    synthetic.write_dataset(
        root,
        seed=seed,
        n_full=n_full,
        n_shop=3,
        n_heldout=0,
        full_size=48,
        shop_size=64,
        style_size=48,
        styles=("stripes", "dots"),
    )
    return root


@pytest.fixture(scope="session")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A local synthetic dataset (4 full, 3 shop photos with masks, 2 styles) + odd files."""
    root = small_dataset(tmp_path_factory.mktemp("data"), seed=0, n_full=4)
    for rel, data in odd_files().items():
        (root / rel).write_bytes(data)
    return root


@pytest.fixture(scope="session")
def data_bucket(data_root: Path, s3_server: str, s3_client: Any) -> str:
    """The same dataset in a bucket on the moto server, as ``s3://fsg-data/root``."""
    from fsg_ray.config import StorageOptions
    from fsg_ray.io.storage import Storage
    from fsg_ray.io.uri import join, relative

    s3_client.create_bucket(Bucket="fsg-data")
    storage = Storage(StorageOptions(endpoint_url=s3_server, region="us-east-1"))
    for path in storage.list_files(str(data_root)):
        storage.copy(path, join("s3://fsg-data/root", relative(path, str(data_root))))
    return "s3://fsg-data/root"


@pytest.fixture(scope="module")
def storage(s3_server: str) -> Any:
    """Storage on the local S3 server with one retry, so failure paths stay fast (a test module
    may override it)."""
    from fsg_ray.config import StorageOptions
    from fsg_ray.io.storage import Storage

    return Storage(StorageOptions(endpoint_url=s3_server, region="us-east-1", retries=1))


@pytest.fixture(scope="module")
def roots(data_root: Path, data_bucket: str) -> dict[str, str]:
    """The synthetic dataset's root, local and on S3, by source name."""
    return {"local": str(data_root), "s3": data_bucket}
