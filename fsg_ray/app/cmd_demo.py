"""``fsg demo``: the whole pipeline on a local Ray with synthetic data (:mod:`fsg_ray.app.demo`)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from fsg_ray.app.options import Parents, add_verbose
from fsg_ray.io import synthetic


def register(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser], parents: Parents
) -> None:
    """Adds ``fsg demo`` (its ``--num-cpus`` is the local Ray's own: it joins no cluster)."""
    demo = subparsers.add_parser(
        "demo",
        help="train a style and its two ablations at once on a local Ray with synthetic data, "
        "publish them, and write before/after grids (minutes on a CPU)",
        description="The whole pipeline on the embedded default: writes the synthetic dataset, "
        "trains the styles and the global_only (<style>-feeds) and patch_only (<style>-mgan) "
        "ablations of the first one concurrently on a local Ray (Ray Data + one Ray Train "
        "trainer per entry; random VGG weights, small images, a short Algorithm 1 schedule), "
        "publishes them to --out/registry and writes grid_<entry>.png and grid.png under "
        "--out. Rerunning with the same --out resumes unfinished entries and skips published "
        "ones. `fsg eval --style <style>` then compares the modes.",
    )
    demo.add_argument("--out", required=True, help="output folder (created if missing)")
    demo.add_argument(
        "--styles",
        default="stripes",
        help="comma-separated synthetic styles to train at once, from "
        f"{', '.join(synthetic.STYLE_NAMES)} (default: stripes)",
    )
    demo.add_argument(
        "--ablations",
        default=None,
        help="comma-separated styles (of --styles) whose global_only and patch_only "
        "ablations are trained too, or 'none' (default: the first style)",
    )
    demo.add_argument(
        "--s3",
        action="store_true",
        help="keep data, runs and registry in a local S3 server (moto, in this process)",
    )
    demo.add_argument(
        "--num-cpus", type=int, default=None, help="CPUs of the local Ray (default: all)"
    )
    demo.add_argument("--seed", type=int, default=0, help="seed of data, weights and order")
    demo.add_argument(
        "--quick", action="store_true", help="a few steps only: checks the pipeline quickly"
    )
    add_verbose(demo)
    demo.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Runs the demo, prints the summary; exit 1 if an entry failed."""
    from fsg_ray.app.demo import run_demo
    from fsg_ray.distributed import session, trainer

    styles = [s for s in args.styles.split(",") if s]
    if args.ablations is None:
        ablate = styles[:1]
    else:
        ablate = [s for s in args.ablations.split(",") if s and s != "none"]
    # SIGTERM while the data is written or the grids are drawn, outside the Ray session,
    # stops the demo as it does during training (exit 143 and a message), not silently.
    with session.stop_on_signals():
        result = run_demo(
            Path(args.out),
            styles=styles,
            quick=args.quick,
            seed=args.seed,
            s3=args.s3,
            num_cpus=args.num_cpus,
            verbose=args.verbose,
            ablate=ablate,
        )
    results = [trainer.StyleResult(**r) for r in result["results"]]
    print(trainer.format_summary(results))
    print(f"registry: {result['registry']}")
    for grid in result["grids"]:
        print(f"grid:     {grid}")
    print(json.dumps({k: v for k, v in result.items() if k != "results"}))
    return 1 if any(r.status == "failed" for r in results) else 0
