"""The online API's request logic without Ray: options, content types, body limits, multipart,
sniffing and decoding, masks, API keys, the style list's refresh, and the service config."""

from __future__ import annotations

import asyncio
import dataclasses
import io
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest
from imagefiles import png_header
from PIL import Image
from urllib3 import encode_multipart_formdata

from fsg_ray.config import ConfigError, ServeConfig, from_dict
from fsg_ray.distributed import api
from fsg_ray.io import compositing, registry

CFG = ServeConfig(
    registry="/srv/registry",
    max_body_bytes=4096,
    max_pixels=10_000,
    max_side=64,
    default_max_side=64,
)


def png(rgb: np.ndarray, fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format=fmt)
    return buf.getvalue()


def noise(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def api_error(fn, *args) -> api.ApiError:  # type: ignore[no-untyped-def]
    with pytest.raises(api.ApiError) as info:
        fn(*args)
    return info.value


# ---------------------------------------------------------------- options and style ids


def test_options_default_and_parse() -> None:
    assert api.parse_options({}, CFG) == api.RestyleOptions(CFG.default_max_side, "png", False)
    got = api.parse_options({"max_side": "8", "format": "JPEG", "preserve_color": "true"}, CFG)
    assert got == api.RestyleOptions(8, "jpeg", True) and got.media_type == "image/jpeg"
    assert api.parse_options({"strength": "0.5"}, CFG).strength == 0.5
    assert api.parse_options({}, CFG).strength == 1.0


@pytest.mark.parametrize(
    "query, fragment",
    [
        ({"max_side": "65"}, "max_side '65': an integer from 8 to 64"),
        ({"max_side": "7"}, "max_side '7'"),
        ({"max_side": "-8"}, "max_side '-8'"),
        ({"max_side": "１６"}, "max_side"),  # full-width digits are digits to str.isdigit
        ({"format": "gif"}, "format 'gif': choose from png, jpeg, webp"),
        ({"preserve_color": "maybe"}, "preserve_color 'maybe': true or false"),
        ({"strength": "5"}, "strength '5': a number from 0 to 4"),
        ({"strength": "-0.5"}, "strength '-0.5': a number from 0 to 4"),
        ({"strength": "nan"}, "strength 'nan'"),
        ({"strength": "strong"}, "strength 'strong'"),
        ({"max_sid": "8"}, "unknown option 'max_sid'; options are max_side, format"),
    ],
)
def test_bad_options_are_400_naming_the_option(query: dict[str, str], fragment: str) -> None:
    err = api_error(api.parse_options, query, CFG)
    assert (err.status, err.error) == (400, "bad_option") and fragment in err.reason


@pytest.mark.parametrize("style", ["..", "../etc", "a/b", "Stripes", "-a", "x" * 65, "", "a\x00"])
def test_malformed_style_ids_are_400(style: str) -> None:
    err = api_error(api.check_style_id, style)
    assert (err.status, err.error) == (400, "bad_style_id")
    assert api.check_style_id("leopard_2") == "leopard_2"


def test_model_ids_round_trip_and_reject_junk() -> None:
    assert api.parse_model_id(api.model_id("dots", "v12")) == ("dots", "v12")
    for bad in ("dots", "dots@", "dots@12", "../x@v1", "@v1"):
        with pytest.raises(ValueError):
            api.parse_model_id(bad)


# ---------------------------------------------------------------- bodies


@pytest.mark.parametrize(
    "content_type, kind",
    [
        ("image/png", "raw"),
        ("IMAGE/JPEG; q=1", "raw"),
        ("application/octet-stream", "raw"),
        ("multipart/form-data; boundary=x", "multipart"),
    ],
)
def test_body_kinds(content_type: str, kind: str) -> None:
    assert api.body_kind(content_type) == kind


@pytest.mark.parametrize("content_type", [None, "", "text/plain", "application/json"])
def test_other_content_types_are_415(content_type: str | None) -> None:
    assert api_error(api.body_kind, content_type).status == 415


def test_declared_length_over_the_limit_is_413_before_reading() -> None:
    api.check_content_length(None, 10)
    api.check_content_length("10", 10)
    assert api_error(api.check_content_length, "11", 10).status == 413
    assert api_error(api.check_content_length, "1e3", 10).status == 400


def test_read_limited_stops_pulling_past_the_limit() -> None:
    pulled = []

    async def chunks() -> AsyncIterator[bytes]:
        for i in range(100):
            pulled.append(i)
            yield b"x" * 1000

    with pytest.raises(api.ApiError) as info:
        asyncio.run(api.read_limited(chunks(), 2500, 10))
    assert info.value.status == 413 and pulled == [0, 1, 2]

    async def empty() -> AsyncIterator[bytes]:
        yield b""

    with pytest.raises(api.ApiError, match="no body"):
        asyncio.run(api.read_limited(empty(), 10, 10))


def test_a_slow_sender_is_cut_off_at_the_body_deadline() -> None:
    async def trickle() -> AsyncIterator[bytes]:
        for _ in range(1000):
            yield b"x"
            await asyncio.sleep(0.05)

    err = api_error(lambda: asyncio.run(api.read_limited(trickle(), 10_000, 0.3)))
    assert (err.status, err.error, err.headers) == (408, "request_timeout", {"Connection": "close"})


def test_body_budget_caps_the_bytes_held_at_once() -> None:
    budget = api.BodyBudget(limit=100, retry_after_s=2)
    with budget.hold(60):
        with budget.hold(40):
            assert budget.held == 100
        err = api_error(lambda: budget.hold(41).__enter__())
        assert err.status == 503 and err.headers == {"Retry-After": "2"}
    assert budget.held == 0


def multipart(fields: dict[str, tuple[str, bytes] | str]) -> tuple[dict[str, str], bytes]:
    body, content_type = encode_multipart_formdata(fields)
    return {"content-type": content_type}, body


def test_multipart_gives_image_and_mask() -> None:
    headers, body = multipart({"image": ("a.png", b"IMG"), "mask": ("m.png", b"MASK")})
    assert asyncio.run(api.split_multipart(headers, body)) == (b"IMG", b"MASK")
    headers, body = multipart({"image": ("a.png", b"IMG")})
    assert asyncio.run(api.split_multipart(headers, body)) == (b"IMG", None)


@pytest.mark.parametrize(
    "fields, fragment",
    [
        ({"mask": ("m.png", b"M")}, "no file field 'image'"),
        ({"image": ("a.png", b"I"), "extra": ("x", b"X")}, "unexpected form field 'extra'"),
        ({"image": "not a file"}, "unexpected form field 'image'"),
    ],
)
def test_bad_multipart_forms_are_400(fields: dict, fragment: str) -> None:
    headers, body = multipart(fields)
    with pytest.raises(api.ApiError) as info:
        asyncio.run(api.split_multipart(headers, body))
    assert info.value.status == 400 and fragment in info.value.reason


def test_malformed_multipart_is_400() -> None:
    headers = {"content-type": "multipart/form-data"}  # no boundary
    with pytest.raises(api.ApiError, match="malformed multipart"):
        asyncio.run(api.split_multipart(headers, b"--x\r\n"))


# ---------------------------------------------------------------- images


def test_sniff_by_content_not_by_name() -> None:
    rgb = noise(4, 4)
    for fmt in ("PNG", "JPEG", "WEBP"):
        assert api.sniff(png(rgb, fmt)) == fmt
    assert api.sniff(b"<html>") is None and api.sniff(b"") is None


@pytest.mark.parametrize("fmt", ["GIF", "BMP", "TIFF"])
def test_only_png_jpeg_and_webp_are_decoded_online(fmt: str) -> None:
    assert api.sniff(png(noise(4, 4), fmt)) is None
    err = api_error(api.decode, png(noise(4, 4), fmt), "image", CFG)
    assert (err.status, err.error) == (415, "unsupported_media_type")


@pytest.mark.parametrize(
    "data, status, error",
    [
        (b"", 400, "empty_body"),
        (b"\xff\xd8\xff" + b"\x00" * 3, 400, "bad_image"),
        (png(noise(32, 32))[:60], 400, "bad_image"),
        (b"%PDF-1.7 not an image", 415, "unsupported_media_type"),
        (png_header(200, 200), 413, "too_large"),  # 40,000 px > CFG.max_pixels
        (png_header(100_000, 100_000), 413, "too_large"),
    ],
)
def test_decode_failures_map_to_statuses(data: bytes, status: int, error: str) -> None:
    err = api_error(api.decode, data, "image", CFG)
    assert (err.status, err.error) == (status, error)
    assert "/" not in err.reason.replace("/v1", "")  # no paths in the reason


def test_prepare_shrinks_and_sizes_the_mask() -> None:
    mask = np.zeros((40, 100), np.uint8)
    mask[:, 50:] = 255
    cfg = dataclasses.replace(CFG, max_body_bytes=10**6, max_pixels=10**6)
    options = api.parse_options({}, cfg)
    got = api.prepare(png(noise(80, 200)), png(np.stack([mask] * 3, -1)), options, cfg)
    assert got.image.shape == (26, 64, 3) and got.mask is not None
    assert got.mask.shape == (26, 64) and got.mask[:, 40:].all() and not got.mask[:, :24].any()
    assert api.prepare(png(noise(8, 8)), None, options, cfg).mask is None


def test_finish_keeps_pixels_outside_the_mask_exactly() -> None:
    x, styled = noise(16, 16, 1), noise(16, 16, 2)
    mask = np.zeros((16, 16), bool)
    mask[4:12, 4:12] = True
    options = api.parse_options({"format": "png"}, CFG)
    data = api.finish(styled, api.Prepared(x, mask), options, {"style": "dots", "version": "v1"})
    out = np.asarray(Image.open(io.BytesIO(data)))
    assert np.array_equal(out[~mask], x[~mask]) and np.array_equal(out[mask], styled[mask])
    assert compositing.read_tag(data) == ({"style": "dots", "version": "v1"}, (16, 16))
    kept = api.parse_options({"preserve_color": "1"}, CFG)
    out = np.asarray(Image.open(io.BytesIO(api.finish(styled, api.Prepared(x, None), kept, {}))))
    assert np.array_equal(out, compositing.keep_chroma(styled, x))


def test_finish_scales_the_style_change_by_the_strength() -> None:
    x, styled = noise(16, 16, 1), noise(16, 16, 2)
    mask = np.zeros((16, 16), bool)
    mask[4:12, 4:12] = True
    half = api.parse_options({"strength": "0.5"}, CFG)
    data = api.finish(styled, api.Prepared(x, mask), half, {})
    out = np.asarray(Image.open(io.BytesIO(data))).astype(int)
    assert np.array_equal(out, compositing.with_strength(styled, x, 0.5) * mask[..., None]
                          + x * ~mask[..., None])  # fmt: skip
    # Half the change: every pixel between the photo and G(x) (up to rounding).
    lo, hi = np.minimum(x, styled).astype(int), np.maximum(x, styled).astype(int)
    assert ((out >= lo - 1) & (out <= hi + 1))[mask].all()
    zero = api.finish(styled, api.Prepared(x, None), api.parse_options({"strength": "0"}, CFG), {})
    assert np.abs(np.asarray(Image.open(io.BytesIO(zero))).astype(int) - x).max() <= 3
    assert api.result_headers("dots", "v1", half, 1)["X-Style-Strength"] == "0.5"


# ---------------------------------------------------------------- API keys


def test_api_key_comes_from_its_variable_and_the_api_fails_closed() -> None:
    cfg = ServeConfig(registry="/r")
    digest = api.key_digest("from-env")
    assert api.resolve_api_key(cfg, {"FSG_API_KEY": "from-env"}) == digest
    assert api.resolve_api_key(cfg, {"FSG_API_KEY_SHA256": digest.upper()}) == digest
    other = ServeConfig(registry="/r", api_key_env="SHOP_KEY")
    assert api.resolve_api_key(other, {"SHOP_KEY": "k", "FSG_API_KEY": "x"}) == api.key_digest("k")
    for env in ({}, {"FSG_API_KEY": ""}):
        with pytest.raises(api.ApiKeyMissing, match="set FSG_API_KEY .* allow_anonymous"):
            api.resolve_api_key(cfg, env)
    assert api.resolve_api_key(dataclasses.replace(cfg, allow_anonymous=True), {}) is None


def test_api_key_check() -> None:
    api.check_api_key(None, None, None)
    k = api.key_digest("k3y")
    api.check_api_key(k, "Bearer k3y", None)
    api.check_api_key(k, "bearer  k3y", None)
    api.check_api_key(k, None, "k3y")
    assert api_error(api.check_api_key, k, None, k).status == 401  # the digest is no key
    for auth, header in [(None, None), ("Bearer wrong", None), ("Basic k3y", None), (None, "")]:
        err = api_error(api.check_api_key, k, auth, header)
        assert err.status == 401 and err.headers == {"WWW-Authenticate": "Bearer"}
        assert "wrong" not in err.reason


# ---------------------------------------------------------------- the style list


def index(current: str) -> registry.StyleIndex:
    summary = registry.VersionSummary(
        "2026-01-01T00:00:00+00:00", "/secret/vgg.pt", {"global": 1.5}, ()
    )
    return registry.StyleIndex("x", current, {current: summary})


def test_styles_json_shows_versions_but_no_storage_paths() -> None:
    body = api.styles_json({"dots": index("v3")})
    assert body == {
        "styles": [
            {
                "name": "dots",
                "current": "v3",
                "versions": [
                    {
                        "version": "v3",
                        "published_at": "2026-01-01T00:00:00+00:00",
                        "final_losses": {"global": 1.5},
                    }
                ],
            }
        ]
    }


# ---------------------------------------------------------------- config


@pytest.mark.parametrize(
    "data, fragment",
    [
        ({"registry": "/r", "max_sid": 1}, "max_sid: unknown key (did you mean 'max_side'?)"),
        ({"registry": "/r", "default_max_side": 2048}, "default_max_side: must be between 8"),
        ({"registry": "/r", "max_replicas": 0}, "max_replicas: must be >= min_replicas"),
        ({"registry": "/r", "cors_origins": ["evil.com"]}, "cors_origins[0]: 'evil.com'"),
        ({"registry": "/r", "api_key": "k"}, "api_key: unknown key (did you mean 'api_key_env'?)"),
        ({"registry": "/r", "api_key_env": "A-B"}, "api_key_env: must be an environment"),
        ({"registry": "/r", "body_timeout_s": 0}, "body_timeout_s: must be > 0"),
        ({"registry": "/r", "max_bytes_in_flight": 1}, "max_bytes_in_flight: must be >="),
        ({"registry": "/r", "max_decodes": 0}, "max_decodes: must be >= 1"),
        ({"registry": "gs://b/r"}, "registry:"),
        ({"registry": "/r", "max_batch_size": 0}, "max_batch_size: must be >= 1"),
    ],
)
def test_serve_config_errors_name_the_key(data: dict, fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        from_dict(ServeConfig, data)
    assert fragment in str(info.value)


# ---------------------------------------------------------------- memory per request

#: Peak RSS growth allowed for decoding one worst-case request (photo and mask of 25 MP).
DECODE_BOUND_MB = 250

_MEASURE = """
import resource, sys
from fsg_ray.config import ServeConfig
from fsg_ray.distributed import api
data = open(sys.argv[1], "rb").read()
cfg = ServeConfig(registry="/r", max_pixels=25_000_000, max_mask_pixels=25_000_000)
options = api.parse_options({"max_side": "1024"}, cfg)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
prepared = api.prepare(data, data, options, cfg)
grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
print(prepared.image.shape, prepared.mask.shape, grown // 1024)
"""


def test_a_16_bit_5000px_png_and_mask_decode_within_the_memory_bound(tmp_path: Path) -> None:
    """The 49 KB PNG of issue 16: 5000 x 5000 16-bit grey, within max_pixels, once grew the
    ingress by ~0.7 GB (float64 conversion, full-size RGB(A) copies, the mask at full size).
    Measured as the peak RSS growth of a fresh process (Pillow's memory is not seen by
    tracemalloc)."""
    pixels = np.full((5000, 5000), 1000, "<u2")
    pixels[::7, ::5] = 60000
    buf = io.BytesIO()
    Image.frombytes("I;16", (5000, 5000), pixels.tobytes()).save(buf, "PNG", optimize=True)
    path = tmp_path / "bomb16.png"
    path.write_bytes(buf.getvalue())
    assert len(buf.getvalue()) < 100_000
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])}
    out = subprocess.run(
        [sys.executable, "-c", _MEASURE, str(path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=True,
    ).stdout.split()
    assert out[:5] == ["(1024,", "1024,", "3)", "(1024,", "1024)"]
    assert int(out[5]) <= DECODE_BOUND_MB, f"decode grew the RSS by {out[5]} MB"
