"""A command under test as a process, and every process it started, found by a marker.

Ray's processes are re-parented when their parent exits, and its workers rename themselves
(``ray::IDLE``), so neither the process tree nor a name finds them all. The environment does:
each process the command starts, Ray's included, inherits it. So the command runs with a
marker variable of its own, and its processes are those whose environment holds it; the
machine's other Ray processes (other users, the test session's own Ray) never do.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).parents[1]
MARKER = "FSG_TEST_PROCESS_MARKER"


def fsg(*args: str, marker: str) -> subprocess.Popen[str]:
    """``fsg ARGS`` as a process on a new local Ray (RAY_ADDRESS dropped), marked ``marker``."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), MARKER: marker}
    env.pop("RAY_ADDRESS", None)
    return subprocess.Popen(
        [sys.executable, "-m", "fsg_ray.app.main", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def new_marker() -> str:
    return uuid.uuid4().hex


def marked(marker: str) -> list[int]:
    """The running processes (zombies excluded) whose environment holds ``marker``."""
    needle = f"{MARKER}={marker}".encode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            environ = Path(f"/proc/{entry}/environ").read_bytes()
            state = Path(f"/proc/{entry}/stat").read_text().rpartition(")")[2].split()[0]
        except OSError:  # gone, or not ours to read
            continue
        if needle in environ.split(b"\0") and state != "Z":
            found.append(int(entry))
    return found


def describe(pids: list[int]) -> list[str]:
    """``pid name`` of each pid, for an assertion message."""
    names = []
    for pid in pids:
        try:
            names.append(f"{pid} {Path(f'/proc/{pid}/comm').read_text().strip()}")
        except OSError:
            names.append(f"{pid} (gone)")
    return names


def sigterm_when(
    args: list[str], ready: Callable[[], bool], timeout_s: float, poll_s: float = 0.05
) -> tuple[int, str, list[int]]:
    """Runs ``fsg ARGS`` (:func:`fsg`), sends it SIGTERM once ``ready()``; returns the exit
    status, what it said, and the pids of its run still running after it exited (each then
    killed, so that a failing test leaves nothing behind)."""
    marker = new_marker()
    proc = fsg(*args, marker=marker)
    try:
        deadline = time.monotonic() + timeout_s
        while not ready() and time.monotonic() < deadline:
            assert proc.poll() is None, proc.communicate()[0][-3000:]
            time.sleep(poll_s)
        assert ready(), f"not ready in {timeout_s:.0f} s"
        proc.send_signal(signal.SIGTERM)
        said, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:  # the test failed: end the command and its Ray, by pid
            proc.kill()
            proc.communicate()
        left = marked(marker)
        for pid in left:
            os.kill(pid, signal.SIGKILL)
    return proc.returncode, said, left
