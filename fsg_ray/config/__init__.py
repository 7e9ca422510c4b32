"""Every config tree of fsg-ray, and the one loader that builds them.

Each config is a frozen, typed dataclass that validates itself in ``__post_init__`` and is
built from plain data (YAML, ``asdict``) by :func:`from_dict`, which names any unknown,
missing or mistyped key; every error is a :class:`ConfigError` whose message starts with the
key's path (``schedule.batch_size: must be >= 1``, ``restyle.max_side: must be >= 8``).

Modules, one concern each:

* :mod:`~fsg_ray.config.errors`: :class:`ConfigError` and the checks that raise it.
* :mod:`~fsg_ray.config.loader`: :func:`from_dict`, :func:`to_dict`, :func:`override`, YAML
  with unique keys (:func:`read_yaml`) and a command's ``--config`` file with its flags
  winning (:func:`options_with_flags`).
* :mod:`~fsg_ray.config.train`: :class:`TrainConfig` (model, loss, data sizes, schedule).
* :mod:`~fsg_ray.config.catalogue`: :class:`CatalogueConfig`, :func:`load_catalogue`.
* :mod:`~fsg_ray.config.serve`: :class:`ServeConfig` (``fsg serve``).
* :mod:`~fsg_ray.config.restyle`: :class:`RestyleConfig` (``fsg restyle``).
* :mod:`~fsg_ray.config.evaluate`: :class:`EvalConfig` (``fsg eval``).
* :mod:`~fsg_ray.config.storage`: :class:`StorageOptions` (the S3 endpoint and region).

The package imports nothing else of ours but the leaf :mod:`fsg_ray.io.uri`.
"""

from fsg_ray.config.catalogue import (
    CatalogueConfig,
    DataSources,
    Resources,
    StorageConfig,
    StyleSpec,
    catalogue_from_dict,
    load_catalogue,
)
from fsg_ray.config.errors import ConfigError
from fsg_ray.config.evaluate import EvalConfig
from fsg_ray.config.loader import (
    from_dict,
    options_with_flags,
    override,
    read_yaml,
    to_dict,
)
from fsg_ray.config.restyle import MASKS_AUTO, MASKS_NONE, OUTPUT_FORMATS, RestyleConfig
from fsg_ray.config.serve import ServeConfig
from fsg_ray.config.storage import StorageOptions
from fsg_ray.config.train import (
    VGG_TAPS,
    DataConfig,
    LossConfig,
    Mode,
    ModelConfig,
    ScheduleConfig,
    TrainConfig,
)

__all__ = [
    "MASKS_AUTO",
    "MASKS_NONE",
    "OUTPUT_FORMATS",
    "VGG_TAPS",
    "CatalogueConfig",
    "ConfigError",
    "DataConfig",
    "DataSources",
    "EvalConfig",
    "LossConfig",
    "Mode",
    "ModelConfig",
    "Resources",
    "RestyleConfig",
    "ScheduleConfig",
    "ServeConfig",
    "StorageConfig",
    "StorageOptions",
    "StyleSpec",
    "TrainConfig",
    "catalogue_from_dict",
    "from_dict",
    "load_catalogue",
    "options_with_flags",
    "override",
    "read_yaml",
    "to_dict",
]
