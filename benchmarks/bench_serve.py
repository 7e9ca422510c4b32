"""Online serving: latency and throughput of ``fsg serve`` over loopback HTTP, with and without
dynamic batching, vs the bare generator called in process on the same cores.

Goals (issue 7): served throughput >= 0.7x the bare model's, p50 overhead <= 20 ms.

    python benchmarks/bench_serve.py                   # CPU: 2 cores, 256 px, 60 requests
    python benchmarks/bench_serve.py --write-docs      # also updates docs/benchmarks.md
    # on a GPU machine (one GPU, its replica takes it):
    python benchmarks/bench_serve.py --size 512 --requests 400 --concurrency 16 --write-docs

One style, the demo's generator shape (default decoder, random VGG weights: speed does not
depend on them), published to a temporary registry. The bare side runs the generator in the
runtime the replica resolves (``--runtime``, default ``auto``: the same
:func:`~fsg_ray.io.generators.for_runtime` call) on one photo at a time (and on batches, for
the ceiling) with as many threads as the served side has CPUs. The served side is a fresh
local Ray with ``--cpus`` CPUs, all reserved by the one generator replica (the ingress and
Serve's proxy share the same cores, as they would). The load generator is bounded:
``--requests`` requests per phase from ``--concurrency`` threads, on 127.0.0.1 only, and a
phase stops after ``--max-seconds``.
"""

from __future__ import annotations

import argparse
import dataclasses
import http.client
import io
import json
import logging
import os
import platform
import socket
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from fsg_ray.app import demo
from fsg_ray.config import ServeConfig
from fsg_ray.core import algorithm
from fsg_ray.core.models import load_vgg
from fsg_ray.distributed import api
from fsg_ray.io import registry
from fsg_ray.io.generators import EncoderCache, for_runtime, resolve_runtime, run_loaded
from fsg_ray.io.storage import Storage

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
import bench_generator  # noqa: E402  (write_docs, device_name)

STYLE = "bench"
log = logging.getLogger("bench_serve")


def publish_style(root: str) -> str:
    """A registry with one style of the demo's generator shape (untrained decoder)."""
    cfg = demo.demo_config()
    vgg = load_vgg(cfg.model.vgg_weights)
    run = algorithm.new_run(cfg, vgg, torch.zeros(1, 3, 32, 32), torch.device("cpu"))
    uri = str(Path(root) / "registry")
    registry.publish(Storage(), uri, STYLE, algorithm.generator_state(run), {})
    return uri


def percentiles(seconds: list[float]) -> dict[str, float]:
    """p50, p99 and mean in milliseconds."""
    ms = sorted(s * 1000 for s in seconds)
    p99 = ms[min(len(ms) - 1, int(round(0.99 * (len(ms) - 1))))]
    return {"p50_ms": statistics.median(ms), "p99_ms": p99, "mean_ms": statistics.fmean(ms)}


