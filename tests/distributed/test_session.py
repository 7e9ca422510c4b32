"""The Ray session's watch on its cluster, with no Ray: a listening socket stands in for the
GCS. A cluster that stops answering interrupts the main thread with :class:`ClusterLost`
(Ray's own driver would wait 60 s, then end the process from C++ with no message); one that
comes back within the grace period is ridden out; ``fsg`` turns the loss into one line and
exit 75. And the session's signal handlers around ``ray.init`` (a stand-in that installs a
handler as Ray's does): a SIGTERM during it stops the command, and Ray's handler does not
outlive the session."""

from __future__ import annotations

import os
import signal
import socket
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest

from fsg_ray.app import main
from fsg_ray.distributed import session


@pytest.fixture(autouse=True)
def fresh_state(monkeypatch: pytest.MonkeyPatch) -> None:
    """The session's process state (why the cluster was lost), empty for each test."""
    monkeypatch.setattr(session, "_lost", [])
    monkeypatch.setattr(session, "_received", [])


@pytest.fixture
def gcs(monkeypatch: pytest.MonkeyPatch) -> Iterator[socket.socket]:
    """A listening socket, watched as the cluster's GCS."""
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    monkeypatch.setattr(session, "_endpoints", lambda: {"GCS": ("127.0.0.1", port)})
    yield server
    server.close()


def wait(seconds: float) -> None:
    """Sleeps in short steps, as a main thread blocked in ``ray.get`` waits."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(0.05)


def test_a_cluster_that_stops_answering_interrupts_the_main_thread(gcs: socket.socket) -> None:
    port = gcs.getsockname()[1]
    t0 = time.monotonic()
    with (
        pytest.raises(session.ClusterLost),
        session.stop_on_signals(),
        session.watch_cluster(lost_after_s=0.5, every_s=0.1),
    ):
        wait(0.8)  # answering: no interrupt
        assert session.cluster_lost() is None
        gcs.close()
        wait(10)
    assert time.monotonic() - t0 < 5
    lost = session.cluster_lost()
    assert lost is not None and f"GCS at 127.0.0.1:{port} has not answered for 0.5 s" in lost


def test_a_gcs_restart_within_the_grace_period_is_ridden_out(gcs: socket.socket) -> None:
    port = gcs.getsockname()[1]
    with session.stop_on_signals(), session.watch_cluster(lost_after_s=1.5, every_s=0.1):
        gcs.close()
        wait(0.5)
        back = socket.create_server(("127.0.0.1", port))  # the GCS restarted on its port
        wait(2)
        back.close()
    assert session.cluster_lost() is None


def test_the_default_grace_is_half_rays_own_gcs_timeout(
    gcs: socket.socket, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ray's core worker ends the driver at its full timeout: fsg must speak first."""
    monkeypatch.setenv("RAY_gcs_rpc_server_reconnect_timeout_s", "1")
    with (
        pytest.raises(session.ClusterLost),
        session.stop_on_signals(),
        session.watch_cluster(every_s=0.1),
    ):
        gcs.close()
        wait(10)
    assert "has not answered for 0.5 s" in (session.cluster_lost() or "")


def test_fsg_says_the_cluster_was_lost_in_one_line_and_exits_75(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``ray.get`` turns the interrupt into a bare KeyboardInterrupt: the reason comes from
    the session, not from the exception."""

    def lose(args: object) -> int:
        session._lost.append("its GCS at 10.0.0.1:6379 has not answered for 30 s (gone)")
        raise KeyboardInterrupt

    monkeypatch.setattr(main.cmd_styles, "run", lose)
    assert main.main(["styles", "/nowhere"]) == main.EXIT_CLUSTER_LOST == 75
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "fsg styles: error: lost the Ray cluster: its GCS at 10.0.0.1:6379 has not answered "
        "for 30 s (gone). What was done is kept (checkpoints, published versions, written "
        "outputs): rerun to resume"
    ]


@pytest.fixture
def fake_ray(monkeypatch: pytest.MonkeyPatch) -> dict[str, bool]:
    """``ray.init`` installs a SIGTERM handler as Ray's does (``sys.exit(signum)``, through
    ``ray._private.utils.set_sigterm_handler``, first thing); with ``sigterm`` set it then
    sends this process SIGTERM and goes on starting. ``returned`` says whether it ran to its
    end."""
    state = {"sigterm": False, "returned": False}

    def init(**kwargs: Any) -> None:
        session.ray._private.utils.set_sigterm_handler(lambda signum, frame: sys.exit(signum))
        if state["sigterm"]:
            os.kill(os.getpid(), signal.SIGTERM)
            wait(0.5)  # Ray's startup goes on; a handler that raised would interrupt it here
        state["returned"] = True

    monkeypatch.setattr(session.ray, "init", init)
    monkeypatch.setattr(session.ray, "shutdown", lambda: None)
    monkeypatch.setattr(session.ray, "is_initialized", lambda: False)
    monkeypatch.setattr(session.console, "quiet_console", lambda ray_dir: None)
    return state


def test_a_sigterm_while_ray_starts_stops_the_command_once_it_started(
    fake_ray: dict[str, bool],
) -> None:
    """Not inside ray.init, where a SystemExit was swallowed (the demo ran on and exited 0)
    or hung it."""
    fake_ray["sigterm"] = True
    with session.stop_on_signals():  # as `fsg demo` runs its whole command
        outer = signal.getsignal(signal.SIGTERM)
        # ray:// (Ray Client) is not watched: no cluster to probe here.
        with pytest.raises(session.Stopped), session.ray_session("ray://127.0.0.1:1"):
            pytest.fail("the block must not run")
        assert fake_ray["returned"]
        assert signal.getsignal(signal.SIGTERM) is outer
    assert session.received_signal() == signal.SIGTERM


def test_rays_sigterm_handler_is_kept_out(fake_ray: dict[str, bool]) -> None:
    """Else it outlived the session: a SIGTERM while `fsg demo` drew its grids exited 15."""
    with session.stop_on_signals():
        outer = signal.getsignal(signal.SIGTERM)
        with session.ray_session("ray://127.0.0.1:1"):
            assert signal.getsignal(signal.SIGTERM) is not outer  # the session's own
        assert signal.getsignal(signal.SIGTERM) is outer
        with pytest.raises(session.Stopped):
            os.kill(os.getpid(), signal.SIGTERM)
            wait(5)
