"""``fsg serve`` over real HTTP on 127.0.0.1, against Ray Serve on the session's local Ray.

Two applications share one Serve instance: ``fsg`` at / (open, batching on) and ``strict`` at
/strict (an API key, tiny queues, batching off). Replicas reserve no CPUs so that the rest of
the suite keeps its two; Serve is shut down at the end of the module.
"""

from __future__ import annotations

import dataclasses
import functools
import http.client
import io
import json
import shutil
import socket
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import requests
import torch
from conftest import tiny_state
from imagefiles import png_header
from PIL import Image

from fsg_ray.config import ServeConfig
from fsg_ray.core.models import VGGWeights
from fsg_ray.io import compositing, registry
from fsg_ray.io.generators import EncoderCache, Runner, for_runtime, run_loaded
from fsg_ray.io.storage import Storage

pytestmark = pytest.mark.ray

CPU = torch.device("cpu")
#: The strict app's key: conftest's ray_local puts it in the job's runtime_env, as `fsg serve`
#: does with FSG_API_KEY, so that it never appears in the application's arguments.
KEY_ENV = "FSG_TEST_SERVE_KEY"
KEY = "test-key-5b8f2c"
STYLES = ("dots", "stripes")


def png(rgb: np.ndarray, fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format=fmt)
    return buf.getvalue()


def noise(h: int, w: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclasses.dataclass(frozen=True)
class Server:
    url: str
    registry: str


@pytest.fixture(scope="module")
def server(
    ray_local: None, vgg: VGGWeights, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    from ray import serve

    from fsg_ray.distributed.serve import build_app, start_serve

    reg = str(tmp_path_factory.mktemp("registry"))
    for seed, style in enumerate(STYLES):
        registry.publish(
            Storage(), reg, style, tiny_state(vgg, seed), {"final_losses": {"global": 1.0}}
        )
    port = free_port()
    base = ServeConfig(
        registry=reg,
        max_body_bytes=200_000,
        max_pixels=250_000,
        max_side=256,
        default_max_side=64,
        index_ttl_s=0.5,
        replica_cpus=0,
        ingress_cpus=0,
        body_timeout_s=2.0,
    )
    # Batching: the first request of a batch waits up to 0.3 s for others. The open app runs
    # the CPU default (topology auto: one hop), the strict one two hops, so both are tested.
    open_app = build_app(dataclasses.replace(base, batch_wait_timeout_s=0.3, allow_anonymous=True))
    strict = dataclasses.replace(
        base,
        topology="two_hop",
        api_key_env=KEY_ENV,
        max_batch_size=1,
        max_ongoing_requests=1,
        max_queued_requests=1,
        ingress_max_ongoing_requests=4,
        ingress_max_queued_requests=1,
    )
    start_serve("127.0.0.1", port)
    try:  # both applications start at once: their replicas' start-up overlaps
        serve.run_many(
            [
                serve.RunTarget(open_app, name="fsg", route_prefix="/"),
                serve.RunTarget(build_app(strict), name="strict", route_prefix="/strict"),
            ]
        )
        yield Server(f"http://127.0.0.1:{port}", reg)
    finally:
        serve.shutdown()


def restyle(
    url: str, style: str, data: bytes, query: str = "", headers: dict | None = None
) -> requests.Response:
    return requests.post(
        f"{url}/v1/styles/{style}/restyle{query}",
        data=data,
        headers={"Content-Type": "image/png", **(headers or {})},
        timeout=120,
    )


@functools.cache
def generator(reg: str, style: str, version: str | None) -> Runner:
    """The generator as the server runs it (``runtime: auto``: bf16 or ONNX Runtime on this
    CPU, :func:`fsg_ray.io.generators.resolve_runtime`)."""
    return for_runtime(EncoderCache(Storage(), CPU).load(reg, style, version)[0], "auto", CPU)


def expected(reg: str, style: str, image: np.ndarray, version: str | None = None) -> np.ndarray:
    """The bare generator's output, in this process."""
    gen = generator(reg, style, version)
    return run_loaded({style: gen}, image[None], {style: [0]}, CPU)[style][0]


def decoded(response: requests.Response) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(response.content)).convert("RGB"))


