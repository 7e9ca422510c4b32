"""``fsg serve``: the style catalogue online, as a Ray Serve application.

Two deployments; the request logic lives in :mod:`fsg_ray.distributed.api` (no Ray there)::

    HTTP ─► Ingress (FastAPI: auth, limits, decode, mask, encode; the web page at /)
               │ handle.options(multiplexed_model_id="style@version")
               ▼
            StyleGenerators (G(x) only)
               ├─ @serve.multiplexed: an LRU of generators per replica, loaded through one
               │  EncoderCache, so every style shares one VGG encoder E_n in memory
               └─ @serve.batch: concurrent requests of one style version and image size run
                  as one tensor batch

**Style multiplexing.** The ingress resolves a style to its current version through a
:class:`fsg_ray.distributed.catalog.StyleCatalog` (re-read in the background every
``index_ttl_s``; the last good list kept while the registry is down), so a newly published
version gets a new model id and replicas load it on first use: no restart. Serve routes a model
id to replicas that already hold it. Serve's batcher splits a batch by model id; the batch
function also groups by (model id, image size) itself, so every request is run by its own
style's generator however the batch was formed.

**Back-pressure.** ``max_ongoing_requests`` and ``max_queued_requests`` on both deployments:
a full generator queue raises ``BackPressureError`` in the ingress, answered 503 with
``Retry-After`` and a JSON reason; a full ingress queue is refused by Serve's proxy itself, 503
with ``Retry-After`` (its body is Serve's plain text).

**Bounded cost per request.** Bodies held at once are capped (``max_bytes_in_flight``) and
must arrive within ``body_timeout_s``; at most ``max_decodes`` photos are decoded at once, each
within ``max_pixels`` and shrunk while decoding; Serve's proxy ends a request after
``request_timeout_s``.

**Fail closed.** The key reaches the ingress replicas as an environment variable
(``api_key_env``): a Kubernetes Secret, or ``fsg serve``'s job-level ``runtime_env``, which
Serve does not show. An ingress without a key refuses to start unless ``allow_anonymous``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
import os
import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from importlib import resources
from typing import Annotated, Any

import numpy as np
import torch
from fastapi import Depends, FastAPI, Header, Query, Request
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import HTMLResponse, JSONResponse, Response
from PIL import Image
from ray import serve
from ray.serve.config import BackpressureConfig
from ray.serve.exceptions import BackPressureError, DeploymentUnavailableError
from ray.serve.handle import DeploymentHandle
from starlette.exceptions import HTTPException

from fsg_ray.config import ServeConfig, StorageOptions, from_dict
from fsg_ray.distributed import api
from fsg_ray.distributed.api import ApiError
from fsg_ray.distributed.catalog import StyleCatalog
from fsg_ray.io import registry
from fsg_ray.io.generators import EncoderCache, Runner, for_runtime, run_loaded
from fsg_ray.io.storage import Storage, StorageError

log = logging.getLogger(__name__)

APP_NAME = "fsg"
_PAGE = resources.files("fsg_ray.distributed").joinpath("web", "index.html")


#: Headers of every response: no MIME sniffing, and the page may not be framed (clickjacking).
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "frame-ancestors 'none'",
    "X-Frame-Options": "DENY",
}


def storage_for(cfg: ServeConfig, timeout_s: float | None = None) -> Storage:
    """Storage with the config's S3 endpoint and region over the environment's.

    Args:
        cfg: The service's config.
        timeout_s: Connect/read timeout of one request, with one retry; None keeps the
            defaults (generators are large reads; the style list must answer fast).
    """
    options = StorageOptions.given(cfg.endpoint_url, cfg.s3_region)
    if timeout_s is not None:
        options = dataclasses.replace(options, timeout_s=timeout_s, retries=1)
    return Storage(options)


def read_styles(storage: Storage, registry_uri: str) -> dict[str, registry.StyleIndex]:
    """The registry's style list, a bad style index logged and left out."""

    def skip(style: str, error: ValueError) -> None:
        log.error("style %r left out: its index is not a style index (%s)", style, error)

    return registry.list_styles(storage, registry_uri, on_bad_index=skip)


