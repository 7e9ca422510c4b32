from __future__ import annotations

import logging

import pytest
import torch
from PIL import Image

from fsg_ray.config import DataConfig
from fsg_ray.io import folders

CFG = DataConfig(
    global_input_size=8, global_target_size=32, patch_size=32, patch_stride=16, style_size=32
)


def write(folder, name: str, img: Image.Image) -> None:
    folder.mkdir(exist_ok=True)
    img.save(folder / name)


def test_folder_loading_skips_corrupt_files_and_says_which(tmp_path, caplog) -> None:
    write(tmp_path / "full", "a.jpg", Image.new("RGB", (80, 40), "red"))
    (tmp_path / "full" / "b.jpg").write_bytes(b"\xff\xd8 truncated")
    (tmp_path / "full" / "notes.txt").write_text("ignored: not an image suffix")
    with caplog.at_level(logging.WARNING):
        imgs = folders.load_folder(tmp_path / "full", max_side=20)
    assert [tuple(i.shape) for i in imgs] == [(3, 20, 40)]
    assert "b.jpg" in caplog.text and "not a decodable image" in caplog.text


def test_missing_folder_is_named(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="nope: no such folder"):
        folders.load_folder(tmp_path / "nope", 10)


def test_shop_patches_respect_masks(tmp_path) -> None:
    write(tmp_path / "shop", "p.jpg", Image.new("RGB", (64, 64), "blue"))
    mask = Image.new("L", (64, 64), 0)
    mask.paste(255, (0, 0, 32, 64))  # left half
    write(tmp_path / "masks", "p.png", mask)
    all_patches = folders.shop_patches(tmp_path / "shop", None, CFG)
    assert all_patches.shape == (9, 3, 32, 32)  # 64 px -> (64-32)/16+1 = 3 per side
    cfg = DataConfig(**{**CFG.__dict__, "patch_mask_fraction": 0.9})
    assert folders.shop_patches(tmp_path / "shop", tmp_path / "masks", cfg).shape[0] == 3


def test_no_decodable_shop_photo_is_an_error(tmp_path) -> None:
    (tmp_path / "shop").mkdir()
    (tmp_path / "shop" / "x.png").write_bytes(b"junk")
    with pytest.raises(ValueError, match="no decodable shop photos"):
        folders.shop_patches(tmp_path / "shop", None, CFG)


def test_batches_shapes_epochs_and_state() -> None:
    patches = torch.arange(5).float().view(5, 1, 1, 1).expand(5, 3, 32, 32)
    b = folders.InMemoryBatches([torch.rand(3, 40, 50)], patches, CFG, batch_size=2, seed=0)
    x_low, y_c = b.global_batch()
    assert x_low.shape == (2, 3, 8, 8) and y_c.shape == (2, 3, 32, 32)
    seen = [int(v) for _ in range(5) for v in b.patch_batch()[:, 0, 0, 0]]
    assert sorted(seen[:5]) == [0, 1, 2, 3, 4]  # first epoch: every patch exactly once
    state = b.state_dict()
    nxt = b.patch_batch()
    b.load_state_dict(state)
    assert torch.equal(b.patch_batch(), nxt)


def test_empty_inputs_are_refused() -> None:
    with pytest.raises(ValueError, match="no full images"):
        folders.InMemoryBatches([], torch.rand(1, 3, 32, 32), CFG, 1, 0)
    with pytest.raises(ValueError, match="no shop-photo patches"):
        folders.InMemoryBatches([torch.rand(3, 40, 40)], torch.rand(0, 3, 32, 32), CFG, 1, 0)
