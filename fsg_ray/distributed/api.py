"""The online API's request logic, without Ray: limits, parsing, validation, errors, the
style list and the image work around G(x). :mod:`fsg_ray.distributed.serve` wires it into Ray Serve.

One request to ``POST /v1/styles/{style}/restyle``, in order::

    check_style_id(style)                 400, before any storage is touched
    check_api_key(...)                    401 (done first by the app, for every /v1 route)
    parse_options(query)                  400: max_side, format, preserve_color
    body_kind(content type)               415 unless an image body or multipart
    read_limited(body stream)             413 past max_body_bytes, without reading more
    split_multipart(...)                  400: fields 'image' and optional 'mask'
    StyleCatalog.current(style)           404 for an unknown style (nothing internal named)
    prepare(image, mask)                  415 not an image, 413 too many pixels, 400 corrupt
      ... G(x) on a generator replica (batched) ...
    finish(styled, prepared)              chroma, composite through the mask, encode

Every failure is an :class:`ApiError`: an HTTP status and a JSON body
``{"error": code, "reason": sentence}``.
"""

from __future__ import annotations

import hmac
import threading
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image
from starlette.datastructures import Headers, UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser

from fsg_ray.config import ServeConfig
from fsg_ray.io import compositing, images, registry

#: Environment variable holding the API key when the config gives none.
API_KEY_ENV = "FSG_API_KEY"
#: Options of a restyle request (query parameters).
OPTIONS = ("max_side", "format", "preserve_color")
#: Magic bytes of the image formats that are decoded (images.FORMATS).
_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"\xff\xd8\xff", "JPEG"),
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"BM", "BMP"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
)
_MEDIA_TYPES = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off", "")


