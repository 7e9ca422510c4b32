"""``fsg demo`` as a process: SIGTERM while it trains, or while its Ray starts, stops it with
exit 143 and a message and leaves no process of its run (before issue 16's fix a SIGTERM
while Ray started gave exit 15 from Ray's own handler, and one outside the Ray session killed
the process with no word)."""

from __future__ import annotations

from pathlib import Path

import pytest
from processes import describe, sigterm_when

pytestmark = [pytest.mark.ray, pytest.mark.slow]


def stop_when(path: Path, out: Path, timeout_s: float = 180) -> tuple[int, str, list[int]]:
    """Runs ``fsg demo --quick``, sends SIGTERM once ``path`` exists; the exit status, what it
    said, and the processes of the run still running after it exited."""
    args = ["demo", "--out", str(out), "--quick", "--num-cpus", "2"]
    return sigterm_when(args, path.exists, timeout_s)


def test_sigterm_while_training_exits_143_and_leaves_no_process(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    code, said, left = stop_when(out / "runs" / "demo" / "data_report.json", out)
    assert code == 143, said[-3000:]
    assert "fsg demo: stopped by SIGTERM" in said and "rerun to resume" in said
    assert "Traceback" not in said
    assert not left, describe(left)


def test_sigterm_while_ray_starts_exits_143_and_leaves_no_process(tmp_path: Path) -> None:
    """The catalogue is written just before the demo's Ray starts."""
    out = tmp_path / "demo"
    code, said, left = stop_when(out / "catalogue.yaml", out)
    assert code == 143, said[-3000:]
    assert "fsg demo: stopped by SIGTERM" in said and "Traceback" not in said
    assert not left, describe(left)
