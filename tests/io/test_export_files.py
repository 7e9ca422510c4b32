"""``export_style``: the model file and its model card, written beside it; clear errors for a
bad style, version, format, file name or target."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch
from conftest import tiny_registry

from fsg_ray.core.inference import run_styles
from fsg_ray.core.models import VGGWeights
from fsg_ray.io import registry
from fsg_ray.io.export import card_uris, check_out, export_style
from fsg_ray.io.storage import Storage, StorageError

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def reg(vgg: VGGWeights, tmp_path_factory: pytest.TempPathFactory) -> str:
    """``dots`` with two versions."""
    return tiny_registry(
        str(tmp_path_factory.mktemp("registry")), vgg, ("dots", "dots"), {"note": "x"}
    )


def test_export_writes_the_model_and_its_card(reg: str, vgg: VGGWeights, tmp_path: Path) -> None:
    out = str(tmp_path / "exports" / "dots.onnx")
    done = export_style(Storage(), reg, "dots", "v1", "onnx", out)
    assert (done.model, done.card_json, done.card_md) == (
        out,
        str(tmp_path / "exports" / "dots.card.json"),
        str(tmp_path / "exports" / "dots.card.md"),
    )
    card = json.loads(Path(done.card_json).read_text())
    assert card == done.card
    assert (card["style"], card["version"], card["format"], card["opset"]) == (
        "dots",
        "v1",
        "onnx",
        17,
    )
    assert card["vgg_weights"] == "random:0" and card["vgg_fingerprint"] == vgg.fingerprint
    assert card["input"]["dtype"] == card["output"]["dtype"] == "uint8"
    assert card["torch_version"] == torch.__version__
    assert card["generator_output"] == "image"  # no config in this metadata: the paper's
    assert "# Fashion Style Generator: dots v1" in Path(done.card_md).read_text()
    batch = np.random.default_rng(0).integers(0, 256, (2, 19, 30, 3), dtype=np.uint8)
    (got,) = ort.InferenceSession(out, providers=["CPUExecutionProvider"]).run(
        None, {"image": batch}
    )
    gen, _ = registry.load(Storage(), reg, "dots", CPU, "v1")
    want = run_styles({"d": gen}, batch, {"d": [0, 1]}, CPU)["d"]
    assert np.abs(got.astype(int) - want).max() <= 1


def test_export_to_s3_with_torchscript(reg: str, s3_server: str, s3_bucket: str) -> None:
    from fsg_ray.config import StorageOptions

    storage = Storage(StorageOptions(endpoint_url=s3_server))
    out = f"{s3_bucket}/exports/dots.pt"
    done = export_style(storage, reg, "dots", None, "torchscript", out)
    assert done.card["version"] == "v2" and done.card["opset"] is None
    assert storage.read_bytes(out)[:2] == b"PK"  # TorchScript files are zip archives
    assert json.loads(storage.read_bytes(f"{s3_bucket}/exports/dots.card.json"))["style"] == "dots"


def test_unknown_style_or_version_is_named(reg: str, tmp_path: Path) -> None:
    out = str(tmp_path / "x.onnx")
    with pytest.raises(registry.StyleNotFound, match="no style 'waves'.*known styles: dots"):
        export_style(Storage(), reg, "waves", None, "onnx", out)
    with pytest.raises(registry.VersionNotFound, match="no version 'v9'.*published: v1, v2"):
        export_style(Storage(), reg, "dots", "v9", "onnx", out)
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize(
    ("out", "fmt", "message"),
    [
        ("a.onnx", "tflite", "unknown export format 'tflite'"),
        ("a.pt", "onnx", "must end in .onnx"),
        ("a.onnx", "torchscript", "must end in .pt"),
        ("exports/.onnx", "onnx", "must end in .onnx"),
    ],
)
def test_bad_format_or_file_name_is_refused_before_any_work(
    out: str, fmt: str, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        check_out(out, fmt)


def test_an_unwritable_target_raises_a_storage_error(reg: str, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(StorageError, match="cannot write .*dots.onnx"):
        export_style(Storage(), reg, "dots", None, "onnx", str(blocker / "dots.onnx"))


def test_card_uris_replace_the_format_suffix() -> None:
    assert card_uris("s3://b/m/dots.v1.onnx", "onnx") == (
        "s3://b/m/dots.v1.card.json",
        "s3://b/m/dots.v1.card.md",
    )


def test_a_downscaled_export_says_so_on_its_card_and_runs_as_restyle_does(
    reg: str, tmp_path: Path
) -> None:
    out = str(tmp_path / "dots.onnx")
    done = export_style(Storage(), reg, "dots", "v2", "onnx", out, downscale=2)
    assert done.card["downscale"] == 2 and "multiples of 16" in done.card["padding"]
    assert "shrunk 2 times" in Path(done.card_md).read_text()
    batch = np.random.default_rng(1).integers(0, 256, (1, 37, 21, 3), dtype=np.uint8)
    (got,) = ort.InferenceSession(out, providers=["CPUExecutionProvider"]).run(
        None, {"image": batch}
    )
    gen, _ = registry.load(Storage(), reg, "dots", CPU, "v2")
    want = run_styles({"d": gen}, batch, {"d": [0]}, CPU, downscale=2)["d"]
    assert np.abs(got.astype(int) - want).max() <= 1


@pytest.mark.parametrize("bad", [0, 9, 2.0])
def test_a_bad_downscale_is_refused_before_any_work(reg: str, tmp_path: Path, bad: object) -> None:
    with pytest.raises(ValueError, match="--downscale .*: must be an integer from 1 to 8"):
        export_style(Storage(), reg, "dots", None, "onnx", str(tmp_path / "d.onnx"), bad)  # type: ignore[arg-type]
    assert not list(tmp_path.iterdir())
