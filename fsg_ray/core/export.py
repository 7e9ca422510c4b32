"""A generator G = D_e o E_n as one self-contained file that runs without fsg-ray: ONNX (for
ONNX Runtime and other ONNX consumers) or TorchScript (for ``torch.jit.load``). Pure PyTorch.

**The contract** of an exported file, the same as :func:`fsg_ray.core.inference.run_styles`:
input ``image`` (B, H, W, 3) uint8 RGB, any B, H, W (dynamic axes); output ``styled``
(B, H, W, 3) uint8 RGB, the same size. Inside: scale to [0, 1], ImageNet normalisation (the
encoder's), reflect padding to multiples of E_n's stride 8 (replicate where a side is too
small to reflect, as :func:`fsg_ray.core.models.pad_to_stride`), E_n, D_e, crop back, round to
uint8. A file exported with ``downscale`` k > 1 pads to multiples of 8k, runs E_n and D_e on
the photo shrunk k times and lays their change over the full-size photo (same contract). So
a consumer feeds ``np.asarray(PIL.Image.open(path).convert("RGB"))[None]`` and gets the
restyled photo back, with nothing to normalise by hand.

The ONNX file comes from the TorchScript-based exporter (``dynamo=False``). Why: the
torch.export-based one needs ``onnxscript`` and turns the stride padding's size arithmetic
into shape guards, while the traced graph keeps it as ONNX shape ops, exact for any H x W.
"""

# No `from __future__ import annotations`: torch.jit.script reads these annotations as types.
import io
import tempfile
import warnings
from pathlib import Path

import torch
from torch import Tensor, nn

from fsg_ray.core.models import ENCODER_STRIDE, RESIDUAL_EPS, Generator, shrink, upscale_change

#: Export formats and their file suffix.
FORMATS = {"onnx": ".onnx", "torchscript": ".pt"}
#: ONNX opset of exported files (ONNX Runtime >= 1.13 runs it).
OPSET = 17
#: Names of the graph's input and output.
INPUT, OUTPUT = "image", "styled"


def _reflectable(pad_h: int, h: int, pad_w: int, w: int) -> Tensor:
    """Whether both sides can be reflect-padded (as a bool tensor, for ``torch.where``).

    While ``torch.onnx.export`` traces, sizes are tensors and so is the result (a graph op that
    follows H and W); in eager and TorchScript they are ints and a constant tensor is made.
    """
    ok = (pad_h < h) & (pad_w < w)
    return ok if isinstance(ok, Tensor) else torch.tensor(ok)


def _pad_index(n: int, padded: int, reflect: Tensor) -> Tensor:
    """Indices that pad a side of length ``n`` to ``padded`` at its end: reflect (n-2, n-3, ...)
    or replicate (n-1, n-1, ...). A gather instead of ``F.pad``: its pad widths stay dynamic."""
    i = torch.arange(padded)
    mirrored = torch.where(i < n, i, 2 * (n - 1) - i)
    return torch.where(reflect, mirrored, torch.clamp(i, max=n - 1))


class ImageGenerator(nn.Module):
    """G on uint8 images: (B, H, W, 3) uint8 -> (B, H, W, 3) uint8, any H x W.

    Holds the generator's own modules (E_n's VGG layers, D_e) and the encoder's normalisation,
    so a traced or scripted copy needs nothing else.

    Args:
        generator: A published generator (eval mode); only read.
        downscale: Run G on the photo shrunk by this factor and lay its change over the
            full-resolution photo (:func:`fsg_ray.core.models.upscale_change`); 1: full size.
    """

    mean: Tensor
    std: Tensor

    def __init__(self, generator: Generator, downscale: int = 1) -> None:
        super().__init__()
        self.features = generator.encoder.features  # VGG-19 up to relu4_1: E_n
        self.decoder = generator.decoder  # D_e (with its output: image or residual)
        self.register_buffer("mean", generator.encoder.mean.clone())
        self.register_buffer("std", generator.encoder.std.clone())
        # attributes: TorchScript reads no module globals
        self.stride, self.downscale, self.eps = ENCODER_STRIDE * downscale, downscale, RESIDUAL_EPS
        self.eval()

    def forward(self, image: Tensor) -> Tensor:
        x = image.permute(0, 3, 1, 2).float() / 255  # (B, 3, H, W) in [0, 1]
        h, w = x.shape[2], x.shape[3]
        s = self.stride
        hp, wp = (h + s - 1) // s * s, (w + s - 1) // s * s
        reflect = _reflectable(hp - h, h, wp - w, w)
        x = x.index_select(2, _pad_index(h, hp, reflect)).index_select(
            3, _pad_index(w, wp, reflect)
        )
        x_low = shrink(x, self.downscale)
        y = self.decoder(self.features((x_low - self.mean) / self.std), x_low)
        y = upscale_change(x, x_low, y, self.downscale, self.eps)[:, :, :h, :w]
        return y.clamp(0, 1).mul(255).round().to(torch.uint8).permute(0, 2, 3, 1)  # (B, H, W, 3)


def export_bytes(generator: Generator, fmt: str, downscale: int = 1) -> bytes:
    """The generator as an ONNX or TorchScript file's bytes (see the module's contract), run
    at 1/``downscale`` of the photo's size inside (:class:`ImageGenerator`).

    Raises:
        ValueError: ``fmt`` is not one of :data:`FORMATS`.
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r}; choose from {', '.join(FORMATS)}")
    if not (isinstance(downscale, int) and downscale >= 1):
        raise ValueError(f"downscale must be an integer >= 1, got {downscale!r}")
    model = ImageGenerator(generator, downscale).cpu()
    buf = io.BytesIO()
    with warnings.catch_warnings():
        # Both exporters are deprecated upstream in favour of torch.export (see the module
        # docstring for why they are used here); the files they write are plain ONNX/TorchScript.
        warnings.simplefilter("ignore", category=DeprecationWarning)
        warnings.simplefilter("ignore", category=FutureWarning)
        warnings.filterwarnings("ignore", message="Constant folding")
        if fmt == "onnx":
            return _export_onnx(model)
        torch.jit.save(torch.jit.script(model), buf)
    return buf.getvalue()


def _export_onnx(model: ImageGenerator) -> bytes:
    """Traces ``model`` on a small example into ONNX with dynamic batch, height and width."""
    example = torch.zeros(2, 2 * model.stride, 3 * model.stride, 3, dtype=torch.uint8)
    axes = {0: "batch", 1: "height", 2: "width"}
    with tempfile.TemporaryDirectory() as tmp:  # the exporter's typed API takes a path
        path = Path(tmp) / "generator.onnx"
        torch.onnx.export(
            model,
            (example,),
            path,
            dynamo=False,
            input_names=[INPUT],
            output_names=[OUTPUT],
            dynamic_axes={INPUT: axes, OUTPUT: axes},
            opset_version=OPSET,
        )
        return path.read_bytes()
