"""The pip-installable peer (``styletransfer-lite``, ONNX Runtime) on the same garments and cores.

Issue 17 set the bulk-restyle job a target from this peer: 6.6 images/s at 192×256 on 2 cores,
measured on the machine of that day. CPUs differ from one session's machine to the next by 2-10×
(AMX bf16, AVX-512, AVX2 only: docs/benchmarks.md), so :mod:`bench_restyle` ``--peer`` runs the
peer here, interleaved with the job, on the same synthetic garments. Three ways a user runs it:

- ``cli``: ``styletransfer-lite stylize FOLDER --style-image STYLE -o OUT`` as a subprocess, the
  whole command (start-up included), as a user restyles a folder with their own style;
- ``style_image``: the same work in this process (``StyleTransfer.stylize_with`` per garment, as
  the CLI calls it: the style vector is recomputed per image), its sessions warmed before the
  clock, so a steady state;
- ``builtin``: one of its 26 built-in styles (``StyleTransfer.stylize``, the network run at the
  garment's own size), the peer's fastest path, though not a style of the user's choosing.

Each reads the garment file and writes a PNG, as the job does (the peer has no masks: it
restyles the whole frame). Install the peer into the venv first (it needs no torch):
``pip install -c constraints.txt styletransfer-lite``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

PEER_PACKAGE = "styletransfer-lite"
MODES = ("cli", "style_image", "builtin")
#: The built-in style of the ``builtin`` mode (any of the 26 costs the same network run).
BUILTIN_STYLE = 7


def require_peer() -> None:
    """Raise a clear error when the peer is not installed."""
    try:
        import styletransfer_lite  # noqa: F401
    except ImportError as e:
        raise SystemExit(
            f"--peer needs the peer installed: pip install -c constraints.txt {PEER_PACKAGE}"
        ) from e


def peer_command(photos: Path, style: Path, out: Path) -> list[str]:
    """The peer's command line that restyles the folder ``photos`` with ``style`` into ``out``
    (the console script beside this interpreter, else ``python -m``)."""
    executable = shutil.which("styletransfer-lite", path=str(Path(sys.executable).parent))
    cmd = [executable] if executable else [sys.executable, "-m", "styletransfer_lite"]
    return cmd + ["stylize", str(photos), "--style-image", str(style), "-o", str(out)]


def peer_cli(photos: Path, style: Path, out: Path) -> float:
    """Seconds of the peer's command over the folder ``photos`` with ``style`` as its style
    image (process start-up and model loading included: a whole job).

    Raises:
        RuntimeError: The command failed, or wrote fewer images than there are garments.
    """
    cmd = peer_command(photos, style, out)
    t0 = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - t0
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({done.returncode}): {done.stderr[-2000:]}")
    made = len(list(out.glob("*.png")))
    expected = len(list(photos.iterdir()))
    if made != expected:
        raise RuntimeError(f"the peer wrote {made} images for {expected} garments")
    return seconds


def peer_loop(photos: Path, style: Path, out: Path, mode: str, threads: int) -> float:
    """Seconds of the peer's Python API over ``photos`` in this process, ``threads`` intra-op
    threads, its ONNX sessions loaded and run once before the clock starts."""
    from styletransfer_lite import StyleTransfer

    if mode not in ("style_image", "builtin"):
        raise ValueError(f"unknown peer mode {mode!r}: style_image or builtin")
    engine = StyleTransfer(device="cpu", threads=threads)
    files = sorted(photos.iterdir())

    def one(path: Path) -> object:
        if mode == "builtin":
            return engine.stylize(path, style=BUILTIN_STYLE)
        return engine.stylize_with(path, style)

    one(files[0])  # loads the sessions and builds the kernels, as the bare loop loads first
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    for path in files:
        one(path).save(out / f"{path.stem}.png")  # type: ignore[attr-defined]
    return time.perf_counter() - t0


def measure_peer(photos: Path, style: Path, work: Path, repeat: int) -> dict[str, float]:
    """One run of each mode (seconds), outputs under ``work``."""
    threads = os.cpu_count() or 1
    seconds = {"cli": peer_cli(photos, style, work / f"peer_cli_{repeat}")}
    for mode in ("style_image", "builtin"):
        seconds[mode] = peer_loop(photos, style, work / f"peer_{mode}_{repeat}", mode, threads)
    return seconds
