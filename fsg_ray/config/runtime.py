"""Which runtime runs a published generator for inference (``fsg restyle``, ``fsg serve``).

``torch`` runs it in PyTorch (bf16 autocast on CUDA); ``torch-bf16`` the same with bf16
autocast on the CPU too; ``onnx`` exports it once at load (:mod:`fsg_ray.core.export`) and
runs it in ONNX Runtime on the CPU, with as many threads as the actor or replica has CPUs.
``auto`` (the default) is ``torch`` where CUDA is present; on a CPU-only machine it is
``torch-bf16`` where the CPU has bf16 matrix units (Intel AMX), else ``onnx``. Measured in
docs/benchmarks.md ("ONNX Runtime vs PyTorch"): on AMX cores bf16 runs the generator 2.3-2.9
times faster than fp32 ONNX Runtime with ``fsg eval``'s metrics unchanged (structure within
0.003, style distances within 0.1 %); on a CPU without AMX (AVX512-BF16 only) it measured
1.1 times torch fp32, below ONNX Runtime's 1.3.

``onnx-int8`` (``fsg restyle`` only) quantises each style's generator to int8 on the CPU,
calibrated on the job's own photos, and keeps a style in fp32 ONNX when int8 moves its
outputs beyond ``fsg eval``'s bounds (:mod:`fsg_ray.io.quantize`); on CUDA it is ``torch``.
Online serving has no photos to calibrate on before its first request, so ``fsg serve``
refuses it.
"""

from __future__ import annotations

from fsg_ray.config.errors import require

RUNTIMES = ("auto", "torch", "torch-bf16", "onnx", "onnx-int8")
#: The runtimes of ``fsg serve`` (no calibration photos there).
SERVE_RUNTIMES = ("auto", "torch", "torch-bf16", "onnx")


def check_runtime(key: str, runtime: str, allowed: tuple[str, ...] = RUNTIMES) -> None:
    """Raises :class:`ConfigError` at ``key`` unless ``runtime`` is one of ``allowed``."""
    require(runtime in allowed, key, f"{runtime!r} is not one of {', '.join(allowed)}")
