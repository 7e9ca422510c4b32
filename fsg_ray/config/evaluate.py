"""The config of ``fsg eval`` (:mod:`fsg_ray.app.evaluate`).

Keys are named as ``eval.<key>``: ``eval.gatys_iters: must be >= 0``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from fsg_ray.config.errors import check_name, require

#: Largest style strength accepted: eval's fronts, restyle and Serve (as
#: :data:`fsg_ray.core.strength.MAX_STRENGTH`; the config layer does not import the core).
MAX_STRENGTH = 4.0

#: Photos are shrunk to this long side unless the evaluation says otherwise.
EVAL_MAX_SIDE = 256
#: ``eval.styles: [all]`` evaluates every base style of the registry.
ALL_STYLES = "all"
#: Strengths of each method's front (:mod:`fsg_ray.core.strength`) besides 0 (the input)
#: and 1 (as trained): up to twice the trained change, where most fronts turn back.
DEFAULT_STRENGTHS = (0.25, 0.5, 0.75, 1.25, 1.5, 2.0)


@dataclass(frozen=True)
class EvalConfig:
    """What ``fsg eval`` compares, on what.

    Attributes:
        registry: URI of the style registry.
        style: The base style; every entry of the registry with this base style is a method.
            None when ``styles`` is given.
        images: URI prefix of the garment photos to restyle.
        out: Where the sheet, the tables and the outputs go (a folder or prefix URI).
        masks: URI prefix of their garment masks, matched by relative path without suffix;
            None estimates them (:func:`fsg_ray.io.compositing.auto_mask`).
        gatys_iters: L-BFGS iterations of NeuralST (the paper's 200); 0 leaves it out.
        max_side: Larger photos are shrunk to this long side first.
        eval_vgg: VGG weights of the evaluation style distance; None: see
            :func:`fsg_ray.app.evaluate.default_eval_vgg`.
        styles: Several base styles, each evaluated into ``out/<style>/`` with one summary
            across them (:mod:`fsg_ray.app.evaluate_styles`); ``("all",)`` takes every base
            style of the registry. Give ``style`` or ``styles``, not both.
        strengths: The strengths of each method's front besides 0 and 1, each in [0, 4]
            (:mod:`fsg_ray.core.strength`); empty: no fronts.
    """

    KEY_ROOT: ClassVar[str] = "eval"

    registry: str
    style: str | None
    images: str
    out: str
    masks: str | None = None
    gatys_iters: int = 200
    max_side: int = EVAL_MAX_SIDE
    eval_vgg: str | None = None
    styles: tuple[str, ...] = ()
    strengths: tuple[float, ...] = DEFAULT_STRENGTHS

    def __post_init__(self) -> None:
        require(
            (self.style is None) != (not self.styles),
            "eval.styles" if self.styles else "eval.style",
            "give eval.style (one style) or eval.styles (several, or [all]), not both"
            if self.styles
            else "required: give eval.style or eval.styles",
        )
        if self.style is not None:
            check_name("eval.style", self.style, "style")
        self._check_styles()
        require(
            self.gatys_iters >= 0,
            "eval.gatys_iters",
            f"must be >= 0 (0: no Gatys), got {self.gatys_iters}",
        )
        require(self.max_side >= 16, "eval.max_side", f"must be >= 16, got {self.max_side}")
        for i, value in enumerate(self.strengths):
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
            require(
                ok and 0 <= value <= MAX_STRENGTH,
                f"eval.strengths[{i}]",
                f"must be a number in [0, {MAX_STRENGTH:g}], got {value!r}",
            )

    def _check_styles(self) -> None:
        """Names valid and distinct; ``all`` only on its own."""
        if ALL_STYLES in self.styles:
            require(
                self.styles == (ALL_STYLES,),
                "eval.styles",
                f"{ALL_STYLES!r} means every style: give it alone, got {list(self.styles)}",
            )
            return
        for i, name in enumerate(self.styles):
            check_name(f"eval.styles[{i}]", name, "style")
        twice = sorted({n for n in self.styles if self.styles.count(n) > 1})
        require(not twice, "eval.styles", f"styles given twice: {', '.join(twice)}")
