"""``fsg restyle`` never stops for one item nor skips a changed input: the Restyler actor run
in-process (an unwritable output, G(x) failing for a batch or an image), the done rule against
replaced inputs, the bounded manifest history, and the same end to end on the local Ray."""

from __future__ import annotations

import dataclasses
import io
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import tiny_registry

from fsg_ray.app.main import main
from fsg_ray.config import RestyleConfig
from fsg_ray.core.models import VGGWeights
from fsg_ray.distributed import restyle_plan
from fsg_ray.distributed.restyle import Restyler
from fsg_ray.distributed.restyle_plan import (
    MANIFEST_DIR,
    MANIFEST_HISTORY,
    OK,
    InputPlan,
    Row,
    Target,
    fold_into_history,
    plan,
    read_history,
    settings_for,
)
from fsg_ray.io import synthetic
from fsg_ray.io.storage import Storage, StorageError
from fsg_ray.io.uri import join

STYLES = ("dots", "stripes")


@pytest.fixture(scope="module")
def reg(vgg: VGGWeights, tmp_path_factory: pytest.TempPathFactory) -> str:
    return tiny_registry(
        str(tmp_path_factory.mktemp("registry")), vgg, STYLES, {"final_losses": {}}
    )


def garment_bytes(seed: int, size: int = 48) -> bytes:
    img, _ = synthetic.garment(seed, size)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def restyler(reg: str, out: Path, names: list[str]) -> tuple[Restyler, dict[str, Any]]:
    """An actor built as Ray Data builds it, and a batch of ``names`` (PNG garments)."""
    cfg = RestyleConfig(reg, str(out.parent / "in"), str(out), masks="none")
    plans = {
        name: InputPlan(
            f"in/{name}.png",
            None,
            tuple(Target(s, join(str(out), s, f"{name}.png")) for s in STYLES),
        )
        for name in names
    }
    actor = Restyler(
        registry_uri=reg,
        versions={s: "v1" for s in STYLES},
        settings=dataclasses.asdict(settings_for(cfg)),
        storage_options={},
        plans=plans,
    )
    batch = {
        "bytes": np.array([garment_bytes(i) for i in range(len(names))], dtype=object),
        "path": np.array(names, dtype=object),
    }
    return actor, batch


def by_output(table: pa.Table) -> dict[str, dict[str, Any]]:
    return {
        Path(r["output"]).parent.name + "/" + Path(r["output"]).name: r for r in table.to_pylist()
    }


def test_an_unwritable_output_fails_its_rows_only(reg: str, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "dots").write_bytes(b"a file where the style's folder should be")  # root-proof
    actor, batch = restyler(reg, out, ["a", "b"])
    rows = by_output(actor(batch))
    assert {k: r["status"] for k, r in rows.items()} == {
        "dots/a.png": "failed",
        "dots/b.png": "failed",
        "stripes/a.png": "ok",
        "stripes/b.png": "ok",
    }
    assert rows["dots/a.png"]["reason"].startswith("write: ")
    assert "dots" in rows["dots/a.png"]["reason"]


def test_a_failed_batch_is_retried_image_by_image(
    reg: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    actor, batch = restyler(reg, tmp_path / "out", ["a", "b", "c"])
    bank = type(actor.bank)  # a frozen dataclass: patch its class
    run, calls = bank.run, []

    def out_of_memory_for_batches(self: Any, images: np.ndarray, *args: Any) -> Any:
        calls.append(len(images))
        if len(images) > 1:
            raise RuntimeError("CUDA out of memory (simulated)")
        if images[0].tobytes() == batch_image(batch, 1):
            raise ValueError("this one image breaks G")
        return run(self, images, *args)

    monkeypatch.setattr(bank, "run", out_of_memory_for_batches)
    rows = by_output(actor(batch))
    assert calls == [3, 1, 1, 1]
    assert {k: r["status"] for k, r in rows.items()} == {
        f"{s}/{n}.png": "failed" if n == "b" else "ok" for s in STYLES for n in "abc"
    }
    assert rows["dots/b.png"]["reason"] == "G(x): ValueError: this one image breaks G"
    assert (tmp_path / "out" / "stripes" / "c.png").exists()


def batch_image(batch: dict[str, Any], i: int) -> bytes:
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(batch["bytes"][i])).convert("RGB")).tobytes()


# ---------------------------------------------------------------- the done rule


def done_rows(p: restyle_plan.Plan) -> list[Row]:
    """Rows saying every output of a plan was made (as the actors would report them)."""
    rows = []
    for item in p.todo:
        for t in item.targets:
            row = Row(item.uri, t.style, OK, "", t.output, p.versions[t.style], "", 48, 48, 0.1)
            rows.append(row._replace(settings=p.settings.fingerprint, input_id=item.identity))
    return rows


def make_outputs(p: restyle_plan.Plan) -> None:
    for item in p.todo:
        for t in item.targets:
            Path(t.output).parent.mkdir(parents=True, exist_ok=True)
            Path(t.output).write_bytes(b"made")


