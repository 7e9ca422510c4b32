"""VGG weights read through storage: local files and S3 (fsg_ray.io.weights)."""

from __future__ import annotations

import io

import pytest
import torch
from torchvision.models.vgg import cfgs, make_layers

from fsg_ray.config import StorageOptions
from fsg_ray.core.models import VGG19Features, VGGWeights
from fsg_ray.io.storage import Storage
from fsg_ray.io.weights import load_vgg


def test_torchvision_state_dict_loads_unchanged(tmp_path) -> None:
    tv = torch.nn.Module()
    tv.features = make_layers(cfgs["E"])
    tv.classifier = torch.nn.Linear(2, 2)  # ignored, as torchvision's classifier is
    path = tmp_path / "vgg.pth"
    torch.save(tv.state_dict(), path)
    w = load_vgg(str(path))
    enc = VGG19Features(w.state, "relu5_1")
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        ref = tv.features[:30]((x - enc.mean) / enc.std)
        assert torch.allclose(enc(x, ("relu5_1",))["relu5_1"], ref, atol=1e-5)


def test_bad_state_dict_is_refused(tmp_path) -> None:
    path = tmp_path / "bad.pt"
    torch.save({"conv.weight": torch.zeros(1)}, path)
    with pytest.raises(ValueError, match="not a VGG-19 state dict"):
        load_vgg(str(path))
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="cannot read a state dict"):
        load_vgg(str(tmp_path / "junk.pt"))
    with pytest.raises(ValueError, match="cannot read"):
        load_vgg(str(tmp_path / "missing.pt"))


def test_state_dict_loads_from_s3(s3_server: str, s3_bucket: str, vgg: VGGWeights) -> None:
    storage = Storage(StorageOptions(endpoint_url=s3_server))
    buf = io.BytesIO()
    torch.save(vgg.state, buf)
    storage.write_bytes(f"{s3_bucket}/weights/vgg19.pth", buf.getvalue())
    loaded = load_vgg(f"{s3_bucket}/weights/vgg19.pth", storage)
    assert loaded.fingerprint == vgg.fingerprint and loaded.spec.startswith("s3://")
    with pytest.raises(ValueError, match="missing.pth"):
        load_vgg(f"{s3_bucket}/missing.pth", storage)
