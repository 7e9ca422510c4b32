"""The catalogue file (fsg_ray/config/catalogue.py): CatalogueConfig, StyleSpec, load_catalogue."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from fsg_ray import config

PAPER_YAML = Path(__file__).resolve().parents[2] / "jobs" / "configs" / "paper_styles.yaml"
PAPER_STYLES = ["porcelain", "bear", "wave", "chinese_knot", "leopard", "starry_night"]


def catalogue(**changes: Any) -> dict[str, Any]:
    """A small valid catalogue as plain data, with top-level keys changed."""
    base: dict[str, Any] = {
        "name": "demo",
        "data": {"full": "s3://b/full/", "shop": "/data/shop.parquet"},
        "styles": [
            {"name": "bear", "image": "s3://b/bear.jpg"},
            {"name": "wave", "image": "w.png"},
        ],
        "storage": {"runs": "s3://b/runs/", "registry": "file:///srv/registry"},
    }
    return {**base, **changes}


def style(name: str = "bear", **extra: Any) -> dict[str, Any]:
    """One style entry as plain data."""
    return {"name": name, "image": f"s3://b/{name}.jpg", **extra}


def raises(message: str) -> Any:
    """``pytest.raises(ConfigError)`` whose message starts with ``message`` (taken literally)."""
    return pytest.raises(config.ConfigError, match="^" + re.escape(message))


def test_paper_catalogue_has_six_styles_with_paper_defaults() -> None:
    cat = config.load_catalogue(PAPER_YAML)
    assert [s.name for s in cat.styles] == PAPER_STYLES
    assert cat.train == config.TrainConfig() and cat.train.model.vgg_weights == "imagenet"
    assert all(cat.style_config(name) == config.TrainConfig() for name in PAPER_STYLES)
    assert cat.styles[0].image == "s3://my-bucket/fsg/styles/porcelain.jpg"
    assert (cat.data.full, cat.data.shop) == ("s3://my-bucket/fashion144k/", "s3://my-bucket/shop/")
    assert cat.storage.runs.startswith("s3://my-bucket/fsg/")
    assert cat.storage.registry.startswith("s3://my-bucket/fsg/")
    r = cat.resources
    assert (r.workers_per_style, r.gpus_per_worker, r.use_gpu) == (1, 1.0, "auto")


def test_paper_ablations_catalogue_trains_one_style_three_ways() -> None:
    cat = config.load_catalogue(PAPER_YAML.with_name("paper_ablations.yaml"))
    schedules = [cat.style_config(s.name).schedule for s in cat.styles]
    assert [(s.name, s.base) for s in cat.styles] == [
        ("leopard", "leopard"),
        ("leopard-feeds", "leopard"),
        ("leopard-mgan", "leopard"),
    ]
    assert [s.mode for s in schedules] == ["full", "global_only", "patch_only"]
    assert schedules[1].global_only_steps == 40000
    assert cat.train.model.vgg_weights == "imagenet" and cat.resources.use_gpu == "always"


def test_defaults_of_a_minimal_catalogue() -> None:
    cat = config.catalogue_from_dict(catalogue())
    assert cat.train == config.TrainConfig() and cat.resources == config.Resources()
    assert (cat.max_failures, cat.samples, cat.data.masks) == (2, 4, None)
    assert cat.storage.endpoint_url is None and cat.styles[0].overrides == {}


def test_style_overrides_apply_on_top_of_the_catalogue_train_config() -> None:
    styles = [
        {"name": "bear", "image": "b.jpg", "overrides": {"loss": {"style_weight": 10}}},
        {"name": "wave", "image": "w.jpg"},
    ]
    train = {"schedule": {"gan_init_steps": 7}, "loss": {"style_layers": ["relu1_1"]}}
    cat = config.catalogue_from_dict(catalogue(styles=styles, train=train))
    bear, wave = cat.style_config("bear"), cat.style_config("wave")
    assert bear.loss.style_weight == 10.0 and wave.loss.style_weight == 5.0
    assert bear.schedule.gan_init_steps == wave.schedule.gan_init_steps == 7
    assert bear.loss.style_layers == ("relu1_1",)
    with raises("styles: no style 'owl'"):
        cat.style_config("owl")


def test_ablations_are_entries_with_a_mode_and_a_base_style() -> None:
    styles = [
        style(),
        style("bear-feeds", image="s3://b/bear.jpg", mode="global_only", base_style="bear"),
        style("bear-mgan", image="s3://b/bear.jpg", mode="patch_only", base_style="bear"),
        style("solo", base_style="elsewhere"),  # a base trained in another catalogue
    ]
    cat = config.catalogue_from_dict(catalogue(styles=styles))
    modes = [cat.style_config(s.name).schedule.mode for s in cat.styles]
    assert modes == ["full", "global_only", "patch_only", "full"]
    assert [s.base for s in cat.styles] == ["bear", "bear", "bear", "elsewhere"]
    assert cat.style("bear-feeds").overrides == {"schedule": {"mode": "global_only"}}
    assert (
        config.catalogue_from_dict(config.to_dict(cat)) == cat
    )  # what the demo writes and reloads


def test_overrides_are_validated_against_the_catalogue_config() -> None:
    # Valid only together with the catalogue's data sizes (target >= input).
    train = {"data": {"global_input_size": 100, "global_target_size": 400}}
    ok = [{"name": "a", "image": "a.jpg", "overrides": {"data": {"global_target_size": 200}}}]
    assert config.catalogue_from_dict(catalogue(styles=ok, train=train)).style_config("a").data == (
        config.DataConfig(global_input_size=100, global_target_size=200)
    )
    bad = [{"name": "a", "image": "a.jpg", "overrides": {"data": {"global_target_size": 90}}}]
    with raises("styles[0].overrides.data.global_target_size: must be >="):
        config.catalogue_from_dict(catalogue(styles=bad, train=train))


def test_round_trip_through_plain_data_and_yaml() -> None:
    styles = [
        {"name": "bear", "image": "b.jpg", "overrides": {"loss": {"style_layers": ["relu1_1"]}}}
    ]
    cat = config.catalogue_from_dict(
        catalogue(styles=styles, vgg_weights="random:3", resources={"use_gpu": "never"})
    )
    assert config.catalogue_from_dict(config.to_dict(cat)) == cat
    assert config.catalogue_from_dict(yaml.safe_load(yaml.safe_dump(config.to_dict(cat)))) == cat
    paper = config.load_catalogue(PAPER_YAML)
    assert config.catalogue_from_dict(config.to_dict(paper)) == paper


def test_vgg_weights_shortcut() -> None:
    cat = config.catalogue_from_dict(catalogue(vgg_weights="random:1"))
    assert cat.train.model.vgg_weights == "random:1"
    same = {"model": {"vgg_weights": "random:1"}}
    assert config.catalogue_from_dict(catalogue(vgg_weights="random:1", train=same)) == cat
    other = {"model": {"vgg_weights": "imagenet"}}
    with raises("vgg_weights: 'random:1' conflicts with train.model.vgg_weights 'imagenet'"):
        config.catalogue_from_dict(catalogue(vgg_weights="random:1", train=other))
    with raises("vgg_weights: 'vgg19'"):
        config.catalogue_from_dict(catalogue(vgg_weights="vgg19"))


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"epochs": 3}, "epochs: unknown key; known keys in CatalogueConfig are"),
        ({"style": []}, "style: unknown key (did you mean 'styles'?)"),
        (
            {
                "styles": [
                    style(),
                    style("wave"),
                    style("owl", overrides={"schedule": {"lr_glob": 1}}),
                ]
            },
            "styles[2].overrides.schedule.lr_glob: unknown key (did you mean 'lr_global'?)",
        ),
        ({"styles": [style(overrides={"sched": {}})]}, "styles[0].overrides.sched: unknown key"),
        (
            {"styles": [style(overrides={"schedule": {"batch_size": "4"}})]},
            "styles[0].overrides.schedule.batch_size: expected int",
        ),
        ({"styles": [style(), style("Bear!")]}, "styles[1].name: 'Bear!' is not a valid style"),
        ({"styles": [style(), {"name": "wave", "image": "gs://b/w.jpg"}]}, "styles[1].image:"),
        ({"styles": [style(), {"name": "wave"}]}, "styles[1].image: required key is missing"),
        (
            {"styles": [style(), style("wave"), style()]},
            "styles[2].name: duplicate style 'bear' (also styles[0])",
        ),
        ({"styles": []}, "styles: needs at least one style"),
        ({"styles": {"bear": "b.jpg"}}, "styles: expected a list"),
        ({"name": "My Catalogue"}, "name: 'My Catalogue' is not a valid catalogue name"),
        ({"resources": {"workers_per_style": -1}}, "resources.workers_per_style: must be >= 1"),
        ({"resources": {"cpus_per_worker": 0}}, "resources.cpus_per_worker: must be > 0"),
        ({"resources": {"use_gpu": "yes"}}, "resources.use_gpu: 'yes' is not one of"),
        (
            {"resources": {"use_gpu": "always", "gpus_per_worker": 0}},
            "resources.gpus_per_worker: must be > 0 when resources.use_gpu is always",
        ),
        ({"storage": {"runs": "", "registry": "r/"}}, "storage.runs: needs a local path"),
        ({"storage": {"registry": "r/"}}, "storage.runs: required key is missing"),
        (
            {"storage": {"runs": "r/", "registry": "g/", "endpoint_url": "minio:9000"}},
            "storage.endpoint_url: 'minio:9000' must start with http://",
        ),
        (
            {"storage": {"runs": "r/", "registry": "g/", "s3_region": 5}},
            "storage.s3_region: expected str",
        ),
        ({"data": {"full": "s3:///x", "shop": "s/"}}, "data.full: 's3:///x' is not"),
        ({"data": {"full": "f/"}}, "data.shop: required key is missing"),
        ({"train": {"schedule": {"batch_size": 0}}}, "train.schedule.batch_size: must be >= 1"),
        (
            {"train": {"schedule": {"lr_global": "1e-3"}}},
            "train.schedule.lr_global: expected float",
        ),
        ({"train": {"modle": {}}}, "train.modle: unknown key (did you mean 'model'?)"),
        ({"max_failures": -2}, "max_failures: must be >= -1"),
        ({"styles": [style(), style("b2", mode="patch")]}, "styles[1].mode: 'patch' is not one"),
        (
            {"styles": [style(mode="global_only", overrides={"schedule": {"mode": "full"}})]},
            "styles[0].mode: 'global_only' conflicts with overrides.schedule.mode 'full'",
        ),
        ({"styles": [style(base_style="Bear!")]}, "styles[0].base_style: 'Bear!' is not a valid"),
        (
            {"styles": [style(), {"name": "b2", "image": "s3://b/o.jpg", "base_style": "bear"}]},
            "styles[1].image: 's3://b/o.jpg' differs from the image 's3://b/bear.jpg' of its "
            "base style",
        ),
        ({"samples": 0}, "samples: must be >= 1"),
    ],
)
def test_catalogue_errors_name_the_key(changes: dict[str, Any], message: str) -> None:
    with raises(message):
        config.catalogue_from_dict(catalogue(**changes))


def test_yaml_exponent_without_dot_gets_a_hint() -> None:
    with pytest.raises(config.ConfigError, match=r"write 1\.0e-3"):
        config.catalogue_from_dict(catalogue(train={"schedule": {"lr_patch": "1e-3"}}))


@pytest.mark.parametrize(
    "uri", ["s3://bucket/key.jpg", "s3://bucket", "file:///abs/x.jpg", "/abs/x.jpg"]
)
def test_style_image_uri_forms(uri: str) -> None:
    assert config.StyleSpec(name="s", image=uri).image == uri


def test_relative_paths_become_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Ray workers run in other folders: the driver resolves local paths once, at load."""
    monkeypatch.chdir(tmp_path)
    cat = config.catalogue_from_dict(catalogue())
    assert config.StyleSpec(name="s", image="rel/x.jpg").image == str(tmp_path / "rel/x.jpg")
    data = config.DataSources(full="d/full", shop="d/shop", masks="d/masks")
    assert (data.full, data.shop, data.masks) == tuple(
        str(tmp_path / "d" / p) for p in ("full", "shop", "masks")
    )
    store = config.StorageConfig(runs="out/runs", registry="s3://b/registry")
    assert (store.runs, store.registry) == (str(tmp_path / "out/runs"), "s3://b/registry")
    assert config.catalogue_from_dict(config.to_dict(cat)) == cat  # absolute paths stay as they are


