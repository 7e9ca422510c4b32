"""Tests of the fsg_ray.io.synthetic package: garments, masks, style textures, the dataset."""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fsg_ray.io.synthetic import (
    GARMENT_KINDS,
    STYLE_NAMES,
    SyntheticLayout,
    garment,
    style_texture,
    write_dataset,
)
from fsg_ray.io.synthetic.dataset import _image_seed

SIZE = 96


def _arrays(image: Image.Image, mask: Image.Image) -> tuple[np.ndarray, np.ndarray]:
    return np.asarray(image, np.float32), np.asarray(mask) > 0


@pytest.fixture(scope="module")
def textures() -> dict[str, np.ndarray]:
    return {name: np.asarray(style_texture(name, 256), np.float32) for name in STYLE_NAMES}


@pytest.mark.parametrize("background", ["plain", "cluttered"])
@pytest.mark.parametrize("kind", GARMENT_KINDS)
def test_garment_image_and_mask(kind: str, background: str) -> None:
    image, mask = garment(3, SIZE, kind, background)
    assert image.mode == "RGB" and image.size == (SIZE, SIZE)
    assert mask.mode == "L" and mask.size == (SIZE, SIZE)
    m = np.asarray(mask)
    assert set(np.unique(m)) == {0, 255}
    assert 0.08 < (m > 0).mean() < 0.7
    borders = [m[0], m[-1], m[:, 0], m[:, -1]]
    assert not any(b.any() for b in borders)  # fitted inside a margin


@pytest.mark.parametrize("kind", GARMENT_KINDS)
def test_garment_coverage_over_seeds(kind: str) -> None:
    for seed in range(6):
        m = np.asarray(garment(seed, 64, kind)[1]) > 0
        assert 0.08 < m.mean() < 0.7, (kind, seed, m.mean())


def test_garment_is_deterministic_and_seed_dependent() -> None:
    a, ma = garment(7, SIZE, background="cluttered")
    b, mb = garment(7, SIZE, background="cluttered")
    c, _ = garment(8, SIZE, background="cluttered")
    assert np.array_equal(np.asarray(a), np.asarray(b))
    assert np.array_equal(np.asarray(ma), np.asarray(mb))
    assert np.abs(np.asarray(a, np.float32) - np.asarray(c, np.float32)).mean() > 10


def test_kind_none_matches_naming_the_drawn_kind() -> None:
    image, mask = garment(11, SIZE)
    named = [garment(11, SIZE, kind) for kind in GARMENT_KINDS]
    matches = [
        np.array_equal(np.asarray(i), np.asarray(image))
        and np.array_equal(np.asarray(m), np.asarray(mask))
        for i, m in named
    ]
    assert sum(matches) == 1


def test_seed_picks_every_kind() -> None:
    masks = {np.asarray(garment(s, 32)[1]).tobytes() for s in range(12)}
    assert len(masks) == 12


def test_backgrounds_plain_vs_cluttered() -> None:
    for seed, kind in zip(range(4), GARMENT_KINDS, strict=True):
        plain, pmask = _arrays(*garment(seed, SIZE, kind, "plain"))
        busy, bmask = _arrays(*garment(seed, SIZE, kind, "cluttered"))
        assert np.array_equal(pmask, bmask)  # the background does not change the garment
        assert np.array_equal(plain[pmask], busy[bmask])
        outside_plain, outside_busy = plain[~pmask], busy[~bmask]
        assert outside_plain.mean() > 230
        assert outside_busy.var() > 20 * outside_plain.var()


def test_garment_differs_from_plain_background() -> None:
    for seed in range(8):
        image, mask = _arrays(*garment(seed, SIZE, background="plain"))
        assert image[mask].mean() < image[~mask].mean() - 15


@pytest.mark.parametrize("name", STYLE_NAMES)
def test_style_texture_is_patterned(name: str, textures: dict[str, np.ndarray]) -> None:
    image = style_texture(name, 64)
    assert image.mode == "RGB" and image.size == (64, 64)
    full = textures[name]
    assert full.shape == (256, 256, 3)
    assert full.std() > 25
    # The period is ~1/6-1/10 of the side: a 128 px crop shows the whole pattern.
    crop = full[64:192, 64:192]
    assert crop.std() > 0.7 * full.std()
    # Strong structure: large mean gradient and several pattern periods per row and column.
    grad = np.abs(np.diff(full, axis=0)).mean() + np.abs(np.diff(full, axis=1)).mean()
    assert grad > 4
    luma = full.mean(axis=2)
    for profile in (luma[128] - luma[128].mean(), luma[:, 128] - luma[:, 128].mean()):
        crossings = np.count_nonzero(np.diff(np.sign(profile)) != 0)
        assert crossings >= 8, crossings


def test_style_textures_are_pairwise_distinct(textures: dict[str, np.ndarray]) -> None:
    for a, b in itertools.combinations(STYLE_NAMES, 2):
        assert np.abs(textures[a] - textures[b]).mean() > 30, (a, b)


def test_style_texture_deterministic_and_seeded() -> None:
    a, b = style_texture("leopard", 64, seed=1), style_texture("leopard", 64, seed=1)
    assert np.array_equal(np.asarray(a), np.asarray(b))
    assert not np.array_equal(np.asarray(a), np.asarray(style_texture("leopard", 64, seed=2)))


