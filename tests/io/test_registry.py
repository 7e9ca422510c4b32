"""The style registry on a local folder and on a real S3 API (moto): versions, atomic publish."""

from __future__ import annotations

import io
import json
import re
import threading
from datetime import datetime
from pathlib import Path
from typing import Any, NamedTuple

import pytest
import torch
from conftest import micro_config

from fsg_ray.app.main import main
from fsg_ray.config import StorageOptions
from fsg_ray.core import algorithm
from fsg_ray.core.models import VGGWeights
from fsg_ray.io import registry
from fsg_ray.io.storage import Storage, StorageError
from fsg_ray.io.uri import join

CPU = torch.device("cpu")


class Registry(NamedTuple):
    storage: Storage
    uri: str


@pytest.fixture
def local(tmp_path: Path) -> Registry:
    return Registry(Storage(), str(tmp_path / "registry"))


@pytest.fixture(params=["local", "s3"])
def reg(request: pytest.FixtureRequest, tmp_path: Path) -> Registry:
    """An empty registry in a local folder, or below a prefix of a fresh bucket."""
    if request.param == "local":
        return Registry(Storage(), str(tmp_path / "registry"))
    server, bucket = request.getfixturevalue("s3_server"), request.getfixturevalue("s3_bucket")
    options = StorageOptions(endpoint_url=server, region="us-east-1", retries=2, backoff_s=0.01)
    return Registry(Storage(options), join(bucket, "registry"))


@pytest.fixture(scope="module")
def trained(vgg: VGGWeights) -> tuple[algorithm.Run, dict[str, Any]]:
    """A tiny run (untrained: its random decoder is enough here) and its generator state."""
    cfg = micro_config()
    style = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    run = algorithm.new_run(cfg, vgg, style, CPU)
    return run, algorithm.generator_state(run)


@pytest.fixture
def state(trained: tuple[algorithm.Run, dict[str, Any]]) -> dict[str, Any]:
    return trained[1]


def variant(state: dict[str, Any], seed: int) -> dict[str, Any]:
    """The state with the decoder's float weights shifted, to tell versions apart."""
    g = torch.Generator().manual_seed(seed)
    decoder = {
        k: v + 0.01 * torch.randn(v.shape, generator=g) if v.is_floating_point() else v
        for k, v in state["decoder"].items()
    }
    return {**state, "decoder": decoder}


def meta(loss: float = 1.5) -> dict[str, Any]:
    return {"final_losses": {"global": loss, "patch": 2 * loss}, "git_commit": "abc"}


def test_publish_two_versions_moves_current(reg: Registry, state: dict[str, Any]) -> None:
    given = meta()
    v1 = registry.publish(*reg, "stripes", state, given, files={"samples.png": b"png-bytes"})
    assert (v1.version, v1.uri) == ("v1", join(reg.uri, "stripes", "v1"))
    assert given == meta(), "publish must not change its metadata argument"
    assert v1.metadata["version"] == "v1" and v1.metadata["git_commit"] == "abc"
    assert datetime.fromisoformat(v1.metadata["published_at"]).utcoffset() is not None
    assert registry.resolve(*reg, "stripes") == v1
    v2 = registry.publish(*reg, "stripes", variant(state, 1), meta(0.5))
    assert v2.version == "v2" and registry.resolve(*reg, "stripes") == v2
    assert registry.resolve(*reg, "stripes", "v1") == v1
    assert reg.storage.read_bytes(join(v1.uri, "samples.png")) == b"png-bytes"
    index = registry.list_styles(*reg)["stripes"]
    assert (index.current, list(index.versions)) == ("v2", ["v1", "v2"])
    assert index.versions["v1"].files == ("generator.pt", "metadata.json", "samples.png")
    assert index.versions["v2"].final_losses == {"global": 0.5, "patch": 1.0}
    assert index.versions["v2"].vgg_weights == "random:0"
    summary = json.loads(reg.storage.read_bytes(join(reg.uri, "index.json")))
    assert summary == {"stripes": "v2"}


def test_list_styles_of_an_empty_or_missing_registry(reg: Registry, tmp_path: Path) -> None:
    assert registry.list_styles(*reg) == {}
    (tmp_path / "empty").mkdir()
    assert registry.list_styles(Storage(), str(tmp_path / "empty")) == {}


def test_unknown_style_or_version_lists_what_exists(reg: Registry, state: dict[str, Any]) -> None:
    with pytest.raises(registry.StyleNotFound, match="known styles: none"):
        registry.resolve(*reg, "stripes")
    registry.publish(*reg, "stripes", state, meta())
    registry.publish(*reg, "dots", state, meta())
    with pytest.raises(
        registry.StyleNotFound, match="no style 'plaid'.*known styles: dots, stripes"
    ):
        registry.resolve(*reg, "plaid")
    with pytest.raises(
        registry.VersionNotFound, match=r"no version 'v9'.*published: v1 \(current v1\)"
    ):
        registry.resolve(*reg, "stripes", "v9")
    with pytest.raises(ValueError, match="bad version 'latest'"):
        registry.resolve(*reg, "stripes", "latest")


