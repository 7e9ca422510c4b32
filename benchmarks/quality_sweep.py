"""Quality sweep: train named variants of the demo profile in process and score them.

No Ray: each (variant, style) is one in-process run of :func:`fsg_ray.core.algorithm.train`
on :class:`fsg_ray.io.folders.InMemoryBatches`, at the demo's shapes, on a synthetic dataset
written once by :func:`fsg_ray.io.synthetic.write_dataset`. Every output is scored on the
held-out garments with the metrics ``fsg eval`` uses (:mod:`fsg_ray.core.metrics`): style
distances (pixel-patch SWD, Gram under ``random:1``), structure, silhouette IoU, leakage.
Runs go one per process (``--jobs`` at once, one torch thread each), on ``--device`` (CUDA
when present: bf16 autocast, so its numbers are not bit-equal to the CPU's). ``--seeds 0,1,2``
trains every (variant, style) once per seed (``schedule.seed``: the decoder's and the
discriminator's initial weights and the data order) and adds a table of means ± spread with a
verdict per style: whether the first variant is Pareto-better than its ablations on the means,
and on how many seeds. Writes under ``--out``::

    data/                         the synthetic dataset (written once)
    runs/<variant>__<style>[__s<seed>].json  the config, the losses' tail, the metric rows
    runs/<variant>__<style>[__s<seed>].pt    the raw outputs on the held-out garments
    results.md                    one table per style: every variant and the input
    sheet_<style>.png             style | input | each variant inside the garment mask

A finished (variant, style) is skipped on a rerun, so a sweep grows one variant at a time.
Experiments and their readings are recorded in docs/experiments.md.

    PYTHONPATH=. python benchmarks/quality_sweep.py --variants full_T0,full_recal \\
        --styles stripes,leopard,porcelain --jobs 2 --out sweep-out
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import torch
from sweep_variants import VARIANTS, variant_config

from fsg_ray import config
from fsg_ray.app.evaluate_styles import Verdict  # no Ray: evaluate's layer
from fsg_ray.core import algorithm, metrics
from fsg_ray.core.models import VGG19Features, load_vgg
from fsg_ray.io import images, synthetic, visualize
from fsg_ray.io.folders import InMemoryBatches, list_images, load_folder, shop_patches

log = logging.getLogger("quality_sweep")
IMAGE_SIZE = 160  # the demo's garment photos (app.demo.DEMO_IMAGE_SIZE)
EVAL_VGG = "random:1"  # the evaluation VGG of generators trained on random:0 (docs/metrics.md)
RECAL_BATCHES = 16  # batches of 2 whole images for the "+recal" rows


def run_key(variant: str, style_name: str, seed: int | None) -> str:
    """The file stem of one run: ``<variant>__<style>``, with ``__s<seed>`` under --seeds."""
    return f"{variant}__{style_name}" + ("" if seed is None else f"__s{seed}")


def write_data(root: Path, styles: list[str]) -> None:
    """The demo's synthetic dataset, with 8 held-out garments (two of each kind)."""
    if (root / "styles").exists():
        return
    synthetic.write_dataset(
        root, n_full=48, n_shop=12, n_heldout=8, full_size=IMAGE_SIZE, shop_size=IMAGE_SIZE,
        style_size=96, styles=synthetic.STYLE_NAMES,
    )  # fmt: skip


