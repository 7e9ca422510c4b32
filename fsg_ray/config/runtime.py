"""Which runtime runs a published generator for inference (``fsg restyle``, ``fsg serve``).

``torch`` runs it in PyTorch (bf16 autocast on CUDA); ``onnx`` exports it once at load
(:mod:`fsg_ray.core.export`) and runs it in ONNX Runtime on the CPU, with as many threads as
the actor or replica has CPUs; ``auto`` (the default) is ``onnx`` on a CPU-only machine and
``torch`` where CUDA is present. Measured in docs/benchmarks.md ("ONNX Runtime vs PyTorch").
"""

from __future__ import annotations

from fsg_ray.config.errors import require

RUNTIMES = ("auto", "torch", "onnx")


def check_runtime(key: str, runtime: str) -> None:
    """Raises :class:`ConfigError` at ``key`` unless ``runtime`` is one of :data:`RUNTIMES`."""
    require(runtime in RUNTIMES, key, f"{runtime!r} is not one of {', '.join(RUNTIMES)}")
