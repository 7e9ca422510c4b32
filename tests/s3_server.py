"""Real S3 APIs on 127.0.0.1 for tests: an in-process moto server, and a server that fails.

Requests go over real HTTP through the real botocore and pyarrow clients; nothing is mocked.
Moto keeps its buckets in process-wide memory, so every moto server started here serves the
same buckets: a second server on another port sees what the first one stored.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from fsg_ray.io.s3local import (  # noqa: F401 - re-exported for the tests
    FAKE_CREDENTIALS,
    HOST,
    fake_aws_credentials,
    free_port,
    moto_server,
    wait_for_port,
)


@contextlib.contextmanager
def moto_server_when(go: threading.Event) -> Iterator[str]:
    """Yields an endpoint URL at once; a moto server starts answering there once ``go`` is set.

    Until then connections are refused, as when a storage service restarts.
    """
    port = free_port()
    stop = threading.Event()

    def serve() -> None:
        if go.wait(timeout=30):
            with moto_server(port):
                stop.wait()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://{HOST}:{port}"
    finally:
        go.set()
        stop.set()
        thread.join(timeout=10)


@dataclass
class FailingServer:
    """An S3 endpoint that answers every request with one error, counting the requests.

    Attributes:
        url: The endpoint URL.
        requests: How many requests it has answered.
    """

    url: str
    requests: int = 0


@contextlib.contextmanager
def failing_server(status: int, code: str) -> Iterator[FailingServer]:
    """Runs an endpoint answering every request with an S3 error (e.g. 503 ``SlowDown``)."""
    body = f"<?xml version='1.0'?><Error><Code>{code}</Code><Message>{code}</Message></Error>"
    state = FailingServer(url="")

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # answers boto3's "Expect: 100-continue" at once

        def answer(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            state.requests += 1
            self.send_response(status)
            self.send_header("Content-Type", "application/xml")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body.encode())

        do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = answer

        def log_message(self, format: str, *args: object) -> None:
            """Keeps test output quiet."""

    server = ThreadingHTTPServer((HOST, 0), Handler)
    state.url = f"http://{HOST}:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
