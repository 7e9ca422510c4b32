"""Where and in which precision the networks run: CUDA with bf16 autocast when present, else
the CPU in full precision."""

from __future__ import annotations

import contextlib
from typing import Any

import torch


def autocast(device: torch.device) -> contextlib.AbstractContextManager[Any]:
    """bf16 autocast on CUDA; full precision on the CPU."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()
