"""benchmarks/gpu_suite.sh --dry-run: the GPU suite runs its generator benchmark on tiny CPU
shapes and checks every other step's flags, so it cannot rot before a GPU is lent."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SUITE = ROOT / "benchmarks" / "gpu_suite.sh"
BENCHMARKS = ("bench_gpu", "bench_generator", "bench_catalogue", "bench_restyle", "bench_serve")

pytestmark = pytest.mark.slow


def run_suite(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHON": sys.executable, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        ["bash", str(root / "benchmarks" / "gpu_suite.sh"), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_dry_run_passes_and_names_every_step() -> None:
    done = run_suite(ROOT, "--dry-run")
    assert done.returncode == 0, done.stderr[-3000:]
    for script in BENCHMARKS:
        assert f"== {script}.py" in done.stdout
    assert "| 32² | 2 | no |" in done.stdout  # bench_gpu's table, from a real (tiny) run
    assert "gpu suite: all steps done (dry run)" in done.stdout


def test_dry_run_fails_when_a_benchmark_loses_a_flag(tmp_path: Path) -> None:
    """The suite beside stand-in scripts (each starts in milliseconds, not seconds as the
    real ones that import torch) whose --help lists every flag the suite passes, but
    bench_restyle.py's lacks --images: that step, and only that one, fails."""
    (tmp_path / "benchmarks").mkdir()
    shutil.copy(SUITE, tmp_path / "benchmarks" / SUITE.name)
    flags = sorted(set(re.findall(r" (--[a-z][a-z-]+)", SUITE.read_text())))
    for script in BENCHMARKS:
        offered = [f for f in flags if not (script == "bench_restyle" and f == "--images")]
        text = f"import sys\nif '--help' in sys.argv:\n    print({' '.join(offered)!r})\n"
        (tmp_path / "benchmarks" / f"{script}.py").write_text(text)
    done = run_suite(tmp_path, "--dry-run")
    assert done.returncode == 1
    assert "bench_restyle.py has no --images" in done.stderr
    assert done.stderr.count("failed: ") == 1 and "failed: bench_restyle.py" in done.stderr


def test_unknown_argument_is_refused() -> None:
    done = run_suite(ROOT, "--fast")
    assert done.returncode == 2 and "usage:" in done.stderr
