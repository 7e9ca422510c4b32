"""``fsg restyle``, the driver's half: what a job will do and what it did (no Ray).

:func:`plan` resolves each style's current registry version (an unknown style fails here,
listing the known ones), lists the inputs (:func:`fsg_ray.io.inputs.list_inputs`: a prefix or
a CSV/Parquet manifest) and decides what is already done; :mod:`fsg_ray.distributed.restyle`
then makes the rest on Ray. Both meet in the manifest (:data:`MANIFEST_SCHEMA`, one
:class:`Row` per input and style). Below OUTPUT (a folder or an S3 prefix)::

    OUTPUT/<style>/<relative path stem>.<ext>   one file per (input, style)
    OUTPUT/_manifest/<run id>.parquet           one row per (input, style) of that run
    OUTPUT/_history.parquet                     the latest row of every output, all runs

**Names.** The stem is the input's path relative to the input prefix, without its suffix
(``shirts/a.jpg`` -> ``OUTPUT/stripes/shirts/a.png``); for a manifest, relative to the
manifest's folder, or the whole path (bucket and key) for entries outside it. Two inputs that
would get the same name (``a.jpg`` and ``a.png``): the first by URI wins, the other fails.

**Done rule.** An (input, style) is done, and skipped, when its output file exists and was
made from *this* input as it is now (its URI and identity: size and modification time, from
the listing; :attr:`fsg_ray.io.inputs.Input.identity`), by the current generator version of the
style, with the same settings (masks, max side, colour, format: :func:`settings_for`). So a
photo replaced under the same name, or a new ``a.jpeg`` that takes the stem of an old
``a.jpg``, is redone. These facts are read from the latest manifest row for the output (cheap:
one listing per style, the history); a file with no such row, which a killed run leaves
behind, is asked itself (:attr:`Target.check_tag`, by the actors): every output carries its
style, version, settings, input and input identity as a tag in its EXIF
(:func:`fsg_ray.io.compositing.encode`). ``overwrite`` redoes everything.

**History, bounded.** Each run writes its own manifest (its report), then folds its rows into
``_history.parquet`` (compare-and-swap, so concurrent runs do not lose each other's rows) and
deletes run manifests beyond the newest :data:`MANIFEST_HISTORY`. Planning reads the history
and only the run manifests newer than it (a run killed before folding). A run that finishes
after a newer run folded is left out of the history; its outputs are then checked by tag.

This module imports no Ray, so the CLI plans (and fails on a bad style or input) before Ray
starts. It stays in ``distributed/`` beside the job it plans rather than in ``io/``: it is
the job's own logic (done rule, names, manifest), not a storage or format primitive.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
import json
import logging
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import NamedTuple

import pyarrow as pa
import pyarrow.parquet as pq

from fsg_ray.config import MASKS_AUTO, MASKS_NONE, RestyleConfig
from fsg_ray.io import registry
from fsg_ray.io.compositing import FORMATS
from fsg_ray.io.inputs import Input, list_inputs, output_stem
from fsg_ray.io.storage import Conflict, NotFound, Storage
from fsg_ray.io.uri import is_manifest, join

log = logging.getLogger(__name__)

OK, SKIPPED, FAILED = "ok", "skipped", "failed"
MANIFEST_DIR = "_manifest"
HISTORY = "_history.parquet"
#: Run manifests kept below ``_manifest/`` (older ones are folded into the history).
MANIFEST_HISTORY = 20
#: Lost compare-and-swap races of the history fold before a run gives up folding.
FOLD_ATTEMPTS = 16
_THROUGH = b"fsg_through_run"  # Parquet metadata key: the newest run folded into the history


@dataclass(frozen=True)
class Settings:
    """What shapes the pixels of an output, as the actors get it.

    Attributes:
        masks: ``given`` (from a prefix or the manifest), ``auto`` or ``none``.
        max_side: Longest output side.
        preserve_color: Keep the input's chroma.
        strength: How far outputs go along G's change (``RestyleConfig.strength``).
        format: Output format.
        downscale: The generators run on photos shrunk this many times
            (``RestyleConfig.downscale``).
        fingerprint: Short hash of these facts (and of the mask source); part of "done".
    """

    masks: str
    max_side: int
    preserve_color: bool
    format: str
    fingerprint: str
    downscale: int = 1
    strength: float = 1.0


def settings_for(cfg: RestyleConfig) -> Settings:
    """The job's :class:`Settings`; the fingerprint changes when any of them changes."""
    facts = {
        "masks": cfg.masks or "manifest",
        "max_side": cfg.max_side,
        "preserve_color": cfg.preserve_color,
        "format": cfg.format,
    }
    if cfg.runtime == "onnx-int8":  # other pixels than fp32's (within fsg eval's bounds)
        facts["int8"] = True
    if cfg.downscale > 1:  # other pixels than full size's; 1 keeps older outputs' fingerprint
        facts["downscale"] = cfg.downscale
    if cfg.strength != 1.0:  # likewise: as trained keeps older outputs' fingerprint
        facts["strength"] = cfg.strength
    fingerprint = hashlib.sha256(json.dumps(facts, sort_keys=True).encode()).hexdigest()[:12]
    masks = cfg.masks if cfg.masks in (MASKS_AUTO, MASKS_NONE) else "given"
    return Settings(
        masks, cfg.max_side, cfg.preserve_color, cfg.format, fingerprint, cfg.downscale,
        cfg.strength,
    )  # fmt: skip


