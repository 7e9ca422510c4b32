"""The catalogue on Ray Train: styles trained at once, a killed worker, a missing style image,
reruns, local storage and the local S3 server.

Each catalogue run starts real TorchTrainers (tens of seconds on 2 CPUs), so one run per
storage kind is shared by the tests of that kind.
"""

from __future__ import annotations

import dataclasses
import functools
import io
import json
import os
import time
from pathlib import Path
from typing import Any

import pytest
import torch
from conftest import small_dataset, tiny_config

from fsg_ray import config
from fsg_ray.config import StorageOptions
from fsg_ray.core import algorithm
from fsg_ray.distributed import trainer
from fsg_ray.io import registry
from fsg_ray.io.storage import Storage
from fsg_ray.io.uri import join

pytestmark = pytest.mark.ray

TOTAL = 6 + 8 + 4  # GAN init, global, patch steps of the tiny schedule
FAIL_AT, CHECKPOINT_EVERY = 11, 5


def catalogue_config(
    tiny: config.TrainConfig,
    data: str,
    out: str,
    styles: dict[str, str],
    endpoint: str | None = None,
) -> config.CatalogueConfig:
    train = config.override(
        tiny,
        schedule={
            "gan_init_steps": 6,
            "global_steps": 8,
            "patch_steps": 4,
            "checkpoint_every": CHECKPOINT_EVERY,
            "sample_every": 9,
        },
    )
    return config.catalogue_from_dict(
        {
            "name": "cat",
            "data": {
                "full": join(data, "full"),
                "shop": join(data, "shop"),
                "masks": join(data, "shop_masks"),
            },
            "styles": [{"name": n, "image": uri} for n, uri in styles.items()],
            "train": config.to_dict(train),
            "resources": {"cpus_per_worker": 0.5, "use_gpu": "never"},
            "storage": {
                "runs": join(out, "runs"),
                "registry": join(out, "registry"),
                "endpoint_url": endpoint,
            },
            "max_failures": 1,
            "samples": 2,
        }
    )


def kill_once(marker: Path, style: str, info: algorithm.StepInfo) -> None:
    """The ``on_step`` hook: ends the stripes worker's process at step FAIL_AT, as a lost node
    would, the first time only (``marker`` remembers it across the restarted worker)."""
    if style == "stripes" and info.done == FAIL_AT and not marker.exists():
        marker.touch()
        os._exit(1)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return small_dataset(tmp_path_factory.mktemp("catalogue-data"), seed=1, n_full=8)


