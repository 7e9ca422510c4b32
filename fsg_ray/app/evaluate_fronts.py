"""Each method's strength front in ``fsg eval`` (:mod:`fsg_ray.core.strength`), and the
comparison of the full method's front with each ablation's at equal style distance.

A single point per method says where training stopped on the style/design trade-off; the
front says how good the trade-off is. Writes beside ``sheet.png``: ``fronts.png``, structure
against style SWD, one curve per method, its trained point (strength 1) marked; and
``strengths.png``, the full method's outputs at each strength, one row per garment. Like
:mod:`fsg_ray.app.evaluate`, no Ray.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from PIL import Image
from torch import Tensor

from fsg_ray.core import metrics
from fsg_ray.core.strength import FrontPoint, apply_strength, compare_fronts
from fsg_ray.io import images, visualize

FRONTS_PNG, STRENGTHS_PNG = "fronts.png", "strengths.png"


def method_front(
    garments: Sequence[tuple[Tensor, Tensor]],
    outputs: Sequence[Tensor],
    style: Tensor,
    strengths: Sequence[float],
    at_zero: Mapping[str, float],
    at_one: Mapping[str, float],
) -> list[FrontPoint]:
    """A method's front: its mean style SWD and structure over the garments at strength 0
    (``at_zero``: the input's means), at each of ``strengths`` and at 1 (``at_one``: the
    method's own means), in strength order.

    Args:
        garments: (image (3, H, W), mask (H, W)) per garment.
        outputs: The method's output per garment, as trained (strength 1).
        style: The style image (3, S, S).
        strengths: Further strengths, each in [0, MAX_STRENGTH]; 0 and 1 are taken from the
            means given.
        at_zero: ``style_swd`` and ``structure`` of the unchanged garments.
        at_one: The same of the method's outputs.
    """
    points = {
        0.0: FrontPoint(0.0, float(at_zero["style_swd"]), float(at_zero["structure"])),
        1.0: FrontPoint(1.0, float(at_one["style_swd"]), float(at_one["structure"])),
    }
    for s in sorted(set(strengths) - set(points)):
        swd, structure = [], []
        for (x, mask), y in zip(garments, outputs, strict=True):
            y_s = apply_strength(x, y, s)
            swd.append(metrics.sliced_wasserstein(y_s, style, mask))
            structure.append(metrics.structure_similarity(x, y_s, mask))
        points[s] = FrontPoint(s, sum(swd) / len(swd), sum(structure) / len(structure))
    return [points[s] for s in sorted(points)]


def as_rows(front: Sequence[FrontPoint]) -> list[dict[str, float]]:
    """The front as JSON rows (``metrics.json``'s ``front`` of a method)."""
    return [{"strength": p.strength, "style_swd": p.style_swd, "structure": p.structure}
            for p in front]  # fmt: skip


def from_rows(rows: Sequence[Mapping[str, Any]]) -> list[FrontPoint]:
    """The inverse of :func:`as_rows`."""
    return [FrontPoint(float(r["strength"]), float(r["style_swd"]), float(r["structure"]))
            for r in rows]  # fmt: skip


def front_verdict(style: str, ablation: str, full: Sequence[FrontPoint],
                  theirs: Sequence[FrontPoint]) -> dict[str, Any]:  # fmt: skip
    """The full method's front against an ablation's: numbers and a summary line, e.g.
    ``stripes: full vs global_only, fronts: crossing (structure -0.04 to +0.10, +0.05 on
    average, at equal SWD 0.185-0.395); only global_only reaches SWD 0.107 (full: 0.185)``."""
    c = compare_fronts(full, theirs)
    word = {"higher": "full higher", "lower": "full lower", "crossing": "crossing"}[c.outcome]
    line = (
        f"{style}: full vs {ablation}, fronts: {word} (structure {c.min_gap:+.2f} to "
        f"{c.max_gap:+.2f}, {c.mean_gap:+.2f} on average, at equal SWD {c.low:.3g}-{c.high:.3g})"
    )
    if c.a_reach < c.b_reach:
        line += f"; only full reaches SWD {c.a_reach:.3g} ({ablation}: {c.b_reach:.3g})"
    elif c.b_reach < c.a_reach:
        line += f"; only {ablation} reaches SWD {c.b_reach:.3g} (full: {c.a_reach:.3g})"
    return {
        "style": style,
        "ablation": ablation,
        "outcome": c.outcome,
        "min_gap": c.min_gap,
        "max_gap": c.max_gap,
        "mean_gap": c.mean_gap,
        "swd_low": c.low,
        "swd_high": c.high,
        "full_reach": c.a_reach,
        "ablation_reach": c.b_reach,
        "line": line,
    }


def fronts_png(curves: Mapping[str, Sequence[FrontPoint]], title: str) -> bytes:
    """The fronts as a PNG: structure (y) against style SWD (x), one curve per method with
    its strengths marked, the trained point (strength 1) as a large dot, the input (strength
    0) as a cross."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.6))
    for label, front in curves.items():
        xs = [p.style_swd for p in front]
        ys = [p.structure for p in front]
        (line,) = ax.plot(xs, ys, marker=".", lw=1.2, label=label)
        for p in front:
            if p.strength == 1.0:
                ax.plot(p.style_swd, p.structure, "o", ms=8, color=line.get_color())
            elif p.strength != 0.0:
                ax.annotate(f"{p.strength:g}", (p.style_swd, p.structure), fontsize=6,
                            xytext=(2, 2), textcoords="offset points")  # fmt: skip
    first = next(iter(curves.values()))
    ax.plot(first[0].style_swd, first[0].structure, "kx", ms=8, label="input (strength 0)")
    ax.set_xlabel("style SWD (lower: closer to the style)")
    ax.set_ylabel("structure (higher: design kept)")
    ax.set_title(title + " (large dot: as trained; numbers: strength)", fontsize=9)
    ax.invert_xaxis()  # better to the right on both axes: the front's good corner top right
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return buf.getvalue()


def strengths_sheet(
    garments: Sequence[tuple[Tensor, Tensor]],
    outputs: Sequence[Tensor],
    strengths: Sequence[float],
    cell: int,
) -> Image.Image:
    """One method's outputs at each strength (0, the input, to the largest), inside the
    garment mask: columns are strengths, rows garments."""
    columns: dict[str, list[Image.Image]] = {}
    for s in sorted({0.0, 1.0, *strengths}):
        title = {0.0: "strength 0\n(input)", 1.0: "strength 1\n(as trained)"}.get(
            s, f"strength {s:g}\n"
        )
        columns[title] = [
            images.to_image(torch.where(mask, apply_strength(x, y, s), x))
            for (x, mask), y in zip(garments, outputs, strict=True)
        ]
    return visualize.grid(columns, cell)