@pytest.mark.parametrize("uri", ["", "gs://b/x.jpg", "file://host/x.jpg", "s3://", "http://x/y"])
def test_bad_style_image_uris(uri: str) -> None:
    with raises("image:"):
        config.StyleSpec(name="s", image=uri)


@pytest.mark.parametrize("name", ["a", "chinese_knot", "v-2", "0", "x" * 64])
def test_style_names(name: str) -> None:
    assert config.StyleSpec(name=name, image="x.jpg").name == name


@pytest.mark.parametrize("name", ["", "_a", "-a", "A", "a b", "a.b", "x" * 65, "a\n"])
def test_bad_style_names(name: str) -> None:
    with raises("name:"):
        config.StyleSpec(name=name, image="x.jpg")


def test_style_spec_keeps_its_own_copy_of_overrides() -> None:
    overrides: dict[str, Any] = {"loss": {"style_layers": ("relu1_1",)}}
    spec = config.StyleSpec(name="s", image="x.jpg", overrides=overrides)
    overrides["loss"]["style_weight"] = 3.0
    assert spec.overrides == {"loss": {"style_layers": ["relu1_1"]}}


@pytest.mark.parametrize(
    ("use_gpu", "cluster_gpus", "expected"),
    [("auto", 8, 0.5), ("auto", 0, 0.0), ("always", 0, 0.5), ("never", 8, 0.0)],
)
def test_worker_gpus(use_gpu: Any, cluster_gpus: float, expected: float) -> None:
    resources = config.Resources(gpus_per_worker=0.5, use_gpu=use_gpu)
    assert resources.worker_gpus(cluster_gpus) == expected


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "cat.yaml"
    path.write_text(text)
    return path


