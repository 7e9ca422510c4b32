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
from typing import Any

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
#: The Ray cluster under the command went away. sysexits.h's EX_TEMPFAIL ("try again later"):
#: apart from a failed item (1) and a bad argument (2), so a supervisor (a Kubernetes Job's
#: podFailurePolicy, systemd's RestartForceExitStatus) can rerun the command, which resumes.
EXIT_CLUSTER_LOST = 75


def main(argv: Sequence[str] | None = None) -> int:
    """Runs ``fsg``; the exit status: 2 for bad arguments, 128 + N when stopped by signal N,
    75 when the Ray cluster was lost, else the subcommand's."""
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
    except BaseException as e:  # Ctrl-C, SIGTERM in a Ray session (Stopped), ClusterLost
        lost = _session_state("cluster_lost")
        if lost is not None:
            print(
                f"fsg {args.command}: error: lost the Ray cluster: {lost}. What was done is "
                "kept (checkpoints, published versions, written outputs): rerun to resume",
                file=sys.stderr,
            )
            return EXIT_CLUSTER_LOST
        if not isinstance(e, KeyboardInterrupt):
            raise
        signum = getattr(e, "signum", None) or _session_state("received_signal") or signal.SIGINT
        print(
            f"fsg {args.command}: stopped by {signal.Signals(signum).name}; what was done is "
            "kept (checkpoints, published versions, written outputs): rerun to resume",
            file=sys.stderr,
        )
        return EXIT_STOPPED_BASE + signum


def _session_state(name: str) -> Any:
    """``session.received_signal()`` (the signal that stopped a Ray session) or
    ``session.cluster_lost()`` (why its cluster was declared lost), if a Ray session ran: its
    module is imported only by the commands that use Ray, so ``fsg`` without Ray never
    imports it."""
    session = sys.modules.get("fsg_ray.distributed.session")
    return getattr(session, name)() if session is not None else None


if __name__ == "__main__":
    sys.exit(main())
