"""Ray Data pipelines on a small dataset full of odd files, from local disk and from S3 (moto).

The dataset (tests/conftest.py: ``data_root``, ``data_bucket``): 4 synthetic full images plus
10 odd ones in ``full/`` (5 usable: CMYK, 16-bit, palette, RGBA, EXIF-rotated; 5 bad), and 3
synthetic 64 px shop photos with masks plus a 96x48 photo without mask and a truncated one in
``shop/``.
"""

from __future__ import annotations

import io
import json
import logging
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from conftest import BAD_FULL, BAD_SHOP
from PIL import Image

from fsg_ray.config import DataConfig
from fsg_ray.core import transforms
from fsg_ray.distributed import data
from fsg_ray.distributed.batches import (
    PHOTO_BATCH,
    PHOTO_PREFETCH,
    GlobalPairCollate,
    PatchRef,
    PhotoCollate,
    Photos,
    RayDataBatches,
    cut_patches,
    patch_epoch,
    shuffled_windows,
)
from fsg_ray.io.inputs import BadFile, DataReport, Input, list_inputs, write_report
from fsg_ray.io.storage import Storage
from fsg_ray.io.uri import join, relative

CFG = DataConfig(
    global_input_size=16, global_target_size=32, patch_size=32, patch_stride=16, style_size=48
)
SOURCES = ["local", "s3"]
GOOD_FULL = 9  # 4 synthetic + CMYK, 16-bit, palette, RGBA, EXIF-rotated
# (H, W) of the shop photos after resizing the short side to 2 x 32 px, by row id.
SHOP_SIZES = {0: (64, 64), 1: (64, 64), 2: (64, 64), 4: (64, 128)}


@pytest.fixture(scope="module")
def decoded(
    ray_local: None, roots: dict[str, str], storage: Storage
) -> dict[tuple[str, str], tuple[Any, list[Input]]]:
    """(source, "full" or "shop") -> (materialized decoded set, its inputs)."""
    out = {}
    for source, root in roots.items():
        full = list_inputs(join(root, "full"), storage)
        shop = list_inputs(join(root, "shop"), storage, join(root, "shop_masks"))
        out[source, "full"] = (data.read_full_images(full, storage, CFG, 0).materialize(), full)
        out[source, "shop"] = (data.read_shop_photos(shop, storage, CFG, 0).materialize(), shop)
    return out


def rel(uri: str, roots: dict[str, str]) -> str:
    return next(relative(uri, r) for r in roots.values() if uri.startswith(r))


def patch_keys(ds: Any) -> list[tuple[int, int, int]]:
    """(photo id, top, left) of every patch window of a decoded shop set, in row order."""
    rows = ds.select_columns(["id", "windows"]).take_all()
    return [(int(r["id"]), int(t), int(left)) for r in rows for t, left in r["windows"]]


# ---------------------------------------------------------------- decoding and reports


@pytest.mark.ray
@pytest.mark.parametrize("source", SOURCES)
def test_full_images_count_good_rows_and_list_every_bad_file(
    source: str, decoded: dict[Any, Any], roots: dict[str, str]
) -> None:
    ds, inputs = decoded[source, "full"]
    report = data.data_report(ds, inputs)
    assert (report.inputs, report.good) == (14, GOOD_FULL)
    reasons = {rel(b.uri, roots): b.reason for b in report.bad}
    assert sorted(reasons) == sorted(BAD_FULL)
    assert reasons["full/empty.jpg"] == "empty file (0 bytes)"
    assert reasons["full/not_an_image.jpg"] == (
        "not a decodable image (not JPEG, PNG, WEBP, BMP, TIFF, GIF)"
    )
    assert reasons["full/huge.png"].startswith("exceeds the limit of 64000000 pixels")
    assert reasons["full/truncated.jpg"].startswith("not a decodable image (image file is trunc")
    assert reasons["full/corrupt.jpg"].startswith("not a decodable image (")
    good = {int(r["id"]): r["image"] for r in data.good_rows(ds).take_all()}
    by_name = {rel(i.uri, roots): good[i.id] for i in inputs if i.id in good}
    assert by_name["full/rotated.jpg"].shape == (48, 24, 3)  # EXIF orientation applied
    assert by_name["full/cmyk.jpg"].shape == (32, 40, 3)
    assert by_name["full/gray16.png"].dtype == np.uint8
    assert by_name["full/rgba.png"][0, 0].tolist() == [255, 127, 127]  # red at 50% over white


