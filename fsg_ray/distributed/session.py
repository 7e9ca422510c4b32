"""The Ray session every command runs in: a cluster's (``--address``, ``RAY_ADDRESS``) or a
local Ray started for the command's length; and how a command stops on SIGTERM or SIGINT.

Kubernetes, systemd and ``ray job stop`` end a process with SIGTERM. ``ray.init`` installs its
own SIGTERM handler (``sys.exit``), under which a driver died mid-call with Ray's fatal-signal
trace and left Ray's agents running. So :func:`stop_on_signals` installs ours *after*
``ray.init``, and a local Ray's processes are tracked by pid and ended on the way out.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
import time
from collections.abc import Iterator
from types import FrameType
from typing import Any

import ray
import ray.data

from fsg_ray.distributed import console

log = logging.getLogger(__name__)

#: Seconds a local Ray's processes get to exit after ``ray.shutdown`` before SIGKILL.
_EXIT_GRACE_S = 10.0
#: The signals received under :func:`stop_on_signals`, in order. Process state, as a signal
#: is: libraries on the way up (Ray Train) may re-raise a bare KeyboardInterrupt in place of
#: :class:`Stopped`, and the command still has to say which signal stopped it.
_received: list[int] = []


def received_signal() -> int | None:
    """The first SIGTERM or SIGINT received under :func:`stop_on_signals`, or None."""
    return _received[0] if _received else None


class Stopped(KeyboardInterrupt):
    """SIGTERM or SIGINT arrived; raised in the main thread by :func:`stop_on_signals`.

    A ``KeyboardInterrupt``, so that no ``except Exception`` (a per-style failure handler)
    takes it for a failure of the work it interrupts.

    Args:
        signum: The signal number.
    """

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum

    def __str__(self) -> str:
        return f"stopped by {signal.Signals(self.signum).name}"


@contextlib.contextmanager
def ray_session(
    address: str | None = None,
    num_cpus: int | None = None,
    env_vars: dict[str, str] | None = None,
    verbose: bool = False,
) -> Iterator[None]:
    """Joins ``address`` (or ``RAY_ADDRESS``), or starts a local Ray for the block's length.

    A Ray that is already initialised (a notebook, a test session) is used as it is. A new
    local Ray runs the dashboard: Ray Train's monitors query its state API. The processes of
    a local Ray started here are ended when the block exits, however it exits. Inside the
    block SIGTERM and SIGINT raise :class:`Stopped` (:func:`stop_on_signals`).

    Args:
        address: A cluster's address; None starts a local Ray (unless ``RAY_ADDRESS``).
        num_cpus: CPUs of a local Ray.
        env_vars: Environment of every task and actor of this job (the job's ``runtime_env``,
            which Serve does not show in its REST API: the way to pass a secret).
        verbose: Show Ray's own INFO lines too; by default the console shows our lines and
            real warnings only (:mod:`.console`).
    """
    if ray.is_initialized():
        yield
        return
    address = address or os.environ.get("RAY_ADDRESS")
    kwargs: dict[str, Any] = {"address": address} if address else {"num_cpus": num_cpus}
    if not verbose:  # before ray.init: it logs the dashboard's address at INFO
        console.quiet_console(RAY_DIR)
    env = {**console.runtime_env_vars(verbose), **(env_vars or {})}
    ray.init(runtime_env={"env_vars": env}, **kwargs)
    # Every epoch of every shard would draw a progress bar.
    ray.data.DataContext.get_current().enable_progress_bars = False
    try:
        with stop_on_signals():
            yield
    finally:
        started = [] if address else descendants(os.getpid())
        ray.shutdown()
        end_processes(started)


@contextlib.contextmanager
def stop_on_signals() -> Iterator[threading.Event]:
    """For the block, SIGTERM and SIGINT raise :class:`Stopped` in the main thread (so the
    work unwinds through its ``finally`` blocks: checkpoints kept, Ray shut down) and set the
    yielded event (for a loop that waits on it). Enter it after ``ray.init``."""
    stop = threading.Event()

    def handler(signum: int, frame: FrameType | None) -> None:
        if stop.is_set():
            return  # one unwind is enough; a second signal must not interrupt the cleanup
        stop.set()
        _received.append(signum)
        log.warning("received %s: stopping", signal.Signals(signum).name)
        raise Stopped(signum)

    previous = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield stop
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def descendants(pid: int) -> list[int]:
    """The pids of every descendant of ``pid`` (from ``/proc``; empty where there is none)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc") if os.path.isdir("/proc") else []:
        if entry.isdigit():
            ppid = _parent(int(entry))
            if ppid is not None:
                children.setdefault(ppid, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _parent(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as f:
            # "pid (comm) state ppid ...": comm may hold spaces and parentheses.
            return int(f.read().rpartition(")")[2].split()[1])
    except (OSError, ValueError, IndexError):
        return None


def end_processes(pids: list[int], grace_s: float = _EXIT_GRACE_S) -> list[int]:
    """Waits up to ``grace_s`` for ``pids`` to exit, then SIGKILLs the rest (logged); returns
    the pids that had to be killed."""
    deadline = time.monotonic() + grace_s
    alive = [p for p in pids if _alive(p)]
    while alive and time.monotonic() < deadline:
        time.sleep(0.2)
        alive = [p for p in alive if _alive(p)]
    for pid in alive:
        log.warning("Ray process %d still running %.0f s after shutdown: killed", pid, grace_s)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return alive


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie, exited but not reaped, counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as f:
            return f.read().rpartition(")")[2].split()[0] != "Z"
    except OSError:
        return False


#: Ray's package folder: records logged from files below it are Ray's (:mod:`.console`).
RAY_DIR = os.path.dirname(ray.__file__)
