"""Seconds per training step of the demo profile on the CPU: NCHW against channels_last.

:func:`fsg_ray.core.algorithm.build_nets` lays the networks of a run (G, phi, varphi_s) out
channels_last on every device; until 2026-12-07 it did so on CUDA only, while inference did
on every device (the generator went from 1.44 to 1.95 images/s on the CPU,
docs/benchmarks.md). This measures what the layout gives training steps: each phase's step
(GAN initialisation, global, patch) at the demo's shapes (:func:`fsg_ray.app.demo.demo_config`:
24 -> 96 px global, 64 px patches, batch 2, random VGG), one torch thread as a demo worker
has, the two layouts interleaved step by step so that both see the same load. Prints the
median and the best of ``--steps`` timed steps.

    python benchmarks/bench_step_layout.py --steps 12
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from fsg_ray.app.demo import demo_config
from fsg_ray.core import algorithm
from fsg_ray.core.models import load_vgg
from fsg_ray.io.folders import InMemoryBatches


def make_run(channels_last: bool) -> algorithm.Run:
    """A fresh demo-profile run on the CPU in one layout (same seed: the same weights)."""
    cfg = demo_config()
    style = torch.rand(1, 3, cfg.data.style_size, cfg.data.style_size,
                       generator=torch.Generator().manual_seed(1))  # fmt: skip
    run = algorithm.new_run(cfg, load_vgg(cfg.model.vgg_weights), style, torch.device("cpu"))
    layout = torch.channels_last if channels_last else torch.contiguous_format
    for net in (run.nets.gen, run.nets.phi, run.nets.disc):
        net.to(memory_format=layout)
    # Adam's state follows the parameters' layout: build it after the move.
    run.opts = algorithm.build_optimisers(run.nets, cfg)
    return run


def demo_batches(run: algorithm.Run) -> InMemoryBatches:
    """Random photos at the demo's sizes: 160 px full images, patches of the patch size."""
    cfg, g = run.cfg, torch.Generator().manual_seed(0)
    full = [torch.rand(3, 160, 160, generator=g) for _ in range(8)]
    patches = torch.rand(64, 3, cfg.data.patch_size, cfg.data.patch_size, generator=g)
    return InMemoryBatches(full, patches, cfg.data, cfg.schedule.batch_size, seed=0)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=12, help="timed steps per phase and layout")
    p.add_argument("--threads", type=int, default=1, help="torch threads (a demo worker: 1)")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    runs = {"NCHW": make_run(False), "channels_last": make_run(True)}
    data = {layout: demo_batches(run) for layout, run in runs.items()}
    times: dict[tuple[str, str], list[float]] = {}
    for rep in range(a.steps + 1):  # the first of each is a warm-up, not timed
        for phase in ("gan", "global", "patch"):
            for layout, run in runs.items():
                t0 = time.perf_counter()
                algorithm._one_step(run, phase, data[layout])  # as algorithm.train steps
                if rep:
                    times.setdefault((phase, layout), []).append(time.perf_counter() - t0)
    print("| phase | NCHW s/step (median, best) | channels_last s/step | speed-up (median) |")
    print("|---|---|---|---|")
    for phase in ("gan", "global", "patch"):
        a_, b_ = times[(phase, "NCHW")], times[(phase, "channels_last")]
        ma, mb = statistics.median(a_), statistics.median(b_)
        print(f"| {phase} | {ma:.3f}, {min(a_):.3f} | {mb:.3f}, {min(b_):.3f} | {ma / mb:.2f}x |")


if __name__ == "__main__":
    main()
