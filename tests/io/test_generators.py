"""Generators on uint8 batches: one E_n per VGG spec shared by the styles, one encoder pass per
batch, the same pixels as each generator run on its own."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import tiny_registry, tiny_state
from PIL import Image

from fsg_ray.core.inference import pad_to_stride, run_styles
from fsg_ray.core.models import VGGWeights
from fsg_ray.io import generators, registry
from fsg_ray.io.generators import (
    CpuBf16,
    EncoderCache,
    OnnxGenerator,
    StyleBank,
    for_runtime,
    resolve_runtime,
    run_loaded,
)
from fsg_ray.io.images import to_image, to_tensor
from fsg_ray.io.storage import Storage

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def reg(vgg: VGGWeights, tmp_path_factory: pytest.TempPathFactory) -> str:
    """Two styles on random:0 weights, dots with two versions."""
    return tiny_registry(str(tmp_path_factory.mktemp("registry")), vgg, ("dots", "stripes", "dots"))


def test_encoder_cache_shares_one_encoder_module_between_styles(reg: str) -> None:
    cache = EncoderCache(Storage(), CPU)
    dots, found = cache.load(reg, "dots")
    stripes, _ = cache.load(reg, "stripes")
    old_dots, old = cache.load(reg, "dots", "v1")
    assert (found.version, old.version) == ("v2", "v1")
    assert dots.encoder is stripes.encoder is old_dots.encoder
    assert cache.specs == ["random:0"]
    assert not any(
        p.data_ptr() == q.data_ptr()
        for p in dots.decoder.parameters()
        for q in old_dots.decoder.parameters()
    )
    with pytest.raises(registry.StyleNotFound, match="known styles: dots, stripes"):
        cache.load(reg, "waves")


@pytest.mark.parametrize("size", [(37, 50), (5, 6)])
def test_style_bank_encodes_once_and_matches_each_generator(
    vgg: VGGWeights, reg: str, size: tuple[int, int]
) -> None:
    bank = StyleBank.load(Storage(), reg, {"dots": "v2", "stripes": "v1"}, CPU)
    assert bank.by_encoder == {"random:0": ["dots", "stripes"]}
    batch = np.random.default_rng(0).integers(0, 256, (2, *size, 3), dtype=np.uint8)
    got = bank.run(batch, {"dots": [0, 1], "stripes": [1]}, CPU)
    assert got["dots"].shape == (2, *size, 3) and got["stripes"].shape == (1, *size, 3)
    for style, picked in (("dots", [0, 1]), ("stripes", [1])):
        gen, _ = registry.load(Storage(), reg, style, CPU, vgg=vgg)
        for k, i in enumerate(picked):
            with torch.inference_mode():
                want = np.asarray(to_image(gen(to_tensor(Image.fromarray(batch[i]))[None])[0]))
            assert np.abs(got[style][k].astype(int) - want).max() <= 1, (style, i)


def test_run_styles_skips_styles_without_images(reg: str) -> None:
    cache = EncoderCache(Storage(), CPU)
    gens = {s: cache.load(reg, s)[0] for s in ("dots", "stripes")}
    batch = np.zeros((1, 16, 16, 3), np.uint8)
    assert list(run_styles(gens, batch, {"dots": [0], "stripes": []}, CPU)) == ["dots"]


def test_pad_to_stride_pads_bottom_right_only() -> None:
    x = torch.arange(2 * 3 * 9 * 10, dtype=torch.float32).reshape(2, 3, 9, 10)
    y = pad_to_stride(x)
    assert y.shape == (2, 3, 16, 16)
    assert torch.equal(y[..., :9, :10], x)
    assert pad_to_stride(y) is y


def test_encoder_cache_keeps_at_most_max_encoders_specs(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """A registry whose versions name many VGG weight specs cannot grow the cache unbounded."""
    from fsg_ray.io.weights import load_vgg

    uri = str(tmp_path_factory.mktemp("specs"))
    for i, spec in enumerate(("random:0", "random:1", "random:2")):
        # The tiny generator on random:0, relabelled as trained on another spec (the decoder
        # does not depend on the encoder's weights, only on its shape).
        state = tiny_state(load_vgg("random:0"), i)
        state["vgg_weights"], state["vgg_fingerprint"] = spec, load_vgg(spec).fingerprint
        state["config"]["model"]["vgg_weights"] = spec
        registry.publish(Storage(), uri, f"s{i}", state, {})
    cache = EncoderCache(Storage(), CPU, max_encoders=2)
    for i in (0, 1, 0, 2):
        cache.load(uri, f"s{i}")
    assert cache.specs == ["random:0", "random:2"]  # random:1 least recently used
    with pytest.raises(ValueError, match="max_encoders"):
        EncoderCache(Storage(), CPU, max_encoders=0)


@pytest.mark.parametrize("amx", [False, True])
def test_for_runtime_picks_torch_bf16_or_onnx_runtime(
    reg: str, amx: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``auto`` on the CPU: bf16 where it has bf16 matrix units, else ONNX Runtime."""
    monkeypatch.setattr(generators, "cpu_has_bf16_matrix_units", lambda: amx)
    gen, _ = EncoderCache(Storage(), CPU).load(reg, "dots")
    assert for_runtime(gen, "torch", CPU) is gen
    assert for_runtime(gen, "torch-bf16", CPU) == CpuBf16(gen)
    cuda = torch.device("cuda")
    assert for_runtime(gen, "auto", cuda) is for_runtime(gen, "torch-bf16", cuda) is gen
    assert resolve_runtime("auto", CPU) == ("torch-bf16" if amx else "onnx")
    if amx:
        assert for_runtime(gen, "auto", CPU) == CpuBf16(gen)
    onnx = for_runtime(gen, "auto" if not amx else "onnx", CPU, threads=2)
    assert isinstance(onnx, OnnxGenerator) and onnx.threads == 2
    assert onnx.session.get_session_options().intra_op_num_threads == 2
    with pytest.raises(ValueError, match="unknown runtime 'tvm'; choose from auto, torch, torch-"):
        for_runtime(gen, "tvm", CPU)


