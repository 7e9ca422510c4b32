"""``fsg eval``: every trained mode of one style and Gatys optimisation on the same garments,
scored by the metrics of :mod:`fsg_ray.core.metrics`, drawn as a sheet in the layout of the
paper's Fig. 4.

For ``--style stripes`` the methods are the current version of every registry entry whose
base style is ``stripes`` (:func:`fsg_ray.io.registry.modes`: the full method, the FeedS-like
``global_only`` and the MGAN-like ``patch_only`` ablations, whatever the registry holds) and
NeuralST (:func:`fsg_ray.core.baselines.gatys`) run on the spot with the loss config and VGG of the
style's first entry. Writes below ``OUT``::

    sheet.png                 rows: garments; columns: style image, input, each method
                              (inside the garment mask, as the paper shows them)
    metrics.json              every metric per method and garment, their means, the setup
    metrics.md                the table of means
    fronts.png                each method's strength front: structure against style SWD
                              (:mod:`fsg_ray.app.evaluate_fronts`; not with no strengths)
    strengths.png             the full method's outputs at each strength
    outputs/<method>/<stem>.png   each method's raw output (before the mask)

Pure PyTorch and the registry, no Ray: an evaluation is a few garments on one machine.
"""

from __future__ import annotations

import io
import json
import logging
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from PIL import Image
from torch import Tensor

from fsg_ray.app import evaluate_fronts
from fsg_ray.config import EvalConfig, TrainConfig, from_dict
from fsg_ray.core import baselines, metrics
from fsg_ray.core.models import VGG19Features, VGGWeights
from fsg_ray.io import compositing, images, registry, visualize
from fsg_ray.io.folders import IMAGE_SUFFIXES
from fsg_ray.io.inputs import output_stem, path_stem
from fsg_ray.io.storage import Storage
from fsg_ray.io.uri import join, relative
from fsg_ray.io.weights import load_vgg

log = logging.getLogger(__name__)

SHEET_CELL = 160
#: Forward passes timed per garment and generator; the fastest counts.
TIME_REPEATS = 3
SHEET, METRICS_JSON, METRICS_MD, OUTPUTS = "sheet.png", "metrics.json", "metrics.md", "outputs"
#: Column labels of the modes (the paper's names of the methods they stand for).
MODE_LABELS = {
    "full": "full (ours)",
    "global_only": "global_only (FeedS-like)",
    "patch_only": "patch_only (MGAN-like)",
}
#: The metrics of the table: key, heading, whether higher is better.
COLUMNS = (
    ("style_gram", "style Gram", False),
    ("style_swd", "style SWD", False),
    ("structure", "structure", True),
    ("silhouette_iou", "silhouette IoU", True),
    ("leakage", "leakage", False),
    ("seconds_per_image", "s / image", False),
)


@dataclass(frozen=True)
class Garment:
    """One input: its name (path below the prefix, no suffix), image (3, H, W), mask (H, W)."""

    name: str
    image: Tensor
    mask: Tensor


@dataclass
class Method:
    """One column of the sheet: a registry entry's generator, or Gatys.

    Attributes:
        key: The method's id in the table: the registry entry's name, or ``gatys``.
        label: The sheet's column title.
        mode: ``full``, ``global_only``, ``patch_only`` or ``gatys``.
        version: The registry version (None for Gatys).
        outputs: One raw output (3, H, W) per garment.
        seconds: Time to make each output.
    """

    key: str
    label: str
    mode: str
    version: str | None = None
    outputs: list[Tensor] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)


def default_eval_vgg(train_vgg: str) -> str:
    """The evaluation VGG for generators trained with ``train_vgg``: ``random:<seed + 1>``
    for ``random:<seed>``; ImageNet otherwise (see docs/metrics.md for the ImageNet case)."""
    match = re.fullmatch(r"random:(\d+)", train_vgg)
    return f"random:{int(match[1]) + 1}" if match else "imagenet"


