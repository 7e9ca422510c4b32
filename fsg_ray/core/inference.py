"""Running published generators on batches of uint8 images, with one VGG encoder per weight
spec shared by every style: the common core of bulk restyling
(:mod:`fsg_ray.distributed.restyle`) and online serving
(:mod:`fsg_ray.distributed.serve`). No Ray import.

Every generator G_s = D_s o E_n of one catalogue uses the same frozen encoder E_n (VGG-19 up to
relu4_1), so styles that share a ``vgg_weights`` spec share one E_n module in memory
(:class:`EncoderCache`) and one encoder pass per batch (:func:`run_styles`): N styles cost
E_n + N x D_s instead of N x (E_n + D_s), with D_s about 30 % of E_n
(:class:`fsg_ray.core.models.Decoder`).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from fsg_ray.core.algorithm import autocast
from fsg_ray.core.models import Generator, VGG19Features, VGGWeights, load_vgg, pad_to_stride
from fsg_ray.io import registry
from fsg_ray.io.storage import Storage


class EncoderCache:
    """Loads published generators so that those on the same VGG weights share one E_n.

    The VGG weights of a spec are read once; the first generator loaded on a spec lends its
    E_n module to every later one (the module is frozen and only read). Thread-safe.

    Args:
        storage: Reads the registry and the VGG weights.
        device: Where the generators go.
    """

    def __init__(self, storage: Storage, device: torch.device) -> None:
        self.storage, self.device = storage, device
        self._weights: dict[str, VGGWeights] = {}
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
            gen, _ = registry.load(
                self.storage, registry_uri, style, self.device, found.version, self._weights[spec]
            )
            gen.encoder = self._encoders.setdefault(spec, gen.encoder)  # drop the own copy
        return gen, found

    @property
    def specs(self) -> list[str]:
        """The VGG weight specs loaded so far."""
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


def run_styles(
    generators: Mapping[str, Generator],
    batch: np.ndarray,
    wanted: Mapping[str, Sequence[int]],
    device: torch.device,
) -> dict[str, np.ndarray]:
    """G_s(x) for each style s on the images ``wanted[s]`` of a same-size batch.

    Styles whose generators share an E_n module (loaded through one :class:`EncoderCache`)
    are encoded once; each then runs only its decoder D_s.

    Args:
        generators: Style -> its generator, on ``device``.
        batch: (B, H, W, 3) uint8 images.
        wanted: Style -> indices into ``batch``; styles not named, or with no index, are not run.
        device: Where the generators are.

    Returns:
        Style -> (len(wanted[s]), H, W, 3) uint8, rounded as ``images.to_image``. No
        gradients; on CUDA bf16 autocast and channels_last.
    """
    if not batch.flags.writeable:  # torch warns on read-only arrays (e.g. np.asarray(PIL))
        batch = batch.copy()
    x = torch.from_numpy(batch).to(device).permute(0, 3, 1, 2).float().div(255)  # (B, 3, H, W)
    h, w = x.shape[-2:]
    x = pad_to_stride(x).contiguous(memory_format=torch.channels_last)
    by_encoder: dict[int, list[str]] = {}
    for style, picked in wanted.items():
        if picked:
            by_encoder.setdefault(id(generators[style].encoder), []).append(style)
    out = {}
    with torch.inference_mode(), autocast(device):
        for styles in by_encoder.values():
            z = generators[styles[0]].encode(x)  # E_n(x): (B, 512, H/8, W/8)
            for style in styles:
                y = generators[style].decoder(z[list(wanted[style])])[..., :h, :w]
                y = y.float().clamp(0, 1).mul(255).round().to(torch.uint8)
                out[style] = y.permute(0, 2, 3, 1).cpu().numpy()  # (b, H, W, 3)
    return out
