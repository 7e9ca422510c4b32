from __future__ import annotations

import io
import pickle

import numpy as np
import pytest
import torch
from imagefiles import png_header
from PIL import Image

from fsg_ray.io import images


def encode(img: Image.Image, fmt: str = "PNG", **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


@pytest.mark.parametrize("mode", ["L", "P", "RGBA", "CMYK", "I;16", "RGB"])
def test_any_mode_becomes_rgb(mode: str) -> None:
    img = Image.new(mode, (7, 5))
    fmt = "JPEG" if mode == "CMYK" else "PNG"
    out = images.decode_image(encode(img, fmt))
    assert out.mode == "RGB" and out.size == (7, 5)


def test_transparency_is_composited_over_white() -> None:
    clear = Image.new("RGBA", (4, 4), (255, 0, 0, 0))
    assert images.decode_image(encode(clear)).getpixel((0, 0)) == (255, 255, 255)


def test_exif_orientation_is_applied() -> None:
    img = Image.new("RGB", (20, 10), "red")
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise when displayed
    out = images.decode_image(encode(img, "JPEG", exif=exif))
    assert out.size == (10, 20)


def test_corrupt_truncated_and_huge_inputs_are_rejected_with_a_reason() -> None:
    with pytest.raises(images.ImageDecodeError, match="not a decodable image"):
        images.decode_image(b"definitely not an image", name="junk.bin")
    truncated = encode(Image.new("RGB", (64, 64), "blue"), "JPEG")[:200]
    with pytest.raises(images.ImageDecodeError, match="not a decodable image"):
        images.decode_image(truncated)
    big = encode(Image.new("L", (300, 300)))
    with pytest.raises(images.ImageDecodeError, match="exceeds the limit of 1000 pixels"):
        images.decode_image(big, max_pixels=1000)


def test_tensor_round_trip() -> None:
    arr = np.random.default_rng(0).integers(0, 256, (6, 9, 3), dtype=np.uint8)
    t = images.to_tensor(Image.fromarray(arr))
    assert t.shape == (3, 6, 9) and t.dtype == torch.float32 and t.min() >= 0 and t.max() <= 1
    assert np.array_equal(np.asarray(images.to_image(t)), arr)
    mask = images.mask_to_tensor(Image.fromarray(np.array([[0, 127, 128, 255]], dtype=np.uint8)))
    assert mask.tolist() == [[0.0, 0.0, 1.0, 1.0]]


def reason(data: bytes, **kw) -> str:
    with pytest.raises(images.ImageDecodeError) as info:
        images.decode_image(data, name="f.bin", **kw)
    assert info.value.name == "f.bin" and str(info.value) == f"f.bin: {info.value.reason}"
    return info.value.reason


def test_byte_limit_and_empty_input_are_checked_before_decoding() -> None:
    assert reason(b"") == "empty file (0 bytes)"
    assert reason(b"x" * 11, max_bytes=10) == "11 bytes exceeds the limit of 10 bytes"
    assert images.decode_image(encode(Image.new("L", (2, 2))), max_bytes=1000).size == (2, 2)


def test_unknown_formats_get_a_stable_reason() -> None:
    expected = "not a decodable image (not JPEG, PNG, WEBP, BMP, TIFF, GIF)"
    assert reason(b"definitely not an image") == expected
    assert reason(b"\x89PNG\r\n\x1a\n") == expected  # a bare signature is no PNG either


def test_huge_dimensions_are_rejected_from_the_header() -> None:
    # 9000 x 9000 is over MAX_PIXELS; 100000 x 100000 is over Pillow's own bomb limit too.
    assert reason(png_header(9000, 9000)) == "9000x9000 px exceeds the limit of 64000000 pixels"
    assert reason(png_header(100_000, 100_000)).startswith("exceeds the limit of 64000000 pixels")


@pytest.mark.parametrize(
    "data, kw",
    [(b"x" * 11, {"max_bytes": 10}), (png_header(9000, 9000), {}), (png_header(10**5, 10**5), {})],
)
def test_limits_raise_image_too_large_and_bad_bytes_do_not(data: bytes, kw: dict) -> None:
    with pytest.raises(images.ImageTooLarge):
        images.decode_image(data, **kw)
    with pytest.raises(images.ImageDecodeError) as info:
        images.decode_image(data[:30] + b"junk")
    assert not isinstance(info.value, images.ImageTooLarge)


def test_truncated_jpeg_and_png_are_rejected() -> None:
    for fmt in ("JPEG", "PNG"):
        data = encode(Image.effect_noise((64, 64), 50).convert("RGB"), fmt)
        assert reason(data[: len(data) // 2]).startswith("not a decodable image (")


def test_exif_rotation_moves_pixels() -> None:
    arr = np.zeros((16, 32, 3), dtype=np.uint8)
    arr[:, :16] = (255, 0, 0)  # left half red, right half blue
    arr[:, 16:] = (0, 0, 255)
    exif = Image.Exif()
    exif[0x0112] = 6  # displayed rotated 90 degrees clockwise: the left half goes on top
    out = np.asarray(images.decode_image(encode(Image.fromarray(arr), "JPEG", exif=exif)))
    assert out.shape == (32, 16, 3)
    assert out[4, 8, 0] > 200 and out[4, 8, 2] < 60  # top: red
    assert out[28, 8, 2] > 200 and out[28, 8, 0] < 60  # bottom: blue


def test_mode_conversions_keep_the_values() -> None:
    grey = images.decode_image(encode(Image.new("L", (3, 3), 100)))
    assert grey.getpixel((1, 1)) == (100, 100, 100)
    ramp = Image.fromarray(np.array([[0, 1000, 2000]], dtype=np.uint16))
    assert images.decode_image(encode(ramp)).getpixel((1, 0)) == (128, 128, 128)  # max -> 255
    palette = Image.new("P", (2, 2), 0)
    palette.putpalette([10, 20, 30] * 256)
    assert images.decode_image(encode(palette)).getpixel((0, 0)) == (10, 20, 30)
    palette.info["transparency"] = 0
    assert images.decode_image(encode(palette)).getpixel((0, 0)) == (255, 255, 255)
    half = Image.new("RGBA", (2, 2), (0, 0, 0, 128))
    assert images.decode_image(encode(half)).getpixel((0, 0)) == (127, 127, 127)
    paper = images.decode_image(encode(Image.new("CMYK", (4, 4), (0, 0, 0, 0)), "JPEG"))
    assert min(paper.getpixel((1, 1))) >= 250  # no ink: white


def test_decode_mask_thresholds_and_resizes_with_nearest() -> None:
    arr = np.zeros((4, 4), dtype=np.uint8)
    arr[:, 2:] = 255
    mask = images.decode_mask(encode(Image.fromarray(arr)), size=(2, 8), name="m.png")
    assert mask.dtype == torch.float32 and mask.shape == (2, 8)
    assert mask.tolist() == [[0.0] * 4 + [1.0] * 4] * 2
    assert images.decode_mask(encode(Image.fromarray(arr))).shape == (4, 4)
    with pytest.raises(images.ImageDecodeError, match="m.png: empty file"):
        images.decode_mask(b"", (2, 2), name="m.png")


def test_decode_errors_pickle_for_ray() -> None:
    error = pickle.loads(pickle.dumps(images.ImageDecodeError("s3://b/k.jpg", "empty file")))
    assert (error.name, error.reason, str(error)) == ("s3://b/k.jpg", "empty file", str(error))
    assert str(error) == "s3://b/k.jpg: empty file"


def test_min_side_decodes_a_large_jpeg_at_a_reduced_scale_still_covering_it() -> None:
    gen = np.random.default_rng(0)
    pixels = gen.integers(0, 256, (6, 8, 3), dtype=np.uint8).repeat(200, 0).repeat(200, 1)
    jpeg = encode(Image.fromarray(pixels), "JPEG", quality=95)  # 1600 x 1200, 200 px tiles
    assert images.decode_image(jpeg).size == (1600, 1200)
    assert images.decode_image(jpeg, min_side=256).size == (400, 300)  # 1/4: 300 >= 256
    assert images.decode_image(jpeg, min_side=301).size == (800, 600)  # 1/4 would be 300
    assert images.decode_image(jpeg, min_side=2000).size == (1600, 1200)  # never enlarged
    small = images.decode_image(jpeg, min_side=256)
    full = images.decode_image(jpeg).resize(small.size, Image.Resampling.BOX)
    assert np.abs(np.asarray(small, dtype=int) - np.asarray(full, dtype=int)).mean() < 1
    # EXIF orientation still applied, on the reduced pixels
    exif = Image.Exif()
    exif[0x0112] = 6
    turned = encode(Image.fromarray(pixels), "JPEG", exif=exif)
    assert images.decode_image(turned, min_side=256).size == (300, 400)
    # other formats decode at full size
    assert images.decode_image(encode(Image.fromarray(pixels)), min_side=256).size == (1600, 1200)
