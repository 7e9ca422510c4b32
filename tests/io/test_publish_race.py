"""Many publishers of one style at once, as threads and as processes, on local folders and on a
real S3 API: every publish gets its own version, with its own weights and metadata."""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import pytest
import torch
from conftest import micro_config

from fsg_ray.config import StorageOptions
from fsg_ray.core import algorithm
from fsg_ray.core.models import VGGWeights
from fsg_ray.io import registry
from fsg_ray.io.storage import Conflict, Storage
from fsg_ray.io.uri import join

CPU = torch.device("cpu")
THREADS, PROCESSES = 6, 4


class Registry(NamedTuple):
    storage: Storage
    uri: str


@pytest.fixture
def serialised_moto() -> Iterator[None]:
    """Makes moto evaluate a conditional PutObject atomically, as S3 does.

    moto checks ``If-None-Match``/``If-Match`` and then stores the object in two steps without a
    lock, so two racing requests can both pass the check; S3 decides them atomically. The
    server runs in this process (tests/s3_server.py), so one lock around its handler is enough.
    """
    from moto.s3.responses import S3Response

    lock, put = threading.Lock(), S3Response.put_object

    def locked(self: Any) -> Any:
        with lock:
            return put(self)

    S3Response.put_object = locked  # type: ignore[method-assign]
    try:
        yield
    finally:
        S3Response.put_object = put  # type: ignore[method-assign]


@pytest.fixture(params=["local", "s3"])
def reg(request: pytest.FixtureRequest, tmp_path: Path) -> Registry:
    if request.param == "local":
        return Registry(Storage(), str(tmp_path / "registry"))
    request.getfixturevalue("serialised_moto")
    server, bucket = request.getfixturevalue("s3_server"), request.getfixturevalue("s3_bucket")
    options = StorageOptions(endpoint_url=server, region="us-east-1", retries=2, backoff_s=0.01)
    return Registry(Storage(options), join(bucket, "registry"))


@pytest.fixture(scope="module")
def state(vgg: VGGWeights) -> dict[str, Any]:
    cfg = micro_config()
    style = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    return algorithm.generator_state(algorithm.new_run(cfg, vgg, style, CPU))


def variant(state: dict[str, Any], writer: int) -> dict[str, Any]:
    """The state with its decoder weights shifted by the writer's number, to tell them apart."""
    decoder = {k: v + writer if v.is_floating_point() else v for k, v in state["decoder"].items()}
    return {**state, "decoder": decoder}


def check_registry(reg: Registry, state: dict[str, Any], writers: int) -> None:
    """N distinct versions, each holding one writer's weights and metadata, all in the index."""
    index = registry.list_styles(*reg)["leopard"]
    assert len(index.versions) == writers, f"versions in the index: {list(index.versions)}"
    assert index.current in index.versions
    by_writer = {}
    for version in index.versions:
        found = registry.resolve(*reg, "leopard", version)
        writer = found.metadata["writer"]
        assert found.metadata["version"] == version
        weights = torch.load(
            io.BytesIO(reg.storage.read_bytes(found.generator_uri)), weights_only=True
        )
        expected = variant(state, writer)["decoder"]
        key = next(k for k, v in expected.items() if v.is_floating_point())
        assert torch.equal(weights["decoder"][key], expected[key]), (
            f"{version}: weights of another writer than its metadata's ({writer})"
        )
        by_writer[writer] = version
    assert sorted(by_writer) == list(range(writers)), "a writer's version was lost"


def test_concurrent_publishers_in_threads(reg: Registry, state: dict[str, Any]) -> None:
    start, errors = threading.Barrier(THREADS), []

    def publish(writer: int) -> None:
        try:
            start.wait()
            registry.publish(*reg, "leopard", variant(state, writer), {"writer": writer})
        except Exception as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=publish, args=(i,)) for i in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    check_registry(reg, state, THREADS)


CHILD = """
import io, json, os, sys, time, torch
from fsg_ray.config import StorageOptions
from fsg_ray.io import registry
from fsg_ray.io.storage import Storage
writer, folder, uri, endpoint = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
state = torch.load(os.path.join(folder, f"state{writer}.pt"), weights_only=True)
options = StorageOptions(endpoint_url=endpoint or None, region="us-east-1", backoff_s=0.01)
storage = Storage(options)
open(os.path.join(folder, f"ready{writer}"), "w").close()
while not os.path.exists(os.path.join(folder, "go")):
    time.sleep(0.001)
found = registry.publish(storage, uri, "leopard", state, {"writer": writer})
print(json.dumps({"writer": writer, "version": found.version}))
"""


def test_concurrent_publishers_in_processes(
    reg: Registry, state: dict[str, Any], tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    endpoint = reg.storage.options.endpoint_url or ""
    for writer in range(PROCESSES):
        torch.save(variant(state, writer), tmp_path / f"state{writer}.pt")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    with contextlib.ExitStack() as stack:
        children = [
            stack.enter_context(
                subprocess.Popen(
                    [sys.executable, "-c", CHILD, str(w), str(tmp_path), reg.uri, endpoint],
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    env=env,
                    text=True,
                )
            )
            for w in range(PROCESSES)
        ]
        deadline = time.monotonic() + 120
        while not all((tmp_path / f"ready{w}").exists() for w in range(PROCESSES)):
            assert time.monotonic() < deadline, "the publishers did not start"
            assert all(c.poll() is None for c in children), "a publisher died while starting"
            time.sleep(0.01)
        (tmp_path / "go").touch()  # all start publishing at once
        outs = [c.communicate(timeout=120) for c in children]
    assert [c.returncode for c in children] == [0] * PROCESSES, [err for _, err in outs]
    versions = [json.loads(out)["version"] for out, _ in outs]
    assert len(set(versions)) == PROCESSES, f"two publishers got one version: {versions}"
    check_registry(reg, state, PROCESSES)


def test_index_conflict_is_retried_and_current_is_the_last_committed(
    reg: Registry, state: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A publisher whose index commit loses a race re-reads the index and commits again."""
    write_if_match, raced = reg.storage.write_if_match, []

    def commit_after_a_rival(uri: str, data: bytes, etag: str | None) -> str:
        if not raced and uri.endswith("leopard/index.json"):
            raced.append(True)  # a rival claims the next number and commits first
            registry.publish(*reg, "leopard", variant(state, 1), {"writer": 1})
        return write_if_match(uri, data, etag)

    monkeypatch.setattr(reg.storage, "write_if_match", commit_after_a_rival)
    first = registry.publish(*reg, "leopard", variant(state, 0), {"writer": 0})
    assert first.version == "v1"
    check_registry(reg, state, 2)
    index = registry.list_styles(*reg)["leopard"]
    assert index.current == "v1", "the last commit (v1, after v2's) is the current version"


def test_a_stale_index_write_is_a_conflict(reg: Registry) -> None:
    uri = join(reg.uri, "x", "index.json")
    reg.storage.write_if_match(uri, b"one", None)
    with pytest.raises(Conflict, match="x/index.json"):
        reg.storage.write_if_match(uri, b"two", None)
    data, etag = reg.storage.read_with_etag(uri)
    assert data == b"one"
    reg.storage.write_if_match(uri, b"two", etag)
    with pytest.raises(Conflict):
        reg.storage.write_if_match(uri, b"three", etag)
    assert reg.storage.read_bytes(uri) == b"two"
    claim = join(reg.uri, "x", "claim")
    reg.storage.write_bytes_if_absent(claim, b"mine")
    with pytest.raises(Conflict):
        reg.storage.write_bytes_if_absent(claim, b"yours")
    assert reg.storage.read_bytes(claim) == b"mine"
