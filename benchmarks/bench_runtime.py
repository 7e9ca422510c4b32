"""The generator in PyTorch vs ONNX Runtime on the CPU, and faster variants with their cost in
quality: the speed/quality table of docs/benchmarks.md ("ONNX Runtime vs PyTorch").

Every variant takes the same (B, H, W, 3) uint8 garments and returns uint8 outputs, as the
restyle job's actors do (:func:`fsg_ray.io.generators.run_loaded`):

    torch        run_styles, fp32 (the reference)
    torch-bf16   run_styles' model under CPU bf16 autocast
    onnx         the exported generator in ONNX Runtime, all graph optimisations
    onnx-int8    the same, convolutions quantised to int8 (static QDQ, per channel,
                 calibrated on other garments)
    onnx-int8-float-ends  the same but the first and the last convolution stay in float
    onnx-0.75    onnx on the garment shrunk to 0.75 of its sides, the output resized back
    onnx-down2   ``--downscale 2``: G on the garment shrunk twice, its change laid over the
                 full-size garment inside the ONNX graph (core.models.upscale_change)
    onnx-int8-down2  the same, int8 with float ends (``runtime: onnx-int8 --downscale 2``)

Quality is ``fsg eval``'s metrics on the outputs (docs/metrics.md): structure similarity to
the input inside the mask, Gram style distance and sliced Wasserstein distance to the style
image; each variant's mean is compared with the reference's (goal: structure within 0.02,
style distances within 5 %).

    python benchmarks/bench_runtime.py --threads 2                # 192x256 and 288x288
    python benchmarks/bench_runtime.py --threads 2 --write-docs   # also docs/benchmarks.md
    python benchmarks/bench_runtime.py --dry-run                  # tiny shapes, seconds

The generator is the paper's architecture (VGG-19 to relu4_1, decoder 512-256-128-64) with
random VGG weights and a random (seeded), textured decoder: speed does not depend on the
values, and the quality deltas measure how far a variant moves from the reference; but such
a decoder keeps no structure of the garment, so the structure column says little. For a
quality check that means something, time a trained, published generator:
``--registry demo-out/registry --style stripes``. The machine may be
shared: the load average is printed and recorded; each variant is timed ``--repeats`` times
and the best is kept.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import torch
import torch.nn.functional as F

from fsg_ray import config
from fsg_ray.core import export, metrics
from fsg_ray.core.algorithm import load_generator
from fsg_ray.core.inference import run_styles
from fsg_ray.core.models import Generator, VGG19Features, load_vgg
from fsg_ray.io import quantize, registry
from fsg_ray.io.generators import OnnxGenerator
from fsg_ray.io.images import decode_image
from fsg_ray.io.storage import Storage
from fsg_ray.io.synthetic import garment, style_texture

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_generator import write_docs  # noqa: E402

CPU = torch.device("cpu")
Run = Callable[[np.ndarray], np.ndarray]


def textured_generator(decoder_channels: tuple[int, ...]) -> Generator:
    """The paper's generator on random:0 VGG weights with a perturbed decoder, so that its
    outputs have texture (an untrained decoder gives a flat grey)."""
    vgg = load_vgg("random:0")
    cfg = config.TrainConfig(
        model=config.ModelConfig(vgg_weights="random:0", decoder_channels=decoder_channels)
    )
    torch.manual_seed(0)  # the decoder's initial weights: the same generator on every run
    gen = Generator(vgg.state, cfg.model)
    noise = torch.Generator().manual_seed(0)
    decoder = {}
    for key, value in gen.decoder.state_dict().items():
        if key.endswith("running_var"):
            value = torch.full_like(value, 0.1)
        elif value.is_floating_point() and not key.endswith("running_mean"):
            value = value + 0.05 * torch.randn(value.shape, generator=noise)
        decoder[key] = value
    state = {
        "config": config.to_dict(cfg),
        "vgg_weights": vgg.spec,
        "vgg_fingerprint": vgg.fingerprint,
        "decoder": decoder,
    }
    return load_generator(state, vgg, CPU)


def garments(n: int, height: int, width: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` synthetic garments resized to height x width: (n, H, W, 3) uint8, (n, H, W) bool."""
    shots, cuts = [], []
    for i in range(n):
        img, mask = garment(seed + i, size=max(height, width, 32))
        shots.append(np.asarray(img.resize((width, height))))
        cuts.append(np.asarray(mask.resize((width, height))) > 127)
    return np.stack(shots), np.stack(cuts)


