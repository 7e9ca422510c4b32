"""``fsg eval``: compare every trained mode of a style and Gatys on the same garments
(:mod:`fsg_ray.app.evaluate`)."""

from __future__ import annotations

import argparse
import sys

from fsg_ray.app.options import Parents
from fsg_ray.config import EvalConfig, StorageOptions, from_dict, options_with_flags
from fsg_ray.io.storage import Storage, StorageError

#: The options of ``fsg eval`` that make its :class:`~fsg_ray.config.EvalConfig`.
EVAL_KEYS = (
    "registry",
    "style",
    "styles",
    "images",
    "out",
    "masks",
    "gatys_iters",
    "max_side",
    "eval_vgg",
    "strengths",
)


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
        "output under OUT/outputs/<method>/. With --styles, each style's files go to "
        "OUT/<style>/ and OUT/summary.md (also printed) compares the styles: per style and "
        "method style SWD, its ratio to the input's, structure, silhouette IoU, and whether "
        "the full method is Pareto-better than each ablation.",
        epilog="Exit status: 0 on success, 2 for bad arguments, an unknown style, missing "
        "images or masks, or an unreadable URI.",
    )
    ev.add_argument("--registry", required=True, help="style registry (URI)")
    which = ev.add_mutually_exclusive_group(required=True)
    which.add_argument("--style", help="base style name, e.g. stripes")
    which.add_argument(
        "--styles",
        type=_style_list,
        help="several base styles, comma-separated (e.g. stripes,leopard,porcelain), or "
        "'all' for every base style of the registry; outputs in OUT/<style>/ plus "
        "OUT/summary.md",
    )
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
    ev.add_argument(
        "--strengths",
        type=_strength_list,
        default=None,
        help="strengths at which each method's change is also scored, comma-separated, each "
        "in [0, 4] (0: the input, 1: as trained; default: 0.25,0.5,0.75,1.25,1.5,2): draws "
        "OUT/fronts.png and compares the fronts at equal style distance; 'none' skips them",
    )
    ev.add_argument("--out", required=True, help="output folder or prefix (URI)")
    ev.set_defaults(func=run)


def _strength_list(text: str) -> tuple[float, ...]:
    """``0.5,1.5`` -> (0.5, 1.5); ``none`` -> () (ranges checked by EvalConfig)."""
    if text.strip().lower() == "none":
        return ()
    try:
        return tuple(float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated numbers or 'none', got {text!r}"
        ) from None


def _style_list(text: str) -> tuple[str, ...]:
    """``a,b,c`` -> ("a", "b", "c"), spaces around names dropped (checked by EvalConfig)."""
    return tuple(name.strip() for name in text.split(","))


def run(args: argparse.Namespace) -> int:
    """Evaluates one style or several, prints the table(s) and the files written."""
    from fsg_ray.app import evaluate, evaluate_styles

    options = StorageOptions.given(args.endpoint_url)
    flags = {k: getattr(args, k) for k in EVAL_KEYS}
    # --style and --styles are exclusive: the one not given is None in the config.
    cfg = from_dict(EvalConfig, {"style": None, **options_with_flags(None, flags, EVAL_KEYS)})
    try:
        if cfg.styles:
            summary = evaluate_styles.evaluate_styles(cfg, Storage(options))
        else:
            report = evaluate.evaluate(cfg, Storage(options))
    except StorageError as e:
        print(f"fsg eval: error: {e}", file=sys.stderr)
        return 2
    out = cfg.out.rstrip("/")
    if cfg.styles:
        print(evaluate_styles.format_summary(summary))
        for style in summary["styles"]:
            print(f"wrote {out}/{style}/ ({evaluate.SHEET}, {evaluate.METRICS_MD}, ...)")
        names = [evaluate_styles.SUMMARY_MD, evaluate_styles.SUMMARY_JSON]
    else:
        print(evaluate.format_table(report))
        names = [evaluate.SHEET, evaluate.METRICS_JSON, evaluate.METRICS_MD]
    for name in names:
        print(f"wrote {out}/{name}")
    return 0
