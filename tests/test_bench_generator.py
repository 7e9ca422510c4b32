"""The benchmark script runs end to end and records its section without clobbering others."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_generator.py"


def load_module():
    spec = importlib.util.spec_from_file_location("bench_generator", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_write_docs_replaces_only_its_section(tmp_path, monkeypatch) -> None:
    bench = load_module()
    doc = tmp_path / "benchmarks.md"
    doc.write_text("# Benchmarks\n\nintro\n\n<!-- other -->\nkeep me\n<!-- /other -->\n")
    monkeypatch.setattr(bench, "DOCS", doc)
    bench.write_docs("gen-cpu", "first")
    bench.write_docs("gen-cpu", "second")
    text = doc.read_text()
    assert "second" in text and "first" not in text and "keep me" in text
    assert text.count("<!-- gen-cpu -->") == 1


def test_tiny_run_prints_a_ratio() -> None:
    out = subprocess.run(
        [sys.executable, str(SCRIPT), "--size", "32", "--batch", "2", "--repeats", "1",
         "--gatys-iters", "2", "--threads", "1"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    result = json.loads(out.stdout[: out.stdout.rindex("}") + 1])
    assert result["ratio"] > 0 and result["gatys_evaluations"] >= 2
    assert "faster than Gatys" in out.stdout