@pytest.mark.ray
def test_missing_manifest_entries_are_reported_not_fatal(
    ray_local: None, data_root: Path, storage: Storage
) -> None:
    manifest = data_root.parent / "missing.csv"
    manifest.write_text(f"image\n{data_root}/full/000000.jpg\n{data_root}/full/gone.jpg\n")
    inputs = list_inputs(str(manifest), storage)
    report = data.data_report(data.read_full_images(inputs, storage, CFG, 0), inputs)
    assert report == DataReport(
        2, 1, (BadFile(f"{data_root}/full/gone.jpg", "missing: no such file"),)
    )


@pytest.mark.ray
def test_report_is_written_as_json_and_parquet(
    decoded: dict[Any, Any], s3_bucket: str, storage: Storage
) -> None:
    full = data.data_report(*decoded["s3", "full"])
    shop = data.data_report(*decoded["s3", "shop"])
    report = full + shop
    assert (report.inputs, report.good, len(report.bad)) == (19, GOOD_FULL + 4, 6)
    written = write_report(report, join(s3_bucket, "runs/r1"), storage)
    assert written == [
        join(s3_bucket, "runs/r1", n) for n in ("data_report.json", "bad_files.parquet")
    ]
    saved = json.loads(storage.read_bytes(written[0]))
    assert saved["inputs"] == 19 and saved["bad"] == 6
    assert [b["uri"] for b in saved["bad_files"]] == [b.uri for b in report.bad]
    table = pq.read_table(io.BytesIO(storage.read_bytes(written[1])))
    assert table.column("uri").to_pylist() == [b.uri for b in report.bad]
    assert table.column("reason").to_pylist() == [b.reason for b in report.bad]


# ---------------------------------------------------------------- X^(1) patches


