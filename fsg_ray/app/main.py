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
import signal
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


#: A command stopped by a signal exits with 128 + the signal number, as a shell reports it:
#: 143 for SIGTERM, 130 for SIGINT (``fsg serve`` exits 0: stopping is how it ends).
EXIT_STOPPED_BASE = 128


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
    except KeyboardInterrupt as e:  # Ctrl-C, or SIGTERM inside a Ray session (session.Stopped)
        signum = getattr(e, "signum", None) or _signal_received() or signal.SIGINT
        print(
            f"fsg {args.command}: stopped by {signal.Signals(signum).name}; what was done is "
            "kept (checkpoints, published versions, written outputs): rerun to resume",
            file=sys.stderr,
        )
        return EXIT_STOPPED_BASE + signum


def _signal_received() -> int | None:
    """The signal that stopped a Ray session, if one ran (its module is imported only by the
    commands that use Ray, so ``fsg`` without Ray never imports it)."""
    session = sys.modules.get("fsg_ray.distributed.session")
    return session.received_signal() if session is not None else None


if __name__ == "__main__":
    sys.exit(main())