def session(model: bytes | str, threads: int) -> ort.InferenceSession:
    """An ONNX Runtime CPU session with ``threads`` intra-op threads, as the actors make."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])


def int8_model(gen: Generator, calibration: np.ndarray, float_ends: bool) -> bytes:
    """The exported generator with its convolutions quantised to int8 (QDQ, per channel),
    as ``runtime: onnx-int8`` makes it (:func:`fsg_ray.io.quantize.int8_onnx`); with
    ``float_ends`` the first (on the image) and the last (to the image) stay in float."""
    return quantize.int8_onnx(gen, list(calibration), float_ends=float_ends)


def shrunk(run: Run, scale: float) -> Run:
    """``run`` on images shrunk by ``scale`` (area), its output resized back (bilinear)."""

    def go(batch: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(batch).permute(0, 3, 1, 2).float()  # (B, 3, H, W)
        small = F.interpolate(x, scale_factor=scale, mode="area").round().to(torch.uint8)
        y = torch.from_numpy(run(small.permute(0, 2, 3, 1).contiguous().numpy()))
        y = F.interpolate(y.permute(0, 3, 1, 2).float(), size=batch.shape[1:3], mode="bilinear")
        return y.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()

    return go


def variants(gen: Generator, calibration: np.ndarray, threads: int) -> dict[str, Run]:
    """Every variant of the table, ready to run."""

    def on_torch(batch: np.ndarray) -> np.ndarray:
        return run_styles({"s": gen}, batch, {"s": range(len(batch))}, CPU)["s"]

    def on_torch_bf16(batch: np.ndarray) -> np.ndarray:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return on_torch(batch)

    fp32 = OnnxGenerator(gen, threads)
    int8 = session(int8_model(gen, calibration, float_ends=False), threads)
    int8_ends = session(int8_model(gen, calibration, float_ends=True), threads)
    down2 = OnnxGenerator(gen, threads, downscale=2)
    int8_down2 = OnnxGenerator(
        gen, threads, quantize.int8_onnx(gen, list(calibration), downscale=2), downscale=2
    )
    return {
        "torch": on_torch,
        "torch-bf16": on_torch_bf16,
        "onnx": fp32,
        "onnx-int8": lambda b: int8.run(None, {export.INPUT: b})[0],
        "onnx-int8-float-ends": lambda b: int8_ends.run(None, {export.INPUT: b})[0],
        "onnx-0.75": shrunk(fp32, 0.75),
        "onnx-down2": down2,
        "onnx-int8-down2": int8_down2,
    }


def images_per_s(
    runs: dict[str, Run], batch: np.ndarray, repeats: int, rounds: int
) -> dict[str, float]:
    """Each variant's best of ``repeats`` timings of ``rounds`` batches, after a warm-up batch.

    The variants take turns within each repeat, so that a shared machine's changing load
    falls on all of them alike.
    """
    for run in runs.values():
        run(batch)
    best = dict.fromkeys(runs, float("inf"))
    for _ in range(repeats):
        for name, run in runs.items():
            t0 = time.perf_counter()
            for _ in range(rounds):
                run(batch)
            best[name] = min(best[name], (time.perf_counter() - t0) / rounds)
    return {name: len(batch) / seconds for name, seconds in best.items()}


def quality(
    out: np.ndarray, inp: np.ndarray, cut: np.ndarray, style: torch.Tensor, phi: VGG19Features
) -> dict[str, float]:
    """Mean ``fsg eval`` metrics of outputs: structure to the input, style distances."""
    rows = []
    for y, x, m in zip(out, inp, cut, strict=True):
        ty, tx = (torch.from_numpy(a).permute(2, 0, 1).float() / 255 for a in (y, x))
        tm = torch.from_numpy(m)
        rows.append(
            (
                metrics.structure_similarity(tx, ty, tm),
                metrics.gram_style_distance(ty, style, phi, tm),
                metrics.sliced_wasserstein(ty, style, tm),
            )
        )
    structure, gram, swd = np.mean(rows, axis=0)
    return {"structure": float(structure), "gram": float(gram), "swd": float(swd)}


def published_style_image(metadata: dict[str, Any], fallback: np.ndarray) -> np.ndarray:
    """The style image a published generator was trained on (its metadata's
    ``style_image``), so that its style distances are to its own style; else ``fallback``."""
    uri = metadata.get("style_image")
    if not isinstance(uri, str):
        print("no style_image in the metadata: style distances are to the stripes texture")
        return fallback
    return np.asarray(decode_image(Storage().read_bytes(uri), name=uri))


def measure(args: argparse.Namespace, height: int, width: int) -> list[dict[str, Any]]:
    """One row per variant at height x width: images/s and quality against the reference."""
    texture = np.asarray(style_texture("stripes", size=args.style_size))
    if args.registry:
        gen, found = registry.load(Storage(), args.registry, args.style, CPU)
        texture = published_style_image(found.metadata, texture)
    else:
        gen = textured_generator(args.decoder_channels)
    batch, cut = garments(args.batch, height, width, seed=0)
    calibration, _ = garments(args.calibration, height, width, seed=1000)
    style = torch.from_numpy(np.array(texture)).permute(2, 0, 1).float() / 255
    phi = VGG19Features(load_vgg("random:0").state, metrics.STYLE_LAYERS[-1])
    with torch.inference_mode():
        runs = variants(gen, calibration, args.threads)
        speed = images_per_s(runs, batch, args.repeats, args.rounds)
        rows = [
            {"variant": name, "images_per_s": round(speed[name], 2)}
            | quality(run(batch), batch, cut, style, phi)
            for name, run in runs.items()
        ]
    ref = rows[0]
    for row in rows:
        row["speed_up"] = round(row["images_per_s"] / ref["images_per_s"], 2)
        row["d_structure"] = round(row["structure"] - ref["structure"], 4)
        row["d_gram_pct"] = round(100 * (row["gram"] / ref["gram"] - 1), 2)
        row["d_swd_pct"] = round(100 * (row["swd"] / ref["swd"] - 1), 2)
        row["quality_ok"] = (
            abs(row["d_structure"]) <= 0.02
            and abs(row["d_gram_pct"]) <= 5
            and abs(row["d_swd_pct"]) <= 5
        )
    return rows


def render(results: dict[str, list[dict[str, Any]]], args: argparse.Namespace, load: str) -> str:
    """The docs section: one table per size."""
    lines = [
        f"### ONNX Runtime vs PyTorch, CPU, {args.threads} threads",
        "",
        f"`python benchmarks/bench_runtime.py {' '.join(sys.argv[1:])}` (torch "
        f"{torch.__version__}, onnxruntime {ort.__version__}, {time.strftime('%Y-%m-%d')}; "
        f"batch {args.batch}, best of {args.repeats}; load average before: {load}; "
        f"generator: {args.registry + ' ' + args.style if args.registry else 'random, seeded'}).",
        "",
    ]
    for size, rows in results.items():
        lines += [
            f"**{size}** (H×W)",
            "",
            "| variant | images/s | speed-up | Δ structure | Δ Gram | Δ SWD | quality kept |",
            "|---|---|---|---|---|---|---|",
        ]
        lines += [
            f"| {r['variant']} | {r['images_per_s']} | {r['speed_up']}× | {r['d_structure']:+} "
            f"| {r['d_gram_pct']:+}% | {r['d_swd_pct']:+}% | {'yes' if r['quality_ok'] else 'no'} |"
            for r in rows
        ]
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, list[dict[str, Any]]]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, default=2, help="torch and ONNX Runtime threads")
    p.add_argument("--batch", type=int, default=8, help="garments per batch")
    p.add_argument("--repeats", type=int, default=3, help="timings per variant (best kept)")
    p.add_argument("--rounds", type=int, default=2, help="batches per timing")
    p.add_argument("--sizes", default="256x192,288x288", help="HxW sizes, comma-separated")
    p.add_argument("--registry", default=None, help="a registry: time a published generator")
    p.add_argument("--style", default="stripes", help="its style (with --registry)")
    p.add_argument("--write-docs", action="store_true", help="record in docs/benchmarks.md")
    p.add_argument("--dry-run", action="store_true", help="tiny shapes and decoder, seconds")
    args = p.parse_args(argv)
    args.decoder_channels = (256, 128, 64, 32)
    args.calibration, args.style_size = 8, 256
    if args.dry_run:  # exercises every variant end to end; the numbers mean nothing
        args.batch, args.repeats, args.rounds, args.sizes = 2, 1, 1, "40x24"
        args.decoder_channels, args.calibration, args.style_size = (16, 8, 8, 8), 2, 32
    torch.set_num_threads(args.threads)
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    print(f"load average: {load}", flush=True)
    results = {}
    for size in args.sizes.split(","):
        height, width = (int(v) for v in size.split("x"))
        results[size] = measure(args, height, width)
        print(json.dumps({size: results[size]}, indent=1), flush=True)
    if args.write_docs and not args.dry_run:
        write_docs("runtime-cpu", render(results, args, load))
    return results


if __name__ == "__main__":
    main()
