"""Ray Data pipelines for the two training sets and the style image, from any storage URI.

Inputs come from a prefix (every image file below it) or a manifest (CSV or Parquet with a
column ``image`` of URIs and optionally ``mask``); see :func:`list_inputs`. Each input gets a
row id, its position in that list. The id, never the order in which Ray delivers rows, seeds
all per-row randomness, so the data do not depend on sharding or scheduling.

The pipelines (lazy ``ray.data.Dataset`` objects)::

    read_full_images   read bytes -> decode -> shrink short side to <= 1.5 x global_target_size
                       (rows: id, uri, reason, image (H, W, 3) uint8)
    read_shop_photos   read bytes (+ mask) -> decode -> short side to 2 x patch_size -> the
                       corners of every patch at the stride, optionally only those mostly
                       inside the garment mask (rows: id, uri, reason, image, windows (N, 2))
    good_rows          the rows that decoded (reason == "")
    data_report        the bad files of a decoded set: counted and listed with their reason

Both sets stay photo-sized in the object store; the training worker cuts what Algorithm 1
eats. X^(2) pairs (x at ``global_input_size``, y_c at ``global_target_size``) are cut by
:class:`GlobalPairCollate`, inside ``iter_torch_batches`` (a prefetch thread), because a Ray
Data function cannot know the epoch and the crop is drawn from (seed, epoch, row id). X^(1)
patches are cut from their photo's windows after a two-level seeded shuffle (photos, then
patches in a buffer: :func:`shuffled_windows`). Storing the 81 patches of a 256 px photo
instead would move 16x its bytes through the object store (measured: 0.06x the throughput
of a bare loop; docs/benchmarks.md). :class:`RayDataBatches` serves both sets to Algorithm 1
as :class:`fsg_ray.core.algorithm.Batches`.

Bytes are read with ``ray.data.read_binary_files`` and decoded by :func:`fsg_ray.io.images.
decode_image` inside ``map_batches``: one bad file becomes a row with a reason, never a failed
block (``read_images`` would abort). The S3 endpoint travels with the pyarrow filesystem of
:meth:`fsg_ray.io.storage.Storage.filesystem`, since workers do not inherit the driver's
environment. Rows keep a fixed order (``preserve_order``) so that a resumed run replays the
same batches; give the trainer :func:`train_dataset_config` so its shards keep it too.

Typical use on the driver, then in each Ray Train worker::

    td = training_data(full_uri, shop_uri, storage, cfg.data, seed, mask_prefix)
    write_report(td.report, run_uri, storage)
    TorchTrainer(loop, datasets={FULL: td.full, PATCHES: td.patches},
                 dataset_config=train_dataset_config(), ...)
    # in loop:
    batches = RayDataBatches.from_train_shards(cfg.data, batch_size, seed)
"""

from __future__ import annotations

import io
import json
import logging
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol, TypeVar

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import ray.data
import torch
from ray.data.collate_fn import NumpyBatchCollateFn
from ray.data.expressions import col
from torch import Tensor

from fsg_ray.config import DataConfig
from fsg_ray.core import transforms
from fsg_ray.io import images
from fsg_ray.io.folders import IMAGE_SUFFIXES
from fsg_ray.io.storage import Storage, StorageError
from fsg_ray.io.uri import join, parse_uri, relative

log = logging.getLogger(__name__)

#: Names of the two training sets, as given to ``TorchTrainer(datasets=...)``.
FULL, PATCHES = "full", "patches"
#: Decoded full images keep at most this multiple of ``global_target_size`` as short side.
FULL_SIDE_FACTOR = 1.5
#: Files per read task: each task reads and decodes this many files in one fused
#: ``read -> map_batches`` step (Ray's default would start a task per few files).
FILES_PER_TASK = 32
#: The per-epoch local shuffle of full images on the worker holds this many batches.
SHUFFLE_BATCHES = 8
#: Shop photos per batch read by a training worker, and held by its photo-level shuffle.
PHOTO_BATCH, PHOTO_SHUFFLE = 8, 32
#: Patches mixed by the patch-level shuffle buffer (:func:`shuffled_windows`).
PATCH_SHUFFLE = 1024
MANIFEST_SUFFIXES = (".csv", ".parquet")
REPORT_JSON, REPORT_PARQUET = "data_report.json", "bad_files.parquet"

