"""What the garment, style and dataset modules share: size and name checks, a pixel grid."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

MIN_SIZE = 32

Rng = np.random.Generator


def check_choice(value: str, valid: Sequence[str], what: str) -> None:
    """Raises ValueError naming ``value`` and every valid choice unless it is one of them."""
    if value not in valid:
        raise ValueError(f"unknown {what} {value!r}; valid: {', '.join(valid)}")


def check_size(size: int) -> None:
    """Raises ValueError for an image side below ``MIN_SIZE``."""
    if size < MIN_SIZE:
        raise ValueError(f"size must be >= {MIN_SIZE}, got {size}")


def grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel coordinates (x, y), each (size, size) float32."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    return xx, yy