class Row(NamedTuple):
    """One manifest row: what happened to one (input, style).

    ``width``, ``height`` are the output's size (0 when unknown, e.g. undecodable input);
    ``seconds`` the actor time spent on this output (its input's decoding and mask shared
    among the input's styles); ``reason`` says why it failed or was skipped; ``input_id`` the
    input's identity when planned (see the done rule).
    """

    input: str
    style: str
    status: str
    reason: str
    output: str
    version: str
    settings: str
    width: int
    height: int
    seconds: float
    input_id: str = ""


MANIFEST_SCHEMA = pa.schema(
    [
        ("input", pa.string()),
        ("style", pa.string()),
        ("status", pa.string()),
        ("reason", pa.string()),
        ("output", pa.string()),
        ("version", pa.string()),
        ("settings", pa.string()),
        ("width", pa.int32()),
        ("height", pa.int32()),
        ("seconds", pa.float64()),
        ("input_id", pa.string()),
    ]
)


@dataclass(frozen=True)
class Target:
    """One output still to make.

    Attributes:
        style: The style.
        output: The output URI.
        check_tag: The file exists but no manifest row says it is done: its own tag decides.
    """

    style: str
    output: str
    check_tag: bool = False


@dataclass(frozen=True)
class InputPlan:
    """An input with outputs to make: its URI, its mask (if given), the targets, and its
    identity when planned (recorded in rows and output tags)."""

    uri: str
    mask: str | None
    targets: tuple[Target, ...]
    identity: str = ""


@dataclass(frozen=True)
class Plan:
    """What a job will do, decided on the driver before any Ray work.

    Attributes:
        config: The job.
        versions: Style -> the generator version used (current when planned).
        settings: See :func:`settings_for`.
        run_id: Names the manifest: UTC time + random suffix, so names sort by time.
        todo: Inputs with outputs to make, for the actors.
        decided: Rows already final: skipped (done) and failed (e.g. no mask, name clash).
    """

    config: RestyleConfig
    versions: dict[str, str]
    settings: Settings
    run_id: str
    todo: tuple[InputPlan, ...]
    decided: tuple[Row, ...]

    @property
    def manifest(self) -> str:
        """URI of this run's manifest."""
        return join(self.config.output, MANIFEST_DIR, f"{self.run_id}.parquet")

    @property
    def outputs_to_make(self) -> int:
        """(input, style) pairs sent to the actors."""
        return sum(len(p.targets) for p in self.todo)


@dataclass(frozen=True)
class RestyleResult:
    """How a job ended.

    Attributes:
        manifest: URI of its manifest.
        counts: Rows by status (ok, skipped, failed).
        failures: The failed rows.
        seconds: Wall time of planning and restyling.
    """

    manifest: str
    counts: dict[str, int]
    failures: tuple[Row, ...]
    seconds: float


def resolve_styles(storage: Storage, registry_uri: str, styles: Sequence[str]) -> dict[str, str]:
    """Current version of each style (of every published style for ``()``), by style.

    Raises:
        registry.StyleNotFound: A style is not published (the message lists known styles), or
            the registry has none.
    """
    if not styles:
        published = registry.list_styles(storage, registry_uri)
        if not published:
            raise registry.StyleNotFound(f"no styles published in {registry_uri}")
        return {name: index.current for name, index in published.items()}
    return {s: registry.resolve(storage, registry_uri, s).version for s in styles}


class _Known(NamedTuple):
    """What planning compares each (input, style) with."""

    cfg: RestyleConfig
    versions: dict[str, str]
    settings: Settings
    history: dict[str, Row]
    existing: dict[str, set[str]]


