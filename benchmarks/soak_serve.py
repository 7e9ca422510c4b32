"""Soak of the online API: minutes of mixed good and bad requests from many clients, a new
style version published half-way, the registry's S3 server unreachable for a while.

Goals (issue 16, point 11): zero 500s, zero lost or mixed-up outputs (each response checked
against its style), memory flat after warm-up. Not part of the test suite (it runs minutes).

    python benchmarks/soak_serve.py                                  # 300 s, 16 clients
    python benchmarks/soak_serve.py --seconds 20 --clients 4         # a quick check
    python benchmarks/soak_serve.py --write-docs                     # also docs/benchmarks.md
    python benchmarks/soak_serve.py --worst-case                     # 16 worst-case requests

Setup, all on 127.0.0.1: a moto S3 server behind a small TCP relay (so the outage can be made
and ended without losing the server's in-memory data), a registry in it with two styles whose
generators paint clearly different colours (``red``: outputs are red, ``blue``: blue; the
second version of ``red`` paints green), and ``fsg serve``'s application on a local Ray with
an API key. Each good response is checked by its dominant colour against the style and
version its ``X-Style-Version`` header names. ``--worst-case`` instead sends 16 concurrent
16-bit 5000 x 5000 PNGs (photo and mask) and reports the ingress replica's peak RSS.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import http.client
import io
import json
import logging
import os
import random
import selectors
import socket
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
import bench_generator  # noqa: E402  (write_docs)
from bench_serve import free_port, percentiles  # noqa: E402

from fsg_ray.app import demo  # noqa: E402
from fsg_ray.config import ServeConfig, StorageOptions  # noqa: E402
from fsg_ray.core import algorithm  # noqa: E402
from fsg_ray.core.models import load_vgg  # noqa: E402
from fsg_ray.distributed.session import descendants  # noqa: E402
from fsg_ray.io import registry, s3local  # noqa: E402
from fsg_ray.io.storage import Storage  # noqa: E402

log = logging.getLogger("soak_serve")
KEY = "soak-" + uuid.uuid4().hex
#: Each (style, version)'s colour: the RGB logits its decoder's last bias paints.
PAINT = {("red", "v1"): (4, -4, -4), ("blue", "v1"): (-4, -4, 4), ("red", "v2"): (-4, 4, -4)}


class Relay:
    """A TCP relay 127.0.0.1:port -> target port that can be taken down and brought back:
    down closes the listener and every open connection, as an unreachable server would."""

    def __init__(self, target: int) -> None:
        self.target, self.port = target, free_port()
        self._up = threading.Event()
        self._stop = threading.Event()
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._up.set()
        self._thread.start()

    def down(self) -> None:
        self._up.clear()
        with self._lock:
            for c in self._conns:
                with contextlib.suppress(OSError):
                    c.close()
            self._conns.clear()

    def up(self) -> None:
        self._up.set()

    def close(self) -> None:
        self._stop.set()
        self.down()

    def _serve(self) -> None:
        while not self._stop.is_set():
            if not self._up.wait(0.2):
                continue
            with socket.socket() as listener:
                listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                listener.bind(("127.0.0.1", self.port))
                listener.listen(64)
                listener.settimeout(0.2)
                while self._up.is_set() and not self._stop.is_set():
                    try:
                        client, _ = listener.accept()
                    except TimeoutError:
                        continue
                    upstream = socket.create_connection(("127.0.0.1", self.target))
                    with self._lock:
                        self._conns += [client, upstream]
                    pipe = threading.Thread(target=self._pipe, args=(client, upstream))
                    pipe.daemon = True
                    pipe.start()

    def _pipe(self, a: socket.socket, b: socket.socket) -> None:
        sel = selectors.DefaultSelector()
        sel.register(a, selectors.EVENT_READ, b)
        sel.register(b, selectors.EVENT_READ, a)
        try:
            while True:
                for key, _ in sel.select(timeout=1.0):
                    data = key.fileobj.recv(65536)  # type: ignore[union-attr]
                    if not data:
                        return
                    key.data.sendall(data)
        except OSError:
            return
        finally:
            for s in (a, b):
                with contextlib.suppress(OSError):
                    s.close()


def painted_state(colour: tuple[int, int, int]) -> dict[str, Any]:
    """A generator of the demo's shape (image output) whose output is ``colour`` everywhere:
    its last convolution's weights zero, its bias the colour's logits."""
    cfg = demo.demo_config()
    cfg = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, output="image"))
    run = algorithm.new_run(cfg, load_vgg(cfg.model.vgg_weights), torch.zeros(1, 3, 32, 32),
                            torch.device("cpu"))  # fmt: skip
    last = run.nets.gen.decoder.net[-1]
    with torch.no_grad():
        last.weight.zero_()
        last.bias.copy_(torch.tensor(colour, dtype=torch.float32))
    return algorithm.generator_state(run)


def dominant(png: bytes) -> int:
    """Index (0 R, 1 G, 2 B) of the channel with the highest mean."""
    a = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"), dtype=np.float32)
    return int(a.reshape(-1, 3).mean(axis=0).argmax())


def png_bytes(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format="PNG")
    return buf.getvalue()


def worst_png() -> bytes:
    """A 16-bit grey 5000 x 5000 PNG: small on the wire, large decoded (issue 16, point 5)."""
    buf = io.BytesIO()
    Image.new("I;16", (5000, 5000), 1000).save(buf, format="PNG")
    return buf.getvalue()


def multipart(image: bytes, mask: bytes) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    parts = []
    for name, data in (("image", image), ("mask", mask)):
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; '
            f'filename="{name}.png"\r\nContent-Type: image/png\r\n\r\n'.encode()
            + data
            + b"\r\n"
        )
    body = b"".join(parts) + f"--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


@dataclasses.dataclass
class Tally:
    """What the clients saw."""

    statuses: dict[str, int] = dataclasses.field(default_factory=dict)
    good_seconds: list[float] = dataclasses.field(default_factory=list)
    mixed: list[str] = dataclasses.field(default_factory=list)
    versions: dict[str, int] = dataclasses.field(default_factory=dict)
    unexpected: list[str] = dataclasses.field(default_factory=list)
    lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)

    def add(self, kind: str, status: int) -> None:
        with self.lock:
            key = f"{kind} {status}"
            self.statuses[key] = self.statuses.get(key, 0) + 1


#: Request kinds and their share of the mix, with the statuses each may get besides 503 (a
#: full queue, or storage unreachable for what needs it). 0: the server closed the
#: connection while a too-large body was still being sent, which is how a refusal mid-body
#: can look to a client.
MIX = {
    "good": (0.6, {200}),
    "unknown_style": (0.1, {404}),
    "corrupt": (0.1, {400}),
    "wrong_type": (0.08, {415}),
    "no_key": (0.07, {401}),
    "too_big": (0.05, {413, 0}),
}


def client(port: int, photo: bytes, deadline: float, tally: Tally, seed: int) -> None:
    rng = random.Random(seed)
    kinds, weights = list(MIX), [w for w, _ in MIX.values()]
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    while time.monotonic() < deadline:
        kind = rng.choices(kinds, weights)[0]
        style = rng.choice(["red", "blue"])
        body, ctype = photo, "image/png"
        headers = {"X-API-Key": KEY}
        if kind == "unknown_style":
            style = "nosuchstyle"
        elif kind == "corrupt":
            body = photo[: len(photo) // 2]
        elif kind == "wrong_type":
            body, ctype = b'{"not": "an image"}', "application/json"
        elif kind == "no_key":
            headers = {}
        elif kind == "too_big":
            body = b"\0" * (21 * 2**20)  # max_body_bytes is 20 MiB
        headers["Content-Type"] = ctype
        t = time.perf_counter()
        try:
            conn.request("POST", f"/v1/styles/{style}/restyle", body=body, headers=headers)
            response = conn.getresponse()
            data = response.read()
        except (OSError, http.client.HTTPException) as e:
            tally.add(kind, 0)
            if 0 not in MIX[kind][1]:
                with tally.lock:
                    tally.unexpected.append(f"{kind}: {type(e).__name__}: {e}")
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            continue
        seconds = time.perf_counter() - t
        tally.add(kind, response.status)
        if response.status not in MIX[kind][1] | {503}:
            with tally.lock:
                tally.unexpected.append(f"{kind} {style}: {response.status} {data[:120]!r}")
        if kind == "good" and response.status == 200:
            version = response.getheader("X-Style-Version", "?")
            want = int(np.argmax(PAINT.get((style, version), (0, 0, 0))))
            got = dominant(data)
            with tally.lock:
                tally.good_seconds.append(seconds)
                tally.versions[f"{style} {version}"] = (
                    tally.versions.get(f"{style} {version}", 0) + 1
                )
                if (style, version) not in PAINT or got != want:
                    tally.mixed.append(f"{style} {version}: dominant channel {got}, want {want}")
        if response.getheader("Connection", "").lower() == "close":
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    conn.close()


def rss(pid: int) -> int:
    """Resident set size of ``pid`` in bytes (0 once it has gone), from /proc."""
    try:
        with open(f"/proc/{pid}/statm", encoding="utf-8") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


class RssSampler:
    """Samples the summed RSS of this process's descendants (the local Ray: Serve's proxy,
    the ingress and generator replicas, and Ray's own daemons) and the largest single one."""

    def __init__(self, every_s: float = 0.5) -> None:
        self.samples: list[tuple[float, int, int, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(every_s,), daemon=True)
        self._thread.start()

    def _run(self, every_s: float) -> None:
        t0 = time.monotonic()
        while not self._stop.wait(every_s):
            total, top, name = 0, 0, ""
            for pid in descendants(os.getpid()):
                size = rss(pid)
                total += size
                if size > top:
                    top, name = size, cmdline(pid)[:60]
            self.samples.append((time.monotonic() - t0, total, top, name))

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def at(self, t: float) -> int:
        """Summed RSS of the first sample at or after ``t`` seconds."""
        return next((s[1] for s in self.samples if s[0] >= t), self.samples[-1][1])


@contextlib.contextmanager
def served(endpoint: str, reg: str, port: int) -> Iterator[None]:
    """``fsg serve``'s application on a local Ray, the key in the job's runtime_env."""
    import ray
    from ray import serve

    from fsg_ray.distributed.serve import build_app, start_serve

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"FSG_API_KEY": KEY}})  # fmt: skip
    try:
        start_serve("127.0.0.1", port)
        cfg = ServeConfig(registry=reg, endpoint_url=endpoint, s3_region="us-east-1",
                          index_ttl_s=2.0, default_max_side=128)  # fmt: skip
        serve.run(build_app(cfg), name="soak", route_prefix="/")
        yield
    finally:
        with contextlib.suppress(Exception):
            serve.shutdown()
        ray.shutdown()


