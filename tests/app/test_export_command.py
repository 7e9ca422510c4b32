"""``fsg export`` end to end, and the ONNX Runtime script of docs/export.md run on its file."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import tiny_state
from PIL import Image

from fsg_ray.app.main import main
from fsg_ray.core.models import VGGWeights
from fsg_ray.io import registry
from fsg_ray.io.generators import StyleBank
from fsg_ray.io.images import decode_image
from fsg_ray.io.storage import Storage

DOC = Path(__file__).resolve().parents[2] / "docs" / "export.md"


@pytest.fixture(scope="module")
def reg(vgg: VGGWeights, tmp_path_factory: pytest.TempPathFactory) -> str:
    uri = str(tmp_path_factory.mktemp("registry"))
    registry.publish(Storage(), uri, "dots", tiny_state(vgg, 2), {})
    return uri


def doc_script() -> str:
    """The one python block of docs/export.md."""
    (block,) = re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)
    return block


def test_the_docs_script_restyles_a_garment_like_the_restyle_job(reg: str, tmp_path: Path) -> None:
    model = tmp_path / "dots.onnx"
    assert main(["export", "--registry", reg, "--style", "dots", "--out", str(model)]) == 0
    assert len(doc_script().strip().splitlines()) <= 12  # "a 10-line script": 10 code lines
    script = tmp_path / "restyle_onnx.py"
    script.write_text(doc_script())
    photo = np.random.default_rng(3).integers(0, 256, (45, 61, 3), dtype=np.uint8)
    Image.fromarray(photo).save(tmp_path / "shirt.png")
    subprocess.run(
        [
            sys.executable,
            str(script),
            str(model),
            str(tmp_path / "shirt.png"),
            str(tmp_path / "o.png"),
        ],
        check=True,
    )
    got = np.asarray(Image.open(tmp_path / "o.png"))
    bank = StyleBank.load(Storage(), reg, {"dots": "v1"}, torch.device("cpu"))
    decoded = decode_image((tmp_path / "shirt.png").read_bytes(), name="shirt.png")
    want = bank.run(np.asarray(decoded)[None], {"dots": [0]}, torch.device("cpu"))["dots"][0]
    assert got.shape == want.shape and np.abs(got.astype(int) - want).max() <= 1


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--style", "waves", "--out", "x.onnx"], "no style 'waves'"),
        (["--style", "dots", "--version", "v7", "--out", "x.onnx"], "no version 'v7'"),
        (["--style", "dots", "--out", "x.pt"], "must end in .onnx"),
        (["--style", "dots", "--version", "7", "--out", "x.onnx"], "bad version '7'"),
        (["--style", "dots", "--downscale", "0", "--out", "x.onnx"], "--downscale 0: must be"),
    ],
)
def test_bad_arguments_exit_2_with_the_reason(
    reg: str, argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["export", "--registry", reg, *argv]) == 2
    assert message in capsys.readouterr().err


def test_unwritable_out_exits_2(
    reg: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "f").write_text("")
    out = str(tmp_path / "f" / "x.onnx")
    assert main(["export", "--registry", reg, "--style", "dots", "--out", out]) == 2
    assert f"fsg export: error: cannot write {out}" in capsys.readouterr().err


def test_bad_format_is_an_argparse_error(reg: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        main(["export", "--registry", reg, "--style", "dots", "--format", "tflite", "--out", "x"])
    assert e.value.code == 2 and "invalid choice: 'tflite'" in capsys.readouterr().err