def assert_json_error(response: requests.Response, status: int, error: str) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"] == error and body["reason"], body
    return body


# ---------------------------------------------------------------- the API


def test_health_readiness_styles_and_docs(server: Server) -> None:
    assert requests.get(f"{server.url}/healthz", timeout=30).json() == {"status": "ok"}
    assert requests.get(f"{server.url}/readyz", timeout=30).json() == {
        "status": "ready",
        "styles": 2,
    }
    styles = requests.get(f"{server.url}/v1/styles", timeout=30).json()["styles"]
    assert [(s["name"], s["current"]) for s in styles] == [("dots", "v1"), ("stripes", "v1")]
    assert styles[0]["versions"][0]["final_losses"] == {"global": 1.0}
    assert server.registry not in json.dumps(styles)
    spec = requests.get(f"{server.url}/openapi.json", timeout=30).json()
    assert "/v1/styles/{style}/restyle" in spec["paths"]
    assert requests.get(f"{server.url}/docs", timeout=30).status_code == 200
    page = requests.get(f"{server.url}/", timeout=30)
    assert page.headers["content-type"].startswith("text/html") and 'id="photo"' in page.text


def test_restyle_raw_body_matches_the_generator(server: Server) -> None:
    x = noise(40, 56, seed=1)
    r = restyle(server.url, "stripes", png(x))
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "image/png"
    assert (r.headers["x-style"], r.headers["x-style-version"]) == ("stripes", "v1")
    got = decoded(r)
    assert got.shape == x.shape
    assert np.abs(got.astype(int) - expected(server.registry, "stripes", x)).max() <= 2


def test_restyle_multipart_with_mask_options_and_formats(server: Server) -> None:
    x = noise(120, 200, seed=2)  # shrunk to max_side 100: 60 x 100
    mask = np.zeros((120, 200, 3), np.uint8)
    mask[:, 100:] = 255  # right half is the garment
    files = {"image": ("x.png", png(x), "image/png"), "mask": ("m.png", png(mask), "image/png")}
    url = f"{server.url}/v1/styles/dots/restyle?max_side=100&format=png"
    r = requests.post(url, files=files, timeout=120)
    assert r.status_code == 200, r.text
    got = decoded(r)
    small = np.asarray(Image.fromarray(x).resize((100, 60), Image.Resampling.LANCZOS))
    assert got.shape == (60, 100, 3)
    assert np.array_equal(got[:, :50], small[:, :50])  # outside the mask: the photo's pixels
    want = expected(server.registry, "dots", small)
    assert np.abs(got[:, 50:].astype(int) - want[:, 50:]).max() <= 2
    r = requests.post(
        f"{server.url}/v1/styles/dots/restyle?format=jpeg&preserve_color=true",
        files={"image": ("x.jpg", png(x, "JPEG"), "image/jpeg")},
        timeout=120,
    )
    assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
    assert Image.open(io.BytesIO(r.content)).size == (64, 38)  # default_max_side 64
    r = requests.post(f"{url}&strength=0.5", files=files, timeout=120)
    assert r.status_code == 200 and r.headers["x-style-strength"] == "0.5"
    half = decoded(r)
    assert np.array_equal(half[:, :50], small[:, :50])  # the mask still holds
    want_half = compositing.with_strength(want.astype(np.uint8), small, 0.5)
    assert np.abs(half[:, 50:].astype(int) - want_half[:, 50:]).max() <= 2