@pytest.mark.parametrize("name", ["Stripes", "", "-x", "a/b", "../up", "x" * 65, "dots.v2"])
def test_bad_style_name_is_rejected_before_any_write(
    local: Registry, state: dict[str, Any], name: str
) -> None:
    with pytest.raises(ValueError, match=re.escape(f"bad style name {name!r}")):
        registry.publish(*local, name, state, meta())
    with pytest.raises(ValueError, match="bad style name"):
        registry.resolve(*local, name)
    assert not Path(local.uri).exists()


@pytest.mark.parametrize(
    ("generator", "metadata", "files", "error"),
    [
        ({"decoder": {}}, {}, None, "not a generator state"),
        (None, {"when": datetime.now()}, None, "metadata is not JSON-serialisable"),
        (None, {"final_losses": [1.0]}, None, "final_losses must map loss names"),
        (None, {"final_losses": {"g": "low"}}, None, "could not convert string to float"),
        (None, {}, {"metadata.json": b"{}"}, "bad extra file name 'metadata.json'"),
        (None, {}, {"sub/x.png": b""}, "bad extra file name 'sub/x.png'"),
    ],
)
def test_bad_arguments_are_rejected_before_any_write(
    local: Registry,
    state: dict[str, Any],
    generator: dict[str, Any] | None,
    metadata: dict[str, Any],
    files: dict[str, bytes] | None,
    error: str,
) -> None:
    with pytest.raises(ValueError, match=re.escape(error)):
        registry.publish(*local, "stripes", generator or state, metadata, files)
    assert not Path(local.uri).exists()


def test_load_round_trip_gives_the_same_generator(
    local: Registry, trained: tuple[algorithm.Run, dict[str, Any]], vgg: VGGWeights
) -> None:
    run, state = trained
    registry.publish(*local, "stripes", state, meta())
    registry.publish(*local, "stripes", variant(state, 1), meta())
    x = torch.rand(2, 3, 20, 28, generator=torch.Generator().manual_seed(0))
    gen, found = registry.load(*local, "stripes", CPU, version="v1")  # VGG from the state's spec
    shared, _ = registry.load(*local, "stripes", CPU, version="v1", vgg=vgg)
    newest, current = registry.load(*local, "stripes", CPU, vgg=vgg)
    assert (found.version, current.version) == ("v1", "v2") and not gen.training
    with torch.no_grad():
        expected = algorithm.load_generator(state, vgg, CPU)(x)
        assert torch.equal(gen(x), expected) and torch.equal(shared(x), expected)
        assert not torch.equal(newest(x), expected)
        # channels_last changes the summation order, not the function
        assert torch.allclose(expected, run.nets.gen.eval()(x), atol=1e-5)


def test_load_refuses_another_encoder(local: Registry, state: dict[str, Any]) -> None:
    registry.publish(*local, "stripes", state, meta())
    other = VGGWeights("random:1", {}, "0123456789abcdef")
    with pytest.raises(algorithm.EncoderMismatchError, match="random:0"):
        registry.load(*local, "stripes", CPU, vgg=other)


