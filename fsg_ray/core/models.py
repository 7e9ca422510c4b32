"""Networks of the Fashion Style Generator (paper §2.2 and §3.1 "Network details").

Code (paper):
    VGG19 features      phi (global loss net), varphi_c (patch content net), E_n's weights
    Encoder             E_n = VGG-19 up to relu4_1, frozen
    Decoder             D_e: BN + LeakyReLU, nearest upsample + conv (no checkerboard)
    Generator           G = D_e o E_n, f_theta(x); theta = D_e's parameters
    PatchDiscriminator  varphi_s: Markovian discriminator over VGG feature patches (MGAN)

The VGG layers are built in torchvision's ``features`` layout (same indices), so
torchvision's ImageNet VGG-19 state dict loads unchanged.
"""

from __future__ import annotations

import hashlib
import io
import pickle
import re
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fsg_ray.config import VGG_TAPS, ModelConfig

#: VGG-19 ("configuration E" of Simonyan & Zisserman): conv widths, "M" = 2x2 max-pool.
VGG19_CFG: tuple[int | str, ...] = (
    64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M",
    512, 512, 512, 512, "M", 512, 512, 512, 512, "M",
)  # fmt: skip
#: ImageNet statistics torchvision's VGG weights expect.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
ENCODER_TAP = "relu4_1"
#: Total down-sampling of the encoder (three max-pools before relu4_1).
ENCODER_STRIDE = 8


def vgg_layer_names() -> list[str]:
    """Paper names of torchvision's ``vgg19().features`` modules, by index."""
    names, block, conv = [], 1, 1
    for v in VGG19_CFG:
        if v == "M":
            names.append(f"pool{block}")
            block, conv = block + 1, 1
        else:
            names += [f"conv{block}_{conv}", f"relu{block}_{conv}"]
            conv += 1
    return names


def build_vgg_features(upto: str) -> nn.Sequential:
    """VGG-19 ``features`` up to and including the layer ``upto`` (torchvision indices)."""
    names = vgg_layer_names()
    if upto not in names:
        raise ValueError(f"unknown VGG-19 layer {upto!r}; choose from {VGG_TAPS}")
    layers: list[nn.Module] = []
    in_ch = 3
    for v in VGG19_CFG:
        if v == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        else:
            layers += [nn.Conv2d(in_ch, int(v), kernel_size=3, padding=1), nn.ReLU(inplace=False)]
            in_ch = int(v)
    return nn.Sequential(*layers[: names.index(upto) + 1])


def random_vgg_state(seed: int) -> dict[str, Tensor]:
    """Deterministic VGG-19 ``features`` weights with torchvision's own init (Kaiming, fan_out).

    Built on the CPU with a private generator, so every machine gets the same tensors.
    """
    gen = torch.Generator().manual_seed(seed)
    features = build_vgg_features("relu5_4")
    state = {}
    for idx, module in enumerate(features):
        if isinstance(module, nn.Conv2d):
            w = torch.empty_like(module.weight)
            nn.init.kaiming_normal_(w, mode="fan_out", nonlinearity="relu", generator=gen)
            state[f"features.{idx}.weight"] = w
            state[f"features.{idx}.bias"] = torch.zeros(module.out_channels)
    return state


#: Reads the bytes of a path or URI (e.g. :meth:`fsg_ray.io.storage.Storage.read_bytes`).
ReadBytes = Callable[[str], bytes]


def load_vgg_state(spec: str, read_bytes: ReadBytes | None = None) -> dict[str, Tensor]:
    """VGG-19 ``features.*`` weights for a ``vgg_weights`` spec.

    Args:
        spec: ``imagenet`` (torchvision's IMAGENET1K_V1, downloaded once into the torch hub
            cache), ``random:<seed>``, or a path/URI of a state dict (torchvision layout, with
            or without the ``features.`` prefix; classifier keys are ignored).
        read_bytes: Reads a path/URI spec. The core knows no storage: callers with paths or
            URIs use :func:`fsg_ray.io.weights.load_vgg`, which passes its storage's reader.

    Raises:
        ValueError: the spec or the state dict is not usable, naming what is wrong.
    """
    if spec == "imagenet":
        from torchvision.models import VGG19_Weights

        state = VGG19_Weights.IMAGENET1K_V1.get_state_dict(progress=True)
    elif m := re.fullmatch(r"random:(\d+)", spec):
        return random_vgg_state(int(m.group(1)))
    elif read_bytes is None:
        raise ValueError(
            f"vgg_weights {spec!r}: a path or URI needs a reader (io.weights.load_vgg)"
        )
    else:
        try:
            data = read_bytes(spec)
        except OSError as e:
            raise ValueError(f"vgg_weights {spec!r}: cannot read a state dict: {e}") from e
        state = vgg_state_from_bytes(data, spec)
    return _features_only(state, spec)