class StyleGenerators:
    """Runs G(x) for one style version per request, batched; generators multiplexed by style.

    Args:
        cfg: ``asdict`` of the :class:`ServeConfig`.
    """

    def __init__(self, cfg: dict[str, Any]) -> None:
        self.cfg = from_dict(ServeConfig, cfg)
        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        self.cache = EncoderCache(
            storage_for(self.cfg), self.device, max_encoders=self.cfg.encoders_per_replica
        )
        # All torch work of the replica (loading and G(x)) runs on this one thread. Each thread
        # that runs a parallel torch op gets its own OpenMP team; with two teams on a few cores
        # libgomp stops spin-waiting, and G(x) at 128 px took 21 ms instead of 13 (bf16, 2
        # cores; docs/serve.md, "One thread for torch").
        self._torch_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="fsg-torch")

        async def load(mid: str) -> Runner:
            style, version = api.parse_model_id(mid)
            threads = max(1, int(self.cfg.replica_cpus))

            def load_runner() -> Runner:
                gen, _ = self.cache.load(self.cfg.registry, style, version)
                return for_runtime(gen, self.cfg.runtime, self.device, threads)

            runner = await self._on_torch_thread(load_runner)
            log.info("loaded %s on %s (%s)", mid, self.device, type(runner).__name__)
            return runner

        # Set here, not as a decorator, so that the LRU size comes from the config.
        self._generator = serve.multiplexed(max_num_models_per_replica=self.cfg.styles_per_replica)(
            load
        )
        batched: Any = self._batched  # Ray types the batch wrapper as a plain callable
        batched.set_max_batch_size(self.cfg.max_batch_size)
        batched.set_batch_wait_timeout_s(self.cfg.batch_wait_timeout_s)

    async def _on_torch_thread(self, fn: Callable[[], Any]) -> Any:
        """``fn()`` on the replica's torch thread, awaited."""
        return await asyncio.get_running_loop().run_in_executor(self._torch_thread, fn)

    async def __call__(self, image: np.ndarray) -> tuple[np.ndarray, int]:
        """:meth:`run` with the request's style version (its multiplexed model id)."""
        return await self.run(serve.get_multiplexed_model_id(), image)

    async def run(self, mid: str, image: np.ndarray) -> tuple[np.ndarray, int]:
        """G(x) of one (H, W, 3) uint8 photo with the style version ``mid``, and the size of
        the batch it ran in.

        Raises:
            registry.StyleNotFound, registry.VersionNotFound: The version is gone.
        """
        result = await self._batched((mid, image))
        if isinstance(result, Exception):
            raise result
        return result

    @serve.batch(max_batch_size=8, batch_wait_timeout_s=0.01)
    async def _batched(
        self, requests: list[tuple[str, np.ndarray]], /
    ) -> list[tuple[np.ndarray, int] | Exception]:
        """One G(x) batch per (model id, image size) among the requests (model id, photo); a
        group that fails gets its error as its result, the others are unaffected."""
        images = [image for _, image in requests]
        groups: dict[tuple[str, tuple[int, ...]], list[int]] = {}
        for i, (mid, image) in enumerate(requests):
            groups.setdefault((mid, image.shape), []).append(i)
        results: list[tuple[np.ndarray, int] | Exception] = [ValueError("not run")] * len(images)
        for (mid, _), picked in groups.items():
            try:
                gen = await self._generator(mid)
                batch = np.stack([images[i] for i in picked])  # (B, H, W, 3)
                wanted = {mid: range(len(picked))}
                styled = await self._on_torch_thread(
                    functools.partial(run_loaded, {mid: gen}, batch, wanted, self.device)
                )
            except Exception as e:  # one style's failure is reported to its requests only
                results = [e if i in picked else r for i, r in enumerate(results)]
                continue
            for k, i in enumerate(picked):
                results[i] = (styled[mid][k], len(picked))
        return results


