"""Inputs of the pipelines without Ray: prefixes and manifests listed with their masks, errors
naming the URI, style images from any storage; local and S3 alike."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
import torch

from fsg_ray.io import inputs
from fsg_ray.io.storage import NotFound, Storage
from fsg_ray.io.uri import join, relative

SOURCES = ["local", "s3"]
STYLE_SIZE = 48


def rel(uri: str, roots: dict[str, str]) -> str:
    return next(relative(uri, r) for r in roots.values() if uri.startswith(r))


def _write_table(columns: dict[str, list[Any]], path: Path) -> None:
    table = pa.table(columns)
    if path.suffix == ".csv":
        pacsv.write_csv(table, path)
    else:
        pq.write_table(table, path)


@pytest.mark.parametrize("source", SOURCES)
def test_prefix_lists_images_sorted_and_matches_masks_by_stem(
    source: str, roots: dict[str, str], storage: Storage
) -> None:
    root = roots[source]
    shop = inputs.list_inputs(join(root, "shop"), storage, join(root, "shop_masks"))
    names = ["000000", "000001", "000002", "broken", "wide"]
    assert [i.id for i in shop] == list(range(5))
    assert [rel(i.uri, roots) for i in shop] == [f"shop/{n}.jpg" for n in names]
    masks = [rel(i.mask, roots) if i.mask else None for i in shop]
    assert masks == [f"shop_masks/{n}.png" for n in names[:3]] + [None, None]
    full = inputs.list_inputs(join(root, "full"), storage)
    assert len(full) == 14 and not any(i.uri.endswith("README.txt") for i in full)


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_manifest_rows_resolve_relative_entries(
    suffix: str, data_root: Path, storage: Storage
) -> None:
    absolute = str(data_root / "shop" / "wide.jpg")
    table = {"image": ["shop/000001.jpg", absolute], "mask": ["shop_masks/000001.png", None]}
    manifest = data_root / f"manifest{suffix}"
    _write_table(table, manifest)
    try:
        got = inputs.list_inputs(str(manifest), storage)
    finally:
        manifest.unlink()
    assert got == [
        inputs.Input(
            0,
            join(str(data_root), "shop/000001.jpg"),
            join(str(data_root), "shop_masks/000001.png"),
        ),
        inputs.Input(1, absolute, None),
    ]


def test_bad_manifests_are_rejected_naming_the_manifest(tmp_path: Path, storage: Storage) -> None:
    twice = tmp_path / "twice.csv"
    twice.write_text("image\na.jpg\na.jpg\n")
    with pytest.raises(ValueError, match=r"twice.csv: lists .*a.jpg twice"):
        inputs.list_inputs(str(twice), storage)
    no_image = tmp_path / "cols.csv"
    no_image.write_text("path\na.jpg\n")
    with pytest.raises(ValueError, match=r"cols.csv: manifest has no 'image' column"):
        inputs.list_inputs(str(no_image), storage)
    with pytest.raises(ValueError, match="names its masks in a 'mask' column"):
        inputs.list_inputs(str(twice), storage, mask_prefix=str(tmp_path))


def test_permanent_s3_errors_name_the_uri(data_bucket: str, storage: Storage) -> None:
    with pytest.raises(NotFound, match=r"s3://no-such-bucket/full: no such bucket"):
        inputs.list_inputs("s3://no-such-bucket/full", storage)
    missing = join(data_bucket, "styles", "missing.png")
    with pytest.raises(NotFound, match=f"{missing}: no such key"):
        inputs.load_style(missing, storage, STYLE_SIZE)


def test_style_is_loaded_once_at_its_size_from_any_uri(
    roots: dict[str, str], storage: Storage
) -> None:
    local, s3 = (inputs.load_style(join(roots[s], "styles/dots.png"), storage, 40) for s in SOURCES)
    assert local.shape == (3, 40, 40) and torch.equal(local, s3)