def vgg_state_from_bytes(data: bytes, spec: str) -> dict[str, Tensor]:
    """A state dict from ``torch.save`` bytes (tensors only: ``weights_only=True``)."""
    try:
        return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, pickle.UnpicklingError) as e:
        raise ValueError(f"vgg_weights {spec!r}: cannot read a state dict: {e}") from e


def _features_only(state: dict[str, Tensor], spec: str) -> dict[str, Tensor]:
    out = {}
    for key, value in state.items():
        key = key if key.startswith("features.") else f"features.{key}"
        if re.fullmatch(r"features\.\d+\.(weight|bias)", key):
            out[key] = value
    expected = {f"features.{k}" for k in build_vgg_features("relu5_4").state_dict()}
    missing = sorted(expected - set(out))
    if missing:
        raise ValueError(f"vgg_weights {spec!r}: not a VGG-19 state dict (missing {missing[:3]}…)")
    return out


@dataclass(frozen=True)
class VGGWeights:
    """VGG-19 weights with their source and identity; what E_n, phi and varphi_c load."""

    spec: str
    state: dict[str, Tensor]
    fingerprint: str


def load_vgg(spec: str, read_bytes: ReadBytes | None = None) -> VGGWeights:
    """Loads the VGG-19 weights named by a ``vgg_weights`` spec (see :func:`load_vgg_state`)."""
    state = load_vgg_state(spec, read_bytes)
    return VGGWeights(spec, state, fingerprint(state))


def fingerprint(state: dict[str, Tensor]) -> str:
    """Short SHA-256 of a state dict's keys and values: identifies an encoder's weights."""
    h = hashlib.sha256()
    for key in sorted(state):
        h.update(key.encode())
        h.update(state[key].detach().cpu().contiguous().float().numpy().tobytes())
    return h.hexdigest()[:16]


class VGG19Features(nn.Module):
    """Frozen VGG-19 returning named activations: the loss nets phi and varphi_c.

    Takes images in [0, 1] and applies ImageNet normalisation itself.
    """

    mean: Tensor
    std: Tensor

    def __init__(self, state: dict[str, Tensor], upto: str) -> None:
        super().__init__()
        self.names = vgg_layer_names()[: vgg_layer_names().index(upto) + 1]
        self.features = build_vgg_features(upto)
        own = self.features.state_dict()
        self.features.load_state_dict({k: state[f"features.{k}"] for k in own})
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> VGG19Features:
        """Always stays in eval mode: the loss network is frozen."""
        return super().train(False)

    def forward(self, x: Tensor, taps: tuple[str, ...]) -> dict[str, Tensor]:
        """Activations of ``taps`` for images ``x`` of shape (B, 3, H, W) in [0, 1]."""
        last = max(self.names.index(t) for t in taps)
        h = (x - self.mean) / self.std
        out = {}
        for name, layer in zip(self.names[: last + 1], self.features, strict=False):
            h = layer(h)
            if name in taps:
                out[name] = h
        return out


def _conv_block(c_in: int, c_out: int, slope: float, norm: str = "batch") -> list[nn.Module]:
    """3x3 conv + normalisation (``batch``, ``instance`` or ``none``) + LeakyReLU."""
    layers: list[nn.Module] = [
        nn.Conv2d(c_in, c_out, 3, padding=1, padding_mode="replicate", bias=norm == "none")
    ]
    if norm == "batch":
        layers.append(nn.BatchNorm2d(c_out))
    elif norm == "instance":
        layers.append(nn.InstanceNorm2d(c_out, affine=True))
    layers.append(nn.LeakyReLU(slope))
    return layers


#: Inputs are clamped to [eps, 1 - eps] before logit(x) in the residual output, so pure
#: black or white pixels stay reachable (logit(0.01) = -4.6) with finite gradients.
RESIDUAL_EPS = 0.01
#: Side of the fixed noise tile D_e reads in eval mode (``ModelConfig.decoder_noise``), in
#: code pixels: 128 covers a 1024 px photo before it repeats.
NOISE_TILE = 128
#: Seed of that tile (the tile is saved with D_e's weights; the seed only makes new ones equal).
NOISE_SEED = 1234