class ApiError(Exception):
    """A request that cannot be answered with an image; becomes a JSON error response.

    Args:
        status: The HTTP status (4xx, or 503 when overloaded).
        error: A short code, e.g. ``unknown_style``.
        reason: What is wrong, for a person; names nothing internal (no paths, no URIs).
        headers: Extra response headers (``Retry-After``, ``WWW-Authenticate``).
    """

    def __init__(
        self, status: int, error: str, reason: str, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(status, error, reason)
        self.status, self.error, self.reason = status, error, reason
        self.headers = dict(headers or {})

    def body(self) -> dict[str, str]:
        """The JSON body of the response."""
        return {"error": self.error, "reason": self.reason}


def overloaded(retry_after_s: int) -> ApiError:
    """The 503 of a full queue, with ``Retry-After``."""
    return ApiError(
        503,
        "overloaded",
        f"the service is at capacity; retry in {retry_after_s} s",
        {"Retry-After": str(retry_after_s)},
    )


def unknown_style(style: str) -> ApiError:
    """The 404 of a style that is not published (GET /v1/styles lists those that are)."""
    return ApiError(
        404, "unknown_style", f"no style {style!r} is published; GET /v1/styles lists them"
    )


@dataclass(frozen=True)
class RestyleOptions:
    """The options of one restyle request.

    Attributes:
        max_side: Longest side of the output; bigger photos are shrunk (never enlarged).
        format: ``png``, ``jpeg`` or ``webp``.
        preserve_color: Keep the photo's chroma, take only the luma of G(x).
    """

    max_side: int
    format: str
    preserve_color: bool

    @property
    def media_type(self) -> str:
        """The Content-Type of the result."""
        return _MEDIA_TYPES[self.format]


@dataclass(frozen=True)
class Prepared:
    """A photo at its output size, ready for G(x).

    Attributes:
        image: x, (H, W, 3) uint8; G(x) is composited over it.
        mask: (H, W) bool garment mask, or None for the whole image.
    """

    image: np.ndarray
    mask: np.ndarray | None


def check_style_id(style: str) -> str:
    """Returns ``style`` if it is a well-formed style name; no storage is touched.

    Raises:
        ApiError: 400, naming the rule.
    """
    try:
        return registry.check_style(style)
    except ValueError:
        shown = style if len(style) <= 80 else style[:80] + "..."
        raise ApiError(
            400,
            "bad_style_id",
            f"bad style id {shown!r}: use 1-64 characters of a-z, 0-9, '_' and '-', "
            "starting with a letter or digit",
        ) from None


def parse_options(query: Mapping[str, str], cfg: ServeConfig) -> RestyleOptions:
    """The request's options from its query parameters, each checked.

    Args:
        query: Query parameters (``max_side``, ``format``, ``preserve_color``); others are
            refused, so a misspelt option is never silently ignored.
        cfg: Gives ``default_max_side`` and the largest ``max_side``.

    Raises:
        ApiError: 400 naming the bad option.
    """
    unknown = sorted(k for k in query if k not in OPTIONS)
    if unknown:
        raise ApiError(
            400, "bad_option", f"unknown option {unknown[0]!r}; options are {', '.join(OPTIONS)}"
        )
    side = query.get("max_side", str(cfg.default_max_side))
    if not (side.isascii() and side.isdigit() and 8 <= int(side) <= cfg.max_side):
        raise ApiError(
            400, "bad_option", f"max_side {side[:20]!r}: an integer from 8 to {cfg.max_side}"
        )
    fmt = query.get("format", "png").lower()
    if fmt not in compositing.FORMATS:
        raise ApiError(
            400,
            "bad_option",
            f"format {fmt[:20]!r}: choose from {', '.join(compositing.FORMATS)}",
        )
    color = query.get("preserve_color", "false").lower()
    if color not in _TRUE + _FALSE:
        raise ApiError(400, "bad_option", f"preserve_color {color[:20]!r}: true or false")
    return RestyleOptions(int(side), fmt, color in _TRUE)


def body_kind(content_type: str | None) -> str:
    """``raw`` (the body is the image) or ``multipart`` (fields ``image`` and ``mask``).

    Raises:
        ApiError: 415 for any other Content-Type.
    """
    media = (content_type or "").split(";", 1)[0].strip().lower()
    if media == "multipart/form-data":
        return "multipart"
    if media.startswith("image/") or media == "application/octet-stream":
        return "raw"
    raise ApiError(
        415,
        "unsupported_media_type",
        f"Content-Type {media[:60] or '(none)'!r}: send the photo as the body with an image/* "
        "or application/octet-stream type, or as the field 'image' of multipart/form-data",
    )


def check_content_length(value: str | None, limit: int) -> None:
    """Refuses a declared body over ``limit`` bytes before any of it is read.

    Raises:
        ApiError: 400 for a malformed header, 413 over the limit.
    """
    if value is None:
        return
    if not (value.isascii() and value.isdigit()):
        raise ApiError(400, "bad_request", "malformed Content-Length")
    if int(value) > limit:
        raise too_large(f"the body of {int(value)} bytes", limit)


def too_large(what: str, limit: int) -> ApiError:
    """The 413 of a body over the byte limit."""
    return ApiError(413, "too_large", f"{what} exceeds the limit of {limit} bytes")


async def read_limited(chunks: AsyncIterator[bytes], limit: int) -> bytes:
    """The whole body, refused as soon as it passes ``limit`` bytes (memory stays bounded
    even when a client declares no or a false Content-Length).

    Raises:
        ApiError: 413 over the limit, 400 for an empty body.
    """
    parts, size = [], 0
    async for chunk in chunks:
        size += len(chunk)
        if size > limit:
            raise too_large("the body", limit)
        parts.append(chunk)
    if size == 0:
        raise ApiError(400, "empty_body", "the request has no body: send a photo")
    return b"".join(parts)


async def split_multipart(headers: Mapping[str, str], body: bytes) -> tuple[bytes, bytes | None]:
    """The ``image`` and optional ``mask`` files of a multipart/form-data body.

    Raises:
        ApiError: 400 for a malformed body, a missing ``image``, or other fields.
    """

    async def stream() -> AsyncGenerator[bytes, None]:
        yield body

    parser = MultiPartParser(Headers(headers=dict(headers)), stream(), max_files=2, max_fields=2)
    try:
        form = await parser.parse()
    except MultiPartException as e:
        raise ApiError(400, "bad_multipart", f"malformed multipart body: {e.message}") from None
    files: dict[str, bytes] = {}
    try:
        for name, value in form.multi_items():
            if name not in ("image", "mask") or name in files or not isinstance(value, UploadFile):
                raise ApiError(
                    400,
                    "bad_multipart",
                    f"unexpected form field {name[:40]!r}: send one file 'image' and "
                    "optionally one file 'mask'",
                )
            files[name] = await value.read()
    finally:
        await form.close()
    if "image" not in files:
        raise ApiError(400, "bad_multipart", "the form has no file field 'image'")
    return files["image"], files.get("mask")


def sniff(data: bytes) -> str | None:
    """The image format that ``data`` starts with (by magic bytes), or None."""
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    return next((fmt for magic, fmt in _SIGNATURES if data.startswith(magic)), None)


def decode(data: bytes, what: str, cfg: ServeConfig) -> Image.Image:
    """Decodes an upload after sniffing it, within the pixel limit.

    Raises:
        ApiError: 400 empty or corrupt, 413 over the limits, 415 not an image format.
    """
    if not data:
        raise ApiError(400, "empty_body", f"the {what} is empty")
    if sniff(data) is None:
        raise ApiError(
            415,
            "unsupported_media_type",
            f"the {what} is not a {', '.join(images.FORMATS)} image (checked by its content)",
        )
    try:
        return images.decode_image(data, cfg.max_pixels, what, cfg.max_body_bytes)
    except images.ImageTooLarge as e:
        raise ApiError(413, "too_large", str(e)) from None
    except images.ImageDecodeError as e:
        raise ApiError(400, "bad_image", str(e)) from None


def prepare(
    image: bytes, mask: bytes | None, options: RestyleOptions, cfg: ServeConfig
) -> Prepared:
    """Decodes the photo, shrinks it to ``max_side`` and decodes the mask at that size.

    Raises:
        ApiError: See :func:`decode`.
    """
    x = np.asarray(compositing.fit_long_side(decode(image, "image", cfg), options.max_side))
    if mask is None:
        return Prepared(x, None)
    m = decode(mask, "mask", cfg)
    m = m.resize((x.shape[1], x.shape[0]), Image.Resampling.NEAREST)
    return Prepared(x, images.mask_to_tensor(m).numpy() > 0.5)


def finish(
    styled: np.ndarray, prepared: Prepared, options: RestyleOptions, tag: Mapping[str, str]
) -> bytes:
    """G(x) -> optional chroma of x -> composite through the mask -> encoded file."""
    if options.preserve_color:
        styled = compositing.keep_chroma(styled, prepared.image)
    out = compositing.composite(styled, prepared.image, prepared.mask)
    return compositing.encode(out, options.format, tag)


def resolve_api_key(cfg: ServeConfig, env: Mapping[str, str]) -> str | None:
    """The key the API requires: the config's, else ``FSG_API_KEY`` of ``env``, else None."""
    return cfg.api_key or env.get(API_KEY_ENV) or None


def check_api_key(expected: str | None, authorization: str | None, x_api_key: str | None) -> None:
    """Passes when no key is required or the request carries it (compared in constant time).

    The key may come as ``Authorization: Bearer KEY`` or ``X-API-Key: KEY``.

    Raises:
        ApiError: 401, which never echoes what was sent.
    """
    if expected is None:
        return
    given = x_api_key
    if given is None and authorization is not None:
        scheme, _, token = authorization.partition(" ")
        given = token.strip() if scheme.lower() == "bearer" else None
    if given is None or not hmac.compare_digest(given.encode(), expected.encode()):
        raise ApiError(
            401,
            "unauthorized",
            "a valid API key is required: 'Authorization: Bearer KEY' or 'X-API-Key: KEY'",
            {"WWW-Authenticate": "Bearer"},
        )


def model_id(style: str, version: str) -> str:
    """The multiplexed model id of a style version: ``style@version``."""
    return f"{style}@{version}"


def parse_model_id(mid: str) -> tuple[str, str]:
    """(style, version) of :func:`model_id`'s result.

    Raises:
        ValueError: Not a ``style@version`` with a valid style and version.
    """
    style, _, version = mid.partition("@")
    return registry.check_style(style), registry.check_version(version)


class StyleCatalog:
    """The registry's style list as the ingress sees it: re-read after ``ttl_s`` seconds, so
    new versions and styles are served without a restart.

    A style that is not in the list triggers one re-read, at most every ``miss_every_s``
    seconds, so a just-published style is found at once while a flood of unknown names
    cannot hammer the storage. Thread-safe.

    Args:
        read: Reads the list (:func:`fsg_ray.io.registry.list_styles` on the registry).
        ttl_s: Seconds a list is trusted.
        miss_every_s: Least seconds between two re-reads caused by unknown styles.
        clock: Monotonic seconds (a parameter for tests).
    """

    def __init__(
        self,
        read: Callable[[], dict[str, registry.StyleIndex]],
        ttl_s: float,
        miss_every_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._read, self.ttl_s, self.miss_every_s, self._clock = read, ttl_s, miss_every_s, clock
        self._styles: dict[str, registry.StyleIndex] | None = None
        self._read_at = float("-inf")
        self._lock = threading.Lock()

    def styles(self) -> dict[str, registry.StyleIndex]:
        """The published styles, re-read if the copy is older than ``ttl_s``.

        Raises:
            StorageError: The registry cannot be read (and no copy is held yet).
        """
        with self._lock:
            if self._styles is None or self._clock() - self._read_at >= self.ttl_s:
                self._refresh()
            assert self._styles is not None
            return self._styles

    def current(self, style: str) -> str:
        """The current version of ``style``.

        Raises:
            ApiError: 404 if no such style is published.
        """
        styles = self.styles()
        if style not in styles:
            with self._lock:
                if self._clock() - self._read_at >= self.miss_every_s:
                    self._refresh()
                styles = self._styles or {}
        if style not in styles:
            raise unknown_style(style)
        return styles[style].current

    def _refresh(self) -> None:
        self._styles = self._read()
        self._read_at = self._clock()


def styles_json(styles: Mapping[str, registry.StyleIndex]) -> dict[str, Any]:
    """``GET /v1/styles``: each style's current version and every version's publish time and
    final losses. Storage locations and encoder paths are left out."""
    return {
        "styles": [
            {
                "name": name,
                "current": index.current,
                "versions": [
                    {"version": v, "published_at": s.published_at, "final_losses": s.final_losses}
                    for v, s in index.versions.items()
                ],
            }
            for name, index in styles.items()
        ]
    }


def result_headers(style: str, version: str, options: RestyleOptions, batch: int) -> dict[str, str]:
    """Headers of a restyled image: what made it, and a download name."""
    ext = compositing.FORMATS[options.format][0]
    return {
        "X-Style": style,
        "X-Style-Version": version,
        "X-Batch-Size": str(batch),
        "Content-Disposition": f'inline; filename="{style}-{version}.{ext}"',
    }
