"""A command under test as a process, and every process it started, found by a marker.

Ray's processes are re-parented when their parent exits, and its workers rename themselves
(``ray::IDLE``), so neither the process tree nor a name finds them all. The environment does:
each process the command starts, Ray's included, inherits it. So the command runs with a
marker variable of its own, and its processes are those whose environment holds it; the
machine's other Ray processes (other users, the test session's own Ray) never do.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
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