class Decoder(nn.Module):
    """D_e: relu4_1 features (512 channels, 1/8 resolution) -> image in [0, 1].

    One conv + BN + LeakyReLU per encoder stage, mirrored, with nearest upsampling before
    each conv of a finer stage (Odena et al., "Deconvolution and checkerboard artifacts").
    Lean on purpose: with one conv per stage D_e costs ~30 % of E_n at any size.

    With ``residual`` the last conv predicts a change to the input image in logit space
    (``ModelConfig.output``); it starts at zero, so G starts as the identity.

    With ``noise`` > 0, that many channels of Gaussian noise are stacked onto the code
    (``ModelConfig.decoder_noise``, Ulyanov et al.'s texture networks): a convolutional D_e
    maps a plain region's constant code to a constant change, so without a varying input
    it has nowhere to place a motif. Training draws fresh noise every step; eval mode reads
    a fixed tile (saved with the weights), so inference is deterministic and the same in
    TorchScript and ONNX.
    """

    def __init__(
        self,
        channels: tuple[int, ...] = (256, 128, 64, 32),
        slope: float = 0.2,
        norm: str = "batch",
        residual: bool = False,
        noise: int = 0,
    ) -> None:
        super().__init__()
        layers = _conv_block(512 + noise, channels[0], slope, norm)
        for c_in, c_out in zip(channels[:-1], channels[1:], strict=True):
            layers += [
                nn.Upsample(scale_factor=2, mode="nearest"),
                *_conv_block(c_in, c_out, slope, norm),
            ]
        last = nn.Conv2d(channels[-1], 3, 3, padding=1, padding_mode="replicate")
        if residual:
            assert last.bias is not None  # Conv2d's default bias=True
            nn.init.zeros_(last.weight)
            nn.init.zeros_(last.bias)
        # The output's sigmoid sits outside ``net``: it has no parameters, so decoder state
        # dicts are the same for both outputs and for checkpoints written before either.
        self.net = nn.Sequential(*layers, last)
        self.residual = residual
        self.eps = RESIDUAL_EPS  # an attribute: TorchScript reads no module globals
        self.noise_channels = noise
        tile = torch.randn(
            1, noise, NOISE_TILE, NOISE_TILE, generator=torch.Generator().manual_seed(NOISE_SEED)
        )
        # Not in the state dict without noise: checkpoints written before the option load.
        self.register_buffer("noise", tile, persistent=noise > 0)

    def with_noise(self, z: Tensor) -> Tensor:
        """``z`` with the noise channels stacked on (unchanged without them)."""
        if self.noise_channels == 0:
            return z
        b, _, h, w = z.shape
        if self.training:
            n = torch.randn(b, self.noise_channels, h, w, device=z.device, dtype=z.dtype)
        else:
            # Indices modulo the tile, not slicing: any size, and dynamic axes in ONNX.
            # (No class-level annotation of the buffer for mypy: TorchScript cannot read it.)
            tile = self.noise
            rows = torch.arange(h, device=z.device) % tile.shape[2]  # type: ignore[index]
            cols = torch.arange(w, device=z.device) % tile.shape[3]  # type: ignore[index]
            n = tile.index_select(2, rows).index_select(3, cols).to(z.dtype)  # type: ignore[operator]
            n = n.expand(b, -1, -1, -1)
        return torch.cat([z, n], dim=1)

    def forward(self, z: Tensor, x: Tensor | None = None) -> Tensor:
        """(B, 512, H/8, W/8) -> (B, 3, H, W); ``x`` (B, 3, H, W) in [0, 1], the encoder's
        input, is required when ``residual``."""
        y = self.net(self.with_noise(z))
        if self.residual:
            if x is None:
                raise ValueError("a residual decoder needs the input image x")
            # In fp32 even under bf16 autocast: the input's detail rides on logit(x), and
            # bf16's 8 bits of mantissa would cost it about a grey level.
            x = x.float().clamp(self.eps, 1 - self.eps)
            y = y.float() + (torch.log(x) - torch.log1p(-x))  # + logit(x)
        return torch.sigmoid(y)


