"""Feed-forward generator vs Gatys optimisation (NeuralST), same device, same threads.

The paper's speed claim (§3.4): a trained generator is "hundreds of times faster" than
per-image optimisation. This measures images/s of G at 288 x 288 (batched) and of Gatys with
200 L-BFGS iterations (one image at a time, as it is run), and prints the ratio.

    python benchmarks/bench_generator.py                 # paper profile, 200 iterations
    python benchmarks/bench_generator.py --write-docs    # also updates docs/benchmarks.md

Weights are random (speed does not depend on them); the loss profile is the paper's
(style relu2_2, content relu5_1), so Gatys runs phi up to relu5_1.
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import time
from pathlib import Path

import torch

from fsg_ray import config
from fsg_ray.core.algorithm import load_generator
from fsg_ray.core.baselines import gatys
from fsg_ray.core.models import Generator, VGG19Features, load_vgg

DOCS = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU ({platform.processor() or platform.machine()}), {torch.get_num_threads()} threads"


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bench_generator(gen: Generator, size: int, batch: int, repeats: int, device) -> float:
    """Images per second of G at size x size."""
    x = torch.rand(batch, 3, size, size, device=device).to(memory_format=torch.channels_last)
    amp = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else None
    with torch.inference_mode():
        for _ in range(2):  # warm-up (cuDNN autotune, allocator)
            with amp or torch.autocast("cpu", enabled=False):
                gen(x)
        sync(device)
        t0 = time.perf_counter()
        for _ in range(repeats):
            with amp or torch.autocast("cpu", enabled=False):
                gen(x)
        sync(device)
    return batch * repeats / (time.perf_counter() - t0)


def bench_gatys(
    phi: VGG19Features, cfg: config.LossConfig, size: int, iters: int, device
) -> tuple[float, int]:
    """Images per second of Gatys optimisation, and the number of phi evaluations it made."""
    content = torch.rand(1, 3, size, size, device=device)
    style = torch.rand(1, 3, 256, 256, device=device)
    gatys(content, style, phi, cfg, iterations=2)  # warm-up
    sync(device)
    t0 = time.perf_counter()
    result = gatys(content, style, phi, cfg, iterations=iters)
    sync(device)
    return 1 / (time.perf_counter() - t0), result.evaluations


def write_docs(section: str, text: str) -> None:
    """Replaces (or appends) the block between ``<!-- section -->`` markers in the docs."""
    begin, end = f"<!-- {section} -->", f"<!-- /{section} -->"
    doc = DOCS.read_text() if DOCS.exists() else "# Benchmarks\n"
    block = f"{begin}\n{text.strip()}\n{end}"
    pattern = re.compile(re.escape(begin) + ".*?" + re.escape(end), re.S)
    doc = (
        pattern.sub(lambda _: block, doc) if pattern.search(doc) else f"{doc.rstrip()}\n\n{block}\n"
    )
    DOCS.write_text(doc)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", type=int, default=288, help="image side (paper: 288)")
    p.add_argument("--batch", type=int, default=8, help="generator batch size")
    p.add_argument("--repeats", type=int, default=5, help="generator batches timed")
    p.add_argument("--gatys-iters", type=int, default=200, help="L-BFGS iterations (paper: 200)")
    p.add_argument("--threads", type=int, default=torch.get_num_threads(), help="CPU threads")
    p.add_argument("--write-docs", action="store_true", help="record in docs/benchmarks.md")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.backends.cudnn.benchmark = True
    vgg = load_vgg("random:0")
    cfg = config.TrainConfig(model=config.ModelConfig(vgg_weights="random:0"))
    # The production path: a generator state loaded by load_generator (eval, channels_last).
    state = {
        "config": config.to_dict(cfg),
        "vgg_weights": vgg.spec,
        "vgg_fingerprint": vgg.fingerprint,
        "decoder": Generator(vgg.state, cfg.model).decoder.state_dict(),
    }
    gen = load_generator(state, vgg, device)
    phi = VGG19Features(vgg.state, cfg.loss.loss_layers()[-1])
    phi = phi.to(device).to(memory_format=torch.channels_last)  # same layout for both
    g_ips = bench_generator(gen, args.size, args.batch, args.repeats, device)
    n_ips, evals = bench_gatys(phi, cfg.loss, args.size, args.gatys_iters, device)
    result = {
        "device": device_name(device),
        "size": args.size,
        "batch": args.batch,
        "generator_images_per_s": round(g_ips, 3),
        "gatys_images_per_s": round(n_ips, 6),
        "gatys_iterations": args.gatys_iters,
        "gatys_evaluations": evals,
        "ratio": round(g_ips / n_ips, 1),
        "torch": torch.__version__,
    }
    print(json.dumps(result, indent=2))
    print(f"generator is {g_ips / n_ips:.0f}x faster than Gatys ({args.gatys_iters} iterations)")
    if args.write_docs:
        key = "generator-vs-gatys-" + ("cuda" if device.type == "cuda" else "cpu")
        write_docs(key, render(result, args))


def render(r: dict, args: argparse.Namespace) -> str:
    return (
        f"### Generator vs Gatys, {r['device']}\n\n"
        f"`python benchmarks/bench_generator.py --size {args.size} --batch {args.batch} "
        f"--gatys-iters {args.gatys_iters} --threads {args.threads} --write-docs` "
        f"(torch {r['torch']}, {time.strftime('%Y-%m-%d')})\n\n"
        "| | images/s at {s}² | |\n|---|---|---|\n"
        "| generator G (batch {b}) | {g} | |\n"
        "| Gatys, {it} L-BFGS iterations ({ev} evaluations of phi) | {n} | |\n"
        "| **ratio** | **{ratio}×** | goal ≥ 400× |\n"
    ).format(
        s=r["size"],
        b=r["batch"],
        g=r["generator_images_per_s"],
        it=r["gatys_iterations"],
        ev=r["gatys_evaluations"],
        n=r["gatys_images_per_s"],
        ratio=r["ratio"],
    )


if __name__ == "__main__":
    main()
