"""The ``fsg`` command: the parser of every subcommand, and :func:`main`.

Each subcommand lives in a module of its own with ``register(subparsers, parents)`` (adds its
parser; ``parents`` are the shared options of :mod:`fsg_ray.app.options`) and ``run(args)``
(returns the exit status): :mod:`~fsg_ray.app.cmd_demo`, :mod:`~fsg_ray.app.cmd_styles`,
:mod:`~fsg_ray.app.cmd_train`, :mod:`~fsg_ray.app.cmd_restyle`, :mod:`~fsg_ray.app.cmd_eval`,
:mod:`~fsg_ray.app.cmd_serve`, :mod:`~fsg_ray.app.cmd_export` and :mod:`~fsg_ray.app.data`
(``fsg data``). None imports Ray until its command runs, so ``fsg --help`` stays fast.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from fsg_ray.app import (
    cmd_demo,
    cmd_eval,
    cmd_export,
    cmd_restyle,
    cmd_serve,
    cmd_styles,
    cmd_train,
    data,
    options,
)

#: The subcommands, in the order ``fsg --help`` lists them.
COMMANDS = (cmd_demo, cmd_styles, cmd_train, cmd_restyle, cmd_eval, cmd_serve, cmd_export, data)


def build_parser() -> argparse.ArgumentParser:
    """The ``fsg`` parser with every subcommand."""
    parser = argparse.ArgumentParser(
        prog="fsg", description="Fashion Style Generator (Jiang & Fu, IJCAI 2017) on Ray."
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)
    parents = options.parents()
    for command in COMMANDS:
        command.register(sub, parents)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Runs ``fsg``; the exit status: 2 for bad arguments, else the subcommand's."""
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
