"""int8 generators (``runtime: onnx-int8``): the quantised model keeps the exported file's
contract and stays near fp32, the gate measures the metrics of ``fsg eval`` and refuses a
model that moves them, and every failure keeps the style in fp32 with its reason."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import tiny_registry, tiny_state

from fsg_ray.core.algorithm import load_generator
from fsg_ray.core.models import Generator, VGGWeights
from fsg_ray.io import quantize, synthetic
from fsg_ray.io.generators import OnnxGenerator, StyleBank, for_runtime
from fsg_ray.io.storage import Storage

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def gen(vgg: VGGWeights) -> Generator:
    """A tiny residual generator with a textured decoder."""
    return load_generator(tiny_state(vgg, 0, "residual"), vgg, CPU)


@pytest.fixture(scope="module")
def photos() -> list[np.ndarray]:
    """Six synthetic product shots of two sizes (calibration takes any size)."""
    return [np.asarray(synthetic.garment(i, size=40 + 8 * (i % 2))[0]) for i in range(6)]


@pytest.fixture(scope="module")
def int8_model(gen: Generator, photos: list[np.ndarray]) -> bytes:
    return quantize.int8_onnx(gen, photos[:3])


def test_int8_model_keeps_the_contract_and_stays_near_fp32(
    gen: Generator, int8_model: bytes
) -> None:
    import onnx

    ops = {n.op_type for n in onnx.load_from_string(int8_model).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops  # really quantised
    fp32, int8 = OnnxGenerator(gen, 1), OnnxGenerator(gen, 1, int8_model)
    batch = np.random.default_rng(0).integers(0, 256, (2, 37, 45, 3), dtype=np.uint8)  # odd size
    a, b = fp32(batch), int8(batch)
    assert b.shape == a.shape == batch.shape and b.dtype == np.uint8
    diff = np.abs(a.astype(int) - b)
    assert 0 < diff.mean() < 3, diff.mean()  # different, but by a few grey levels at most


def test_int8_needs_calibration_photos(gen: Generator) -> None:
    with pytest.raises(quantize.QuantizationError, match="at least one .H, W, 3. photo"):
        quantize.int8_onnx(gen, [])
    with pytest.raises(quantize.QuantizationError, match=r"shapes \[\(4, 4\)\]"):
        quantize.int8_onnx(gen, [np.zeros((4, 4), np.uint8)])


def test_gate_passes_equal_outputs_and_fails_a_moved_one(photos: list[np.ndarray]) -> None:
    styled = [255 - p for p in photos]  # a stand-in style: the negative
    style = np.asarray(synthetic.style_texture("stripes", size=48))
    same = quantize.gate(photos, styled, styled, style)
    assert same.ok and same.against_style and same.images == 6
    assert same.structure_delta == 0 and same.style_delta == 0
    blurred = [np.full_like(p, p.mean(axis=(0, 1), keepdims=True).astype(np.uint8)) for p in styled]
    moved = quantize.gate(photos, styled, blurred, style)
    assert not moved.ok and moved.structure_delta < -quantize.MAX_STRUCTURE_DELTA
    assert "bound ±0.02" in moved.text()
    # Without the style image: the int8 outputs' distance to fp32's, as a share of the change
    # the style makes; zero for equal outputs.
    alone = quantize.gate(photos, styled, styled)
    assert alone.ok and not alone.against_style and alone.style_delta == 0
    assert not quantize.gate(photos, styled, blurred).ok


def test_gate_refuses_mismatched_inputs(photos: list[np.ndarray]) -> None:
    with pytest.raises(ValueError, match="as many outputs as photos"):
        quantize.gate(photos, photos[:2], photos)
    with pytest.raises(ValueError, match="of their shape"):
        quantize.gate(photos[:1], photos[1:2], photos[:1])


def test_choose_int8_keeps_fp32_when_the_gate_or_the_quantiser_fails(
    gen: Generator, photos: list[np.ndarray], monkeypatch: pytest.MonkeyPatch
) -> None:
    chosen = quantize.choose_int8(gen, photos)
    assert chosen.model is not None and chosen.result is not None and chosen.result.ok
    assert chosen.result.images == 3  # calibrated on the first half, gated on the second
    assert chosen.reason.startswith("int8: structure")
    monkeypatch.setattr(quantize, "MAX_STYLE_DELTA", 0.0)  # any error at all is too much
    refused = quantize.choose_int8(gen, photos)
    assert refused.model is None and "stays fp32, int8 moves it too far" in refused.reason

    def broken(*_: object, **__: object) -> bytes:
        raise quantize.QuantizationError("int8 quantisation failed: boom")

    monkeypatch.setattr(quantize, "int8_onnx", broken)
    failed = quantize.choose_int8(gen, photos)
    assert failed.model is None and failed.result is None and "boom" in failed.reason
    with pytest.raises(ValueError, match="at least one photo"):
        quantize.choose_int8(gen, [])


def test_bank_runs_the_given_model_per_style(
    gen: Generator, vgg: VGGWeights, tmp_path_factory: pytest.TempPathFactory
) -> None:
    reg = tiny_registry(str(tmp_path_factory.mktemp("reg")), vgg, ("dots", "stripes"))
    versions = {"dots": "v1", "stripes": "v1"}
    dots = StyleBank.load(Storage(), reg, {"dots": "v1"}, CPU, "torch").generators["dots"]
    assert isinstance(dots, Generator)
    models = {"dots": quantize.int8_onnx(dots, [np.zeros((16, 16, 3), np.uint8)])}
    bank = StyleBank.load(Storage(), reg, versions, CPU, "onnx-int8", 1, models)
    fp32 = StyleBank.load(Storage(), reg, versions, CPU, "onnx", 1)
    assert all(isinstance(g, OnnxGenerator) for g in bank.generators.values())
    batch = np.random.default_rng(2).integers(0, 256, (1, 24, 24, 3), dtype=np.uint8)
    wanted = {"dots": [0], "stripes": [0]}
    got, want = bank.run(batch, wanted, CPU), fp32.run(batch, wanted, CPU)
    assert np.array_equal(got["stripes"], want["stripes"])  # no model given: fp32
    assert not np.array_equal(got["dots"], want["dots"])  # its int8 model
    # On CUDA, onnx-int8 is torch (the GPU runs the generator in bf16 instead).
    assert for_runtime(gen, "onnx-int8", torch.device("cuda")) is gen


def test_a_downscaled_int8_model_runs_g_on_the_shrunk_photo(
    gen: Generator, photos: list[np.ndarray]
) -> None:
    """``downscale`` travels into the int8 file: it stays near the downscaled fp32 model,
    not the full-size one."""
    model = quantize.int8_onnx(gen, photos[:3], downscale=2)
    fp32 = OnnxGenerator(gen, 1, downscale=2)
    int8 = OnnxGenerator(gen, 1, model)
    batch = np.random.default_rng(1).integers(0, 256, (2, 37, 45, 3), dtype=np.uint8)
    a, b = fp32(batch), int8(batch)
    assert b.shape == batch.shape
    near = np.abs(a.astype(int) - b).mean()
    full = np.abs(OnnxGenerator(gen, 1)(batch).astype(int) - b).mean()
    assert near < 3 and near < full, (near, full)
