"""The config of training one style: model, loss, data sizes and Algorithm 1's schedule.

Defaults are the paper's numbers (Jiang & Fu 2017, §3.1 "Training details" and §3.3):
batch 4, Adam with learning rate 1e-3, style image 256 px, global inputs 72 px with 288 px
content targets, 128 px shop-photo patches at stride 16, T = 1, tau(1) = tau(2) = 3000, and
40,000 iterations for the global-only (FeedS-like) baseline.

Every dataclass is frozen and validates itself in ``__post_init__``. The config crosses
process boundaries as ``dataclasses.asdict(cfg)`` and is stored in every checkpoint.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import ClassVar, Literal

from fsg_ray.config.errors import require

#: VGG-19 layer names the loss taps may use (torchvision layout, see ``models.VGG19_CFG``).
VGG_TAPS: tuple[str, ...] = (
    "relu1_1", "relu1_2", "relu2_1", "relu2_2",
    "relu3_1", "relu3_2", "relu3_3", "relu3_4",
    "relu4_1", "relu4_2", "relu4_3", "relu4_4",
    "relu5_1", "relu5_2", "relu5_3", "relu5_4",
)  # fmt: skip

Mode = Literal["full", "global_only", "patch_only"]
_VGG_WEIGHTS = re.compile(r"^(imagenet|random:\d+|(s3|file)://.+|/.+|\./.+|[^:]+\.(pt|pth))$")


def check_vgg_weights(key: str, spec: str) -> None:
    """``spec`` is ``imagenet``, ``random:<seed>`` or a state dict's path or URI."""
    require(
        isinstance(spec, str) and bool(_VGG_WEIGHTS.match(spec)),
        key,
        f"{spec!r} is not 'imagenet', 'random:<seed>' or a state dict's path/URI",
    )


def check_layers(key: str, layers: tuple[str, ...], allow_empty: bool = False) -> None:
    """Every name in ``layers`` is a VGG tap of :data:`VGG_TAPS`."""
    require(allow_empty or len(layers) > 0, key, "needs at least one VGG layer")
    for name in layers:
        require(name in VGG_TAPS, key, f"unknown VGG layer {name!r}; choose from {VGG_TAPS}")


