"""The demo's training profile (no Ray): the whole Algorithm 1, ablations at equal budget."""

from __future__ import annotations

import pytest

from fsg_ray import config
from fsg_ray.app.demo import ablation_entries, demo_config
from fsg_ray.core import algorithm


def _phases(cfg: config.TrainConfig) -> list[tuple[str, int]]:
    return [(p.name, p.steps) for p in algorithm.schedule_phases(cfg)]


@pytest.mark.parametrize("quick", [False, True])
def test_demo_full_method_runs_every_phase_of_algorithm_1(quick: bool) -> None:
    cfg = demo_config(quick)
    names = [name for name, steps in _phases(cfg) if steps > 0]
    assert names[0] == "gan" and names.count("global") == names.count("patch") >= 1
    assert cfg.schedule.patch_steps > 0  # tau(1) > 0
    assert cfg.loss.patch_swd_weight > 0 and cfg.loss.patch_style_weight > 0  # Eq. 5 kept
    assert cfg.model.output == "residual" and cfg.model.decoder_noise > 0


def test_ablations_make_as_many_generator_updates_as_the_full_method() -> None:
    cfg = demo_config()
    total = sum(steps for _, steps in _phases(cfg))
    feeds, mgan = ablation_entries("stripes", "s.png", cfg)
    for entry in (feeds, mgan):
        overrides = entry.get("overrides", {})
        ablation = config.override(
            cfg, schedule={**overrides.get("schedule", {}), "mode": entry["mode"]}
        )
        assert sum(steps for _, steps in _phases(ablation)) == total
    assert _phases(config.override(cfg, schedule={**mgan["overrides"]["schedule"],
                                                  "mode": "patch_only"})) == [
        ("gan", 80), ("patch", 440)]  # fmt: skip
