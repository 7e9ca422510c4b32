"""The Ray session every command runs in: a cluster's (``--address``, ``RAY_ADDRESS``) or a
local Ray started for the command's length; how a command stops on SIGTERM or SIGINT; and how
it ends when the cluster goes away under it.

Kubernetes, systemd and ``ray job stop`` end a process with SIGTERM. ``ray.init`` installs its
own SIGTERM handler (``sys.exit``), under which a driver died mid-call with Ray's fatal-signal
trace and left Ray's agents running. So ``ray.init`` runs with that handler kept out and the
signals held until it returns, :func:`stop_on_signals` installs ours after it, and a local
Ray's processes are tracked by pid and ended on the way out.

A cluster that dies (``ray stop`` on the head, a lost head pod) leaves a driver blocked in
``ray.get`` until Ray's core worker gives up on the GCS (``gcs_rpc_server_reconnect_timeout_s``,
60 s) and ends the process from C++: exit 1, as for a failed style, and no word from us. So
:func:`watch_cluster` probes the GCS and the driver's own raylet, and once they have not
answered for half that timeout raises :class:`ClusterLost` in the main thread, early enough
for the command to say so and exit with its own code.
"""

from __future__ import annotations

import _thread
import contextlib
import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Iterator
from types import FrameType
from typing import Any

import ray
import ray._private.utils
import ray.data

from fsg_ray.distributed import console

log = logging.getLogger(__name__)

#: Seconds a local Ray's processes get to exit after ``ray.shutdown`` before SIGKILL.
_EXIT_GRACE_S = 10.0
#: Seconds between two probes of the cluster (:func:`watch_cluster`).
_PROBE_EVERY_S = 1.0
#: Ray's GCS reconnect timeout (its config key with Ray's ``RAY_`` prefix, lower case and
#: all), and its default.
_RAY_GCS_RECONNECT_VAR = "RAY_gcs_rpc_server_reconnect_timeout_s"
_RAY_GCS_RECONNECT_S = 60.0
#: Why the cluster was declared lost (set by :func:`watch_cluster`'s thread, read by the
#: signal handler it triggers). Process state, as :data:`_received` is.
_lost: list[str] = []
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


