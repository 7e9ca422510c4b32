"""Every config names a bad key the same way: ``<key path>: <what is wrong>``
(fsg_ray/config/errors.py, and the checks of each config module)."""

from __future__ import annotations

import re
from typing import Any

import pytest

from fsg_ray import config

CATALOGUE = {
    "name": "cat",
    "data": {"full": "s3://b/full/", "shop": "s3://b/shop/"},
    "styles": [{"name": "bear", "image": "s3://b/bear.jpg"}],
    "storage": {"runs": "s3://b/runs/", "registry": "s3://b/reg/"},
}
RESTYLE = {"registry": "s3://b/reg", "input": "s3://b/in/", "output": "s3://b/out/"}
EVAL = {"registry": "s3://b/reg", "style": "bear", "images": "s3://b/in/", "out": "s3://b/o/"}


@pytest.mark.parametrize(
    ("cls", "data", "message"),
    [
        (config.TrainConfig, {"schedule": {"batch_size": 0}}, "schedule.batch_size: must be >= 1"),
        (config.TrainConfig, {"schedule": {"seed": "x"}}, "schedule.seed: expected int"),
        (
            config.CatalogueConfig,
            {**CATALOGUE, "resources": {"workers_per_style": 0}},
            "resources.workers_per_style: must be >= 1",
        ),
        (
            config.CatalogueConfig,
            {**CATALOGUE, "styles": [{"name": "bear", "image": "s3://b/x", "overrides": 1}]},
            "styles[0].overrides: expected a mapping",
        ),
        (config.ServeConfig, {"registry": "/r", "max_side": 4}, "max_side: must be >= 8"),
        (config.RestyleConfig, {**RESTYLE, "max_side": 4}, "restyle.max_side: must be >= 8"),
        (config.RestyleConfig, {**RESTYLE, "max_side": "big"}, "restyle.max_side: expected int"),
        (config.RestyleConfig, {**RESTYLE, "actor": 2}, "restyle.actor: unknown key"),
        (config.RestyleConfig, {"registry": "r"}, "restyle.input, restyle.output: required key"),
        (
            config.RestyleConfig,
            {**RESTYLE, "styles": ["ok", "Not OK"]},
            "restyle.styles[1]: 'Not OK' is not a valid style name",
        ),
        (config.RestyleConfig, {**RESTYLE, "input": "gs://b/i"}, "restyle.input: 'gs://b/i'"),
        (config.EvalConfig, {**EVAL, "max_side": 8}, "eval.max_side: must be >= 16"),
        (config.EvalConfig, {**EVAL, "gatys_iters": -1}, "eval.gatys_iters: must be >= 0"),
        (config.EvalConfig, {**EVAL, "strengths": [1, -1]}, "eval.strengths[1]: must be a"),
        (config.EvalConfig, {**EVAL, "strengths": [float("nan")]}, "eval.strengths[0]: must"),
        (config.EvalConfig, {**EVAL, "strengths": ["x"]}, "eval.strengths[0]: expected float"),
        (config.EvalConfig, {**EVAL, "style": "A"}, "eval.style: 'A' is not a valid style name"),
        (
            config.EvalConfig,
            {**EVAL, "styles": ["a"]},
            "eval.styles: give eval.style (one style) or eval.styles",
        ),
        (config.EvalConfig, {**EVAL, "style": None}, "eval.style: required: give eval.style or"),
        (config.EvalConfig, {**EVAL, "style": None, "styles": ["all", "a"]}, "eval.styles: 'all'"),
        (
            config.EvalConfig,
            {**EVAL, "style": None, "styles": ["a", "B!"]},
            "eval.styles[1]: 'B!' is not",
        ),
        (
            config.EvalConfig,
            {**EVAL, "style": None, "styles": ["a", "a"]},
            "eval.styles: styles given twice: a",
        ),
        (config.EvalConfig, {**EVAL, "style": None, "styles": "a"}, "eval.styles: expected a list"),
        (
            config.StorageOptions,
            {"endpoint_url": "minio:9000"},
            "storage.endpoint_url: 'minio:9000' must start with http://",
        ),
        (config.StorageOptions, {"retries": -1}, "storage.retries: must be >= 0"),
        (config.StorageOptions, {"region": 3}, "storage.region: expected str"),
    ],
)
def test_every_config_names_the_key_path_first(
    cls: type, data: dict[str, Any], message: str
) -> None:
    build = config.catalogue_from_dict if cls is config.CatalogueConfig else None
    with pytest.raises(config.ConfigError, match="^" + re.escape(message)):
        build(data) if build else config.from_dict(cls, data)


def test_errors_are_value_errors() -> None:
    """Callers that catch ValueError (the ``fsg`` command: exit 2) catch every config error."""
    assert issubclass(config.ConfigError, ValueError)
    with pytest.raises(ValueError, match="^restyle.actors: must be >= 1"):
        config.RestyleConfig(**RESTYLE, actors=0)
