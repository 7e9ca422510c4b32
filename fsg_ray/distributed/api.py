"""The online API's request logic, without Ray: limits, parsing, validation, errors, the
style list and the image work around G(x). :mod:`fsg_ray.distributed.serve` wires it into Ray Serve.

One request to ``POST /v1/styles/{style}/restyle``, in order::

    check_api_key(...)                    401 (done first by the app, for every /v1 route)
    check_style_id(style)                 400, before any storage is touched
    parse_options(query)                  400: max_side, format, preserve_color, strength
    body_kind(content type)               415 unless an image body or multipart
    StyleCatalog.current(style)           404 for an unknown style, before the body is read;
                                          503 when the registry cannot be read
    BodyBudget.hold(length)               503 when the replica holds too many body bytes
    read_limited(body stream)             413 past max_body_bytes, 408 past body_timeout_s
    split_multipart(...)                  400: fields 'image' and optional 'mask'
    prepare(image, mask)                  415 not PNG/JPEG/WebP, 413 too many pixels, 400
                                          corrupt; at most max_decodes at once
      ... G(x) on a generator replica (batched) ...
    finish(styled, prepared)              chroma, composite through the mask, encode

Every failure is an :class:`ApiError`: an HTTP status and a JSON body
``{"error": code, "reason": sentence}``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
from collections.abc import AsyncGenerator, AsyncIterator, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image
from starlette.datastructures import Headers, UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser

from fsg_ray.config import ServeConfig
from fsg_ray.config.evaluate import MAX_STRENGTH
from fsg_ray.io import compositing, images, registry

#: Options of a restyle request (query parameters).
OPTIONS = ("max_side", "format", "preserve_color", "strength")
#: The image formats accepted online: the common photo formats, and the fewest decoders
#: exposed to the network (GIF, BMP and TIFF are read by the batch jobs only).
ONLINE_FORMATS = ("PNG", "JPEG", "WEBP")
#: Magic bytes of PNG and JPEG (WebP is a RIFF container: see :func:`sniff`).
_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"\xff\xd8\xff", "JPEG"),
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
        strength: How far the output goes along G's change (0: the photo, 1: as trained).
    """

    max_side: int
    format: str
    preserve_color: bool
    strength: float = 1.0

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
        query: Query parameters (``max_side``, ``format``, ``preserve_color``,
            ``strength``); others are refused, so a misspelt option is never silently ignored.
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
    text = query.get("strength", "1")
    try:
        strength = float(text)
    except ValueError:
        strength = -1.0
    if not 0 <= strength <= MAX_STRENGTH:  # not a number, NaN, or out of range
        raise ApiError(
            400, "bad_option", f"strength {text[:20]!r}: a number from 0 to {MAX_STRENGTH:g}"
        )
    return RestyleOptions(int(side), fmt, color in _TRUE, strength)


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


async def read_limited(chunks: AsyncIterator[bytes], limit: int, timeout_s: float) -> bytes:
    """The whole body, refused as soon as it passes ``limit`` bytes (memory stays bounded
    even when a client declares no or a false Content-Length) or takes longer than
    ``timeout_s`` to arrive (a slow sender would otherwise hold an ingress slot for ever).

    Raises:
        ApiError: 413 over the limit, 408 past the deadline, 400 for an empty body.
    """
    parts: list[bytes] = []

    async def pull() -> None:
        size = 0
        async for chunk in chunks:
            size += len(chunk)
            if size > limit:
                raise too_large("the body", limit)
            parts.append(chunk)

    try:  # wait_for, not asyncio.timeout: Python 3.10 is supported
        await asyncio.wait_for(pull(), timeout_s)
    except asyncio.TimeoutError:
        raise ApiError(
            408,
            "request_timeout",
            f"the body did not arrive within {timeout_s:g} s",
            {"Connection": "close"},
        ) from None
    if not any(parts):
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
    """The online image format (:data:`ONLINE_FORMATS`) that ``data`` starts with, by its
    magic bytes, or None."""
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    return next((fmt for magic, fmt in _SIGNATURES if data.startswith(magic)), None)


def decode(
    data: bytes, what: str, cfg: ServeConfig, max_side: int | None = None, max_pixels: int = 0
) -> Image.Image:
    """Decodes an upload after sniffing it, within the pixel limit, shrunk to ``max_side``
    while decoding (see :func:`fsg_ray.io.images.decode_image`).

    Args:
        data: The encoded upload.
        what: ``image`` or ``mask``, for the messages.
        cfg: Gives the byte and pixel limits.
        max_side: Longest side of the result; None keeps the decoded size.
        max_pixels: The pixel limit; 0 takes ``cfg.max_pixels``.

    Raises:
        ApiError: 400 empty or corrupt, 413 over the limits, 415 not PNG, JPEG or WebP.
    """
    if not data:
        raise ApiError(400, "empty_body", f"the {what} is empty")
    if sniff(data) is None:
        raise ApiError(
            415,
            "unsupported_media_type",
            f"the {what} is not a {', '.join(ONLINE_FORMATS)} image (checked by its content)",
        )
    limit = max_pixels or cfg.max_pixels
    try:
        return images.decode_image(
            data, limit, what, cfg.max_body_bytes, ONLINE_FORMATS, max_side=max_side
        )
    except images.ImageTooLarge as e:
        raise ApiError(413, "too_large", str(e)) from None
    except images.ImageDecodeError as e:
        raise ApiError(400, "bad_image", str(e)) from None