# Placeholders in the tensor columns of rows that failed to decode (filtered out by good_rows).
_NO_IMAGE = np.zeros((1, 1, 3), dtype=np.uint8)
_NO_WINDOWS = np.zeros((0, 2), dtype=np.int32)
# Spawn keys that keep the seeds of different random choices independent.
_KEY_READ_ORDER, _KEY_SHUFFLE, _KEY_PAIR, _KEY_PATCH = 0, 1, 2, 3


@dataclass(frozen=True)
class Input:
    """One input image.

    Attributes:
        id: Row id: the position in :func:`list_inputs`' list; seeds per-row randomness.
        uri: The image.
        mask: Its garment mask, if any.
    """

    id: int
    uri: str
    mask: str | None = None


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


@dataclass
class TrainingData:
    """Both training sets of a run and the report of the files they skipped.

    Attributes:
        full: X^(2): decoded full images (columns id, image), for :class:`GlobalPairCollate`.
        patches: X^(1): decoded shop photos and their patch windows (columns id, image,
            windows), for :class:`PatchStream`.
        report: Bad files of both sources.
        heldout: Full images kept out of X^(2) (``holdout``), not decoded.
    """

    full: ray.data.Dataset
    patches: ray.data.Dataset
    report: DataReport
    heldout: tuple[Input, ...] = ()


# ---------------------------------------------------------------- inputs


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
    if source_uri.lower().endswith(MANIFEST_SUFFIXES):
        if mask_prefix is not None:
            raise ValueError(f"{source_uri}: a manifest names its masks in a 'mask' column")
        pairs = _read_manifest(source_uri, storage)
    else:
        masks = _masks_by_stem(mask_prefix, storage) if mask_prefix else {}
        uris = storage.list_files(source_uri, IMAGE_SUFFIXES)
        pairs = [(u, masks.get(path_stem(relative(u, source_uri)))) for u in uris]
    return [Input(i, uri, mask) for i, (uri, mask) in enumerate(pairs)]


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


# ---------------------------------------------------------------- decoding pipelines


def read_full_images(
    inputs: Sequence[Input], storage: Storage, cfg: DataConfig, seed: int
) -> ray.data.Dataset:
    """Full images X^(2), decoded: rows ``id, uri, reason, image`` (bad rows included).

    Images are shrunk so that their short side is at most ``FULL_SIDE_FACTOR x
    global_target_size`` (as the demo does); images whose short side is under
    ``global_input_size`` are bad. Files are read in a seeded random order.

    Args:
        inputs: From :func:`list_inputs`.
        storage: Gives the pyarrow filesystem (and S3 endpoint) to read with.
        cfg: Image sizes.
        seed: Seeds the read order.
    """
    kwargs = {
        "min_side": cfg.global_input_size,
        "max_side": int(FULL_SIDE_FACTOR * cfg.global_target_size),
    }
    return _read(_seeded_order(inputs, seed), storage, _decode_full_batch, kwargs)


def read_shop_photos(
    inputs: Sequence[Input], storage: Storage, cfg: DataConfig, seed: int
) -> ray.data.Dataset:
    """Shop photos for X^(1), decoded: rows ``id, uri, reason, image, windows``.

    Each photo is resized so that its short side is ``2 x patch_size`` (as
    :func:`fsg_ray.io.folders.shop_patches` does). ``windows`` (N, 2) int32 holds the
    top-left corners of its patches at ``patch_stride``
    (:func:`fsg_ray.core.transforms.patch_windows`); with ``cfg.patch_mask_fraction > 0`` only
    those with at least that fraction of garment pixels. A mask is read through the same
    decode path and resized to the photo with nearest sampling; a bad mask makes its photo
    bad, and a photo without mask keeps every patch. Files are read in a seeded order.
    """
    kwargs = {
        "storage": storage,
        "side": 2 * cfg.patch_size,
        "size": cfg.patch_size,
        "stride": cfg.patch_stride,
        "min_fraction": cfg.patch_mask_fraction,
    }
    return _read(_seeded_order(inputs, seed), storage, _decode_shop_batch, kwargs)


