from __future__ import annotations

import io

import pytest
import torch
from torchvision.models.vgg import cfgs, make_layers

from fsg_ray import config
from fsg_ray.core import models


def test_layer_names_follow_torchvision_indices() -> None:
    names = models.vgg_layer_names()
    tv = make_layers(cfgs["E"])
    assert len(names) == len(tv)
    assert names[20] == "relu4_1" and names[29] == "relu5_1" and names[8] == "relu2_2"
    for name, module in zip(names, tv, strict=True):
        kind = {"conv": torch.nn.Conv2d, "relu": torch.nn.ReLU, "pool": torch.nn.MaxPool2d}
        assert isinstance(module, kind[name.rstrip("_0123456789")])


def test_random_weights_are_deterministic_and_seeded(vgg: models.VGGWeights) -> None:
    again = models.load_vgg("random:0")
    assert again.fingerprint == vgg.fingerprint
    assert models.load_vgg("random:1").fingerprint != vgg.fingerprint
    assert torch.equal(again.state["features.0.weight"], vgg.state["features.0.weight"])


def test_a_path_spec_needs_a_reader_and_reads_through_it(vgg: models.VGGWeights, tmp_path) -> None:
    with pytest.raises(ValueError, match="needs a reader"):
        models.load_vgg("weights/vgg19.pth")
    buf = io.BytesIO()
    torch.save(vgg.state, buf)
    read: list[str] = []

    def reader(uri: str) -> bytes:
        read.append(uri)
        return buf.getvalue()

    assert models.load_vgg("s3://b/vgg19.pth", reader).fingerprint == vgg.fingerprint
    assert read == ["s3://b/vgg19.pth"]


def test_taps_have_the_expected_shapes(vgg: models.VGGWeights) -> None:
    phi = models.VGG19Features(vgg.state, "relu5_1")
    out = phi(torch.rand(2, 3, 64, 48), ("relu2_2", "relu4_1", "relu5_1"))
    assert out["relu2_2"].shape == (2, 128, 32, 24)
    assert out["relu4_1"].shape == (2, 512, 8, 6)
    assert out["relu5_1"].shape == (2, 512, 4, 3)
    assert models.vgg_channels("relu3_1") == 256 and models.vgg_channels("relu1_2") == 64


def test_loss_network_is_frozen_and_stays_in_eval(vgg: models.VGGWeights) -> None:
    phi = models.VGG19Features(vgg.state, "relu3_1").train()
    assert not phi.training and not any(p.requires_grad for p in phi.parameters())


@pytest.mark.parametrize("size", [(64, 64), (37, 53), (8, 8), (5, 11), (101, 64)])
def test_generator_output_size_equals_input_size(
    vgg: models.VGGWeights, size: tuple[int, int]
) -> None:
    gen = models.Generator(vgg.state, config.ModelConfig(decoder_channels=(16, 8, 8, 8))).eval()
    with torch.no_grad():
        y = gen(torch.rand(1, 3, *size))
    assert y.shape == (1, 3, *size)
    assert y.min() >= 0 and y.max() <= 1 and torch.isfinite(y).all()


def test_only_the_decoder_is_trainable(vgg: models.VGGWeights) -> None:
    gen = models.Generator(vgg.state, config.ModelConfig(decoder_channels=(16, 8, 8, 8)))
    gen(torch.rand(2, 3, 32, 32)).mean().backward()
    assert all(p.grad is None for p in gen.encoder.parameters())
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in gen.decoder.parameters())


def test_discriminator_scores_every_neural_patch() -> None:
    disc = models.PatchDiscriminator(256, (32, 16))
    scores = disc(torch.rand(3, 256, 16, 12))
    assert scores.shape == (3, 1, 16, 12)
    scores.sum().backward()
    assert all(p.grad is not None for p in disc.parameters())
    assert not isinstance(disc.net[1], torch.nn.BatchNorm2d)  # first layer without BN (DCGAN)
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in disc.modules())


def test_decoder_upsamples_without_transposed_convolutions() -> None:
    dec = models.Decoder((16, 8, 8, 8))
    assert not any(isinstance(m, torch.nn.ConvTranspose2d) for m in dec.modules())
    assert sum(isinstance(m, torch.nn.Upsample) for m in dec.modules()) == 3
    assert dec(torch.rand(2, 512, 3, 5)).shape == (2, 3, 24, 40)


def test_instance_norm_decoder_does_not_depend_on_the_batch(vgg: models.VGGWeights) -> None:
    cfg = config.ModelConfig(decoder_channels=(16, 8, 8, 8), decoder_norm="instance")
    gen = models.Generator(vgg.state, cfg).train()
    assert any(isinstance(m, torch.nn.InstanceNorm2d) for m in gen.decoder.modules())
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in gen.decoder.modules())
    a, b = torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        alone, together = gen(a), gen(torch.cat([a, b]))[:1]
    assert torch.allclose(alone, together, atol=1e-5)


def test_residual_generator_starts_as_the_identity(
    vgg: models.VGGWeights,
) -> None:
    cfg = config.ModelConfig(decoder_channels=(16, 8, 8, 8), output="residual")
    gen = models.Generator(vgg.state, cfg).eval()
    x = torch.rand(2, 3, 37, 53) * 0.98 + 0.01  # inside the clamp: logit is invertible
    with torch.no_grad():
        y = gen(x)
    assert y.shape == x.shape
    assert torch.allclose(y, x, atol=1e-5)  # every pixel's detail, at full resolution