def prepare(
    image: bytes, mask: bytes | None, options: RestyleOptions, cfg: ServeConfig
) -> Prepared:
    """Decodes the photo shrunk to ``max_side``, then the mask (within ``max_mask_pixels``)
    at the photo's size. One decode at a time: the photo's full-size pixels are freed before
    the mask's are decoded.

    Raises:
        ApiError: See :func:`decode`.
    """
    x = np.asarray(decode(image, "image", cfg, options.max_side))
    if mask is None:
        return Prepared(x, None)
    m = decode(mask, "mask", cfg, options.max_side, cfg.max_mask_pixels)
    if m.size != (x.shape[1], x.shape[0]):
        m = m.resize((x.shape[1], x.shape[0]), Image.Resampling.NEAREST)
    return Prepared(x, images.mask_to_tensor(m).numpy() > 0.5)


def finish(
    styled: np.ndarray, prepared: Prepared, options: RestyleOptions, tag: Mapping[str, str]
) -> bytes:
    """G(x) -> its strength -> optional chroma of x -> composite through the mask -> encoded
    file."""
    styled = compositing.with_strength(styled, prepared.image, options.strength)
    if options.preserve_color:
        styled = compositing.keep_chroma(styled, prepared.image)
    out = compositing.composite(styled, prepared.image, prepared.mask)
    return compositing.encode(out, options.format, tag)


class ApiKeyMissing(RuntimeError):
    """The API would be open: no key in its variable, and ``allow_anonymous`` is off."""


def key_digest(key: str) -> str:
    """The SHA-256 hex digest of an API key: what crosses into Ray (``<api_key_env>_SHA256``),
    since Ray's runtime-env agent logs a job's environment variables in clear."""
    return hashlib.sha256(key.encode()).hexdigest()


def resolve_api_key(cfg: ServeConfig, env: Mapping[str, str]) -> str | None:
    """The SHA-256 hex digest of the key the API requires: from the variable
    ``cfg.api_key_env`` of ``env`` (the key) or ``<api_key_env>_SHA256`` (its digest); None (an
    open API) only when the config allows anonymous use.

    Raises:
        ApiKeyMissing: No key and ``allow_anonymous`` is off: the ingress must not start.
    """
    key = env.get(cfg.api_key_env) or None
    digest = key_digest(key) if key else (env.get(cfg.api_key_env + "_SHA256") or None)
    if digest is None and not cfg.allow_anonymous:
        raise ApiKeyMissing(
            f"no API key: set {cfg.api_key_env} in the environment of the ingress replicas "
            "(a Kubernetes Secret, or `fsg serve`'s environment), or set allow_anonymous: true "
            "to serve without one"
        )
    return digest.lower() if digest else None


def check_api_key(expected: str | None, authorization: str | None, x_api_key: str | None) -> None:
    """Passes when no key is required or the request carries the key whose SHA-256 hex digest
    is ``expected`` (compared in constant time); see :func:`check_key`."""
    check_key(expected, authorization, x_api_key, digest=True)


def check_key(
    expected: str | None,
    authorization: str | None,
    x_api_key: str | None,
    digest: bool = False,
) -> None:
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
    if given is not None and digest:
        given = key_digest(given)
    if given is None or not hmac.compare_digest(given.encode(), expected.encode()):
        raise ApiError(
            401,
            "unauthorized",
            "a valid API key is required: 'Authorization: Bearer KEY' or 'X-API-Key: KEY'",
            {"WWW-Authenticate": "Bearer"},
        )


class BodyBudget:
    """The request bodies an ingress replica holds at once, in bytes, capped.

    A request reserves its declared Content-Length (or ``max_body_bytes`` when it declares
    none) before its body is read, and gives it back when it is answered. Used on one event
    loop, so no lock.

    Args:
        limit: Most bytes held at once.
        retry_after_s: The ``Retry-After`` of the 503 past it.
    """

    def __init__(self, limit: int, retry_after_s: int) -> None:
        self.limit, self.retry_after_s = limit, retry_after_s
        self.held = 0

    @contextlib.contextmanager
    def hold(self, size: int) -> Iterator[None]:
        """Reserves ``size`` bytes for the block.

        Raises:
            ApiError: 503 with ``Retry-After`` when the reservation would pass the limit.
        """
        if self.held + size > self.limit:
            raise overloaded(self.retry_after_s)
        self.held += size
        try:
            yield
        finally:
            self.held -= size


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
        "X-Style-Strength": f"{options.strength:g}",
        "Content-Disposition": f'inline; filename="{style}-{version}.{ext}"',
    }
