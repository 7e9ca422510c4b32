"""The ``fsg`` command."""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from fsg_ray import datacmd, synthetic
from fsg_ray.storage import Storage, StorageError, StorageOptions


def _demo(args: argparse.Namespace) -> int:
    from fsg_ray.demo import run_demo

    result = run_demo(Path(args.out), style_name=args.style, quick=args.quick, seed=args.seed)
    out = Path(result["out"])
    print(json.dumps(result))
    print(
        f"before/after grid: {out / 'grid.png'}\nloss curves:       {out / 'losses.png'}\n"
        f"generator:         {out / 'generator.pt'}"
    )
    return 0


def _styles(args: argparse.Namespace) -> int:
    from fsg_ray import registry

    options = StorageOptions.from_env()
    if args.endpoint_url:
        options = dataclasses.replace(options, endpoint_url=args.endpoint_url)
    try:
        styles = registry.list_styles(Storage(options), args.registry)
    except StorageError as e:
        print(f"fsg styles: error: {e}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(registry.styles_as_json(styles), indent=2))
    elif styles:
        print(registry.format_table(styles))
    else:
        print(f"no styles published in {args.registry}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fsg", description="Fashion Style Generator (Jiang & Fu, IJCAI 2017) on Ray."
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser(
        "demo",
        help="train one style on synthetic data (minutes on a CPU) and write a before/after grid",
        description="Writes the synthetic dataset, trains one style generator with Algorithm 1 "
        "(random VGG weights, small images), and writes generator.pt, checkpoint.pt, grid.png "
        "and losses.png under --out. Rerunning with the same --out resumes.",
    )
    demo.add_argument("--out", required=True, help="output folder (created if missing)")
    demo.add_argument(
        "--style",
        default="stripes",
        choices=synthetic.STYLE_NAMES,
        help="synthetic style texture to train (default: stripes)",
    )
    demo.add_argument("--seed", type=int, default=0, help="seed of data, weights and order")
    demo.add_argument(
        "--quick", action="store_true", help="a few steps only: checks the pipeline in seconds"
    )
    demo.set_defaults(func=_demo)
    styles = sub.add_parser(
        "styles",
        help="list the styles published in a registry, with their versions",
        description="Lists every style of a registry (read from the per-style indexes): its "
        "current version, all versions, and the current version's publish time, final losses "
        "and VGG weights.",
    )
    styles.add_argument("registry", help="registry folder or prefix (URI)")
    styles.add_argument("--json", action="store_true", help="print the style indexes as JSON")
    styles.add_argument(
        "--endpoint-url",
        default=None,
        help="S3 endpoint such as http://127.0.0.1:9000 (default: AWS_ENDPOINT_URL_S3 or "
        "AWS_ENDPOINT_URL, else AWS itself)",
    )
    styles.set_defaults(func=_styles)
    datacmd.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args.func(args))
    except (ValueError, FileNotFoundError) as e:
        print(f"fsg {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