@dataclass(frozen=True)
class LossConfig:
    """Loss layers, Gram flavour, normalisation and the lambdas of Eq. 1.

    The defaults are the paper's: style Gram at relu2_2 (Eq. 3), content at relu5_1 (Eq. 2).
    Those layers assume ImageNet VGG weights; :meth:`random_vgg` is the profile measured to
    work with random weights (see docs/paper_map.md, "Deviations").

    Attributes:
        style_layers: phi_k taps for the global style loss (Eq. 3).
        content_layers: phi_j taps for the global content loss (Eq. 2).
        patch_content_layer: tap of the patch content net varphi_c (Eq. 4).
        disc_layer: VGG tap the Markovian discriminator varphi_s reads (MGAN uses relu3_1).
        gram: ``plain`` Gram (Eq. 3) or ``centered`` (covariance: features minus their mean).
        mean_weight: weight of a channel-mean matching term added to each style layer; 0 in
            the paper.
        normalize: ``paper`` divides as Eq. 2-4 do (by C*H*W, N); ``relative`` divides each
            term by the squared norm of its target, so terms are scale free.
        content_luminance: compare content (Eq. 2, 4) on luminance images, so the content
            terms keep shape and shading but leave colour to the style; False in the paper.
        content_luma_match: with ``content_luminance``, what of y_hat's luma is matched to
            its target's per image before phi_c, so that the content terms leave it to the
            style: ``none`` (the paper), ``mean`` (the overall brightness: the design's edges
            and shading are kept at their contrast) or ``mean_std`` (brightness and
            contrast, the invariance of the structure metric).
        style_weight: lambda_2 (global style).
        content_weight: lambda_3 (global content).
        patch_content_weight: lambda_1 (patch content).
        patch_style_weight: weight of l_style^(1) (1 in Eq. 1).
        adversarial_weight: weight of the generator's GAN term during GAN initialisation.
        patch_swd_weight: weight of a non-adversarial patch style term added to L^(1): the
            sliced Wasserstein distance between the neural patches (feature vectors) of
            G(x) and of y_s at ``patch_swd_layers`` (Heitz et al. 2021). 0 in the paper,
            whose patch style is Eq. 5 alone; see docs/paper_map.md, "Deviations".
        patch_swd_layers: VGG taps of that term.
        gan_swd_weight: weight of the same SWD term in the GAN initialisation's generator
            step (Algorithm 1 line 2); 0 in the paper. It anchors D_e to the style's patch
            statistics while varphi_s is still too weak to be a reliable guide.
        swd_projections: random unit directions per layer and step of that term.
        colour_weight: weight of a colour-distribution term added to the global style loss
            (Eq. 3): the sliced Wasserstein distance between the RGB colours of y_hat's
            pixels and y_s's (the sliced form of Risser et al. 2017's histogram loss). 0 in
            the paper, whose Gram at relu2_2 carries colour with ImageNet features; random
            features carry it poorly (docs/experiments.md).
        patch_colour_weight: weight of the same colour term in the patch loss L^(1), on
            G(x) of the shop-photo patches; 0 in the paper.
        colour_space: what the colour term compares: ``rgb`` (the whole colour), or
            ``chroma`` (only the pixels' components across the grey axis R = G = B, so a
            brightness histogram is left to the content and style terms: the design's
            shading and edges are mostly brightness, a palette mostly chroma).
    """

    style_layers: tuple[str, ...] = ("relu2_2",)
    content_layers: tuple[str, ...] = ("relu5_1",)
    patch_content_layer: str = "relu4_1"
    disc_layer: str = "relu3_1"
    gram: Literal["plain", "centered"] = "plain"
    mean_weight: float = 0.0
    normalize: Literal["paper", "relative"] = "paper"
    content_luminance: bool = False
    content_luma_match: Literal["none", "mean", "mean_std"] = "none"
    style_weight: float = 5.0
    content_weight: float = 1.0
    patch_content_weight: float = 1.0
    patch_style_weight: float = 1.0
    adversarial_weight: float = 1.0
    patch_swd_weight: float = 0.0
    gan_swd_weight: float = 0.0
    patch_swd_layers: tuple[str, ...] = ("relu1_1", "relu2_1", "relu3_1")
    swd_projections: int = 64
    colour_weight: float = 0.0
    patch_colour_weight: float = 0.0
    colour_space: Literal["rgb", "chroma"] = "rgb"

    def __post_init__(self) -> None:
        check_layers("loss.style_layers", self.style_layers)
        check_layers("loss.patch_swd_layers", self.patch_swd_layers)
        require(self.swd_projections >= 1, "loss.swd_projections", "must be >= 1")
        check_layers("loss.content_layers", self.content_layers)
        check_layers("loss.patch_content_layer", (self.patch_content_layer,))
        check_layers("loss.disc_layer", (self.disc_layer,))
        require(self.gram in ("plain", "centered"), "loss.gram", "must be plain or centered")
        require(
            self.normalize in ("paper", "relative"), "loss.normalize", "must be paper or relative"
        )
        require(
            self.colour_space in ("rgb", "chroma"), "loss.colour_space", "must be rgb or chroma"
        )
        require(
            self.content_luma_match in ("none", "mean", "mean_std"),
            "loss.content_luma_match",
            "must be none, mean or mean_std",
        )
        require(
            self.content_luminance or self.content_luma_match == "none",
            "loss.content_luma_match",
            "needs loss.content_luminance: true",
        )
        for name in (
            "mean_weight",
            "style_weight",
            "content_weight",
            "patch_content_weight",
            "patch_style_weight",
            "adversarial_weight",
            "patch_swd_weight",
            "gan_swd_weight",
            "colour_weight",
            "patch_colour_weight",
        ):
            require(getattr(self, name) >= 0, f"loss.{name}", "must be >= 0")

    @classmethod
    def random_vgg(cls) -> LossConfig:
        """The profile for ``random:<seed>`` VGG weights (measured in notes/random-vgg.md)."""
        return cls(
            style_layers=("relu1_1", "relu2_1", "relu3_1", "relu4_1"),
            content_layers=("relu3_1",),
            patch_content_layer="relu3_1",
            disc_layer="relu3_1",
            gram="centered",
            mean_weight=1.0,
            normalize="relative",
            content_luminance=True,
            style_weight=1.0,
            content_weight=1.0,
            patch_content_weight=1.0,
        )

    @property
    def uses_swd(self) -> bool:
        """Whether any step reads the patch SWD term (so y_s's patch targets are needed)."""
        return self.patch_swd_weight > 0 or self.gan_swd_weight > 0

    def loss_layers(self) -> tuple[str, ...]:
        """Every VGG tap any loss or the discriminator reads."""
        taps = {*self.style_layers, *self.content_layers, self.patch_content_layer, self.disc_layer}
        if self.uses_swd:
            taps |= set(self.patch_swd_layers)
        return tuple(t for t in VGG_TAPS if t in taps)


