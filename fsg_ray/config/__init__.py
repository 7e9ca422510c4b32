"""One typed, validated config tree for training a style generator.

Defaults are the paper's numbers (Jiang & Fu 2017, §3.1 "Training details" and §3.3):
batch 4, Adam with learning rate 1e-3, style image 256 px, global inputs 72 px with 288 px
content targets, 128 px shop-photo patches at stride 16, T = 1, tau(1) = tau(2) = 3000, and
40,000 iterations for the global-only (FeedS-like) baseline.

Every dataclass is frozen and validates itself in ``__post_init__``; :func:`from_dict`
rebuilds the tree from plain data (YAML, ``asdict``) and names any unknown key. The config
crosses process boundaries as ``dataclasses.asdict(cfg)`` and is stored in every checkpoint.

:class:`TrainConfig` trains one style. :class:`CatalogueConfig` is the catalogue file
(:func:`load_catalogue`): the data, every style with its per-style overrides, one shared
:class:`TrainConfig`, Ray resources and storage. Error messages name keys by their path from
the root of the tree being loaded, e.g. ``styles[2].overrides.schedule.lr_global``.
:class:`ServeConfig` is the online service (``fsg serve``, ``jobs/serve_config.yaml``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import os
import re
import types
import typing
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar, get_args, get_origin, get_type_hints

import yaml

#: VGG-19 layer names the loss taps may use (torchvision layout, see ``models.VGG19_CFG``).
VGG_TAPS: tuple[str, ...] = (
    "relu1_1", "relu1_2", "relu2_1", "relu2_2",
    "relu3_1", "relu3_2", "relu3_3", "relu3_4",
    "relu4_1", "relu4_2", "relu4_3", "relu4_4",
    "relu5_1", "relu5_2", "relu5_3", "relu5_4",
)  # fmt: skip

Mode = Literal["full", "global_only", "patch_only"]
_VGG_WEIGHTS = re.compile(r"^(imagenet|random:\d+|(s3|file)://.+|/.+|\./.+|[^:]+\.(pt|pth))$")


class ConfigError(ValueError):
    """A config value is missing, unknown or out of range; the message names the key."""


def _require(ok: bool, key: str, message: str) -> None:
    if not ok:
        raise ConfigError(f"{key}: {message}")


def _check_vgg_weights(key: str, spec: str) -> None:
    _require(
        isinstance(spec, str) and bool(_VGG_WEIGHTS.match(spec)),
        key,
        f"{spec!r} is not 'imagenet', 'random:<seed>' or a state dict's path/URI",
    )


def _check_layers(key: str, layers: tuple[str, ...], allow_empty: bool = False) -> None:
    _require(allow_empty or len(layers) > 0, key, "needs at least one VGG layer")
    for name in layers:
        _require(name in VGG_TAPS, key, f"unknown VGG layer {name!r}; choose from {VGG_TAPS}")


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
        style_weight: lambda_2 (global style).
        content_weight: lambda_3 (global content).
        patch_content_weight: lambda_1 (patch content).
        patch_style_weight: weight of l_style^(1) (1 in Eq. 1).
        adversarial_weight: weight of the generator's GAN term during GAN initialisation.
    """

    style_layers: tuple[str, ...] = ("relu2_2",)
    content_layers: tuple[str, ...] = ("relu5_1",)
    patch_content_layer: str = "relu4_1"
    disc_layer: str = "relu3_1"
    gram: Literal["plain", "centered"] = "plain"
    mean_weight: float = 0.0
    normalize: Literal["paper", "relative"] = "paper"
    content_luminance: bool = False
    style_weight: float = 5.0
    content_weight: float = 1.0
    patch_content_weight: float = 1.0
    patch_style_weight: float = 1.0
    adversarial_weight: float = 1.0

    def __post_init__(self) -> None:
        _check_layers("loss.style_layers", self.style_layers)
        _check_layers("loss.content_layers", self.content_layers)
        _check_layers("loss.patch_content_layer", (self.patch_content_layer,))
        _check_layers("loss.disc_layer", (self.disc_layer,))
        _require(self.gram in ("plain", "centered"), "loss.gram", "must be plain or centered")
        _require(
            self.normalize in ("paper", "relative"), "loss.normalize", "must be paper or relative"
        )
        for name in (
            "mean_weight",
            "style_weight",
            "content_weight",
            "patch_content_weight",
            "patch_style_weight",
            "adversarial_weight",
        ):
            _require(getattr(self, name) >= 0, f"loss.{name}", "must be >= 0")

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

    def loss_layers(self) -> tuple[str, ...]:
        """Every VGG tap any loss or the discriminator reads."""
        taps = {*self.style_layers, *self.content_layers, self.patch_content_layer, self.disc_layer}
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
    """

    vgg_weights: str = "imagenet"
    decoder_channels: tuple[int, ...] = (256, 128, 64, 32)
    decoder_norm: Literal["batch", "instance"] = "batch"
    disc_channels: tuple[int, ...] = (128, 64)
    leaky_slope: float = 0.2

    def __post_init__(self) -> None:
        _check_vgg_weights("model.vgg_weights", self.vgg_weights)
        _require(
            self.decoder_norm in ("batch", "instance"),
            "model.decoder_norm",
            "must be batch or instance",
        )
        _require(len(self.decoder_channels) == 4, "model.decoder_channels", "needs 4 widths")
        _require(len(self.disc_channels) >= 1, "model.disc_channels", "needs at least 1 width")
        for key, widths in (
            ("decoder_channels", self.decoder_channels),
            ("disc_channels", self.disc_channels),
        ):
            _require(all(w > 0 for w in widths), f"model.{key}", "widths must be > 0")
        _require(0 <= self.leaky_slope < 1, "model.leaky_slope", "must be in [0, 1)")


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
            _require(getattr(self, name) >= 8, f"data.{name}", "must be >= 8")
        _require(
            self.global_target_size >= self.global_input_size,
            "data.global_target_size",
            "must be >= data.global_input_size (y_c is the higher-resolution version of x)",
        )
        _require(
            self.style_size >= self.patch_size,
            "data.style_size",
            "must be >= data.patch_size (real patches are crops of the style image)",
        )
        _require(
            0 <= self.patch_mask_fraction <= 1, "data.patch_mask_fraction", "must be in [0, 1]"
        )


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
    seed: int = 0

    def __post_init__(self) -> None:
        _require(
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
            "seed",
        ):
            _require(getattr(self, name) >= 0, f"schedule.{name}", "must be >= 0")
        _require(self.batch_size >= 1, "schedule.batch_size", "must be >= 1")
        _require(self.report_every >= 1, "schedule.report_every", "must be >= 1")
        for name in ("lr_gan", "lr_global", "lr_patch"):
            _require(0 < getattr(self, name) < 1, f"schedule.{name}", "must be in (0, 1)")


@dataclass(frozen=True)
class TrainConfig:
    """Everything needed to train one style's generator."""

    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    data: DataConfig = field(default_factory=DataConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)


