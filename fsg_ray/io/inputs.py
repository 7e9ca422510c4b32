"""The inputs of a pipeline, and the report of what became of them (no Ray).

Inputs come from a prefix (every image file below it) or a manifest (CSV or Parquet with a
column ``image`` of URIs and optionally ``mask``); see :func:`list_inputs`. Each input gets a
row id, its position in that list. The id, never the order in which a pipeline delivers rows,
seeds all per-row randomness (:func:`derive_seed`), so the data do not depend on sharding or
scheduling.

The Ray Data pipelines that decode these inputs are in :mod:`fsg_ray.distributed.data`; the
restyle planner (:mod:`fsg_ray.distributed.restyle_plan`) and ``fsg data inspect`` list their
inputs here without starting Ray. :class:`DataReport` counts the good inputs and lists the
bad ones with their reason; :func:`write_report` stores it beside a run's outputs.
"""

from __future__ import annotations

import io
import json
import os
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from torch import Tensor

from fsg_ray.io import images
from fsg_ray.io.folders import IMAGE_SUFFIXES
from fsg_ray.io.storage import Storage
from fsg_ray.io.uri import is_manifest, join, parse_uri, relative

REPORT_JSON, REPORT_PARQUET = "data_report.json", "bad_files.parquet"


@dataclass(frozen=True)
class Input:
    """One input image.

    Attributes:
        id: Row id: the position in :func:`list_inputs`' list; seeds per-row randomness.
        uri: The image.
        mask: Its garment mask, if any.
        identity: Size and modification time from the listing
            (:attr:`fsg_ray.io.storage.FileInfo.identity`); empty for a manifest's entries,
            which are not listed.
    """

    id: int
    uri: str
    mask: str | None = None
    identity: str = ""


class BadFile(NamedTuple):
    """An input that was skipped, and why."""

    uri: str
    reason: str


@dataclass(frozen=True)
class DataReport:
    """What happened to the inputs of a pipeline: every input is good or listed as bad.

    Attributes:
        inputs: Inputs listed.
        good: Inputs decoded and used.
        bad: The others, each with its reason, sorted by URI.
    """

    inputs: int
    good: int
    bad: tuple[BadFile, ...] = field(default=())

    def __post_init__(self) -> None:
        if self.inputs != self.good + len(self.bad):
            raise ValueError(f"{self.inputs} inputs != {self.good} good + {len(self.bad)} bad")

    def __add__(self, other: DataReport) -> DataReport:
        bad = tuple(sorted(self.bad + other.bad))
        return DataReport(self.inputs + other.inputs, self.good + other.good, bad)

    def to_dict(self) -> dict[str, Any]:
        """Plain, JSON-friendly form: counts and the bad files."""
        bad = [b._asdict() for b in self.bad]
        return {"inputs": self.inputs, "good": self.good, "bad": len(self.bad), "bad_files": bad}


def list_inputs(source_uri: str, storage: Storage, mask_prefix: str | None = None) -> list[Input]:
    """Lists the inputs of a pipeline.

    Args:
        source_uri: A prefix (every file below it with an image suffix, sorted by URI) or a
            manifest ending in ``.csv`` or ``.parquet`` with a column ``image`` and optionally
            ``mask`` (URIs, or paths relative to the manifest's folder; empty: no mask).
        storage: Reads the listing or the manifest.
        mask_prefix: For a prefix source: masks below this prefix are matched to images by
            relative path without suffix (``shop/a/1.jpg`` <-> ``shop_masks/a/1.png``).

    Raises:
        ValueError: ``mask_prefix`` with a manifest; a manifest without ``image`` column or
            listing an image twice.
        StorageError: The source cannot be listed or read (the message names the URI).
    """
    if is_manifest(source_uri):
        if mask_prefix is not None:
            raise ValueError(f"{source_uri}: a manifest names its masks in a 'mask' column")
        pairs = _read_manifest(source_uri, storage)
        return [Input(i, uri, mask) for i, (uri, mask) in enumerate(pairs)]
    masks = _masks_by_stem(mask_prefix, storage) if mask_prefix else {}
    infos = storage.list_info(source_uri, IMAGE_SUFFIXES)
    return [
        Input(i, f.uri, masks.get(path_stem(relative(f.uri, source_uri))), f.identity)
        for i, f in enumerate(infos)
    ]


