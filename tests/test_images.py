from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from fsg_ray import images


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
