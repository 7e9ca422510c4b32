"""The exported generator (ONNX through ONNX Runtime, TorchScript) against torch's own on odd
sizes and batches: equal within one grey level (uint8 in, uint8 out)."""

from __future__ import annotations

import io

import numpy as np
import onnxruntime as ort
import pytest
import torch
from conftest import tiny_state

from fsg_ray.core import export
from fsg_ray.core.algorithm import load_generator
from fsg_ray.core.inference import run_styles
from fsg_ray.core.models import Generator, VGGWeights

CPU = torch.device("cpu")
#: The stated tolerance: at most 1 grey level anywhere, on at most 0.1 % of the values.
MAX_DIFF, MAX_DIFF_SHARE = 1, 1e-3
#: Odd sizes: not multiples of 8, sides under 8 (replicate padding), one side under 8 only.
SIZES = [(2, 190, 253), (3, 64, 64), (1, 5, 9), (2, 12, 3), (1, 1, 1)]


@pytest.fixture(scope="module")
def generator(vgg: VGGWeights) -> Generator:
    return load_generator(tiny_state(vgg, 1), vgg, CPU)


@pytest.fixture(scope="module")
def onnx_session(generator: Generator) -> ort.InferenceSession:
    return ort.InferenceSession(
        export.export_bytes(generator, "onnx"), providers=["CPUExecutionProvider"]
    )


def reference(generator: Generator, batch: np.ndarray) -> np.ndarray:
    """What the restyle job and the server compute: ``run_styles``."""
    return run_styles({"s": generator}, batch, {"s": range(len(batch))}, CPU)["s"]


def assert_close(got: np.ndarray, want: np.ndarray) -> None:
    assert got.dtype == np.uint8 and got.shape == want.shape
    diff = np.abs(got.astype(np.int16) - want.astype(np.int16))
    assert diff.max() <= MAX_DIFF and (diff > 0).mean() <= MAX_DIFF_SHARE


def batch_of(shape: tuple[int, int, int], seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (*shape, 3), dtype=np.uint8)


@pytest.mark.parametrize("shape", SIZES)
def test_image_generator_in_eager_mode_is_run_styles(generator: Generator, shape: tuple) -> None:
    batch = batch_of(shape)
    with torch.inference_mode():
        got = export.ImageGenerator(generator)(torch.from_numpy(batch)).numpy()
    assert_close(got, reference(generator, batch))


@pytest.mark.parametrize("shape", SIZES)
def test_onnx_runtime_matches_torch_on_any_size_and_batch(
    generator: Generator, onnx_session: ort.InferenceSession, shape: tuple
) -> None:
    batch = batch_of(shape)
    (got,) = onnx_session.run([export.OUTPUT], {export.INPUT: batch})
    assert_close(got, reference(generator, batch))


def test_onnx_graph_has_dynamic_batch_height_and_width(
    onnx_session: ort.InferenceSession,
) -> None:
    (inp,) = onnx_session.get_inputs()
    assert (inp.name, inp.type) == (export.INPUT, "tensor(uint8)")
    assert inp.shape == ["batch", "height", "width", 3]


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:FutureWarning")
def test_torchscript_matches_torch_on_odd_sizes(generator: Generator) -> None:
    scripted = torch.jit.load(io.BytesIO(export.export_bytes(generator, "torchscript")))
    for shape in ((2, 190, 253), (1, 5, 9)):
        batch = batch_of(shape, seed=1)
        assert_close(scripted(torch.from_numpy(batch)).numpy(), reference(generator, batch))


def test_unknown_format_is_refused(generator: Generator) -> None:
    with pytest.raises(ValueError, match="unknown export format 'tflite'; choose from onnx"):
        export.export_bytes(generator, "tflite")


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:FutureWarning")
@pytest.mark.parametrize("noise", [0, 3])
def test_a_residual_generator_exports_to_onnx_and_torchscript(vgg: VGGWeights, noise: int) -> None:
    """``model.output: residual`` adds logit(x) to D_e's output, ``model.decoder_noise``
    stacks the saved noise tile onto its code: both formats carry both."""
    gen = load_generator(tiny_state(vgg, 2, output="residual", noise=noise), vgg, CPU)
    assert gen.decoder.residual and gen.decoder.noise_channels == noise
    batch = batch_of((2, 29, 19), seed=3)
    want = reference(gen, batch)
    onnx = export.export_bytes(gen, "onnx")
    session = ort.InferenceSession(onnx, providers=["CPUExecutionProvider"])
    (got,) = session.run([export.OUTPUT], {export.INPUT: batch})
    assert_close(got, want)
    scripted = torch.jit.load(io.BytesIO(export.export_bytes(gen, "torchscript")))
    assert_close(scripted(torch.from_numpy(batch)).numpy(), want)


@pytest.mark.parametrize("shape", [(2, 190, 253), (1, 5, 9)])
def test_a_downscaled_export_matches_run_styles_downscaled(
    generator: Generator, shape: tuple
) -> None:
    """``downscale`` 2: G runs on the photo shrunk twice, in torch, ONNX Runtime and
    TorchScript alike; odd sizes pad to multiples of 16 and crop back."""
    batch = batch_of(shape, seed=4)
    want = run_styles({"s": generator}, batch, {"s": range(len(batch))}, CPU, downscale=2)["s"]
    assert want.shape == batch.shape
    assert not np.array_equal(want, reference(generator, batch))  # not the full-size run
    with torch.inference_mode():
        assert_close(export.ImageGenerator(generator, 2)(torch.from_numpy(batch)).numpy(), want)
    session = ort.InferenceSession(
        export.export_bytes(generator, "onnx", downscale=2), providers=["CPUExecutionProvider"]
    )
    (got,) = session.run([export.OUTPUT], {export.INPUT: batch})
    assert_close(got, want)


@pytest.mark.parametrize("bad", [0, -1, 1.5, "2"])
def test_a_downscale_that_is_not_a_positive_integer_is_refused(
    generator: Generator, bad: object
) -> None:
    with pytest.raises(ValueError, match="downscale must be an integer >= 1"):
        export.export_bytes(generator, "onnx", downscale=bad)  # type: ignore[arg-type]