def plan(cfg: RestyleConfig, storage: Storage, versions: dict[str, str] | None = None) -> Plan:
    """Resolves the styles, lists the inputs and splits them into done and to do (no Ray).

    Args:
        cfg: The job.
        storage: Reads the registry, inputs and outputs.
        versions: Style -> version to use; by default each style's current one.

    Raises:
        registry.StyleNotFound: An unknown style, before anything else is read.
        ValueError: No input images.
        StorageError: A URI cannot be listed or read.
    """
    versions = versions or resolve_styles(storage, cfg.registry, cfg.styles)
    inputs = _with_identities(list_inputs(cfg.input, storage, cfg.mask_prefix), storage)
    if not inputs:
        raise ValueError(f"{cfg.input}: no input images")
    existing = {s: set(storage.list_files(join(cfg.output, s))) for s in versions}
    known = _Known(cfg, versions, settings_for(cfg), read_history(storage, cfg.output), existing)
    todo, decided = [], []
    for item, stem in zip(inputs, _output_stems(inputs, cfg.input), strict=True):
        rows, todo_item = _plan_input(item, stem, known)
        decided += rows
        if todo_item is not None:
            todo.append(todo_item)
    run_id = f"{datetime.now(timezone.utc):%Y%m%dT%H%M%S%fZ}-{uuid.uuid4().hex[:8]}"
    return Plan(cfg, versions, known.settings, run_id, tuple(todo), tuple(decided))


def _with_identities(inputs: list[Input], storage: Storage) -> list[Input]:
    """Fills in the identity of inputs not listed (a manifest's entries): one stat each.

    An entry that does not exist keeps no identity; the job reports it missing.
    """
    out = []
    for item in inputs:
        if not item.identity:
            with contextlib.suppress(NotFound):
                item = dataclasses.replace(item, identity=storage.stat(item.uri).identity)
        out.append(item)
    return out


def _plan_input(
    item: Input, stem: str | ValueError, known: _Known
) -> tuple[list[Row], InputPlan | None]:
    """The final rows of one input (skipped, failed) and what is left to do for it."""
    cfg, fingerprint = known.cfg, known.settings.fingerprint
    rows, targets = [], []
    for style, version in known.versions.items():
        out = output_uri(cfg.output, style, stem, cfg.format) if isinstance(stem, str) else ""
        failed = Row(item.uri, style, FAILED, "", out, version, fingerprint, 0, 0, 0.0)
        failed = failed._replace(input_id=item.identity)
        if isinstance(stem, ValueError):
            rows.append(failed._replace(reason=str(stem)))
        elif cfg.mask_prefix is not None and item.mask is None:
            rows.append(failed._replace(reason=f"no mask for it below {cfg.mask_prefix}"))
        elif cfg.overwrite or out not in known.existing[style]:
            targets.append(Target(style, out))
        elif _is_done(known.history.get(out), item, version, fingerprint):
            last, reason = known.history[out], "already done (manifest)"
            skipped = failed._replace(status=SKIPPED, reason=reason, width=last.width)
            rows.append(skipped._replace(height=last.height))
        else:
            targets.append(Target(style, out, check_tag=True))
    todo = InputPlan(item.uri, item.mask, tuple(targets), item.identity) if targets else None
    return rows, todo


def _is_done(row: Row | None, item: Input, version: str, fingerprint: str) -> bool:
    """Whether the output's last row says it is this input's (as it is now), this version's
    and these settings' output. An input without identity is never done."""
    return (
        row is not None
        and row.status in (OK, SKIPPED)
        and bool(item.identity)
        and (row.input, row.input_id) == (item.uri, item.identity)
        and (row.version, row.settings) == (version, fingerprint)
    )


def output_uri(output: str, style: str, stem: str, fmt: str) -> str:
    """``OUTPUT/<style>/<stem>.<ext>``."""
    return join(output, style, f"{stem}.{FORMATS[fmt][0]}")


def _output_stems(inputs: Sequence[Input], source: str) -> list[str | ValueError]:
    """Each input's output stem, or why it has none (see "Names" in the module doc)."""
    base = (source.rsplit("/", 1)[0] if "/" in source else ".") if is_manifest(source) else source
    by_stem: dict[str, str] = {}
    stems: list[str | ValueError] = []
    for item in inputs:
        try:
            stem = output_stem(item.uri, base)
        except ValueError as e:
            stems.append(e)
            continue
        first = by_stem.setdefault(stem, item.uri)
        clash = ValueError(f"its output name {stem!r} is taken by {first}")
        stems.append(stem if first == item.uri else clash)
    return stems


