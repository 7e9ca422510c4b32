"""``fsg export``'s work, Ray-free: a published generator as an ONNX or TorchScript file
(:mod:`fsg_ray.core.export`) with a model card beside it.

For ``--out exports/floral.onnx`` three files are written, each atomically, the model first::

    exports/floral.onnx        the generator: (B, H, W, 3) uint8 -> (B, H, W, 3) uint8
    exports/floral.card.json   its model card: style, version, VGG weights, the contract, ...
    exports/floral.card.md     the same card for people
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import torch

from fsg_ray.config.restyle import MAX_DOWNSCALE
from fsg_ray.core import export
from fsg_ray.core.models import ENCODER_STRIDE, IMAGENET_MEAN, IMAGENET_STD
from fsg_ray.io import registry
from fsg_ray.io.storage import Storage

#: Suffixes of the model card files, written beside the model.
CARD_JSON, CARD_MD = ".card.json", ".card.md"


@dataclass(frozen=True)
class Exported:
    """What :func:`export_style` wrote.

    Attributes:
        model: URI of the model file.
        card_json: URI of the model card (JSON).
        card_md: URI of the model card (markdown).
        card: The model card.
    """

    model: str
    card_json: str
    card_md: str
    card: dict[str, Any]


def card_uris(out: str, fmt: str) -> tuple[str, str]:
    """The model card URIs (JSON, markdown) beside a model file: its format suffix replaced."""
    stem = out.removesuffix(export.FORMATS[fmt])
    return stem + CARD_JSON, stem + CARD_MD


def check_out(out: str, fmt: str) -> None:
    """Checks an export target before any work.

    Raises:
        ValueError: An unknown format, or a file name without the format's suffix (``.onnx``
            for ONNX, ``.pt`` for TorchScript), so that a consumer can tell what the file is.
    """
    if fmt not in export.FORMATS:
        raise ValueError(f"unknown export format {fmt!r}; choose from {', '.join(export.FORMATS)}")
    suffix = export.FORMATS[fmt]
    if not out.endswith(suffix) or out.endswith("/" + suffix) or out == suffix:
        raise ValueError(f"--out {out!r}: a {fmt} file name must end in {suffix}")


def export_style(
    storage: Storage,
    registry_uri: str,
    style: str,
    version: str | None,
    fmt: str,
    out: str,
    downscale: int = 1,
) -> Exported:
    """Exports a published style's generator to ``out`` with its model card beside it.

    Args:
        storage: Reads the registry and the VGG weights; writes the files.
        registry_uri: The registry.
        style: The style name.
        version: The version; the current one if None.
        fmt: ``onnx`` or ``torchscript``.
        out: The model file's URI; its suffix must match ``fmt``.
        downscale: G runs on photos shrunk this many times inside the file
            (:func:`fsg_ray.core.export.export_bytes`).

    Raises:
        ValueError: A bad format, file name, style name, version string or ``downscale``.
        registry.StyleNotFound, registry.VersionNotFound: No such style or version.
        StorageError: The registry cannot be read or ``out`` cannot be written.
    """
    check_out(out, fmt)
    check_downscale(downscale)
    generator, found = registry.load(storage, registry_uri, style, torch.device("cpu"), version)
    data = export.export_bytes(generator, fmt, downscale)
    card = model_card(found, fmt, registry_uri, downscale)
    json_uri, md_uri = card_uris(out, fmt)
    model_uri = storage.write_bytes(out, data)
    storage.write_bytes(json_uri, (json.dumps(card, indent=2) + "\n").encode())
    storage.write_bytes(md_uri, card_markdown(card).encode())
    return Exported(model_uri, json_uri, md_uri, card)


def check_downscale(downscale: int) -> None:
    """Raises ValueError unless ``downscale`` is an integer from 1 to ``MAX_DOWNSCALE``."""
    if type(downscale) is not int or not 1 <= downscale <= MAX_DOWNSCALE:
        raise ValueError(f"--downscale {downscale!r}: must be an integer from 1 to {MAX_DOWNSCALE}")


def model_card(
    found: registry.PublishedVersion, fmt: str, registry_uri: str, downscale: int = 1
) -> dict[str, Any]:
    """The facts a consumer of an exported generator needs, as JSON-ready data."""
    meta = found.metadata
    stride = ENCODER_STRIDE * downscale
    return {
        "style": found.style,
        "version": found.version,
        "registry": registry_uri,
        "published_at": meta.get("published_at"),
        "mode": registry.mode_of(found),
        "vgg_weights": meta.get("vgg_weights"),
        "vgg_fingerprint": meta.get("vgg_fingerprint"),
        "format": fmt,
        "opset": export.OPSET if fmt == "onnx" else None,
        "torch_version": torch.__version__,
        "input": {
            "name": export.INPUT,
            "dtype": "uint8",
            "shape": ["batch", "height", "width", 3],
            "layout": "NHWC, RGB, 0-255",
        },
        "output": {
            "name": export.OUTPUT,
            "dtype": "uint8",
            "shape": ["batch", "height", "width", 3],
            "layout": "NHWC, RGB, 0-255, same size as the input",
        },
        "normalisation": {
            "inside_the_model": True,
            "scale": "x / 255",
            "mean": list(IMAGENET_MEAN),
            "std": list(IMAGENET_STD),
        },
        "padding": f"reflect (replicate below {stride} px) to multiples of "
        f"{stride} at the bottom and right, cropped back: any height and width",
        # fsg restyle --downscale: G runs on the photo shrunk this many times and its change
        # is laid over the full-size photo inside the graph; the contract is the same.
        "downscale": downscale,
        "tolerance": "matches fsg restyle's generator output (at the same --downscale) within "
        "1 grey level per pixel",
        # model.output: "residual" generators add a learned change to the input inside the
        # graph; the contract above is the same for both.
        "generator_output": meta.get("config", {}).get("model", {}).get("output", "image"),
    }


def card_markdown(card: dict[str, Any]) -> str:
    """A short markdown rendering of :func:`model_card`'s card."""
    opset = f", ONNX opset {card['opset']}" if card["opset"] else ""
    return "\n".join(
        [
            f"# Fashion Style Generator: {card['style']} {card['version']}",
            "",
            f"- Format: {card['format']}{opset}; exported with torch {card['torch_version']}.",
            f"- Published {card['published_at']} in `{card['registry']}` (mode {card['mode']}).",
            f"- Encoder E_n: VGG-19 to relu4_1, weights `{card['vgg_weights']}` "
            f"(fingerprint `{card['vgg_fingerprint']}`).",
            f"- Input `{card['input']['name']}`: (batch, height, width, 3) uint8 RGB, any size.",
            f"- Output `{card['output']['name']}`: (batch, height, width, 3) uint8 RGB, same size.",
            "- Normalisation (x / 255, ImageNet mean/std) and the padding to a multiple of "
            f"{ENCODER_STRIDE * card['downscale']} happen inside the model: feed raw pixels.",
            *(
                [
                    f"- Runs the generator on the photo shrunk {card['downscale']} times and lays "
                    "its change over the full-size photo (fsg restyle --downscale)."
                ]
                if card["downscale"] > 1
                else []
            ),
            f"- {card['tolerance'].capitalize()}.",
            "",
        ]
    )
