"""Published generators loaded for inference: :class:`EncoderCache` (one VGG encoder E_n per
weight spec, shared by every style loaded through it), :class:`StyleBank` (a fixed set of
styles, run together by :func:`fsg_ray.core.inference.run_styles`), and the ONNX Runtime path
(:class:`OnnxGenerator`, :func:`for_runtime`, :func:`run_loaded`), and bf16 on the CPU
(:class:`CpuBf16`). No Ray import.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple, TypeAlias

import numpy as np
import torch

from fsg_ray.config.runtime import RUNTIMES
from fsg_ray.core.device import cpu_has_bf16_matrix_units
from fsg_ray.core.export import INPUT, export_bytes
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
        generators: Style -> its generator (eval mode, channels_last) or its
            :class:`OnnxGenerator`.
        by_encoder: VGG weight spec -> the styles whose generators share its E_n.
        downscale: The generators run on photos shrunk this many times
            (:func:`fsg_ray.core.inference.run_styles`).
    """

    generators: dict[str, Runner]
    by_encoder: dict[str, list[str]]
    downscale: int = 1

    @classmethod
    def load(
        cls,
        storage: Storage,
        registry_uri: str,
        versions: Mapping[str, str],
        device: torch.device,
        runtime: str = "torch",
        threads: int = 1,
        models: Mapping[str, bytes] | None = None,
        downscale: int = 1,
    ) -> StyleBank:
        """Loads each style at its version; one VGG load and one E_n per weight spec.

        ``runtime`` and ``threads``: see :func:`for_runtime`. ``models``: style -> an ONNX
        file made for it beforehand (the int8 models of ``runtime: onnx-int8``, made with
        the same ``downscale``); a style without one is exported here.
        """
        cache = EncoderCache(storage, device)
        generators: dict[str, Runner] = {}
        by_encoder: dict[str, list[str]] = {}
        for style, version in versions.items():
            gen, found = cache.load(registry_uri, style, version)
            model = (models or {}).get(style)
            generators[style] = for_runtime(gen, runtime, device, threads, model, downscale)
            by_encoder.setdefault(found.metadata["vgg_weights"], []).append(style)
        return cls(generators, by_encoder, downscale)

    def run(
        self, batch: np.ndarray, wanted: Mapping[str, Sequence[int]], device: torch.device
    ) -> dict[str, np.ndarray]:
        """:func:`run_loaded` with this bank's generators."""
        return run_loaded(self.generators, batch, wanted, device, self.downscale)


class OnnxGenerator:
    """A generator exported to ONNX (:mod:`fsg_ray.core.export`) in an ONNX Runtime session on
    the CPU: (B, H, W, 3) uint8 in, the same out, equal to :func:`run_styles`' output within
    one grey level.

    Args:
        generator: The published generator (only read; exported once, here, unless ``model``
            is given).
        threads: ONNX Runtime's intra-op threads: the CPUs of the actor or replica, so that
            one actor per core does not oversubscribe the machine.
        model: The generator's ONNX file when made beforehand (e.g. int8,
            :mod:`fsg_ray.io.quantize`), with the same contract.
        downscale: Export G run on photos shrunk this many times (ignored with ``model``,
            which was made with its own).
    """

    def __init__(
        self, generator: Generator, threads: int, model: bytes | None = None, downscale: int = 1
    ) -> None:
        import onnxruntime as ort  # only where the ONNX runtime is chosen

        options = ort.SessionOptions()
        options.intra_op_num_threads = max(1, threads)
        options.inter_op_num_threads = 1  # the graph is a chain: nothing runs in parallel
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.threads = options.intra_op_num_threads
        self.session = ort.InferenceSession(
            model if model is not None else export_bytes(generator, "onnx", downscale),
            options,
            providers=["CPUExecutionProvider"],
        )

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        """G(x) of (B, H, W, 3) uint8 images: (B, H, W, 3) uint8."""
        return np.asarray(self.session.run(None, {INPUT: np.ascontiguousarray(batch)})[0])


class CpuBf16(NamedTuple):
    """A torch generator run under bf16 autocast on the CPU (``runtime: torch-bf16``)."""

    generator: Generator


#: What :func:`for_runtime` returns and :func:`run_loaded` runs.
Runner: TypeAlias = Generator | CpuBf16 | OnnxGenerator


def resolve_runtime(runtime: str, device: torch.device) -> str:
    """The runtime that ``runtime`` means on ``device``: ``auto`` is ``torch`` on CUDA, and on
    the CPU ``torch-bf16`` where it has bf16 matrix units, else ``onnx``; every runtime is
    ``torch`` on CUDA except an explicit ``onnx``.

    Raises:
        ValueError: An unknown runtime.
    """
    if runtime not in RUNTIMES:
        raise ValueError(f"unknown runtime {runtime!r}; choose from {', '.join(RUNTIMES)}")
    if device.type != "cpu":
        return "onnx" if runtime == "onnx" else "torch"
    if runtime == "auto":
        return "torch-bf16" if cpu_has_bf16_matrix_units() else "onnx"
    return runtime


def for_runtime(
    generator: Generator,
    runtime: str,
    device: torch.device,
    threads: int = 1,
    model: bytes | None = None,
    downscale: int = 1,
) -> Runner:
    """The generator for a runtime (:mod:`fsg_ray.config.runtime`, :func:`resolve_runtime`):
    itself for ``torch``, a :class:`CpuBf16` for ``torch-bf16``, an :class:`OnnxGenerator`
    with ``threads`` intra-op threads for ``onnx`` and ``onnx-int8`` (running ``model`` when
    given, else the generator exported in fp32 with ``downscale``). A torch generator gets
    ``downscale`` when it runs (:func:`run_loaded`).

    Raises:
        ValueError: An unknown runtime.
    """
    chosen = resolve_runtime(runtime, device)
    if chosen == "torch":
        return generator
    if chosen == "torch-bf16":
        return CpuBf16(generator)
    return OnnxGenerator(generator, threads, model, downscale)


def run_loaded(
    generators: Mapping[str, Runner],
    batch: np.ndarray,
    wanted: Mapping[str, Sequence[int]],
    device: torch.device,
    downscale: int = 1,
) -> dict[str, np.ndarray]:
    """:func:`run_styles` over generators from :func:`for_runtime`: the torch ones together
    (one E_n pass per shared encoder and precision, on photos shrunk ``downscale`` times),
    each ONNX one on its own images (its file has its own ``downscale`` inside)."""
    out: dict[str, np.ndarray] = {}
    for cpu_bf16 in (False, True):
        on_torch = {
            s: g.generator if isinstance(g, CpuBf16) else g
            for s, g in generators.items()
            if isinstance(g, CpuBf16 if cpu_bf16 else Generator)
        }
        torch_wanted = {s: p for s, p in wanted.items() if s in on_torch}
        if torch_wanted:
            out |= run_styles(on_torch, batch, torch_wanted, device, downscale, cpu_bf16)
    for style, picked in wanted.items():
        gen = generators[style]
        if picked and isinstance(gen, OnnxGenerator):
            out[style] = gen(batch[list(picked)])
    return out
