"""``fsg train`` as a process: SIGTERM mid-run stops it with exit 143 and a message, shuts its
Ray down with no process left, and a rerun resumes from the checkpoint and publishes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from conftest import small_dataset, tiny_config

from fsg_ray import config
from fsg_ray.distributed import trainer
from fsg_ray.distributed.session import _alive, descendants, end_processes
from fsg_ray.io import registry
from fsg_ray.io.storage import Storage
from fsg_ray.io.uri import join

pytestmark = [pytest.mark.ray, pytest.mark.slow]
ROOT = Path(__file__).parents[2]


def catalogue(tmp_path: Path) -> tuple[Path, config.CatalogueConfig]:
    """One style, long enough to be stopped mid-run, checkpointing every 5 steps."""
    data = small_dataset(tmp_path / "data", seed=1, n_full=8)
    train = config.override(
        tiny_config(),
        schedule={"gan_init_steps": 6, "global_steps": 60, "patch_steps": 4},
    )
    train = config.override(train, schedule={"checkpoint_every": 5, "sample_every": 1000})
    cat = config.catalogue_from_dict(
        {
            "name": "cat",
            "data": {
                "full": join(str(data), "full"),
                "shop": join(str(data), "shop"),
                "masks": join(str(data), "shop_masks"),
            },
            "styles": [{"name": "dots", "image": str(data / "styles/dots.png")}],
            "train": config.to_dict(train),
            "resources": {"cpus_per_worker": 0.5, "use_gpu": "never"},
            "storage": {"runs": str(tmp_path / "runs"), "registry": str(tmp_path / "reg")},
            "max_failures": 0,
            "samples": 1,
        }
    )
    path = tmp_path / "catalogue.yaml"
    path.write_text(yaml.safe_dump(config.to_dict(cat)))
    return path, cat


def fsg_train(path: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("RAY_ADDRESS", None)
    cmd = [sys.executable, "-m", "fsg_ray.app.main", "train", str(path), "--num-cpus", "2"]
    return subprocess.Popen(
        cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def test_sigterm_mid_run_exits_143_and_a_rerun_resumes(tmp_path: Path) -> None:
    path, cat = catalogue(tmp_path)
    checkpoint = Path(join(trainer.run_uri(cat, "dots"), trainer.CHECKPOINT))
    proc = fsg_train(path)
    started: list[int] = []
    try:
        deadline = time.monotonic() + 400
        while not checkpoint.exists() and time.monotonic() < deadline:
            assert proc.poll() is None, proc.communicate()[0][-3000:]
            time.sleep(0.5)
        assert checkpoint.exists(), "no checkpoint written"
        started = descendants(proc.pid)
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:  # the test failed: end fsg train and its Ray, by pid
            started = started or descendants(proc.pid)
            proc.kill()
            proc.communicate()
            end_processes(started, grace_s=5)
    assert proc.returncode == 143, out[-3000:]
    assert "stopped by SIGTERM" in out and "rerun to resume" in out
    assert not [p for p in started if _alive(p)]
    assert not registry.list_styles(Storage(), cat.storage.registry)
    rerun = fsg_train(path)
    out, _ = rerun.communicate(timeout=900)
    assert rerun.returncode == 0, out[-3000:]
    assert list(registry.list_styles(Storage(), cat.storage.registry)) == ["dots"]
