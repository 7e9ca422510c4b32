"""benchmarks/bench_step_layout.py: both runs really have the layout they are named after,
and the script prints one row per phase (one timed step each here)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import bench_step_layout  # noqa: E402


def _conv_weights(run) -> list[torch.Tensor]:
    nets = (run.nets.gen, run.nets.phi, run.nets.disc)
    return [m.weight for n in nets for m in n.modules() if isinstance(m, torch.nn.Conv2d)]


def test_the_two_runs_differ_only_in_layout() -> None:
    nchw, cl = bench_step_layout.make_run(False), bench_step_layout.make_run(True)
    assert all(w.is_contiguous() for w in _conv_weights(nchw))
    assert all(w.is_contiguous(memory_format=torch.channels_last) for w in _conv_weights(cl))
    pairs = zip(_conv_weights(nchw), _conv_weights(cl), strict=True)
    assert all(torch.equal(a, b) for a, b in pairs)  # the same weights


def test_prints_a_row_per_phase() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench_step_layout.py"), "--steps", "1"],
        env=env, capture_output=True, text=True, timeout=300, check=True,
    ).stdout  # fmt: skip
    rows = [line for line in out.splitlines() if line.startswith("| ") and "x |" in line]
    assert [r.split("|")[1].strip() for r in rows] == ["gan", "global", "patch"]