T = TypeVar("T")


def from_dict(cls: type[T], data: dict[str, Any] | None, prefix: str = "") -> T:
    """Builds a config dataclass from plain data, naming any unknown, missing or mistyped key.

    Args:
        cls: the dataclass to build (e.g. :class:`TrainConfig`).
        data: plain values as loaded from YAML or produced by ``dataclasses.asdict``.
        prefix: dotted path of ``data`` inside the whole tree, for error messages.

    Raises:
        ConfigError: a key is unknown or missing, or a value has the wrong type or is out of
            range.
    """
    data = _known_keys(cls, data, prefix)
    if prefix and cls in _self_rooted():
        # Its checks name keys from itself ("schedule.batch_size"): build it from the root,
        # then put the whole path in front of any error.
        with _prefixed(prefix):
            return from_dict(cls, data)
    hints = get_type_hints(cls)
    missing = [
        f.name
        for f in dataclasses.fields(cls)  # type: ignore[arg-type]
        if f.name not in data
        and f.default is dataclasses.MISSING
        and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise ConfigError(f"{', '.join(prefix + k for k in missing)}: required key is missing")
    kwargs = {k: _coerce(hints[k], v, f"{prefix}{k}") for k, v in data.items()}
    return cls(**kwargs)


def _self_rooted() -> tuple[type, ...]:
    """Dataclasses whose checks name keys relative to themselves, not to a parent."""
    return (TrainConfig, StyleSpec)


@contextlib.contextmanager
def _prefixed(prefix: str) -> Iterator[None]:
    """Re-raises any :class:`ConfigError` of the block with ``prefix`` before its message."""
    try:
        yield
    except ConfigError as err:
        raise ConfigError(f"{prefix}{err}") from None


def _known_keys(cls: type, data: Any, prefix: str) -> dict[str, Any]:
    """Returns ``data`` (None as ``{}``) after checking it is a mapping of ``cls``'s fields."""
    where = prefix.rstrip(".") or cls.__name__
    data = {} if data is None else data
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping, got {type(data).__name__}")
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(str(k) for k in data if k not in names)
    if unknown:
        guess = difflib.get_close_matches(unknown[0], names, n=1)
        hint = f" (did you mean {guess[0]!r}?)" if guess and len(unknown) == 1 else ""
        raise ConfigError(
            f"{', '.join(prefix + k for k in unknown)}: unknown key{hint}; "
            f"known keys in {where} are {sorted(names)}"
        )
    return data


def _coerce(hint: Any, value: Any, key: str) -> Any:
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return from_dict(hint, value, prefix=f"{key}.")
    origin = get_origin(hint)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        (item,) = {a for a in get_args(hint) if a is not Ellipsis}
        return tuple(_coerce(item, v, f"{key}[{i}]") for i, v in enumerate(value))
    if origin is dict:
        if value is not None and not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping, got {value!r}")
        return value
    if origin is Literal:
        if value not in get_args(hint):
            raise ConfigError(f"{key}: {value!r} is not one of {list(get_args(hint))}")
        return value
    if origin in (typing.Union, types.UnionType):
        options = [a for a in get_args(hint) if a is not type(None)]
        if value is None or len(options) != 1:
            return value
        return _coerce(options[0], value, key)
    if hint is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if (
        isinstance(hint, type)
        and not isinstance(value, hint)
        or (hint is int and isinstance(value, bool))
    ):
        raise ConfigError(
            f"{key}: expected {hint.__name__}, got {value!r}{_yaml_float_hint(value)}"
        )
    return value


def _yaml_float_hint(value: Any) -> str:
    """PyYAML (YAML 1.1) reads ``1e-3`` as text; say so when a float arrives as such text."""
    if isinstance(value, str) and re.fullmatch(r"[-+]?\d+e[-+]?\d+", value.strip(), re.I):
        return " (YAML reads exponents without a dot as text: write 1.0e-3, not 1e-3)"
    return ""


def _plain(value: Any) -> Any:
    """Deep copy of plain data with tuples turned into lists (the YAML/JSON form)."""
    if isinstance(value, (list, tuple)):
        return [_plain(x) for x in value]
    if isinstance(value, dict):
        return {k: _plain(x) for k, x in value.items()}
    return value


def to_dict(cfg: Any) -> dict[str, Any]:
    """Plain, YAML/JSON-friendly form of a config (tuples become lists)."""
    return _plain(dataclasses.asdict(cfg))


def replace(cfg: T, **sections: dict[str, Any]) -> T:
    """Copy of a :class:`TrainConfig` with some keys of some sections overridden.

    Example: ``replace(cfg, schedule={"gan_init_steps": 10})``.
    """
    merged = to_dict(cfg)
    for section, values in sections.items():
        if section not in merged:
            raise ConfigError(f"{section}: unknown config section; known are {sorted(merged)}")
        merged[section] = {**merged[section], **values}
    return from_dict(type(cfg), merged)


# --- The catalogue: every style of a collection, trained at once ----------------------------

_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://(.*)", re.DOTALL)
_URI_FORMS = "a local path, file:///abs/path or s3://bucket/key"


def _check_name(key: str, name: str, what: str) -> None:
    _require(
        isinstance(name, str) and _NAME.fullmatch(name) is not None,
        key,
        f"{name!r} is not a valid {what} name: 1-64 characters of a-z, 0-9, '_' and '-', "
        "starting with a letter or digit",
    )


def _check_uri(key: str, uri: str) -> str:
    """Accepts the URI forms of ``storage.parse_uri`` (not imported: config stays light).

    Returns:
        The URI, a relative local path made absolute (against the working directory now):
        Ray workers run in other folders, so a relative path would name another file there.
    """
    _require(isinstance(uri, str) and uri.strip() != "", key, f"needs {_URI_FORMS}")
    match = _SCHEME.fullmatch(uri)
    if match is None:
        return os.path.abspath(uri)
    scheme, rest = match[1].lower(), match[2]
    ok = (scheme == "file" and rest.startswith("/")) or (
        scheme == "s3" and rest.partition("/")[0] != ""
    )
    _require(ok, key, f"{uri!r} is not {_URI_FORMS}")
    return uri


def _check_overrides(overrides: Any) -> dict[str, dict[str, Any]]:
    """Checks that ``overrides`` is shaped like :class:`TrainConfig`'s sections; a plain copy.

    Values are checked later, once applied to the catalogue's train config, because some
    checks compare two keys (e.g. ``data.global_target_size >= data.global_input_size``).
    """
    sections = get_type_hints(TrainConfig)
    checked = _known_keys(TrainConfig, overrides, "overrides.")
    return {
        name: _plain(_known_keys(sections[name], values, f"overrides.{name}."))
        for name, values in checked.items()
    }


@dataclass(frozen=True)
class StyleSpec:
    """One style of the catalogue: its id, its style image y_s and its config overrides.

    Ablations are entries of their own: ``stripes`` (``full``), ``stripes-feeds``
    (``mode: global_only``, ``base_style: stripes``) and ``stripes-mgan`` (``mode:
    patch_only``, ``base_style: stripes``) share one style image, are trained, checkpointed
    and published like any style, and the registry records ``mode`` and ``base_style`` in
    their metadata, so ``fsg eval --style stripes`` finds all three.

    Attributes:
        name: the style's id in run folders, the registry and the serving API.
        image: URI of the style image y_s (a local path, ``file://`` or ``s3://``).
        overrides: keys of :class:`TrainConfig` that differ for this style, nested by section
            like the catalogue's ``train`` (e.g. ``{"loss": {"style_weight": 10.0}}``) and
            applied on top of it by :meth:`CatalogueConfig.style_config`.
        mode: shortcut for ``overrides.schedule.mode`` (``full``, ``global_only``: the
            FeedS-like ablation, ``patch_only``: the MGAN-like one); None keeps the
            catalogue's.
        base_style: the style this entry is a variant of (an ablation of ``stripes`` names
            ``stripes``); None: the entry is its own base.
    """

    name: str
    image: str
    overrides: dict[str, dict[str, Any]] = field(default_factory=dict)
    mode: Mode | None = None
    base_style: str | None = None

    def __post_init__(self) -> None:
        _check_name("name", self.name, "style")
        object.__setattr__(self, "image", _check_uri("image", self.image))
        if self.base_style is not None:
            _check_name("base_style", self.base_style, "style")
        # A private plain copy: the caller's dict cannot change a frozen spec afterwards.
        overrides = _check_overrides(self.overrides)
        if self.mode is not None:
            overrides = _with_mode(overrides, self.mode)
        object.__setattr__(self, "overrides", overrides)

    @property
    def base(self) -> str:
        """The style this entry is a mode of: ``base_style``, or its own name."""
        return self.base_style or self.name


def _with_mode(overrides: dict[str, dict[str, Any]], mode: str) -> dict[str, dict[str, Any]]:
    """``overrides`` with ``schedule.mode`` set to ``mode`` (a :data:`Mode`).

    Raises:
        ConfigError: ``mode`` is not a mode, or ``overrides.schedule.mode`` says another one.
    """
    modes = get_args(Mode)
    _require(mode in modes, "mode", f"{mode!r} is not one of {', '.join(modes)}")
    schedule = overrides.get("schedule", {})
    given = schedule.get("mode", mode)
    _require(given == mode, "mode", f"{mode!r} conflicts with overrides.schedule.mode {given!r}")
    return {**overrides, "schedule": {**schedule, "mode": mode}}


@dataclass(frozen=True)
class DataSources:
    """Where the two training sets live (paper §3.1).

    Attributes:
        full: full-body images X^(2): a prefix in the Fashion144k layout, or a ``.csv`` /
            ``.parquet`` manifest listing image URIs.
        shop: shop photos that X^(1)'s patches are cut from: a prefix or a manifest.
        masks: optional prefix of garment masks for the shop photos (see
            ``data.patch_mask_fraction``).
    """

    full: str
    shop: str
    masks: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "full", _check_uri("data.full", self.full))
        object.__setattr__(self, "shop", _check_uri("data.shop", self.shop))
        if self.masks is not None:
            object.__setattr__(self, "masks", _check_uri("data.masks", self.masks))


