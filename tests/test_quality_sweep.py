"""benchmarks/quality_sweep.py and its variants (sweep_variants.py): seeds and ablations in
the run configs, the verdicts over seeds read from the run records, and the command's errors
(no training here: the sweep's training is the core's ``algorithm.train``, tested in
tests/core)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import quality_sweep  # noqa: E402
import sweep_variants  # noqa: E402

from fsg_ray import config  # noqa: E402


def test_a_seed_replaces_the_schedule_seed_and_ablations_keep_the_budget() -> None:
    full = sweep_variants.variant_config("cand_lo", 1.0, seed=3)
    glob = sweep_variants.variant_config("cand_lo@global_only", 1.0, seed=3)
    patch = sweep_variants.variant_config("cand_lo@patch_only", 0.5)
    s = full.schedule
    assert (s.seed, glob.schedule.seed) == (3, 3)
    assert patch.schedule.seed == sweep_variants.variant_config("cand_lo", 1.0).schedule.seed
    updates = s.gan_init_steps + s.alternations * (s.global_steps + s.patch_steps)
    assert glob.schedule.mode == "global_only"
    assert glob.schedule.global_only_steps == updates
    assert patch.schedule.patch_steps == round(
        0.5 * s.alternations * (s.global_steps + s.patch_steps)
    )
    assert quality_sweep.run_key("v@global_only", "leopard", 2) == "v@global_only__leopard__s2"
    assert quality_sweep.run_key("v", "leopard", None) == "v__leopard"


def _record(out: Path, variant: str, style: str, seed: int, swd: float, structure: float) -> None:
    path = out / "runs" / f"{quality_sweep.run_key(variant, style, seed)}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    mean = {"style_swd": swd, "structure": structure, "silhouette_iou": 0.9}
    path.write_text(json.dumps({"mean": mean}))


def test_seed_report_gives_means_spread_and_paired_wins(tmp_path: Path) -> None:
    # full beats global_only on seed 0 only, but on the means as well; patch_only keeps
    # more structure on every seed.
    for seed, (f, g, p) in enumerate([((0.10, 0.9), (0.20, 0.8), (0.3, 0.99)),
                                      ((0.30, 0.9), (0.25, 0.85), (0.3, 0.99))]):  # fmt: skip
        _record(tmp_path, "v", "stripes", seed, *f)
        _record(tmp_path, "v@global_only", "stripes", seed, *g)
        _record(tmp_path, "v@patch_only", "stripes", seed, *p)
    text = quality_sweep.seed_report(
        tmp_path, ["v", "v@global_only", "v@patch_only"], ["stripes", "leopard"], [0, 1]
    )
    assert "| v | 2 | 0.200 ± 0.141 | 0.900 ± 0.000 |" in text
    assert (
        "- v vs v@global_only: Pareto-better on the means (SWD 0.200 vs 0.225, structure "
        "0.900 vs 0.825); Pareto-better on 1 of 2 seeds" in text
    )
    assert "- v vs v@patch_only: not Pareto-better on the means" in text
    assert "on 0 of 2 seeds" in text
    # A style without runs gets its heading and no verdict.
    leopard = text.split("### leopard")[1]
    assert "Pareto" not in leopard


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--seeds", "0,x"], "--seeds takes integers"),
        (["--variants", "nope"], "unknown variants ['nope']"),
        (["--device", "tpu"], "--device 'tpu': choose auto, cpu or cuda"),
    ],
)
def test_bad_arguments_are_named(tmp_path: Path, args: list[str], message: str) -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "quality_sweep.py"), *args,
         "--out", str(tmp_path)],
        capture_output=True, text=True, cwd=ROOT, env={"PYTHONPATH": str(ROOT), "PATH": ""},
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr
    assert not (tmp_path / "data").exists()  # nothing written before the arguments hold


def test_the_demo_profile_is_the_sweeps_chroma3_variant() -> None:
    """The sweep measures the demo's profile as ``cand_nz_pm0_chroma3``: the two must train
    the same thing (they differ only in how often a run reports and checkpoints)."""
    from fsg_ray.app.demo import demo_config

    sweep = config.to_dict(sweep_variants.variant_config("cand_nz_pm0_chroma3", 1.0, None))
    demo = config.to_dict(demo_config())
    for key in ("checkpoint_every", "sample_every", "report_every"):
        sweep["schedule"].pop(key), demo["schedule"].pop(key)
    assert sweep == demo
