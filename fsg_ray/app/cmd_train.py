"""``fsg train``: train every style of a catalogue at once on Ray Train and publish them."""

from __future__ import annotations

import argparse

from fsg_ray.app.options import Parents, add_verbose


def register(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser], parents: Parents
) -> None:
    """Adds ``fsg train``."""
    train = subparsers.add_parser(
        "train",
        parents=[parents.ray],
        help="train every style of a catalogue at once on Ray Train and publish them",
        description="Validates the catalogue YAML, then runs one Ray Train TorchTrainer per "
        "style, all at once (styles that do not fit the cluster queue). Each style "
        "checkpoints to <runs>/<catalogue>/<style>/ and is published to the registry when "
        "done. Rerunning the same command resumes unfinished styles and skips published ones. "
        "Ends with a summary table.",
        epilog="Exit status: 0 when every style is published or skipped, 1 when some failed, "
        "2 for a bad catalogue or argument, 75 when the Ray cluster was lost (rerun to resume), "
        "143 (130) when stopped by SIGTERM (Ctrl-C; rerun to resume).",
    )
    train.add_argument("config", help="catalogue YAML (see jobs/configs/paper_styles.yaml)")
    train.add_argument("--styles", help="comma-separated subset of the catalogue's styles")
    add_verbose(train)
    train.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Trains the catalogue's styles; exit 1 if any failed."""
    from fsg_ray.config import load_catalogue
    from fsg_ray.distributed import session, trainer

    cat = load_catalogue(args.config)  # every key checked before Ray starts
    styles = args.styles.split(",") if args.styles else None
    with session.ray_session(args.address, args.num_cpus, verbose=args.verbose):
        results = trainer.train_catalogue(cat, styles=styles)
    print(trainer.format_summary(results))
    return 1 if any(r.status == "failed" for r in results) else 0
