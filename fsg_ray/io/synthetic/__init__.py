"""Offline stand-ins for the paper's data: garments with masks, and style textures.

Fashion144k street photos, shop photos and style images cannot be downloaded here, so this
package draws deterministic substitutes from a seed and writes them as real JPEG/PNG files:
``garment`` (:mod:`.garments`: seven kinds of garment, :mod:`.shapes`, with collars,
plackets and buttons, pockets, seams, hems and logos, :mod:`.details`, in a solid colour or
a print with folds and a directional light, :mod:`.fabric`, on a plain, coloured, gradient
or cluttered backdrop, :mod:`.backgrounds`, with its exact mask), ``style_texture``
(:mod:`.styles`: six periodic textures whose period is about 1/6-1/10 of the side, so a
128 px crop of a 256 px texture shows the pattern) and ``write_dataset`` (:mod:`.dataset`:
all of it in the ``SyntheticLayout`` folders). All randomness comes from
``numpy.random.default_rng``; drawing is vectorised numpy plus ``PIL.ImageDraw``.
"""

from fsg_ray.io.synthetic._common import MIN_SIZE
from fsg_ray.io.synthetic.dataset import (
    JPEG_QUALITY,
    SyntheticLayout,
    heldout_kinds,
    write_dataset,
)
from fsg_ray.io.synthetic.garments import (
    BACKGROUNDS,
    GARMENT_KINDS,
    PRODUCT_BACKGROUNDS,
    garment,
)
from fsg_ray.io.synthetic.styles import STYLE_NAMES, style_texture

__all__ = [
    "BACKGROUNDS",
    "GARMENT_KINDS",
    "JPEG_QUALITY",
    "MIN_SIZE",
    "PRODUCT_BACKGROUNDS",
    "STYLE_NAMES",
    "SyntheticLayout",
    "garment",
    "heldout_kinds",
    "style_texture",
    "write_dataset",
]