def bench_bare(
    reg: str, image: np.ndarray, n: int, batch: int, runtime: str, threads: int
) -> dict[str, Any]:
    """The generator in this process, in the runtime the replica runs it in (the same
    :func:`for_runtime` call): per-photo latency, and throughput one by one and batched."""
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    gen, _ = EncoderCache(Storage(), device).load(reg, STYLE)
    gens = {STYLE: for_runtime(gen, runtime, device, threads)}

    def one(b: np.ndarray) -> None:
        run_loaded(gens, b, {STYLE: range(len(b))}, device)

    for _ in range(3):
        one(image[None])
    times = []
    t0 = time.perf_counter()
    for _ in range(n):
        t = time.perf_counter()
        one(image[None])
        times.append(time.perf_counter() - t)
    single = n / (time.perf_counter() - t0)
    stacked = np.stack([image] * batch)
    one(stacked)
    t0 = time.perf_counter()
    rounds = max(1, n // batch)
    for _ in range(rounds):
        one(stacked)
    batched = rounds * batch / (time.perf_counter() - t0)
    return {**percentiles(times), "images_per_s": single, "batched_images_per_s": batched}


def bench_pipeline(image_png: bytes, n: int, cfg: ServeConfig) -> dict[str, float]:
    """Decode + shrink + encode of the served path, without G: the image work per request."""
    options = api.parse_options({"max_side": str(cfg.max_side)}, cfg)
    times = []
    for _ in range(n):
        t = time.perf_counter()
        prepared = api.prepare(image_png, None, options, cfg)
        api.finish(prepared.image, prepared, options, {"style": STYLE})
        times.append(time.perf_counter() - t)
    return percentiles(times)


def load(url: str, body: bytes | None, n: int, concurrency: int, max_s: float) -> dict[str, Any]:
    """``n`` restyle POSTs of ``body`` (or, with None, ``GET /healthz``: the HTTP path alone)
    from ``concurrency`` threads (stops after ``max_s``): latency, throughput."""
    host, port = url.removeprefix("http://").split(":")
    # default_max_side is the photo's size
    method, path = ("POST", f"/v1/styles/{STYLE}/restyle") if body else ("GET", "/healthz")
    headers = {"Content-Type": "image/png"} if body else {}
    lock, times, statuses = threading.Lock(), [], []
    left = [n]
    deadline = time.monotonic() + max_s

    def worker() -> None:
        conn = http.client.HTTPConnection(host, int(port), timeout=max_s)
        while time.monotonic() < deadline:
            with lock:
                if left[0] == 0:
                    break
                left[0] -= 1
            t = time.perf_counter()
            conn.request(method, path, body=body, headers=headers)
            response = conn.getresponse()
            response.read()
            with lock:
                times.append(time.perf_counter() - t)
                statuses.append(response.status)
        conn.close()

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    ok = [t for t, s in zip(times, statuses, strict=True) if s == 200]
    errors = {str(s): statuses.count(s) for s in set(statuses) if s != 200}
    return {**percentiles(ok or [0.0]), "requests_per_s": len(ok) / wall, "ok": len(ok)} | {
        "errors": errors
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def bench_served(
    cfg: ServeConfig, body: bytes, args: argparse.Namespace, on_ready: Callable[[str], None]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Each variant (batching off, on) deployed in turn on one local Ray: one client, then
    ``--concurrency`` clients."""
    import ray
    from ray import serve

    from fsg_ray.distributed.serve import build_app, start_serve

    ray.init(num_cpus=args.cpus, include_dashboard=False, log_to_driver=False)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    start_serve("127.0.0.1", port)
    results: dict[str, Any] = {}
    try:
        for name, batch in (("no batching", 1), ("batching", args.batch)):
            variant = dataclasses.replace(cfg, max_batch_size=batch)
            serve.run(build_app(variant), name="bench", route_prefix="/")
            on_ready(name)
            load(url, body, 4, 1, args.max_seconds)  # warm-up: generator loaded, paths hot
            results[name] = {
                "one_client": load(url, body, args.requests // 2, 1, args.max_seconds),
                "concurrent": load(url, body, args.requests, args.concurrency, args.max_seconds),
            }
        # Serve's HTTP proxy and the ingress alone: the part of a request's cost that no
        # model speed removes.
        http_only = {
            "one_client": load(url, None, args.requests // 2, 1, args.max_seconds),
            "concurrent": load(url, None, args.requests, args.concurrency, args.max_seconds),
        }
    finally:
        serve.shutdown()
        ray.shutdown()
    return results, http_only


def render(result: dict[str, Any]) -> str:
    """The docs section."""
    bare, pipe, served = result["bare"], result["pipeline"], result["served"]
    lines = [
        f"### Online serving, {result['device']} ({result['date']})",
        "",
        f"`{result['command']}`",
        "",
        f"One style (demo generator shape), {result['size']} px PNG in and out, "
        f"runtime {result.get('runtime', 'torch')} on both sides, "
        f"{'one hop (G in the ingress)' if result.get('one_hop') else 'two hops'}, "
        f"{result['cpus']} CPU(s) for Ray; load average before {result['load_before']}, "
        f"after {result['load_after']} on {os.cpu_count()} cores.",
        "",
        "| path | clients | p50 (ms) | p99 (ms) | images/s |",
        "|---|---|---|---|---|",
        f"| bare G(x) in process, one photo a call | 1 | {bare['p50_ms']:.1f} | "
        f"{bare['p99_ms']:.1f} | {bare['images_per_s']:.2f} |",
        f"| bare G(x) in process, batches of {result['batch']} | - | - | - | "
        f"{bare['batched_images_per_s']:.2f} |",
        f"| decode + encode only (no G), in process | 1 | {pipe['p50_ms']:.1f} | "
        f"{pipe['p99_ms']:.1f} | - |",
    ]
    for name, phases in served.items():
        for phase, clients in (("one_client", 1), ("concurrent", result["concurrency"])):
            r = phases[phase]
            errors = f" (errors: {r['errors']})" if r["errors"] else ""
            lines.append(
                f"| served over HTTP, {name} | {clients} | {r['p50_ms']:.1f} | "
                f"{r['p99_ms']:.1f} | {r['requests_per_s']:.2f}{errors} |"
            )
    http_only = result.get("http_only")
    if http_only:
        for phase, clients in (("one_client", 1), ("concurrent", result["concurrency"])):
            r = http_only[phase]
            lines.append(
                f"| HTTP path alone (GET /healthz: no image, no G) | {clients} | "
                f"{r['p50_ms']:.1f} | {r['p99_ms']:.1f} | {r['requests_per_s']:.2f} |"
            )
    best = max(served.values(), key=lambda v: v["concurrent"]["requests_per_s"])
    ratio = best["concurrent"]["requests_per_s"] / bare["images_per_s"]
    overhead = served["no batching"]["one_client"]["p50_ms"] - bare["p50_ms"]
    verdict = {True: "met", False: "missed"}
    lines += [
        "",
        f"- **Throughput** (best served variant, {result['concurrency']} clients / bare, one "
        f"photo a call): **{ratio:.2f}x** (goal >= 0.7: {verdict[ratio >= 0.7]}).",
        f"- **p50 overhead** (served, one client, no batching - bare G(x)): **{overhead:.1f} ms** "
        f"(goal <= 20 ms: {verdict[overhead <= 20]}); of it {pipe['p50_ms']:.1f} ms is decoding "
        "and encoding the images, which the bare model does not do.",
    ]
    if http_only:
        ceiling = http_only["concurrent"]["requests_per_s"]
        lines.append(
            f"- Serve's HTTP path alone (proxy and ingress, `GET /healthz`) answers {ceiling:.0f} "
            f"requests/s with {result['concurrency']} clients on these cores, and takes "
            f"{http_only['one_client']['p50_ms']:.1f} ms of the p50: the cost per request that "
            "no model speed removes."
        )
    lines += [
        f"- {result['contention']}",
    ]
    return "\n".join(lines)


def changed_args(p: argparse.ArgumentParser, args: argparse.Namespace) -> list[str]:
    """The command-line flags that differ from their defaults, as typed."""
    out = []
    for key, value in vars(args).items():
        if value != p.get_default(key):
            flag = f"--{key.replace('_', '-')}"
            out.append(flag if value is True else f"{flag} {value}")
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", type=int, default=256, help="photo side in px (default: 256)")
    p.add_argument("--requests", type=int, default=60, help="requests per phase (default: 60)")
    p.add_argument("--concurrency", type=int, default=8, help="concurrent clients (default: 8)")
    p.add_argument("--batch", type=int, default=8, help="max batch size when batching is on")
    p.add_argument("--cpus", type=int, default=2, help="CPUs of the local Ray (default: 2)")
    p.add_argument("--max-seconds", type=float, default=300, help="longest phase (default: 300)")
    p.add_argument(
        "--runtime",
        default="auto",
        help="the replica's runtime (auto, torch, torch-bf16, onnx); the bare side runs the same",
    )
    p.add_argument(
        "--topology", default="auto", help="auto, one_hop or two_hop (ServeConfig.topology)"
    )
    p.add_argument("--write-docs", action="store_true", help="record in docs/benchmarks.md")
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    torch.set_num_threads(args.cpus)
    load_before = [round(x, 2) for x in os.getloadavg()]
    image = np.random.default_rng(0).integers(0, 256, (args.size, args.size, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    with tempfile.TemporaryDirectory() as tmp:
        reg = publish_style(tmp)
        cfg = ServeConfig(
            registry=reg,
            max_side=max(args.size, 8),
            default_max_side=max(args.size, 8),
            replica_cpus=args.cpus,
            replica_gpus=1.0 if torch.cuda.is_available() else 0.0,
            ingress_cpus=0,
            max_ongoing_requests=max(args.batch, args.concurrency),
            allow_anonymous=True,  # on 127.0.0.1, no key: the API fails closed otherwise
            runtime=args.runtime,
            topology=args.topology,
        )
        log.info("bare model in process")
        bare = bench_bare(reg, image, args.requests // 2, args.batch, args.runtime, args.cpus)
        pipeline = bench_pipeline(buf.getvalue(), args.requests // 2, cfg)
        served, http_only = bench_served(
            cfg, buf.getvalue(), args, lambda n: log.info("served: %s", n)
        )
    load_after = [round(x, 2) for x in os.getloadavg()]
    busy = load_before[0] > (os.cpu_count() or 1) * 0.5  # "after" includes this run's own load
    device = (
        torch.cuda.get_device_name(0)
        if torch.cuda.is_available()
        else f"CPU ({platform.machine()}), {args.cpus} cores"
    )
    result = {
        "device": device,
        "date": date.today().isoformat(),
        "command": " ".join(["python benchmarks/bench_serve.py", *changed_args(p, args)]),
        "size": args.size,
        "cpus": args.cpus,
        "runtime": resolve_runtime(
            args.runtime, torch.device("cuda" if torch.cuda.is_available() else "cpu")
        ),
        "batch": args.batch,
        "concurrency": args.concurrency,
        "load_before": load_before,
        "load_after": load_after,
        "contention": "The load average before the run was above half the cores (other work "
        "on the machine, or earlier runs winding down): absolute numbers may be low and noisy; "
        "bare and served ran one after the other under similar load."
        if busy
        else "The machine was otherwise idle.",
        "bare": bare,
        "pipeline": pipeline,
        "served": served,
        "http_only": http_only,
        "one_hop": cfg.one_hop,
    }
    print(json.dumps(result, indent=2))
    print(render(result))
    if args.write_docs:
        # A GPU run gets its own section: the CPU numbers stay beside it.
        section = "serve-cuda" if torch.cuda.is_available() else "serve"
        bench_generator.write_docs(section, render(result))


if __name__ == "__main__":
    main()
