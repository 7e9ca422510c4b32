"""``fsg restyle`` as a process: SIGTERM mid-run stops it with exit 143 and a message, leaves
no process of its Ray running, and a rerun makes the missing outputs without redoing the
finished ones."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from conftest import tiny_registry
from processes import describe, fsg, new_marker, sigterm_when

from fsg_ray.core.models import VGGWeights
from fsg_ray.io import synthetic

pytestmark = [pytest.mark.ray, pytest.mark.slow]
#: Photos, restyled with two styles: enough work to be stopped mid-run (200 took about 20 s
#: on 2 CPUs; SIGTERM follows the first output within 0.1 s).
PHOTOS = 100


def outputs(out: Path) -> dict[str, int]:
    """Output files (not manifests) and their modification times, by relative path."""
    files = (p for p in out.rglob("*.png") if "_manifest" not in p.parts)
    return {str(p.relative_to(out)): p.stat().st_mtime_ns for p in files}


def photos(root: Path) -> Path:
    """PHOTOS product photos of 128 px: copies of the synthetic held-out garments."""
    synthetic.write_dataset(root, n_full=0, n_shop=0, n_heldout=5, shop_size=128, styles=())
    garments = sorted((root / "heldout").glob("*.jpg"))
    folder = root / "photos"
    folder.mkdir()
    for i in range(PHOTOS):
        shutil.copy(garments[i % len(garments)], folder / f"{i:05d}.jpg")
    return folder


def test_sigterm_mid_run_exits_143_and_a_rerun_skips_the_finished(
    vgg: VGGWeights, tmp_path: Path
) -> None:
    reg = tiny_registry(str(tmp_path / "registry"), vgg, ("dots", "stripes"))
    out = tmp_path / "out"
    args = ["restyle", "--registry", reg, "--styles", "all", "--input", str(photos(tmp_path))]
    args += ["--output", str(out), "--num-cpus", "2"]
    code, said, left = sigterm_when(args, lambda: bool(outputs(out)), 120, poll_s=0.1)
    assert code == 143, said[-3000:]
    assert "stopped by SIGTERM" in said and "rerun to resume" in said
    assert not left, describe(left)
    done = outputs(out)
    assert 0 < len(done) < 2 * PHOTOS  # stopped mid-run
    rerun = fsg(*args, marker=new_marker())
    said, _ = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, said[-3000:]
    assert f"ok {2 * PHOTOS - len(done)}, skipped {len(done)}, failed 0" in said
    now = outputs(out)
    assert len(now) == 2 * PHOTOS and {k: now[k] for k in done} == done  # none redone
