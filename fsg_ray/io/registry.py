"""The style registry: trained generators published to object storage, versioned, atomically.

Layout below a registry URI (a local folder, ``file://`` or ``s3://``)::

    REGISTRY/index.json                       summary {style: current version}; advisory only
    REGISTRY/<style>/index.json               the style's published versions and current one
    REGISTRY/<style>/<version>/generator.pt   algorithm.generator_state(run), torch.save'd
    REGISTRY/<style>/<version>/metadata.json  the publisher's metadata + style, version, time
    REGISTRY/<style>/<version>/<extra>        optional files, e.g. samples.png, losses.png
    REGISTRY/<style>/<version>/_claim.json    who claimed the number (host, pid, time)

**Atomic publish.** Every single write is atomic (:meth:`Storage.write_bytes`). A publish
writes all files of the new version first and the style's ``index.json`` last, in one write:
that write is the commit point. Readers go through the style index only, so they see the old
version or the whole new one, never half of it. A version folder that the index does not name
is a leftover of a crashed publish and is invisible. (S3 has been strongly read-after-write
consistent since December 2020, so the files are readable once the index names them.)

**Version numbers** are ``v1``, ``v2``, ... The next one is 1 + the largest number found in the
style index *or* among the version folders present, so a crashed publish's folder is never
reused. Reusing it would be unsafe because storage has no delete: an extra file that the crashed
attempt wrote and the next publish does not (``samples.png``) would show up in the new version.
The price is gaps in the numbering (``v1``, ``v3``) after a crash.

**Concurrent publishers of one style** (two jobs, or a job resubmitted while still running)
are safe. A publisher *claims* its number before writing any file of it, with a create-only
write of ``<version>/_claim.json`` (:meth:`Storage.write_bytes_if_absent`: S3
``If-None-Match: *``, locally a hard link, which fails like ``O_CREAT|O_EXCL``); of two
publishers picking one number, one wins and the other claims the next. The index commit is a
compare-and-swap (:meth:`Storage.write_if_match`: S3 ``If-Match`` on the ETag read, locally a
compare under a ``flock``): a publisher that loses it reads the index again, adds its version
to whatever is there now, and retries. So N publishers give N versions, each with its own files,
all in the index, and ``current`` is the version of the last commit. Readers may run at any time.

Each publish then rebuilds the summary ``REGISTRY/index.json`` from the per-style indexes: two
such rebuilds can race, and the last writer may miss the other's new version until the next
publish. That file is for humans and dashboards; :func:`list_styles`, :func:`resolve` and
:func:`load` never read it.

No Ray import here: trainers, batch jobs and the Serve app all call these functions unchanged.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import random
import re
import socket
import subprocess
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from fsg_ray.core.algorithm import load_generator
from fsg_ray.core.models import Generator, VGGWeights
from fsg_ray.io.storage import Conflict, NotFound, Storage
from fsg_ray.io.uri import NAME, NAME_RULE, join, relative
from fsg_ray.io.weights import load_vgg

logger = logging.getLogger(__name__)

INDEX = "index.json"
GENERATOR = "generator.pt"
METADATA = "metadata.json"
#: A version's claim marker; the leading ``_`` keeps it apart from extra file names.
CLAIM = "_claim.json"
#: Lost races (for a number, or for the index commit) a publish retries before it gives up.
PUBLISH_ATTEMPTS = 64
#: Version of the index layout, stored in each style index.
REGISTRY_FORMAT = 1

_VERSION = re.compile(r"^v[1-9][0-9]*$")
_EXTRA_FILE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


class StyleNotFound(LookupError):
    """No published version of the style; the message lists the styles that exist."""


class VersionNotFound(LookupError):
    """The style has no such published version; the message lists the versions it has."""


@dataclass(frozen=True)
class VersionSummary:
    """What a style index records about one version, so listing needs no metadata reads.

    Attributes:
        published_at: UTC time of the publish, ISO 8601.
        vgg_weights: The ``vgg_weights`` spec of the encoder the generator was trained with.
        final_losses: Last value of each loss, if the publisher gave ``final_losses``.
        files: Names of the version's files.
        mode: The training mode (``full``, ``global_only``, ``patch_only``; see
            :func:`mode_of`); empty in indexes written before it was recorded (the
            version's metadata still has it).
    """

    published_at: str
    vgg_weights: str
    final_losses: dict[str, float]
    files: tuple[str, ...]
    mode: str = ""


@dataclass(frozen=True)
class StyleIndex:
    """A style's published versions (oldest first) and the one served by default.

    Attributes:
        style: The style name.
        current: The version :func:`resolve` gives when none is asked for.
        versions: Summary of every published version, by version string.
    """

    style: str
    current: str
    versions: dict[str, VersionSummary]


@dataclass(frozen=True)
class PublishedVersion:
    """One published version of a style.

    Attributes:
        style: The style name.
        version: ``v1``, ``v2``, ...
        uri: The version's folder.
        metadata: Contents of its ``metadata.json``.
    """

    style: str
    version: str
    uri: str
    metadata: dict[str, Any]

    @property
    def generator_uri(self) -> str:
        """URI of the version's ``generator.pt``."""
        return join(self.uri, GENERATOR)


def check_style(style: str) -> str:
    """Returns ``style`` if it is a valid style name (``[a-z0-9][a-z0-9_-]{0,63}``).

    Raises:
        ValueError: Naming the bad name.
    """
    if not isinstance(style, str) or NAME.fullmatch(style) is None:
        raise ValueError(f"bad style name {style!r}: use {NAME_RULE}")
    return style


def check_version(version: str) -> str:
    """Returns ``version`` if it is a valid version string (``v1``, ``v2``, ...).

    Raises:
        ValueError: Naming the bad version.
    """
    if not isinstance(version, str) or _VERSION.fullmatch(version) is None:
        raise ValueError(f"bad version {version!r}: expected v1, v2, ...")
    return version


def publish(
    storage: Storage,
    registry_uri: str,
    style: str,
    generator: Mapping[str, Any],
    metadata: Mapping[str, Any],
    files: Mapping[str, bytes] | None = None,
) -> PublishedVersion:
    """Publishes a generator as the style's next version and makes it the current one.

    Everything is checked and serialised before the first write. The metadata written gets
    ``style``, ``version``, ``published_at`` (UTC, ISO 8601), ``vgg_weights`` and
    ``vgg_fingerprint`` (from ``generator``), replacing any such keys given.

    Args:
        storage: Where the registry lives.
        registry_uri: The registry's folder or prefix.
        style: The style name (see :func:`check_style`).
        generator: :func:`fsg_ray.core.algorithm.generator_state` of the trained run.
        metadata: JSON-serialisable facts about the run: config, schedule, metrics (a
            ``final_losses`` mapping of loss name to value is shown by ``fsg styles``), data and
            code fingerprints.
        files: Extra files of the version by name (``samples.png``), written beside it.

    Raises:
        ValueError: A bad style or file name, a generator state without its encoder's
            identity, metadata that is not JSON-serialisable or a ``final_losses`` that is not
            a mapping of numbers; nothing is written then.
        Conflict: Other publishers of the style won every race for a number or for the index
            :data:`PUBLISH_ATTEMPTS` times (the version is then not published).
    """
    check_style(style)
    extras = _check_extra_files(files or {})
    weights = _serialise_generator(generator)
    names = (GENERATOR, METADATA, *sorted(extras))
    draft = _version_metadata(style, "v1", generator, metadata)  # every check before a write
    _json_bytes(draft, "metadata")
    _summarise(draft, names)
    version = _claim_version(storage, registry_uri, style)
    meta = _version_metadata(style, version, generator, metadata)
    folder = join(registry_uri, style, version)
    for name, data in {GENERATOR: weights, **extras}.items():
        storage.write_bytes(join(folder, name), data)
    storage.write_bytes(join(folder, METADATA), _json_bytes(meta, "metadata"))
    # The commit point: until the index names it, the new version does not exist.
    _commit(storage, registry_uri, style, version, _summarise(meta, names))
    logger.info("published %s %s to %s", style, version, folder)
    _rebuild_summary(storage, registry_uri)
    return PublishedVersion(style, version, folder, meta)


def _claim_version(storage: Storage, registry_uri: str, style: str) -> str:
    """Claims the next free version number: the first whose claim file this call creates."""
    index = _read_style_index(storage, registry_uri, style)
    number = _next_version_number(storage, registry_uri, style, index)
    claimed_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
    owner = {"host": socket.gethostname(), "pid": os.getpid(), "claimed_at": claimed_at}
    for _ in range(PUBLISH_ATTEMPTS):
        claim = join(registry_uri, style, f"v{number}", CLAIM)
        try:
            storage.write_bytes_if_absent(claim, _json_bytes(owner, "claim"))
            return f"v{number}"
        except Conflict:
            number += 1  # another publisher has it
    raise Conflict(f"{join(registry_uri, style)}: no free version after {PUBLISH_ATTEMPTS} tries")


def _commit(
    storage: Storage, registry_uri: str, style: str, version: str, summary: VersionSummary
) -> None:
    """Adds ``version`` to the style index and makes it current, by compare-and-swap.

    A lost race means another publisher committed meanwhile: read its index, add ours, retry.
    """
    uri = join(registry_uri, style, INDEX)
    for attempt in range(PUBLISH_ATTEMPTS):
        try:
            data, etag = storage.read_with_etag(uri)
            index: StyleIndex | None = _parse_index(data, uri)
        except NotFound:
            index, etag = None, None
        if index is not None and version in index.versions:
            return  # our own earlier write succeeded though its reply was lost (S3 retry)
        versions = {**(index.versions if index else {}), version: summary}
        try:
            storage.write_if_match(uri, _index_bytes(style, version, versions), etag)
            return
        except Conflict:
            # Jittered backoff, so that the losers of one round do not collide again.
            time.sleep(random.uniform(0, 0.005 * 2 ** min(attempt, 6)))
    raise Conflict(f"{uri}: lost the index commit {PUBLISH_ATTEMPTS} times; {version} unpublished")


def list_styles(
    storage: Storage,
    registry_uri: str,
    on_bad_index: Callable[[str, ValueError], None] | None = None,
) -> dict[str, StyleIndex]:
    """Every published style's index, by style name, from the per-style indexes.

    An empty registry, or a folder or prefix that does not exist, gives ``{}``.

    Args:
        storage: Reads the registry.
        registry_uri: The registry.
        on_bad_index: Called with the style and the error of an index that is not a style
            index, which is then left out (the online API must not lose every style to one
            bad file); None raises the error.

    Raises:
        NotFound: The S3 bucket does not exist.
        ValueError: An index is not a style index (only when ``on_bad_index`` is None).
    """
    styles = {}
    for uri in storage.list_files(registry_uri, suffixes=[INDEX]):
        parts = relative(uri, registry_uri).split("/")
        if len(parts) == 2 and NAME.fullmatch(parts[0]):
            try:
                styles[parts[0]] = _read_index(storage, uri)
            except ValueError as e:
                if on_bad_index is None:
                    raise
                on_bad_index(parts[0], e)
    return dict(sorted(styles.items()))


def resolve(
    storage: Storage, registry_uri: str, style: str, version: str | None = None
) -> PublishedVersion:
    """Finds a published version of a style, the current one if ``version`` is None.

    Raises:
        ValueError: A bad style name or version string.
        StyleNotFound: The style has no published version; the message lists known styles.
        VersionNotFound: The style has no such version; the message lists its versions.
    """
    check_style(style)
    if version is not None:
        check_version(version)
    index = _read_style_index(storage, registry_uri, style)
    if index is None:
        known = ", ".join(list_styles(storage, registry_uri)) or "none"
        raise StyleNotFound(f"no style {style!r} in {registry_uri}; known styles: {known}")
    chosen = index.current if version is None else version
    if chosen not in index.versions:
        raise VersionNotFound(
            f"style {style!r} has no version {chosen!r} in {registry_uri}; "
            f"published: {', '.join(index.versions)} (current {index.current})"
        )
    folder = join(registry_uri, style, chosen)
    metadata = json.loads(storage.read_bytes(join(folder, METADATA)))
    return PublishedVersion(style, chosen, folder, metadata)


#: Order of the training modes in listings and comparison sheets: the method, then ablations.
MODES = ("full", "global_only", "patch_only")


def mode_of(found: PublishedVersion) -> str:
    """The training mode of a published version (``full``, ``global_only``, ``patch_only``).

    Read from the metadata's ``mode``; versions published before it was recorded give their
    config's ``schedule.mode``, or ``full``.
    """
    return _mode(found.metadata)


def _mode(meta: Mapping[str, Any]) -> str:
    config_mode = meta.get("config", {}).get("schedule", {}).get("mode", "full")
    return str(meta.get("mode", config_mode))


def base_of(found: PublishedVersion) -> str:
    """The style a published version is a mode of: its metadata's ``base_style``, or itself."""
    return str(found.metadata.get("base_style") or found.style)


def modes(storage: Storage, registry_uri: str, style: str) -> list[PublishedVersion]:
    """The current version of every entry whose base style is ``style`` (``style`` itself
    and its ablations), ordered by :data:`MODES`, then by entry name.

    Raises:
        ValueError: A bad style name.
        StyleNotFound: No entry has that base style; the message lists the base styles.
    """
    check_style(style)
    found = [resolve(storage, registry_uri, name) for name in list_styles(storage, registry_uri)]
    mine = [f for f in found if base_of(f) == style]
    if not mine:
        known = ", ".join(sorted({base_of(f) for f in found})) or "none"
        raise StyleNotFound(f"no style {style!r} in {registry_uri}; known styles: {known}")
    rank = {m: i for i, m in enumerate(MODES)}
    return sorted(mine, key=lambda f: (rank.get(mode_of(f), len(MODES)), f.style))


def load(
    storage: Storage,
    registry_uri: str,
    style: str,
    device: torch.device,
    version: str | None = None,
    vgg: VGGWeights | None = None,
) -> tuple[Generator, PublishedVersion]:
    """Loads a published generator, ready to run (eval mode), with its registry entry.

    Args:
        storage: Where the registry lives (and the VGG weights, for a URI spec).
        registry_uri: The registry's folder or prefix.
        style: The style name.
        device: Where to put the generator.
        version: The version to load; the current one if None.
        vgg: The encoder's weights. By default they are loaded from the generator's
            ``vgg_weights`` spec; pass them to share one encoder among many styles.

    Raises:
        StyleNotFound, VersionNotFound: See :func:`resolve`.
        EncoderMismatchError: ``vgg`` is not the encoder the generator was trained with.
    """
    found = resolve(storage, registry_uri, style, version)
    data = storage.read_bytes(found.generator_uri)
    state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    encoder = vgg if vgg is not None else load_vgg(state["vgg_weights"], storage)
    return load_generator(state, encoder, device), found


def format_table(styles: Mapping[str, StyleIndex]) -> str:
    """A text table of styles for ``fsg styles``: one row per style, about its current version.

    Columns: style, current version, all versions, mode, published_at, final losses, VGG
    weights.
    """
    header = ["style", "current", "versions", "mode", "published_at", "final_losses"]
    rows = [[*header, "vgg_weights"]]
    for name, index in styles.items():
        now = index.versions[index.current]
        losses = " ".join(f"{k}={v:.4g}" for k, v in sorted(now.final_losses.items()))
        versions = ",".join(index.versions)
        rows.append(
            [name, index.current, versions, now.mode or "-", now.published_at, losses]
            + [now.vgg_weights]
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    cells = (zip(row, widths, strict=True) for row in rows)
    return "\n".join("  ".join(c.ljust(w) for c, w in line).rstrip() for line in cells)


def styles_as_json(styles: Mapping[str, StyleIndex]) -> dict[str, Any]:
    """The styles as plain JSON data, in the per-style index layout (``fsg styles --json``)."""
    return {name: _index_json(index) for name, index in styles.items()}


def git_commit(folder: Path | None = None) -> str | None:
    """The commit checked out in the git work tree holding ``folder`` (default: this package).

    Returns None outside a git work tree or without a ``git`` executable.
    """
    where = folder if folder is not None else Path(__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=where, capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return None
    commit = out.stdout.strip()
    return commit if out.returncode == 0 and commit else None


def data_fingerprint(files: Iterable[tuple[str, int]]) -> str:
    """Short SHA-256 of (URI, size in bytes) pairs, in any order: identifies a training set.

    Cheap (no file is read), so it catches added, removed and resized files, not edits that
    keep the size.
    """
    h = hashlib.sha256()
    for uri, size in sorted(files):
        h.update(f"{uri}\t{size}\n".encode())
    return h.hexdigest()[:16]


def _check_extra_files(files: Mapping[str, bytes]) -> dict[str, bytes]:
    for name in files:
        if _EXTRA_FILE.fullmatch(name) is None or name in (GENERATOR, METADATA, INDEX):
            raise ValueError(
                f"bad extra file name {name!r}: a plain file name other than "
                f"{GENERATOR}, {METADATA} and {INDEX}"
            )
    return dict(files)


def _serialise_generator(generator: Mapping[str, Any]) -> bytes:
    missing = [k for k in ("vgg_weights", "vgg_fingerprint", "decoder") if k not in generator]
    if missing:
        raise ValueError(f"not a generator state (missing {missing}): use generator_state(run)")
    buf = io.BytesIO()
    torch.save(dict(generator), buf)
    return buf.getvalue()


def _version_metadata(
    style: str, version: str, generator: Mapping[str, Any], metadata: Mapping[str, Any]
) -> dict[str, Any]:
    return {
        **metadata,
        "style": style,
        "version": version,
        "published_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "vgg_weights": generator["vgg_weights"],
        "vgg_fingerprint": generator["vgg_fingerprint"],
    }


def _json_bytes(data: Any, what: str) -> bytes:
    try:
        return json.dumps(data, indent=2, sort_keys=True).encode()
    except (TypeError, ValueError) as e:
        raise ValueError(f"{what} is not JSON-serialisable: {e}") from e


def _summarise(meta: Mapping[str, Any], files: tuple[str, ...]) -> VersionSummary:
    losses = meta.get("final_losses") or {}
    if not isinstance(losses, Mapping):
        raise ValueError(f"final_losses must map loss names to numbers, not {losses!r}")
    return VersionSummary(
        published_at=meta["published_at"],
        vgg_weights=meta["vgg_weights"],
        final_losses={str(k): float(v) for k, v in losses.items()},
        files=files,
        mode=_mode(meta),
    )


def _version_number(version: str) -> int:
    return int(version[1:])


def _next_version_number(
    storage: Storage, registry_uri: str, style: str, index: StyleIndex | None
) -> int:
    """1 + the largest version in the index or among the folders present (see module doc)."""
    folder = join(registry_uri, style)
    present = {relative(uri, folder).split("/")[0] for uri in storage.list_files(folder)}
    present |= set(index.versions) if index else set()
    numbers = [_version_number(v) for v in present if _VERSION.fullmatch(v)]
    return max(numbers, default=0) + 1


def _read_style_index(storage: Storage, registry_uri: str, style: str) -> StyleIndex | None:
    """The style's index, or None if the style was never published."""
    try:
        return _read_index(storage, join(registry_uri, style, INDEX))
    except NotFound:
        return None


def _read_index(storage: Storage, uri: str) -> StyleIndex:
    """Reads a style index (one whole version of it, even during a publish).

    Raises:
        NotFound: There is no index at ``uri``.
        ValueError: It is not a style index.
    """
    return _parse_index(storage.read_bytes(uri), uri)


def _index_json(index: StyleIndex) -> dict[str, Any]:
    versions = {
        v: {**vars(s), "files": list(s.files)}
        for v, s in sorted(index.versions.items(), key=lambda kv: _version_number(kv[0]))
    }
    return {
        "format": REGISTRY_FORMAT,
        "style": index.style,
        "current": index.current,
        "versions": versions,
    }


def _index_bytes(style: str, current: str, versions: dict[str, VersionSummary]) -> bytes:
    return _json_bytes(_index_json(StyleIndex(style, current, versions)), "index")


def _parse_index(data: bytes, uri: str) -> StyleIndex:
    """Reads a style index.

    Raises:
        ValueError: Naming the URI, if it is not a registry index of a known format.
    """
    try:
        raw = json.loads(data)
        if raw["format"] != REGISTRY_FORMAT:
            raise ValueError(f"format {raw['format']!r}, expected {REGISTRY_FORMAT}")
        versions = {
            check_version(v): VersionSummary(**{**s, "files": tuple(s["files"])})
            for v, s in raw["versions"].items()
        }
        current = check_version(raw["current"])
        if current not in versions:
            raise ValueError(f"current {current!r} is not among its versions {list(versions)}")
        return StyleIndex(check_style(raw["style"]), current, versions)
    except (ValueError, KeyError, TypeError) as e:
        raise ValueError(f"{uri}: not a style registry index: {e!r}") from e


def _rebuild_summary(storage: Storage, registry_uri: str) -> None:
    """Rewrites ``REGISTRY/index.json``; may race with other styles' publishes (module doc).

    A failure is logged, not raised: the version is already published, and a caller that saw
    an error would publish it again.
    """
    uri = join(registry_uri, INDEX)
    try:
        styles = list_styles(storage, registry_uri)
        current = {name: index.current for name, index in styles.items()}
        storage.write_bytes(uri, _json_bytes(current, "summary"))
    except (OSError, ValueError):
        logger.exception("%s: could not rebuild the registry summary", uri)