def _seeded_order(inputs: Sequence[Input], seed: int) -> list[Input]:
    order = np.random.default_rng(derive_seed(seed, _KEY_READ_ORDER)).permutation(len(inputs))
    return [inputs[i] for i in order]


def _read(
    inputs: Sequence[Input],
    storage: Storage,
    decode: Callable[..., dict[str, list[Any]]],
    decode_kwargs: dict[str, Any],
) -> ray.data.Dataset:
    """read_binary_files over the inputs, then ``decode`` in map_batches."""
    ds, by_path = read_files(inputs, storage, FILES_PER_TASK)
    # Rows in a fixed order, so a resumed run skips ahead over the very batches it used. Each
    # read has its own copy of the DataContext, shared by the datasets derived from it; the
    # driver's global context is not touched. Ray Train replaces these options on its shards:
    # pass ``dataset_config=train_dataset_config()`` to the trainer.
    ds.context.execution_options.preserve_order = True
    # Missing files are not rows at all; data_report lists them from the ids it never sees.
    # batch_size=None (the whole block) lets Ray fuse the read and the decode into one task.
    return ds.map_batches(
        decode,
        batch_size=None,
        batch_format="numpy",
        fn_kwargs={"by_path": by_path, **decode_kwargs},
    )


class _HasUri(Protocol):
    @property
    def uri(self) -> str: ...


_I = TypeVar("_I", bound=_HasUri)


