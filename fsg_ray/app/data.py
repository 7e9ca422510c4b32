"""The ``fsg data`` commands: write the synthetic dataset to any URI, and inspect a dataset.

``fsg data synth --out URI`` draws the synthetic dataset (:mod:`fsg_ray.io.synthetic`) into a
temporary folder and copies it to ``URI`` (a folder, ``file://`` or ``s3://``) file by file,
each write atomic. ``fsg data inspect URI`` decodes every image below a prefix, or listed in a
manifest, through the one decode path (:func:`fsg_ray.io.images.decode_image`) and prints image
counts per folder, a size summary and the bad files with their reasons.

Neither command starts Ray: inspect decodes on a thread pool of this machine.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from fsg_ray.app.options import Parents
from fsg_ray.config import StorageOptions
from fsg_ray.io import images, synthetic
from fsg_ray.io.folders import IMAGE_SUFFIXES
from fsg_ray.io.inputs import list_inputs
from fsg_ray.io.storage import Storage, StorageError
from fsg_ray.io.uri import is_manifest, join, relative

#: Files decoded at once by ``fsg data inspect``.
INSPECT_THREADS = 8
EXIT_OK, EXIT_BAD_FILES, EXIT_ERROR = 0, 1, 2


@dataclass
class Inspection:
    """What ``fsg data inspect`` found.

    Attributes:
        images: Image files per folder (relative to the prefix; ``.`` for the prefix itself).
        bad_per_folder: Bad files per folder.
        sizes: (width, height) of every good image, upright.
        bad: (uri, reason) of every bad file, sorted.
        ignored: Files below the prefix without an image suffix.
    """

    images: Counter[str] = field(default_factory=Counter)
    bad_per_folder: Counter[str] = field(default_factory=Counter)
    sizes: list[tuple[int, int]] = field(default_factory=list)
    bad: list[tuple[str, str]] = field(default_factory=list)
    ignored: int = 0


def register(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser], parents: Parents
) -> None:
    """Adds ``fsg data synth``, ``inspect`` and ``copy`` to the ``fsg`` command."""
    data = subparsers.add_parser(
        "data",
        help="write the synthetic dataset to a URI, or inspect a dataset",
        description="Dataset tools. URIs are local folders, file:///abs/path or s3://bucket/key.",
    )
    sub = data.add_subparsers(dest="data_command", required=True)
    synth = sub.add_parser(
        "synth",
        parents=[parents.endpoint],
        help="write the synthetic dataset (full images, shop photos + masks, styles) to a URI",
        description="Writes the synthetic dataset in its folder layout (full/, shop/, "
        "shop_masks/, styles/, heldout/, heldout_masks/) below --out, every file atomically.",
    )
    synth.add_argument("--out", required=True, help="destination folder or prefix (URI)")
    synth.add_argument("--seed", type=int, default=0, help="dataset seed (default: 0)")
    synth.add_argument("--n-full", type=int, default=64, help="full images (default: 64)")
    synth.add_argument("--n-shop", type=int, default=16, help="shop photos (default: 16)")
    synth.add_argument("--size", type=int, default=256, help="image side in px (default: 256)")
    synth.set_defaults(func=synth_command)
    inspect = sub.add_parser(
        "inspect",
        parents=[parents.endpoint],
        help="count images per folder, summarise sizes, list bad files with reasons",
        description="Decodes every image below a prefix, or listed in a manifest (.csv or "
        ".parquet with columns image[, mask]), as training would.",
        epilog="Exit status: 0 when every image decodes, 1 when bad files were found (they are "
        "listed), 2 when the URI cannot be read.",
    )
    inspect.add_argument("uri", help="folder, prefix or manifest to inspect")
    inspect.set_defaults(func=inspect_command)
    copy = sub.add_parser(
        "copy",
        parents=[parents.endpoint],
        help="copy every file below a folder or prefix to another (local <-> S3)",
        description="Copies each file below SRC to the same relative path below DST, "
        "streaming and atomically (a reader never sees half a file). Local folders, "
        "file:///abs/path and s3://bucket/prefix on either side; one --endpoint-url for S3.",
    )
    copy.add_argument("src", help="source folder or prefix (URI)")
    copy.add_argument("dst", help="destination folder or prefix (URI)")
    copy.set_defaults(func=copy_command)


def _storage(args: argparse.Namespace) -> Storage:
    return Storage(StorageOptions.given(args.endpoint_url))


def copy_tree(src: str, dst: str, storage: Storage) -> list[str]:
    """Copies every file below ``src`` to the same relative path below ``dst``; the copies.

    Raises:
        StorageError: ``src`` cannot be listed, or a file cannot be read or written.
        ValueError: ``src`` holds no files.
    """
    files = storage.list_files(src)
    if not files:
        raise ValueError(f"no files below {src}")
    with ThreadPoolExecutor(max_workers=8) as pool:  # S3 round trips overlap
        return list(pool.map(lambda f: storage.copy(f, join(dst, relative(f, src))), files))


def copy_command(args: argparse.Namespace) -> int:
    """``fsg data copy``: copies a folder or prefix, prints the count."""
    try:
        copied = copy_tree(args.src, args.dst, _storage(args))
    except StorageError as e:
        print(f"fsg data copy: error: {e}", file=sys.stderr)
        return EXIT_ERROR
    print(f"copied {len(copied)} files to {args.dst}")
    return 0


def synth_command(args: argparse.Namespace) -> int:
    """``fsg data synth``: writes the dataset, prints one line per folder."""
    storage = _storage(args)
    try:
        written = write_synthetic(
            args.out,
            storage,
            seed=args.seed,
            n_full=args.n_full,
            n_shop=args.n_shop,
            size=args.size,
        )
    except StorageError as e:
        print(f"fsg data synth: error: {e}", file=sys.stderr)
        return EXIT_ERROR
    for folder, rels in written.items():
        print(f"{len(rels):6d}  {join(args.out, folder)}")
    return EXIT_OK


def write_synthetic(
    out: str, storage: Storage, *, seed: int, n_full: int, n_shop: int, size: int
) -> dict[str, list[str]]:
    """Writes :func:`fsg_ray.io.synthetic.write_dataset`'s files below ``out`` (any URI).

    Returns:
        Folder -> relative paths written, as ``write_dataset`` returns them.
    """
    with tempfile.TemporaryDirectory(prefix="fsg-synth-") as tmp:
        written = synthetic.write_dataset(
            tmp,
            seed=seed,
            n_full=n_full,
            n_shop=n_shop,
            full_size=size,
            shop_size=size,
            style_size=size,
        )
        for rel in (r for rels in written.values() for r in rels):
            storage.copy(str(Path(tmp, rel)), join(out, rel))
    return written


def inspect_command(args: argparse.Namespace) -> int:
    """``fsg data inspect``: prints the report; the exit status says whether files are bad."""
    try:
        found = inspect_source(args.uri, _storage(args))
    except StorageError as e:
        print(f"fsg data inspect: error: {e}", file=sys.stderr)
        return EXIT_ERROR
    print("\n".join(format_inspection(args.uri, found)))
    return EXIT_BAD_FILES if found.bad else EXIT_OK


def inspect_source(uri: str, storage: Storage) -> Inspection:
    """Decodes every image below a prefix (or listed, with masks, in a manifest).

    Raises:
        StorageError: The prefix or manifest cannot be read.
    """
    found = Inspection()
    if is_manifest(uri):
        inputs = list_inputs(uri, storage)
        files = [i.uri for i in inputs] + [i.mask for i in inputs if i.mask]
        folders = [f.rsplit("/", 1)[0] if "/" in f else "." for f in files]
    else:
        everything = storage.list_files(uri)
        files = [f for f in everything if f.lower().endswith(IMAGE_SUFFIXES)]
        found.ignored = len(everything) - len(files)
        folders = [relative(f, uri).rpartition("/")[0] or "." for f in files]
    with ThreadPoolExecutor(INSPECT_THREADS) as pool:
        results = list(pool.map(lambda f: _check(f, storage), files))
    for file, folder, result in zip(files, folders, results, strict=True):
        found.images[folder] += 1
        if isinstance(result, str):
            found.bad_per_folder[folder] += 1
            found.bad.append((file, result))
        else:
            found.sizes.append(result)
    found.bad.sort()
    return found


def _check(uri: str, storage: Storage) -> tuple[int, int] | str:
    """(width, height) of a decodable image, else the reason it is bad."""
    try:
        img = images.decode_image(storage.read_bytes(uri), name=uri)
    except images.ImageDecodeError as e:
        return e.reason
    except StorageError as e:  # e.g. a manifest entry that does not exist
        return f"unreadable ({e})"
    return img.size


def format_inspection(uri: str, found: Inspection) -> list[str]:
    """The lines ``fsg data inspect`` prints."""
    total = sum(found.images.values())
    lines = [f"{uri}: {total} images in {len(found.images)} folders"]
    if found.ignored:
        plural = "s" if found.ignored != 1 else ""
        lines[0] += f" (ignored {found.ignored} file{plural} without an image suffix)"
    width = max([len("folder"), *map(len, found.images)])
    lines.append(f"{'folder':<{width}}  {'images':>6}  {'bad':>6}")
    for folder in sorted(found.images):
        lines.append(
            f"{folder:<{width}}  {found.images[folder]:>6}  {found.bad_per_folder[folder]:>6}"
        )
    if found.sizes:
        lines.append(f"size of {len(found.sizes)} good images (px):")
        lines += [_summary(name, [s[i] for s in found.sizes]) for i, name in enumerate("wh")]
    lines.append(f"bad files: {len(found.bad)}")
    lines += [f"  {file}: {reason}" for file, reason in found.bad]
    return lines


def _summary(axis: str, values: Sequence[int]) -> str:
    name = {"w": "width", "h": "height"}[axis]
    median = statistics.median(values)
    return f"  {name:<6}  min {min(values)}  median {median:g}  max {max(values)}"
