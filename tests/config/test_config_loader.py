"""The one loader (fsg_ray/config/loader.py): YAML with unique keys, --config files with the
flags winning, renamed keys, and the package's imports."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import pytest

from fsg_ray import config

KNOWN = ("registry", "max_side", "endpoint_url")


def test_flags_given_win_over_the_file(tmp_path: Path) -> None:
    path = tmp_path / "job.yaml"
    path.write_text("registry: s3://b/r\nmax_side: 512\n")
    flags = {"registry": None, "max_side": 256, "endpoint_url": None}
    assert config.options_with_flags(path, flags, KNOWN) == {
        "registry": "s3://b/r",
        "max_side": 256,
    }
    assert config.options_with_flags(None, flags, KNOWN) == {"max_side": 256}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("registry: r\nregistry: s\n", ":2:1: invalid YAML: duplicate key 'registry'"),
        ("regsitry: r\n", "unknown keys ['regsitry']; known: ('registry', 'max_side'"),
        ("- r\n", "expected a mapping of options"),
    ],
)
def test_bad_config_files_name_the_flag_and_file(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "job.yaml"
    path.write_text(text)
    with pytest.raises(config.ConfigError, match=f"^--config {path}") as info:
        config.options_with_flags(path, {}, KNOWN)
    assert message in str(info.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(config.ConfigError, match="nope.yaml: no such config file"):
        config.read_yaml(tmp_path / "nope.yaml")


STORAGE = {"runs": "s3://b/runs/", "registry": "s3://b/reg/"}


def test_s3_endpoint_is_read_as_endpoint_url_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    new = config.from_dict(config.StorageConfig, {**STORAGE, "endpoint_url": "http://m:9000"})
    assert new.endpoint_url == "http://m:9000" and not caplog.records
    with caplog.at_level(logging.WARNING, logger="fsg_ray.config.loader"):
        old = config.from_dict(config.StorageConfig, {**STORAGE, "s3_endpoint": "http://m:9000"})
    assert old == new
    assert [r.getMessage() for r in caplog.records] == [
        "s3_endpoint is deprecated: write endpoint_url instead"
    ]


def test_s3_endpoint_in_a_catalogue_and_a_serve_config(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="fsg_ray.config.loader"):
        cat = config.catalogue_from_dict(
            {
                "name": "cat",
                "data": {"full": "s3://b/f/", "shop": "s3://b/s/"},
                "styles": [{"name": "bear", "image": "s3://b/bear.jpg"}],
                "storage": {**STORAGE, "s3_endpoint": "http://m:9000"},
            }
        )
        serve = config.from_dict(config.ServeConfig, {"registry": "/r", "s3_endpoint": "http://m"})
    assert cat.storage.endpoint_url == "http://m:9000" and serve.endpoint_url == "http://m"
    assert [r.getMessage() for r in caplog.records] == [
        "storage.s3_endpoint is deprecated: write storage.endpoint_url instead",
        "s3_endpoint is deprecated: write endpoint_url instead",
    ]


def test_old_and_new_endpoint_key_together_is_an_error() -> None:
    both = {**STORAGE, "s3_endpoint": "http://a", "endpoint_url": "http://b"}
    with pytest.raises(config.ConfigError, match="^s3_endpoint: give endpoint_url only"):
        config.from_dict(config.StorageConfig, both)


def test_override_is_not_dataclasses_replace() -> None:
    assert not hasattr(config, "replace")
    cfg = config.override(config.TrainConfig(), schedule={"seed": 3})
    assert cfg.schedule.seed == 3


def test_config_imports_nothing_of_ours_but_uri() -> None:
    code = (
        "import sys, fsg_ray.config; "
        "ours = sorted(m for m in sys.modules if m.startswith('fsg_ray') "
        "and not m.startswith('fsg_ray.config')); "
        "assert ours == ['fsg_ray', 'fsg_ray.io', 'fsg_ray.io.uri'], ours; "
        "assert not {'ray', 'boto3', 'torch', 'pyarrow'} & set(sys.modules)"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