class ClusterLost(KeyboardInterrupt):
    """The Ray cluster under the command stopped answering; raised in the main thread by
    :func:`watch_cluster`.

    A ``KeyboardInterrupt``, as :class:`Stopped` is: no ``except Exception`` on the way up
    may take it for a failure of the work it interrupts, and only a KeyboardInterrupt gets
    out of a blocked ``ray.get`` (which raises a bare one in its place: the reason is kept
    in :func:`cluster_lost`).
    """


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
    block SIGTERM and SIGINT raise :class:`Stopped` (:func:`stop_on_signals`), and a cluster
    that stops answering raises :class:`ClusterLost` (:func:`watch_cluster`; not under Ray
    Client, ``ray://``, which reports a lost connection itself).

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
    client = (address or "").startswith("ray://")
    try:
        _init(runtime_env={"env_vars": env}, **kwargs)
        if not verbose:
            quiet_streams()
        # Every epoch of every shard would draw a progress bar.
        ray.data.DataContext.get_current().enable_progress_bars = False
        with stop_on_signals(), contextlib.nullcontext() if client else watch_cluster():
            yield
    finally:
        started = [] if address else descendants(os.getpid())
        ray.shutdown()
        end_processes(started)


def quiet_streams() -> None:
    """Filters what the driver echoes of Ray's processes through
    :func:`console.drop_noise_lines`.

    Ray has no public hook for this. Its processes' output reaches the console two ways,
    both through ``ray._private.worker.print_to_stdstream``: worker and actor log lines via
    the ``ray_print_logs`` handler of ``ray_logging.global_worker_stdstream_dispatcher`` (a
    partial of that function, bound when Ray starts), and the raylet's messages to the
    driver (e.g. the worker-count warning) via ``listen_error_messages``, which looks the
    function up at each call. Both are wrapped. Should a Ray upgrade rename either, nothing
    is filtered and nothing breaks (tests/distributed/test_console.py notices).
    """
    from ray._private import ray_logging
    from ray._private import worker as ray_worker

    def quieted(echo: Any) -> Any:
        if getattr(echo, "fsg_quiet", False):
            return echo

        def quiet(data: dict[str, Any], *args: Any, **kwargs: Any) -> None:
            lines = console.drop_noise_lines(list(data.get("lines", [])))
            if lines:
                echo({**data, "lines": lines}, *args, **kwargs)

        quiet.fsg_quiet = True  # type: ignore[attr-defined]
        return quiet

    ray_worker.print_to_stdstream = quieted(ray_worker.print_to_stdstream)
    dispatcher = ray_logging.global_worker_stdstream_dispatcher
    with dispatcher._lock:
        dispatcher.handlers = [
            (name, quieted(handler) if name == "ray_print_logs" else handler)
            for name, handler in dispatcher.handlers
        ]


def _init(**kwargs: Any) -> None:
    """``ray.init``, with SIGTERM and SIGINT held until it returns: one that came during it
    then raises :class:`Stopped`.

    ray.init installs its own SIGTERM handler (``sys.exit``) first thing. A SystemExit raised
    at a random point of its startup was seen to be swallowed (the demo ran on to the end
    and exited 0) or to hang it, and one that got out exited 15. So for the call Ray's
    installer is bypassed and a handler that only notes the signal stays in place.
    """
    held: list[int] = []

    def hold(signum: int, frame: FrameType | None) -> None:
        held.append(signum)

    previous = {s: signal.signal(s, hold) for s in (signal.SIGTERM, signal.SIGINT)}
    installer = ray._private.utils.set_sigterm_handler
    ray._private.utils.set_sigterm_handler = lambda handler: None
    try:
        ray.init(**kwargs)
    finally:
        ray._private.utils.set_sigterm_handler = installer
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    if held:
        _received.append(held[0])
        log.warning("received %s while Ray started: stopping", signal.Signals(held[0]).name)
        raise Stopped(held[0])


@contextlib.contextmanager
def stop_on_signals() -> Iterator[threading.Event]:
    """For the block, SIGTERM and SIGINT raise :class:`Stopped` in the main thread (so the
    work unwinds through its ``finally`` blocks: checkpoints kept, Ray shut down) and set the
    yielded event (for a loop that waits on it). Enter it after a bare ``ray.init`` (which
    installs a SIGTERM handler of its own), or around a :func:`ray_session` (which keeps
    Ray's out): then a signal before Ray starts or after it stopped stops the command too."""
    stop = threading.Event()

    def handler(signum: int, frame: FrameType | None) -> None:
        if stop.is_set():
            return  # one unwind is enough; a second signal must not interrupt the cleanup
        stop.set()
        if _lost:  # not a signal from outside: watch_cluster's thread, through interrupt_main
            raise ClusterLost(_lost[0])
        _received.append(signum)
        log.warning("received %s: stopping", signal.Signals(signum).name)
        raise Stopped(signum)

    previous = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield stop
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


@contextlib.contextmanager
def watch_cluster(
    lost_after_s: float | None = None, every_s: float = _PROBE_EVERY_S
) -> Iterator[None]:
    """For the block, a thread probes the cluster's GCS and this driver's raylet (a TCP
    connect to each); when either has not answered for ``lost_after_s``, :class:`ClusterLost`
    is raised in the main thread (through the handler of :func:`stop_on_signals`, so enter
    this inside it). Enter it after ``ray.init``, not under Ray Client.

    Args:
        lost_after_s: Default: half of Ray's ``RAY_gcs_rpc_server_reconnect_timeout_s`` (60 s
            unless set), so a GCS restart (KubeRay's GCS fault tolerance) shorter than that is
            ridden out, and the command still ends before Ray's core worker ends it, silently,
            at the full timeout.
        every_s: Seconds between probes.
    """
    if lost_after_s is None:
        ray_s = os.environ.get(_RAY_GCS_RECONNECT_VAR, _RAY_GCS_RECONNECT_S)
        lost_after_s = float(ray_s) / 2
    done = threading.Event()
    args = (_endpoints(), lost_after_s, every_s, done)
    thread = threading.Thread(target=_watch, args=args, daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()


def _endpoints() -> dict[str, tuple[str, int]]:
    """The GCS's and this node's raylet's (host, port) by name."""
    host, _, port = ray.get_runtime_context().gcs_address.rpartition(":")
    found = {"GCS": (host, int(port))}
    node_id = ray.get_runtime_context().get_node_id()
    for node in ray.nodes():
        if node["NodeID"] == node_id:
            found["raylet"] = (node["NodeManagerAddress"], int(node["NodeManagerPort"]))
    return found


def _watch(
    endpoints: dict[str, tuple[str, int]],
    lost_after_s: float,
    every_s: float,
    done: threading.Event,
) -> None:
    """Probes ``endpoints`` every ``every_s`` until ``done``; once one has not answered for
    ``lost_after_s``, records why and interrupts the main thread (as SIGTERM would, so a
    main thread blocked in ``ray.get`` wakes up too: Ray checks for signals while it waits)."""
    answered = dict.fromkeys(endpoints, time.monotonic())
    while not done.wait(every_s):
        now = time.monotonic()
        for name, (host, port) in endpoints.items():
            if _answers(host, port, timeout_s=every_s):
                answered[name] = now
            elif now - answered[name] >= lost_after_s:
                _lost.append(
                    f"its {name} at {host}:{port} has not answered for {lost_after_s:g} s "
                    "(the cluster was stopped, or died)"
                )
                log.debug("%s", _lost[-1])
                _thread.interrupt_main(signal.SIGTERM)
                return


def _answers(host: str, port: int, timeout_s: float) -> bool:
    """Whether something accepts a TCP connection at ``host:port`` within ``timeout_s``."""
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def cluster_lost() -> str | None:
    """Why :func:`watch_cluster` declared the cluster lost, or None."""
    return _lost[0] if _lost else None


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
