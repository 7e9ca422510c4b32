"""The config of one ``fsg restyle`` job (:mod:`fsg_ray.distributed.restyle`).

Keys are named as ``restyle.<key>``: ``restyle.max_side: must be >= 8``. The command reads
them from its flags and an optional ``--config`` YAML file (flags win; see
:func:`fsg_ray.config.loader.options_with_flags`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from fsg_ray.config.errors import ConfigError, check_name, check_uri, require
from fsg_ray.config.evaluate import MAX_STRENGTH
from fsg_ray.config.runtime import check_runtime
from fsg_ray.io.uri import is_below, is_manifest

#: ``masks`` values that name no prefix: estimate the masks, or restyle whole images.
MASKS_AUTO, MASKS_NONE = "auto", "none"
#: Longest output side unless the job says otherwise.
DEFAULT_MAX_SIDE = 1024
#: Output formats (the keys of :data:`fsg_ray.io.compositing.FORMATS`).
OUTPUT_FORMATS = ("png", "jpeg", "webp")
#: Largest ``downscale``: beyond it E_n's relu4_1 code of a 1024 px photo is 16 px across.
MAX_DOWNSCALE = 8


@dataclass(frozen=True)
class RestyleConfig:
    """One ``fsg restyle`` job, validated on creation.

    Attributes:
        registry: The style registry (URI).
        input: A prefix of product photos, or a ``.csv``/``.parquet`` manifest (column
            ``image``, optional ``mask``).
        output: Where outputs and manifests go; must not be below an input prefix.
        styles: Style names; empty for every published style.
        masks: ``auto`` (estimated: :func:`fsg_ray.io.compositing.auto_mask`), ``none`` (whole
            image), a prefix of masks matched by relative path stem (each input must have
            one), or None: the manifest's ``mask`` column where given, else the whole image.
        max_side: Longest output side; larger inputs are shrunk, keeping the aspect ratio.
        format: ``png`` (lossless: pixels outside the mask stay exact), ``jpeg`` or ``webp``.
        preserve_color: Keep the input's chroma (CbCr), take only the luma from G(x).
        strength: How far each output goes along G's change, in [0, 4]
            (:func:`fsg_ray.io.compositing.with_strength`): 1 (default) as trained, 0.5
            half of the style's change (more of the design), 1.5 more style.
        overwrite: Redo outputs that are already done.
        actors: Size of the actor pool (each holds every style's generator).
        runtime: ``auto``, ``torch``, ``torch-bf16``, ``onnx`` or ``onnx-int8``
            (:mod:`fsg_ray.config.runtime`); ONNX Runtime gets the actor's CPUs as its
            threads. ``onnx-int8`` calibrates on the job's first photos and keeps a style in
            fp32 when int8 moves its outputs too far (:mod:`fsg_ray.io.quantize`).
        downscale: Run the generators on each photo shrunk this many times and lay their
            change over the full-size photo (:func:`fsg_ray.core.models.upscale_change`):
            about ``downscale**2`` times less work; the photo's own detail stays sharp, the
            style's texture is drawn ``downscale`` times coarser. 1 (default): full size.
    """

    KEY_ROOT: ClassVar[str] = "restyle"

    registry: str
    input: str
    output: str
    styles: tuple[str, ...] = ()
    masks: str | None = None
    max_side: int = DEFAULT_MAX_SIDE
    format: str = "png"
    preserve_color: bool = False
    strength: float = 1.0
    overwrite: bool = False
    actors: int = 1
    runtime: str = "auto"
    downscale: int = 1

    def __post_init__(self) -> None:
        for key in ("registry", "input", "output"):
            object.__setattr__(self, key, check_uri(f"restyle.{key}", getattr(self, key)))
        if self.mask_prefix is not None:
            object.__setattr__(self, "masks", check_uri("restyle.masks", self.mask_prefix))
        for i, style in enumerate(self.styles):
            check_name(f"restyle.styles[{i}]", style, "style")
        if len(set(self.styles)) != len(self.styles):
            raise ConfigError(f"restyle.styles: styles named twice: {list(self.styles)}")
        require(
            self.format in OUTPUT_FORMATS,
            "restyle.format",
            f"{self.format!r} is not one of {', '.join(OUTPUT_FORMATS)}",
        )
        require(self.max_side >= 8, "restyle.max_side", "must be >= 8")
        require(
            0 <= self.strength <= MAX_STRENGTH,  # NaN fails both
            "restyle.strength",
            f"must be a number in [0, {MAX_STRENGTH:g}], got {self.strength!r}",
        )
        require(self.actors >= 1, "restyle.actors", "must be >= 1")
        check_runtime("restyle.runtime", self.runtime)
        require(
            type(self.downscale) is int and 1 <= self.downscale <= MAX_DOWNSCALE,
            "restyle.downscale",
            f"{self.downscale!r} is not an integer from 1 to {MAX_DOWNSCALE}",
        )
        require(
            is_manifest(self.input) or not is_below(self.output, self.input),
            "restyle.output",
            f"{self.output} is inside input {self.input}: a rerun would restyle the outputs",
        )

    @property
    def mask_prefix(self) -> str | None:
        """The prefix of given masks, if ``masks`` names one."""
        return self.masks if self.masks not in (None, MASKS_AUTO, MASKS_NONE) else None
