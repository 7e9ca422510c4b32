"""The generator on one GPU: images/s at 288² and 1024 px in bf16, eager and with
``torch.compile``, against the card's bf16 FLOP limit, and peak GPU memory. Part of
``benchmarks/gpu_suite.sh``; writes the ``gpu-generator-cuda`` section of docs/benchmarks.md.

    python benchmarks/bench_gpu.py --write-docs    # on a CUDA machine
    python benchmarks/bench_gpu.py --dry-run       # CPU, tiny shapes, no compile: seconds

FLOPs per image are counted by ``torch.utils.flop_counter`` on the model itself (about 40
GMAC = 80 GFLOP per 288² image), so the utilisation column is achieved FLOP/s over the card's
dense bf16 peak (:data:`PEAK_BF16_TFLOPS`, from the vendors' data sheets; "unknown" for a
card not listed).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

from fsg_ray import config
from fsg_ray.core.models import Generator, load_vgg

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_generator import write_docs  # noqa: E402

#: Dense bf16 tensor-core peaks (TFLOP/s, no sparsity) by a substring of the device name.
PEAK_BF16_TFLOPS = {
    "H200": 989.0,
    "H100 SXM": 989.0,
    "H100 PCIe": 756.0,
    "H100": 989.0,
    "A100": 312.0,
    "L40S": 362.0,
    "L4": 121.0,
    "A10G": 70.0,
    "RTX 4090": 165.0,
}


def peak_tflops(name: str) -> float | None:
    """The card's dense bf16 peak, or None when it is not in :data:`PEAK_BF16_TFLOPS`."""
    return next((v for k, v in PEAK_BF16_TFLOPS.items() if k in name), None)


def flops_per_image(gen: Generator, size: int, device: torch.device) -> float:
    """FLOPs of one G(x) at size x size, counted on the model (a multiply-add is 2)."""
    x = torch.zeros(1, 3, size, size, device=device)
    with FlopCounterMode(display=False) as counter, torch.inference_mode():
        gen(x)
    return float(counter.get_total_flops())


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def images_per_s(
    run: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, repeats: int
) -> float:
    """Images/s of ``run`` on batch ``x``: two warm-up calls (autotune, compile), then timed."""
    for _ in range(2):
        run(x)
    sync(x.device)
    t0 = time.perf_counter()
    for _ in range(repeats):
        run(x)
    sync(x.device)
    return x.shape[0] * repeats / (time.perf_counter() - t0)


def measure(gen: Generator, size: int, batch: int, compiled: bool, repeats: int) -> dict[str, Any]:
    """One row: images/s, achieved TFLOP/s and peak memory of G at size x size."""
    device = next(gen.parameters()).device
    model: Any = torch.compile(gen) if compiled else gen
    x = torch.rand(batch, 3, size, size, device=device).contiguous(
        memory_format=torch.channels_last
    )

    def run(inp: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode(), torch.autocast(device.type, dtype=torch.bfloat16):
            return model(inp)

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    ips = images_per_s(run, x, repeats)
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None
    tflops = ips * flops_per_image(gen, size, device) / 1e12
    return {
        "size": size,
        "batch": batch,
        "compiled": compiled,
        "images_per_s": round(ips, 2),
        "tflops": round(tflops, 2),
        "peak_memory_gib": None if peak is None else round(peak, 2),
    }


def render(rows: list[dict[str, Any]], device: str, gmac_288: float) -> str:
    peak = peak_tflops(device)
    lines = [
        f"### Generator on the GPU, {device}",
        "",
        f"`python benchmarks/bench_gpu.py --write-docs` (torch {torch.__version__}, "
        f"{time.strftime('%Y-%m-%d')}): bf16 autocast, channels_last; G = {gmac_288:.1f} GMAC "
        f"per 288² image; card peak {peak or 'unknown'} dense bf16 TFLOP/s.",
        "",
        "| size | batch | torch.compile | images/s | TFLOP/s | of peak | peak memory |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        share = f"{100 * r['tflops'] / peak:.0f} %" if peak else "unknown"
        lines.append(
            f"| {r['size']}² | {r['batch']} | {'yes' if r['compiled'] else 'no'} "
            f"| {r['images_per_s']} | {r['tflops']} | {share} | {r['peak_memory_gib']} GiB |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> str:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", default="288:32,1024:4", help="size:batch pairs, comma-separated")
    p.add_argument("--repeats", type=int, default=10, help="timed batches per row")
    p.add_argument("--no-compile", action="store_true", help="eager only")
    p.add_argument("--write-docs", action="store_true", help="record in docs/benchmarks.md")
    p.add_argument("--dry-run", action="store_true", help="CPU, tiny shapes, eager: seconds")
    args = p.parse_args(argv)
    cuda = torch.cuda.is_available() and not args.dry_run
    device = torch.device("cuda" if cuda else "cpu")
    channels = (256, 128, 64, 32)
    if args.dry_run:  # every code path but compile, on the CPU; the numbers mean nothing
        args.sizes, args.repeats, args.no_compile, channels = "32:2,48:1", 1, True, (16, 8, 8, 8)
    torch.backends.cudnn.benchmark = True
    vgg = load_vgg("random:0")
    model_cfg = config.ModelConfig(vgg_weights="random:0", decoder_channels=channels)
    gen = Generator(vgg.state, model_cfg).to(device).eval()
    gen = gen.to(memory_format=torch.channels_last)
    rows = []
    for pair in args.sizes.split(","):
        size, batch = (int(v) for v in pair.split(":"))
        for compiled in (False,) if args.no_compile else (False, True):
            rows.append(measure(gen, size, batch, compiled, args.repeats))
            print(json.dumps(rows[-1]), flush=True)
    name = torch.cuda.get_device_name(device) if cuda else "CPU (dry run)"
    text = render(rows, name, flops_per_image(gen, 288 if cuda else 32, device) / 2e9)
    print(text)
    if args.write_docs and cuda:
        write_docs("gpu-generator-cuda", text)
    return text


if __name__ == "__main__":
    main()
