"""The ``fsg`` command."""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from fsg_ray.app import data
from fsg_ray.io import synthetic
from fsg_ray.io.storage import Storage, StorageError, StorageOptions


def _demo(args: argparse.Namespace) -> int:
    from fsg_ray.app.demo import run_demo
    from fsg_ray.distributed import trainer

    styles = [s for s in args.styles.split(",") if s]
    if args.ablations is None:
        ablate = styles[:1]
    else:
        ablate = [s for s in args.ablations.split(",") if s and s != "none"]
    result = run_demo(
        Path(args.out),
        styles=styles,
        quick=args.quick,
        seed=args.seed,
        s3=args.s3,
        num_cpus=args.num_cpus,
        ablate=ablate,
    )
    results = [trainer.StyleResult(**r) for r in result["results"]]
    print(trainer.format_summary(results))
    print(f"registry: {result['registry']}")
    for grid in result["grids"]:
        print(f"grid:     {grid}")
    print(json.dumps({k: v for k, v in result.items() if k != "results"}))
    return 1 if any(r.status == "failed" for r in results) else 0


def _styles(args: argparse.Namespace) -> int:
    from fsg_ray.io import registry

    options = StorageOptions.given(args.endpoint_url)
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
    from fsg_ray.config import load_catalogue
    from fsg_ray.distributed import session, trainer

    cat = load_catalogue(args.config)  # every key checked before Ray starts
    styles = args.styles.split(",") if args.styles else None
    with session.ray_session(args.address, args.num_cpus):
        results = trainer.train_catalogue(cat, styles=styles)
    print(trainer.format_summary(results))
    return 1 if any(r.status == "failed" for r in results) else 0


#: Options of ``fsg restyle`` passed to
#: :class:`~fsg_ray.distributed.restyle.RestyleConfig` as they are.
RESTYLE_PLAIN = ("masks", "max_side", "format", "preserve_color", "overwrite", "actors")
#: Every option that a ``--config`` YAML file may set, by key.
RESTYLE_KEYS = ("registry", "styles", "input", "output", *RESTYLE_PLAIN, "endpoint_url")


