"""Catalogue training: concurrency efficiency on Ray Train, and one step at the paper's shapes.

Two measurements from the catalogue issue:

1. **Concurrency.** The demo's profile (random VGG, 24->96 px, GAN + global steps) trained for
   ``--steps`` steps by ``train_catalogue``: one style alone, then N styles at once, each with
   the same per-style resources (``--cpus-per-style`` CPUs for one worker). Efficiency is the
   time of N at once over the time of one alone (goal <= 1.15), from the styles' own trainer
   wall times and from the whole command. Ray needs N x cpus-per-style CPUs.
2. **Paper shapes.** Seconds per step of each phase of Algorithm 1 at the paper's shapes
   (72->288 px global, 128 px patches, batch 4, 256 px style, the paper's loss layers) on this
   machine's device, in process, and the projected time of the paper's schedule per style
   (3000 GAN + 3000 global + 3000 patch steps; goal <= 10 minutes on one H100).

    python benchmarks/bench_catalogue.py                         # CPU: 2 styles, 40 steps
    python benchmarks/bench_catalogue.py --write-docs
    python benchmarks/bench_catalogue.py --skip-concurrency --write-docs   # on a GPU machine
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from fsg_ray import config
from fsg_ray.core import algorithm
from fsg_ray.core.models import load_vgg
from fsg_ray.io.folders import InMemoryBatches

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
import bench_generator  # noqa: E402  (write_docs, device_name)

log = logging.getLogger("bench_catalogue")

# ---------------------------------------------------------------- concurrency


def concurrency(steps: int, styles: int, cpus_per_style: int) -> dict[str, Any]:
    """Wall times of one style alone and of ``styles`` at once, same resources per style."""
    # Ray and the Ray-backed layers are imported here only: the paper-shape step times need
    # PyTorch alone, so they also run where Ray is not installed (a bare GPU machine).
    import ray

    from fsg_ray.app import demo
    from fsg_ray.distributed import trainer
    from fsg_ray.io import registry

    names = list(demo.DEMO_STYLES + ("dots", "checks"))[:styles]
    train = demo.demo_config()
    gan = steps // 4
    train = config.override(
        train,
        schedule={
            "gan_init_steps": gan,
            "global_steps": steps - gan,
            "checkpoint_every": 0,
            "sample_every": 0,
        },
    )
    tmp = Path(tempfile.mkdtemp(prefix="fsg-bench-cat-"))
    ray.init(num_cpus=styles * cpus_per_style, include_dashboard=False, log_to_driver=False)
    try:
        demo.write_data(tmp / "data", train)
        runs: dict[str, Any] = {}
        for label, chosen in (("one alone", names[:1]), (f"{styles} at once", names)):
            cat = demo.demo_catalogue(
                str(tmp / "data"),
                str(tmp / label.replace(" ", "_")),
                chosen,
                train,
                styles * cpus_per_style,
            )
            cat = dataclasses.replace(
                cat, resources=dataclasses.replace(cat.resources, cpus_per_worker=cpus_per_style)
            )
            t0 = time.perf_counter()
            results = trainer.train_catalogue(cat)
            wall = time.perf_counter() - t0
            assert all(r.status == "published" for r in results), results
            loops = [
                registry.resolve(trainer.storage_for(cat), cat.storage.registry, r.style).metadata[
                    "timings"
                ]["train_s_last_attempt"]
                for r in results
            ]
            runs[label] = {
                "command_s": round(wall, 1),
                "style_s": [r.wall_s for r in results],
                "loop_s": loops,
            }
            log.info("%s: %s", label, runs[label])
    finally:
        ray.shutdown()
        shutil.rmtree(tmp, ignore_errors=True)
    one, many = runs["one alone"], runs[f"{styles} at once"]
    return {
        "steps": steps,
        "styles": styles,
        "cpus_per_style": cpus_per_style,
        "runs": runs,
        "efficiency_trainer": round(max(many["style_s"]) / one["style_s"][0], 3),
        "efficiency_command": round(many["command_s"] / one["command_s"], 3),
        "efficiency_loop": round(max(many["loop_s"]) / one["loop_s"][0], 3),
    }


# ---------------------------------------------------------------- paper shapes


def paper_step_times(device: torch.device, repeats: int) -> dict[str, Any]:
    """Seconds per step of each phase at the paper's shapes, and the projected schedule time."""
    cfg = config.override(config.TrainConfig(), model={"vgg_weights": "random:0"})
    vgg = load_vgg("random:0")
    style = torch.rand(1, 3, cfg.data.style_size, cfg.data.style_size)
    run = algorithm.new_run(cfg, vgg, style, device)
    full = [torch.rand(3, 432, 432) for _ in range(8)]
    patches = torch.rand(64, 3, cfg.data.patch_size, cfg.data.patch_size)
    data = InMemoryBatches(full, patches, cfg.data, cfg.schedule.batch_size, seed=0)
    seconds = {}
    for phase in ("gan", "global", "patch"):
        for _ in range(2):  # warm-up: cuDNN autotuning, allocator
            algorithm._one_step(run, phase, data)
        _sync(device)
        t0 = time.perf_counter()
        for _ in range(repeats):
            algorithm._one_step(run, phase, data)
        _sync(device)
        seconds[phase] = (time.perf_counter() - t0) / repeats
    sched = cfg.schedule
    steps = {
        "gan": sched.gan_init_steps,
        "global": sched.global_steps * sched.alternations,
        "patch": sched.patch_steps * sched.alternations,
    }
    total = sum(seconds[p] * steps[p] for p in steps)
    return {
        "device": bench_generator.device_name(device),
        "step_s": {k: round(v, 4) for k, v in seconds.items()},
        "schedule_steps": steps,
        "projected_minutes": round(total / 60, 1),
    }


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# ---------------------------------------------------------------- report


