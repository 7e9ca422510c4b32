"""``fsg eval --styles a,b,c`` (or ``all``): :func:`fsg_ray.app.evaluate.evaluate` for each
base style into ``OUT/<style>/``, then one summary across the styles::

    summary.md     per style and method: style SWD, its ratio to the input's, structure,
                   silhouette IoU; then one verdict line per style and ablation
    summary.json   the same rows and verdicts as data

The verdict is the paper's claim in numbers: the full method is *Pareto-better* than an
ablation when its style distance (pixel-patch SWD) is at most the ablation's and its
structure at least the ablation's, i.e. it gives up neither half of the trade-off. Where the
reports hold strength fronts (``eval.strengths``), a second line per ablation compares the
fronts at equal style distance (:func:`fsg_ray.app.evaluate_fronts.front_verdict`): how good
each trade-off is, apart from where on it training stopped.

Like :mod:`fsg_ray.app.evaluate`, no Ray.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from fsg_ray.app import evaluate, evaluate_fronts
from fsg_ray.config import EvalConfig
from fsg_ray.config.evaluate import ALL_STYLES
from fsg_ray.io import registry
from fsg_ray.io.storage import Storage
from fsg_ray.io.uri import join

log = logging.getLogger(__name__)

SUMMARY_MD, SUMMARY_JSON = "summary.md", "summary.json"
#: The modes the full method is compared with, in the order of the verdicts.
ABLATIONS = ("global_only", "patch_only")
#: Summary columns: key of a method's means, heading, whether higher is better.
SUMMARY_COLUMNS = (
    ("style_swd", "style SWD", False),
    ("swd_ratio", "SWD / input", False),
    ("structure", "structure", True),
    ("silhouette_iou", "silhouette IoU", True),
)


@dataclass(frozen=True)
class Verdict:
    """The full method against one ablation of a style."""

    style: str
    ablation: str  # its mode, or "mode (entry)" when the style has several of that mode
    full_swd: float
    ablation_swd: float
    full_structure: float
    ablation_structure: float

    @property
    def pareto_better(self) -> bool:
        """Style distance no higher and structure no lower than the ablation's."""
        return self.full_swd <= self.ablation_swd and self.full_structure >= self.ablation_structure

    @property
    def line(self) -> str:
        """E.g. ``stripes: full vs global_only: Pareto-better (SWD 0.41 ≤ 0.45, structure
        0.71 ≥ 0.66)``."""
        swd = "≤" if self.full_swd <= self.ablation_swd else ">"
        structure = "≥" if self.full_structure >= self.ablation_structure else "<"
        outcome = "Pareto-better" if self.pareto_better else "not Pareto-better"
        return (
            f"{self.style}: full vs {self.ablation}: {outcome} "
            f"(SWD {self.full_swd:.3g} {swd} {self.ablation_swd:.3g}, "
            f"structure {self.full_structure:.3g} {structure} {self.ablation_structure:.3g})"
        )


def base_styles(storage: Storage, registry_uri: str) -> list[str]:
    """Every base style of the registry (entries' ``base_style``, or their own name), sorted."""
    names = registry.list_styles(storage, registry_uri)
    found = [registry.resolve(storage, registry_uri, name) for name in names]
    return sorted({registry.base_of(f) for f in found})


def resolve_styles(storage: Storage, registry_uri: str, names: Sequence[str]) -> list[str]:
    """The styles to evaluate: ``names`` as given, or every base style for ``("all",)``.

    Raises:
        StyleNotFound: A name is no base style of the registry (the message lists every
            unknown name and the known ones), or ``all`` finds an empty registry.
    """
    known = base_styles(storage, registry_uri)
    if tuple(names) == (ALL_STYLES,):
        if not known:
            raise registry.StyleNotFound(f"no styles in {registry_uri}")
        return known
    unknown = [n for n in names if n not in known]
    if unknown:
        raise registry.StyleNotFound(
            f"unknown styles {', '.join(map(repr, unknown))} in {registry_uri}; "
            f"known styles: {', '.join(known) or 'none'}"
        )
    return list(names)


def evaluate_styles(cfg: EvalConfig, storage: Storage) -> dict[str, Any]:
    """Evaluates every style of ``cfg.styles`` into ``cfg.out/<style>/``, then writes
    :data:`SUMMARY_MD` and :data:`SUMMARY_JSON` below ``cfg.out``.

    Every style name is checked against the registry before any evaluation starts.

    Returns:
        What ``summary.json`` holds: ``styles``, ``rows`` and ``verdicts``.
    """
    styles = resolve_styles(storage, cfg.registry, cfg.styles)
    reports: dict[str, dict[str, Any]] = {}
    for style in styles:
        log.info("eval: style %s (%d of %d)", style, len(reports) + 1, len(styles))
        one = dataclasses.replace(cfg, style=style, styles=(), out=join(cfg.out, style))
        reports[style] = evaluate.evaluate(one, storage)
    result = summarise(reports)
    storage.write_bytes(join(cfg.out, SUMMARY_JSON), json.dumps(result, indent=2).encode())
    storage.write_bytes(join(cfg.out, SUMMARY_MD), format_summary(result).encode())
    return result


