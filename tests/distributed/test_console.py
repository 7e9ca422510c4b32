"""The filter behind what ``fsg train`` prints (fsg_ray.distributed.console): our progress
lines and the summary, not Ray's per-report lines (unless ``--verbose``). The console of a
real ``fsg train`` process, quiet and verbose, is checked by the reruns in
tests/app/test_train_command.py."""

from __future__ import annotations

import inspect
import logging
from pathlib import Path

from fsg_ray.distributed import console

RAY_DIR = "/site-packages/ray"


def _record(name: str, level: int, msg: str, path: str = "/x/fsg_ray/y.py") -> logging.LogRecord:
    return logging.LogRecord(name, level, path, 1, msg, None, None)


def test_library_noise_drops_rays_info_and_keeps_ours_and_warnings() -> None:
    noise = console.LibraryNoise(RAY_DIR)
    report_line = f"{RAY_DIR}/train/v2/_internal/execution/context.py"
    assert not noise.filter(
        _record(report_line, logging.INFO, "Reporting training result 1", report_line)
    )
    assert not noise.filter(_record("ray.data._internal.x", logging.INFO, "Execution plan"))
    assert not noise.filter(_record("ray.data", logging.WARNING, "Progress bars disabled. To"))
    assert noise.filter(_record("ray.train", logging.WARNING, "a worker died"))
    assert noise.filter(_record("ray", logging.ERROR, "out of memory"))
    assert noise.filter(_record("fsg_ray.distributed.trainer", logging.INFO, "[stripes] patch"))


def test_quiet_console_filters_console_handlers_only(tmp_path: Path) -> None:
    logger = logging.getLogger("ray.train")
    stream, file = logging.StreamHandler(), logging.FileHandler(tmp_path / "log")
    logger.addHandler(stream)
    logger.addHandler(file)
    try:
        console.quiet_console(RAY_DIR)
        console.quiet_console(RAY_DIR)  # idempotent
        assert sum(isinstance(f, console.LibraryNoise) for f in stream.filters) == 1
        assert file.filters == []  # Ray's log files keep everything
    finally:
        for h in (stream, file):
            logger.removeHandler(h)
            h.close()
    assert console.runtime_env_vars(False)[console.QUIET_ENV] == "1"
    assert console.QUIET_ENV not in console.runtime_env_vars(True)


def test_known_ray_noise_lines_are_dropped_and_every_other_line_kept() -> None:
    raylet = (
        "WARNING: 8 PYTHON worker processes have been started on node: a94 with address: "
        "192.0.2.2, which is 4x the maximum expected startup concurrency (2)."
    )
    watcher = (
        "[2026-11-30 07:14:51,246 E 1340 1396] core_worker.cc:2465: Actor with class name: "
        "'PreemptionWatcher' and ID: '7d6c' has constructor arguments in the object store"
    )
    real = "[2026-11-30 07:14:51,246 E 1340 1396] core_worker.cc:99: Actor died: out of memory"
    ours = "[stripes] gan 24/80 | 24/520 | gan_d 1.25"
    assert console.drop_noise_lines([raylet, ours, watcher, real]) == [ours, real]


def test_quiet_streams_wraps_both_ways_ray_echoes_its_processes(monkeypatch) -> None:
    """The private hooks the driver's echo goes through are still there and get filtered:
    worker log lines (the dispatcher's handler) and the raylet's messages to the driver
    (``print_to_stdstream``, called by ``listen_error_messages``)."""
    from ray._private import ray_logging
    from ray._private import worker as ray_worker

    from fsg_ray.distributed import session

    assert "print_to_stdstream(" in inspect.getsource(ray_worker.listen_error_messages)
    echoed: list[list[str]] = []
    monkeypatch.setattr(ray_worker, "print_to_stdstream", lambda data, **kw: echoed.append(
        data["lines"]))  # fmt: skip
    dispatcher = ray_logging.WorkerStandardStreamDispatcher()
    monkeypatch.setattr(ray_logging, "global_worker_stdstream_dispatcher", dispatcher)
    dispatcher.add_handler("ray_print_logs", lambda data: echoed.append(data["lines"]))
    session.quiet_streams()
    session.quiet_streams()  # idempotent: wrapped once
    noise = "WARNING: 8 PYTHON worker processes have been started on node: x"
    dispatcher.emit({"lines": [noise]})
    dispatcher.emit({"lines": ["a real line", noise], "pid": "TrainController"})
    ray_worker.print_to_stdstream({"lines": [noise], "pid": "raylet"}, ignore_prefix=False)
    ray_worker.print_to_stdstream({"lines": ["raylet: real"], "pid": "raylet"}, ignore_prefix=False)
    assert echoed == [["a real line"], ["raylet: real"]]
