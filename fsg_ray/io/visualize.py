"""Pictures a person would rather look at than read: before/after grids and loss curves."""

from __future__ import annotations

import io
import os
from collections.abc import Mapping, Sequence
from typing import Any

from PIL import Image, ImageDraw

from fsg_ray.io.storage import atomic_write_bytes

LABEL_HEIGHT = 18
#: Height of each further line of a multi-line column title.
LINE_HEIGHT = 11
PAD = 4


def grid(columns: Mapping[str, Sequence[Image.Image]], cell: int) -> Image.Image:
    """A labelled grid: one column per entry of ``columns`` (rows = items), cells resized.

    Args:
        columns: column title (``\n`` breaks it into lines) -> images, one per row; a column
            with a single image (the style image) is shown in the first row only.
        cell: side of each square cell in pixels.
    """
    n_rows = max(len(v) for v in columns.values())
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    titles = [_fit(measure, title, cell - 2) for title in columns]
    lines = max(title.count("\n") + 1 for title in titles)
    label = LABEL_HEIGHT + (lines - 1) * LINE_HEIGHT
    width = len(columns) * (cell + PAD) + PAD
    height = label + n_rows * (cell + PAD) + PAD
    sheet = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(sheet)
    for c, (title, imgs) in enumerate(zip(titles, columns.values(), strict=True)):
        x = PAD + c * (cell + PAD)
        draw.text((x + 2, 3), title, fill="black")
        for r, img in enumerate(imgs):
            thumb = img.convert("RGB").resize((cell, cell), Image.Resampling.LANCZOS)
            sheet.paste(thumb, (x, label + PAD + r * (cell + PAD)))
    return sheet


def _fit(draw: ImageDraw.ImageDraw, title: str, width: int) -> str:
    """``title`` with each line broken to fit ``width`` pixels (a long title would run into
    the next column's): before ``@`` or ``+`` where one fits, else after a space, ``_`` or
    ``-``; a word with none of them is left whole."""
    out = []
    for line in title.split("\n"):
        while len(line) > 1 and draw.textlength(line) > width:
            n = len(line)
            while n > 1 and draw.textlength(line[:n]) > width:
                n -= 1
            cut = max(line.rfind(ch, 1, n + 1) for ch in "@+")
            if cut <= 0:
                cut = max(line.rfind(ch, 0, n) + 1 for ch in " _-")
            if cut <= 0:  # one word: left whole
                break
            out.append(line[:cut].rstrip())
            line = line[cut:].lstrip()
        out.append(line)
    return "\n".join(out)


def save_png(img: Image.Image, path: str | os.PathLike[str]) -> None:
    """Writes a PNG atomically (readers never see half a file)."""
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    atomic_write_bytes(path, buf.getvalue())


def loss_curves(history: Sequence[dict[str, float]], phase_names: Sequence[str]) -> Image.Image:
    """One panel per loss, steps on x, phases shaded; returns the figure as an image.

    Args:
        history: one dict of losses per step, with the key ``phase`` (phase index).
        phase_names: name of each phase index (``gan``, ``global``, ``patch``).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = sorted({k for h in history for k in h} - {"phase"})
    fig, axes = plt.subplots(
        len(keys), 1, figsize=(8, 1.8 * len(keys) + 0.6), sharex=True, squeeze=False
    )
    colours = {"gan": "#fde2e4", "global": "#e2ece9", "patch": "#dfe7fd"}
    for ax, key in zip(axes[:, 0], keys, strict=True):
        steps = [i for i, h in enumerate(history) if key in h]
        ax.plot(steps, [history[i][key] for i in steps], lw=0.8)
        ax.set_ylabel(key, fontsize=8)
        ax.set_yscale("log" if all(history[i][key] > 0 for i in steps) else "linear")
        _shade_phases(ax, history, phase_names, colours)
    axes[0, 0].set_title("losses per step (shaded: phase)")
    axes[-1, 0].set_xlabel("step")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return Image.open(io.BytesIO(buf.getvalue())).convert("RGB")


def _shade_phases(
    ax: Any,
    history: Sequence[dict[str, float]],
    phase_names: Sequence[str],
    colours: Mapping[str, str],
) -> None:
    start = 0
    for i in range(1, len(history) + 1):
        if i == len(history) or history[i]["phase"] != history[start]["phase"]:
            name = phase_names[int(history[start]["phase"])]
            ax.axvspan(start, i, color=colours.get(name, "#eeeeee"), lw=0)
            ax.text(start, 1.0, name, transform=ax.get_xaxis_transform(), fontsize=7, va="top")
            start = i