def load_garments(
    storage: Storage, images_uri: str, masks_uri: str | None, max_side: int
) -> list[Garment]:
    """The garment photos below ``images_uri`` (shrunk to ``max_side``) with their masks.

    Raises:
        ValueError: No image below the prefix; an image's key cannot name an output (``..``);
            an image or mask cannot be decoded; a photo has no mask below ``masks_uri``; a
            mask is empty.
    """
    uris = storage.list_files(images_uri, suffixes=IMAGE_SUFFIXES)
    if not uris:
        raise ValueError(f"no images ({', '.join(IMAGE_SUFFIXES)}) below {images_uri}")
    given = _masks_by_stem(storage, masks_uri) if masks_uri else {}
    garments = []
    for uri in uris:
        name = output_stem(uri, images_uri)  # names outputs: no ``..`` (as fsg restyle)
        img = images.decode_image(storage.read_bytes(uri), name=uri)
        x = images.to_tensor(compositing.fit_long_side(img, max_side))
        if masks_uri is None:
            mask = metrics.estimate_mask(x)
        elif name in given:
            raw = storage.read_bytes(given[name])
            mask = images.decode_mask(raw, size=(x.shape[-2], x.shape[-1]), name=given[name]) > 0.5
        else:
            raise ValueError(f"{uri}: no mask {name}.* below {masks_uri}")
        if not bool(mask.any()):
            raise ValueError(f"{uri}: the garment mask is empty")
        garments.append(Garment(name, x, mask))
    return garments


def _masks_by_stem(storage: Storage, masks_uri: str) -> dict[str, str]:
    files = storage.list_files(masks_uri, suffixes=IMAGE_SUFFIXES)
    return {path_stem(relative(uri, masks_uri)): uri for uri in files}


def _device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def run_generator(
    storage: Storage,
    cfg: EvalConfig,
    found: registry.PublishedVersion,
    vgg: VGGWeights,
    garments: Sequence[Garment],
    device: torch.device,
) -> Method:
    """One registry entry's generator on every garment, after a warm-up pass; each time is
    the fastest of :data:`TIME_REPEATS` passes (other processes only ever add time)."""
    mode = registry.mode_of(found)
    label = f"{MODE_LABELS.get(mode, mode)}\n{found.style} {found.version}"
    method = Method(found.style, label, mode, found.version)
    gen, _ = registry.load(storage, cfg.registry, found.style, device, found.version, vgg)
    with torch.inference_mode():
        gen(garments[0].image[None].to(device))  # warm-up: allocations, kernel choice
        for g in garments:
            x, times = g.image[None].to(device), []
            for _ in range(TIME_REPEATS):
                _sync(device)
                t0 = time.perf_counter()
                out = gen(x)[0]
                _sync(device)
                times.append(time.perf_counter() - t0)
            method.seconds.append(min(times))
            method.outputs.append(out.float().clamp(0, 1).cpu())
    log.info("%s (%s): %.3f s per image", found.style, mode, _mean(method.seconds))
    return method


def run_gatys(
    train: TrainConfig,
    vgg: VGGWeights,
    style: Tensor,
    garments: Sequence[Garment],
    iterations: int,
    device: torch.device,
) -> Method:
    """NeuralST: Gatys optimisation of each garment with the style's own loss config and VGG."""
    label = f"NeuralST (Gatys)\n{iterations} L-BFGS iterations"
    method = Method("gatys", label, "gatys")
    phi = VGG19Features(vgg.state, train.loss.loss_layers()[-1]).to(device)
    for i, g in enumerate(garments, 1):
        _sync(device)
        t0 = time.perf_counter()
        result = baselines.gatys(
            g.image[None].to(device), style[None].to(device), phi, train.loss, iterations
        )
        _sync(device)
        method.seconds.append(time.perf_counter() - t0)
        method.outputs.append(result.images[0].cpu())
        log.info("gatys %d/%d: %.1f s", i, len(garments), method.seconds[-1])
    return method


def score(
    method: Method, garments: Sequence[Garment], style: Tensor, phi: VGG19Features
) -> list[dict[str, Any]]:
    """Every metric of every output of ``method``, one row per garment."""
    rows = []
    for g, out, seconds in zip(garments, method.outputs, method.seconds, strict=True):
        rows.append(
            {
                "image": g.name,
                "style_gram": metrics.gram_style_distance(out, style, phi, g.mask),
                "style_swd": metrics.sliced_wasserstein(out, style, g.mask),
                "structure": metrics.structure_similarity(g.image, out, g.mask),
                "silhouette_iou": metrics.silhouette_iou(g.mask, metrics.estimate_mask(out)),
                "leakage": metrics.background_leakage(g.image, out, g.mask),
                "seconds_per_image": seconds,
            }
        )
    return rows


