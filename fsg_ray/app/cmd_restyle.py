"""``fsg restyle``: restyle a product catalogue with published styles (an offline Ray Data job,
:mod:`fsg_ray.distributed.restyle`).

Options come from the flags and an optional ``--config`` YAML file of the same options by
name; flags given on the command line win (:func:`fsg_ray.config.options_with_flags`).
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from typing import Any

from fsg_ray.app.options import Parents
from fsg_ray.config import RestyleConfig, StorageOptions, from_dict, options_with_flags
from fsg_ray.config.runtime import RUNTIMES
from fsg_ray.io.storage import Storage, StorageError

#: Options of ``fsg restyle`` passed to :class:`~fsg_ray.config.RestyleConfig` as they are.
RESTYLE_PLAIN = (
    "masks",
    "max_side",
    "format",
    "preserve_color",
    "strength",
    "overwrite",
    "actors",
    "runtime",
    "downscale",
)
#: Every option that a ``--config`` YAML file may set, by key.
RESTYLE_KEYS = ("registry", "styles", "input", "output", *RESTYLE_PLAIN, "endpoint_url")


def register(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser], parents: Parents
) -> None:
    """Adds ``fsg restyle``."""
    from fsg_ray.io.compositing import FORMATS  # no Ray import: `fsg --help` stays fast

    restyle = subparsers.add_parser(
        "restyle",
        parents=[parents.endpoint, parents.ray],
        help="restyle a product catalogue with published styles (an offline Ray Data job)",
        description="Reads product photos (a prefix, or a .csv/.parquet manifest with columns "
        "image[, mask]), runs every requested style's generator on each in a pool of Ray "
        "actors, keeps every pixel outside the garment mask, and writes "
        "OUTPUT/<style>/<relative path stem>.<ext> atomically, plus a Parquet manifest "
        "OUTPUT/_manifest/<run>.parquet with one row per input and style (status, reason, "
        "output, generator version, size, seconds). A rerun skips outputs already made by "
        "the same generator version and settings, so a killed job resumes.",
        epilog="Exit status: 0 when every output is ok or skipped, 1 when some failed (listed, "
        "and in the manifest), 2 for bad arguments, an unknown style or an unreadable URI, 75 "
        "when the Ray cluster was lost, 143 (130) when stopped by SIGTERM (Ctrl-C); after the "
        "last two, rerun to make the missing outputs.",
    )
    restyle.add_argument(
        "--config",
        default=None,
        help="YAML file of these options by name (registry, styles, input, output, masks, "
        "max_side, format, preserve_color, strength, overwrite, actors, runtime, downscale, "
        "endpoint_url); flags given here win (example: jobs/configs/restyle_catalogue.yaml)",
    )
    restyle.add_argument("--registry", help="style registry (URI); required")
    restyle.add_argument(
        "--styles", help="comma-separated style names, or 'all' published ones; required"
    )
    restyle.add_argument("--input", help="prefix of photos, or a manifest (URI); required")
    restyle.add_argument("--output", help="output folder or prefix (URI); required")
    restyle.add_argument(
        "--masks",
        default=None,
        help="garment masks: a prefix of masks matched by relative path stem, 'auto' "
        "(estimated on plain light backgrounds), or 'none' (restyle the whole image); "
        "default: the manifest's mask column, else none",
    )
    restyle.add_argument(
        "--max-side",
        type=int,
        default=None,
        help="shrink larger photos to this long side, keeping the aspect (default: 1024)",
    )
    restyle.add_argument(
        "--format",
        choices=list(FORMATS),
        default=None,
        help="output format; png keeps the pixels outside the mask exact (default: png)",
    )
    restyle.add_argument(
        "--preserve-color",
        action="store_true",
        default=None,
        help="keep the photo's colours (chroma), take only the brightness pattern of the style",
    )
    restyle.add_argument(
        "--strength",
        type=float,
        default=None,
        help="how far each output goes along the style's change, 0-4: 1 as trained "
        "(default), 0.5 keeps more of the garment's design, 1.5 paints more style "
        "(see `fsg eval`'s fronts.png for the trade-off)",
    )
    restyle.add_argument(
        "--overwrite",
        action="store_true",
        default=None,
        help="redo outputs that are already done",
    )
    restyle.add_argument(
        "--actors",
        type=int,
        default=None,
        help="generator actors (one GPU each if any; default: 1)",
    )
    restyle.add_argument(
        "--runtime",
        choices=list(RUNTIMES),
        default=None,
        help="run the generators in torch, torch with bf16 on the CPU (torch-bf16) or ONNX "
        "Runtime (CPU, the actor's CPUs as threads); auto: torch with CUDA, else torch-bf16 "
        "where the CPU has bf16 matrix units (Intel AMX), else onnx; onnx-int8: int8 on the CPU, "
        "calibrated on the job's first photos, per style only where it keeps fsg eval's "
        "metrics (default: auto)",
    )
    restyle.add_argument(
        "--downscale",
        type=int,
        default=None,
        help="run the generators on each photo shrunk N times (1-8) and lay their change over "
        "the full-size photo: about N*N times less work, the photo's own detail stays sharp, "
        "the style's texture is drawn N times coarser (default: 1, full size; "
        "docs/restyle.md, 'Faster: --downscale')",
    )
    restyle.set_defaults(func=run)


def restyle_options(args: argparse.Namespace) -> dict[str, Any]:
    """The job's options: ``--config``'s keys, then the flags given on the command line.

    Raises:
        ValueError: An unreadable or malformed file, an unknown key, or a required option
            (registry, styles, input, output) given nowhere.
    """
    flags = {k: getattr(args, k) for k in RESTYLE_KEYS}
    options = options_with_flags(args.config, flags, RESTYLE_KEYS)
    missing = [k for k in ("registry", "styles", "input", "output") if k not in options]
    if missing:
        raise ValueError(f"missing {', '.join('--' + k for k in missing)} (flags or --config)")
    if isinstance(options["styles"], list):
        options["styles"] = ",".join(options["styles"])
    return options


def restyle_config(options: dict[str, Any]) -> RestyleConfig:
    """The job's :class:`~fsg_ray.config.RestyleConfig` from :func:`restyle_options`' result.

    Raises:
        ConfigError: a bad value, named as ``restyle.<key>``.
    """
    styles = str(options["styles"])
    return from_dict(
        RestyleConfig,
        {
            "registry": options["registry"],
            "input": options["input"],
            "output": options["output"],
            "styles": () if styles == "all" else tuple(s for s in styles.split(",") if s),
            **{k: options[k] for k in RESTYLE_PLAIN if k in options},
        },
    )


def run(args: argparse.Namespace) -> int:
    """Plans the job (no Ray), then runs what is left; exit 1 if some outputs failed."""
    from fsg_ray.distributed import restyle, restyle_plan, session

    o = restyle_options(args)
    cfg = restyle_config(o)
    storage = Storage(StorageOptions.given(o.get("endpoint_url")))
    # The whole command, not only its Ray session, stops on SIGTERM with exit 143 and a
    # message: planning a large S3 catalogue (listing every input) can take minutes.
    try:
        with session.stop_on_signals():
            plan = restyle_plan.plan(cfg, storage)  # styles and inputs before Ray starts
            ray_or_none = (
                session.ray_session(args.address, args.num_cpus)
                if plan.todo
                else contextlib.nullcontext()
            )
            with ray_or_none:
                result = restyle.execute(plan, storage)
    except StorageError as e:
        print(f"fsg restyle: error: {e}", file=sys.stderr)
        return 2
    print(restyle_plan.format_summary(result))
    return 1 if result.counts[restyle_plan.FAILED] else 0