def read_files(
    inputs: Sequence[_I], storage: Storage, files_per_block: int
) -> tuple[ray.data.Dataset, dict[str, _I]]:
    """A dataset of the inputs' bytes (``bytes``, ``path`` columns), and each row's input by path.

    One storage kind per dataset (one pyarrow filesystem reads them all). Files deleted since
    listing are not rows at all: callers account for them from the inputs they never see.
    """
    if not inputs:
        raise ValueError("no inputs to read")
    schemes = {parse_uri(i.uri).scheme for i in inputs}
    if len(schemes) > 1:
        raise ValueError(f"inputs mix storage kinds {sorted(schemes)}; use one per pipeline")
    fs, _ = storage.filesystem(inputs[0].uri)
    by_path = {fs_path(i.uri, storage): i for i in inputs}
    ds = ray.data.read_binary_files(
        list(by_path),
        filesystem=fs,
        include_paths=True,
        ignore_missing_paths=True,
        override_num_blocks=-(-len(inputs) // files_per_block),
    )
    return ds, by_path


def fs_path(uri: str, storage: Storage) -> str:
    """The path of ``uri`` inside its pyarrow filesystem (absolute for local files)."""
    _, path = storage.filesystem(uri)
    return os.path.abspath(path) if parse_uri(uri).scheme == "file" else path


def _decode_full_batch(
    batch: dict[str, np.ndarray], by_path: dict[str, Input], min_side: int, max_side: int
) -> dict[str, list[Any]]:
    """map_batches function: bytes -> decoded full images, one row per file."""
    out: dict[str, list[Any]] = {"id": [], "uri": [], "reason": [], "image": []}
    for data, path in zip(batch["bytes"], batch["path"], strict=True):
        item = by_path[str(path)]
        try:
            image, reason = _full_image(bytes(data), item.uri, min_side, max_side), ""
        except images.ImageDecodeError as e:
            image, reason = _NO_IMAGE, e.reason
        _append(out, id=item.id, uri=item.uri, reason=reason, image=image)
    return out


def _full_image(data: bytes, uri: str, min_side: int, max_side: int) -> np.ndarray:
    img = images.to_tensor(images.decode_image(data, name=uri))
    h, w = img.shape[-2:]
    if min(h, w) < min_side:
        raise images.ImageDecodeError(uri, f"{w}x{h} px is smaller than {min_side} px")
    if min(h, w) > max_side:
        img = transforms.resize_short_side(img, max_side)
    return to_uint8(img)


def _decode_shop_batch(
    batch: dict[str, np.ndarray], by_path: dict[str, Input], **kwargs: Any
) -> dict[str, list[Any]]:
    """map_batches function: bytes (+ mask) -> shop photo at short side ``side``, windows."""
    out: dict[str, list[Any]] = {"id": [], "uri": [], "reason": [], "image": [], "windows": []}
    for data, path in zip(batch["bytes"], batch["path"], strict=True):
        item = by_path[str(path)]
        try:
            image, windows = _shop_photo(bytes(data), item, **kwargs)
            reason = ""
        except images.ImageDecodeError as e:
            image, windows, reason = _NO_IMAGE, _NO_WINDOWS, e.reason
        _append(out, id=item.id, uri=item.uri, reason=reason, image=image, windows=windows)
    return out


def _shop_photo(
    data: bytes,
    item: Input,
    storage: Storage,
    side: int,
    size: int,
    stride: int,
    min_fraction: float,
) -> tuple[np.ndarray, np.ndarray]:
    img = transforms.resize_short_side(
        images.to_tensor(images.decode_image(data, name=item.uri)), side
    )
    h, w = img.shape[1], img.shape[2]
    mask = None
    if item.mask is not None:
        try:
            mask = images.decode_mask(storage.read_bytes(item.mask), (h, w), name=item.mask)
        except (images.ImageDecodeError, StorageError) as e:
            raise images.ImageDecodeError(item.uri, f"mask {e}") from e
    windows = transforms.patch_windows(h, w, size, stride, mask, min_fraction)
    return to_uint8(img), windows.numpy().astype(np.int32)


def _append(out: dict[str, list[Any]], **row: Any) -> None:
    for key, value in row.items():
        out[key].append(value)


def _tensor(array: np.ndarray) -> Tensor:
    """A tensor over ``array``, copied only if Ray handed over a read-only or strided view."""
    return torch.from_numpy(np.require(array, requirements=["C", "W"]))


def to_uint8(img: Tensor) -> np.ndarray:
    """(3, H, W) float in [0, 1] -> (H, W, 3) uint8: 4x smaller in the object store."""
    return img.mul(255).round().clamp(0, 255).to(torch.uint8).permute(1, 2, 0).numpy()


def good_rows(decoded: ray.data.Dataset) -> ray.data.Dataset:
    """The rows of a decoded set that decoded, without the ``uri`` and ``reason`` columns."""
    return decoded.filter(expr=col("reason") == "").drop_columns(["uri", "reason"])


def data_report(decoded: ray.data.Dataset, inputs: Sequence[Input]) -> DataReport:
    """Counts and lists the bad files of a decoded set; missing files count as bad.

    Executes the pipeline's decoding once: materialize ``decoded`` first to reuse it.
    """
    rows = decoded.select_columns(["id", "uri", "reason"]).take_all()
    seen = {int(r["id"]) for r in rows}
    bad = [BadFile(str(r["uri"]), str(r["reason"])) for r in rows if r["reason"]]
    bad += [BadFile(i.uri, "missing: no such file") for i in inputs if i.id not in seen]
    return DataReport(len(inputs), len(inputs) - len(bad), tuple(sorted(bad)))


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


# ---------------------------------------------------------------- style and run-level helpers


def load_style(uri: str, storage: Storage, size: int) -> Tensor:
    """The style image y_s, loaded once: (3, size, size) in [0, 1] (paper: 256 px).

    Raises:
        ImageDecodeError: Not a decodable image.
        StorageError: It cannot be read (the message names the URI).
    """
    return images.load_style_image(storage.read_bytes(uri), size, name=uri)


def training_data(
    full_source: str,
    shop_source: str,
    storage: Storage,
    cfg: DataConfig,
    seed: int,
    mask_prefix: str | None = None,
    holdout: int = 0,
) -> TrainingData:
    """Builds X^(2) and X^(1) and the report of their bad files.

    The decoded sets are materialized once (Ray spills to disk if needed), so the report and
    the training epochs reuse the decoding instead of repeating it. The good rows are
    materialized too: reading them then needs no Ray task, so trainers whose workers hold
    every CPU of the cluster cannot starve their own data.

    Args:
        holdout: The last ``holdout`` full images (by URI) are kept out of X^(2), for
            sample grids of garments the generator never saw (``TrainingData.heldout``).

    Raises:
        ValueError: A source holds no usable image.
    """
    full_inputs = list_inputs(full_source, storage)
    if holdout:
        if holdout >= len(full_inputs):
            raise ValueError(f"{full_source}: {len(full_inputs)} images, {holdout} held out")
        heldout, full_inputs = full_inputs[-holdout:], full_inputs[:-holdout]
    else:
        heldout = []
    shop_inputs = list_inputs(shop_source, storage, mask_prefix)
    full = read_full_images(full_inputs, storage, cfg, seed).materialize()
    shop = read_shop_photos(shop_inputs, storage, cfg, seed).materialize()
    full_report, shop_report = data_report(full, full_inputs), data_report(shop, shop_inputs)
    for source, part in ((full_source, full_report), (shop_source, shop_report)):
        if part.good == 0:
            raise ValueError(f"{source}: none of {part.inputs} inputs is a usable image")
        log.info("%s: %d good, %d bad inputs", source, part.good, len(part.bad))
    return TrainingData(
        good_rows(full).materialize(),
        good_rows(shop).materialize(),
        full_report + shop_report,
        tuple(heldout),
    )


def derive_seed(seed: int, *keys: int) -> int:
    """An independent seed for (seed, *keys), e.g. (seed, purpose, epoch, row id).

    32 bits, because some of Ray's random operations seed numpy's legacy ``RandomState``.
    """
    return int(np.random.SeedSequence(seed, spawn_key=keys).generate_state(1, np.uint32)[0])


# ---------------------------------------------------------------- the training worker's side


def train_dataset_config() -> ray.train.DataConfig:
    """Ray Train's ingest options for these datasets: rows in order, so resuming is exact.

    Pass as ``TorchTrainer(dataset_config=...)``; by default Ray Train applies the driver's
    global execution options to every shard. With several workers ``streaming_split`` still
    deals blocks out as workers ask, so only a one-worker run replays exactly the same rows.
    """
    import ray.train  # here, not at the top: only trainers need it, and it is slow to import

    return ray.train.DataConfig(execution_options=ray.data.ExecutionOptions(preserve_order=True))


class GlobalPairCollate(NumpyBatchCollateFn):
    """Batches of decoded full images -> X^(2) pairs (x, y_c) of one epoch.

    Each row's crop is drawn by :func:`fsg_ray.core.transforms.random_global_pair` from a generator
    seeded with (seed, epoch, row id): the same pairs whichever worker gets the row.

    Args:
        cfg: ``global_input_size`` (x) and ``global_target_size`` (y_c).
        seed: The run's seed.
        epoch: The epoch being read.
    """

    def __init__(self, cfg: DataConfig, seed: int, epoch: int) -> None:
        self.low, self.high = cfg.global_input_size, cfg.global_target_size
        self.seed, self.epoch = seed, epoch

    # Ray types the result as a TypeVar bound nowhere; any collated type is allowed at runtime.
    def __call__(self, batch: dict[str, np.ndarray]) -> tuple[Tensor, Tensor]:  # type: ignore[override]
        xs, ys = [], []
        for row_id, image in zip(batch["id"], batch["image"], strict=True):
            img = _tensor(image).permute(2, 0, 1).float() / 255
            gen = torch.Generator().manual_seed(
                derive_seed(self.seed, _KEY_PAIR, self.epoch, int(row_id))
            )
            x, y_c = transforms.random_global_pair(img, self.low, self.high, gen)
            xs.append(x)
            ys.append(y_c)
        return torch.stack(xs), torch.stack(ys)  # (B, 3, s, s), (B, 3, S, S)


@dataclass(frozen=True)
class Photos:
    """Shop photos of one read batch, as tensors over the arrays Ray handed over.

    Not a tuple of tensors on purpose: Ray would try to concatenate those to a device.
    """

    ids: list[int]
    images: list[Tensor]  # each (3, H, W) uint8
    windows: list[Tensor]  # each (N, 2) int: top-left corners of its patches


class PhotoCollate(NumpyBatchCollateFn):
    """Batches of shop photos (rows id, image, windows) -> :class:`Photos`."""

    def __call__(self, batch: dict[str, np.ndarray]) -> Photos:  # type: ignore[override]
        return Photos(
            [int(i) for i in batch["id"]],
            [_tensor(img).permute(2, 0, 1) for img in batch["image"]],  # (3, H, W) view
            [
                torch.from_numpy(np.asarray(w, dtype=np.int64).reshape(-1, 2))
                for w in batch["windows"]
            ],
        )


#: One patch, before it is cut: (photo id, photo (3, H, W) uint8, top, left).
PatchRef = tuple[int, Tensor, int, int]


def shuffled_windows(
    photo_batches: Iterable[Photos], batch_size: int, rng: np.random.Generator, buffer: int
) -> Iterator[list[PatchRef]]:
    """Batches of patch references in a seeded buffered shuffle; the last short one dropped.

    The patches of arriving photos join a pool; once it holds ``2 x buffer`` patches it is
    permuted and all but ``buffer`` leave in batches. Every patch is thus drawn from a mix
    of at least ``buffer`` patches of many photos, while the work per patch stays O(1): one
    permutation per ``buffer`` patches, no per-patch random call. The photo order itself is
    already shuffled upstream. Deterministic given the photo order and ``rng``.
    """
    pool: list[PatchRef] = []
    for photos in photo_batches:
        for photo_id, image, windows in zip(photos.ids, photos.images, photos.windows, strict=True):
            pool += [(photo_id, image, top, left) for top, left in windows.tolist()]
        if len(pool) >= 2 * buffer:
            yield from _drain(pool, batch_size, rng, keep=buffer)
    yield from _drain(pool, batch_size, rng, keep=0)


def _drain(
    pool: list[PatchRef], batch_size: int, rng: np.random.Generator, keep: int
) -> Iterator[list[PatchRef]]:
    """Permutes ``pool`` and yields full batches from it until at most ``keep`` are left."""
    pool[:] = [pool[i] for i in rng.permutation(len(pool))]
    n_out = (len(pool) - keep) // batch_size * batch_size
    out, pool[:] = pool[:n_out], pool[n_out:]
    for start in range(0, n_out, batch_size):
        yield out[start : start + batch_size]


def cut_patches(refs: Sequence[PatchRef], size: int) -> Tensor:
    """Patches of ``size`` px at their windows: (B, 3, size, size) uint8."""
    return torch.stack([img[:, t : t + size, left : left + size] for _, img, t, left in refs])


class BatchSource(Protocol):
    """What both ``ray.data.Dataset`` and a Ray Train shard (``DataIterator``) offer."""

    def iter_torch_batches(self, **kwargs: Any) -> Any: ...


def global_epoch(
    source: BatchSource, cfg: DataConfig, batch_size: int, seed: int, prefetch_batches: int
) -> Callable[[int], Iterator[tuple[Tensor, Tensor]]]:
    """The X^(2) batches of each epoch: pairs cut in the prefetch thread, rows shuffled."""

    def epoch(n: int) -> Iterator[tuple[Tensor, Tensor]]:
        return iter(
            source.iter_torch_batches(
                batch_size=batch_size,
                prefetch_batches=prefetch_batches,
                collate_fn=GlobalPairCollate(cfg, seed, n),
                drop_last=True,
                local_shuffle_buffer_size=SHUFFLE_BATCHES * batch_size,
                local_shuffle_seed=derive_seed(seed, _KEY_SHUFFLE, n),
            )
        )

    return epoch


def patch_epoch(
    source: BatchSource, cfg: DataConfig, batch_size: int, seed: int, prefetch_batches: int
) -> Callable[[int], Iterator[Tensor]]:
    """The X^(1) batches of each epoch, (B, 3, p, p) uint8: photos shuffled, then patches."""

    def epoch(n: int) -> Iterator[Tensor]:
        photos = iter(
            source.iter_torch_batches(
                batch_size=PHOTO_BATCH,
                prefetch_batches=prefetch_batches,
                collate_fn=PhotoCollate(),
                local_shuffle_buffer_size=PHOTO_SHUFFLE,
                local_shuffle_seed=derive_seed(seed, _KEY_SHUFFLE, n),
            )
        )
        rng = np.random.default_rng(derive_seed(seed, _KEY_PATCH, n))
        try:
            for refs in shuffled_windows(photos, batch_size, rng, PATCH_SHUFFLE):
                yield cut_patches(refs, cfg.patch_size)
        finally:
            _close(photos)

    return epoch


class _Stream:
    """Endless batches from one source, epoch after epoch, with its position.

    Args:
        epoch: Starts epoch n's iterator of batches.
        batch_size: For the error when an epoch gives no batch.
    """

    def __init__(self, epoch: Callable[[int], Iterator[Any]], batch_size: int) -> None:
        self.epoch_fn, self.batch_size = epoch, batch_size
        self.epoch, self.batches = 0, 0
        self._it: Iterator[Any] | None = None

    def next(self) -> Any:
        """The next batch; starts the next epoch when one ends."""
        if self._it is None:
            self._it = self._start()
        batch = next(self._it, None)
        if batch is None:
            if self.batches == 0:
                raise ValueError(f"an epoch gave no batch: fewer than {self.batch_size} samples")
            self.epoch, self.batches = self.epoch + 1, 0
            self._it = self._start()
            return self.next()
        self.batches += 1
        return batch

    def _start(self) -> Iterator[Any]:
        """Starts epoch ``self.epoch``, skipping the batches a resumed run already used."""
        it = self.epoch_fn(self.epoch)
        for _ in range(self.batches):
            next(it)
        return it

    def close(self) -> None:
        """Stops the epoch being read (its prefetch threads end with it)."""
        if self._it is not None:
            _close(self._it)
        self._it = None

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "batches": self.batches}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.close()
        self.epoch, self.batches = int(state["epoch"]), int(state["batches"])


