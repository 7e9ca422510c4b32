"""The ``fsg`` command."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import logging
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from fsg_ray import datacmd, synthetic
from fsg_ray.storage import Storage, StorageError, StorageOptions


def _demo(args: argparse.Namespace) -> int:
    from fsg_ray import catalogue
    from fsg_ray.demo import run_demo

    styles = [s for s in args.styles.split(",") if s]
    result = run_demo(
        Path(args.out),
        styles=styles,
        quick=args.quick,
        seed=args.seed,
        s3=args.s3,
        num_cpus=args.num_cpus,
    )
    results = [catalogue.StyleResult(**r) for r in result["results"]]
    print(catalogue.format_summary(results))
    print(f"registry: {result['registry']}")
    for grid in result["grids"]:
        print(f"grid:     {grid}")
    print(json.dumps({k: v for k, v in result.items() if k != "results"}))
    return 1 if any(r.status == "failed" for r in results) else 0


def _styles(args: argparse.Namespace) -> int:
    from fsg_ray import registry

    options = StorageOptions.from_env()
    if args.endpoint_url:
        options = dataclasses.replace(options, endpoint_url=args.endpoint_url)
    try:
        styles = registry.list_styles(Storage(options), args.registry)
    except StorageError as e:
        print(f"fsg styles: error: {e}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(registry.styles_as_json(styles), indent=2))
    elif styles:
        print(registry.format_table(styles))
    else:
        print(f"no styles published in {args.registry}")
    return 0


def _train(args: argparse.Namespace) -> int:
    from fsg_ray import catalogue
    from fsg_ray.config import load_catalogue

    cat = load_catalogue(args.config)  # every key checked before Ray starts
    styles = args.styles.split(",") if args.styles else None
    with catalogue.ray_session(args.address, args.num_cpus):
        results = catalogue.train_catalogue(cat, styles=styles)
    print(catalogue.format_summary(results))
    return 1 if any(r.status == "failed" for r in results) else 0


def _restyle(args: argparse.Namespace) -> int:
    from fsg_ray import catalogue, restyle

    options = StorageOptions.from_env()
    if args.endpoint_url:
        options = dataclasses.replace(options, endpoint_url=args.endpoint_url)
    cfg = restyle.RestyleConfig(
        registry=args.registry,
        input=args.input,
        output=args.output,
        styles=() if args.styles == "all" else tuple(s for s in args.styles.split(",") if s),
        masks=args.masks,
        max_side=args.max_side,
        format=args.format,
        preserve_color=args.preserve_color,
        overwrite=args.overwrite,
        actors=args.actors,
    )
    storage = Storage(options)
    try:
        plan = restyle.plan(cfg, storage)  # styles resolved and inputs listed before Ray starts
        session = (
            catalogue.ray_session(args.address, args.num_cpus)
            if plan.todo
            else contextlib.nullcontext()
        )
        with session:
            result = restyle.execute(plan, storage)
    except StorageError as e:
        print(f"fsg restyle: error: {e}", file=sys.stderr)
        return 2
    print(restyle.format_summary(result))
    return 1 if result.counts[restyle.FAILED] else 0


def _serve(args: argparse.Namespace) -> int:
    from fsg_ray import catalogue, registry, serve
    from fsg_ray.config import ServeConfig, from_dict

    cfg = from_dict(
        ServeConfig,
        serve.absolute_registry({"registry": args.registry, "s3_endpoint": args.endpoint_url}),
    )
    try:  # fail before Ray starts when the registry cannot be read
        styles = registry.list_styles(serve.storage_for(cfg), cfg.registry)
    except StorageError as e:
        print(f"fsg serve: error: {e}", file=sys.stderr)
        return 2
    if not styles:
        logging.warning(
            "no styles published in %s yet; they are served once published", args.registry
        )
    # SIGTERM (kill, a container stop) unwinds like Ctrl-C: Serve and Ray shut down cleanly.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        with catalogue.ray_session(args.address, args.num_cpus):
            serve.serve_forever(cfg, args.host, args.port)
    except KeyboardInterrupt:
        logging.info("fsg serve: stopped")
    return 0


def _add_serve(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    serve = sub.add_parser(
        "serve",
        help="serve the published styles online over HTTP (a Ray Serve application)",
        description="Starts a Ray Serve application on HOST:PORT: GET / is a web page "
        "(upload a garment, pick a style, download the result), POST "
        "/v1/styles/STYLE/restyle restyles a photo, GET /v1/styles lists the styles, "
        "/healthz and /readyz are the health checks and /docs the OpenAPI docs. New versions "
        "published to the registry are served without a restart. Set FSG_API_KEY to require "
        "that key on every route but the health checks. For replicas, batching and limits "
        "use jobs/serve_config.yaml with `serve run`. Ctrl-C stops.",
    )
    serve.add_argument("--registry", required=True, help="style registry (URI)")
    serve.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)"
    )
    serve.add_argument("--port", type=int, default=8000, help="port (default: 8000)")
    serve.add_argument(
        "--endpoint-url",
        default=None,
        help="S3 endpoint such as http://127.0.0.1:9000 (default: AWS_ENDPOINT_URL_S3 or "
        "AWS_ENDPOINT_URL, else AWS itself)",
    )
    serve.add_argument(
        "--address",
        default=None,
        help="Ray cluster to join (e.g. auto); default: the RAY_ADDRESS variable, else a new "
        "local Ray",
    )
    serve.add_argument(
        "--num-cpus", type=int, default=None, help="CPUs of a new local Ray (default: all)"
    )
    serve.set_defaults(func=_serve)


def _add_restyle(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from fsg_ray.compositing import FORMATS  # no Ray import: `fsg --help` stays fast

    restyle = sub.add_parser(
        "restyle",
        help="restyle a product catalogue with published styles (an offline Ray Data job)",
        description="Reads product photos (a prefix, or a .csv/.parquet manifest with columns "
        "image[, mask]), runs every requested style's generator on each in a pool of Ray "
        "actors, keeps every pixel outside the garment mask, and writes "
        "OUTPUT/<style>/<relative path stem>.<ext> atomically, plus a Parquet manifest "
        "OUTPUT/_manifest/<run>.parquet with one row per input and style (status, reason, "
        "output, generator version, size, seconds). A rerun skips outputs already made by "
        "the same generator version and settings, so a killed job resumes.",
        epilog="Exit status: 0 when every output is ok or skipped, 1 when some failed (listed, "
        "and in the manifest), 2 for bad arguments, an unknown style or an unreadable URI.",
    )
    restyle.add_argument("--registry", required=True, help="style registry (URI)")
    restyle.add_argument(
        "--styles", required=True, help="comma-separated style names, or 'all' published ones"
    )
    restyle.add_argument("--input", required=True, help="prefix of photos, or a manifest (URI)")
    restyle.add_argument("--output", required=True, help="output folder or prefix (URI)")
    restyle.add_argument(
        "--masks",
        default=None,
        help="garment masks: a prefix of masks matched by relative path stem, 'auto' "
        "(estimated on plain light backgrounds), or 'none' (restyle the whole image); "
        "default: the manifest's mask column, else none",
    )
    restyle.add_argument(
        "--max-side",
        type=int,
        default=1024,
        help="shrink larger photos to this long side, keeping the aspect (default: 1024)",
    )
    restyle.add_argument(
        "--format",
        choices=list(FORMATS),
        default="png",
        help="output format; png keeps the pixels outside the mask exact (default: png)",
    )
    restyle.add_argument(
        "--preserve-color",
        action="store_true",
        help="keep the photo's colours (chroma), take only the brightness pattern of the style",
    )
    restyle.add_argument(
        "--overwrite", action="store_true", help="redo outputs that are already done"
    )
    restyle.add_argument(
        "--actors", type=int, default=1, help="generator actors (one GPU each if any; default: 1)"
    )
    restyle.add_argument(
        "--endpoint-url",
        default=None,
        help="S3 endpoint such as http://127.0.0.1:9000 (default: AWS_ENDPOINT_URL_S3 or "
        "AWS_ENDPOINT_URL, else AWS itself)",
    )
    restyle.add_argument(
        "--address",
        default=None,
        help="Ray cluster to join (e.g. auto); default: the RAY_ADDRESS variable, else a new "
        "local Ray",
    )
    restyle.add_argument(
        "--num-cpus", type=int, default=None, help="CPUs of a new local Ray (default: all)"
    )
    restyle.set_defaults(func=_restyle)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fsg", description="Fashion Style Generator (Jiang & Fu, IJCAI 2017) on Ray."
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser(
        "demo",
        help="train two styles at once on a local Ray with synthetic data, publish them, and "
        "write before/after grids (minutes on a CPU)",
        description="The whole pipeline on the embedded default: writes the synthetic dataset, "
        "trains the styles concurrently on a local Ray (Ray Data + one Ray Train trainer per "
        "style; random VGG weights, small images, a short Algorithm 1 schedule), publishes "
        "them to --out/registry and writes grid_<style>.png and grid.png under --out. "
        "Rerunning with the same --out resumes unfinished styles and skips published ones.",
    )
    demo.add_argument("--out", required=True, help="output folder (created if missing)")
    demo.add_argument(
        "--styles",
        default="stripes,waves",
        help="comma-separated synthetic styles to train at once, from "
        f"{', '.join(synthetic.STYLE_NAMES)} (default: stripes,waves)",
    )
    demo.add_argument(
        "--s3",
        action="store_true",
        help="keep data, runs and registry in a local S3 server (moto, in this process)",
    )
    demo.add_argument(
        "--num-cpus", type=int, default=None, help="CPUs of the local Ray (default: all)"
    )
    demo.add_argument("--seed", type=int, default=0, help="seed of data, weights and order")
    demo.add_argument(
        "--quick", action="store_true", help="a few steps only: checks the pipeline quickly"
    )
    demo.set_defaults(func=_demo)
    styles = sub.add_parser(
        "styles",
        help="list the styles published in a registry, with their versions",
        description="Lists every style of a registry (read from the per-style indexes): its "
        "current version, all versions, and the current version's publish time, final losses "
        "and VGG weights.",
    )
    styles.add_argument("registry", help="registry folder or prefix (URI)")
    styles.add_argument("--json", action="store_true", help="print the style indexes as JSON")
    styles.add_argument(
        "--endpoint-url",
        default=None,
        help="S3 endpoint such as http://127.0.0.1:9000 (default: AWS_ENDPOINT_URL_S3 or "
        "AWS_ENDPOINT_URL, else AWS itself)",
    )
    styles.set_defaults(func=_styles)
    train = sub.add_parser(
        "train",
        help="train every style of a catalogue at once on Ray Train and publish them",
        description="Validates the catalogue YAML, then runs one Ray Train TorchTrainer per "
        "style, all at once (styles that do not fit the cluster queue). Each style "
        "checkpoints to <runs>/<catalogue>/<style>/ and is published to the registry when "
        "done. Rerunning the same command resumes unfinished styles and skips published ones. "
        "Ends with a summary table; exit 1 if any style failed.",
    )
    train.add_argument("config", help="catalogue YAML (see jobs/configs/paper_styles.yaml)")
    train.add_argument("--styles", help="comma-separated subset of the catalogue's styles")
    train.add_argument(
        "--address",
        default=None,
        help="Ray cluster to join (e.g. auto); default: the RAY_ADDRESS variable, else a new "
        "local Ray",
    )
    train.add_argument(
        "--num-cpus", type=int, default=None, help="CPUs of a new local Ray (default: all)"
    )
    train.set_defaults(func=_train)
    _add_restyle(sub)
    _add_serve(sub)
    datacmd.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args.func(args))
    except (ValueError, FileNotFoundError, LookupError) as e:
        print(f"fsg {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
