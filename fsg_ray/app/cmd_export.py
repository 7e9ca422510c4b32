"""``fsg export``: a published generator as an ONNX or TorchScript file, with a model card
beside it, for consumers without fsg-ray or Ray (:mod:`fsg_ray.io.export`)."""

from __future__ import annotations

import argparse
import sys

from fsg_ray.app.options import Parents
from fsg_ray.config import StorageOptions
from fsg_ray.io.storage import Storage, StorageError


def register(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser], parents: Parents
) -> None:
    """Adds ``fsg export``."""
    export = subparsers.add_parser(
        "export",
        parents=[parents.endpoint],
        help="export a published generator to ONNX or TorchScript, with a model card",
        description="Writes a style's generator (encoder + decoder) as one file that runs "
        "without fsg-ray: input 'image' (batch, height, width, 3) uint8 RGB of any size, "
        "output 'styled' of the same shape; normalisation and padding happen inside. A model "
        "card (<stem>.card.json and <stem>.card.md) is written beside it. See docs/export.md.",
        epilog="Exit status: 0 when written, 2 for bad arguments, an unknown style or version, "
        "or an unreadable registry or unwritable output.",
    )
    export.add_argument("--registry", required=True, help="style registry (URI)")
    export.add_argument("--style", required=True, help="style name")
    export.add_argument("--version", default=None, help="version, e.g. v2 (default: current)")
    export.add_argument(
        "--format",
        choices=["onnx", "torchscript"],
        default="onnx",
        help="onnx (ONNX Runtime and other ONNX consumers) or torchscript (torch.jit.load); "
        "default: onnx",
    )
    export.add_argument(
        "--downscale",
        type=int,
        default=1,
        help="the file runs the generator on photos shrunk N times and lays its change over "
        "the full-size photo, as fsg restyle --downscale N (default: 1, full size)",
    )
    export.add_argument(
        "--out", required=True, help="model file (URI) ending in .onnx (onnx) or .pt (torchscript)"
    )
    export.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Exports the generator and prints where the files went; exit 2 on a storage error."""
    from fsg_ray.io.export import export_style

    storage = Storage(StorageOptions.given(args.endpoint_url))
    try:
        done = export_style(
            storage, args.registry, args.style, args.version, args.format, args.out, args.downscale
        )
    except StorageError as e:
        print(f"fsg export: error: {e}", file=sys.stderr)
        return 2
    card = done.card
    print(f"exported {card['style']} {card['version']} ({card['format']}) to {done.model}")
    print(f"model card: {done.card_json}, {done.card_md}")
    return 0
