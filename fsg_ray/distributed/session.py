"""The Ray session every command runs in: a cluster's (``--address``, ``RAY_ADDRESS``) or a
local Ray started for the command's length."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

import ray
import ray.data

from fsg_ray.distributed import console


@contextlib.contextmanager
def ray_session(
    address: str | None = None, num_cpus: int | None = None, verbose: bool = False
) -> Iterator[None]:
    """Joins ``address`` (or ``RAY_ADDRESS``), or starts a local Ray for the block's length.

    A Ray that is already initialised (a notebook, a test session) is used as it is. A new
    local Ray runs the dashboard: Ray Train's monitors query its state API. Unless
    ``verbose``, the console shows our lines and real warnings only (:mod:`.console`).
    """
    if ray.is_initialized():
        yield
        return
    address = address or os.environ.get("RAY_ADDRESS")
    kwargs: dict[str, Any] = {"address": address} if address else {"num_cpus": num_cpus}
    if not verbose:  # before ray.init: it logs the dashboard's address at INFO
        console.quiet_console(RAY_DIR)
    ray.init(runtime_env={"env_vars": console.runtime_env_vars(verbose)}, **kwargs)
    # Every epoch of every shard would draw a progress bar.
    ray.data.DataContext.get_current().enable_progress_bars = False
    try:
        yield
    finally:
        ray.shutdown()


#: Ray's package folder: records logged from files below it are Ray's (:mod:`.console`).
RAY_DIR = os.path.dirname(ray.__file__)