def test_errors_are_json_with_reasons(server: Server) -> None:
    good = png(noise(16, 16, seed=3))
    body = assert_json_error(restyle(server.url, "nope", good), 404, "unknown_style")
    assert server.registry not in body["reason"] and "GET /v1/styles" in body["reason"]
    assert_json_error(restyle(server.url, "Bad.Style", good), 400, "bad_style_id")
    assert_json_error(restyle(server.url, "dots", good, "?max_side=9999"), 400, "bad_option")
    assert_json_error(restyle(server.url, "dots", b"\x89PNG\r\n\x1a\nxx"), 400, "bad_image")
    assert_json_error(restyle(server.url, "dots", b"hello"), 415, "unsupported_media_type")
    assert_json_error(restyle(server.url, "dots", png_header(600, 600)), 413, "too_large")
    assert_json_error(restyle(server.url, "dots", b"\0" * 200_001), 413, "too_large")
    assert_json_error(
        restyle(server.url, "dots", good, headers={"Content-Type": "text/plain"}),
        415,
        "unsupported_media_type",
    )
    assert_json_error(requests.get(f"{server.url}/v1/nothing", timeout=30), 404, "not_found")


def test_cors_is_off_by_default(server: Server) -> None:
    origin = {"Origin": "https://shop.example"}
    r = requests.get(f"{server.url}/v1/styles", headers=origin, timeout=30)
    assert r.status_code == 200 and "access-control-allow-origin" not in r.headers
    preflight = {**origin, "Access-Control-Request-Method": "POST"}
    r = requests.options(f"{server.url}/v1/styles/dots/restyle", headers=preflight, timeout=30)
    assert "access-control-allow-origin" not in r.headers


# ---------------------------------------------------------------- batching and versions


def test_concurrent_requests_for_two_styles_are_batched_each_with_its_own_style(
    server: Server,
) -> None:
    jobs = [(STYLES[i % 2], noise(32, 32, seed=100 + i)) for i in range(12)]
    with ThreadPoolExecutor(len(jobs)) as pool:
        responses = list(pool.map(lambda j: restyle(server.url, j[0], png(j[1])), jobs))
    sizes = {s: [] for s in STYLES}  # type: dict[str, list[int]]
    for (style, x), r in zip(jobs, responses, strict=True):
        assert r.status_code == 200, r.text
        assert r.headers["x-style"] == style
        sizes[style].append(int(r.headers["x-batch-size"]))
        got = decoded(r).astype(int)
        other = STYLES[1 - STYLES.index(style)]
        assert np.abs(got - expected(server.registry, style, x)).max() <= 2, style
        assert np.abs(got - expected(server.registry, other, x)).mean() > 10, style
    assert all(max(s) > 1 for s in sizes.values()), sizes


def test_new_versions_and_styles_are_served_without_a_restart(
    server: Server, vgg: VGGWeights
) -> None:
    x = noise(24, 24, seed=7)
    assert_json_error(restyle(server.url, "waves", png(x)), 404, "unknown_style")
    registry.publish(Storage(), server.registry, "waves", tiny_state(vgg, 5), {})
    for _ in range(20):  # an unknown style re-reads the registry at most once a second
        r = restyle(server.url, "waves", png(x))
        if r.status_code == 200:
            break
        time.sleep(0.25)
    assert r.status_code == 200 and r.headers["x-style-version"] == "v1", r.text
    registry.publish(Storage(), server.registry, "waves", tiny_state(vgg, 6), {})
    for _ in range(20):  # the style list is trusted for index_ttl_s = 0.5 s
        r = restyle(server.url, "waves", png(x))
        if r.headers.get("x-style-version") == "v2":
            break
        time.sleep(0.25)
    assert r.headers["x-style-version"] == "v2"
    got = decoded(r).astype(int)
    assert np.abs(got - expected(server.registry, "waves", x, "v2")).max() <= 2
    assert np.abs(got - expected(server.registry, "waves", x, "v1")).mean() > 10


# ---------------------------------------------------------------- hostile input