def _noisy(vgg: models.VGGWeights, noise: int) -> models.Generator:
    """A residual generator whose last conv is non-zero, so D_e's change shows."""
    cfg = config.ModelConfig(decoder_channels=(16, 8, 8, 8), output="residual", decoder_noise=noise)
    gen = models.Generator(vgg.state, cfg)
    seeded = torch.Generator().manual_seed(0)
    torch.nn.init.normal_(gen.decoder.net[-1].weight, std=0.5, generator=seeded)
    return gen


def test_decoder_noise_lets_a_plain_region_change_unevenly() -> None:
    """A plain garment's interior has a constant code: without noise D_e's change there is
    constant too, so no motif can be placed; with noise it varies."""
    code = torch.full((1, 512, 12, 12), 0.7)
    x = torch.full((1, 3, 96, 96), 0.6)
    for noise, varies in ((0, False), (4, True)):
        dec = models.Decoder((16, 8, 8, 8), residual=True, noise=noise)
        torch.nn.init.normal_(dec.net[-1].weight, std=0.5)
        with torch.no_grad():
            change = dec.eval()(code, x)
        spread = change.std(dim=(-2, -1)).max()  # over positions, per channel
        assert (spread > 1e-3) == varies, (noise, spread)


def test_decoder_noise_is_fresh_in_training_and_a_saved_tile_in_eval(
    vgg: models.VGGWeights,
) -> None:
    gen = _noisy(vgg, 4)
    x = torch.rand(2, 3, 32, 40)
    with torch.no_grad():
        assert not torch.equal(gen.train()(x), gen(x))
        gen.eval()
        first = gen(x)
        assert torch.equal(first, gen(x))
    state = gen.state_dict()
    assert state["decoder.noise"].shape == (1, 4, models.NOISE_TILE, models.NOISE_TILE)
    other = _noisy(vgg, 4)
    other.decoder.noise.normal_()  # a different tile, replaced by the loaded one
    other.load_state_dict(state)
    with torch.no_grad():
        assert torch.equal(other.eval()(x), first)


def test_decoder_noise_repeats_its_tile_past_its_size() -> None:
    dec = models.Decoder((16, 8, 8, 8), noise=2).eval()
    z = torch.zeros(1, 512, models.NOISE_TILE + 3, 2)
    stacked = dec.with_noise(z)
    assert stacked.shape == (1, 514, models.NOISE_TILE + 3, 2)
    assert torch.equal(stacked[:, 512:, models.NOISE_TILE], stacked[:, 512:, 0])
    assert dec(z).shape == (1, 3, 8 * (models.NOISE_TILE + 3), 16)


def test_a_decoder_without_noise_keeps_the_old_state_dict_keys(vgg: models.VGGWeights) -> None:
    """Checkpoints written before ``decoder_noise`` existed load unchanged."""
    cfg = config.ModelConfig(decoder_channels=(16, 8, 8, 8))
    state = models.Generator(vgg.state, cfg).state_dict()
    assert not any("noise" in key for key in state)
    models.Generator(vgg.state, cfg).load_state_dict(state)  # strict


def test_residual_decoder_without_the_input_is_refused() -> None:
    dec = models.Decoder((16, 8, 8, 8), residual=True)
    with pytest.raises(ValueError, match="needs the input image"):
        dec(torch.rand(1, 512, 2, 2))


def test_residual_output_moves_in_logit_space_and_stays_in_range(vgg: models.VGGWeights) -> None:
    cfg = config.ModelConfig(decoder_channels=(16, 8, 8, 8), output="residual")
    gen = models.Generator(vgg.state, cfg).eval()
    last = gen.decoder.net[-1]
    torch.nn.init.constant_(last.bias, 2.0)  # a uniform +2 logit change
    x = torch.tensor([0.0, 0.5, 1.0]).view(1, 1, 1, 3).expand(1, 3, 8, 3).contiguous()
    with torch.no_grad():
        y = gen(x)
    want = torch.sigmoid(torch.logit(x.clamp(0.01, 0.99)) + 2.0)
    assert torch.allclose(y, want, atol=1e-5) and y.min() > 0 and y.max() < 1


def test_shrink_averages_areas_and_factor_one_is_the_input() -> None:
    x = torch.arange(16, dtype=torch.float32).reshape(1, 1, 4, 4)
    assert models.shrink(x, 1) is x
    assert models.shrink(x, 2).flatten().tolist() == [2.5, 4.5, 10.5, 12.5]


def test_upscale_change_at_factor_one_is_the_low_resolution_output() -> None:
    x, y = torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 8)
    assert models.upscale_change(x, x, y, 1, 0.01) is y


def test_upscale_change_keeps_the_photo_where_g_changed_nothing() -> None:
    """No change at low resolution: every full-resolution pixel (its fine detail too) comes back."""
    x = torch.rand(2, 3, 16, 12) * 0.98 + 0.01
    x_low = models.shrink(x, 4)
    y = models.upscale_change(x, x_low, x_low.clone(), 4, 0.01)
    assert y.shape == x.shape
    assert torch.allclose(y, x, atol=1e-5)


def test_upscale_change_carries_a_uniform_logit_change_to_every_pixel() -> None:
    x = torch.rand(1, 3, 8, 8) * 0.98 + 0.01
    x_low = models.shrink(x, 2)
    y_low = torch.sigmoid(torch.logit(x_low) + 1.5)
    y = models.upscale_change(x, x_low, y_low, 2, 0.01)
    assert torch.allclose(y, torch.sigmoid(torch.logit(x) + 1.5), atol=1e-5)


def test_upscale_change_keeps_saturated_outputs_in_range() -> None:
    x = torch.rand(1, 3, 8, 8)
    x_low = models.shrink(x, 2)
    y = models.upscale_change(x, x_low, torch.zeros_like(x_low), 2, 0.01)
    assert y.min() >= 0 and y.max() < 0.01
