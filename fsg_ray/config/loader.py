"""The one loader of every config tree: plain data (YAML, ``asdict``) in, typed configs out.

* :func:`from_dict` builds any config dataclass, names an unknown, missing or mistyped key by
  its path and lets the dataclass's ``__post_init__`` check the values.
* :func:`to_dict` is its inverse (YAML/JSON-friendly: tuples become lists); :func:`override`
  copies a config with some keys of some sections changed.
* :func:`read_yaml` reads a YAML file safely (no object tags), refusing a key given twice;
  :func:`options_with_flags` is a command's ``--config`` file with the flags given on the
  command line winning.

Class attributes a config dataclass may set to steer the loader:

* ``SELF_ROOTED = True``: its checks name keys relative to itself (``schedule.batch_size``),
  so inside a bigger tree its errors get the whole path in front.
* ``KEY_ROOT = "restyle"``: a flat config whose checks name keys as ``restyle.<key>``; the
  loader's own messages use the same root.
* ``RENAMED_KEYS = {"old": "new"}``: an old key still accepted, with a logged warning that
  names the new one.
"""

from __future__ import annotations

import dataclasses
import difflib
import logging
import os
import re
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, TypeVar, get_args, get_origin, get_type_hints

import yaml

from fsg_ray.config.errors import ConfigError, prefixed

log = logging.getLogger(__name__)

T = TypeVar("T")


def from_dict(cls: type[T], data: Mapping[str, Any] | None, prefix: str = "") -> T:
    """Builds a config dataclass from plain data, naming any unknown, missing or mistyped key.

    Args:
        cls: the dataclass to build (e.g. :class:`~fsg_ray.config.TrainConfig`).
        data: plain values as loaded from YAML or produced by ``dataclasses.asdict``.
        prefix: dotted path of ``data`` inside the whole tree, for error messages; a flat
            config's ``KEY_ROOT`` by default.

    Raises:
        ConfigError: a key is unknown or missing, or a value has the wrong type or is out of
            range.
    """
    root = getattr(cls, "KEY_ROOT", "")
    prefix = prefix or (f"{root}." if root else "")
    checked = known_keys(cls, data, prefix)
    if prefix and getattr(cls, "SELF_ROOTED", False):
        # Its checks name keys from itself ("schedule.batch_size"): build it from the root,
        # then put the whole path in front of any error.
        with prefixed(prefix):
            return from_dict(cls, checked)
    hints = get_type_hints(cls)
    missing = [
        f.name
        for f in dataclasses.fields(cls)  # type: ignore[arg-type]
        if f.name not in checked
        and f.default is dataclasses.MISSING
        and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise ConfigError(f"{', '.join(prefix + k for k in missing)}: required key is missing")
    kwargs = {k: _coerce(hints[k], v, f"{prefix}{k}") for k, v in checked.items()}
    return cls(**kwargs)


def known_keys(cls: type, data: Any, prefix: str) -> dict[str, Any]:
    """A copy of ``data`` (None as ``{}``) after checking it is a mapping of ``cls``'s fields.

    Keys in ``cls.RENAMED_KEYS`` are renamed to their new names, with a warning.
    """
    where = prefix.rstrip(".") or cls.__name__
    data = {} if data is None else data
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}: expected a mapping, got {type(data).__name__}")
    data = _renamed(cls, data, prefix)
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


def _renamed(cls: type, data: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    """``data`` with the old keys of ``cls.RENAMED_KEYS`` under their new names.

    Raises:
        ConfigError: both the old and the new name are given.
    """
    out = dict(data)
    for old, new in getattr(cls, "RENAMED_KEYS", {}).items():
        if old not in out:
            continue
        if new in out:
            raise ConfigError(f"{prefix}{old}: give {prefix}{new} only ({old} is its old name)")
        log.warning("%s%s is deprecated: write %s%s instead", prefix, old, prefix, new)
        out[new] = out.pop(old)
    return out


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


def plain(value: Any) -> Any:
    """Deep copy of plain data with tuples turned into lists (the YAML/JSON form)."""
    if isinstance(value, (list, tuple)):
        return [plain(x) for x in value]
    if isinstance(value, dict):
        return {k: plain(x) for k, x in value.items()}
    return value


def to_dict(cfg: Any) -> dict[str, Any]:
    """Plain, YAML/JSON-friendly form of a config (tuples become lists)."""
    return plain(dataclasses.asdict(cfg))


def override(cfg: T, **sections: Mapping[str, Any]) -> T:
    """Copy of a sectioned config (a :class:`~fsg_ray.config.TrainConfig`) with some keys of
    some sections overridden, validated again.

    Example: ``override(cfg, schedule={"gan_init_steps": 10})``.

    Raises:
        ConfigError: an unknown section or key, or a bad value.
    """
    merged = to_dict(cfg)
    for section, values in sections.items():
        if section not in merged:
            raise ConfigError(f"{section}: unknown config section; known are {sorted(merged)}")
        merged[section] = {**merged[section], **values}
    return from_dict(type(cfg), merged)


# --- YAML files ------------------------------------------------------------------------------


def read_yaml(path: str | os.PathLike[str], label: str | None = None, what: str = "config") -> Any:
    """Parses a YAML file safely (no object tags), refusing a key repeated in one mapping.

    Args:
        path: The file.
        label: How messages name the file (default: its path), e.g. ``--config job.yaml``.
        what: What the file is (``catalogue``, ``config``), for messages.

    Raises:
        ConfigError: the file is missing or unreadable, or is not valid YAML (the message
            gives the line and column).
    """
    file = Path(path)
    name = str(file) if label is None else label
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{name}: no such {what} file") from None
    except (OSError, UnicodeError) as err:
        raise ConfigError(f"{name}: cannot read the {what} file: {err}") from None
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)  # a SafeLoader: no object tags
    except yaml.YAMLError as err:
        raise ConfigError(f"{name}:{_yaml_error(err)}") from None


def options_with_flags(
    path: str | os.PathLike[str] | None, flags: Mapping[str, Any], known: Sequence[str]
) -> dict[str, Any]:
    """A command's options: a ``--config`` YAML file's keys, then the flags given win.

    The one way a command merges a file with its flags (``fsg restyle``, ``fsg eval``,
    ``fsg serve``); the result goes to :func:`from_dict`.

    Args:
        path: The ``--config`` file, or None for flags only.
        flags: Option name -> flag value; None means the flag was not given.
        known: The keys the file may set.

    Raises:
        ConfigError: an unreadable or malformed file, or a key not in ``known``.
    """
    found: Any = {}
    if path is not None:
        label = f"--config {os.fspath(path)}"
        found = read_yaml(path, label) or {}
        if not isinstance(found, dict):
            raise ConfigError(f"{label}: expected a mapping of options")
        unknown = sorted(str(k) for k in set(found) - set(known))
        if unknown:
            raise ConfigError(f"{label}: unknown keys {unknown}; known: {tuple(known)}")
    return {**found, **{k: v for k, v in flags.items() if v is not None}}


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