def _mean(values: Sequence[float]) -> float:
    return float(sum(values) / len(values)) if values else 0.0


def means(rows: Sequence[dict[str, Any]]) -> dict[str, float]:
    """The mean of each metric over the garments."""
    return {key: _mean([r[key] for r in rows]) for key, _, _ in COLUMNS}


def evaluate(cfg: EvalConfig, storage: Storage) -> dict[str, Any]:
    """Runs every mode of the style and Gatys on the garments; writes sheet, tables, outputs.

    Returns:
        What ``metrics.json`` holds.

    Raises:
        StyleNotFound: The registry has no entry of that base style.
        ValueError: See :func:`load_garments`; the style image cannot be decoded; the
            config names several styles, not one.
    """
    if cfg.style is None:
        raise ValueError(
            "evaluate() takes one style (eval.style); for eval.styles see evaluate_styles"
        )
    entries = registry.modes(storage, cfg.registry, cfg.style)
    garments = load_garments(storage, cfg.images, cfg.masks, cfg.max_side)
    first = entries[0]
    train = from_dict(TrainConfig, first.metadata["config"])
    style_uri = str(first.metadata["style_image"])
    _warn_other_style_images(entries, style_uri)
    style = _load_style(storage, style_uri, train.data.style_size)
    device = _device()
    train_vgg = load_vgg(train.model.vgg_weights, storage)
    log.info("eval %s: %d methods on %d garments", cfg.style, len(entries), len(garments))
    vggs = {train_vgg.spec: train_vgg}
    methods = []
    for found in entries:
        spec = str(found.metadata["vgg_weights"])
        if spec not in vggs:
            vggs[spec] = load_vgg(spec, storage)
        methods.append(run_generator(storage, cfg, found, vggs[spec], garments, device))
    if cfg.gatys_iters:
        methods.append(run_gatys(train, train_vgg, style, garments, cfg.gatys_iters, device))
    eval_spec = cfg.eval_vgg or default_eval_vgg(train.model.vgg_weights)
    phi = VGG19Features(load_vgg(eval_spec, storage).state, metrics.STYLE_LAYERS[-1])
    report = _report(cfg, train, style_uri, eval_spec, device, garments, methods, style, phi)
    _write(storage, cfg, report, garments, methods, style, first.style)
    return report


def _warn_other_style_images(entries: Sequence[registry.PublishedVersion], uri: str) -> None:
    for found in entries:
        if found.metadata.get("style_image") != uri:
            log.warning(
                "%s was trained with the style image %s, not %s: compared anyway",
                found.style,
                found.metadata.get("style_image"),
                uri,
            )


def _load_style(storage: Storage, uri: str, size: int) -> Tensor:
    """The style image y_s at its training size (3, size, size)."""
    return images.load_style_image(storage.read_bytes(uri), size, name=uri)


def _report(
    cfg: EvalConfig,
    train: TrainConfig,
    style_uri: str,
    eval_spec: str,
    device: torch.device,
    garments: Sequence[Garment],
    methods: Sequence[Method],
    style: Tensor,
    phi: VGG19Features,
) -> dict[str, Any]:
    """metrics.json: the setup, then per method its means and per-garment rows. The first
    row, ``input``, scores the unchanged garments: the scale of "doing nothing". With
    ``cfg.strengths``, each method's row also holds its ``front``
    (:func:`fsg_ray.app.evaluate_fronts.method_front`)."""
    unchanged = Method("input", "input", "input", None, [g.image for g in garments])
    unchanged.seconds = [0.0] * len(garments)
    if cfg.strengths:
        log.info("fronts: %d strengths of %d methods", len(cfg.strengths), len(methods))
    table: list[dict[str, Any]] = []
    for m in [unchanged, *methods]:
        rows = score(m, garments, style, phi)
        entry: dict[str, Any] = {
            "method": m.key,
            "mode": m.mode,
            "version": m.version,
            "mean": means(rows),
            "per_image": rows,
        }
        if cfg.strengths and m is not unchanged:
            pairs = [(g.image, g.mask) for g in garments]
            front = evaluate_fronts.method_front(
                pairs, m.outputs, style, cfg.strengths, table[0]["mean"], entry["mean"]
            )
            entry["front"] = evaluate_fronts.as_rows(front)
        table.append(entry)
    return {
        "style": cfg.style,
        "registry": cfg.registry,
        "images": cfg.images,
        "masks": cfg.masks or "estimated (auto_mask)",
        "garments": len(garments),
        "style_image": style_uri,
        "train_vgg": train.model.vgg_weights,
        "eval_vgg": eval_spec,
        "gatys_iters": cfg.gatys_iters,
        "strengths": list(cfg.strengths),
        "device": str(device),
        "methods": table,
    }


