"""How to reach object storage (:class:`StorageOptions`), for :mod:`fsg_ray.io.storage`.

Keys are named as ``storage.<key>``: ``storage.endpoint_url: 'minio:9000' must start with
http:// or https://``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

from fsg_ray.config.errors import check_endpoint, require


@dataclass(frozen=True)
class StorageOptions:
    """How to reach object storage; plain data, so it crosses into Ray as ``asdict(options)``.

    Attributes:
        endpoint_url: S3 endpoint such as ``http://minio:9000``; None for AWS itself.
        region: AWS region; None lets the AWS chain of each process decide.
        retries: Retries of one request after a transient error (0: try once).
        backoff_s: Wait before the first retry; doubles on each further one (with jitter).
        timeout_s: Connect and read timeout of one request, in seconds; None keeps the
            clients' defaults (60 s each in boto3). The online API sets a short one.
    """

    KEY_ROOT: ClassVar[str] = "storage"

    endpoint_url: str | None = None
    region: str | None = None
    retries: int = 4
    backoff_s: float = 0.2
    timeout_s: float | None = None

    def __post_init__(self) -> None:
        check_endpoint("storage.endpoint_url", self.endpoint_url)
        require(self.retries >= 0, "storage.retries", f"must be >= 0, got {self.retries}")
        require(self.backoff_s >= 0, "storage.backoff_s", f"must be >= 0, got {self.backoff_s}")
        require(
            self.timeout_s is None or self.timeout_s > 0,
            "storage.timeout_s",
            f"must be > 0, got {self.timeout_s}",
        )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> StorageOptions:
        """Reads the endpoint and region from the AWS variables, once, on the driver.

        ``AWS_ENDPOINT_URL_S3`` wins over ``AWS_ENDPOINT_URL`` and ``AWS_REGION`` over
        ``AWS_DEFAULT_REGION``, as in the AWS SDKs.

        Args:
            environ: The variables to read; defaults to ``os.environ``.
        """
        env = os.environ if environ is None else environ
        return cls(
            endpoint_url=env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL") or None,
            region=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or None,
        )

    @classmethod
    def given(cls, endpoint_url: str | None = None, region: str | None = None) -> StorageOptions:
        """:meth:`from_env`, with the endpoint and region given here (a flag, a config key)
        winning over the environment's where they are set."""
        env = cls.from_env()
        return cls(endpoint_url=endpoint_url or env.endpoint_url, region=region or env.region)
