"""The online service's config (``fsg serve``, ``jobs/serve_config.yaml``).

Keys are named from the root of Serve's ``args`` mapping: ``max_side: must be >= 8``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from fsg_ray.config.errors import check_endpoint, check_uri, require
from fsg_ray.config.runtime import SERVE_RUNTIMES, check_runtime

#: ``ServeConfig.topology`` values.
TOPOLOGIES = ("auto", "one_hop", "two_hop")


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
        runtime: ``auto``, ``torch``, ``torch-bf16`` or ``onnx`` (:mod:`fsg_ray.config.runtime`; not
            ``onnx-int8``, which needs calibration photos); ONNX Runtime gets
            ``replica_cpus`` threads (at least 1).
        ingress_cpus: CPUs each ingress replica reserves.
        topology: ``two_hop``: HTTP ingress and generator replicas are two deployments, a
            Ray hop apart (each scales on its own; the GPU replicas do no HTTP or image
            work). ``one_hop``: the ingress replica runs the generators itself, with
            ``replica_cpus + ingress_cpus`` CPUs and ``replica_gpus`` GPUs (one hop less:
            about 8 ms per request on 2 CPU cores, docs/benchmarks.md). ``auto`` (the
            default): ``one_hop`` when the generators run on the CPU (``replica_gpus`` 0),
            where both share the same cores anyway; ``two_hop`` on GPUs.
        cors_origins: Origins allowed to call the API from a browser; empty (the default)
            turns CORS off.
        api_key_env: Environment variable of the ingress replicas that holds the key every
            route except the health checks and the page requires (``Authorization: Bearer
            KEY`` or ``X-API-Key: KEY``). The key itself is never a config key: Serve stores
            an application's arguments and shows them in its REST API.
        allow_anonymous: Serve without a key. False (the default) makes an ingress replica
            without the key refuse to start: the API fails closed.
        request_timeout_s: Serve's HTTP proxy ends a request that takes longer (``fsg
            serve``; in a Serve config file it is ``http_options.request_timeout_s``).
        body_timeout_s: Longest time to receive a request's body; a slower sender gets 408
            and its connection is closed, so slow senders cannot hold every ingress slot.
        max_bytes_in_flight: Request bodies one ingress replica holds at once, in bytes; a
            request that would pass it gets 503 with ``Retry-After`` before its body is read.
        max_decodes: Photos one ingress replica decodes at once; the others wait. With
            ``max_pixels`` this bounds the ingress's decode memory.
        max_mask_pixels: Largest garment mask (width x height); a mask must also have the
            photo's size.
        encoders_per_replica: VGG encoders (one per weight spec) a generator replica keeps;
            the least recently used one is dropped.
        index_max_stale_s: Seconds the last good style list is served when the registry
            cannot be read; after that requests get 503.
        index_retry_s: Seconds a failed registry read is remembered: no new read before then.
        storage_timeout_s: Connect and read timeout of one registry request from the ingress.
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
    topology: str = "auto"
    cors_origins: tuple[str, ...] = ()
    api_key_env: str = "FSG_API_KEY"
    allow_anonymous: bool = False
    request_timeout_s: float = 60.0
    body_timeout_s: float = 15.0
    max_bytes_in_flight: int = 64 * 1024 * 1024
    max_decodes: int = 2
    max_mask_pixels: int = 25_000_000
    encoders_per_replica: int = 2
    index_max_stale_s: float = 600.0
    index_retry_s: float = 2.0
    storage_timeout_s: float = 3.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "registry", check_uri("registry", self.registry))
        check_endpoint("endpoint_url", self.endpoint_url)
        for key in (
            "max_body_bytes",
            "max_pixels",
            "max_batch_size",
            "styles_per_replica",
            "max_decodes",
            "max_mask_pixels",
            "encoders_per_replica",
        ):
            require(getattr(self, key) >= 1, key, "must be >= 1")
        require(self.max_side >= 8, "max_side", "must be >= 8")
        require(
            8 <= self.default_max_side <= self.max_side,
            "default_max_side",
            f"must be between 8 and max_side ({self.max_side})",
        )
        for key in (
            "batch_wait_timeout_s",
            "index_ttl_s",
            "replica_gpus",
            "retry_after_s",
            "index_max_stale_s",
            "index_retry_s",
        ):
            require(getattr(self, key) >= 0, key, "must be >= 0")
        require(self.min_replicas >= 1, "min_replicas", "must be >= 1")
        require(self.max_replicas >= self.min_replicas, "max_replicas", "must be >= min_replicas")
        require(self.target_ongoing_requests > 0, "target_ongoing_requests", "must be > 0")
        for key in ("max_ongoing_requests", "ingress_max_ongoing_requests"):
            require(getattr(self, key) >= 1, key, "must be >= 1")
        for key in ("max_queued_requests", "ingress_max_queued_requests"):
            require(getattr(self, key) >= 1, key, "must be >= 1")
        check_runtime("runtime", self.runtime, SERVE_RUNTIMES)
        require(
            self.topology in TOPOLOGIES,
            "topology",
            f"{self.topology!r} is not one of {', '.join(TOPOLOGIES)}",
        )
        for key in ("replica_cpus", "ingress_cpus"):
            require(getattr(self, key) >= 0, key, "must be >= 0")
        for i, origin in enumerate(self.cors_origins):
            require(
                origin == "*" or origin.startswith(("http://", "https://")),
                f"cors_origins[{i}]",
                f"{origin!r} is not '*' or an http(s) origin",
            )
        for key in ("request_timeout_s", "body_timeout_s", "storage_timeout_s"):
            require(getattr(self, key) > 0, key, "must be > 0")
        require(
            self.max_bytes_in_flight >= self.max_body_bytes,
            "max_bytes_in_flight",
            f"must be >= max_body_bytes ({self.max_body_bytes})",
        )
        require(
            self.api_key_env.isidentifier(), "api_key_env", "must be an environment variable name"
        )

    @property
    def one_hop(self) -> bool:
        """Whether the ingress runs the generators itself (``topology``, ``auto`` resolved)."""
        if self.topology == "auto":
            return self.replica_gpus == 0
        return self.topology == "one_hop"