def test_a_replaced_input_or_a_new_one_taking_the_stem_is_redone(reg: str, tmp_path: Path) -> None:
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    for i, name in enumerate(["a.jpg", "b.png", "c.png"]):
        (src / name).write_bytes(garment_bytes(i))
    cfg = RestyleConfig(reg, str(src), str(out), masks="none")
    storage = Storage()
    first = plan(cfg, storage)
    make_outputs(first)
    fold_into_history(storage, str(out), first.run_id, done_rows(first))
    assert plan(cfg, storage).todo == (), "nothing changed: everything is done"
    (src / "b.png").write_bytes(garment_bytes(7))  # replaced under the same name
    os.utime(src / "b.png", ns=(1, 1))  # even with an mtime that went back
    (src / "a.jpg").unlink()
    (src / "a.jpeg").write_bytes(garment_bytes(0))  # same stem, another file
    again = plan(cfg, storage)
    redo = sorted((Path(i.uri).name, t.style) for i in again.todo for t in i.targets)
    assert redo == [(n, s) for n in ("a.jpeg", "b.png") for s in STYLES]
    assert {Path(r.input).name for r in again.decided if r.status == "skipped"} == {"c.png"}


def test_history_is_bounded_and_keeps_the_latest_row_of_every_output(tmp_path: Path) -> None:
    storage, out = Storage(), str(tmp_path / "out")
    runs = MANIFEST_HISTORY + 5
    for n in range(runs):
        run_id = f"20260101T0000{n:02d}000000Z-run"
        # Each run makes output n (only it) and remakes output "all" at version n.
        rows = [
            Row(f"in/{n}", "s", OK, "", f"{out}/s/{n}.png", "v1", "f", 1, 1, 0.0, "id"),
            Row("in/all", "s", OK, "", f"{out}/s/all.png", f"v{n}", "f", 1, 1, 0.0, "id"),
        ]
        storage.write_bytes(
            join(out, MANIFEST_DIR, f"{run_id}.parquet"), restyle_plan.manifest_bytes(rows)
        )
        fold_into_history(storage, out, run_id, rows)
    manifests = storage.list_files(join(out, MANIFEST_DIR))
    assert len(manifests) == MANIFEST_HISTORY
    assert manifests[-1].endswith(f"{runs - 1:02d}000000Z-run.parquet")
    history = read_history(storage, out)
    assert len(history) == runs + 1 and history[f"{out}/s/all.png"].version == f"v{runs - 1}"
    assert history[f"{out}/s/0.png"].input == "in/0", "rows of pruned runs are kept"
    # A run killed before folding: its manifest, newer than the history, still counts.
    late = Row("in/0", "s", OK, "", f"{out}/s/0.png", "v9", "f", 1, 1, 0.0, "id2")
    storage.write_bytes(
        join(out, MANIFEST_DIR, "20270101T000000000000Z-late.parquet"),
        restyle_plan.manifest_bytes([late]),
    )
    assert read_history(storage, out)[f"{out}/s/0.png"] == late


def test_manifests_from_before_input_ids_are_read_as_never_done(tmp_path: Path) -> None:
    storage, out = Storage(), str(tmp_path / "out")
    old = pa.table(
        {
            **{k: ["x"] for k in ("input", "style", "status", "reason", "version", "settings")},
            "output": [f"{out}/s/x.png"],
            "width": pa.array([1], pa.int32()),
            "height": pa.array([1], pa.int32()),
            "seconds": [0.0],
        }
    )
    buf = io.BytesIO()
    pq.write_table(old, buf)
    storage.write_bytes(
        join(out, MANIFEST_DIR, "20250101T000000000000Z-old.parquet"), buf.getvalue()
    )
    assert read_history(storage, out)[f"{out}/s/x.png"].input_id == ""


def test_a_failing_history_fold_does_not_fail_the_run(
    reg: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fsg_ray.distributed import restyle

    src = tmp_path / "in"
    src.mkdir()
    (src / "a.png").write_bytes(b"not an image")
    p = plan(RestyleConfig(reg, str(src), str(tmp_path / "out"), masks="none"), Storage())
    p = dataclasses.replace(p, todo=(), decided=done_rows(p))

    def broken(*args: Any) -> None:
        raise StorageError("history: disk full")

    monkeypatch.setattr(restyle, "fold_into_history", broken)
    result = restyle.execute(p, Storage())
    assert result.counts["ok"] == 2 and Path(result.manifest).exists()


# ---------------------------------------------------------------- end to end on Ray


@pytest.mark.ray
def test_job_goes_on_past_an_unwritable_style_and_redoes_a_replaced_photo(
    ray_local: None, reg: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    for i in range(3):
        (src / f"{i}.png").write_bytes(garment_bytes(i))
    out.mkdir()
    (out / "dots").write_bytes(b"not a folder")
    args = ["restyle", "--registry", reg, "--styles", "all", "--input", str(src)]
    args += ["--output", str(out), "--masks", "none"]
    assert main(args) == 1  # failures, but the job finished
    assert "ok 3, skipped 0, failed 3" in capsys.readouterr().out
    (out / "dots").unlink()
    assert main(args) == 0
    assert "ok 3, skipped 3, failed 0" in capsys.readouterr().out
    shutil.copy(src / "0.png", tmp_path / "keep.png")
    (src / "1.png").write_bytes(garment_bytes(9))
    assert main(args) == 0
    assert "ok 2, skipped 4, failed 0" in capsys.readouterr().out
    shutil.rmtree(out / MANIFEST_DIR)
    (out / restyle_plan.HISTORY).unlink()  # no manifest: the files' tags decide
    (src / "2.png").write_bytes(garment_bytes(10))
    assert main(args) == 0
    assert "ok 2, skipped 4, failed 0" in capsys.readouterr().out
