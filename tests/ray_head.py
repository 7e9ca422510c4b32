"""A Ray head of a test's own: ``ray start --head --block`` on 127.0.0.1, token auth on.

Every port is chosen free, so it runs beside the test session's own Ray and beside other
users' Rays on a shared machine; it is stopped through the process started here (``--block``
ends every process of the head on SIGTERM), never with ``ray stop``, which would stop every
Ray of the machine. The session dir is short: Ray's socket paths must fit in 107 characters.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from fsg_ray.distributed.session import descendants, end_processes

BIN = Path(sys.executable).parent


@dataclass(frozen=True)
class Head:
    """A running head.

    Attributes:
        proc: The ``ray start --block`` process; the head's processes are its descendants.
        address: The GCS address, for ``--address``.
        dashboard: The dashboard's URL (the job API).
        env: The environment of a client of this head (its token, its address, our venv).
    """

    proc: subprocess.Popen[bytes]
    address: str
    dashboard: str
    env: dict[str, str]


def free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


@contextlib.contextmanager
def ray_head(num_cpus: int = 2, timeout_s: float = 120) -> Iterator[Head]:
    """Starts a head, waits until ``ray start`` says it runs, yields it; stops it and every
    process it started (by pid) on the way out."""
    gcs, dash, *agent = free_ports(7)
    temp = tempfile.mkdtemp(prefix="fsgh-", dir="/tmp")
    env = {
        **os.environ,
        "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",  # the job's `python` is this venv's
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN": secrets.token_hex(16),
        "RAY_ADDRESS": f"127.0.0.1:{gcs}",  # two Rays on this machine: name this one
    }
    cmd = [str(BIN / "ray"), "start", "--head", "--block", "--node-ip-address=127.0.0.1"]
    cmd += [f"--port={gcs}", f"--num-cpus={num_cpus}", "--disable-usage-stats"]
    cmd += [f"--temp-dir={temp}", "--dashboard-host=127.0.0.1", f"--dashboard-port={dash}"]
    names = [
        "dashboard-agent-listen",
        "dashboard-agent-grpc",
        "metrics-export",
        "runtime-env-agent",
    ]
    cmd += [f"--{n}-port={p}" for n, p in zip(names, agent, strict=False)]
    cmd += [f"--ray-client-server-port={agent[4]}"]
    log = Path(temp) / "ray-start.out"
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)
    started: list[int] = []
    try:
        _wait_started(log, proc, timeout_s)
        started = descendants(proc.pid)
        yield Head(proc, f"127.0.0.1:{gcs}", f"http://127.0.0.1:{dash}", env)
    finally:
        started = list({*started, *descendants(proc.pid)})
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)  # --block: stops every process of this head
            # Usually in 2-3 s; after a job that used Ray Data the stop took 31.7 s
            # (measured, with Ray Data's detached _StatsActor and _AutoscalingRequester
            # still alive): what is left is killed by pid below, as no test needs a
            # graceful end of its head.
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=8)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        end_processes(started, grace_s=2)  # a killed head's workers may linger: not long
        shutil.rmtree(temp, ignore_errors=True)


def _wait_started(log: Path, proc: subprocess.Popen[bytes], timeout_s: float) -> None:
    """Until ``ray start`` prints that the runtime started (its GCS and raylet are up)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert proc.poll() is None, log.read_text(errors="replace")[-3000:]
        if "Ray runtime started" in log.read_text(errors="replace"):
            return
        time.sleep(0.5)
    raise TimeoutError(f"the Ray head did not start in {timeout_s:.0f} s")