@dataclass(frozen=True)
class Resources:
    """What each style's Ray Train run asks the cluster for.

    Attributes:
        cpus_per_worker: CPUs each training worker reserves.
        gpus_per_worker: GPUs each training worker reserves when it trains on GPU (may be a
            fraction, to pack several styles on one GPU).
        workers_per_style: data-parallel training workers of one style.
        max_concurrent_styles: styles training at the same time; 0 trains all at once.
        use_gpu: ``auto`` trains on GPU when the cluster has any, ``always`` requires GPUs,
            ``never`` trains on CPU (see :meth:`worker_gpus`).
    """

    cpus_per_worker: float = 2.0
    gpus_per_worker: float = 1.0
    workers_per_style: int = 1
    max_concurrent_styles: int = 0
    use_gpu: Literal["auto", "always", "never"] = "auto"

    def __post_init__(self) -> None:
        _require(self.cpus_per_worker > 0, "resources.cpus_per_worker", "must be > 0")
        _require(self.gpus_per_worker >= 0, "resources.gpus_per_worker", "must be >= 0")
        _require(self.workers_per_style >= 1, "resources.workers_per_style", "must be >= 1")
        _require(
            self.max_concurrent_styles >= 0,
            "resources.max_concurrent_styles",
            "must be >= 0 (0: all styles at once)",
        )
        _require(
            self.use_gpu in ("auto", "always", "never"),
            "resources.use_gpu",
            f"{self.use_gpu!r} is not one of auto, always, never",
        )
        _require(
            self.use_gpu != "always" or self.gpus_per_worker > 0,
            "resources.gpus_per_worker",
            "must be > 0 when resources.use_gpu is always",
        )

    def worker_gpus(self, cluster_gpus: float) -> float:
        """GPUs each worker reserves on a cluster with ``cluster_gpus`` GPUs (0: CPU training)."""
        if self.use_gpu == "never" or (self.use_gpu == "auto" and cluster_gpus <= 0):
            return 0.0
        return self.gpus_per_worker