def output_stem(uri: str, base: str) -> str:
    """``uri``'s path below ``base`` without its suffix; the whole path if not below it.

    Outputs named after inputs (``fsg restyle``, ``fsg eval``) go through this one check.

    Raises:
        ValueError: The path has ``..`` in it, so its output could land outside its folder.
    """
    try:
        rel = relative(uri, base)
    except ValueError:
        loc = parse_uri(uri)
        rel = f"{loc.bucket}/{loc.path}" if loc.bucket else loc.path
    parts = [p for p in rel.split("/") if p not in ("", ".")]
    if not parts or ".." in parts:
        raise ValueError(f"cannot name an output after {uri!r} (relative to {base!r})")
    return path_stem("/".join(parts))


def path_stem(rel: str) -> str:
    """Relative path without its suffix: ``a/1.jpg`` -> ``a/1``."""
    head, _, name = rel.rpartition("/")
    return f"{head}/{name.rsplit('.', 1)[0]}" if head else name.rsplit(".", 1)[0]


def _masks_by_stem(mask_prefix: str, storage: Storage) -> dict[str, str]:
    uris = storage.list_files(mask_prefix, IMAGE_SUFFIXES)
    return {path_stem(relative(u, mask_prefix)): u for u in uris}


def _read_manifest(uri: str, storage: Storage) -> list[tuple[str, str | None]]:
    """(image, mask) URIs of a CSV or Parquet manifest, relative entries resolved."""
    data = io.BytesIO(storage.read_bytes(uri))
    table = pq.read_table(data) if uri.lower().endswith(".parquet") else pacsv.read_csv(data)
    if "image" not in table.column_names:
        raise ValueError(f"{uri}: manifest has no 'image' column (columns: {table.column_names})")
    folder = uri.rsplit("/", 1)[0] if "/" in uri else "."
    image_uris = [_resolve(str(u), folder) for u in table.column("image").to_pylist()]
    mask_col = table.column("mask").to_pylist() if "mask" in table.column_names else []
    masks = [_resolve(str(m), folder) if m else None for m in mask_col] or [None] * len(image_uris)
    seen: set[str] = set()
    for image in image_uris:
        if image in seen:
            raise ValueError(f"{uri}: lists {image} twice")
        seen.add(image)
    return list(zip(image_uris, masks, strict=True))


def _resolve(entry: str, folder: str) -> str:
    """A manifest entry as a URI: relative local paths are taken from the manifest's folder."""
    if parse_uri(entry).scheme == "s3" or "://" in entry or os.path.isabs(entry):
        return entry
    return join(folder, entry)


def fs_path(uri: str, storage: Storage) -> str:
    """The path of ``uri`` inside its pyarrow filesystem (absolute for local files)."""
    _, path = storage.filesystem(uri)
    return os.path.abspath(path) if parse_uri(uri).scheme == "file" else path


def write_report(report: DataReport, out_uri: str, storage: Storage) -> list[str]:
    """Writes a report beside a run's outputs: ``data_report.json`` and ``bad_files.parquet``.

    Returns:
        The URIs written.
    """
    text = json.dumps(report.to_dict(), indent=2).encode()
    table = pa.table(
        {"uri": [b.uri for b in report.bad], "reason": [b.reason for b in report.bad]},
        schema=pa.schema([("uri", pa.string()), ("reason", pa.string())]),
    )
    buf = io.BytesIO()
    pq.write_table(table, buf)
    return [
        storage.write_bytes(join(out_uri, REPORT_JSON), text),
        storage.write_bytes(join(out_uri, REPORT_PARQUET), buf.getvalue()),
    ]


def load_style(uri: str, storage: Storage, size: int) -> Tensor:
    """The style image y_s, loaded once: (3, size, size) in [0, 1] (paper: 256 px).

    Raises:
        ImageDecodeError: Not a decodable image.
        StorageError: It cannot be read (the message names the URI).
    """
    return images.load_style_image(storage.read_bytes(uri), size, name=uri)


def derive_seed(seed: int, *keys: int) -> int:
    """An independent seed for (seed, *keys), e.g. (seed, purpose, epoch, row id).

    32 bits, because some of Ray's random operations seed numpy's legacy ``RandomState``.
    """
    return int(np.random.SeedSequence(seed, spawn_key=keys).generate_state(1, np.uint32)[0])
