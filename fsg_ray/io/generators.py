"""Published generators loaded for inference: :class:`EncoderCache` (one VGG encoder E_n per
weight spec, shared by every style loaded through it) and :class:`StyleBank` (a fixed set of
styles, run together by :func:`fsg_ray.core.inference.run_styles`). No Ray import.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from fsg_ray.core.inference import run_styles
from fsg_ray.core.models import Generator, VGG19Features, VGGWeights
from fsg_ray.io import registry
from fsg_ray.io.storage import Storage
from fsg_ray.io.weights import load_vgg


class EncoderCache:
    """Loads published generators so that those on the same VGG weights share one E_n.

    The VGG weights of a spec are read once; the first generator loaded on a spec lends its
    E_n module to every later one (the module is frozen and only read). At most
    ``max_encoders`` specs are kept, least recently used dropped first, like the generator LRU
    of a Serve replica: a registry whose versions name many weight files cannot grow the
    cache without bound (a dropped E_n lives on only in the generators still holding it).
    Thread-safe.

    Args:
        storage: Reads the registry and the VGG weights.
        device: Where the generators go.
        max_encoders: Most weight specs (VGG weights and E_n) kept; None keeps every one.
    """

    def __init__(
        self, storage: Storage, device: torch.device, max_encoders: int | None = None
    ) -> None:
        if max_encoders is not None and max_encoders < 1:
            raise ValueError(f"max_encoders must be >= 1, got {max_encoders}")
        self.storage, self.device, self.max_encoders = storage, device, max_encoders
        self._weights: OrderedDict[str, VGGWeights] = OrderedDict()
        self._encoders: dict[str, VGG19Features] = {}
        self._lock = threading.Lock()

    def load(
        self, registry_uri: str, style: str, version: str | None = None
    ) -> tuple[Generator, registry.PublishedVersion]:
        """A style's generator (eval mode) with its registry entry; the current version if
        ``version`` is None.

        Raises:
            registry.StyleNotFound, registry.VersionNotFound: See :func:`registry.resolve`.
        """
        found = registry.resolve(self.storage, registry_uri, style, version)
        spec = found.metadata["vgg_weights"]
        with self._lock:
            if spec not in self._weights:
                self._weights[spec] = load_vgg(spec, self.storage)
            self._weights.move_to_end(spec)
            while self.max_encoders is not None and len(self._weights) > self.max_encoders:
                dropped, _ = self._weights.popitem(last=False)
                self._encoders.pop(dropped, None)
            gen, _ = registry.load(
                self.storage, registry_uri, style, self.device, found.version, self._weights[spec]
            )
            gen.encoder = self._encoders.setdefault(spec, gen.encoder)  # drop the own copy
        return gen, found

    @property
    def specs(self) -> list[str]:
        """The VGG weight specs held, least recently used first."""
        return list(self._weights)


@dataclass(frozen=True)
class StyleBank:
    """A fixed set of styles' generators G_s, loaded once, run together.

    Attributes:
        generators: Style -> its generator (eval mode, channels_last).
        by_encoder: VGG weight spec -> the styles whose generators share its E_n.
    """

    generators: dict[str, Generator]
    by_encoder: dict[str, list[str]]

    @classmethod
    def load(
        cls, storage: Storage, registry_uri: str, versions: Mapping[str, str], device: torch.device
    ) -> StyleBank:
        """Loads each style at its version; one VGG load and one E_n per weight spec."""
        cache = EncoderCache(storage, device)
        generators: dict[str, Generator] = {}
        by_encoder: dict[str, list[str]] = {}
        for style, version in versions.items():
            generators[style], found = cache.load(registry_uri, style, version)
            by_encoder.setdefault(found.metadata["vgg_weights"], []).append(style)
        return cls(generators, by_encoder)

    def run(
        self, batch: np.ndarray, wanted: Mapping[str, Sequence[int]], device: torch.device
    ) -> dict[str, np.ndarray]:
        """:func:`run_styles` with this bank's generators."""
        return run_styles(self.generators, batch, wanted, device)