def bad_requests(n: int, seed: int) -> list[tuple[str, str, dict[str, str], bytes]]:
    """``n`` bad requests (method, path, headers, body), drawn with a fixed seed."""
    rng = np.random.default_rng(seed)
    good = png(noise(24, 24, seed=9))
    jpeg = png(noise(24, 24, seed=9), "JPEG")
    path_ids = ["..", "%2e%2e", "..%2F..%2Fetc", "a%2Fb", "A", "x" * 65, "%00", "-a", "%C3%A9"]
    path_ids += ["%20", "dots%2F..", "dots/../dots", "", "dots;rm", "~root", "dots%0A", "%252e"]
    kinds = ("random", "truncated", "huge", "content_type", "empty", "path", "option", "multipart")
    out = []
    for i in range(n):
        kind = kinds[i % len(kinds)]
        path, headers, body = "/v1/styles/dots/restyle", {"Content-Type": "image/png"}, good
        if kind == "random":
            body = rng.integers(0, 256, int(rng.integers(1, 3000)), dtype=np.uint8).tobytes()
            headers["Content-Type"] = str(rng.choice(["image/png", "application/octet-stream"]))
        elif kind == "truncated":
            source = good if i % 2 else jpeg
            body = source[: int(rng.integers(1, len(source) * 4 // 5))]  # pixel data cut
        elif kind == "huge":
            body = png_header(int(rng.integers(600, 70_000)), int(rng.integers(600, 70_000)))
        elif kind == "content_type":
            ct = ["text/plain", "application/json", "application/x-www-form-urlencoded", "", "x"]
            headers["Content-Type"] = str(rng.choice(ct))
        elif kind == "empty":
            body = b""
        elif kind == "path":
            path = f"/v1/styles/{path_ids[i // len(kinds) % len(path_ids)]}/restyle"
        elif kind == "option":
            q = ["max_side=-1", "max_side=0", "max_side=abc", "max_side=99999", "format=gif"]
            q += ["preserve_color=maybe", "colour=1", "max_side=%00", "format=../png"]
            path += "?" + q[i // len(kinds) % len(q)]
        elif kind == "multipart":
            body, headers = _bad_multipart(i // len(kinds) % 4, good, rng)
        out.append(("POST", path, headers, body))
    return out


def _bad_multipart(
    case: int, good: bytes, rng: np.random.Generator
) -> tuple[bytes, dict[str, str]]:
    from urllib3 import encode_multipart_formdata

    fields: dict = [
        {"mask": ("m.png", good)},  # no image
        {"image": ("a.png", good), "mask": ("m.png", rng.bytes(100))},  # corrupt mask
        {"image": ("a.png", good), "other": ("b.png", good)},  # unknown field
        {"image": ("a.png", rng.bytes(500))},  # random bytes as the image
    ][case]
    body, content_type = encode_multipart_formdata(fields)
    return body, {"Content-Type": content_type}


def send(
    url: str, method: str, path: str, headers: dict[str, str], body: bytes
) -> tuple[int, bytes]:
    """One request with the path exactly as given (no normalisation of ``..``)."""
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=60)
    try:
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def test_fuzz_of_bad_inputs_gets_4xx_json_and_the_server_stays_healthy(server: Server) -> None:
    cases = bad_requests(240, seed=1234)
    t0 = time.monotonic()
    for method, path, headers, body in cases:
        status, content = send(server.url, method, path, headers, body)
        assert 400 <= status < 500, (status, path, headers, body[:40], content[:200])
        reply = json.loads(content)
        assert reply["error"] and reply["reason"] and server.registry not in reply["reason"]
        assert time.monotonic() - t0 < 120, "the fuzz took too long"
    png_type = {"Content-Type": "image/png"}
    oversized = send(server.url, "POST", "/v1/styles/dots/restyle", png_type, b"\0" * 300_000)
    assert oversized[0] == 413
    assert requests.get(f"{server.url}/healthz", timeout=30).json() == {"status": "ok"}
    r = restyle(server.url, "dots", png(noise(20, 20, seed=11)))
    assert r.status_code == 200 and decoded(r).shape == (20, 20, 3)


# ---------------------------------------------------------------- security and back-pressure


def test_api_key_is_required_except_for_health_and_never_logged(server: Server) -> None:
    strict = f"{server.url}/strict"
    for path in ("/healthz", "/readyz", "/"):
        assert requests.get(f"{strict}{path}", timeout=30).status_code == 200
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"X-API-Key": KEY[:-1]}):
        r = requests.get(f"{strict}/v1/styles", headers=headers, timeout=30)
        body = assert_json_error(r, 401, "unauthorized")
        assert r.headers["www-authenticate"] == "Bearer" and KEY not in json.dumps(body)
    assert_json_error(restyle(strict, "Bad..id", b"x"), 401, "unauthorized")  # auth first
    for headers in ({"Authorization": f"Bearer {KEY}"}, {"X-API-Key": KEY}):
        assert requests.get(f"{strict}/v1/styles", headers=headers, timeout=30).status_code == 200
    r = restyle(strict, "dots", png(noise(16, 16, seed=12)), headers={"X-API-Key": KEY})
    assert r.status_code == 200, r.text
    logs = Path(ray_session_dir()) / "logs"
    leaked = [p for p in logs.rglob("*") if p.is_file() and KEY.encode() in p.read_bytes()]
    assert not leaked


def test_serve_reports_no_key_in_the_application_config(server: Server) -> None:
    """What the dashboard's /api/serve/applications/ shows: args and ray_actor_options."""
    from ray.serve.context import _get_global_client

    details = json.dumps(_get_global_client().get_serve_details(), default=str)
    assert '"strict"' in details and KEY_ENV in details and KEY not in details


def test_page_and_api_send_security_headers(server: Server) -> None:
    for path in ("/", "/healthz", "/v1/styles"):
        r = requests.get(f"{server.url}{path}", timeout=30)
        assert r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["content-security-policy"] == "frame-ancestors 'none'"


def raw_post(url: str, path: str, length: int, sent: bytes) -> tuple[socket.socket, float]:
    """Opens a POST declaring ``length`` body bytes and sends only ``sent``."""
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=60)
    head = f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: image/png\r\n"
    sock.sendall(f"{head}Content-Length: {length}\r\n\r\n".encode() + sent)
    return sock, time.monotonic()


def test_unknown_style_is_refused_before_the_body_and_slow_senders_are_cut_off(
    server: Server,
) -> None:
    sock, start = raw_post(server.url, "/v1/styles/nope/restyle", 100_000, b"")
    with sock:
        answer = sock.recv(4096)
    assert answer.startswith(b"HTTP/1.1 404") and time.monotonic() - start < 30
    sock, start = raw_post(server.url, "/v1/styles/dots/restyle", 100_000, b"\x89PNG")
    with sock:  # body_timeout_s is 2 s: the ingress answers 408 however slow the sender
        answer = sock.recv(4096)
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert time.monotonic() - start < 20


def ray_session_dir() -> str:
    import ray

    return ray._private.worker._global_node.get_session_dir_path()


def test_topology_one_hop_on_the_cpu_by_default_two_hops_when_asked(server: Server) -> None:
    from ray import serve

    apps = serve.status().applications
    assert set(apps["fsg"].deployments) == {"Ingress"}  # auto on the CPU: G in the ingress
    assert set(apps["strict"].deployments) == {"Ingress", "StyleGenerators"}


def test_overload_gets_503_with_retry_after(server: Server) -> None:
    strict, key = f"{server.url}/strict", {"X-API-Key": KEY}
    image = png(noise(256, 256, seed=13))
    with ThreadPoolExecutor(24) as pool:
        responses = list(
            pool.map(lambda i: restyle(strict, "stripes", image, "?max_side=256", key), range(24))
        )
    statuses = sorted(r.status_code for r in responses)
    assert set(statuses) <= {200, 503} and 200 in statuses and 503 in statuses, statuses
    for r in responses:
        if r.status_code == 503:
            assert r.headers["retry-after"] == "1"
    assert requests.get(f"{strict}/healthz", timeout=30).status_code == 200


# ---------------------------------------------------------------- the web page


def test_web_page_restyles_an_upload_in_headless_chromium(server: Server, tmp_path: Path) -> None:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    for tool in ("chromium", "chromedriver"):
        assert shutil.which(tool), f"{tool} is missing: apt-get install chromium chromium-driver"
    photo = tmp_path / "garment.png"
    photo.write_bytes(png(noise(48, 64, seed=14)))
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or ""
    for flag in (
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--window-size=1100,800", f"--user-data-dir={tmp_path / 'profile'}",
    ):  # fmt: skip
        options.add_argument(flag)
    service = Service(executable_path=shutil.which("chromedriver") or "")
    driver = webdriver.Chrome(service=service, options=options)
    try:
        driver.get(f"{server.url}/")
        wait = WebDriverWait(driver, 60)
        values = "return Array.from(arguments[0].options, o => o.value)"
        styles = driver.find_element(By.ID, "style")
        wait.until(lambda d: "stripes" in d.execute_script(values, styles))
        Select(driver.find_element(By.ID, "style")).select_by_value("stripes")
        slide = "arguments[0].value = '1.5'; arguments[0].dispatchEvent(new Event('input'))"
        driver.execute_script(slide, driver.find_element(By.ID, "strength"))
        shown = driver.find_element(By.ID, "strength_value").text
        driver.find_element(By.ID, "photo").send_keys(str(photo))
        assert not driver.find_element(By.ID, "download").is_displayed()  # no result yet
        driver.find_element(By.ID, "go").click()
        try:
            wait.until(lambda d: d.find_element(By.ID, "download").is_displayed())
        except Exception:
            driver.save_screenshot(str(tmp_path / "failed.png"))
            raise AssertionError(driver.find_element(By.ID, "status").text) from None
        size = "return [arguments[0].naturalWidth, arguments[0].naturalHeight]"
        images = [driver.find_element(By.ID, name) for name in ("before", "after")]
        wait.until(lambda d: d.execute_script(size, images[1])[0] > 0)
        driver.save_screenshot(str(tmp_path / "page.png"))
        status = driver.find_element(By.ID, "status").text
        sizes = [driver.execute_script(size, e) for e in images]
        download = driver.find_element(By.ID, "download")
        name, href = download.get_attribute("download"), download.get_attribute("href")
    finally:
        driver.quit()
    assert status == "Done." and shown == "1.5"
    assert sizes == [[64, 48], [64, 48]]
    assert name == "garment-stripes.png" and (href or "").startswith("blob:")
    shot = Image.open(tmp_path / "page.png")
    assert shot.format == "PNG" and shot.size[0] >= 800


def test_start_serve_gives_the_proxy_time_to_start_unless_the_user_set_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Serve's 5 s ready check killed the first proxy on a loaded 2-core machine, and
    # serve.start failed with ActorDiedError (tests/app/test_serve_command.py, under load).
    from ray import serve as ray_serve

    from fsg_ray.distributed import serve

    calls: list[dict[str, object]] = []
    monkeypatch.setattr(ray_serve, "start", lambda **kw: calls.append(kw))
    monkeypatch.delenv("RAY_SERVE_PROXY_READY_CHECK_TIMEOUT_S", raising=False)
    serve.start_serve("127.0.0.1", 8123, 7.0)
    monkeypatch.setenv("RAY_SERVE_PROXY_READY_CHECK_TIMEOUT_S", "12")
    serve.start_serve("127.0.0.1", 8124)
    first, second = calls
    assert first["http_options"] == {"host": "127.0.0.1", "port": 8123, "request_timeout_s": 7.0}
    assert first["controller_options"] == {
        "runtime_env": {"env_vars": {"RAY_SERVE_PROXY_READY_CHECK_TIMEOUT_S": "60.0"}}
    }
    assert second["http_options"] == {"host": "127.0.0.1", "port": 8124}
    assert second["controller_options"] == {
        "runtime_env": {"env_vars": {"RAY_SERVE_PROXY_READY_CHECK_TIMEOUT_S": "12"}}
    }