@serve.ingress()
class Ingress:
    """The HTTP API and the web page (FastAPI); see :func:`build_api`.

    Args:
        generators: Handle of the :class:`StyleGenerators` deployment (``two_hop``), or None
            for ``one_hop``: this replica holds a :class:`StyleGenerators` and runs G(x) itself.
        cfg: ``asdict`` of the :class:`ServeConfig`.
    """

    def __init__(self, generators: DeploymentHandle | None, cfg: dict[str, Any]) -> None:
        self.cfg = from_dict(ServeConfig, cfg)
        # Fail closed: without a key (and without allow_anonymous) the replica does not start.
        self.api_key = api.resolve_api_key(self.cfg, os.environ)
        if self.api_key is None:
            log.warning("ingress up WITHOUT an API key (allow_anonymous): anyone may call it")
        else:
            log.info("ingress up; API key required")
        # Pillow's own bomb check, for any path that does not check the header first.
        Image.MAX_IMAGE_PIXELS = max(self.cfg.max_pixels, self.cfg.max_mask_pixels)
        self.generators = generators
        self.local = StyleGenerators(cfg) if generators is None else None
        self.catalog = catalog_for(self.cfg)

    def __serve_build_asgi_app__(self) -> FastAPI:
        return build_api(self.cfg, self.catalog, self.api_key, self.run)

    async def run(self, mid: str, image: np.ndarray) -> tuple[np.ndarray, int]:
        """G(x) in this replica (``one_hop``) or on a generator replica; Serve's overload
        becomes a 503 :class:`ApiError`."""
        try:
            if self.local is not None:
                return await self.local.run(mid, image)
            assert self.generators is not None
            handle = self.generators.options(multiplexed_model_id=mid)
            return await handle.remote(image)
        except BackPressureError:
            raise api.overloaded(self.cfg.retry_after_s) from None
        except DeploymentUnavailableError:
            raise api.overloaded(self.cfg.retry_after_s) from None
        except (registry.StyleNotFound, registry.VersionNotFound):
            raise api.unknown_style(mid.partition("@")[0]) from None


def catalog_for(cfg: ServeConfig) -> StyleCatalog:
    """The ingress's style list: short storage timeouts, the last good list kept up to
    ``index_max_stale_s``, failures remembered for ``index_retry_s``."""
    storage = storage_for(cfg, cfg.storage_timeout_s)
    return StyleCatalog(
        lambda: read_styles(storage, cfg.registry),
        ttl_s=cfg.index_ttl_s,
        max_stale_s=cfg.index_max_stale_s,
        retry_s=cfg.index_retry_s,
        # a listing and one index read, each with one retry, may take this long
        wait_s=4 * cfg.storage_timeout_s,
    )


#: FastAPI publishes a route's docstring, up to its first form feed, as its OpenAPI description
#: unless it is given one; the route docstrings below are notes for developers, so a route
#: without a public description is given this (empty once cut at the form feed).
_NO_DESCRIPTION = "\f"
# The routes' OpenAPI summaries, and the one public description.
_HEALTHZ = "Liveness: the ingress answers"
_READYZ = "Readiness: the registry is readable and has styles"
_STYLES = "The published styles and their versions"
_RESTYLE = "Restyle a garment photo with a style"
_RESTYLE_DESCRIPTION = (
    "The photo is the body (Content-Type image/* or application/octet-stream) or the file field "
    "'image' of multipart/form-data, with an optional garment mask in the file field 'mask' "
    "(white = garment). Answers the restyled image."
)
#: G(x) on a generator replica: ``async (model id, (H, W, 3) uint8) -> (G(x), batch size)``.
RunG = Callable[[str, np.ndarray], Awaitable[tuple[np.ndarray, int]]]


@dataclasses.dataclass(frozen=True)
class ApiContext:
    """What the routes share, held on ``app.state`` and handed to them by :func:`_context`.

    Attributes:
        cfg: The service's config.
        catalog: The published styles.
        api_key: The key every route but the health checks requires; None for none.
        run: G(x) on a generator replica.
        bodies: The request bodies held at once (``max_bytes_in_flight``).
        decodes: Photos decoded at once (``max_decodes``).
    """

    cfg: ServeConfig
    catalog: StyleCatalog
    api_key: str | None
    run: RunG
    bodies: api.BodyBudget
    decodes: threading.BoundedSemaphore