@pytest.fixture(scope="module")
def local_run(
    ray_local: None, dataset: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    """stripes (its worker killed once at step FAIL_AT), dots, and ghost (no style image)."""
    out = str(tmp_path_factory.mktemp("catalogue-out"))
    killed = tmp_path_factory.mktemp("hooks") / "killed"
    styles = {
        "stripes": str(dataset / "styles/stripes.png"),
        "dots": str(dataset / "styles/dots.png"),
        "ghost": str(dataset / "styles/ghost.png"),
    }
    cat = catalogue_config(tiny_config(), str(dataset), out, styles)
    storage = Storage()
    hook = functools.partial(kill_once, killed)
    results = trainer.train_catalogue(cat, storage, on_step=hook)
    assert killed.exists()  # the hook ran in the worker, and killed it
    return {"cat": cat, "storage": storage, "results": {r.style: r for r in results}}


def _checkpoint(storage: Storage, cat: config.CatalogueConfig, style: str) -> dict[str, Any]:
    raw = storage.read_bytes(join(trainer.run_uri(cat, style), trainer.CHECKPOINT))
    return dict(torch.load(io.BytesIO(raw), map_location="cpu", weights_only=True))


def test_styles_train_concurrently_and_publish(local_run: dict[str, Any]) -> None:
    cat, storage, results = local_run["cat"], local_run["storage"], local_run["results"]
    for style in ("stripes", "dots"):
        r = results[style]
        assert (r.status, r.steps, r.version) == ("published", TOTAL, "v1"), r
        assert set(r.final_losses) >= {"global_style", "global_content", "patch", "gan_d"}
        gen, published = registry.load(storage, cat.storage.registry, style, torch.device("cpu"))
        assert published.metadata["final_losses"] == r.final_losses
        assert published.metadata["config"] == config.to_dict(cat.style_config(style))
        assert gen(torch.rand(1, 3, 40, 56)).shape == (1, 3, 40, 56)
        run = trainer.run_uri(cat, style)
        files = storage.list_files(run)
        assert join(run, "samples/step_000009.png") in files
        assert join(run, "losses.png") in files
    assert set(registry.list_styles(storage, cat.storage.registry)) == {"stripes", "dots"}


def test_a_killed_worker_resumes_from_its_checkpoint(local_run: dict[str, Any]) -> None:
    cat, storage = local_run["cat"], local_run["storage"]
    state = _checkpoint(storage, cat, "stripes")
    last_checkpoint = FAIL_AT // CHECKPOINT_EVERY * CHECKPOINT_EVERY
    assert state["starts"] == [0, last_checkpoint]  # killed at step 11, restarted from 10
    assert len(state["history"]) == TOTAL  # steps 11.. were redone once, counted once
    phases = [h["phase"] for h in state["history"]]
    assert phases == sorted(phases)  # GAN, then global, then patch: numbering continuous
    assert _checkpoint(storage, cat, "dots")["starts"] == [0]


def test_a_missing_style_image_fails_that_style_alone(local_run: dict[str, Any]) -> None:
    ghost = local_run["results"]["ghost"]
    assert ghost.status == "failed" and "style image" in ghost.error and "ghost.png" in ghost.error
    table = trainer.format_summary(list(local_run["results"].values()))
    assert "ghost" in table and "failed: style image" in table and "v1" in table


def test_a_rerun_skips_the_published_styles(local_run: dict[str, Any]) -> None:
    cat, storage = local_run["cat"], local_run["storage"]
    again = trainer.train_catalogue(cat, storage, styles=["stripes", "dots"])
    assert [(r.style, r.status, r.version, r.steps) for r in again] == [
        ("stripes", "skipped", "v1", TOTAL),
        ("dots", "skipped", "v1", TOTAL),
    ]
    assert registry.resolve(storage, cat.storage.registry, "stripes").version == "v1"


def test_data_report_is_written_beside_the_runs(local_run: dict[str, Any]) -> None:
    cat, storage = local_run["cat"], local_run["storage"]
    report = json.loads(storage.read_bytes(join(trainer.run_uri(cat), "data_report.json")))
    assert report == {"inputs": 6 + 3, "good": 9, "bad": 0, "bad_files": []}  # 2 held out


def alive_train_actors() -> list[str]:
    """Class names of the live actors Ray Train and Ray Data start for one trainer."""
    from ray._private import state  # the GCS actor table; the state API needs a dashboard

    kinds = ("TrainController", "DatasetManager", "SplitCoordinator")
    table = state.actors(actor_state_name="ALIVE").values()
    return [a["ActorClassName"] for a in table if a["ActorClassName"].endswith(kinds)]


def test_no_trainer_actor_outlives_its_style(local_run: dict[str, Any]) -> None:
    """A long-lived cluster that trains catalogue after catalogue gathers no idle actors."""
    deadline = time.monotonic() + 60  # the task's worker exits, then its actors are ended
    while (left := alive_train_actors()) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert left == []


def test_styles_train_on_the_local_s3_server(
    ray_local: None, dataset: Path, s3_server: str, s3_bucket: str
) -> None:
    storage = Storage(StorageOptions(endpoint_url=s3_server, region="us-east-1"))
    data_uri = join(s3_bucket, "data")
    for path in storage.list_files(str(dataset)):
        storage.copy(path, join(data_uri, path[len(str(dataset)) + 1 :]))
    # One style: styles training at once are local_run's; here data, runs and registry are
    # in the bucket (concurrent publishers on S3: tests/io/test_publish_race.py).
    styles = {"dots": join(data_uri, "styles/dots.png")}
    cat = catalogue_config(tiny_config(), data_uri, s3_bucket, styles, endpoint=s3_server)
    cat = dataclasses.replace(cat, storage=dataclasses.replace(cat.storage, s3_region="us-east-1"))
    results = trainer.train_catalogue(cat)
    assert [(r.style, r.status, r.version) for r in results] == [("dots", "published", "v1")]
    assert storage.exists(join(s3_bucket, "registry/dots/v1/generator.pt"))
    assert storage.exists(join(s3_bucket, "runs/cat/dots/checkpoint.pt"))


def test_two_workers_train_one_style_data_parallel(
    ray_local: None, dataset: Path, tmp_path: Path
) -> None:
    """workers_per_style = 2: each worker reads its shard, gradients are averaged."""
    styles = {"dots": str(dataset / "styles/dots.png")}
    cat = catalogue_config(tiny_config(), str(dataset), str(tmp_path), styles)
    cat = dataclasses.replace(
        cat, resources=dataclasses.replace(cat.resources, workers_per_style=2)
    )
    [result] = trainer.train_catalogue(cat, Storage())
    assert (result.status, result.steps, result.version) == ("published", TOTAL, "v1"), result


def test_every_data_set_is_decoded_before_the_first_trainer_starts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A started trainer holds its CPUs; decoding a later data set would wait for them.
    cat = catalogue_config(tiny_config(), str(tmp_path), str(tmp_path / "out"), {"a": "a.png"})
    cat = config.catalogue_from_dict(
        {
            **config.to_dict(cat),
            "styles": [
                {"name": "a", "image": "a.png"},
                {"name": "b", "image": "b.png", "overrides": {"schedule": {"seed": 7}}},
                {"name": "c", "image": "c.png"},
            ],
        }
    )
    events: list[str] = []

    def prepare(cat: Any, storage: Any, cfg: config.TrainConfig) -> tuple[Any, list[Any]]:
        events.append(f"decode seed {cfg.schedule.seed}")
        report = trainer.inputs.DataReport(1, 1, ())
        full = f"full{cfg.schedule.seed}"  # a stand-in: the fake trainer only passes it on
        return trainer.data.TrainingData(full, "patches", report), []  # type: ignore[arg-type]

    class FitStyle:
        @staticmethod
        def remote(job: dict[str, Any], full: str, patches: str) -> str:
            events.append(f"train {job['style']} on {full}")
            return job["style"]

    monkeypatch.setattr(trainer, "_prepare_data", prepare)
    monkeypatch.setattr(trainer, "_fit_style", FitStyle)
    pending = trainer._launch(cat, Storage(), list(cat.styles), on_step=None)
    seed = cat.train.schedule.seed
    assert events == [
        f"decode seed {seed}",
        "decode seed 7",
        f"train a on full{seed}",
        "train b on full7",
        f"train c on full{seed}",
    ]
    assert pending == {"a": "a", "b": "b", "c": "c"}
