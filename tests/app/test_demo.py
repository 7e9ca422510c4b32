"""The demo end to end with a seconds-long schedule, through the ``fsg`` command, on the
session's local Ray: a style and its two ablations trained at once, published, drawn as
grids, and compared by ``fsg eval``."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import pytest
import torch
from PIL import Image

from fsg_ray import config
from fsg_ray.app import evaluate
from fsg_ray.app.demo import run_demo
from fsg_ray.app.main import main
from fsg_ray.distributed import session, trainer
from fsg_ray.io import registry
from fsg_ray.io.storage import Storage

pytestmark = pytest.mark.ray


@pytest.fixture(scope="module")
def demo_out(ray_local: None, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("demo")
    # A relative --out, as in the README: Ray workers run in other folders, so every path
    # must be made absolute before it reaches them.
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(out.parent)
        assert main(["demo", "--out", out.name, "--quick"]) == 0
    return out


ENTRIES = ("stripes", "stripes-feeds", "stripes-mgan")


def test_demo_trains_a_style_and_its_ablations_and_draws_their_grids(demo_out: Path) -> None:
    for name in ("grid.png", *(f"grid_{e}.png" for e in ENTRIES), "catalogue.yaml"):
        assert (demo_out / name).stat().st_size > 0, name
    per_style = Image.open(demo_out / "grid_stripes-mgan.png")
    assert per_style.width > 4 * 160 and per_style.height > 4 * 160  # 4 columns, 4 garments
    together = Image.open(demo_out / "grid.png")
    assert together.width > 4 * 160  # input and the three entries
    assert not list(demo_out.glob("**/*.tmp"))  # atomic writes leave no temporaries


def test_demo_publishes_every_mode_with_its_mode_and_base_style(demo_out: Path) -> None:
    reg = str(demo_out / "registry")
    styles = registry.list_styles(Storage(), reg)
    assert {s: i.current for s, i in styles.items()} == {e: "v1" for e in ENTRIES}
    modes = [styles[e].versions["v1"].mode for e in ENTRIES]  # what `fsg styles` shows
    assert modes == ["full", "global_only", "patch_only"]
    found = registry.modes(Storage(), reg, "stripes")
    assert [(f.style, f.metadata["mode"], f.metadata["base_style"]) for f in found] == [
        ("stripes", "full", "stripes"),
        ("stripes-feeds", "global_only", "stripes"),
        ("stripes-mgan", "patch_only", "stripes"),
    ]
    assert [f.metadata["timings"]["steps"] for f in found] == [10, 10, 10]  # the same budget
    gen, _ = registry.load(Storage(), reg, "stripes-feeds", torch.device("cpu"))
    with torch.no_grad():
        assert gen(torch.rand(1, 3, 50, 70)).shape == (1, 3, 50, 70)
    cat = config.load_catalogue(demo_out / "catalogue.yaml")  # what `fsg train` would run again
    assert [s.name for s in cat.styles] == list(ENTRIES)
    assert cat.style_config("stripes-mgan").schedule.mode == "patch_only"


def test_fsg_eval_on_the_demo_registry_writes_the_sheet_and_the_table(
    demo_out: Path, capsys: pytest.CaptureFixture
) -> None:
    data, out = demo_out / "data", demo_out / "eval"
    args = ["eval", "--registry", str(demo_out / "registry"), "--style", "stripes"]
    args += ["--images", str(data / "heldout"), "--masks", str(data / "heldout_masks")]
    assert main([*args, "--gatys-iters", "1", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "| stripes-mgan v1 | patch_only |" in printed and f"wrote {out}/sheet.png" in printed
    sheet = Image.open(out / evaluate.SHEET)
    assert sheet.width > 6 * 160 and sheet.height > 4 * 160  # 6 columns, 4 garments
    report = json.loads((out / evaluate.METRICS_JSON).read_text())
    assert [m["method"] for m in report["methods"]] == ["input", *ENTRIES, "gatys"]
    assert (out / evaluate.METRICS_MD).read_text().count("\n| ") == 6


def test_rerun_skips_the_published_styles(demo_out: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["demo", "--out", str(demo_out), "--quick"]) == 0
    out = capsys.readouterr().out
    assert out.count("skipped") == 3 and "published" not in out.split("registry:")[0]


def test_demo_refuses_runs_of_another_config(demo_out: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["demo", "--out", str(demo_out), "--quick", "--seed", "3"]) == 1
    assert "holds a published run of another config" in capsys.readouterr().out


def test_unknown_style_is_rejected(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["demo", "--out", str(tmp_path), "--styles", "stripes,paisley"]) == 2
    assert "unknown styles ['paisley']" in capsys.readouterr().err
    assert main(["demo", "--out", str(tmp_path), "--ablations", "waves"]) == 2
    assert "cannot ablate ['waves']: not among the styles ['stripes']" in capsys.readouterr().err


def test_demo_keeps_data_runs_and_registry_in_a_local_s3_server(
    ray_local: None, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    args = ["--quick", "--s3", "--styles", "dots", "--ablations", "none"]
    assert main(["demo", "--out", str(tmp_path), *args]) == 0
    out = capsys.readouterr().out
    assert "registry: s3://fsg-demo/registry" in out and "dots" in out
    assert (tmp_path / "grid_dots.png").stat().st_size > 0
    assert not (tmp_path / "registry").exists()  # published to the bucket, not the folder


def test_a_relative_out_reaches_the_ray_workers_as_an_absolute_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: dict[str, config.CatalogueConfig] = {}

    def train(cat: config.CatalogueConfig, storage: Storage) -> list[trainer.StyleResult]:
        seen["cat"] = cat
        return []

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(session, "ray_session", lambda **_: contextlib.nullcontext())
    monkeypatch.setattr(trainer, "train_catalogue", train)
    run_demo(Path("rel"), quick=True, num_cpus=2)
    cat = seen["cat"]
    assert 0 < 3 * cat.resources.cpus_per_worker <= 2  # all three entries train at once
    assert cat.storage.registry == str(tmp_path / "rel" / "registry")
    assert [s.image for s in cat.styles] == [str(tmp_path / "rel/data/styles/stripes.png")] * 3