def heldout(root: Path) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Held-out garments (3, H, W) and their bool masks."""
    garments = load_folder(root / "heldout", IMAGE_SIZE)
    masks = [
        images.mask_to_tensor(images.load_image(p)) > 0.5
        for p in list_images(root / "heldout_masks")
    ]
    return garments, masks


def score(out: torch.Tensor, x: torch.Tensor, mask: torch.Tensor, style: torch.Tensor,
          phi: VGG19Features) -> dict[str, float]:  # fmt: skip
    """The metrics of ``fsg eval`` (app.evaluate.score) for one output."""
    return {
        "style_swd": metrics.sliced_wasserstein(out, style, mask),
        "style_gram": metrics.gram_style_distance(out, style, phi, mask),
        "structure": metrics.structure_similarity(x, out, mask),
        "silhouette_iou": metrics.silhouette_iou(mask, metrics.estimate_mask(out)),
        "leakage": metrics.background_leakage(x, out, mask),
    }


def _style(root: Path, name: str) -> torch.Tensor:
    return images.to_tensor(images.load_image(root / "styles" / f"{name}.png"))


def train_one(
    variant: str, style_name: str, root: Path, out: Path, scale: float,
    seed: int | None = None, device: str = "cpu",
) -> str:  # fmt: skip
    """Trains one (variant, style[, seed]) and writes its outputs and metric rows; returns
    its key."""
    torch.set_num_threads(1)
    key = run_key(variant, style_name, seed)
    cfg = variant_config(variant, scale, seed)
    vgg = load_vgg(cfg.model.vgg_weights)
    style = _style(root, style_name)
    run = algorithm.new_run(cfg, vgg, style[None], torch.device(device))
    full = load_folder(root / "full", IMAGE_SIZE)
    patches = shop_patches(root / "shop", root / "shop_masks", cfg.data)
    data = InMemoryBatches(full, patches, cfg.data, cfg.schedule.batch_size, cfg.schedule.seed)
    t0 = time.perf_counter()
    algorithm.train(run, data)
    train_s = time.perf_counter() - t0
    tail = run.progress.history[-20:]
    losses = {k: sum(h[k] for h in tail if k in h) / max(1, sum(k in h for h in tail))
              for k in {k for h in tail for k in h} - {"phase"}}  # fmt: skip
    _evaluate(run, root, out, key, variant, style, scale, train_s, losses)
    # The same weights again with BN statistics recalibrated on whole sharp images, unless
    # the variant did so itself: one training run answers "does recalibration help?".
    if cfg.schedule.bn_recalibration_batches == 0:
        n = algorithm.recalibrate_batchnorm(run.nets.gen, data, RECAL_BATCHES)
        if n:
            _evaluate(run, root, out, f"{key}+recal", variant, style, scale, train_s, losses)
    # And on the whole shop photos of X^(1) (product shots on plain backdrops, at the held-out
    # garments' size), the kind of photo a catalogue restyle feeds G.
    shop = load_folder(root / "shop", IMAGE_SIZE)
    if algorithm.recalibrate_batchnorm_on(run.nets.gen, _pairs(shop)):
        _evaluate(run, root, out, f"{key}+recal_shop", variant, style, scale, train_s, losses)
    return key


def _pairs(photos: list[torch.Tensor]) -> Iterator[torch.Tensor]:
    """Batches of two photos of one size (a last odd photo alone)."""
    for i in range(0, len(photos), 2):
        yield torch.stack(photos[i : i + 2])


def _evaluate(
    run: algorithm.Run, root: Path, out: Path, key: str, variant: str, style: torch.Tensor,
    scale: float, train_s: float, losses: dict[str, float],
) -> None:  # fmt: skip
    """Scores the run's generator (eval mode) on the held-out garments; writes its record."""
    style_name = key.split("__")[1].split("+")[0]
    garments, masks = heldout(root)
    gen = run.nets.gen.eval()
    with torch.inference_mode():
        outs = [gen(x[None].to(run.device))[0].float().clamp(0, 1).cpu() for x in garments]
    phi = VGG19Features(load_vgg(EVAL_VGG).state, metrics.STYLE_LAYERS[-1])
    rows = [score(o, x, m, style, phi) for o, x, m in zip(outs, garments, masks, strict=True)]
    record = {
        "variant": variant, "style": style_name, "scale": scale, "train_s": round(train_s, 1),
        "seed": run.cfg.schedule.seed, "device": str(run.device),
        "overrides": VARIANTS[variant.partition("@")[0]], "config": config.to_dict(run.cfg),
        "rows": rows,
        "mean": {k: sum(r[k] for r in rows) / len(rows) for k in rows[0]},
        "last_losses": losses,
    }  # fmt: skip
    torch.save(torch.stack(outs), out / "runs" / f"{key}.pt")
    (out / "runs" / f"{key}.json").write_text(json.dumps(record, indent=1))


