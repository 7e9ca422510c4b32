"""benchmarks/bench_decode.py: both decodes give the pipeline's photo size, nearly the same."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import bench_decode  # noqa: E402


def test_draft_and_full_decodes_agree_on_size_and_pixels() -> None:
    raw = bench_decode.photo_jpeg(1200, 900)
    full, draft = (bench_decode.decode(raw, 128, d) for d in (False, True))
    assert full.shape == draft.shape == (128, 171, 3)
    assert np.abs(full.astype(int) - draft.astype(int)).mean() < 2
    assert bench_decode.best_ms(raw, 128, True, repeats=2) > 0
