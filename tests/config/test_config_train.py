"""TrainConfig and its sections (fsg_ray/config/train.py), and override (loader)."""

from __future__ import annotations

import dataclasses

import pytest

from fsg_ray import config


def test_defaults_are_the_papers_numbers() -> None:
    cfg = config.TrainConfig()
    s, d = cfg.schedule, cfg.data
    assert (s.batch_size, s.lr_global, s.lr_patch) == (4, 1e-3, 1e-3)
    assert (s.alternations, s.patch_steps, s.global_steps, s.global_only_steps) == (
        1,
        3000,
        3000,
        40000,
    )
    sizes = (d.global_input_size, d.global_target_size, d.patch_size, d.patch_stride, d.style_size)
    assert sizes == (72, 288, 128, 16, 256)
    assert cfg.loss.style_layers == ("relu2_2",) and cfg.loss.content_layers == ("relu5_1",)
    assert cfg.model.vgg_weights == "imagenet" and s.mode == "full"


def test_round_trip_through_plain_data() -> None:
    cfg = config.TrainConfig(
        loss=config.LossConfig.random_vgg(), model=config.ModelConfig(vgg_weights="random:3")
    )
    assert config.from_dict(config.TrainConfig, config.to_dict(cfg)) == cfg


def test_unknown_key_is_named() -> None:
    with pytest.raises(
        config.ConfigError, match=r"^schedule\.batchsize: unknown key .*'batch_size'"
    ):
        config.from_dict(config.TrainConfig, {"schedule": {"batchsize": 8}})
    with pytest.raises(config.ConfigError, match="^modle: unknown key"):
        config.from_dict(config.TrainConfig, {"modle": {}})


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"schedule": {"mode": "half"}}, "schedule.mode"),
        ({"schedule": {"batch_size": 0}}, "schedule.batch_size"),
        ({"schedule": {"batch_size": "4"}}, "schedule.batch_size: expected int"),
        ({"schedule": {"lr_patch": 2.0}}, "schedule.lr_patch"),
        ({"loss": {"style_layers": ["relu9_9"]}}, "loss.style_layers: unknown VGG layer 'relu9_9'"),
        ({"loss": {"style_layers": []}}, "loss.style_layers: needs at least one"),
        ({"loss": {"gram": "fancy"}}, "loss.gram"),
        ({"loss": {"colour_space": "lab"}}, "loss.colour_space: 'lab' is not one of"),
        ({"model": {"vgg_weights": "random:abc"}}, "model.vgg_weights"),
        ({"model": {"decoder_channels": [1, 2]}}, "model.decoder_channels"),
        ({"model": {"decoder_norm": "group"}}, "model.decoder_norm"),
        ({"model": {"decoder_noise": -1}}, "model.decoder_noise: must be >= 0"),
        ({"model": {"decoder_noise": 1.5}}, "model.decoder_noise: expected int"),
        ({"data": {"global_input_size": 300}}, "data.global_target_size"),
        ({"data": {"patch_size": 300}}, "data.style_size"),
        ({"schedule": {"seed": True}}, "schedule.seed: expected int"),
        ({"schedule": {"bn_recalibration_batches": -1}}, "schedule.bn_recalibration_batches"),
        ({"loss": {"patch_swd_weight": -0.5}}, "loss.patch_swd_weight: must be >= 0"),
        ({"loss": {"patch_swd_layers": ["relu0_1"]}}, "loss.patch_swd_layers: unknown VGG"),
        ({"loss": {"patch_swd_layers": []}}, "loss.patch_swd_layers: needs at least one"),
        ({"loss": {"swd_projections": 0}}, "loss.swd_projections: must be >= 1"),
        ({"loss": {"gan_swd_weight": -1}}, "loss.gan_swd_weight: must be >= 0"),
    ],
)
def test_bad_values_fail_naming_the_key(data: dict, message: str) -> None:
    with pytest.raises(config.ConfigError, match=message.replace("(", r"\(").replace(".", r"\.")):
        config.from_dict(config.TrainConfig, data)


def test_ints_are_accepted_for_floats_and_lists_for_tuples() -> None:
    cfg = config.from_dict(
        config.TrainConfig, {"loss": {"style_weight": 2, "style_layers": ["relu1_1"]}}
    )
    assert cfg.loss.style_weight == 2.0 and isinstance(cfg.loss.style_weight, float)
    assert cfg.loss.style_layers == ("relu1_1",)


@pytest.mark.parametrize("spec", ["imagenet", "random:7", "s3://b/vgg.pth", "/tmp/v.pt", "w.pth"])
def test_vgg_weight_specs(spec: str) -> None:
    assert config.ModelConfig(vgg_weights=spec).vgg_weights == spec


def test_override_changes_one_key_and_validates() -> None:
    cfg = config.override(config.TrainConfig(), schedule={"gan_init_steps": 5})
    assert cfg.schedule.gan_init_steps == 5 and cfg.schedule.batch_size == 4
    with pytest.raises(config.ConfigError, match="unknown config section"):
        config.override(config.TrainConfig(), shedule={})


def test_configs_are_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.TrainConfig().schedule.batch_size = 3  # type: ignore[misc]


def test_a_colour_space_built_in_code_is_checked_too() -> None:
    with pytest.raises(config.ConfigError, match="loss.colour_space: must be rgb or chroma"):
        config.LossConfig(colour_space="lab")  # type: ignore[arg-type]


def test_the_matched_luma_content_needs_luminance_content() -> None:
    with pytest.raises(config.ConfigError, match="loss.content_luma_match: needs loss.content_lu"):
        config.LossConfig(content_luma_match="mean")
    with pytest.raises(config.ConfigError, match="loss.content_luma_match: must be none, mean"):
        config.LossConfig(content_luminance=True, content_luma_match="rgb")  # type: ignore
    assert config.LossConfig(content_luminance=True, content_luma_match="mean").content_luma_match


def test_loss_layers_are_in_network_order() -> None:
    assert config.LossConfig().loss_layers() == ("relu2_2", "relu3_1", "relu4_1", "relu5_1")


# --- Catalogue -------------------------------------------------------------------------------


def test_paper_profile_has_no_patch_swd_and_no_bn_recalibration() -> None:
    cfg = config.TrainConfig()
    assert cfg.loss.patch_swd_weight == cfg.loss.gan_swd_weight == 0
    assert cfg.schedule.bn_recalibration_batches == 0 and not cfg.loss.uses_swd


def test_patch_swd_layers_are_loss_layers_only_when_the_term_is_on() -> None:
    deep = ("relu1_1", "relu5_2")
    off = config.LossConfig(patch_swd_layers=deep)
    assert "relu5_2" not in off.loss_layers()
    on = config.LossConfig(patch_swd_layers=deep, patch_swd_weight=1.0)
    assert on.loss_layers()[-1] == "relu5_2" and "relu1_1" in on.loss_layers()
    gan = config.LossConfig(patch_swd_layers=deep, gan_swd_weight=0.5)
    assert gan.uses_swd and "relu5_2" in gan.loss_layers()