def build_api(cfg: ServeConfig, catalog: StyleCatalog, api_key: str | None, run: RunG) -> FastAPI:
    """The FastAPI app: the routes, the error handlers and (if configured) CORS.

    Args:
        cfg: The service's config.
        catalog: The published styles.
        api_key: The key every route but the health checks requires; None for none.
        run: G(x) on a generator replica.
    """
    app = FastAPI(
        title="fsg-ray style service",
        description="Restyle garment photos with published Fashion Style Generator styles.",
        version="1",
    )
    bodies = api.BodyBudget(cfg.max_bytes_in_flight, cfg.retry_after_s)
    decodes = threading.BoundedSemaphore(cfg.max_decodes)
    app.state.context = ApiContext(cfg, catalog, api_key, run, bodies, decodes)
    _add_error_handlers(app)
    app.middleware("http")(_security_headers)
    if cfg.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(cfg.cors_origins),
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "X-API-Key", "Content-Type"],
        )
    get, post, none = ["GET"], ["POST"], _NO_DESCRIPTION
    route = app.add_api_route
    route("/", page, methods=get, response_class=HTMLResponse, include_in_schema=False)
    route("/healthz", healthz, methods=get, summary=_HEALTHZ, description=none)
    route("/readyz", readyz, methods=get, summary=_READYZ, description=none)
    route("/v1/styles", list_styles, methods=get, summary=_STYLES, description=none)
    route(
        "/v1/styles/{style}/restyle",
        restyle,
        methods=post,
        summary=_RESTYLE,
        description=_RESTYLE_DESCRIPTION,
        response_class=Response,
        responses={200: {"content": {t: {} for t in ("image/png", "image/jpeg", "image/webp")}}},
    )
    return app


async def _security_headers(
    request: Request, call_next: Callable[[Request], Awaitable[Response]]
) -> Response:
    """Adds :data:`SECURITY_HEADERS` to every response."""
    response = await call_next(request)
    response.headers.update(SECURITY_HEADERS)
    return response


def _context(request: Request) -> ApiContext:
    """The :class:`ApiContext` of the app that received ``request``."""
    context = request.app.state.context
    assert isinstance(context, ApiContext)
    return context


#: A route parameter that receives the app's :class:`ApiContext`.
Context = Annotated[ApiContext, Depends(_context)]


async def page() -> HTMLResponse:
    """``GET /``: the web page (read per request, so an edited page shows without a restart)."""
    return HTMLResponse(_PAGE.read_text(encoding="utf-8"), headers={"Cache-Control": "no-cache"})


async def healthz() -> dict[str, str]:
    """``GET /healthz``: liveness, no key and no storage."""
    return {"status": "ok"}


async def readyz(context: Context) -> JSONResponse:
    """``GET /readyz``: 503 until the registry is readable and has a style; no key. Never
    500: whatever fails, the answer is "not ready" and the error is logged."""
    try:
        styles = await asyncio.to_thread(context.catalog.styles)
    except ApiError:
        return _error(ApiError(503, "not_ready", "the style registry cannot be read"))
    except Exception:
        log.exception("readiness: the style list failed")
        return _error(ApiError(503, "not_ready", "the style registry cannot be read"))
    if not styles:
        return _error(ApiError(503, "not_ready", "no style is published yet"))
    return JSONResponse({"status": "ready", "styles": len(styles)})


async def list_styles(
    context: Context,
    authorization: str | None = Header(None),
    x_api_key: str | None = Header(None),
) -> dict[str, Any]:
    """``GET /v1/styles``: the published styles (:func:`fsg_ray.distributed.api.styles_json`)."""
    api.check_api_key(context.api_key, authorization, x_api_key)
    return api.styles_json(await asyncio.to_thread(context.catalog.styles))


