"""In-memory training data for one process: the core's :class:`~fsg_ray.core.algorithm.Batches`.

Used by ``fsg demo`` and the tests; Ray Data pipelines implement the same interface for
training at scale. Sampling is seeded and its state is part of every checkpoint.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from fsg_ray.config import DataConfig
from fsg_ray.core import transforms
from fsg_ray.io import images

log = logging.getLogger(__name__)
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp")


class InMemoryBatches:
    """Random global pairs from full images and shuffled patches from shop photos.

    Args:
        full: full images X^(2), each (3, H, W) in [0, 1].
        patches: every patch of the shop photos X^(1), (N, 3, p, p).
        cfg: image sizes.
        batch_size: samples per batch.
        seed: seeds both samplers.
    """

    def __init__(
        self, full: Sequence[Tensor], patches: Tensor, cfg: DataConfig, batch_size: int, seed: int
    ) -> None:
        if not full:
            raise ValueError("no full images (X^(2)) to train the global stage on")
        if len(patches) == 0:
            raise ValueError("no shop-photo patches (X^(1)) to train the patch stage on")
        self.full, self.patches, self.cfg, self.batch_size = list(full), patches, cfg, batch_size
        self.gen = torch.Generator().manual_seed(seed)
        self.order = torch.randperm(len(patches), generator=self.gen)
        self.cursor = 0

    def global_batch(self) -> tuple[Tensor, Tensor]:
        idx = torch.randint(0, len(self.full), (self.batch_size,), generator=self.gen).tolist()
        low, high = self.cfg.global_input_size, self.cfg.global_target_size
        pairs = [transforms.random_global_pair(self.full[i], low, high, self.gen) for i in idx]
        return torch.stack([p[0] for p in pairs]), torch.stack([p[1] for p in pairs])

    def patch_batch(self) -> Tensor:
        """The next batch of an epoch-wise seeded shuffle of all patches."""
        picked: list[int] = []
        while len(picked) < self.batch_size:
            if self.cursor == len(self.order):
                self.order, self.cursor = torch.randperm(len(self.patches), generator=self.gen), 0
            picked.append(int(self.order[self.cursor]))
            self.cursor += 1
        return self.patches[picked]

    def state_dict(self) -> dict[str, Any]:
        return {"gen": self.gen.get_state(), "order": self.order.clone(), "cursor": self.cursor}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.gen.set_state(state["gen"])
        self.order, self.cursor = state["order"].clone(), int(state["cursor"])


def list_images(folder: str | Path) -> list[Path]:
    """Image files directly inside ``folder``, sorted by name."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such folder")
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def load_folder(folder: str | Path, max_side: int) -> list[Tensor]:
    """Decodes every image of a folder, shrinking its shorter side to at most ``max_side``.

    Undecodable files are skipped with a warning naming the file and the reason.
    """
    out = []
    for path in list_images(folder):
        try:
            img = images.to_tensor(images.load_image(path))
        except images.ImageDecodeError as e:
            log.warning("skipping %s", e)
            continue
        out.append(
            transforms.resize_short_side(img, max_side) if min(img.shape[-2:]) > max_side else img
        )
    return out


def shop_patches(shop_dir: str | Path, mask_dir: str | Path | None, cfg: DataConfig) -> Tensor:
    """All X^(1) patches of the shop photos in a folder (masks matched by file stem)."""
    side = 2 * cfg.patch_size  # shop photos are brought to twice the patch side
    masks = {p.stem: p for p in list_images(mask_dir)} if mask_dir else {}
    out = []
    for path in list_images(shop_dir):
        try:
            img = transforms.resize_short_side(images.to_tensor(images.load_image(path)), side)
            mask = None
            if path.stem in masks:
                m = images.mask_to_tensor(images.load_image(masks[path.stem]))
                mask = transforms.resize(m[None].expand(3, -1, -1), (img.shape[1], img.shape[2]))[
                    0
                ].round()
        except images.ImageDecodeError as e:
            log.warning("skipping %s", e)
            continue
        out.append(
            transforms.patchify(
                img, cfg.patch_size, cfg.patch_stride, mask, cfg.patch_mask_fraction
            )
        )
    if not out:
        raise ValueError(f"{shop_dir}: no decodable shop photos")
    return torch.cat(out)