def restyle_options(args: argparse.Namespace) -> dict[str, Any]:
    """The job's options: ``--config``'s keys, then the flags given on the command line.

    Raises:
        ValueError: An unreadable or malformed file, an unknown key, or a required option
            (registry, styles, input, output) given nowhere.
    """
    found: dict[str, Any] = {}
    if args.config:
        try:
            found = yaml.safe_load(Path(args.config).read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as e:
            raise ValueError(f"--config {args.config}: {e}") from None
        if not isinstance(found, dict):
            raise ValueError(f"--config {args.config}: expected a mapping of options")
        unknown = sorted(set(found) - set(RESTYLE_KEYS))
        if unknown:
            raise ValueError(
                f"--config {args.config}: unknown keys {unknown}; known: {RESTYLE_KEYS}"
            )
    given = {k: getattr(args, k) for k in RESTYLE_KEYS if getattr(args, k) is not None}
    options = {**found, **given}
    missing = [k for k in ("registry", "styles", "input", "output") if k not in options]
    if missing:
        raise ValueError(f"missing {', '.join('--' + k for k in missing)} (flags or --config)")
    if isinstance(options["styles"], list):
        options["styles"] = ",".join(options["styles"])
    return options


def _restyle(args: argparse.Namespace) -> int:
    from fsg_ray.distributed import restyle, session

    o = restyle_options(args)
    options = StorageOptions.given(o.get("endpoint_url"))
    styles = str(o["styles"])
    cfg = restyle.RestyleConfig(
        registry=o["registry"],
        input=o["input"],
        output=o["output"],
        styles=() if styles == "all" else tuple(s for s in styles.split(",") if s),
        **{k: o[k] for k in RESTYLE_PLAIN if k in o},
    )
    storage = Storage(options)
    try:
        plan = restyle.plan(cfg, storage)  # styles resolved and inputs listed before Ray starts
        ray_or_none = (
            session.ray_session(args.address, args.num_cpus)
            if plan.todo
            else contextlib.nullcontext()
        )
        with ray_or_none:
            result = restyle.execute(plan, storage)
    except StorageError as e:
        print(f"fsg restyle: error: {e}", file=sys.stderr)
        return 2
    print(restyle.format_summary(result))
    return 1 if result.counts[restyle.FAILED] else 0


def _eval(args: argparse.Namespace) -> int:
    from fsg_ray.app import evaluate

    options = StorageOptions.given(args.endpoint_url)
    cfg = evaluate.EvalConfig(
        registry=args.registry,
        style=args.style,
        images=args.images,
        out=args.out,
        masks=args.masks,
        gatys_iters=args.gatys_iters,
        max_side=args.max_side,
        eval_vgg=args.eval_vgg,
    )
    try:
        report = evaluate.evaluate(cfg, Storage(options))
    except StorageError as e:
        print(f"fsg eval: error: {e}", file=sys.stderr)
        return 2
    print(evaluate.format_table(report))
    for name in (evaluate.SHEET, evaluate.METRICS_JSON, evaluate.METRICS_MD):
        print(f"wrote {cfg.out.rstrip('/')}/{name}")
    return 0


def _add_eval(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    ev = sub.add_parser(
        "eval",
        help="compare every trained mode of a style and Gatys on the same garments",
        description="Runs the current version of every registry entry whose base style is "
        "--style (the full method and its global_only / patch_only ablations) and Gatys "
        "optimisation (NeuralST) on the garments below --images. Writes OUT/sheet.png "
        "(rows: garments; columns: style image, input, each method inside the garment "
        "mask), OUT/metrics.json and OUT/metrics.md (style distances, structure, silhouette "
        "IoU, background leakage, seconds per image; see docs/metrics.md) and each raw "
        "output under OUT/outputs/<method>/.",
        epilog="Exit status: 0 on success, 2 for bad arguments, an unknown style, missing "
        "images or masks, or an unreadable URI.",
    )
    ev.add_argument("--registry", required=True, help="style registry (URI)")
    ev.add_argument("--style", required=True, help="base style name, e.g. stripes")
    ev.add_argument("--images", required=True, help="prefix of garment photos (URI)")
    ev.add_argument(
        "--masks",
        default=None,
        help="prefix of garment masks, matched by relative path without suffix (default: "
        "estimated from plain light backgrounds)",
    )
    ev.add_argument(
        "--gatys-iters",
        type=int,
        default=200,
        help="L-BFGS iterations of Gatys optimisation (default: 200, as the paper; 0: skip)",
    )
    ev.add_argument(
        "--max-side",
        type=int,
        default=256,
        help="shrink larger photos to this long side first (default: 256)",
    )
    ev.add_argument(
        "--eval-vgg",
        default=None,
        help="VGG weights of the evaluation style distance (default: random:<seed+1> for "
        "generators trained on random:<seed>, else imagenet)",
    )
    ev.add_argument("--out", required=True, help="output folder or prefix (URI)")
    ev.add_argument(
        "--endpoint-url",
        default=None,
        help="S3 endpoint such as http://127.0.0.1:9000 (default: AWS_ENDPOINT_URL_S3 or "
        "AWS_ENDPOINT_URL, else AWS itself)",
    )
    ev.set_defaults(func=_eval)


def _serve(args: argparse.Namespace) -> int:
    from fsg_ray.config import ServeConfig, from_dict
    from fsg_ray.distributed import serve, session
    from fsg_ray.io import registry

    cfg = from_dict(ServeConfig, {"registry": args.registry, "s3_endpoint": args.endpoint_url})
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
        with session.ray_session(args.address, args.num_cpus):
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
    from fsg_ray.io.compositing import FORMATS  # no Ray import: `fsg --help` stays fast

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
    restyle.add_argument(
        "--config",
        default=None,
        help="YAML file of these options by name (registry, styles, input, output, masks, "
        "max_side, format, preserve_color, overwrite, actors, endpoint_url); flags given "
        "here win (example: jobs/configs/restyle_catalogue.yaml)",
    )
    restyle.add_argument("--registry", help="style registry (URI); required")
    restyle.add_argument(
        "--styles", help="comma-separated style names, or 'all' published ones; required"
    )
    restyle.add_argument("--input", help="prefix of photos, or a manifest (URI); required")
    restyle.add_argument("--output", help="output folder or prefix (URI); required")
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
        default=None,
        help="shrink larger photos to this long side, keeping the aspect (default: 1024)",
    )
    restyle.add_argument(
        "--format",
        choices=list(FORMATS),
        default=None,
        help="output format; png keeps the pixels outside the mask exact (default: png)",
    )
    restyle.add_argument(
        "--preserve-color",
        action="store_true",
        default=None,
        help="keep the photo's colours (chroma), take only the brightness pattern of the style",
    )
    restyle.add_argument(
        "--overwrite",
        action="store_true",
        default=None,
        help="redo outputs that are already done",
    )
    restyle.add_argument(
        "--actors",
        type=int,
        default=None,
        help="generator actors (one GPU each if any; default: 1)",
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
        help="train a style and its two ablations at once on a local Ray with synthetic data, "
        "publish them, and write before/after grids (minutes on a CPU)",
        description="The whole pipeline on the embedded default: writes the synthetic dataset, "
        "trains the styles and the global_only (<style>-feeds) and patch_only (<style>-mgan) "
        "ablations of the first one concurrently on a local Ray (Ray Data + one Ray Train "
        "trainer per entry; random VGG weights, small images, a short Algorithm 1 schedule), "
        "publishes them to --out/registry and writes grid_<entry>.png and grid.png under "
        "--out. Rerunning with the same --out resumes unfinished entries and skips published "
        "ones. `fsg eval --style <style>` then compares the modes.",
    )
    demo.add_argument("--out", required=True, help="output folder (created if missing)")
    demo.add_argument(
        "--styles",
        default="stripes",
        help="comma-separated synthetic styles to train at once, from "
        f"{', '.join(synthetic.STYLE_NAMES)} (default: stripes)",
    )
    demo.add_argument(
        "--ablations",
        default=None,
        help="comma-separated styles (of --styles) whose global_only and patch_only "
        "ablations are trained too, or 'none' (default: the first style)",
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
    _add_eval(sub)
    _add_serve(sub)
    data.register(sub)
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