class Generator(nn.Module):
    """G = D_e o E_n, fully convolutional: output size equals input size for any size.

    Inputs whose sides are not multiples of 8 are reflect-padded before encoding and the
    output is cropped back. Only D_e is trained; E_n stays the frozen VGG encoder.
    """

    def __init__(self, vgg_state: dict[str, Tensor], cfg: ModelConfig) -> None:
        super().__init__()
        self.encoder = VGG19Features(vgg_state, ENCODER_TAP)
        self.decoder = Decoder(
            cfg.decoder_channels,
            cfg.leaky_slope,
            cfg.decoder_norm,
            cfg.output == "residual",
            cfg.decoder_noise,
        )

    def encode(self, x: Tensor) -> Tensor:
        """E_n(x): relu4_1 features; x must have sides divisible by 8."""
        return self.encoder(x, (ENCODER_TAP,))[ENCODER_TAP]

    def forward(self, x: Tensor) -> Tensor:
        h, w = x.shape[-2:]
        x = pad_to_stride(x)
        y = self.decoder(self.encode(x), x)
        return y[..., :h, :w]


def pad_to_stride(x: Tensor, stride: int = ENCODER_STRIDE) -> Tensor:
    """Pads (B, 3, H, W) at the bottom and right to multiples of ``stride`` (E_n's 8, or 8 x a
    :func:`shrink` factor): reflect, or replicate where the image is too small to reflect.
    Callers crop the output back."""
    h, w = x.shape[-2:]
    pad_h, pad_w = -h % stride, -w % stride
    if not (pad_h or pad_w):
        return x
    mode = "reflect" if pad_h < h and pad_w < w else "replicate"
    return F.pad(x, (0, pad_w, 0, pad_h), mode=mode)


def shrink(x: Tensor, factor: int) -> Tensor:
    """x shrunk by an integer ``factor`` by area averaging (sides divisible by ``factor``): the
    input G runs on when inference trades the style's texture scale for speed."""
    return x if factor == 1 else F.avg_pool2d(x, factor)


def upscale_change(x: Tensor, x_low: Tensor, y_low: Tensor, factor: int, eps: float) -> Tensor:
    """G's change to a shrunk photo, laid over the full-resolution photo.

    The change is taken in logit space, where a residual decoder predicts it
    (``ModelConfig.output``): d = logit(y_low) - logit(x_low), upsampled bilinearly by
    ``factor``; the output is sigmoid(logit(x) + d). The photo's own detail (seams, buttons,
    print edges) stays at full resolution; only the style's change is drawn ``factor`` times
    coarser. Computed in fp32 (bf16 would cost the photo's detail about a grey level).

    Args:
        x: (B, 3, H, W) the photo in [0, 1], sides divisible by ``factor``.
        x_low: :func:`shrink` (x, factor).
        y_low: G(x_low), (B, 3, H / factor, W / factor) in [0, 1].
        factor: The downscale factor.
        eps: Inputs and outputs are clamped to [eps, 1 - eps] before their logits.
    """
    if factor == 1:
        return y_low
    x, x_low = x.float().clamp(eps, 1 - eps), x_low.float().clamp(eps, 1 - eps)
    # y_low may reach 0 or 1 in float; its own, smaller bound keeps saturated changes large.
    y_low = y_low.float().clamp(1e-6, 1 - 1e-6)
    change = (torch.log(y_low) - torch.log1p(-y_low)) - (torch.log(x_low) - torch.log1p(-x_low))
    change = F.interpolate(change, scale_factor=float(factor), mode="bilinear", align_corners=False)
    return torch.sigmoid(torch.log(x) - torch.log1p(-x) + change)


class PatchDiscriminator(nn.Module):
    """varphi_s: Markovian discriminator scoring every neural patch (Li & Wand's MGAN).

    Reads VGG features at ``disc_layer`` (computed by the caller) and returns one logit per
    spatial position: shape (B, 1, h, w); each logit classifies the neural patch under it.
    First layer without BN, as in DCGAN.
    """

    def __init__(self, in_channels: int, channels: tuple[int, ...], slope: float = 0.2) -> None:
        super().__init__()
        layers = _conv_block(in_channels, channels[0], slope, norm="none")
        for c_in, c_out in zip(channels[:-1], channels[1:], strict=True):
            layers += _conv_block(c_in, c_out, slope)
        layers.append(nn.Conv2d(channels[-1], 1, kernel_size=1))
        self.net = nn.Sequential(*layers)

    def forward(self, features: Tensor) -> Tensor:
        return self.net(features)


def vgg_channels(tap: str) -> int:
    """Channel count of a VGG-19 tap, e.g. 256 for relu3_1."""
    widths = [v for v in VGG19_CFG if v != "M"]
    block, conv = (int(s) for s in tap.removeprefix("relu").split("_"))
    starts = {1: 0, 2: 2, 3: 4, 4: 8, 5: 12}
    return int(widths[starts[block] + conv - 1])
