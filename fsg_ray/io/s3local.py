"""A real S3 API on 127.0.0.1 (moto's server, in this process), for the demo and the tests.

Needs ``moto[server]`` (the ``test`` extra). Requests go over real HTTP through the real
botocore and pyarrow clients. Moto keeps its buckets in process-wide memory: every server
started in one process serves the same buckets.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
from collections.abc import Iterator

HOST = "127.0.0.1"
FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (right now)."""
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, timeout_s: float = 10.0) -> None:
    """Blocks until something accepts connections on ``port``."""
    deadline = time.monotonic() + timeout_s
    while True:
        with contextlib.suppress(OSError), socket.create_connection((HOST, port), timeout=0.5):
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"nothing listens on {HOST}:{port} after {timeout_s} s")
        time.sleep(0.02)


@contextlib.contextmanager
def fake_aws_credentials() -> Iterator[None]:
    """Sets fake AWS credentials and region in ``os.environ``, restoring the old values after."""
    old = {name: os.environ.get(name) for name in FAKE_CREDENTIALS}
    os.environ.update(FAKE_CREDENTIALS)
    try:
        yield
    finally:
        for name, value in old.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@contextlib.contextmanager
def moto_server(port: int | None = None) -> Iterator[str]:
    """Runs a moto S3 server on 127.0.0.1 and yields its endpoint URL."""
    from moto.server import ThreadedMotoServer  # slow to import: only when a server starts

    port = port or free_port()
    moto = ThreadedMotoServer(ip_address=HOST, port=port, verbose=False)
    moto.start()
    try:
        wait_for_port(port)
        yield f"http://{HOST}:{port}"
    finally:
        moto.stop()


@contextlib.contextmanager
def server() -> Iterator[str]:
    """A moto S3 server with fake credentials in ``os.environ``; yields its endpoint URL."""
    with fake_aws_credentials(), moto_server() as url:
        yield url


def create_bucket(endpoint: str, bucket: str) -> None:
    """Creates ``bucket`` on the server at ``endpoint`` (no error if it exists)."""
    import boto3

    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    with contextlib.suppress(client.exceptions.BucketAlreadyOwnedByYou):
        client.create_bucket(Bucket=bucket)