def input_row(root: Path, style_name: str) -> dict[str, float]:
    """The untouched garments' scores: the scale of "doing nothing"."""
    garments, masks = heldout(root)
    phi = VGG19Features(load_vgg(EVAL_VGG).state, metrics.STYLE_LAYERS[-1])
    style = _style(root, style_name)
    rows = [score(x, x, m, style, phi) for x, m in zip(garments, masks, strict=True)]
    return {k: sum(r[k] for r in rows) / len(rows) for k in rows[0]}


def report(
    root: Path, out: Path, variants: list[str], styles: list[str], seed: int | None = None
) -> str:
    """results.md and one sheet per style from every finished run of the sweep (of ``seed``
    under --seeds)."""
    garments, masks = heldout(root)
    lines = []
    for s in styles:
        lines += [f"### {s}", "", "| variant | style SWD ↓ (ratio to input) | style Gram ↓ | "
                  "structure ↑ | silhouette IoU ↑ | leakage ↓ | train s |",
                  "|---|---:|---:|---:|---:|---:|---:|"]  # fmt: skip
        ref = input_row(root, s)
        lines.append(
            f"| input | {ref['style_swd']:.3f} (1.00) | {ref['style_gram']:.3f} | "
            f"{ref['structure']:.3f} | {ref['silhouette_iou']:.3f} | 0 | - |"
        )
        columns = {f"style\n{s}": [images.to_image(_style(root, s))],
                   "input": [images.to_image(x) for x in garments]}  # fmt: skip
        for name, suffix in [(v, sfx) for v in variants for sfx in ("", "+recal", "+recal_shop")]:
            v = name + suffix
            path = out / "runs" / f"{run_key(name, s, seed)}{suffix}.json"
            if not path.exists():
                continue
            rec = json.loads(path.read_text())
            m = rec["mean"]
            lines.append(
                f"| {v} | {m['style_swd']:.3f} ({m['style_swd'] / ref['style_swd']:.2f}) | "
                f"{m['style_gram']:.3f} | {m['structure']:.3f} | {m['silhouette_iou']:.3f} | "
                f"{m['leakage']:.3f} | {rec['train_s']:.0f} |"
            )
            outs = torch.load(path.with_suffix(".pt"), weights_only=True)
            columns[v] = [
                images.to_image(torch.where(mk, o, x))
                for o, x, mk in zip(outs, garments, masks, strict=True)
            ]
        lines.append("")
        visualize.save_png(visualize.grid(columns, cell=112), out / f"sheet_{s}.png")
    text = "\n".join(lines)
    (out / "results.md").write_text(text)
    return text


def _spread(values: list[float]) -> str:
    """``mean ± sample standard deviation`` (``mean`` alone for one value)."""
    m = sum(values) / len(values)
    if len(values) < 2:
        return f"{m:.3f}"
    sd = (sum((v - m) ** 2 for v in values) / (len(values) - 1)) ** 0.5
    return f"{m:.3f} ± {sd:.3f}"


def _pareto(a: dict[str, float], b: dict[str, float]) -> bool:
    """``fsg eval``'s verdict rule (:class:`fsg_ray.app.evaluate_styles.Verdict`) for the
    means ``a`` of the full method against the means ``b`` of an ablation."""
    verdict = Verdict("", "", a["style_swd"], b["style_swd"], a["structure"], b["structure"])
    return verdict.pareto_better


