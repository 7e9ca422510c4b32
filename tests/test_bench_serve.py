"""The serving benchmark's arithmetic and report (its full run needs its own Ray: run by hand)."""

from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_serve.py"


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_serve", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_percentiles_in_ms(bench: ModuleType) -> None:
    got = bench.percentiles([i / 1000 for i in range(1, 101)])  # 1..100 ms
    assert got["p50_ms"] == pytest.approx(50.5) and got["p99_ms"] == pytest.approx(99.0)
    assert got["mean_ms"] == pytest.approx(50.5)


def phase(p50: float, rps: float) -> dict:
    return {"p50_ms": p50, "p99_ms": p50 * 2, "mean_ms": p50, "requests_per_s": rps, "errors": {}}


def test_render_reports_the_goals(bench: ModuleType) -> None:
    result = {
        "device": "CPU (x86_64), 2 cores", "date": "2026-11-25", "command": "python b.py",
        "size": 256, "cpus": 2, "runtime": "torch-bf16", "batch": 8, "concurrency": 8,
        "load_before": [1.0], "load_after": [2.0], "contention": "Measured under contention.",
        "bare": {"p50_ms": 100.0, "p99_ms": 120.0, "images_per_s": 10.0,
                 "batched_images_per_s": 12.0},
        "pipeline": {"p50_ms": 5.0, "p99_ms": 6.0},
        "served": {
            "no batching": {"one_client": phase(130.0, 7.0), "concurrent": phase(700, 8.0)},
            "batching": {"one_client": phase(131.0, 7.0), "concurrent": phase(600, 9.5)},
        },
        "http_only": {"one_client": phase(6.0, 150.0), "concurrent": phase(40.0, 180.0)},
        "one_hop": True,
    }  # fmt: skip
    text = bench.render(result)
    assert "**0.95x** (goal >= 0.7: met)" in text
    assert "**30.0 ms** (goal <= 20 ms: missed)" in text
    assert "| served over HTTP, batching | 8 | 600.0 | 1200.0 | 9.50 |" in text
    assert "runtime torch-bf16 on both sides, one hop (G in the ingress)" in text
    assert "| HTTP path alone (GET /healthz: no image, no G) | 8 | 40.0 | 80.0 | 180.00 |" in text
    assert "answers 180 requests/s with 8 clients" in text
    # the HTTP-only rows are not a served variant: the best served one is still "batching"
    assert "**0.95x**" in text


def test_bare_side_runs_the_replicas_runtime(
    bench: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The bare generator goes through the same for_runtime call as the replica, so the p50
    overhead compares one runtime with itself."""
    import numpy as np

    seen = []
    real = bench.for_runtime

    def spy(gen, runtime, device, threads=1, *rest):  # type: ignore[no-untyped-def]
        seen.append((runtime, threads))
        return real(gen, runtime, device, threads, *rest)

    monkeypatch.setattr(bench, "for_runtime", spy)
    reg = bench.publish_style(str(tmp_path))
    image = np.zeros((32, 32, 3), np.uint8)
    got = bench.bench_bare(reg, image, n=2, batch=2, runtime="torch", threads=1)
    assert seen == [("torch", 1)]
    assert got["images_per_s"] > 0 and got["batched_images_per_s"] > 0


def test_changed_args_lists_only_flags_that_differ(bench: ModuleType) -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--write-docs", action="store_true")
    args = p.parse_args(["--size", "512", "--write-docs"])
    assert bench.changed_args(p, args) == ["--size 512", "--write-docs"]
    assert bench.changed_args(p, p.parse_args([])) == []
