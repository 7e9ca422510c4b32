"""The catalogue file: every style of a collection, trained at once by one trainer.

:class:`CatalogueConfig` holds the data, every style (:class:`StyleSpec`) with its per-style
overrides, one shared :class:`~fsg_ray.config.train.TrainConfig`, Ray resources and storage;
:func:`load_catalogue` reads and validates it before any Ray work starts. Error messages name
keys by their path from the root of the file, e.g. ``styles[2].overrides.schedule.lr_global``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal, get_args, get_type_hints

from fsg_ray.config.errors import (
    ConfigError,
    check_endpoint,
    check_name,
    check_uri,
    prefixed,
    require,
)
from fsg_ray.config.loader import from_dict, known_keys, override, plain, read_yaml
from fsg_ray.config.train import Mode, TrainConfig, check_vgg_weights


def _check_overrides(overrides: Any) -> dict[str, dict[str, Any]]:
    """Checks that ``overrides`` is shaped like :class:`TrainConfig`'s sections; a plain copy.

    Values are checked later, once applied to the catalogue's train config, because some
    checks compare two keys (e.g. ``data.global_target_size >= data.global_input_size``).
    """
    sections = get_type_hints(TrainConfig)
    checked = known_keys(TrainConfig, overrides, "overrides.")
    return {
        name: plain(known_keys(sections[name], values, f"overrides.{name}."))
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

    SELF_ROOTED: ClassVar[bool] = True

    name: str
    image: str
    overrides: dict[str, dict[str, Any]] = field(default_factory=dict)
    mode: Mode | None = None
    base_style: str | None = None

    def __post_init__(self) -> None:
        check_name("name", self.name, "style")
        object.__setattr__(self, "image", check_uri("image", self.image))
        if self.base_style is not None:
            check_name("base_style", self.base_style, "style")
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
    require(mode in modes, "mode", f"{mode!r} is not one of {', '.join(modes)}")
    schedule = overrides.get("schedule", {})
    given = schedule.get("mode", mode)
    require(given == mode, "mode", f"{mode!r} conflicts with overrides.schedule.mode {given!r}")
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
        object.__setattr__(self, "full", check_uri("data.full", self.full))
        object.__setattr__(self, "shop", check_uri("data.shop", self.shop))
        if self.masks is not None:
            object.__setattr__(self, "masks", check_uri("data.masks", self.masks))


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
        require(self.cpus_per_worker > 0, "resources.cpus_per_worker", "must be > 0")
        require(self.gpus_per_worker >= 0, "resources.gpus_per_worker", "must be >= 0")
        require(self.workers_per_style >= 1, "resources.workers_per_style", "must be >= 1")
        require(
            self.max_concurrent_styles >= 0,
            "resources.max_concurrent_styles",
            "must be >= 0 (0: all styles at once)",
        )
        require(
            self.use_gpu in ("auto", "always", "never"),
            "resources.use_gpu",
            f"{self.use_gpu!r} is not one of auto, always, never",
        )
        require(
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
        endpoint_url: S3 endpoint such as ``http://minio:9000``; None for AWS itself. The old
            key ``s3_endpoint`` is still read, with a warning.
        s3_region: S3 region; None lets the AWS chain of each process decide.
    """

    RENAMED_KEYS: ClassVar[dict[str, str]] = {"s3_endpoint": "endpoint_url"}

    runs: str
    registry: str
    endpoint_url: str | None = None
    s3_region: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "runs", check_uri("storage.runs", self.runs))
        object.__setattr__(self, "registry", check_uri("storage.registry", self.registry))
        check_endpoint("storage.endpoint_url", self.endpoint_url)
        require(self.s3_region != "", "storage.s3_region", "must not be empty (omit it)")


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
        check_name("name", self.name, "catalogue")
        require(len(self.styles) > 0, "styles", "needs at least one style")
        first: dict[str, int] = {}
        for i, style in enumerate(self.styles):
            if style.name in first:
                raise ConfigError(
                    f"styles[{i}].name: duplicate style {style.name!r} "
                    f"(also styles[{first[style.name]}])"
                )
            first[style.name] = i
            with prefixed(f"styles[{i}].overrides."):
                override(self.train, **style.overrides)
        self._check_bases()
        require(self.max_failures >= -1, "max_failures", "must be >= -1 (-1: retry forever)")
        require(self.samples >= 1, "samples", "must be >= 1")

    def _check_bases(self) -> None:
        """A variant whose base style is in the catalogue must use the base's style image:
        an ablation trained on another image compares nothing."""
        images = {s.name: s.image for s in self.styles}
        for i, style in enumerate(self.styles):
            base_image = images.get(style.base, style.image)
            require(
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
        return override(self.train, **self.style(name).overrides)


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
    check_vgg_weights("vgg_weights", weights)
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
    data = read_yaml(file, what="catalogue")
    with prefixed(f"{file}: "):
        return catalogue_from_dict(data)