@pytest.mark.parametrize(
    ("call", "bad", "valid"),
    [
        (lambda: garment(0, 64, kind="hat"), "hat", GARMENT_KINDS),
        (lambda: garment(0, 64, background="beach"), "beach", ("plain", "cluttered")),
        (lambda: style_texture("paisley", 64), "paisley", STYLE_NAMES),
        (lambda: write_dataset("/nonexistent/x", styles=["dots", "plaid"]), "plaid", STYLE_NAMES),
    ],
)
def test_bad_names_raise_with_choices(
    call: Callable[[], object], bad: str, valid: tuple[str, ...]
) -> None:
    with pytest.raises(ValueError) as err:
        call()
    assert repr(bad) in str(err.value)
    assert all(v in str(err.value) for v in valid)


def test_bad_sizes_and_counts_raise(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="32"):
        garment(0, 31)
    with pytest.raises(ValueError, match="32"):
        style_texture("dots", 16)
    with pytest.raises(ValueError, match="n_shop"):
        write_dataset(tmp_path / "d", n_shop=-1)
    assert not (tmp_path / "d").exists()  # validated before writing anything


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_write_dataset(tmp_path: Path) -> None:
    def write(root: Path) -> dict[str, list[str]]:
        return write_dataset(
            root,
            seed=5,
            n_full=3,
            n_shop=2,
            n_heldout=5,
            full_size=48,
            shop_size=40,
            style_size=36,
            styles=("dots", "waves"),
        )

    written = write(tmp_path / "a")
    layout = SyntheticLayout()
    assert set(written) == {"full", "shop", "shop_masks", "styles", "heldout", "heldout_masks"}
    assert written["full"] == ["full/000000.jpg", "full/000001.jpg", "full/000002.jpg"]
    assert written["styles"] == ["styles/dots.png", "styles/waves.png"]
    assert all(paths == sorted(paths) for paths in written.values())
    files = _files(tmp_path / "a")
    assert sorted(files) == sorted(itertools.chain.from_iterable(written.values()))
    sizes = {
        "full": 48,
        "shop": 40,
        "shop_masks": 40,
        "heldout": 40,
        "heldout_masks": 40,
        "styles": 36,
    }
    for folder, paths in written.items():
        for rel in paths:
            with Image.open(tmp_path / "a" / rel) as im:
                im.load()
                assert im.size == (sizes[folder],) * 2
                assert im.format == ("JPEG" if rel.endswith(".jpg") else "PNG")
                assert im.mode == ("L" if folder.endswith("masks") else "RGB")
    for photos, masks in ((layout.shop, layout.shop_masks), (layout.heldout, layout.heldout_masks)):
        assert [Path(p).stem for p in written[photos]] == [Path(p).stem for p in written[masks]]
    # Re-running, in place or elsewhere, gives byte-identical files and no leftovers.
    assert write(tmp_path / "a") == written
    assert write(tmp_path / "b") == written
    assert _files(tmp_path / "a") == files == _files(tmp_path / "b")


def test_dataset_masks_match_garments(tmp_path: Path) -> None:
    written = write_dataset(
        tmp_path, seed=1, n_full=0, n_shop=2, n_heldout=0, shop_size=64, styles=()
    )
    assert written["full"] == [] and written["styles"] == []
    for photo, mask_path in zip(written["shop"], written["shop_masks"], strict=True):
        image = np.asarray(Image.open(tmp_path / photo), np.float32)
        mask = np.asarray(Image.open(tmp_path / mask_path)) > 0
        assert image[~mask].mean() > 225 and image[mask].mean() < image[~mask].mean() - 15


def test_split_seeds_are_disjoint() -> None:
    seeds = [_image_seed(0, split, i) for split in ("full", "shop", "heldout") for i in range(200)]
    assert len(set(seeds)) == len(seeds)
    assert _image_seed(0, "shop", 3) != _image_seed(1, "shop", 3)


def _digest(*parts: Image.Image | bytes) -> str:
    d = hashlib.sha256()
    for part in parts:
        d.update(part if isinstance(part, bytes) else np.asarray(part).tobytes())
    return d.hexdigest()[:16]


# Output pins, taken before synthetic.py became a package (#14): the split must not change a
# single pixel. They depend on the numpy and Pillow builds (float32 trig, JPEG encoder), so a
# dependency upgrade may legitimately change them; a refactor may not.
GARMENT_PINS = {"plain": "389bd7ec35c407a8", "cluttered": "160e521a4a3abee4"}
TEXTURE_PINS = {
    "stripes": "5548a8fced21f295",
    "dots": "57bdb949f7938a74",
    "waves": "89d27e13e3fe1296",
    "leopard": "ac47e9f245530f06",
    "checks": "5d5d763f9cc3896b",
    "porcelain": "87e1800e18291f2c",
}


@pytest.mark.parametrize("background", sorted(GARMENT_PINS))
def test_garment_output_is_pinned(background: str) -> None:
    assert _digest(*garment(7, SIZE, background=background)) == GARMENT_PINS[background]


@pytest.mark.parametrize("name", STYLE_NAMES)
def test_style_texture_output_is_pinned(name: str) -> None:
    assert _digest(style_texture(name, 64, seed=3)) == TEXTURE_PINS[name]


def test_dataset_files_are_pinned(tmp_path: Path) -> None:
    write_dataset(
        tmp_path,
        seed=2,
        n_full=1,
        n_shop=1,
        n_heldout=1,
        full_size=40,
        shop_size=40,
        style_size=40,
        styles=("checks",),
    )
    files = _files(tmp_path)
    parts = [part for rel in sorted(files) for part in (rel.encode(), files[rel])]
    assert _digest(*parts) == "815dc1637fd8b721"