def test_crash_before_the_index_write_leaves_the_old_version(
    reg: Registry, state: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    v1 = registry.publish(*reg, "stripes", state, meta())

    def crash_on_index(uri: str, data: bytes, etag: str | None) -> str:
        raise StorageError(f"{uri}: simulated crash")

    monkeypatch.setattr(reg.storage, "write_if_match", crash_on_index)
    with pytest.raises(StorageError, match="simulated crash"):
        registry.publish(*reg, "stripes", variant(state, 1), meta(), files={"samples.png": b"old"})
    leftover = join(reg.uri, "stripes", "v2")
    assert reg.storage.exists(join(leftover, "generator.pt")), "the crash left files behind"
    assert registry.resolve(*reg, "stripes") == v1
    assert list(registry.list_styles(*reg)["stripes"].versions) == ["v1"]
    with pytest.raises(registry.VersionNotFound):
        registry.resolve(*reg, "stripes", "v2")
    monkeypatch.undo()
    v3 = registry.publish(*reg, "stripes", variant(state, 2), meta())
    # The leftover folder is not reused, so its samples.png cannot leak into the new version.
    assert v3.version == "v3" and registry.resolve(*reg, "stripes") == v3
    assert not reg.storage.exists(join(v3.uri, "samples.png"))
    assert list(registry.list_styles(*reg)["stripes"].versions) == ["v1", "v3"]


def test_concurrent_reader_never_sees_a_partial_version(
    reg: Registry, state: dict[str, Any]
) -> None:
    registry.publish(*reg, "stripes", state, meta())
    publishes, errors, seen = 6, [], []

    def publisher() -> None:
        try:
            for i in range(publishes):
                registry.publish(*reg, "stripes", variant(state, i), meta(i), files={"s.png": b"x"})
        except Exception as e:  # reported by the main thread
            errors.append(e)

    thread = threading.Thread(target=publisher)
    thread.start()
    try:
        while thread.is_alive() or not seen:
            found = registry.resolve(*reg, "stripes")
            data = reg.storage.read_bytes(found.generator_uri)
            torch.load(io.BytesIO(data), weights_only=True)
            assert found.version == "v1" or reg.storage.read_bytes(join(found.uri, "s.png")) == b"x"
            seen.append(registry.resolve(*reg, "stripes", found.version).metadata["version"])
    finally:
        thread.join()
    assert not errors
    numbers = [int(v[1:]) for v in seen]
    assert numbers == sorted(numbers), "the current version never goes back"
    assert len(set(numbers)) > 1, "the reader ran while versions were being published"
    assert registry.resolve(*reg, "stripes").version == f"v{publishes + 1}"


def test_styles_publish_concurrently_and_the_summary_is_advisory(
    local: Registry, state: dict[str, Any]
) -> None:
    def publish_three(style: str) -> None:
        for _ in range(3):
            registry.publish(*local, style, state, meta())

    threads = [threading.Thread(target=publish_three, args=(s,)) for s in ("a", "b", "c")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # A stale summary (the result of a lost race) changes nothing for readers.
    local.storage.write_bytes(join(local.uri, "index.json"), b"{}")
    styles = registry.list_styles(*local)
    assert {s: i.current for s, i in styles.items()} == {"a": "v3", "b": "v3", "c": "v3"}
    assert registry.resolve(*local, "b").version == "v3"


def test_fsg_styles_prints_a_table_and_json(
    local: Registry, state: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["styles", local.uri]) == 0
    assert capsys.readouterr().out.strip() == f"no styles published in {local.uri}"
    registry.publish(*local, "stripes", state, meta())
    registry.publish(*local, "stripes", state, meta(0.25))
    registry.publish(*local, "dots", state, {})
    assert main(["styles", local.uri]) == 0
    header, dots, stripes = capsys.readouterr().out.splitlines()
    assert header.split() == [
        "style",
        "current",
        "versions",
        "mode",
        "published_at",
        "final_losses",
        "vgg_weights",
    ]
    assert dots.split()[:3] == ["dots", "v1", "v1"] and dots.split()[-1] == "random:0"
    assert stripes.split()[:4] == ["stripes", "v2", "v1,v2", "full"]
    assert "global=0.25 patch=0.5" in stripes and stripes.endswith("random:0")
    assert main(["styles", "--json", local.uri]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert listed["stripes"]["current"] == "v2" and list(listed["stripes"]["versions"]) == [
        "v1",
        "v2",
    ]


def test_fsg_styles_on_s3(
    s3_server: str, s3_bucket: str, state: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    storage = Storage(StorageOptions(endpoint_url=s3_server, region="us-east-1"))
    registry.publish(storage, join(s3_bucket, "reg"), "stripes", state, meta())
    assert main(["styles", "--endpoint-url", s3_server, join(s3_bucket, "reg")]) == 0
    assert capsys.readouterr().out.splitlines()[1].split()[:2] == ["stripes", "v1"]
    assert main(["styles", "--endpoint-url", s3_server, "s3://no-such-bucket/reg"]) == 2
    assert "no-such-bucket" in capsys.readouterr().err


def test_fingerprint_helpers(tmp_path: Path) -> None:
    commit = registry.git_commit()
    assert commit is None or re.fullmatch(r"[0-9a-f]{40}", commit)
    assert registry.git_commit(tmp_path) is None
    files = [("s3://b/x.jpg", 10), ("s3://b/y.jpg", 20)]
    assert registry.data_fingerprint(files) == registry.data_fingerprint(files[::-1])
    assert registry.data_fingerprint(files) != registry.data_fingerprint(
        [("s3://b/x.jpg", 11), files[1]]
    )


def test_an_index_whose_current_is_not_a_version_is_refused(local: Registry) -> None:
    uri = join(local.uri, "stripes", "index.json")
    index = {"format": 1, "style": "stripes", "current": "v2", "versions": {}}
    local.storage.write_bytes(uri, json.dumps(index).encode())
    with pytest.raises(ValueError, match=r"index.json: not a style registry index.*'v2'"):
        registry.resolve(*local, "stripes")