def format_table(report: dict[str, Any]) -> str:
    """The Markdown table of means (``metrics.md``), best value of each column in bold."""
    rows = report["methods"]
    head = "| method | mode | " + " | ".join(
        f"{title} {'↑' if up else '↓'}" for _, title, up in COLUMNS
    )
    lines = [head + " |", "|---|---|" + "---:|" * len(COLUMNS)]
    contenders = [r for r in rows if r["mode"] != "input"]
    for r in rows:
        cells = [f"{r['method']}" + (f" {r['version']}" if r["version"] else ""), r["mode"]]
        for key, _, up in COLUMNS:
            value = r["mean"][key]
            text = f"{value:.3g}" if key != "seconds_per_image" or value else "-"
            values = [c["mean"][key] for c in contenders]
            best = max(values) if up else min(values)
            bold = r in contenders and len(contenders) > 1 and value == best
            cells.append(f"**{text}**" if bold else text)
        lines.append("| " + " | ".join(cells) + " |")
    setup = (
        f"Style `{report['style']}`, {report['garments']} garments, masks: {report['masks']}. "
        f"Trained with VGG `{report['train_vgg']}`; style Gram under VGG `{report['eval_vgg']}`. "
        f"Device: {report['device']}. Means over the garments; best of the methods in bold. "
        "Definitions: docs/metrics.md."
    )
    return "\n".join([setup, "", *lines]) + "\n"


def sheet(
    garments: Sequence[Garment], methods: Sequence[Method], style: Tensor, style_name: str
) -> Image.Image:
    """The comparison sheet (paper Fig. 4): rows are garments; columns the style image, the
    input, then each method's output inside the garment mask (the background kept)."""
    columns: dict[str, list[Image.Image]] = {
        f"style\n{style_name}": [images.to_image(style)],
        "input\n": [images.to_image(g.image) for g in garments],
    }
    for m in methods:
        columns[m.label] = [
            images.to_image(torch.where(g.mask, out, g.image))
            for g, out in zip(garments, m.outputs, strict=True)
        ]
    return visualize.grid(columns, cell=SHEET_CELL)


def _write(
    storage: Storage,
    cfg: EvalConfig,
    report: dict[str, Any],
    garments: Sequence[Garment],
    methods: Sequence[Method],
    style: Tensor,
    style_name: str,
) -> None:
    for m in methods:
        for g, out in zip(garments, m.outputs, strict=True):
            uri = join(cfg.out, OUTPUTS, m.key, f"{g.name}.png")
            storage.write_bytes(uri, _png(images.to_image(out)))
    storage.write_bytes(join(cfg.out, SHEET), _png(sheet(garments, methods, style, style_name)))
    storage.write_bytes(join(cfg.out, METRICS_JSON), json.dumps(report, indent=2).encode())
    storage.write_bytes(join(cfg.out, METRICS_MD), format_table(report).encode())
    curves = {
        f"{r['method']} ({r['mode']})": evaluate_fronts.from_rows(r["front"])
        for r in report["methods"]
        if "front" in r
    }
    if curves:
        png = evaluate_fronts.fronts_png(curves, f"style {style_name}")
        storage.write_bytes(join(cfg.out, evaluate_fronts.FRONTS_PNG), png)
        ours = next((m for m in methods if m.mode == "full"), methods[0])
        pairs = [(g.image, g.mask) for g in garments]
        strip = evaluate_fronts.strengths_sheet(pairs, ours.outputs, cfg.strengths, SHEET_CELL)
        storage.write_bytes(join(cfg.out, evaluate_fronts.STRENGTHS_PNG), _png(strip))


def _png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()