@dataclass(frozen=True)
class ModelConfig:
    """Generator and discriminator architecture (paper §2.2, "Network details").

    Attributes:
        vgg_weights: ``imagenet`` (torchvision's official VGG-19), ``random:<seed>``
            (deterministic; offline tests and the demo), or a path/URI of a state dict in
            torchvision's VGG-19 layout.
        decoder_channels: widths of the decoder's four stages, from 1/8 resolution up to full.
        decoder_norm: D_e's normalisation: ``batch`` (the paper's BN) or ``instance``
            (per-image statistics, Ulyanov et al. 2016), which does not depend on what else
            is in the batch; see docs/paper_map.md.
        disc_channels: widths of the patch discriminator's hidden convolutions.
        leaky_slope: negative slope of every LeakyReLU (DCGAN's 0.2).
        output: what D_e's last convolution predicts: ``image`` (the paper: the image,
            through a sigmoid) or ``residual`` (a change to the input, added in logit space:
            G(x) = sigmoid(logit(x) + D_e(E_n(x))), last convolution zero-initialised so G
            starts as the identity). The residual carries the input's full-resolution
            detail (seams, buttons, print edges) past the 1/8-resolution relu4_1 code, which
            D_e would otherwise have to re-draw; see docs/paper_map.md, "Deviations".
        decoder_noise: channels of Gaussian noise stacked onto D_e's input code (0 in the
            paper): a plain garment's constant code gives D_e no place to put a motif; noise
            does (fresh per training step, a fixed saved tile at inference).
    """

    vgg_weights: str = "imagenet"
    decoder_channels: tuple[int, ...] = (256, 128, 64, 32)
    decoder_norm: Literal["batch", "instance"] = "batch"
    disc_channels: tuple[int, ...] = (128, 64)
    leaky_slope: float = 0.2
    output: Literal["image", "residual"] = "image"
    decoder_noise: int = 0

    def __post_init__(self) -> None:
        check_vgg_weights("model.vgg_weights", self.vgg_weights)
        require(self.output in ("image", "residual"), "model.output", "must be image or residual")
        require(
            self.decoder_norm in ("batch", "instance"),
            "model.decoder_norm",
            "must be batch or instance",
        )
        require(len(self.decoder_channels) == 4, "model.decoder_channels", "needs 4 widths")
        require(len(self.disc_channels) >= 1, "model.disc_channels", "needs at least 1 width")
        for key, widths in (
            ("decoder_channels", self.decoder_channels),
            ("disc_channels", self.disc_channels),
        ):
            require(all(w > 0 for w in widths), f"model.{key}", "widths must be > 0")
        require(0 <= self.leaky_slope < 1, "model.leaky_slope", "must be in [0, 1)")
        require(self.decoder_noise >= 0, "model.decoder_noise", "must be >= 0")


