"""Options that several ``fsg`` subcommands share, as argparse parent parsers.

Each is declared once here, so every subcommand that reaches S3 or starts Ray spells, defaults
and documents it the same way: ``--endpoint-url`` (S3 endpoint), ``--address`` and
``--num-cpus`` (which Ray to join or start).
"""

from __future__ import annotations

import argparse
from typing import NamedTuple


class Parents(NamedTuple):
    """The parent parsers a subcommand passes to ``add_parser(..., parents=[...])``.

    Attributes:
        endpoint: ``--endpoint-url``.
        ray: ``--address`` and ``--num-cpus``.
    """

    endpoint: argparse.ArgumentParser
    ray: argparse.ArgumentParser


def parents() -> Parents:
    """Fresh parent parsers (one set per ``build_parser`` call: parsers hold state)."""
    endpoint = argparse.ArgumentParser(add_help=False)
    endpoint.add_argument(
        "--endpoint-url",
        default=None,
        help="S3 endpoint such as http://127.0.0.1:9000 (default: AWS_ENDPOINT_URL_S3 or "
        "AWS_ENDPOINT_URL, else AWS itself)",
    )
    ray = argparse.ArgumentParser(add_help=False)
    ray.add_argument(
        "--address",
        default=None,
        help="Ray cluster to join (e.g. auto); default: the RAY_ADDRESS variable, else a new "
        "local Ray",
    )
    ray.add_argument(
        "--num-cpus", type=int, default=None, help="CPUs of a new local Ray (default: all)"
    )
    return Parents(endpoint, ray)


def add_verbose(parser: argparse.ArgumentParser) -> None:
    """``--verbose`` after a Ray subcommand: the same flag as ``fsg --verbose`` (debug
    logging), and Ray's own log lines on the console (:mod:`fsg_ray.distributed.console`).
    SUPPRESS keeps ``fsg --verbose train`` working: the subparser's default does not
    overwrite the value the main parser set."""
    parser.add_argument(
        "--verbose",
        action="store_true",
        default=argparse.SUPPRESS,
        help="show Ray's own log lines (per-report lines, Ray Data plans) and debug logs; "
        "by default the console shows our progress lines, the summary and real warnings",
    )