@dataclass(frozen=True)
class StorageConfig:
    """Where runs and published generators go, and how to reach S3.

    Attributes:
        runs: URI under which each style's checkpoints, sample grids and metrics are written,
            as ``<runs>/<catalogue name>/<style>/...`` (Ray Train's storage).
        registry: URI of the registry of published generators.
        s3_endpoint: S3 endpoint such as ``http://minio:9000``; None for AWS itself.
        s3_region: S3 region; None lets the AWS chain of each process decide.
    """

    runs: str
    registry: str
    s3_endpoint: str | None = None
    s3_region: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "runs", _check_uri("storage.runs", self.runs))
        object.__setattr__(self, "registry", _check_uri("storage.registry", self.registry))
        _require(
            self.s3_endpoint is None or self.s3_endpoint.startswith(("http://", "https://")),
            "storage.s3_endpoint",
            f"{self.s3_endpoint!r} must start with http:// or https://",
        )
        _require(self.s3_region != "", "storage.s3_region", "must not be empty (omit it)")


@dataclass(frozen=True, kw_only=True)
class CatalogueConfig:
    """A catalogue file: every style of a collection, trained at once by one trainer.

    Attributes:
        name: the catalogue's id (same rules as a style name); names its run folder.
        data: the training sets every style shares.
        styles: the styles, each with its image and overrides; names are unique.
        train: the :class:`TrainConfig` every style starts from (the paper's by default).
        resources: Ray resources of each style's run.
        storage: where runs and published generators go.
        max_failures: restarts of a failed style's run from its last checkpoint (Ray Train's
            ``FailureConfig``; -1 retries forever, 0 never).
        samples: held-out garments rendered in each style's sample grids.
    """

    name: str
    data: DataSources
    styles: tuple[StyleSpec, ...]
    train: TrainConfig = field(default_factory=TrainConfig)
    resources: Resources = field(default_factory=Resources)
    storage: StorageConfig
    max_failures: int = 2
    samples: int = 4

    def __post_init__(self) -> None:
        _check_name("name", self.name, "catalogue")
        _require(len(self.styles) > 0, "styles", "needs at least one style")
        first: dict[str, int] = {}
        for i, style in enumerate(self.styles):
            if style.name in first:
                raise ConfigError(
                    f"styles[{i}].name: duplicate style {style.name!r} "
                    f"(also styles[{first[style.name]}])"
                )
            first[style.name] = i
            with _prefixed(f"styles[{i}].overrides."):
                replace(self.train, **style.overrides)
        self._check_bases()
        _require(self.max_failures >= -1, "max_failures", "must be >= -1 (-1: retry forever)")
        _require(self.samples >= 1, "samples", "must be >= 1")

    def _check_bases(self) -> None:
        """A variant whose base style is in the catalogue must use the base's style image:
        an ablation trained on another image compares nothing."""
        images = {s.name: s.image for s in self.styles}
        for i, style in enumerate(self.styles):
            base_image = images.get(style.base, style.image)
            _require(
                base_image == style.image,
                f"styles[{i}].image",
                f"{style.image!r} differs from the image {base_image!r} of its base style "
                f"{style.base!r}; the modes of one style share its image",
            )

    def style(self, name: str) -> StyleSpec:
        """The style called ``name``.

        Raises:
            ConfigError: the catalogue has no such style.
        """
        for style in self.styles:
            if style.name == name:
                return style
        known = [s.name for s in self.styles]
        raise ConfigError(f"styles: no style {name!r}; the catalogue has {known}")

    def style_config(self, name: str) -> TrainConfig:
        """The train config of style ``name``: the catalogue's, with the style's overrides."""
        return replace(self.train, **self.style(name).overrides)


