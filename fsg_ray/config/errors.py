""":class:`ConfigError` and the checks that raise it, each naming the key by its path.

Every message reads ``<key path>: <what is wrong>``, e.g. ``schedule.batch_size: must be >= 1``
or ``restyle.max_side: must be >= 8``: the path from the root of the tree being loaded, so a
user finds the line to fix.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from fsg_ray.io.uri import NAME, NAME_RULE, SUPPORTED, absolute, parse_uri


class ConfigError(ValueError):
    """A config value is missing, unknown or out of range; the message names the key."""


def require(ok: bool, key: str, message: str) -> None:
    """Raises ``ConfigError("<key>: <message>")`` unless ``ok``."""
    if not ok:
        raise ConfigError(f"{key}: {message}")


@contextlib.contextmanager
def prefixed(prefix: str) -> Iterator[None]:
    """Re-raises any :class:`ConfigError` of the block with ``prefix`` before its message."""
    try:
        yield
    except ConfigError as err:
        raise ConfigError(f"{prefix}{err}") from None


def check_name(key: str, name: str, what: str) -> str:
    """Returns ``name`` if it is a valid style or catalogue name (:data:`fsg_ray.io.uri.NAME`).

    Args:
        key: The key's path, for the message.
        name: The name to check.
        what: ``style`` or ``catalogue``, for the message.
    """
    require(
        isinstance(name, str) and NAME.fullmatch(name) is not None,
        key,
        f"{name!r} is not a valid {what} name: {NAME_RULE}",
    )
    return name


def check_uri(key: str, uri: str) -> str:
    """Accepts the URI forms of :func:`fsg_ray.io.uri.parse_uri`.

    Returns:
        The URI, a relative local path made absolute (against the working directory now):
        Ray workers run in other folders, so a relative path would name another file there.
    """
    require(isinstance(uri, str) and uri.strip() != "", key, f"needs {SUPPORTED}")
    try:
        parse_uri(uri)
    except ValueError:
        raise ConfigError(f"{key}: {uri!r} is not {SUPPORTED}") from None
    return absolute(uri)


def check_endpoint(key: str, endpoint_url: str | None) -> None:
    """An S3 endpoint is None (AWS itself) or an ``http(s)://`` URL."""
    require(
        endpoint_url is None
        or (isinstance(endpoint_url, str) and endpoint_url.startswith(("http://", "https://"))),
        key,
        f"{endpoint_url!r} must start with http:// or https://",
    )
