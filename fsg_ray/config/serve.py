"""The online service's config (``fsg serve``, ``jobs/serve_config.yaml``).

Keys are named from the root of Serve's ``args`` mapping: ``max_side: must be >= 8``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from fsg_ray.config.errors import check_endpoint, check_uri, require
from fsg_ray.config.runtime import check_runtime


@dataclass(frozen=True)
class ServeConfig:
    """The Ray Serve application of :mod:`fsg_ray.distributed.serve`: the registry, request limits,
    batching, replicas and back-pressure.

    Attributes:
        registry: URI of the style registry; new versions published there are served within
            ``index_ttl_s`` seconds, without a restart.
        endpoint_url: S3 endpoint such as ``http://minio:9000``; None for AWS itself. The old
            key ``s3_endpoint`` is still read, with a warning.
        s3_region: S3 region; None lets the AWS chain decide.
        max_body_bytes: Largest request body accepted (413 above it, before reading more).
        max_pixels: Largest image (width x height, read from its header before any pixel
            is decoded: decompression bombs) accepted (413 above it).
        max_side: Largest ``max_side`` a request may ask for; bigger photos are shrunk to it.
        default_max_side: The ``max_side`` of a request that gives none.
        max_batch_size: Requests of one style and size run as one batch, up to this many
            (1 turns dynamic batching off).
        batch_wait_timeout_s: How long the first request of a batch waits for more.
        styles_per_replica: Generators kept per replica (least recently used ones unloaded).
        index_ttl_s: Seconds the ingress trusts its copy of the registry's style list.
        min_replicas: Fewest replicas of each deployment (autoscaling lower bound).
        max_replicas: Most replicas of each deployment (autoscaling upper bound).
        target_ongoing_requests: Autoscaling target of requests in flight per replica.
        max_ongoing_requests: Requests one generator replica works on at once (a batch is
            filled from these).
        max_queued_requests: Requests waiting for a generator replica, per caller; more get
            503 with ``Retry-After``.
        ingress_max_ongoing_requests: Requests one HTTP ingress replica handles at once.
        ingress_max_queued_requests: Requests waiting for an ingress replica; more get 503
            with ``Retry-After`` from Serve's proxy.
        retry_after_s: The ``Retry-After`` of a 503.
        replica_cpus: CPUs each generator replica reserves.
        replica_gpus: GPUs each generator replica reserves (0: runs on CPU).
        runtime: ``auto``, ``torch`` or ``onnx`` (:mod:`fsg_ray.config.runtime`); ONNX Runtime
            gets ``replica_cpus`` threads (at least 1).
        ingress_cpus: CPUs each ingress replica reserves.
        cors_origins: Origins allowed to call the API from a browser; empty (the default)
            turns CORS off.
        api_key: Key that every route except the health checks requires (``Authorization:
            Bearer KEY`` or ``X-API-Key: KEY``); None reads the ``FSG_API_KEY`` environment
            variable of the replicas, and no key there leaves the API open. Prefer the
            variable: Serve stores and shows an application's arguments.
    """

    RENAMED_KEYS: ClassVar[dict[str, str]] = {"s3_endpoint": "endpoint_url"}

    registry: str
    endpoint_url: str | None = None
    s3_region: str | None = None
    max_body_bytes: int = 20 * 1024 * 1024
    max_pixels: int = 25_000_000
    max_side: int = 1024
    default_max_side: int = 512
    max_batch_size: int = 8
    batch_wait_timeout_s: float = 0.01
    styles_per_replica: int = 8
    index_ttl_s: float = 10.0
    min_replicas: int = 1
    max_replicas: int = 1
    target_ongoing_requests: float = 4.0
    max_ongoing_requests: int = 16
    max_queued_requests: int = 64
    ingress_max_ongoing_requests: int = 16
    ingress_max_queued_requests: int = 128
    retry_after_s: int = 1
    replica_cpus: float = 1.0
    replica_gpus: float = 0.0
    runtime: str = "auto"
    ingress_cpus: float = 0.5
    cors_origins: tuple[str, ...] = ()
    api_key: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "registry", check_uri("registry", self.registry))
        check_endpoint("endpoint_url", self.endpoint_url)
        for key in ("max_body_bytes", "max_pixels", "max_batch_size", "styles_per_replica"):
            require(getattr(self, key) >= 1, key, "must be >= 1")
        require(self.max_side >= 8, "max_side", "must be >= 8")
        require(
            8 <= self.default_max_side <= self.max_side,
            "default_max_side",
            f"must be between 8 and max_side ({self.max_side})",
        )
        for key in ("batch_wait_timeout_s", "index_ttl_s", "replica_gpus", "retry_after_s"):
            require(getattr(self, key) >= 0, key, "must be >= 0")
        require(self.min_replicas >= 1, "min_replicas", "must be >= 1")
        require(self.max_replicas >= self.min_replicas, "max_replicas", "must be >= min_replicas")
        require(self.target_ongoing_requests > 0, "target_ongoing_requests", "must be > 0")
        for key in ("max_ongoing_requests", "ingress_max_ongoing_requests"):
            require(getattr(self, key) >= 1, key, "must be >= 1")
        for key in ("max_queued_requests", "ingress_max_queued_requests"):
            require(getattr(self, key) >= 1, key, "must be >= 1")
        check_runtime("runtime", self.runtime)
        for key in ("replica_cpus", "ingress_cpus"):
            require(getattr(self, key) >= 0, key, "must be >= 0")
        for i, origin in enumerate(self.cors_origins):
            require(
                origin == "*" or origin.startswith(("http://", "https://")),
                f"cors_origins[{i}]",
                f"{origin!r} is not '*' or an http(s) origin",
            )
        require(self.api_key != "", "api_key", "must not be empty (omit it for an open API)")
