"""RestyleConfig (fsg_ray/config/restyle.py) from ``fsg restyle``'s --config file and flags."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from fsg_ray import config
from fsg_ray.app.cmd_restyle import restyle_config, restyle_options
from fsg_ray.app.main import build_parser
from fsg_ray.io import compositing


def test_yaml_then_flags_make_the_config(tmp_path: Path) -> None:
    path = tmp_path / "job.yaml"
    path.write_text(
        "registry: s3://b/reg\nstyles: [dots, stripes]\ninput: s3://b/in/\noutput: s3://b/out/\n"
        "max_side: 512\nformat: jpeg\nendpoint_url: http://m:9000\n"
    )
    args = build_parser().parse_args(
        ["restyle", "--config", str(path), "--max-side", "256", "--styles", "all"]
    )
    options = restyle_options(args)
    assert options["endpoint_url"] == "http://m:9000"
    assert restyle_config(options) == config.RestyleConfig(
        registry="s3://b/reg",
        input="s3://b/in/",
        output="s3://b/out/",
        styles=(),
        max_side=256,
        format="jpeg",
    )


def test_a_bad_value_in_the_file_names_the_key(tmp_path: Path) -> None:
    path = tmp_path / "job.yaml"
    path.write_text("registry: r\nstyles: a\ninput: i\noutput: o\nactors: 0\n")
    options = restyle_options(build_parser().parse_args(["restyle", "--config", str(path)]))
    with pytest.raises(config.ConfigError, match="^restyle.actors: must be >= 1"):
        restyle_config(options)


def test_formats_are_the_encoders() -> None:
    assert tuple(compositing.FORMATS) == config.OUTPUT_FORMATS


def test_runtime_comes_from_the_flag_or_the_file_and_is_checked(tmp_path: Path) -> None:
    path = tmp_path / "job.yaml"
    path.write_text("registry: r\nstyles: a\ninput: i\noutput: o\nruntime: torch\n")
    args = build_parser().parse_args(["restyle", "--config", str(path)])
    assert restyle_config(restyle_options(args)).runtime == "torch"
    args = build_parser().parse_args(["restyle", "--config", str(path), "--runtime", "onnx"])
    assert restyle_config(restyle_options(args)).runtime == "onnx"
    path.write_text("registry: r\nstyles: a\ninput: i\noutput: o\nruntime: tvm\n")
    options = restyle_options(build_parser().parse_args(["restyle", "--config", str(path)]))
    with pytest.raises(
        config.ConfigError,
        match="^restyle.runtime: 'tvm' is not one of auto, torch, torch-bf16, onnx",
    ):
        restyle_config(options)


def test_serve_runtime_is_checked() -> None:
    assert config.ServeConfig(registry="/r").runtime == "auto"
    with pytest.raises(config.ConfigError, match="^runtime: 'gpu' is not one of auto"):
        config.ServeConfig(registry="/r", runtime="gpu")
    # int8 needs calibration photos: a bulk job has them, an online service does not
    with pytest.raises(
        config.ConfigError,
        match="^runtime: 'onnx-int8' is not one of auto, torch, torch-bf16, onnx$",
    ):
        config.ServeConfig(registry="/r", runtime="onnx-int8")
    flags = ["--registry", "r", "--styles", "a", "--input", "i", "--output", "o"]
    args = build_parser().parse_args(["restyle", *flags, "--runtime", "onnx-int8"])
    assert restyle_config(restyle_options(args)).runtime == "onnx-int8"
    with pytest.raises(SystemExit):
        build_parser().parse_args(["serve", "--registry", "/r", "--runtime", "onnx-int8"])


def test_downscale_comes_from_the_flag_or_the_file_and_is_checked(tmp_path: Path) -> None:
    flags = ["--registry", "r", "--styles", "a", "--input", "i", "--output", "o"]
    args = build_parser().parse_args(["restyle", *flags])
    assert restyle_config(restyle_options(args)).downscale == 1
    args = build_parser().parse_args(["restyle", *flags, "--downscale", "2"])
    assert restyle_config(restyle_options(args)).downscale == 2
    path = tmp_path / "job.yaml"
    path.write_text("registry: r\nstyles: a\ninput: i\noutput: o\ndownscale: 4\n")
    args = build_parser().parse_args(["restyle", "--config", str(path)])
    assert restyle_config(restyle_options(args)).downscale == 4
    for bad in (0, 9, 1.5, True):
        with pytest.raises(
            config.ConfigError, match=r"^restyle.downscale: .* is not an integer from 1 to 8"
        ):
            config.RestyleConfig(registry="r", styles=("a",), input="i", output="o", downscale=bad)


def test_downscale_changes_the_fingerprint_only_when_above_one() -> None:
    """Outputs made before --downscale existed stay done; a downscaled run redoes them."""
    from fsg_ray.distributed.restyle_plan import settings_for

    def fingerprint(downscale: int) -> str:
        cfg = config.RestyleConfig(
            registry="r", styles=("a",), input="i", output="o", downscale=downscale
        )
        return settings_for(cfg).fingerprint

    before = {"masks": "manifest", "max_side": 1024, "preserve_color": False, "format": "png"}
    assert (
        fingerprint(1)
        == hashlib.sha256(json.dumps(before, sort_keys=True).encode()).hexdigest()[:12]
    )
    assert len({fingerprint(1), fingerprint(2), fingerprint(4)}) == 3


def test_strength_is_checked_and_changes_the_fingerprint_only_away_from_one() -> None:
    from fsg_ray.distributed.restyle_plan import settings_for

    def cfg(strength: float) -> config.RestyleConfig:
        return config.RestyleConfig(registry="r", input="i", output="o", strength=strength)

    assert settings_for(cfg(1.0)).fingerprint == settings_for(cfg(1)).fingerprint
    prints = {settings_for(cfg(s)).fingerprint for s in (0.0, 0.5, 1.0, 2.0)}
    assert len(prints) == 4 and settings_for(cfg(0.5)).strength == 0.5
    for bad in (-0.1, 4.5, float("nan")):
        with pytest.raises(config.ConfigError, match=r"^restyle.strength: must be a number in"):
            cfg(bad)


def test_serve_topology_is_checked_and_auto_is_one_hop_on_the_cpu_only() -> None:
    assert config.ServeConfig(registry="/r").topology == "auto"
    assert config.ServeConfig(registry="/r").one_hop  # replica_gpus 0: G shares the CPU
    assert not config.ServeConfig(registry="/r", replica_gpus=1).one_hop
    assert config.ServeConfig(registry="/r", replica_gpus=1, topology="one_hop").one_hop
    assert not config.ServeConfig(registry="/r", topology="two_hop").one_hop
    with pytest.raises(
        config.ConfigError, match="^topology: 'three_hop' is not one of auto, one_hop, two_hop$"
    ):
        config.ServeConfig(registry="/r", topology="three_hop")
