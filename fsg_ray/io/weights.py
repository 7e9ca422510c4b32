"""VGG-19 weights named by a ``vgg_weights`` spec, read through storage: the one place a path or
URI spec (``s3://…/vgg19.pth``, a local file) becomes the tensors :mod:`fsg_ray.core.models`
builds E_n, phi and varphi_c from."""

from __future__ import annotations

from fsg_ray.config import StorageOptions
from fsg_ray.core.models import VGGWeights
from fsg_ray.core.models import load_vgg as load_vgg_with
from fsg_ray.io.storage import Storage


def load_vgg(spec: str, storage: Storage | None = None) -> VGGWeights:
    """:func:`fsg_ray.core.models.load_vgg`, reading a path/URI spec with ``storage`` (by
    default with options from the environment).

    Raises:
        ValueError: the spec or the state dict is not usable, naming what is wrong.
    """
    reader = storage or Storage(StorageOptions.from_env())
    return load_vgg_with(spec, reader.read_bytes)