def _close(it: Iterator[Any]) -> None:
    """Closes a generator (Ray's batch iterators are generators); other iterators as they are."""
    close = getattr(it, "close", None)
    if close is not None:
        close()


class RayDataBatches:
    """Algorithm 1's data (:class:`fsg_ray.core.algorithm.Batches`) from Ray Data.

    Inside a Ray Train worker use :meth:`from_train_shards`; tests and single-process runs
    pass Datasets directly (the same code path otherwise). Each set is re-read epoch after
    epoch, forever, in an order seeded by (seed, epoch). Close it (or use ``with``) before
    Ray shuts down: an iterator still reading then would take the process down.

    Args:
        full: X^(2) decoded full images (``TrainingData.full``) or its shard.
        patches: X^(1) shop photos and windows (``TrainingData.patches``) or its shard.
        cfg: Image sizes.
        batch_size: Samples per batch.
        seed: The run's seed.
        prefetch_batches: Batches prepared ahead of the trainer, per set.
    """

    def __init__(
        self,
        full: BatchSource,
        patches: BatchSource,
        cfg: DataConfig,
        batch_size: int,
        seed: int,
        prefetch_batches: int = 2,
    ) -> None:
        args = (cfg, batch_size, seed, prefetch_batches)
        self._global = _Stream(global_epoch(full, *args), batch_size)
        self._patch = _Stream(patch_epoch(patches, *args), batch_size)

    @classmethod
    def from_train_shards(
        cls, cfg: DataConfig, batch_size: int, seed: int, prefetch_batches: int = 2
    ) -> RayDataBatches:
        """Reads this Ray Train worker's shards of the datasets named FULL and PATCHES.

        Raises:
            ValueError: The trainer was not given both datasets.
        """
        from ray import train

        full, patches = train.get_dataset_shard(FULL), train.get_dataset_shard(PATCHES)
        if full is None or patches is None:
            raise ValueError(f"TorchTrainer(datasets=...) needs {FULL!r} and {PATCHES!r}")
        return cls(full, patches, cfg, batch_size, seed, prefetch_batches)

    def global_batch(self) -> tuple[Tensor, Tensor]:
        """x in X^(2) and y_c: (B, 3, s, s), (B, 3, S, S)."""
        x, y_c = self._global.next()
        return x, y_c

    def patch_batch(self) -> Tensor:
        """Shop-photo patches x in X^(1): (B, 3, p, p) float in [0, 1]."""
        patches: Tensor = self._patch.next()
        return patches.float().div_(255)

    def state_dict(self) -> dict[str, Any]:
        """(epoch, batches consumed) of each set, so a resumed run skips ahead."""
        return {"global": self._global.state_dict(), "patch": self._patch.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restores the positions; call before drawing the first batch."""
        self._global.load_state_dict(state["global"])
        self._patch.load_state_dict(state["patch"])

    def close(self) -> None:
        """Stops both streams' reading; the positions are kept."""
        self._global.close()
        self._patch.close()

    def __enter__(self) -> RayDataBatches:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
