"""A whole synthetic dataset on disk: full images, shop photos with masks, held-out garments
with masks and style images, in the ``SyntheticLayout`` folders, each file written atomically.
"""

from __future__ import annotations

import io
import logging
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
from PIL import Image

from fsg_ray.io.synthetic._common import check_choice, check_size
from fsg_ray.io.synthetic.garments import GARMENT_KINDS, PRODUCT_BACKGROUNDS, garment
from fsg_ray.io.synthetic.styles import STYLE_NAMES, style_texture

logger = logging.getLogger(__name__)

JPEG_QUALITY = 92


@dataclass(frozen=True)
class SyntheticLayout:
    """Folder names of a synthetic dataset, relative to its root."""

    full: str = "full"  # Fashion144k-like full images (cluttered backgrounds, JPEG)
    shop: str = "shop"  # shop photos (plain, coloured or gradient backdrops, JPEG)
    shop_masks: str = "shop_masks"  # masks of shop photos, PNG, same file stem as the photo
    styles: str = "styles"  # one PNG per style, <name>.png
    heldout: str = "heldout"  # held-out test garments (plain background, JPEG) ...
    heldout_masks: str = "heldout_masks"  # ... and their masks (PNG)


_SPLIT_IDS = {"full": 0, "shop": 1, "heldout": 2}


def _image_seed(seed: int, split: str, index: int) -> int:
    """Independent per-image seed derived from (dataset seed, split, index)."""
    seq = np.random.SeedSequence(seed, spawn_key=(_SPLIT_IDS[split], index))
    return int(seq.generate_state(1, np.uint64)[0])


def _write_atomic(image: Image.Image, path: Path) -> None:
    """Encodes ``image`` (JPEG or PNG by suffix) to a temp file beside ``path``, then renames."""
    buf = io.BytesIO()
    if path.suffix == ".jpg":
        image.save(buf, format="JPEG", quality=JPEG_QUALITY)
    else:
        image.save(buf, format="PNG")
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(buf.getvalue())
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def _images(
    seed: int, n_full: int, n_shop: int, n_heldout: int, full_size: int, shop_size: int
) -> list[tuple[str, str, Image.Image]]:
    """(folder, file name, image) of every garment image and mask of the dataset."""
    out = []
    for i in range(n_full):
        image, _ = garment(_image_seed(seed, "full", i), full_size, background="cluttered")
        out.append(("full", f"{i:06d}.jpg", image))
    for i in range(n_shop):
        backdrop = PRODUCT_BACKGROUNDS[i % len(PRODUCT_BACKGROUNDS)]
        image, mask = garment(_image_seed(seed, "shop", i), shop_size, background=backdrop)
        out += [("shop", f"{i:06d}.jpg", image), ("shop_masks", f"{i:06d}.png", mask)]
    for i, kind in enumerate(heldout_kinds(n_heldout)):
        image, mask = garment(_image_seed(seed, "heldout", i), shop_size, kind=kind)
        out += [("heldout", f"{i:06d}.jpg", image), ("heldout_masks", f"{i:06d}.png", mask)]
    return out


def heldout_kinds(n_heldout: int) -> list[str]:
    """The garment kind of each held-out garment: ``GARMENT_KINDS`` in turn, so any
    ``len(GARMENT_KINDS)`` consecutive ones hold every kind once."""
    return [GARMENT_KINDS[i % len(GARMENT_KINDS)] for i in range(n_heldout)]


def write_dataset(
    out_dir: str | os.PathLike,
    *,
    seed: int = 0,
    n_full: int = 64,
    n_shop: int = 16,
    n_heldout: int = len(GARMENT_KINDS),
    full_size: int = 256,
    shop_size: int = 256,
    style_size: int = 256,
    styles: Sequence[str] = STYLE_NAMES,
) -> dict[str, list[str]]:
    """Writes a synthetic dataset in ``SyntheticLayout`` under ``out_dir``.

    Full images (cluttered backdrops), shop photos (plain, coloured and gradient backdrops
    in turn) and held-out garments (plain backdrops, which the evaluation's estimated
    silhouettes need) use disjoint per-image seeds derived from (seed, split, index);
    held-out garments cycle through ``GARMENT_KINDS`` (:func:`heldout_kinds`), so the
    default count holds one of each. The same arguments give byte-identical files; each
    file is written atomically.

    Args:
        out_dir: Root folder; created if missing.
        seed: Dataset seed (non-negative).
        n_full: Number of full (street-like) images.
        n_shop: Number of shop photos, each with a mask of the same stem.
        n_heldout: Number of held-out garments, each with a mask of the same stem; at least
            ``len(GARMENT_KINDS)`` to hold every kind.
        full_size: Side of full images in pixels.
        shop_size: Side of shop photos, held-out garments and their masks.
        style_size: Side of style images.
        styles: Style names to write, each from ``STYLE_NAMES``.

    Returns:
        Folder name -> sorted relative paths written, e.g. ``"shop_masks/000003.png"``.

    Raises:
        ValueError: For an unknown style, a negative count or a size below 32.
    """
    for name in styles:
        check_choice(name, STYLE_NAMES, "style")
    for size in (full_size, shop_size, style_size):
        check_size(size)
    if min(n_full, n_shop, n_heldout) < 0:
        raise ValueError(f"counts must be >= 0, got {n_full=}, {n_shop=}, {n_heldout=}")
    layout, root = SyntheticLayout(), Path(out_dir)
    items = _images(seed, n_full, n_shop, n_heldout, full_size, shop_size)
    items += [("styles", f"{name}.png", style_texture(name, style_size, seed)) for name in styles]
    written: dict[str, list[str]] = {f.name: [] for f in fields(layout)}
    for folder in written:
        (root / getattr(layout, folder)).mkdir(parents=True, exist_ok=True)
    for folder, file_name, image in items:
        rel = f"{getattr(layout, folder)}/{file_name}"
        _write_atomic(image, root / rel)
        written[folder].append(rel)
    logger.info("wrote synthetic dataset to %s: %s", root, {k: len(v) for k, v in written.items()})
    return {k: sorted(v) for k, v in written.items()}