def seed_report(out: Path, variants: list[str], styles: list[str], seeds: list[int]) -> str:
    """Per style: every variant's SWD and structure as mean ± spread over the seeds, then a
    verdict line per ablation of the first variant: Pareto-better on the means, and on how
    many seeds (paired by seed)."""
    lines = [f"## Over seeds {','.join(map(str, seeds))}", ""]
    for s in styles:
        lines += [f"### {s}", "", "| variant | seeds | style SWD ↓ | structure ↑ | "
                  "silhouette IoU ↑ |", "|---|---:|---:|---:|---:|"]  # fmt: skip
        means: dict[str, dict[int, dict[str, float]]] = {}
        for v in variants:
            for seed in seeds:
                path = out / "runs" / f"{run_key(v, s, seed)}.json"
                if path.exists():
                    means.setdefault(v, {})[seed] = json.loads(path.read_text())["mean"]
            if v in means:
                got = list(means[v].values())
                lines.append(
                    f"| {v} | {len(got)} | {_spread([m['style_swd'] for m in got])} | "
                    f"{_spread([m['structure'] for m in got])} | "
                    f"{_spread([m['silhouette_iou'] for m in got])} |"
                )
        lines.append("")
        full = variants[0]
        for v in (v for v in variants[1:] if v.partition("@")[0] == full and v in means):
            both = sorted(set(means.get(full, {})) & set(means[v]))
            if not both:
                continue
            avg = {name: {k: sum(means[name][sd][k] for sd in both) / len(both)
                          for k in ("style_swd", "structure")} for name in (full, v)}  # fmt: skip
            wins = sum(_pareto(means[full][sd], means[v][sd]) for sd in both)
            verdict = "Pareto-better" if _pareto(avg[full], avg[v]) else "not Pareto-better"
            lines.append(
                f"- {full} vs {v}: {verdict} on the means (SWD {avg[full]['style_swd']:.3f} vs "
                f"{avg[v]['style_swd']:.3f}, structure {avg[full]['structure']:.3f} vs "
                f"{avg[v]['structure']:.3f}); Pareto-better on {wins} of {len(both)} seeds"
            )
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--variants", default="full_T0,full_T2_recal_swd")
    p.add_argument("--styles", default="stripes,leopard,porcelain")
    p.add_argument("--out", type=Path, default=Path("sweep-out"))
    p.add_argument("--jobs", type=int, default=2, help="runs at once, one torch thread each")
    p.add_argument("--scale", type=float, default=1.0, help="multiplies every step count")
    p.add_argument("--seeds", default="", help="e.g. 0,1,2: every run once per seed")
    p.add_argument("--device", default="auto", help="auto (CUDA when present) | cpu | cuda")
    p.add_argument("--report-only", action="store_true", help="no training: tables and sheets")
    a = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    variants, styles = a.variants.split(","), a.styles.split(",")
    unknown = sorted({v.partition("@")[0] for v in variants} - set(VARIANTS))
    if unknown:
        p.error(f"unknown variants {unknown}; choose from {sorted(VARIANTS)}")
    try:
        seeds: list[int | None] = [int(x) for x in a.seeds.split(",")] if a.seeds else [None]
    except ValueError:
        p.error(f"--seeds takes integers separated by commas, not {a.seeds!r}")
    device = ("cuda" if torch.cuda.is_available() else "cpu") if a.device == "auto" else a.device
    if device not in ("cpu", "cuda") or (device == "cuda" and not torch.cuda.is_available()):
        p.error(f"--device {a.device!r}: choose auto, cpu or cuda (CUDA present: "
                f"{torch.cuda.is_available()})")  # fmt: skip
    root = a.out / "data"
    write_data(root, styles)
    (a.out / "runs").mkdir(parents=True, exist_ok=True)
    # Seeds outermost: a sweep cut short still has whole seeds of every variant and style.
    todo = [(v, s, sd) for sd in seeds for v in variants for s in styles
            if not a.report_only
            and not (a.out / "runs" / f"{run_key(v, s, sd)}.json").exists()]  # fmt: skip
    with ProcessPoolExecutor(a.jobs, mp_context=get_context("spawn")) as pool:
        futures = [pool.submit(train_one, v, s, root, a.out, a.scale, sd, device)
                   for v, s, sd in todo]  # fmt: skip
        for f in futures:
            log.info("done %s", f.result())
    text = report(root, a.out, variants, styles, seeds[0])
    if seeds[0] is not None:
        given = [sd for sd in seeds if sd is not None]
        text += "\n\n" + seed_report(a.out, variants, styles, given)
        (a.out / "results.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