@pytest.mark.ray
@pytest.mark.parametrize("source", SOURCES)
def test_every_patch_at_the_stride(
    source: str, decoded: dict[Any, Any], roots: dict[str, str]
) -> None:
    ds, inputs = decoded[source, "shop"]
    report = data.data_report(ds, inputs)
    assert (report.good, [rel(b.uri, roots) for b in report.bad]) == (4, list(BAD_SHOP))
    photos = {int(r["id"]): r["image"].shape[:2] for r in data.good_rows(ds).take_all()}
    assert photos == SHOP_SIZES
    keys = patch_keys(data.good_rows(ds))
    p, s = CFG.patch_size, CFG.patch_stride
    expected = {i: ((h - p) // s + 1) * ((w - p) // s + 1) for i, (h, w) in SHOP_SIZES.items()}
    assert expected == {0: 9, 1: 9, 2: 9, 4: 21}
    counts = {i: sum(1 for k in keys if k[0] == i) for i in SHOP_SIZES}
    assert counts == expected and len(set(keys)) == len(keys) == 48
    assert {(t, left) for i, t, left in keys if i == 4} == {
        (t, left) for t in range(0, 64 - p + 1, s) for left in range(0, 128 - p + 1, s)
    }


def mask_cover(mask_png: Path, p: int, s: int) -> list[float]:
    """Fraction of garment pixels in each patch window, row-major, computed with numpy."""
    mask = np.asarray(Image.open(mask_png).convert("L")) >= 128
    h, w = mask.shape
    return [
        float(mask[t : t + p, left : left + p].mean())
        for t in range(0, h - p + 1, s)
        for left in range(0, w - p + 1, s)
    ]


@pytest.mark.ray
def test_masks_keep_only_patches_mostly_inside_the_garment(
    ray_local: None, data_root: Path, storage: Storage
) -> None:
    fraction = 0.5
    cfg = DataConfig(**{**CFG.__dict__, "patch_mask_fraction": fraction})
    shop = list_inputs(str(data_root / "shop"), storage, str(data_root / "shop_masks"))
    keys = patch_keys(data.good_rows(data.read_shop_photos(shop, storage, cfg, 0)))
    counts = {i: sum(1 for k in keys if k[0] == i) for i in SHOP_SIZES}
    expected = {
        i: sum(c >= fraction for c in mask_cover(data_root / f"shop_masks/00000{i}.png", 32, 16))
        for i in (0, 1, 2)
    }
    assert counts == {**expected, 4: 21}  # the photo without mask keeps all its patches
    assert 0 < sum(expected.values()) < 27  # the masks do filter


def fake_photos(n: int, windows: int) -> list[Photos]:
    """Photos of one read batch each, with ``windows`` windows apiece; no Ray."""
    return [
        Photos(
            [i],
            [np.full((8, 16, 3), i, dtype=np.uint8)],
            [torch.tensor([[0, w] for w in range(windows)])],
        )
        for i in range(n)
    ]


def flat_keys(batches: list[list[PatchRef]]) -> list[tuple[int, int, int]]:
    return [(ref[0], ref[2], ref[3]) for batch in batches for ref in batch]


def test_patch_shuffle_mixes_photos_and_draws_every_window_once() -> None:
    def run(seed: int) -> list[list[PatchRef]]:
        rng = np.random.default_rng(seed)
        return list(shuffled_windows(fake_photos(10, 9), 4, rng, buffer=20))

    first, again, other = run(0), run(0), run(1)
    assert all(len(b) == 4 for b in first) and len(first) == 90 // 4  # 2 short ones dropped
    keys = flat_keys(first)
    assert len(set(keys)) == len(keys) == 88
    assert keys == flat_keys(again) and keys != flat_keys(other)
    assert len({k[0] for k in keys[:20]}) >= 3  # early batches already mix several photos
    cut = cut_patches(first[0], 2)
    assert cut.shape == (4, 3, 2, 2) and cut.dtype == torch.uint8
    assert [int(c[0, 0, 0]) for c in cut] == [ref[0] for ref in first[0]]  # photo i is all i


@pytest.mark.ray
def test_patch_epochs_are_deterministic_by_seed_and_epoch(decoded: dict[Any, Any]) -> None:
    photos = data.good_rows(decoded["local", "shop"][0])

    def epoch(seed: int, n: int) -> list[bytes]:
        batches = patch_epoch(photos, CFG, 4, seed, prefetch_batches=1)(n)
        return [bytes(p.numpy().tobytes()) for batch in batches for p in batch]

    first, again, other, next_epoch = epoch(0, 0), epoch(0, 0), epoch(1, 0), epoch(0, 1)
    assert len(first) == 48 and first == again  # 48 patches, 12 full batches of 4
    assert first != other and sorted(first) == sorted(other)
    assert first != next_epoch and sorted(first) == sorted(next_epoch)


@pytest.mark.ray
def test_two_shards_are_disjoint_and_cover_the_patches(decoded: dict[Any, Any]) -> None:
    photos = data.good_rows(decoded["local", "shop"][0])
    a, b = (set(patch_keys(shard)) for shard in photos.split(2, equal=True))
    assert a and b and not a & b and a | b == set(patch_keys(photos))


@pytest.mark.ray
def test_local_and_s3_give_identical_data(decoded: dict[Any, Any]) -> None:
    for kind in ("full", "shop"):
        local, s3 = (
            {int(r["id"]): r for r in data.good_rows(decoded[s, kind][0]).take_all()}
            for s in SOURCES
        )
        assert local.keys() == s3.keys()
        for column in ("image", "windows") if kind == "shop" else ("image",):
            assert all(np.array_equal(local[i][column], s3[i][column]) for i in local)


# ---------------------------------------------------------------- the trainer's side


def test_global_pairs_depend_on_seed_epoch_and_row_id_not_on_position() -> None:
    rng = np.random.default_rng(0)
    imgs = [rng.integers(0, 256, (40, 30 + 4 * i, 3), dtype=np.uint8) for i in range(3)]
    column = np.empty(3, dtype=object)  # variable-shaped images, as Ray hands them over
    for i, img in enumerate(imgs):
        column[i] = img
    batch = {"id": np.array([5, 7, 9]), "image": column}
    x, y_c = GlobalPairCollate(CFG, seed=3, epoch=1)(batch)
    assert x.shape == (3, 3, 16, 16) and y_c.shape == (3, 3, 32, 32)
    assert torch.allclose(x, transforms.resize(y_c, 16))  # x is y_c at the low resolution
    swapped = {"id": batch["id"][::-1], "image": batch["image"][::-1]}
    x2, y2 = GlobalPairCollate(CFG, seed=3, epoch=1)(swapped)
    assert torch.equal(y2, y_c.flip(0)) and torch.equal(x2, x.flip(0))
    _, next_epoch = GlobalPairCollate(CFG, seed=3, epoch=2)(batch)
    assert not torch.equal(next_epoch, y_c)


@pytest.mark.ray
def test_ray_data_batches_serve_algorithm_1_and_resume(
    ray_local: None, data_root: Path, storage: Storage
) -> None:
    root = str(data_root)
    td = data.training_data(
        join(root, "full"), join(root, "shop"), storage, CFG, 0, join(root, "shop_masks")
    )
    assert (td.report.inputs, td.report.good) == (19, GOOD_FULL + 4)
    batches = RayDataBatches(td.full, td.patches, CFG, batch_size=4, seed=0)
    x, y_c = batches.global_batch()
    assert (
        x.shape == (4, 3, 16, 16) and y_c.shape == (4, 3, 32, 32) and 0 <= x.min() <= x.max() <= 1
    )
    assert batches.patch_batch().shape == (4, 3, 32, 32)
    for _ in range(4):  # 9 good full images, 4 per batch: 2 batches per epoch
        batches.global_batch()
    state = batches.state_dict()
    assert state == {"global": {"epoch": 2, "batches": 1}, "patch": {"epoch": 0, "batches": 1}}
    resumed = RayDataBatches(td.full, td.patches, CFG, batch_size=4, seed=0)
    resumed.load_state_dict(state)
    (x, y_c), (x2, y2) = batches.global_batch(), resumed.global_batch()
    assert torch.equal(x, x2) and torch.equal(y_c, y2)
    assert torch.equal(batches.patch_batch(), resumed.patch_batch())


@pytest.mark.ray
def test_each_worker_reads_its_streaming_shard(decoded: dict[Any, Any]) -> None:
    """Two workers, as Ray Train hands shards over (``streaming_split``), read concurrently."""
    full = data.good_rows(decoded["local", "full"][0])
    patches = data.good_rows(decoded["local", "shop"][0])
    full_shards, patch_shards = (ds.streaming_split(2, equal=True) for ds in (full, patches))

    def worker(rank: int) -> list[Any]:
        batches = RayDataBatches(full_shards[rank], patch_shards[rank], CFG, 2, seed=0)
        x, y_c = batches.global_batch()
        patch = batches.patch_batch()
        return [x.shape, y_c.shape, patch.shape, batches.state_dict()]

    with ThreadPoolExecutor(2) as pool:  # streaming_split shards must be read concurrently
        results = list(pool.map(worker, [0, 1]))
    state = {"global": {"epoch": 0, "batches": 1}, "patch": {"epoch": 0, "batches": 1}}
    assert results == [[(2, 3, 16, 16), (2, 3, 32, 32), (2, 3, 32, 32), state]] * 2


def test_train_ingest_keeps_rows_in_order() -> None:
    assert data.train_dataset_config()._user_execution_options.preserve_order


@pytest.mark.ray
def test_decoding_uses_every_cpu_and_leaves_the_global_context_alone(
    ray_local: None, roots: dict[str, str], storage: Storage
) -> None:
    # Ray Data's per-operator reservation held the decode to one task at a time on 2 CPUs
    # (docs/benchmarks.md, data plane): the decoded sets turn it off on their own context.
    import ray.data

    shop = list_inputs(join(roots["local"], "shop"), storage)
    ds = data.read_shop_photos(shop, storage, CFG, 0)
    assert ds.context.op_resource_reservation_enabled is False
    assert data.good_rows(ds).context.op_resource_reservation_enabled is False
    assert ray.data.DataContext.get_current().op_resource_reservation_enabled is True


def test_photo_collate_gives_chw_photos_and_their_windows() -> None:
    rng = np.random.default_rng(0)
    hwc = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in ((40, 48), (32, 64))]
    windows = [np.array([[0, 0], [8, 16]], dtype=np.int32), np.zeros((0, 2), dtype=np.int32)]
    batch = {"id": np.array([3, 7]), "image": hwc, "windows": windows}
    photos = PhotoCollate()(batch)  # type: ignore[arg-type]
    assert photos.ids == [3, 7]
    assert all(img is src for img, src in zip(photos.images, hwc, strict=True))  # not copied
    assert [w.tolist() for w in photos.windows] == [[[0, 0], [8, 16]], []]
    patch = cut_patches([(3, photos.images[0], 8, 16)], 16)
    assert torch.equal(patch[0], torch.from_numpy(hwc[0][8:24, 16:32]).permute(2, 0, 1))
    assert patch.is_contiguous(memory_format=torch.channels_last)


def test_the_photo_stream_reads_two_decode_blocks_ahead() -> None:
    # Fewer photos ahead than a read task's block kept one decode task in flight on a
    # streamed pass (docs/benchmarks.md, data plane).
    asked: list[dict[str, Any]] = []

    class Source:
        def iter_torch_batches(self, **kwargs: Any) -> Any:
            asked.append(kwargs)
            return iter([])

    for prefetch in (1, 2 * PHOTO_PREFETCH):
        list(patch_epoch(Source(), CFG, 4, seed=0, prefetch_batches=prefetch)(0))
    assert [a["prefetch_batches"] for a in asked] == [PHOTO_PREFETCH, 2 * PHOTO_PREFETCH]
    assert PHOTO_PREFETCH * PHOTO_BATCH >= 2 * data.FILES_PER_TASK


def test_to_uint8_is_rounded_hwc_and_contiguous() -> None:
    img = torch.zeros(3, 2, 5)
    img[0], img[1], img[2] = 1.0, 0.5, 0.2  # 255, 127.5 -> 128, 51
    out = data.to_uint8(img)
    assert out.shape == (2, 5, 3) and out.dtype == np.uint8
    assert out[0, 0].tolist() == [255, 128, 51]
    # strided views are copied element by element into Ray Data's Arrow blocks
    assert out.flags["C_CONTIGUOUS"]


def test_tensor_columns_hold_one_array_per_row_even_when_shapes_agree() -> None:
    photos = [np.full((4, 6, 3), i, dtype=np.uint8) for i in range(3)]
    out = data._tensor_columns({"id": [0, 1, 2], "image": list(photos)}, "image")
    assert out["id"] == [0, 1, 2]
    assert out["image"].shape == (3,) and out["image"].dtype == object
    assert all(a is b for a, b in zip(out["image"], photos, strict=True))


def test_good_rows_pass_a_clean_block_without_copying_and_filter_a_dirty_one() -> None:
    images = np.arange(3 * 8, dtype=np.uint8).reshape(3, 8)
    block = pa.table(
        {"id": [0, 1, 2], "uri": ["a", "b", "c"], "reason": ["", "", ""], "image": list(images)}
    )
    clean = data._good_rows(block)
    assert clean.column_names == ["id", "image"]
    assert clean["image"].chunks[0].buffers() == block["image"].chunks[0].buffers()
    dirty = data._good_rows(block.set_column(2, "reason", pa.array(["", "truncated", ""])))
    assert dirty["id"].to_pylist() == [0, 2]
    assert dirty["image"].to_pylist() == [images[0].tolist(), images[2].tolist()]


def test_a_large_shop_photo_is_decoded_small_and_ends_at_the_patch_scale() -> None:
    buf = io.BytesIO()
    Image.new("RGB", (1600, 1200), (200, 40, 90)).save(buf, "JPEG")  # decoded at 400 x 300
    img, windows = data._shop_photo(
        buf.getvalue(), Input(0, "big.jpg"), None, side=256, size=128, stride=16, min_fraction=0
    )  # type: ignore[arg-type]
    assert img.shape == (256, 341, 3) and img.dtype == np.uint8 and img.flags["C_CONTIGUOUS"]
    assert np.abs(img.astype(int) - [200, 40, 90]).max() <= 2
    assert len(windows) == 9 * 14  # (256 - 128) / 16 + 1 rows, (341 - 128) // 16 + 1 columns


def test_the_idle_cpu_warning_is_dropped_inside_the_block_only(
    caplog: pytest.LogCaptureFixture,
) -> None:
    ray_data_log = logging.getLogger("ray.data.dataset")
    warning = "Warning: The Ray cluster currently does not have any available CPUs. The ..."
    with caplog.at_level(logging.WARNING, logger="ray.data.dataset"):
        with data.quiet_idle_cpu_warning():
            ray_data_log.warning(warning)
            ray_data_log.warning("a block failed")  # any other warning still shows
        ray_data_log.warning(warning)  # after the block: shown again
    assert [r.getMessage() for r in caplog.records] == ["a block failed", warning]