def soak(args: argparse.Namespace) -> dict[str, Any]:
    photo = png_bytes(np.random.default_rng(0).integers(0, 256, (160, 120, 3), dtype=np.uint8))
    with s3local.fake_aws_credentials(), s3local.moto_server() as moto_url:
        relay = Relay(int(moto_url.rsplit(":", 1)[1]))
        endpoint = f"http://127.0.0.1:{relay.port}"
        s3local.create_bucket(endpoint, "soak")
        reg = "s3://soak/registry"
        storage = Storage(StorageOptions(endpoint_url=endpoint, region="us-east-1"))
        for style in ("red", "blue"):
            registry.publish(storage, reg, style, painted_state(PAINT[(style, "v1")]), {})
        port = free_port()
        sampler = RssSampler()
        tally, events = Tally(), []
        try:
            with served(endpoint, reg, port):
                t0 = time.monotonic()
                deadline = t0 + args.seconds
                threads = [threading.Thread(target=client, args=(port, photo, deadline, tally, i))
                           for i in range(args.clients)]  # fmt: skip
                for t in threads:
                    t.start()
                outage_at, publish_at = args.seconds * 0.3, args.seconds * 0.5
                time.sleep(outage_at)
                events.append((round(time.monotonic() - t0, 1), "S3 down"))
                relay.down()
                time.sleep(args.outage_s)
                relay.up()
                events.append((round(time.monotonic() - t0, 1), "S3 up"))
                time.sleep(max(0.0, publish_at - (time.monotonic() - t0)))
                registry.publish(storage, reg, "red", painted_state(PAINT[("red", "v2")]), {})
                events.append((round(time.monotonic() - t0, 1), "published red v2"))
                for t in threads:
                    t.join()
                sampler.stop()  # before the shutdown: "end" is the served state at the end
        finally:
            sampler.stop()
            relay.close()
    samples = sampler.samples
    warm = args.seconds * 0.2
    good = tally.good_seconds or [0.0]
    five_xx = {k: v for k, v in tally.statuses.items() if k.split()[-1].startswith("5")}
    return {
        "date": str(date.today()),
        "seconds": args.seconds,
        "clients": args.clients,
        "requests": sum(tally.statuses.values()),
        "statuses": dict(sorted(tally.statuses.items())),
        "good_ok": len(tally.good_seconds),
        **{k: round(v, 1) for k, v in percentiles(good).items()},
        "five_xx_other_than_503": sum(v for k, v in five_xx.items() if not k.endswith(" 503")),
        "mixed_up": len(tally.mixed),
        "mixed_examples": tally.mixed[:5],
        "unexpected": len(tally.unexpected),
        "unexpected_examples": tally.unexpected[:8],
        "events": events,
        "versions_answered": dict(sorted(tally.versions.items())),
        "rss_peak_mb": round(max(s[1] for s in samples) / 2**20),
        "rss_after_warmup_mb": round(sampler.at(warm) / 2**20),
        "rss_mb_at_quarters": [
            round(sampler.at(args.seconds * q) / 2**20) for q in (0.25, 0.5, 0.75)
        ],
        "rss_end_mb": round(samples[-1][1] / 2**20),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


def worst_case(args: argparse.Namespace) -> dict[str, Any]:
    """``args.clients`` concurrent worst-case requests (photo and mask a 16-bit 5000 px
    PNG); the ingress replica's peak RSS over them."""
    body, ctype = multipart(worst_png(), worst_png())
    with s3local.fake_aws_credentials(), s3local.moto_server() as endpoint:
        s3local.create_bucket(endpoint, "soak")
        reg = "s3://soak/registry"
        storage = Storage(StorageOptions(endpoint_url=endpoint, region="us-east-1"))
        registry.publish(storage, reg, "red", painted_state(PAINT[("red", "v1")]), {})
        port = free_port()
        with served(endpoint, reg, port):
            ingress = [p for p in descendants(os.getpid()) if "Ingress" in cmdline(p)]
            base = {p: rss(p) for p in ingress}
            peak = dict(base)
            statuses: list[int] = []
            stop = threading.Event()

            def sample() -> None:
                while not stop.wait(0.05):
                    for p in ingress:
                        peak[p] = max(peak[p], rss(p))

            def one() -> None:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
                conn.request("POST", "/v1/styles/red/restyle?max_side=1024", body=body,
                             headers={"Content-Type": ctype, "X-API-Key": KEY})  # fmt: skip
                r = conn.getresponse()
                r.read()
                statuses.append(r.status)

            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
            clients = [threading.Thread(target=one) for _ in range(args.clients)]
            for t in clients:
                t.start()
            for t in clients:
                t.join()
            stop.set()
            sampler.join()
    return {
        "date": str(date.today()),
        "requests": args.clients,
        "body_bytes": len(body),
        "statuses": {str(s): statuses.count(s) for s in sorted(set(statuses))},
        "ingress_replicas": len(ingress),
        "ingress_rss_before_mb": round(sum(base.values()) / 2**20),
        "ingress_rss_peak_mb": round(sum(peak.values()) / 2**20),
        "ingress_rss_growth_mb": round((sum(peak.values()) - sum(base.values())) / 2**20),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


def render(r: dict[str, Any]) -> str:
    ok = r["five_xx_other_than_503"] == 0 and r["mixed_up"] == 0
    return "\n".join(
        [
            f"### Soak of the online API, CPU, 2 cores ({r['date']})",
            "",
            f"`python benchmarks/soak_serve.py --seconds {r['seconds']} --clients {r['clients']} "
            "--write-docs`: mixed good (60 %) and bad requests on 127.0.0.1, the registry's S3 "
            "server unreachable for a while, a new version published half-way.",
            "",
            f"- Requests: {r['requests']}; good answered 200: {r['good_ok']}, p50 "
            f"{r['p50_ms']} ms, p99 {r['p99_ms']} ms.",
            f"- Status codes (kind status: count): {r['statuses']}.",
            f"- Events (seconds from the start): {r['events']}.",
            f"- 5xx other than 503: {r['five_xx_other_than_503']}; mixed-up outputs: "
            f"{r['mixed_up']}; answers outside the expected set: {r['unexpected']} "
            f"{r['unexpected_examples'][:3]}.",
            f"- Good answers per style and version: {r['versions_answered']}.",
            f"- Summed RSS of the local Ray's processes (Serve's proxy and replicas, Ray's "
            f"daemons): {r['rss_after_warmup_mb']} MB after warm-up (20 % of the run), "
            f"{r['rss_mb_at_quarters']} MB at 25/50/75 %, {r['rss_end_mb']} MB at the end, "
            f"peak {r['rss_peak_mb']} MB.",
            f"- Goal (zero 500s, zero mixed-up outputs): {'met' if ok else 'missed'}. "
            f"Load average at the end: {r['load_average']}.",
        ]
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=300.0)
    p.add_argument("--clients", type=int, default=16)
    p.add_argument("--outage-s", type=float, default=20.0, help="how long S3 is unreachable")
    p.add_argument("--worst-case", action="store_true", help="16 worst-case requests only")
    p.add_argument("--write-docs", action="store_true")
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto's per-request lines
    if args.worst_case:
        print(json.dumps(worst_case(args), indent=1))
        return
    result = soak(args)
    print(json.dumps(result, indent=1))
    if args.write_docs:
        bench_generator.write_docs("soak-serve", render(result))
    if result["five_xx_other_than_503"] or result["mixed_up"]:
        sys.exit(1)


if __name__ == "__main__":
    main()
