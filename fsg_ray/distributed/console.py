"""What the console shows while training: our progress lines, the summary table and real
warnings; Ray's own chatter only with ``--verbose`` (it stays in Ray's log files).

Where the noise comes from, and where it is stopped:

- Ray Train logs ``Reporting training result N: TrainingReport(...)`` at INFO for every
  ``ray.train.report`` of every worker, on a logger named after its *file* (so not under
  ``ray.train``, and ``LoggingConfig(log_level=...)`` does not reach it), through the worker's
  root console handler; ``log_to_driver`` then prints it on the driver. :func:`quiet_console`
  filters the console handlers (never the file handlers) of the worker and of the driver.
- Ray Data logs its execution plans (INFO) on the driver, and, in every process where it
  runs, a warning that progress bars are disabled: we disable them on purpose.
- Ray's C++ raylet and core workers write their own lines to their log files, and the
  driver echoes them as ``(raylet) ...`` and ``(TrainController pid=...) ...`` lines. Two
  kinds are known noise in a run that trains several entries at once: the raylet's
  "N PYTHON worker processes have been started" (every entry starts its own actors, by
  design) and Ray Train's ``PreemptionWatcher`` "has constructor arguments in the object
  store" notice. :func:`drop_noise_lines` removes exactly those from what the driver echoes
  (``session.quiet_streams``); every other line, errors included, is shown. Lowering
  ``RAY_BACKEND_LOG_LEVEL`` instead would hide real errors.

Standard library only: the filter is installed in processes that imported Ray already.
"""

from __future__ import annotations

import logging
import os
import re

#: Our own messages; a library logger's name never starts with this.
OURS = "fsg_ray"
#: Ray Data's notice about the progress bars we switched off (distributed/session.py).
_PROGRESS_BARS_OFF = "Progress bars disabled"


#: Lines of Ray's C++ processes that are known noise (see the module docstring).
NOISE_LINES = (
    re.compile(r"PYTHON worker processes have been started on node"),
    re.compile(r"Actor with class name: 'PreemptionWatcher' .* has constructor arguments"),
)


def drop_noise_lines(lines: list[str]) -> list[str]:
    """``lines`` without those matching :data:`NOISE_LINES`."""
    return [line for line in lines if not any(p.search(line) for p in NOISE_LINES)]


class LibraryNoise(logging.Filter):
    """Drops Ray's records below WARNING, and its notice that progress bars are off.

    A record is Ray's when its logger is ``ray`` or below it, or when it was logged from a
    file inside Ray's package (Ray Train names some loggers after their file).
    """

    def __init__(self, ray_dir: str) -> None:
        super().__init__()
        self.ray_dir = ray_dir.rstrip(os.sep) + os.sep

    def filter(self, record: logging.LogRecord) -> bool:
        from_ray = (
            record.name == "ray"
            or record.name.startswith("ray.")
            or record.pathname.startswith(self.ray_dir)
        )
        if not from_ray:
            return True
        if str(record.msg).startswith(_PROGRESS_BARS_OFF):
            return False
        return record.levelno >= logging.WARNING


def quiet_console(ray_dir: str) -> None:
    """Adds :class:`LibraryNoise` to every console handler of the root logger and of Ray's
    ``ray``, ``ray.data`` and ``ray.train`` loggers (they do not all propagate). File
    handlers are left alone, so Ray's log files keep everything. Idempotent; call it again
    after a library reconfigures logging (Ray Train does on every worker)."""
    for name in (None, "ray", "ray.data", "ray.train"):
        for handler in logging.getLogger(name).handlers:
            console = isinstance(handler, logging.StreamHandler) and not isinstance(
                handler, logging.FileHandler
            )
            if console and not any(isinstance(f, LibraryNoise) for f in handler.filters):
                handler.addFilter(LibraryNoise(ray_dir))


#: The environment variable that tells Ray's worker processes to stay quiet.
QUIET_ENV = "FSG_QUIET_RAY"


def runtime_env_vars(verbose: bool) -> dict[str, str]:
    """Environment of Ray's worker processes: Ray Data's log level (its INFO plans per epoch
    of every shard, and its notice that progress bars are off, are noise in the workers;
    its real failures are errors) and :data:`QUIET_ENV` for :func:`quiet_worker`."""
    if verbose:
        return {"RAY_DATA_LOG_LEVEL": "INFO"}
    return {"RAY_DATA_LOG_LEVEL": "ERROR", QUIET_ENV: "1"}


def quiet_worker(ray_dir: str) -> None:
    """In a Ray worker: :func:`quiet_console` unless the session is verbose."""
    if os.environ.get(QUIET_ENV) == "1":
        quiet_console(ray_dir)