async def restyle(
    request: Request,
    context: Context,
    style: str = PathParam(..., description="a style name from GET /v1/styles"),
    max_side: str | None = Query(None, description="longest output side in px"),
    format: str | None = Query(None, description="png (default), jpeg or webp"),
    preserve_color: str | None = Query(None, description="true: keep the photo's colours"),
    strength: str | None = Query(None, description="0-4: the style's change, 1 as trained"),
    authorization: str | None = Header(None),
    x_api_key: str | None = Header(None),
) -> Response:
    """``POST /v1/styles/{style}/restyle``: the steps of :mod:`fsg_ray.distributed.api`, in
    its order, around G(x) on a generator replica."""
    # The parameters document the options; parse_options reads and checks them, after auth.
    cfg = context.cfg
    api.check_api_key(context.api_key, authorization, x_api_key)
    api.check_style_id(style)
    options = api.parse_options(request.query_params, cfg)
    kind = api.body_kind(request.headers.get("content-type"))
    length = request.headers.get("content-length")
    api.check_content_length(length, cfg.max_body_bytes)
    # An unknown style is refused before a byte of the body is read.
    version = await asyncio.to_thread(context.catalog.current, style)
    with context.bodies.hold(int(length) if length else cfg.max_body_bytes):
        body = await api.read_limited(request.stream(), cfg.max_body_bytes, cfg.body_timeout_s)
        image, mask = (body, None)
        if kind == "multipart":
            image, mask = await api.split_multipart(request.headers, body)
        prepared = await asyncio.to_thread(_prepare, context, image, mask, options)
    styled, batch = await context.run(api.model_id(style, version), prepared.image)
    tag = {"style": style, "version": version}
    data = await asyncio.to_thread(api.finish, styled, prepared, options, tag)
    headers = api.result_headers(style, version, options, batch)
    return Response(data, media_type=options.media_type, headers=headers)


def _prepare(
    context: ApiContext, image: bytes, mask: bytes | None, options: api.RestyleOptions
) -> api.Prepared:
    """:func:`api.prepare` once a decode slot is free (``max_decodes`` at once: with
    ``max_pixels`` this bounds the decode memory of the replica)."""
    with context.decodes:
        return api.prepare(image, mask, options, context.cfg)


def _error(e: ApiError) -> JSONResponse:
    return JSONResponse(e.body(), status_code=e.status, headers=e.headers)


def _add_error_handlers(app: FastAPI) -> None:
    """Every error is JSON ``{"error", "reason"}``; nothing internal is echoed."""
    app.add_exception_handler(ApiError, _on_api_error)
    app.add_exception_handler(StorageError, _on_storage_error)
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(HTTPException, _on_http_error)
    app.add_exception_handler(Exception, _on_internal_error)


async def _on_api_error(request: Request, exc: Exception) -> JSONResponse:
    """An :class:`ApiError` as it is."""
    assert isinstance(exc, ApiError)
    return _error(exc)


async def _on_validation_error(request: Request, exc: Exception) -> JSONResponse:
    """FastAPI's parameter validation: 400 naming the first bad parameter."""
    assert isinstance(exc, RequestValidationError)
    first = exc.errors()[0] if exc.errors() else {}
    where = ".".join(str(p) for p in first.get("loc", ()))
    return _error(ApiError(400, "bad_request", f"{where}: {first.get('msg', 'invalid')}"))


async def _on_http_error(request: Request, exc: Exception) -> JSONResponse:
    """Starlette's own errors (no such route, wrong method) with their status and headers."""
    assert isinstance(exc, HTTPException)
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    return _error(ApiError(exc.status_code, code, str(exc.detail), exc.headers))


async def _on_internal_error(request: Request, exc: Exception) -> JSONResponse:
    """Anything else: 500, logged with its traceback, never echoed."""
    log.error("unexpected error on %s %s", request.method, request.url.path, exc_info=exc)
    return _error(ApiError(500, "internal_error", "the server failed; the error is logged"))


async def _on_storage_error(request: Request, exc: Exception) -> JSONResponse:
    """The registry cannot be read: 503, the storage location not named."""
    log.error("registry read failed on %s", request.url.path, exc_info=exc)
    return _error(ApiError(503, "unavailable", "the style registry cannot be read now"))