def test_load_names_the_file_and_the_key(tmp_path: Path) -> None:
    path = write(tmp_path, yaml.safe_dump(catalogue(resources={"workers_per_style": 0})))
    with raises(f"{path}: resources.workers_per_style: must be >= 1"):
        config.load_catalogue(path)


def test_yaml_syntax_error_gives_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, "name: demo\nstyles:\n  - name: bear\n   image: b.jpg\n")
    with raises(f"{path}:4:4: invalid YAML: expected <block end>"):
        config.load_catalogue(path)


def test_repeated_yaml_key_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path, "name: demo\nsamples: 2\nsamples: 3\n")
    with raises(f"{path}:3:1: invalid YAML: duplicate key 'samples'"):
        config.load_catalogue(path)


def test_missing_or_empty_file(tmp_path: Path) -> None:
    with raises(f"{tmp_path / 'nope.yaml'}: no such catalogue file"):
        config.load_catalogue(tmp_path / "nope.yaml")
    with raises(f"{tmp_path}: cannot read the catalogue file"):
        config.load_catalogue(tmp_path)
    with raises(f"{write(tmp_path, '')}: name, data, styles, storage: required key is missing"):
        config.load_catalogue(tmp_path / "cat.yaml")
    with raises(f"{write(tmp_path, '- a')}: CatalogueConfig: expected a mapping, got list"):
        config.load_catalogue(tmp_path / "cat.yaml")
