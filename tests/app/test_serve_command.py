"""``fsg serve`` as a process: SIGTERM once it is ready drains it, shuts its Ray down, exits 0
and leaves no process of its session running (before issue 16: exit 134 with Ray's
fatal-signal trace, ``ray::DashboardAgent`` and ``ray::RuntimeEnvAgent`` left running)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from conftest import tiny_state
from s3_server import free_port

from fsg_ray.core.models import VGGWeights
from fsg_ray.distributed.session import _alive, descendants, end_processes
from fsg_ray.io import registry
from fsg_ray.io.storage import Storage

pytestmark = [pytest.mark.ray, pytest.mark.slow]
ROOT = Path(__file__).parents[2]


def wait_ready(url: str, proc: subprocess.Popen[str], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            out = proc.stdout.read() if proc.stdout else ""
            rc = proc.returncode
            raise AssertionError(f"fsg serve exited {rc} before it was ready:\n{out[-4000:]}")
        try:
            if requests.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        except requests.RequestException:  # not listening yet, or the proxy is starting
            pass
        time.sleep(1)
    raise TimeoutError(f"fsg serve not ready after {timeout_s} s")


def test_sigterm_once_ready_exits_0_and_leaves_no_process(vgg: VGGWeights, tmp_path: Path) -> None:
    reg = str(tmp_path / "registry")
    registry.publish(Storage(), reg, "dots", tiny_state(vgg, 0), {})
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "FSG_API_KEY": "sig-test-key"}
    env.pop("RAY_ADDRESS", None)
    cmd = [sys.executable, "-m", "fsg_ray.app.main", "serve", "--registry", reg]
    cmd += ["--port", str(port), "--num-cpus", "2"]
    proc = subprocess.Popen(
        cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        wait_ready(f"http://127.0.0.1:{port}", proc, 300)
        started = descendants(proc.pid)
        assert started, "no Ray process found under fsg serve"
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:  # the test failed: end fsg serve and its Ray, by pid
            started = started or descendants(proc.pid)
            proc.kill()
            proc.communicate()
            end_processes(started, grace_s=5)
    assert proc.returncode == 0, out[-3000:]
    assert "Fatal Python error" not in out and "SIGABRT" not in out
    left = [p for p in started if _alive(p)]
    assert not left, [Path(f"/proc/{p}/comm").read_text().strip() for p in left if _alive(p)]