def build_app(cfg: ServeConfig) -> serve.Application:
    """The Serve application: the ingress, bound to the generator deployment (``two_hop``) or
    running the generators itself (``one_hop``; :attr:`ServeConfig.one_hop`), each deployment
    with the config's replicas (autoscaling between ``min_replicas`` and ``max_replicas``),
    resources and back-pressure."""
    args = dataclasses.asdict(cfg)
    autoscaling = {
        "min_replicas": cfg.min_replicas,
        "max_replicas": cfg.max_replicas,
        "target_ongoing_requests": cfg.target_ongoing_requests,
    }
    backpressure = BackpressureConfig(status_code=503, retry_after_s=cfg.retry_after_s)
    ingress = functools.partial(
        serve.deployment,
        autoscaling_config=autoscaling,
        max_ongoing_requests=cfg.ingress_max_ongoing_requests,
        max_queued_requests=cfg.ingress_max_queued_requests,
        backpressure_config=backpressure,
    )
    if cfg.one_hop:
        resources = {"num_cpus": cfg.replica_cpus + cfg.ingress_cpus, "num_gpus": cfg.replica_gpus}
        return ingress(ray_actor_options=resources)(Ingress).bind(None, args)
    generators = serve.deployment(
        autoscaling_config=autoscaling,
        max_ongoing_requests=cfg.max_ongoing_requests,
        max_queued_requests=cfg.max_queued_requests,
        backpressure_config=backpressure,
        ray_actor_options={"num_cpus": cfg.replica_cpus, "num_gpus": cfg.replica_gpus},
    )(StyleGenerators).bind(args)
    return ingress(ray_actor_options={"num_cpus": cfg.ingress_cpus})(Ingress).bind(generators, args)


def app_builder(args: dict[str, Any]) -> serve.Application:
    """The application of a Serve config file
    (``import_path: fsg_ray.distributed.serve:app_builder``,
    its ``args`` the :class:`ServeConfig` keys); a relative local registry path is taken from
    the directory ``serve run``/``serve deploy`` runs in."""
    return build_app(from_dict(ServeConfig, args))


#: Seconds Serve's controller gives a new HTTP proxy to answer its first ready check.
#: Serve's own default, 5 s, is shorter than a proxy's start on a loaded 2-core machine
#: (importing Serve in a fresh worker): the controller then kills the proxy before it runs,
#: and ``serve.start``, waiting on that first proxy, fails with ``ActorDiedError``.
PROXY_READY_TIMEOUT_S = 60.0
_PROXY_READY_VAR = "RAY_SERVE_PROXY_READY_CHECK_TIMEOUT_S"


def start_serve(host: str, port: int, request_timeout_s: float | None = None) -> None:
    """``serve.start`` on ``host:port``, with the controller's proxy ready check at
    :data:`PROXY_READY_TIMEOUT_S` (unless ``RAY_SERVE_PROXY_READY_CHECK_TIMEOUT_S`` is set
    here). Only a new controller takes it: one already running keeps its own."""
    http: dict[str, Any] = {"host": host, "port": port}
    if request_timeout_s is not None:
        http["request_timeout_s"] = request_timeout_s
    ready_s = os.environ.get(_PROXY_READY_VAR, str(PROXY_READY_TIMEOUT_S))
    env = {"env_vars": {_PROXY_READY_VAR: ready_s}}
    serve.start(http_options=http, controller_options={"runtime_env": env})


def serve_forever(cfg: ServeConfig, host: str, port: int, stop: threading.Event) -> None:
    """Starts Serve on ``host:port`` with the application and blocks until ``stop`` is set
    (or :class:`fsg_ray.distributed.session.Stopped` unwinds it); Serve is shut down on the
    way out, so in-flight requests are drained by its graceful shutdown.

    Ray must be initialised (the CLI opens :func:`fsg_ray.distributed.session.ray_session`).
    """
    start_serve(host, port, cfg.request_timeout_s)
    try:
        serve.run(build_app(cfg), name=APP_NAME, route_prefix="/")
        log.info(
            "serving %s at http://%s:%d/ (API docs at /docs); Ctrl-C or SIGTERM stops",
            cfg.registry,
            host,
            port,
        )
        stop.wait()
    finally:
        serve.shutdown()
