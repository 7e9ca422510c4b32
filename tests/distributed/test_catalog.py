"""The ingress's style list survives registry outages: the last good list keeps answering,
new styles fail fast with 503, recovery is automatic; against a fake reader and against the
local S3 server stopped and made to hang mid-run."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest
from conftest import tiny_state
from s3_server import HOST, fake_aws_credentials, free_port, moto_server, wait_for_port

from fsg_ray.config import ServeConfig, StorageOptions
from fsg_ray.core.models import VGGWeights
from fsg_ray.distributed.api import ApiError
from fsg_ray.distributed.catalog import RegistryUnavailable, StyleCatalog
from fsg_ray.io import registry
from fsg_ray.io.storage import Storage, StorageError


def index(current: str) -> registry.StyleIndex:
    summary = registry.VersionSummary("2026-01-01T00:00:00+00:00", "/v.pt", {}, ())
    return registry.StyleIndex("x", current, {current: summary})


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def settle(catalog: StyleCatalog) -> None:
    """Waits for a background refresh to end."""
    for _ in range(200):
        if catalog._running is None:
            return
        time.sleep(0.01)


def test_catalog_refreshes_in_the_background_and_on_a_rate_limited_miss() -> None:
    published = {"dots": index("v1")}
    reads = []

    def read() -> dict[str, registry.StyleIndex]:
        reads.append(1)
        return dict(published)

    clock = Clock()
    catalog = StyleCatalog(read, ttl_s=10, miss_every_s=1, clock=clock)
    assert catalog.current("dots") == "v1" and len(reads) == 1
    published["dots"] = index("v2")
    clock.now = 5
    assert catalog.current("dots") == "v1" and len(reads) == 1  # trusted for 10 s
    clock.now = 10
    assert catalog.current("dots") == "v1"  # served at once, refreshed behind
    settle(catalog)
    assert catalog.current("dots") == "v2" and len(reads) == 2
    for _ in range(20):  # unknown names: one re-read at most every miss_every_s
        with pytest.raises(ApiError) as info:
            catalog.current("waves")
    assert len(reads) == 2 and info.value.status == 404  # the list was read just now
    published["waves"] = index("v1")
    clock.now = 12
    assert catalog.current("waves") == "v1" and len(reads) == 3  # found without the ttl


def test_a_failing_registry_keeps_the_last_list_and_fails_new_styles_fast() -> None:
    """On the code before issue 16 a failed refresh raised although a list was held."""
    state = {"fail": False, "reads": 0}

    def read() -> dict[str, registry.StyleIndex]:
        state["reads"] += 1
        if state["fail"]:
            raise StorageError("s3://b/registry: connection refused")
        return {"dots": index("v1")}

    clock = Clock()
    catalog = StyleCatalog(read, ttl_s=1, max_stale_s=60, retry_s=5, wait_s=1, clock=clock)
    assert catalog.current("dots") == "v1"
    state["fail"], clock.now = True, 2
    assert catalog.current("dots") == "v1"  # stale copy served; refresh failed behind
    settle(catalog)
    reads = state["reads"]
    for _ in range(50):  # the failure is remembered: no read per request
        assert catalog.current("dots") == "v1"
        with pytest.raises(RegistryUnavailable) as info:
            catalog.current("waves")
    assert state["reads"] == reads and info.value.status == 503
    clock.now = 70  # past max_stale_s and retry_s: one read, which fails: 503
    with pytest.raises(RegistryUnavailable):
        catalog.styles()
    state["fail"], clock.now = False, 76  # the registry is back: recovered by itself
    assert catalog.current("dots") == "v1"


def test_a_bad_style_index_is_left_out_not_fatal(tmp_path, vgg: VGGWeights) -> None:  # type: ignore[no-untyped-def]
    from fsg_ray.distributed.serve import read_styles

    reg = str(tmp_path)
    for seed, style in enumerate(("dots", "stripes")):
        registry.publish(Storage(), reg, style, tiny_state(vgg, seed), {})
    (tmp_path / "stripes" / registry.INDEX).write_text("{not json")
    assert list(read_styles(Storage(), reg)) == ["dots"]
    with pytest.raises(ValueError):
        registry.list_styles(Storage(), reg)


@pytest.fixture
def hanging_port() -> Iterator[Callable[[int], threading.Event]]:
    """Starts, on a port, a server that accepts connections and never answers."""
    stops: list[threading.Event] = []

    def start(port: int) -> threading.Event:
        stop = threading.Event()
        srv = socket.socket()
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        srv.bind((HOST, port))
        srv.listen(64)
        srv.settimeout(0.1)

        def run() -> None:
            held = []
            while not stop.is_set():
                try:
                    held.append(srv.accept()[0])
                except TimeoutError:
                    continue
            for conn in held:
                conn.close()
            srv.close()

        threading.Thread(target=run, daemon=True).start()
        stops.append(stop)
        return stop

    yield start
    for stop in stops:
        stop.set()


def test_s3_registry_stopped_then_hanging_then_back(
    vgg: VGGWeights, hanging_port: Callable[[int], threading.Event]
) -> None:
    """The local S3 server stops, then a server that never answers takes its port, then S3
    comes back: cached styles keep answering throughout, a new style fails with 503 within
    the storage timeouts, and the list recovers without a restart."""
    from fsg_ray.distributed.serve import catalog_for

    port = free_port()
    url = f"http://{HOST}:{port}"
    with fake_aws_credentials():
        with moto_server(port):
            import boto3

            boto3.client("s3", endpoint_url=url, region_name="us-east-1").create_bucket(
                Bucket="reg"
            )
            storage = Storage(StorageOptions(endpoint_url=url, region="us-east-1"))
            registry.publish(storage, "s3://reg/r", "dots", tiny_state(vgg, 0), {})
            cfg = ServeConfig(
                registry="s3://reg/r",
                endpoint_url=url,
                s3_region="us-east-1",
                index_ttl_s=0.2,
                index_retry_s=0.5,
                storage_timeout_s=0.5,
            )
            catalog = catalog_for(cfg)
            # The first read may miss the 0.5 s timeouts on a loaded machine (the client's
            # start-up, one slow answer of moto): it is tried again until it lands.
            deadline = time.monotonic() + 30
            while True:
                try:
                    assert catalog.current("dots") == "v1"
                    break
                except RegistryUnavailable:
                    assert time.monotonic() < deadline, "the running S3 server was never read"
                    time.sleep(cfg.index_retry_s)
        for phase in ("stopped", "hanging"):
            stop = hanging_port(port) if phase == "hanging" else None
            deadline = time.monotonic() + 4
            while time.monotonic() < deadline:  # many refresh periods
                assert catalog.current("dots") == "v1"
                time.sleep(0.05)
            start = time.monotonic()
            with pytest.raises(RegistryUnavailable):
                catalog.current("waves")
            assert time.monotonic() - start < 4 * cfg.storage_timeout_s + 1, phase
            if stop is not None:
                stop.set()
                time.sleep(0.3)
        with moto_server(port):
            wait_for_port(port)
            registry.publish(storage, "s3://reg/r", "waves", tiny_state(vgg, 1), {})
            for _ in range(100):
                try:
                    if catalog.current("waves") == "v1":
                        break
                except RegistryUnavailable:
                    time.sleep(0.1)
            assert catalog.current("waves") == "v1" and catalog.current("dots") == "v1"
