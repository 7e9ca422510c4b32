"""int8 generators for ONNX Runtime on the CPU (``runtime: onnx-int8``), and the quality gate
that decides whether a style may use one. No Ray import.

**Why int8.** On a CPU the generator is bound by its convolutions; ONNX Runtime's int8
kernels (QLinearConv) run them about 2.5x faster than fp32 at 192x256 on 2 cores
(docs/benchmarks.md, "ONNX Runtime vs PyTorch"). The exported graph
(:mod:`fsg_ray.core.export`) is quantised statically: every convolution's weights per output
channel (int8), its activations per tensor (uint8), with ranges calibrated on photos like the
ones it will restyle. The first convolution (on the image) and the last one (to the image)
stay in float: they are cheap, and the output's colours are the most sensitive to rounding.

**Why a gate.** A quantised generator is a different function. Each style's int8 model is
compared with its fp32 ONNX model on garments held aside from the calibration, with the
metrics of ``fsg eval`` (docs/metrics.md): the structure similarity to the input must stay
within :data:`MAX_STRUCTURE_DELTA`, the style distance (pixel-patch SWD) within
:data:`MAX_STYLE_DELTA` of fp32's. A style that fails keeps its fp32 model.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from fsg_ray.core import export, metrics
from fsg_ray.core.models import Generator

#: Largest change of the mean structure similarity (input vs output) int8 may make.
MAX_STRUCTURE_DELTA = 0.02
#: Largest relative change of the mean style distance (SWD) int8 may make.
MAX_STYLE_DELTA = 0.05


class QuantizationError(RuntimeError):
    """The int8 model could not be made (no calibration images, an ONNX Runtime failure)."""


def int8_onnx(
    generator: Generator,
    calibration: Sequence[np.ndarray],
    float_ends: bool = True,
    downscale: int = 1,
) -> bytes:
    """The generator as an int8 ONNX file (static QDQ, per-channel weights).

    Args:
        generator: A published generator (eval mode); only read.
        calibration: (H, W, 3) uint8 photos (any sizes; at least one) for the activation
            ranges: photos like the ones the model will restyle, at the size it will see.
        float_ends: Keep the first and the last convolution in float.
        downscale: Export G run on photos shrunk this many times (:mod:`fsg_ray.core.export`).

    Raises:
        QuantizationError: No calibration images, or the quantiser failed.
    """
    import onnx  # only where int8 is chosen
    from onnxruntime import quantization as q
    from onnxruntime.quantization.shape_inference import quant_pre_process

    shapes = [np.shape(photo) for photo in calibration]
    if not shapes or any(len(s) != 3 or s[2] != 3 for s in shapes):
        raise QuantizationError(
            f"int8 calibration needs at least one (H, W, 3) photo; got shapes {shapes}"
        )
    with tempfile.TemporaryDirectory() as tmp:
        fp32, pre, int8 = (Path(tmp) / n for n in ("g.onnx", "g.pre.onnx", "g.int8.onnx"))
        fp32.write_bytes(export.export_bytes(generator, "onnx", downscale))
        try:
            # Folds the exporter's constants into initializers: without it the quantiser leaves
            # some biases in float, ONNX Runtime cannot fuse those convolutions into
            # QLinearConv, and the int8 model runs slower than the float one.
            quant_pre_process(str(fp32), str(pre), skip_symbolic_shape=True)
            convs = [n.name for n in onnx.load(str(pre)).graph.node if n.op_type == "Conv"]
            q.quantize_static(
                str(pre),
                str(int8),
                _Calibration(calibration),
                quant_format=q.QuantFormat.QDQ,
                op_types_to_quantize=["Conv"],
                nodes_to_exclude=[convs[0], convs[-1]] if float_ends and convs else [],
                activation_type=q.QuantType.QUInt8,
                weight_type=q.QuantType.QInt8,
                per_channel=True,
            )
        except Exception as e:  # the quantiser raises many kinds; one clear error for callers
            raise QuantizationError(f"int8 quantisation failed: {type(e).__name__}: {e}") from e
        return int8.read_bytes()


class _Calibration:
    """Feeds the calibration photos one at a time (the quantiser's CalibrationDataReader)."""

    def __init__(self, photos: Sequence[np.ndarray]) -> None:
        self._items: Iterator[np.ndarray] = iter(photos)

    def get_next(self) -> dict[str, np.ndarray] | None:
        item = next(self._items, None)
        return None if item is None else {export.INPUT: np.ascontiguousarray(item)[None]}

    # onnxruntime >= 1.17 calls these too
    def __iter__(self) -> _Calibration:
        return self

    def __next__(self) -> dict[str, np.ndarray]:
        item = self.get_next()
        if item is None:
            raise StopIteration
        return item


@dataclass(frozen=True)
class GateResult:
    """How far int8 moves a style's outputs from fp32's, on garments held aside.

    Attributes:
        structure_fp32, structure_int8: Mean structure similarity of the outputs to the inputs.
        swd_fp32, swd_int8: Mean style distance (pixel-patch SWD) of the outputs to the style
            image; or, without a style image, of the int8 outputs to the fp32 outputs (0 for
            fp32) against the fp32 outputs' distance to the inputs (``swd_fp32``): the
            quantisation error against the change the style makes.
        against_style: Whether the style image was used.
        images: Garments compared.
    """

    structure_fp32: float
    structure_int8: float
    swd_fp32: float
    swd_int8: float
    against_style: bool
    images: int

    @property
    def structure_delta(self) -> float:
        return self.structure_int8 - self.structure_fp32

    @property
    def style_delta(self) -> float:
        """Relative change of the style distance (the error's share, without a style image)."""
        if self.against_style:
            return self.swd_int8 / max(self.swd_fp32, 1e-12) - 1
        return self.swd_int8 / max(self.swd_fp32, 1e-12)

    @property
    def ok(self) -> bool:
        return (
            abs(self.structure_delta) <= MAX_STRUCTURE_DELTA
            and abs(self.style_delta) <= MAX_STYLE_DELTA
        )

    def text(self) -> str:
        """One line for the log: the two deltas against their bounds."""
        kind = "style distance" if self.against_style else "error vs the style's change"
        return (
            f"structure {self.structure_fp32:.3f} -> {self.structure_int8:.3f} "
            f"(Δ {self.structure_delta:+.3f}, bound ±{MAX_STRUCTURE_DELTA}), {kind} "
            f"{100 * self.style_delta:+.1f} % (bound ±{100 * MAX_STYLE_DELTA:.0f} %) on "
            f"{self.images} garments"
        )


def gate(
    photos: Sequence[np.ndarray],
    fp32: Sequence[np.ndarray],
    int8: Sequence[np.ndarray],
    style: np.ndarray | None = None,
) -> GateResult:
    """Compares int8 outputs with fp32 outputs of the same photos, each (H, W, 3) uint8.

    ``style`` is the style image (h, w, 3) uint8; without it the style check bounds the
    int8 outputs' SWD to the fp32 outputs by a share of the fp32 outputs' SWD to the inputs.
    The whole image counts (a bulk job's masks are not known here).

    Raises:
        ValueError: No photos, or an output whose shape is not its photo's.
    """
    if not photos or not (len(photos) == len(fp32) == len(int8)):
        raise ValueError(f"gate needs as many outputs as photos, at least one; got {len(photos)}")
    for x, a, b in zip(photos, fp32, int8, strict=True):
        if not (np.shape(x) == np.shape(a) == np.shape(b)) or np.ndim(x) != 3:
            raise ValueError(
                f"gate needs (H, W, 3) photos and outputs of their shape; got {np.shape(x)}, "
                f"{np.shape(a)}, {np.shape(b)}"
            )
    target = None if style is None else _tensor(style)
    rows = []
    for x, a, b in zip(photos, fp32, int8, strict=True):
        tx, ta, tb = _tensor(x), _tensor(a), _tensor(b)
        whole = torch.ones(tx.shape[1:], dtype=torch.bool)
        s_a = metrics.structure_similarity(tx, ta, whole)
        s_b = metrics.structure_similarity(tx, tb, whole)
        if target is not None:
            d_a = metrics.sliced_wasserstein(ta, target)
            d_b = metrics.sliced_wasserstein(tb, target)
        else:
            d_a = metrics.sliced_wasserstein(ta, tx)  # the change the style makes
            d_b = metrics.sliced_wasserstein(tb, ta)  # the quantisation error
        rows.append((s_a, s_b, d_a, d_b))
    s_a, s_b, d_a, d_b = (float(v) for v in np.mean(rows, axis=0))
    return GateResult(s_a, s_b, d_a, d_b, target is not None, len(photos))


def _tensor(img: np.ndarray) -> torch.Tensor:
    """(H, W, 3) uint8 -> (3, H, W) float in [0, 1]."""
    return torch.from_numpy(np.array(img, dtype=np.uint8)).permute(2, 0, 1).float() / 255


@dataclass(frozen=True)
class Int8Choice:
    """A style's int8 model, or why it stays fp32.

    Attributes:
        model: The int8 ONNX file; None when the style keeps its fp32 model.
        result: The gate's measurement (None when quantisation itself failed).
        reason: One line for the log.
    """

    model: bytes | None
    result: GateResult | None
    reason: str


def choose_int8(
    generator: Generator,
    photos: Sequence[np.ndarray],
    style: np.ndarray | None = None,
    threads: int = 1,
    downscale: int = 1,
) -> Int8Choice:
    """Quantises ``generator`` on the first half of ``photos`` and gates it on the second half
    (on the one photo for both when there is only one); both models run G on photos shrunk
    ``downscale`` times.

    Raises:
        ValueError: No photos.
    """
    from fsg_ray.io.generators import OnnxGenerator  # generators does not import this module

    if not photos:
        raise ValueError("int8 needs at least one photo to calibrate on")
    half = max(1, len(photos) // 2)
    calibration, held = photos[:half], photos[half:] or photos[:half]
    try:
        model = int8_onnx(generator, calibration, downscale=downscale)
    except QuantizationError as e:
        return Int8Choice(None, None, f"stays fp32: {e}")
    fp32 = OnnxGenerator(generator, threads, downscale=downscale)
    int8 = OnnxGenerator(generator, threads, model, downscale)
    result = gate(held, [fp32(x[None])[0] for x in held], [int8(x[None])[0] for x in held], style)
    if result.ok:
        return Int8Choice(model, result, f"int8: {result.text()}")
    return Int8Choice(None, result, f"stays fp32, int8 moves it too far: {result.text()}")
