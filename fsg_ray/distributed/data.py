"""Ray Data pipelines that decode the two training sets, from any storage URI.

The inputs (a prefix or a CSV/Parquet manifest, each with its row id) are listed by
:func:`fsg_ray.io.inputs.list_inputs`. The id, never the order in which Ray delivers rows,
seeds all per-row randomness, so the data do not depend on sharding or scheduling.

The pipelines (lazy ``ray.data.Dataset`` objects)::

    read_full_images   read bytes -> decode -> shrink short side to <= 1.5 x global_target_size
                       (rows: id, uri, reason, image (H, W, 3) uint8)
    read_shop_photos   read bytes (+ mask) -> decode -> short side to 2 x patch_size -> the
                       corners of every patch at the stride, optionally only those mostly
                       inside the garment mask (rows: id, uri, reason, image, windows (N, 2))
    good_rows          the rows that decoded (reason == "")
    data_report        the bad files of a decoded set: counted and listed with their reason

Both sets stay photo-sized in the object store; the training worker cuts what Algorithm 1
eats (:mod:`fsg_ray.distributed.batches`: X^(2) pairs in a collate function, X^(1) patches
after a seeded two-level shuffle). Storing the 81 patches of a 256 px photo instead would move
16x its bytes through the object store (measured: 0.06x the throughput of a bare loop;
docs/benchmarks.md).

Bytes are read with ``ray.data.read_binary_files`` and decoded by :func:`fsg_ray.io.images.
decode_image` inside ``map_batches``: one bad file becomes a row with a reason, never a failed
block (``read_images`` would abort). The S3 endpoint travels with the pyarrow filesystem of
:meth:`fsg_ray.io.storage.Storage.filesystem`, since workers do not inherit the driver's
environment. Rows keep a fixed order (``preserve_order``) so that a resumed run replays the
same batches; give the trainer :func:`train_dataset_config` so its shards keep it too.

Typical use on the driver, then in each Ray Train worker::

    td = training_data(full_uri, shop_uri, storage, cfg.data, seed, mask_prefix)
    write_report(td.report, run_uri, storage)  # fsg_ray.io.inputs
    TorchTrainer(loop, datasets={FULL: td.full, PATCHES: td.patches},
                 dataset_config=train_dataset_config(), ...)
    # in loop:
    batches = RayDataBatches.from_train_shards(cfg.data, batch_size, seed)  # .batches
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import ray.data
import torch
from torch import Tensor

from fsg_ray.config import DataConfig
from fsg_ray.core import transforms
from fsg_ray.io import images
from fsg_ray.io.inputs import BadFile, DataReport, Input, derive_seed, fs_path, list_inputs
from fsg_ray.io.storage import Storage, StorageError
from fsg_ray.io.uri import parse_uri

log = logging.getLogger(__name__)

#: Names of the two training sets, as given to ``TorchTrainer(datasets=...)``.
FULL, PATCHES = "full", "patches"
#: Decoded full images keep at most this multiple of ``global_target_size`` as short side.
FULL_SIDE_FACTOR = 1.5
#: Files per read task: each task reads and decodes this many files in one fused
#: ``read -> map_batches`` step (Ray's default would start a task per few files).
FILES_PER_TASK = 32
#: Spawn keys of :func:`fsg_ray.io.inputs.derive_seed` that keep the seeds of different
#: random choices independent (the last three are drawn in :mod:`fsg_ray.distributed.batches`).
KEY_READ_ORDER, KEY_SHUFFLE, KEY_PAIR, KEY_PATCH = 0, 1, 2, 3

# Placeholders in the tensor columns of rows that failed to decode (filtered out by good_rows).
_NO_IMAGE = np.zeros((1, 1, 3), dtype=np.uint8)
_NO_WINDOWS = np.zeros((0, 2), dtype=np.int32)


@dataclass
class TrainingData:
    """Both training sets of a run and the report of the files they skipped.

    Attributes:
        full: X^(2): decoded full images (columns id, image), for
            :class:`~fsg_ray.distributed.batches.GlobalPairCollate`.
        patches: X^(1): decoded shop photos and their patch windows (columns id, image,
            windows), for :func:`~fsg_ray.distributed.batches.patch_epoch`.
        report: Bad files of both sources.
        heldout: Full images kept out of X^(2) (``holdout``), not decoded.
    """

    full: ray.data.Dataset
    patches: ray.data.Dataset
    report: DataReport
    heldout: tuple[Input, ...] = ()


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
    order = np.random.default_rng(derive_seed(seed, KEY_READ_ORDER)).permutation(len(inputs))
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
    # Ray Data reserves half the cluster's CPUs per operator and caps each operator's tasks at
    # its budget: on 2 CPUs the one fused read-decode operator ran one task at a time (its tasks'
    # total time equalled the pass's wall time). Without the reservation both CPUs decode:
    # 1000 shop photos materialize at 790 against 389 photos/s (docs/benchmarks.md, data plane).
    # This pipeline has one operator, so there is no other operator to starve.
    ds.context.op_resource_reservation_enabled = False
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
    return _tensor_columns(out, "image")


def _full_image(data: bytes, uri: str, min_side: int, max_side: int) -> np.ndarray:
    img = decoded_rgb(data, uri, max_side)
    h, w = img.shape[:2]
    if min(h, w) < min_side:
        raise images.ImageDecodeError(uri, f"{w}x{h} px is smaller than {min_side} px")
    if min(h, w) > max_side:
        img = transforms.resize_short_side_uint8(img, max_side)
    return img  # contiguous either way: decoded_rgb's copy, or the resize's output


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
    return _tensor_columns(out, "image", "windows")


def _shop_photo(
    data: bytes,
    item: Input,
    storage: Storage,
    side: int,
    size: int,
    stride: int,
    min_fraction: float,
) -> tuple[np.ndarray, np.ndarray]:
    img = transforms.resize_short_side_uint8(decoded_rgb(data, item.uri, side), side)
    h, w = img.shape[:2]
    mask = None
    if item.mask is not None:
        try:
            mask = images.decode_mask(storage.read_bytes(item.mask), (h, w), name=item.mask)
        except (images.ImageDecodeError, StorageError) as e:
            raise images.ImageDecodeError(item.uri, f"mask {e}") from e
    windows = transforms.patch_windows(h, w, size, stride, mask, min_fraction)
    return img, windows.numpy().astype(np.int32)


def decoded_rgb(data: bytes, uri: str, side: int) -> np.ndarray:
    """The photo decoded to (H, W, 3) uint8, writable; a large JPEG at a reduced scale whose
    short side is still at least ``side`` (:func:`fsg_ray.io.images.decode_image`'s
    ``min_side``), smaller photos at full size.

    Photos stay in uint8 until a trainer cuts them: a round trip through float took as long
    as decoding. np.array, not np.asarray: Pillow's buffer is read-only, and torch warns on
    a read-only array.
    """
    return np.array(images.decode_image(data, name=uri, min_side=side), dtype=np.uint8)


def _append(out: dict[str, list[Any]], **row: Any) -> None:
    for key, value in row.items():
        out[key].append(value)


def _tensor_columns(out: dict[str, list[Any]], *names: str) -> dict[str, Any]:
    """``out`` with its array columns as 1-D object arrays, one array per row.

    Ray Data turns a Python list of equal-shaped arrays into its tensor block element by
    element: 1.0 ms per 256 px photo, as long as decoding it; from an object array it takes
    0.04 ms, to the same Arrow tensor type (variable-shaped where the rows' shapes differ).
    """
    for name in names:
        column = np.empty(len(out[name]), dtype=object)
        for i, array in enumerate(out[name]):  # not column[:] = ...: numpy would stack them
            column[i] = array
        out[name] = column  # type: ignore[assignment]
    return out


def to_uint8(img: Tensor) -> np.ndarray:
    """(3, H, W) float in [0, 1] -> (H, W, 3) uint8, C-contiguous: 4x smaller in the object
    store than float."""
    u8 = img.mul(255).round().clamp(0, 255).to(torch.uint8)
    # Contiguous: Ray Data copies a strided array element by element into its Arrow block,
    # which took as long as decoding the photo (0.18 s per 96 photos of 256x341, 0.05 s
    # contiguous; docs/benchmarks.md, "Data plane").
    return u8.permute(1, 2, 0).contiguous().numpy()


def good_rows(decoded: ray.data.Dataset) -> ray.data.Dataset:
    """The rows of a decoded set that decoded, without the ``uri`` and ``reason`` columns."""
    return decoded.map_batches(_good_rows, batch_size=None, batch_format="pyarrow")


def _good_rows(block: pa.Table) -> pa.Table:
    # Ray Data's filter copies every column, images included, even when every row is kept
    # (0.6 ms per 256 px photo); a block of good rows, the usual case, is passed on as it is.
    good = pc.equal(block["reason"], "")
    if not pc.all(good).as_py():
        block = block.filter(good)
    return block.drop_columns(["uri", "reason"])


def data_report(decoded: ray.data.Dataset, inputs: Sequence[Input]) -> DataReport:
    """Counts and lists the bad files of a decoded set; missing files count as bad.

    Executes the pipeline's decoding once: materialize ``decoded`` first to reuse it.
    """
    rows = decoded.select_columns(["id", "uri", "reason"]).take_all()
    seen = {int(r["id"]) for r in rows}
    bad = [BadFile(str(r["uri"]), str(r["reason"])) for r in rows if r["reason"]]
    bad += [BadFile(i.uri, "missing: no such file") for i in inputs if i.id not in seen]
    return DataReport(len(inputs), len(inputs) - len(bad), tuple(sorted(bad)))


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
    with quiet_idle_cpu_warning():
        full = read_full_images(full_inputs, storage, cfg, seed).materialize()
        shop = read_shop_photos(shop_inputs, storage, cfg, seed).materialize()
        full_report, shop_report = data_report(full, full_inputs), data_report(shop, shop_inputs)
        for source, part in ((full_source, full_report), (shop_source, shop_report)):
            if part.good == 0:
                raise ValueError(f"{source}: none of {part.inputs} inputs is a usable image")
            log.info("%s: %d good, %d bad inputs", source, part.good, len(part.bad))
        good_full, good_shop = good_rows(full).materialize(), good_rows(shop).materialize()
    return TrainingData(good_full, good_shop, full_report + shop_report, tuple(heldout))


#: Ray Data's warning, as an execution starts, that the cluster has no idle CPU and "the
#: Dataset job will hang unless more CPUs are freed up".
NO_IDLE_CPU = "does not have any available CPUs"


class _Drop(logging.Filter):
    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text

    def filter(self, record: logging.LogRecord) -> bool:
        return self.text not in record.getMessage()


@contextlib.contextmanager
def quiet_idle_cpu_warning() -> Iterator[None]:
    """Drops Ray Data's :data:`NO_IDLE_CPU` warning inside the block.

    Inside :func:`training_data` it is always false: Ray counts the CPUs the previous
    execution's own tasks still hold for a moment (2 of 2 idle just before a
    ``materialize``, then the warning; the demo printed it on every run), and no trainer has
    started yet (``trainer._launch`` decodes every data set first), so no job can hang on
    them. Elsewhere the warning stays: a dataset read while trainers hold every CPU does hang.
    """
    logger = logging.getLogger("ray.data.dataset")
    drop = _Drop(NO_IDLE_CPU)
    logger.addFilter(drop)
    try:
        yield
    finally:
        logger.removeFilter(drop)


def train_dataset_config() -> ray.train.DataConfig:
    """Ray Train's ingest options for these datasets: rows in order, so resuming is exact.

    Pass as ``TorchTrainer(dataset_config=...)``; by default Ray Train applies the driver's
    global execution options to every shard. With several workers ``streaming_split`` still
    deals blocks out as workers ask, so only a one-worker run replays exactly the same rows.
    """
    import ray.train  # here, not at the top: only trainers need it, and it is slow to import

    return ray.train.DataConfig(execution_options=ray.data.ExecutionOptions(preserve_order=True))
