"""Decoding one product photo for training, on one core: full-size JPEG decode vs draft mode.

The training pipelines decode each shop photo to short side 2 x patch (256 px at paper
scale) and each full image to at most 1.5 x 288 px (``fsg_ray.distributed.data``). A JPEG
larger than that is decoded at a reduced DCT scale that still covers the size
(``images.decode_image(min_side=...)``, Pillow's draft mode), then resized in uint8. This
times both ways on the same photo at several sizes (a synthetic garment, upscaled and saved
as JPEG quality 90), and the mean difference of their results in grey levels.

    python benchmarks/bench_decode.py                      # 600x800 .. 3000x4000, 256 px
    python benchmarks/bench_decode.py --side 432 --repeats 20
"""

from __future__ import annotations

import argparse
import io
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from fsg_ray.core import transforms
from fsg_ray.io import images, synthetic

SIZES = ((800, 600), (1600, 1200), (1000, 1500), (3000, 4000))


def photo_jpeg(width: int, height: int) -> bytes:
    """A synthetic shop photo, resized to width x height and saved as JPEG quality 90."""
    with tempfile.TemporaryDirectory() as tmp:
        synthetic.write_dataset(
            Path(tmp), seed=0, n_full=1, n_shop=1, n_heldout=0, full_size=256, shop_size=256,
            styles=("stripes",),
        )  # fmt: skip
        src = Image.open(next((Path(tmp) / "shop").glob("*"))).convert("RGB")
    buf = io.BytesIO()
    src.resize((width, height), Image.Resampling.BICUBIC).save(buf, "JPEG", quality=90)
    return buf.getvalue()


def decode(raw: bytes, side: int, draft: bool) -> np.ndarray:
    """The pipeline's decode of one photo to short side ``side``, with or without draft mode."""
    img = np.array(images.decode_image(raw, min_side=side if draft else None), dtype=np.uint8)
    return transforms.resize_short_side_uint8(img, side)


def best_ms(raw: bytes, side: int, draft: bool, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        decode(raw, side, draft)
        times.append(time.perf_counter() - t0)
    return 1000 * min(times)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--side", type=int, default=256, help="short side decoded to (paper: 256)")
    p.add_argument("--repeats", type=int, default=10, help="timed decodes per row (best kept)")
    args = p.parse_args()
    torch.set_num_threads(1)  # as in a Ray Data task
    print("| photo | full decode + resize (ms) | draft + resize (ms) | speed-up | mean diff |")
    print("|---|---:|---:|---:|---:|")
    for width, height in SIZES:
        raw = photo_jpeg(width, height)
        full = best_ms(raw, args.side, False, args.repeats)
        draft = best_ms(raw, args.side, True, args.repeats)
        diff = np.abs(
            decode(raw, args.side, False).astype(int) - decode(raw, args.side, True).astype(int)
        ).mean()
        print(f"| {width}x{height} | {full:.2f} | {draft:.2f} | {full / draft:.1f}x | {diff:.2f} |")


if __name__ == "__main__":
    main()