def catalogue_from_dict(data: dict[str, Any] | None) -> CatalogueConfig:
    """Builds a catalogue from plain data (a parsed YAML file, or :func:`to_dict`'s output).

    Besides :class:`CatalogueConfig`'s keys, a top-level ``vgg_weights`` is accepted as a
    shortcut for ``train.model.vgg_weights``.

    Raises:
        ConfigError: a key is unknown, missing or invalid; the message names its path.
    """
    if isinstance(data, dict) and "vgg_weights" in data:
        data = _move_vgg_shortcut(data)
    return from_dict(CatalogueConfig, data)


def _move_vgg_shortcut(data: dict[str, Any]) -> dict[str, Any]:
    """Copy of ``data`` with the top-level ``vgg_weights`` moved to ``train.model``."""
    rest = {k: v for k, v in data.items() if k != "vgg_weights"}
    weights = data["vgg_weights"]
    _check_vgg_weights("vgg_weights", weights)
    train = rest.get("train") or {}
    model = (train.get("model") or {}) if isinstance(train, dict) else None
    if not isinstance(model, dict):
        return rest  # from_dict names the malformed section
    if model.get("vgg_weights", weights) != weights:
        raise ConfigError(
            f"vgg_weights: {weights!r} conflicts with train.model.vgg_weights "
            f"{model['vgg_weights']!r}; give it once"
        )
    rest["train"] = {**train, "model": {**model, "vgg_weights": weights}}
    return rest


