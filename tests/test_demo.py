"""The demo end to end with a seconds-long schedule, through the ``fsg`` command."""

from __future__ import annotations

import json

import pytest
import torch
from PIL import Image

from fsg_ray import algorithm as A
from fsg_ray.cli import main
from fsg_ray.models import load_vgg


@pytest.fixture(scope="module")
def demo_out(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    assert main(["demo", "--out", str(out), "--quick", "--style", "stripes"]) == 0
    return out


def test_demo_writes_every_artefact(demo_out, capsys) -> None:
    for name in ("generator.pt", "checkpoint.pt", "grid.png", "losses.png", "config.yaml"):
        assert (demo_out / name).stat().st_size > 0, name
    grid = Image.open(demo_out / "grid.png")
    assert grid.width > 4 * 160 and grid.height > 4 * 160  # 4 columns, 4 held-out garments
    assert Image.open(demo_out / "losses.png").size[0] > 300
    assert not list(demo_out.glob("**/*.tmp"))  # atomic writes leave no temporaries


def test_demo_generator_loads_and_restyles(demo_out) -> None:
    state = torch.load(demo_out / "generator.pt", weights_only=True)
    gen = A.load_generator(state, load_vgg(state["vgg_weights"]), torch.device("cpu"))
    with torch.no_grad():
        assert gen(torch.rand(1, 3, 50, 70)).shape == (1, 3, 50, 70)


def test_rerun_resumes_instead_of_retraining(demo_out, capsys) -> None:
    before = torch.load(demo_out / "checkpoint.pt", weights_only=True)
    assert main(["demo", "--out", str(demo_out), "--quick", "--style", "stripes"]) == 0
    result = json.loads(capsys.readouterr().out.splitlines()[0])
    assert result["steps"] == len(before["history"]) == 6  # nothing retrained


def test_demo_refuses_a_checkpoint_of_another_config(demo_out, capsys) -> None:
    code = main(["demo", "--out", str(demo_out), "--quick", "--style", "stripes", "--seed", "3"])
    assert code == 2
    assert "holds a run with another config" in capsys.readouterr().err


def test_unknown_style_is_rejected(tmp_path, capsys) -> None:
    with pytest.raises(SystemExit):
        main(["demo", "--out", str(tmp_path), "--style", "paisley"])
    assert "invalid choice: 'paisley'" in capsys.readouterr().err
