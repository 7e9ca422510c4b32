"""``fsg eval``: compare every trained mode of a style and Gatys on the same garments
(:mod:`fsg_ray.app.evaluate`)."""

from __future__ import annotations

import argparse
import sys

from fsg_ray.app.options import Parents
from fsg_ray.config import EvalConfig, StorageOptions, from_dict, options_with_flags
from fsg_ray.io.storage import Storage, StorageError

#: The options of ``fsg eval`` that make its :class:`~fsg_ray.config.EvalConfig`.
EVAL_KEYS = ("registry", "style", "images", "out", "masks", "gatys_iters", "max_side", "eval_vgg")


def register(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser], parents: Parents
) -> None:
    """Adds ``fsg eval``."""
    ev = subparsers.add_parser(
        "eval",
        parents=[parents.endpoint],
        help="compare every trained mode of a style and Gatys on the same garments",
        description="Runs the current version of every registry entry whose base style is "
        "--style (the full method and its global_only / patch_only ablations) and Gatys "
        "optimisation (NeuralST) on the garments below --images. Writes OUT/sheet.png "
        "(rows: garments; columns: style image, input, each method inside the garment "
        "mask), OUT/metrics.json and OUT/metrics.md (style distances, structure, silhouette "
        "IoU, background leakage, seconds per image; see docs/metrics.md) and each raw "
        "output under OUT/outputs/<method>/.",
        epilog="Exit status: 0 on success, 2 for bad arguments, an unknown style, missing "
        "images or masks, or an unreadable URI.",
    )
    ev.add_argument("--registry", required=True, help="style registry (URI)")
    ev.add_argument("--style", required=True, help="base style name, e.g. stripes")
    ev.add_argument("--images", required=True, help="prefix of garment photos (URI)")
    ev.add_argument(
        "--masks",
        default=None,
        help="prefix of garment masks, matched by relative path without suffix (default: "
        "estimated from plain light backgrounds)",
    )
    ev.add_argument(
        "--gatys-iters",
        type=int,
        default=200,
        help="L-BFGS iterations of Gatys optimisation (default: 200, as the paper; 0: skip)",
    )
    ev.add_argument(
        "--max-side",
        type=int,
        default=256,
        help="shrink larger photos to this long side first (default: 256)",
    )
    ev.add_argument(
        "--eval-vgg",
        default=None,
        help="VGG weights of the evaluation style distance (default: random:<seed+1> for "
        "generators trained on random:<seed>, else imagenet)",
    )
    ev.add_argument("--out", required=True, help="output folder or prefix (URI)")
    ev.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Evaluates, prints the table of means and the files written."""
    from fsg_ray.app import evaluate

    options = StorageOptions.given(args.endpoint_url)
    flags = {k: getattr(args, k) for k in EVAL_KEYS}
    cfg = from_dict(EvalConfig, options_with_flags(None, flags, EVAL_KEYS))
    try:
        report = evaluate.evaluate(cfg, Storage(options))
    except StorageError as e:
        print(f"fsg eval: error: {e}", file=sys.stderr)
        return 2
    print(evaluate.format_table(report))
    for name in (evaluate.SHEET, evaluate.METRICS_JSON, evaluate.METRICS_MD):
        print(f"wrote {cfg.out.rstrip('/')}/{name}")
    return 0
