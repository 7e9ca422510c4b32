"""The training worker's side of the Ray Data pipelines: Algorithm 1's batches, epoch after
epoch, resumable.

The decoded sets of :mod:`fsg_ray.distributed.data` stay photo-sized in the object store; this
module cuts what Algorithm 1 eats. X^(2) pairs (x at ``global_input_size``, y_c at
``global_target_size``) are cut by :class:`GlobalPairCollate`, inside ``iter_torch_batches`` (a
prefetch thread), because a Ray Data function cannot know the epoch and the crop is drawn from
(seed, epoch, row id). X^(1) patches are cut from their photo's windows after a two-level
seeded shuffle (photos, then patches in a buffer: :func:`shuffled_windows`).
:class:`RayDataBatches` serves both sets to Algorithm 1 as
:class:`fsg_ray.core.algorithm.Batches`, and saves and restores its position in each stream so
that a resumed run replays the same batches.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch
from ray.data.collate_fn import NumpyBatchCollateFn
from torch import Tensor

from fsg_ray.config import DataConfig
from fsg_ray.core import transforms
from fsg_ray.distributed.data import (
    FILES_PER_TASK,
    FULL,
    KEY_PAIR,
    KEY_PATCH,
    KEY_SHUFFLE,
    PATCHES,
)
from fsg_ray.io.inputs import derive_seed

#: The per-epoch local shuffle of full images on the worker holds this many batches.
SHUFFLE_BATCHES = 8
#: Shop photos per batch read by a training worker, and held by its photo-level shuffle.
PHOTO_BATCH, PHOTO_SHUFFLE = 8, 32
#: Photo batches read ahead at least: two of the read tasks' blocks (data.FILES_PER_TASK
#: photos each). Two batches (16 photos, half a block) kept one decode task in flight on a
#: streamed pass: 255 against 437 photos/s on 2 CPUs (docs/benchmarks.md, data plane).
PHOTO_PREFETCH = 2 * FILES_PER_TASK // PHOTO_BATCH
#: Patches mixed by the patch-level shuffle buffer (:func:`shuffled_windows`).
PATCH_SHUFFLE = 1024


def _tensor(array: np.ndarray) -> Tensor:
    """A tensor over ``array``, copied only if Ray handed over a read-only or strided view."""
    return torch.from_numpy(np.require(array, requirements=["C", "W"]))


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
                derive_seed(self.seed, KEY_PAIR, self.epoch, int(row_id))
            )
            x, y_c = transforms.random_global_pair(img, self.low, self.high, gen)
            xs.append(x)
            ys.append(y_c)
        return torch.stack(xs), torch.stack(ys)  # (B, 3, s, s), (B, 3, S, S)


@dataclass(frozen=True)
class Photos:
    """Shop photos of one read batch: the (H, W, 3) arrays Ray handed over, not copied.

    Not a tuple of tensors on purpose: Ray would try to concatenate those to a device.
    """

    ids: list[int]
    images: list[np.ndarray]  # each (H, W, 3) uint8, possibly read-only
    windows: list[Tensor]  # each (N, 2) int: top-left corners of its patches


class PhotoCollate(NumpyBatchCollateFn):
    """Batches of shop photos (rows id, image, windows) -> :class:`Photos`."""

    def __call__(self, batch: dict[str, np.ndarray]) -> Photos:  # type: ignore[override]
        return Photos(
            [int(i) for i in batch["id"]],
            list(batch["image"]),
            [
                torch.from_numpy(np.asarray(w, dtype=np.int64).reshape(-1, 2))
                for w in batch["windows"]
            ],
        )


#: One patch, before it is cut: (photo id, photo (H, W, 3) uint8, top, left).
PatchRef = tuple[int, np.ndarray, int, int]


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
    """Patches of ``size`` px at their windows: (B, 3, size, size) uint8, channels_last."""
    # numpy copies in this thread; torch.stack spread the copy over the intra-op threads,
    # which on a busy machine wait for the cores Ray's prefetch thread and workers hold:
    # 79k against 36k patches/s in a 2-core trainer process (95k vs 76k with one thread).
    # Each patch is copied in the photo's own (H, W, 3) layout, rows of 3 x size bytes: 2x
    # as fast as gathering it channel by channel into (3, size, size) (96-140k against
    # 56-71k patches/s, one thread). The networks take channels_last anyway.
    views = [img[t : t + size, left : left + size] for _, img, t, left in refs]
    return torch.from_numpy(np.stack(views)).permute(0, 3, 1, 2)


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
                local_shuffle_seed=derive_seed(seed, KEY_SHUFFLE, n),
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
                prefetch_batches=max(prefetch_batches, PHOTO_PREFETCH),
                collate_fn=PhotoCollate(),
                local_shuffle_buffer_size=PHOTO_SHUFFLE,
                local_shuffle_seed=derive_seed(seed, KEY_SHUFFLE, n),
            )
        )
        rng = np.random.default_rng(derive_seed(seed, KEY_PATCH, n))
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
        prefetch_batches: Batches prepared ahead of the trainer, per set (the shop photos'
            stream reads at least ``PHOTO_PREFETCH`` batches of photos ahead).
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