def load_catalogue(path: str | os.PathLike[str]) -> CatalogueConfig:
    """Reads and validates a catalogue YAML file (see ``jobs/configs/paper_styles.yaml``).

    Raises:
        ConfigError: the file is missing or unreadable, is not valid YAML (the message gives
            the line and column), repeats a key, or fails :func:`catalogue_from_dict`; the
            message starts with the file's path.
    """
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{file}: no such catalogue file") from None
    except (OSError, UnicodeError) as err:
        raise ConfigError(f"{file}: cannot read the catalogue file: {err}") from None
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # a SafeLoader: no object tags
    except yaml.YAMLError as err:
        raise ConfigError(f"{file}:{_yaml_error(err)}") from None
    with _prefixed(f"{file}: "):
        return catalogue_from_dict(data)


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's safe loader, except that a key repeated in one mapping is an error."""

    def construct_mapping(self, node: Any, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep)


def _yaml_error(err: yaml.YAMLError) -> str:
    """``line:column: invalid YAML: problem`` for a PyYAML error (1-based, as editors count)."""
    mark = getattr(err, "problem_mark", None)
    problem = getattr(err, "problem", None) or str(err)
    where = f"{mark.line + 1}:{mark.column + 1}:" if mark is not None else ""
    return f"{where} invalid YAML: {problem}"