@dataclass(frozen=True)
class DataConfig:
    """Image sizes of the two training sets and the style image (paper §3.1).

    Attributes:
        global_input_size: side of the low-resolution full-image input x in X^(2).
        global_target_size: side of y_c, the high-resolution version of x (Eq. 2).
        patch_size: side of a shop-photo patch in X^(1).
        patch_stride: stride between neighbouring patches.
        style_size: side of the style image y_s.
        patch_mask_fraction: a patch is kept only if at least this fraction of it lies inside
            the garment mask (0 keeps every patch; applies when masks are given).
    """

    global_input_size: int = 72
    global_target_size: int = 288
    patch_size: int = 128
    patch_stride: int = 16
    style_size: int = 256
    patch_mask_fraction: float = 0.0

    def __post_init__(self) -> None:
        for name in (
            "global_input_size",
            "global_target_size",
            "patch_size",
            "patch_stride",
            "style_size",
        ):
            require(getattr(self, name) >= 8, f"data.{name}", "must be >= 8")
        require(
            self.global_target_size >= self.global_input_size,
            "data.global_target_size",
            "must be >= data.global_input_size (y_c is the higher-resolution version of x)",
        )
        require(
            self.style_size >= self.patch_size,
            "data.style_size",
            "must be >= data.patch_size (real patches are crops of the style image)",
        )
        require(0 <= self.patch_mask_fraction <= 1, "data.patch_mask_fraction", "must be in [0, 1]")


@dataclass(frozen=True)
class ScheduleConfig:
    """Algorithm 1's schedule and optimisers.

    Attributes:
        mode: ``full`` (Algorithm 1), ``global_only`` (FeedS-like baseline) or ``patch_only``
            (MGAN-like baseline: GAN initialisation, then patch steps).
        gan_init_steps: iterations of GAN initialisation (Algorithm 1 line 2).
        alternations: T.
        global_steps: tau^(2), global steps per alternation (lines 5-8).
        patch_steps: tau^(1), patch steps per alternation (lines 10-13).
        global_only_steps: iterations of the ``global_only`` mode (paper: 40,000).
        batch_size: images (or patches) per step.
        lr_gan: Adam learning rate of D_e and varphi_s during GAN initialisation.
        lr_global: eta^(2), learning rate of the global phase (Eq. 8).
        lr_patch: eta^(1), learning rate of the patch phase (Eq. 9).
        checkpoint_every: save the resume state every this many steps (0: only at the end).
        sample_every: render held-out samples every this many steps (0: only at the end).
        bn_recalibration_batches: after the last phase, D_e's BatchNorm running statistics
            are recomputed (a cumulative average) over this many batches of whole sharp
            images y_c of X^(2), the kind of input G sees at inference; 0 keeps the
            statistics of the last phase's batches (the paper). See docs/paper_map.md.
        report_every: report the mean losses of this many steps to Ray Train at a time.
            Each report waits for the Ray Train controller to take the previous one (it
            polls every 2 s; measured: 1.9 s per report when reporting every step), and all
            workers of a style must report together, so the cadence is in steps.
        seed: seeds every random choice of a run (weights of D_e and varphi_s, data order).
    """

    mode: Mode = "full"
    gan_init_steps: int = 3000
    alternations: int = 1
    global_steps: int = 3000
    patch_steps: int = 3000
    global_only_steps: int = 40000
    batch_size: int = 4
    lr_gan: float = 1e-3
    lr_global: float = 1e-3
    lr_patch: float = 1e-3
    checkpoint_every: int = 500
    sample_every: int = 500
    report_every: int = 50
    bn_recalibration_batches: int = 0
    seed: int = 0

    def __post_init__(self) -> None:
        require(
            self.mode in ("full", "global_only", "patch_only"),
            "schedule.mode",
            f"{self.mode!r} is not one of full, global_only, patch_only",
        )
        for name in (
            "gan_init_steps",
            "alternations",
            "global_steps",
            "patch_steps",
            "global_only_steps",
            "checkpoint_every",
            "sample_every",
            "bn_recalibration_batches",
            "seed",
        ):
            require(getattr(self, name) >= 0, f"schedule.{name}", "must be >= 0")
        require(self.batch_size >= 1, "schedule.batch_size", "must be >= 1")
        require(self.report_every >= 1, "schedule.report_every", "must be >= 1")
        for name in ("lr_gan", "lr_global", "lr_patch"):
            require(0 < getattr(self, name) < 1, f"schedule.{name}", "must be in (0, 1)")


@dataclass(frozen=True)
class TrainConfig:
    """Everything needed to train one style's generator.

    Its checks name keys from itself (``schedule.batch_size``): ``SELF_ROOTED`` tells the
    loader to put a parent's path in front (``styles[2].overrides.schedule.batch_size``).
    """

    SELF_ROOTED: ClassVar[bool] = True

    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    data: DataConfig = field(default_factory=DataConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