def test_bf16_on_the_cpu_stays_near_fp32_and_mixes_with_fp32(reg: str) -> None:
    versions = {"dots": "v2", "stripes": "v1"}
    fp32 = StyleBank.load(Storage(), reg, versions, CPU, "torch")
    bf16 = StyleBank.load(Storage(), reg, versions, CPU, "torch-bf16")
    assert all(isinstance(g, CpuBf16) for g in bf16.generators.values())
    batch = np.random.default_rng(3).integers(0, 256, (2, 21, 34, 3), dtype=np.uint8)
    wanted = {"dots": [0, 1], "stripes": [1]}
    want, got = fp32.run(batch, wanted, CPU), bf16.run(batch, wanted, CPU)
    mixed = run_loaded(
        {"dots": bf16.generators["dots"], "stripes": fp32.generators["stripes"]},
        batch,
        wanted,
        CPU,
    )
    for style in wanted:
        diff = np.abs(got[style].astype(int) - want[style])
        assert got[style].shape == want[style].shape
        assert diff.max() > 0 and diff.mean() < 2, (style, diff.mean())  # bf16, yet close
    assert np.array_equal(mixed["dots"], got["dots"])
    assert np.array_equal(mixed["stripes"], want["stripes"])


def test_onnx_bank_matches_the_torch_bank_and_mixes_with_torch(reg: str) -> None:
    versions = {"dots": "v2", "stripes": "v1"}
    on_torch = StyleBank.load(Storage(), reg, versions, CPU, "torch")
    on_onnx = StyleBank.load(Storage(), reg, versions, CPU, "onnx", threads=1)
    assert all(isinstance(g, OnnxGenerator) for g in on_onnx.generators.values())
    batch = np.random.default_rng(1).integers(0, 256, (3, 21, 34, 3), dtype=np.uint8)
    wanted = {"dots": [0, 2], "stripes": [1]}
    want = on_torch.run(batch, wanted, CPU)
    got = on_onnx.run(batch, wanted, CPU)
    mixed = run_loaded(
        {"dots": on_onnx.generators["dots"], "stripes": on_torch.generators["stripes"]},
        batch,
        {**wanted, "stripes": []},
        CPU,
    )
    assert list(mixed) == ["dots"]
    for style in wanted:
        assert got[style].shape == want[style].shape
        assert np.abs(got[style].astype(int) - want[style]).max() <= 1
    assert np.array_equal(mixed["dots"], got["dots"])


def test_a_downscaled_bank_runs_g_on_the_shrunk_photo_in_both_runtimes(reg: str) -> None:
    """``downscale`` 2 on torch and ONNX: the same pixels, full-size outputs, and G's change
    at half resolution laid over the photo (not the full-size run's pixels)."""
    versions = {"dots": "v2"}
    full = StyleBank.load(Storage(), reg, versions, CPU, "torch")
    on_torch = StyleBank.load(Storage(), reg, versions, CPU, "torch", downscale=2)
    on_onnx = StyleBank.load(Storage(), reg, versions, CPU, "onnx", threads=1, downscale=2)
    assert on_torch.downscale == on_onnx.downscale == 2
    batch = np.random.default_rng(2).integers(0, 256, (2, 37, 50, 3), dtype=np.uint8)
    wanted = {"dots": [0, 1]}
    want = on_torch.run(batch, wanted, CPU)["dots"]
    assert want.shape == batch.shape
    assert np.abs(on_onnx.run(batch, wanted, CPU)["dots"].astype(int) - want).max() <= 1
    assert not np.array_equal(want, full.run(batch, wanted, CPU)["dots"])