def read_history(storage: Storage, output: str) -> dict[str, Row]:
    """The latest row of every output below ``output``: the history, then newer run manifests."""
    return _read_history(storage, output)[0]


def fold_into_history(storage: Storage, output: str, run_id: str, rows: Iterable[Row]) -> None:
    """Folds a finished run's rows into ``_history.parquet`` and prunes old run manifests.

    A compare-and-swap: a concurrent fold makes this one read the history again.

    Raises:
        Conflict: Other runs won :data:`FOLD_ATTEMPTS` races in a row (the run's own manifest
            is written; the next run folds it).
    """
    uri, mine = join(output, HISTORY), [r for r in rows if r.output]
    for _ in range(FOLD_ATTEMPTS):
        latest, etag = _read_history(storage, output)
        latest.update((r.output, r) for r in mine)
        try:
            storage.write_if_match(uri, manifest_bytes(latest.values(), through=run_id), etag)
            break
        except Conflict:
            continue
    else:
        raise Conflict(f"{uri}: lost {FOLD_ATTEMPTS} races to fold run {run_id}")
    _prune(storage, output, run_id)


def _read_history(storage: Storage, output: str) -> tuple[dict[str, Row], str | None]:
    """The latest row of every output, and the ETag of the history read (None: none yet)."""
    latest: dict[str, Row] = {}
    through, etag = "", None
    try:
        data, etag = storage.read_with_etag(join(output, HISTORY))
        table = pq.read_table(io.BytesIO(data))
        latest.update((r.output, r) for r in _rows(table))
        through = (table.schema.metadata or {}).get(_THROUGH, b"").decode()
    except NotFound:
        pass
    except (pa.ArrowException, KeyError, TypeError) as e:
        log.warning("%s: not a restyle history, ignored (%s)", join(output, HISTORY), e)
    for uri in _run_manifests(storage, output):  # oldest first
        if _run_id(uri) <= through:
            continue
        try:
            rows = _rows(pq.read_table(io.BytesIO(storage.read_bytes(uri))))
        except (pa.ArrowException, KeyError, TypeError) as e:
            log.warning("%s: not a restyle manifest, ignored (%s)", uri, e)
            continue
        latest.update((r.output, r) for r in rows if r.output)
    return latest, etag


def _rows(table: pa.Table) -> list[Row]:
    """A manifest's rows; manifests written before ``input_id`` give it empty (never done)."""
    if "input_id" not in table.column_names:
        table = table.append_column("input_id", pa.array([""] * table.num_rows, pa.string()))
    return [Row(**r) for r in table.select(MANIFEST_SCHEMA.names).to_pylist()]


def _run_manifests(storage: Storage, output: str) -> list[str]:
    return storage.list_files(join(output, MANIFEST_DIR), [".parquet"])


def _run_id(uri: str) -> str:
    return uri.rsplit("/", 1)[-1].removesuffix(".parquet")


def _prune(storage: Storage, output: str, through: str) -> None:
    """Deletes folded run manifests beyond the newest :data:`MANIFEST_HISTORY`."""
    runs = _run_manifests(storage, output)
    for uri in runs[: max(len(runs) - MANIFEST_HISTORY, 0)]:
        if _run_id(uri) <= through:
            storage.delete(uri)


def manifest_bytes(rows: Iterable[Row], through: str | None = None) -> bytes:
    """A Parquet manifest of ``rows`` sorted by input and style; a history names ``through``,
    the newest run folded into it."""
    ordered = sorted(rows, key=lambda r: (r.input, r.style))
    table = pa.Table.from_pylist([r._asdict() for r in ordered], schema=MANIFEST_SCHEMA)
    if through is not None:
        table = table.replace_schema_metadata({_THROUGH: through.encode()})
    buf = io.BytesIO()
    pq.write_table(table, buf)
    return buf.getvalue()


def format_summary(result: RestyleResult, max_failures: int = 20) -> str:
    """The lines printed at the end of ``fsg restyle``: counts, the manifest, failures."""
    counts = counts_text(result.counts)
    lines = [f"restyle: {counts} in {result.seconds:.1f} s", f"manifest: {result.manifest}"]
    for row in result.failures[:max_failures]:
        lines.append(f"failed: {row.input} [{row.style}]: {row.reason}")
    if len(result.failures) > max_failures:
        lines.append(f"... and {len(result.failures) - max_failures} more in the manifest")
    return "\n".join(lines)


def counts_text(counts: Mapping[str, int]) -> str:
    """``ok N, skipped N, failed N``."""
    return ", ".join(f"{status} {counts.get(status, 0)}" for status in (OK, SKIPPED, FAILED))