def render_concurrency(c: dict[str, Any]) -> str:
    lines = [
        f"### Catalogue training: concurrency ({time.strftime('%Y-%m-%d')}, "
        f"torch {torch.__version__})",
        "",
    ]
    if c:
        verdict = "met" if c["efficiency_loop"] <= 1.15 else "missed"
        lines += [
            f"`python benchmarks/bench_catalogue.py --steps {c['steps']} --styles {c['styles']} "
            f"--cpus-per-style {c['cpus_per_style']} --skip-paper --write-docs` on "
            f"{os.cpu_count()} CPU cores",
            "",
            f"Demo profile (random VGG, 24->96 px, GAN {c['steps'] // 4} + global "
            f"{c['steps'] - c['steps'] // 4} steps), {c['cpus_per_style']} CPU(s) and one "
            "worker per style, local storage.",
            "",
            "| run | training loop per style (s) | trainer wall per style (s) | command (s) |",
            "|---|---|---|---|",
            *(
                f"| {k} | {', '.join(str(s) for s in v['loop_s'])} | "
                f"{', '.join(str(s) for s in v['style_s'])} | {v['command_s']} |"
                for k, v in c["runs"].items()
            ),
            "",
            f"- **Concurrency efficiency** ({c['styles']} at once / one alone, slowest "
            f"style): training loop **{c['efficiency_loop']}x** (goal ≤ 1.15: {verdict}); "
            f"trainer including its start-up {c['efficiency_trainer']}x; whole command "
            f"{c['efficiency_command']}x. The trainer's wall time includes starting its worker "
            "group and dataset shards, which the styles do at once on the same cores.",
        ]
    return "\n".join(lines) + "\n"


def render_paper(p: dict[str, Any]) -> str:
    lines = [f"### Catalogue training: paper shapes ({time.strftime('%Y-%m-%d')})", ""]
    if p:
        s = p["step_s"]
        lines += [
            f"`python benchmarks/bench_catalogue.py --skip-concurrency --write-docs` on "
            f"{p['device']}: seconds per step in process, batch 4, 72->288 px global, 128 px "
            "patches, 256 px style, paper loss layers, random weights.",
            "",
            "| GAN init step | global step | patch step | paper schedule (3000 + 3000 + 3000) |",
            "|---|---|---|---|",
            f"| {s['gan']} | {s['global']} | {s['patch']} | "
            f"**{p['projected_minutes']} min** per style |",
        ]
        if not p["device"].startswith("NVIDIA"):
            lines += [
                "",
                "The goal (≤ 10 min per style) is for one H100; this row is a CPU, for scale only.",
            ]
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=40, help="steps per style in the concurrency runs")
    p.add_argument("--styles", type=int, default=2, help="styles trained at once")
    p.add_argument("--cpus-per-style", type=int, default=1, help="CPUs of each style's worker")
    p.add_argument("--repeats", type=int, default=3, help="timed steps per phase at paper shapes")
    p.add_argument("--skip-concurrency", action="store_true", help="only the paper-shape steps")
    p.add_argument("--skip-paper", action="store_true", help="only the concurrency runs")
    p.add_argument("--write-docs", action="store_true", help="record in docs/benchmarks.md")
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    result: dict[str, Any] = {}
    if not args.skip_concurrency:
        result["concurrency"] = concurrency(args.steps, args.styles, args.cpus_per_style)
    if not args.skip_paper:
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        torch.backends.cudnn.benchmark = True
        result["paper"] = paper_step_times(device, args.repeats)
    print(json.dumps(result, indent=2))
    if args.write_docs and "concurrency" in result:
        bench_generator.write_docs(
            "catalogue-concurrency", render_concurrency(result["concurrency"])
        )
    if args.write_docs and "paper" in result:
        kind = "gpu" if result["paper"]["device"].startswith("NVIDIA") else "cpu"
        bench_generator.write_docs(f"catalogue-paper-{kind}", render_paper(result["paper"]))


if __name__ == "__main__":
    sys.exit(main())
