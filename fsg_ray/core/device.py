"""Where and in which precision the networks run: CUDA with bf16 autocast when present, else
the CPU in full precision, or in bf16 where inference asks for it (``runtime: torch-bf16``)."""

from __future__ import annotations

import contextlib
from typing import Any

import torch


def autocast(
    device: torch.device, cpu_bf16: bool = False
) -> contextlib.AbstractContextManager[Any]:
    """bf16 autocast on CUDA, and on the CPU with ``cpu_bf16``; else full precision."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    if cpu_bf16:
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def cpu_has_bf16_matrix_units() -> bool:
    """Whether this CPU multiplies bf16 matrices in hardware (Intel AMX-BF16: Sapphire Rapids
    and later), where oneDNN runs the generator's convolutions in bf16 several times faster
    than in fp32 (docs/benchmarks.md, "ONNX Runtime vs PyTorch")."""
    return bool(torch.cpu.get_capabilities().get("amx_bf16", False))
