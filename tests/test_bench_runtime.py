"""benchmarks/bench_runtime.py --dry-run: every variant of the speed/quality table runs end to
end on tiny shapes, and the reference row is the zero point of the deltas."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import bench_runtime  # noqa: E402


@pytest.mark.slow
def test_dry_run_measures_every_variant() -> None:
    results = bench_runtime.main(["--dry-run", "--threads", "1"])
    (rows,) = results.values()
    assert [r["variant"] for r in rows] == [
        "torch",
        "torch-bf16",
        "onnx",
        "onnx-int8",
        "onnx-int8-float-ends",
        "onnx-0.75",
        "onnx-down2",
        "onnx-int8-down2",
    ]
    ref, onnx = rows[0], rows[2]
    assert (ref["speed_up"], ref["d_structure"], ref["d_gram_pct"]) == (1.0, 0.0, 0.0)
    # ONNX Runtime is within one grey level of torch: the metrics barely move.
    assert abs(onnx["d_structure"]) < 0.005 and abs(onnx["d_gram_pct"]) < 1
    assert all(r["images_per_s"] > 0 for r in rows)


def test_render_marks_a_variant_that_loses_quality() -> None:
    row = {"images_per_s": 2.0, "speed_up": 1.0, "d_structure": 0.0, "d_gram_pct": 0.0}
    rows = [
        {**row, "variant": "torch", "d_swd_pct": 0.0, "quality_ok": True},
        {**row, "variant": "fast", "d_swd_pct": 9.0, "quality_ok": False},
    ]
    args = bench_runtime.argparse.Namespace(
        threads=2, batch=8, repeats=3, registry=None, style="stripes"
    )
    text = bench_runtime.render({"256x192": rows}, args, "0.5, 0.5, 0.5")
    assert "| torch | 2.0 | 1.0× | +0.0 | +0.0% | +0.0% | yes |" in text
    assert "| fast | 2.0 | 1.0× | +0.0 | +0.0% | +9.0% | no |" in text
    assert "load average before: 0.5, 0.5, 0.5; generator: random, seeded" in text


def test_the_script_runs_from_the_command_line() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench_runtime.py"), "--help"],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(ROOT)},
    )
    assert done.returncode == 0 and "--dry-run" in done.stdout


@pytest.mark.slow
def test_a_published_generator_can_be_timed(tmp_path: Path) -> None:
    from conftest import tiny_state

    from fsg_ray.io import registry
    from fsg_ray.io.storage import Storage
    from fsg_ray.io.weights import load_vgg

    registry.publish(Storage(), str(tmp_path), "dots", tiny_state(load_vgg("random:0"), 0), {})
    results = bench_runtime.main(
        ["--dry-run", "--threads", "1", "--registry", str(tmp_path), "--style", "dots"]
    )
    (rows,) = results.values()
    assert rows[2]["variant"] == "onnx" and abs(rows[2]["d_gram_pct"]) < 1
