"""``fsg train`` as a process: SIGTERM mid-run stops it with exit 143 and a message, shuts its
Ray down with no process left, and a rerun resumes from the checkpoint and publishes. A Ray
cluster that dies under it (its head's GCS and raylet killed) ends it with one line and exit
75 (before issue 16: exit 1, the same as a failed style, after Ray's 60 s GCS timeout, with
no word from fsg), and a rerun resumes.

The reruns also show what the console prints (fsg_ray.distributed.console): our progress
lines and the summary, and Ray's per-report lines only with ``--verbose``. Each ``fsg train``
process starts its own Ray and Ray Train (tens of seconds on 2 cores), so these runs check
the console rather than two more runs of their own."""

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
from ray_head import ray_head

from fsg_ray import config
from fsg_ray.distributed import trainer
from fsg_ray.distributed.session import _alive, descendants, end_processes
from fsg_ray.io import registry
from fsg_ray.io.storage import Storage
from fsg_ray.io.uri import join

pytestmark = [pytest.mark.ray, pytest.mark.slow]
ROOT = Path(__file__).parents[2]
#: Stopped at the first checkpoint (step 5): 35 steps are left to run after it, several
#: seconds on 2 CPUs, and the rerun trains them (a shorter run would end before SIGTERM).
GLOBAL_STEPS = 30
LAST_LINE = f"[dots] patch 4/4 | {6 + GLOBAL_STEPS + 4}/{6 + GLOBAL_STEPS + 4} |"


def catalogue(tmp_path: Path) -> tuple[Path, config.CatalogueConfig]:
    """One style, long enough to be stopped mid-run, checkpointing every 5 steps."""
    data = small_dataset(tmp_path / "data", seed=1, n_full=8)
    train = config.override(
        tiny_config(),
        schedule={"gan_init_steps": 6, "global_steps": GLOBAL_STEPS, "patch_steps": 4},
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


def fsg_train(path: Path, *flags: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    """``fsg train path flags``: on a local Ray of 2 CPUs unless ``flags`` name an --address."""
    env = {**(env or os.environ), "PYTHONPATH": str(ROOT)}
    if "--address" not in flags:
        env.pop("RAY_ADDRESS", None)
        flags = ("--num-cpus", "2", *flags)
    cmd = [sys.executable, "-m", "fsg_ray.app.main", "train", str(path), *flags]
    return subprocess.Popen(
        cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def wait_for(path: Path, proc: subprocess.Popen[str], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not path.exists() and time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()[0][-3000:]
        time.sleep(0.2)
    assert path.exists(), f"no {path.name} written in {timeout_s:.0f} s"


def test_sigterm_mid_run_exits_143_and_a_rerun_resumes(tmp_path: Path) -> None:
    path, cat = catalogue(tmp_path)
    checkpoint = Path(join(trainer.run_uri(cat, "dots"), trainer.CHECKPOINT))
    proc = fsg_train(path)
    started: list[int] = []
    try:
        wait_for(checkpoint, proc, 400)
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
    # The console: our last progress line and the summary table, none of Ray's own lines.
    assert LAST_LINE in out and "dots   published" in out, out[-3000:]
    assert "Reporting training result" not in out and "Execution plan of Dataset" not in out


def test_a_lost_cluster_is_said_in_one_line_exits_75_and_a_rerun_resumes(tmp_path: Path) -> None:
    path, cat = catalogue(tmp_path)  # the cluster is lost at step 5
    checkpoint = Path(join(trainer.run_uri(cat, "dots"), trainer.CHECKPOINT))
    with ray_head() as head:
        # fsg gives up after half of Ray's GCS timeout: 5 s here, 30 s by default.
        env = {**head.env, "RAY_gcs_rpc_server_reconnect_timeout_s": "10"}
        proc = fsg_train(path, "--address", head.address, env=env)
        try:
            wait_for(checkpoint, proc, 400)  # Ray Train's start-up on a loaded 2-core CI machine
            # The head dies at once, as a lost head pod or `ray stop` on it: its GCS and
            # raylet are killed (by pid: this head's only), `ray start --block` ends the rest.
            for pid in descendants(head.proc.pid):
                if Path(f"/proc/{pid}/comm").read_text().strip() in ("gcs_server", "raylet"):
                    os.kill(pid, signal.SIGKILL)
            lost_at = time.monotonic()
            out, _ = proc.communicate(timeout=40)
            took = time.monotonic() - lost_at  # fsg's own exit, not the head's teardown below
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    assert proc.returncode == 75, out[-3000:]
    assert took < 30, out[-3000:]
    last = out.strip().splitlines()[-1]
    assert last.startswith("fsg train: error: lost the Ray cluster: its "), out[-3000:]
    assert "rerun to resume" in last and "Traceback" not in out
    rerun = fsg_train(path, "--verbose")  # Ray's own lines as well
    out, _ = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, out[-3000:]
    assert LAST_LINE in out and "Reporting training result" in out, out[-3000:]
    starts = registry.resolve(Storage(), cat.storage.registry, "dots").metadata["starts"]
    assert starts[0] == 0 and starts[-1] > 0  # resumed from the checkpoint, not from step 0
