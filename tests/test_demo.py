"""The demo end to end with a seconds-long schedule, through the ``fsg`` command, on the
session's local Ray: two styles trained at once, published, and drawn as grids."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image

from fsg_ray import config as C
from fsg_ray import registry
from fsg_ray.cli import main
from fsg_ray.storage import Storage

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


def test_demo_trains_two_styles_and_draws_their_grids(demo_out: Path) -> None:
    for name in ("grid.png", "grid_stripes.png", "grid_waves.png", "catalogue.yaml"):
        assert (demo_out / name).stat().st_size > 0, name
    per_style = Image.open(demo_out / "grid_stripes.png")
    assert per_style.width > 4 * 160 and per_style.height > 4 * 160  # 4 columns, 4 garments
    both = Image.open(demo_out / "grid.png")
    assert both.width > 3 * 160  # input, stripes, waves
    assert not list(demo_out.glob("**/*.tmp"))  # atomic writes leave no temporaries


def test_demo_publishes_to_its_registry(demo_out: Path) -> None:
    styles = registry.list_styles(Storage(), str(demo_out / "registry"))
    assert {s: i.current for s, i in styles.items()} == {"stripes": "v1", "waves": "v1"}
    gen, version = registry.load(
        Storage(), str(demo_out / "registry"), "waves", torch.device("cpu")
    )
    assert version.metadata["timings"]["steps"] == 6
    with torch.no_grad():
        assert gen(torch.rand(1, 3, 50, 70)).shape == (1, 3, 50, 70)
    cat = C.load_catalogue(demo_out / "catalogue.yaml")  # what `fsg train` would run again
    assert [s.name for s in cat.styles] == ["stripes", "waves"]


def test_rerun_skips_the_published_styles(demo_out: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["demo", "--out", str(demo_out), "--quick"]) == 0
    out = capsys.readouterr().out
    assert out.count("skipped") == 2 and "published" not in out.split("registry:")[0]


def test_demo_refuses_runs_of_another_config(demo_out: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["demo", "--out", str(demo_out), "--quick", "--seed", "3"]) == 1
    assert "holds a published run of another config" in capsys.readouterr().out


def test_unknown_style_is_rejected(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["demo", "--out", str(tmp_path), "--styles", "stripes,paisley"]) == 2
    assert "unknown styles ['paisley']" in capsys.readouterr().err


def test_demo_keeps_data_runs_and_registry_in_a_local_s3_server(
    ray_local: None, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    assert main(["demo", "--out", str(tmp_path), "--quick", "--s3", "--styles", "dots"]) == 0
    out = capsys.readouterr().out
    assert "registry: s3://fsg-demo/registry" in out and "dots" in out
    assert (tmp_path / "grid_dots.png").stat().st_size > 0
    assert not (tmp_path / "registry").exists()  # published to the bucket, not the folder
