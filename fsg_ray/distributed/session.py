"""The Ray session every command runs in: a cluster's (``--address``, ``RAY_ADDRESS``) or a
local Ray started for the command's length."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

import ray
import ray.data


@contextlib.contextmanager
def ray_session(address: str | None = None, num_cpus: int | None = None) -> Iterator[None]:
    """Joins ``address`` (or ``RAY_ADDRESS``), or starts a local Ray for the block's length.

    A Ray that is already initialised (a notebook, a test session) is used as it is. A new
    local Ray runs the dashboard: Ray Train's monitors query its state API.
    """
    if ray.is_initialized():
        yield
        return
    address = address or os.environ.get("RAY_ADDRESS")
    kwargs: dict[str, Any] = {"address": address} if address else {"num_cpus": num_cpus}
    # Every epoch of every shard would log its Ray Data plan and a progress bar.
    quiet = {"env_vars": {"RAY_DATA_LOG_LEVEL": "WARNING"}}
    ray.init(runtime_env=quiet, **kwargs)
    ray.data.DataContext.get_current().enable_progress_bars = False
    try:
        yield
    finally:
        ray.shutdown()