# --- Online serving (fsg serve, jobs/serve_config.yaml) -------------------------------------


@dataclass(frozen=True)
class ServeConfig:
    """The Ray Serve application of :mod:`fsg_ray.distributed.serve`: the registry, request limits,
    batching, replicas and back-pressure.

    Attributes:
        registry: URI of the style registry; new versions published there are served within
            ``index_ttl_s`` seconds, without a restart.
        s3_endpoint: S3 endpoint such as ``http://minio:9000``; None for AWS itself.
        s3_region: S3 region; None lets the AWS chain decide.
        max_body_bytes: Largest request body accepted (413 above it, before reading more).
        max_pixels: Largest image (width x height, read from its header before any pixel
            is decoded: decompression bombs) accepted (413 above it).
        max_side: Largest ``max_side`` a request may ask for; bigger photos are shrunk to it.
        default_max_side: The ``max_side`` of a request that gives none.
        max_batch_size: Requests of one style and size run as one batch, up to this many
            (1 turns dynamic batching off).
        batch_wait_timeout_s: How long the first request of a batch waits for more.
        styles_per_replica: Generators kept per replica (least recently used ones unloaded).
        index_ttl_s: Seconds the ingress trusts its copy of the registry's style list.
        min_replicas: Fewest replicas of each deployment (autoscaling lower bound).
        max_replicas: Most replicas of each deployment (autoscaling upper bound).
        target_ongoing_requests: Autoscaling target of requests in flight per replica.
        max_ongoing_requests: Requests one generator replica works on at once (a batch is
            filled from these).
        max_queued_requests: Requests waiting for a generator replica, per caller; more get
            503 with ``Retry-After``.
        ingress_max_ongoing_requests: Requests one HTTP ingress replica handles at once.
        ingress_max_queued_requests: Requests waiting for an ingress replica; more get 503
            with ``Retry-After`` from Serve's proxy.
        retry_after_s: The ``Retry-After`` of a 503.
        replica_cpus: CPUs each generator replica reserves.
        replica_gpus: GPUs each generator replica reserves (0: runs on CPU).
        ingress_cpus: CPUs each ingress replica reserves.
        cors_origins: Origins allowed to call the API from a browser; empty (the default)
            turns CORS off.
        api_key: Key that every route except the health checks requires (``Authorization:
            Bearer KEY`` or ``X-API-Key: KEY``); None reads the ``FSG_API_KEY`` environment
            variable of the replicas, and no key there leaves the API open. Prefer the
            variable: Serve stores and shows an application's arguments.
    """

    registry: str
    s3_endpoint: str | None = None
    s3_region: str | None = None
    max_body_bytes: int = 20 * 1024 * 1024
    max_pixels: int = 25_000_000
    max_side: int = 1024
    default_max_side: int = 512
    max_batch_size: int = 8
    batch_wait_timeout_s: float = 0.01
    styles_per_replica: int = 8
    index_ttl_s: float = 10.0
    min_replicas: int = 1
    max_replicas: int = 1
    target_ongoing_requests: float = 4.0
    max_ongoing_requests: int = 16
    max_queued_requests: int = 64
    ingress_max_ongoing_requests: int = 16
    ingress_max_queued_requests: int = 128
    retry_after_s: int = 1
    replica_cpus: float = 1.0
    replica_gpus: float = 0.0
    ingress_cpus: float = 0.5
    cors_origins: tuple[str, ...] = ()
    api_key: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "registry", _check_uri("registry", self.registry))
        _require(
            self.s3_endpoint is None or self.s3_endpoint.startswith(("http://", "https://")),
            "s3_endpoint",
            f"{self.s3_endpoint!r} must start with http:// or https://",
        )
        for key in ("max_body_bytes", "max_pixels", "max_batch_size", "styles_per_replica"):
            _require(getattr(self, key) >= 1, key, "must be >= 1")
        _require(self.max_side >= 8, "max_side", "must be >= 8")
        _require(
            8 <= self.default_max_side <= self.max_side,
            "default_max_side",
            f"must be between 8 and max_side ({self.max_side})",
        )
        for key in ("batch_wait_timeout_s", "index_ttl_s", "replica_gpus", "retry_after_s"):
            _require(getattr(self, key) >= 0, key, "must be >= 0")
        _require(self.min_replicas >= 1, "min_replicas", "must be >= 1")
        _require(self.max_replicas >= self.min_replicas, "max_replicas", "must be >= min_replicas")
        _require(self.target_ongoing_requests > 0, "target_ongoing_requests", "must be > 0")
        for key in ("max_ongoing_requests", "ingress_max_ongoing_requests"):
            _require(getattr(self, key) >= 1, key, "must be >= 1")
        for key in ("max_queued_requests", "ingress_max_queued_requests"):
            _require(getattr(self, key) >= 1, key, "must be >= 1")
        for key in ("replica_cpus", "ingress_cpus"):
            _require(getattr(self, key) >= 0, key, "must be >= 0")
        for i, origin in enumerate(self.cors_origins):
            _require(
                origin == "*" or origin.startswith(("http://", "https://")),
                f"cors_origins[{i}]",
                f"{origin!r} is not '*' or an http(s) origin",
            )
        _require(self.api_key != "", "api_key", "must not be empty (omit it for an open API)")
