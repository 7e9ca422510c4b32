"""benchmarks/bench_data.py's bare loops, without Ray: the shuffled loop cuts the same patches
as the plain one (each window once, the same pixels), only mixed across photos."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from fsg_ray.config import DataConfig
from fsg_ray.io import synthetic
from fsg_ray.io.folders import IMAGE_SUFFIXES
from fsg_ray.io.storage import Storage

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import bench_data  # noqa: E402

CFG = DataConfig(patch_size=32, patch_stride=16)  # 64 px photos: 9 patches each


def test_the_shuffled_bare_loop_cuts_every_patch_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synthetic.write_dataset(
        tmp_path, seed=0, n_full=2, n_shop=6, n_heldout=0, full_size=64, shop_size=64,
        styles=("stripes",),
    )  # fmt: skip
    uris = Storage().list_files(str(tmp_path / "shop"), IMAGE_SUFFIXES)
    cut: list[torch.Tensor] = []
    real_cut = bench_data.cut_patches

    def keep_cut(refs: list, size: int) -> torch.Tensor:
        cut.append(real_cut(refs, size))
        return cut[-1]

    monkeypatch.setattr(bench_data, "READ_BATCH", 9)  # 54 patches: six full batches
    monkeypatch.setattr(bench_data, "cut_patches", keep_cut)
    _, n = bench_data.bare_shuffled_pass(uris, CFG, map)
    _, n_plain = bench_data.bare_pass(uris, CFG, map)
    assert n == n_plain == 54
    shuffled = torch.cat(cut)
    plain = torch.cat([plain_patches(u) for u in uris])
    assert _sorted(shuffled) == _sorted(plain)
    assert not torch.equal(shuffled, plain)  # mixed, not in photo order


def _sorted(patches: torch.Tensor) -> list[bytes]:
    return sorted(p.numpy().tobytes() for p in patches)


def plain_patches(uri: str) -> torch.Tensor:
    from fsg_ray.core import transforms

    img, _ = bench_data.bare_photo(uri, 2 * CFG.patch_size, CFG.patch_size, CFG.patch_stride)
    chw = torch.from_numpy(img).permute(
        2, 0, 1
    )  # bare_photo gives (H, W, 3), as Ray Data stores it
    return transforms.patchify(chw, CFG.patch_size, CFG.patch_stride)
