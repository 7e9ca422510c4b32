"""``fsg serve``: serve the published styles online over HTTP (:mod:`fsg_ray.distributed.serve`)."""

from __future__ import annotations

import argparse
import dataclasses
import ipaddress
import logging
import os
import sys

from fsg_ray.app.options import Parents
from fsg_ray.config import ServeConfig, from_dict, options_with_flags
from fsg_ray.config.runtime import SERVE_RUNTIMES
from fsg_ray.io.storage import StorageError

#: The options of ``fsg serve`` that go into its :class:`~fsg_ray.config.ServeConfig`.
SERVE_KEYS = ("registry", "endpoint_url", "runtime")


def register(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser], parents: Parents
) -> None:
    """Adds ``fsg serve``."""
    serve = subparsers.add_parser(
        "serve",
        parents=[parents.endpoint, parents.ray],
        help="serve the published styles online over HTTP (a Ray Serve application)",
        description="Starts a Ray Serve application on HOST:PORT: GET / is a web page "
        "(upload a garment, pick a style, download the result), POST "
        "/v1/styles/STYLE/restyle restyles a photo, GET /v1/styles lists the styles, "
        "/healthz and /readyz are the health checks and /docs the OpenAPI docs. New versions "
        "published to the registry are served without a restart. Set FSG_API_KEY to require "
        "that key on every route but the health checks; without it the API is open only on "
        "a loopback --host (a warning says so), and elsewhere only with --allow-anonymous. "
        "For replicas, batching and limits use jobs/serve_config.yaml with `serve run`. "
        "Ctrl-C or SIGTERM drains and stops (exit 0).",
    )
    serve.add_argument("--registry", required=True, help="style registry (URI)")
    serve.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)"
    )
    serve.add_argument("--port", type=int, default=8000, help="port (default: 8000)")
    serve.add_argument(
        "--allow-anonymous",
        action="store_true",
        help="serve without FSG_API_KEY on a non-loopback --host (anyone who reaches it may "
        "call the API)",
    )
    serve.add_argument(
        "--runtime",
        choices=list(SERVE_RUNTIMES),
        default=None,
        help="run the generators in torch, torch with bf16 on the CPU (torch-bf16) or ONNX "
        "Runtime (CPU, replica_cpus threads); auto: torch with CUDA, else torch-bf16 where "
        "the CPU has bf16 matrix units (Intel AMX), else onnx (default: auto)",
    )
    serve.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Serves until Ctrl-C or SIGTERM (exit 0); exit 2 if the registry cannot be read or the
    API would be open on a non-loopback address."""
    from fsg_ray.distributed import api, serve, session
    from fsg_ray.io import registry

    flags = {k: getattr(args, k) for k in SERVE_KEYS}
    cfg = from_dict(ServeConfig, options_with_flags(None, flags, SERVE_KEYS))
    key = os.environ.get(cfg.api_key_env) or None
    if key is None and not (args.allow_anonymous or _loopback(args.host)):
        print(
            f"fsg serve: error: {cfg.api_key_env} is not set and --host {args.host} is not a "
            "loopback address: set the key, or pass --allow-anonymous to serve an open API",
            file=sys.stderr,
        )
        return 2
    if key is None:
        logging.warning(
            "fsg serve: NO API KEY: the API is open to anyone who reaches %s:%d; set %s to "
            "require one",
            args.host,
            args.port,
            cfg.api_key_env,
        )
        cfg = dataclasses.replace(cfg, allow_anonymous=True)
    try:  # fail before Ray starts when the registry cannot be read
        styles = registry.list_styles(serve.storage_for(cfg), cfg.registry)
    except StorageError as e:
        print(f"fsg serve: error: {e}", file=sys.stderr)
        return 2
    if not styles:
        logging.warning(
            "no styles published in %s yet; they are served once published", args.registry
        )
    # The key's digest reaches the replicas, wherever they run, in the job's runtime_env (not
    # the key: Ray's runtime-env agent logs the job's variables).
    env = {cfg.api_key_env + "_SHA256": api.key_digest(key)} if key else {}
    try:
        with (
            session.ray_session(args.address, args.num_cpus, env),
            session.stop_on_signals() as stop,
        ):
            serve.serve_forever(cfg, args.host, args.port, stop)
    except session.Stopped:
        pass
    logging.info("fsg serve: stopped")
    return 0


def _loopback(host: str) -> bool:
    """Whether ``host`` is a loopback address or ``localhost``."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