def summarise(reports: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """The summary of per-style reports (``metrics.json`` of :func:`evaluate.evaluate`)."""
    rows, verdict_rows, front_rows = [], [], []
    for style, report in reports.items():
        methods = report["methods"]
        rows += summary_rows(style, methods)
        verdict_rows += [
            {**dataclasses.asdict(v), "pareto_better": v.pareto_better, "line": v.line}
            for v in verdicts(style, methods)
        ]
        front_rows += front_verdicts(style, methods)
    return {"styles": list(reports), "rows": rows, "verdicts": verdict_rows, "fronts": front_rows}


def summary_rows(style: str, methods: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One row per method of a style: its means and its style SWD over the input's."""
    inputs = [m["mean"]["style_swd"] for m in methods if m["mode"] == "input"]
    base = inputs[0] if inputs else None
    out = []
    for m in methods:
        swd = float(m["mean"]["style_swd"])
        row = {"style": style, "method": m["method"], "mode": m["mode"]}
        row["version"] = m.get("version")
        row["swd_ratio"] = swd / base if base else None  # no input row, or a zero distance
        out.append(row | {key: float(m["mean"][key]) for key in _MEAN_KEYS})
    return out


_MEAN_KEYS = ("style_swd", "structure", "silhouette_iou")


def verdicts(style: str, methods: Sequence[Mapping[str, Any]]) -> list[Verdict]:
    """The full method against each ablation of a style, in :data:`ABLATIONS` order; empty
    when the style has no full method or no ablation (:func:`format_summary` says so)."""
    full = [m for m in methods if m["mode"] == "full"]
    if not full:
        return []
    ours = full[0]["mean"]
    out = []
    for mode in ABLATIONS:
        same = [m for m in methods if m["mode"] == mode]
        for m in same:
            name = mode if len(same) == 1 else f"{mode} ({m['method']})"
            theirs = m["mean"]
            out.append(
                Verdict(
                    style,
                    name,
                    float(ours["style_swd"]),
                    float(theirs["style_swd"]),
                    float(ours["structure"]),
                    float(theirs["structure"]),
                )
            )
    return out


def front_verdicts(style: str, methods: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The full method's strength front against each ablation's, in :data:`ABLATIONS` order;
    empty without a full method, an ablation, or fronts in the report."""
    full = [m for m in methods if m["mode"] == "full" and "front" in m]
    if not full:
        return []
    ours = evaluate_fronts.from_rows(full[0]["front"])
    out = []
    for mode in ABLATIONS:
        same = [m for m in methods if m["mode"] == mode and "front" in m]
        for m in same:
            name = mode if len(same) == 1 else f"{mode} ({m['method']})"
            theirs = evaluate_fronts.from_rows(m["front"])
            out.append(evaluate_fronts.front_verdict(style, name, ours, theirs))
    return out


def _cell(value: float | None) -> str:
    return "-" if value is None else f"{value:.3g}"


def format_summary(result: Mapping[str, Any]) -> str:
    """``summary.md``: the table across styles, then the verdict lines."""
    head = "| style | method | mode | " + " | ".join(
        f"{title} {'↑' if up else '↓'}" for _, title, up in SUMMARY_COLUMNS
    )
    lines = [
        f"Summary of {len(result['styles'])} styles: {', '.join(result['styles'])}. "
        "Means over the garments; per-style tables in <style>/metrics.md; definitions: "
        "docs/metrics.md.",
        "",
        head + " |",
        "|---|---|---|" + "---:|" * len(SUMMARY_COLUMNS),
    ]
    for r in result["rows"]:
        name = r["method"] + (f" {r['version']}" if r["version"] else "")
        cells = [r["style"], name, r["mode"], *(_cell(r[k]) for k, _, _ in SUMMARY_COLUMNS)]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "Verdicts (Pareto-better: style SWD ≤ the ablation's and structure ≥ it):", ""]
    judged = {v["style"] for v in result["verdicts"]}
    for style in result["styles"]:
        if style not in judged:
            lines.append(f"- {style}: no full method and ablation to compare")
        lines += [f"- {v['line']}" for v in result["verdicts"] if v["style"] == style]
    if result.get("fronts"):
        lines += [
            "",
            "Fronts (each method's change scaled by strengths from 0, the input, through 1, as "
            "trained: structure at equal style SWD, full minus the ablation; "
            "<style>/fronts.png draws them):",
            "",
        ]
        lines += [f"- {f['line']}" for f in result["fronts"]]
    return "\n".join(lines) + "\n"
