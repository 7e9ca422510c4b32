"""``fsg styles``: list the styles published in a registry."""

from __future__ import annotations

import argparse
import json
import sys

from fsg_ray.app.options import Parents
from fsg_ray.config import StorageOptions
from fsg_ray.io.storage import Storage, StorageError


def register(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser], parents: Parents
) -> None:
    """Adds ``fsg styles``."""
    styles = subparsers.add_parser(
        "styles",
        parents=[parents.endpoint],
        help="list the styles published in a registry, with their versions",
        description="Lists every style of a registry (read from the per-style indexes): its "
        "current version, all versions, and the current version's publish time, final losses "
        "and VGG weights.",
    )
    styles.add_argument("registry", help="registry folder or prefix (URI)")
    styles.add_argument("--json", action="store_true", help="print the style indexes as JSON")
    styles.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Prints the registry's styles as a table or JSON; exit 2 if it cannot be read."""
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
