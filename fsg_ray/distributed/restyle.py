"""``fsg restyle``: bulk-restyle a product catalogue with published generators, as an offline
Ray Data job.

The driver plans (no Ray): it resolves each style's current registry version (an unknown style
fails here, listing the known ones), lists the inputs
(:func:`fsg_ray.distributed.data.list_inputs`: a prefix or a CSV/Parquet manifest) and decides
what is already done. Ray Data then reads the
remaining files (``read_binary_files``) into one pool of :class:`Restyler` actors; each actor
loads every requested style's generator once (one VGG encoder shared by all) and, per image:
decode (:func:`fsg_ray.io.images.decode_image`), shrink to ``max_side``, mask, G(x), optional
chroma of the input, composite, encode, atomic write. Bad inputs become rows with a reason;
nothing about one file stops the job. Below OUTPUT (a folder or an S3 prefix)::

    OUTPUT/<style>/<relative path stem>.<ext>   one file per (input, style)
    OUTPUT/_manifest/<run id>.parquet           one row per (input, style) of that run

**Names.** The stem is the input's path relative to the input prefix, without its suffix
(``shirts/a.jpg`` -> ``OUTPUT/stripes/shirts/a.png``); for a manifest, relative to the
manifest's folder, or the whole path (bucket and key) for entries outside it. Two inputs that
would get the same name (``a.jpg`` and ``a.png``): the first by URI wins, the other fails.

**Done rule.** An (input, style) is done, and skipped, when its output file exists and names
the current generator version of the style and the same settings (masks, max side, colour,
format: :func:`settings_for`). Which version made a file is read from the latest manifest row
for it (cheap: one listing per style, the manifests); a file with no such row, which a killed
run leaves behind, is asked itself: every output carries its style, version and settings as
a tag in its EXIF (:func:`fsg_ray.io.compositing.encode`). ``overwrite`` redoes everything.

**Resume.** Outputs are written atomically, so a killed job leaves whole files or none; a rerun
of the same command then produces exactly the missing outputs. The manifest of a running job
is rewritten every :data:`MANIFEST_EVERY_S` seconds and at the end.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import logging
import time
import uuid
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, NamedTuple, cast

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import ray.data
import torch

from fsg_ray.config import MASKS_AUTO, MASKS_NONE, RestyleConfig, StorageOptions
from fsg_ray.core import masks
from fsg_ray.distributed import data
from fsg_ray.io import compositing, images, registry
from fsg_ray.io.compositing import FORMATS
from fsg_ray.io.generators import StyleBank
from fsg_ray.io.storage import Storage, StorageError
from fsg_ray.io.uri import join, parse_uri, relative

log = logging.getLogger(__name__)

OK, SKIPPED, FAILED = "ok", "skipped", "failed"
MANIFEST_DIR = "_manifest"
#: Images per actor call; those of equal size in it go through G as one tensor batch.
BATCH_IMAGES = 8
#: Input files per read task.
FILES_PER_BLOCK = 16
#: Seconds between two progress lines.
PROGRESS_EVERY_S = 10.0
#: Seconds between two rewrites of the running job's manifest.
MANIFEST_EVERY_S = 60.0


@dataclass(frozen=True)
class Settings:
    """What shapes the pixels of an output, as the actors get it.

    Attributes:
        masks: ``given`` (from a prefix or the manifest), ``auto`` or ``none``.
        max_side: Longest output side.
        preserve_color: Keep the input's chroma.
        format: Output format.
        fingerprint: Short hash of these facts (and of the mask source); part of "done".
    """

    masks: str
    max_side: int
    preserve_color: bool
    format: str
    fingerprint: str


def settings_for(cfg: RestyleConfig) -> Settings:
    """The job's :class:`Settings`; the fingerprint changes when any of them changes."""
    facts = {
        "masks": cfg.masks or "manifest",
        "max_side": cfg.max_side,
        "preserve_color": cfg.preserve_color,
        "format": cfg.format,
    }
    fingerprint = hashlib.sha256(json.dumps(facts, sort_keys=True).encode()).hexdigest()[:12]
    masks = cfg.masks if cfg.masks in (MASKS_AUTO, MASKS_NONE) else "given"
    return Settings(masks, cfg.max_side, cfg.preserve_color, cfg.format, fingerprint)


class Row(NamedTuple):
    """One manifest row: what happened to one (input, style).

    ``width``, ``height`` are the output's size (0 when unknown, e.g. undecodable input);
    ``seconds`` the actor time spent on this output (its input's decoding and mask shared
    among the input's styles); ``reason`` says why it failed or was skipped.
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
    """An input with outputs to make: its URI, its mask (if given) and the targets."""

    uri: str
    mask: str | None
    targets: tuple[Target, ...]


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


# ---------------------------------------------------------------- the driver: plan


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
    inputs = data.list_inputs(cfg.input, storage, cfg.mask_prefix)
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


def _plan_input(
    item: data.Input, stem: str | ValueError, known: _Known
) -> tuple[list[Row], InputPlan | None]:
    """The final rows of one input (skipped, failed) and what is left to do for it."""
    cfg, fingerprint = known.cfg, known.settings.fingerprint
    rows, targets = [], []
    for style, version in known.versions.items():
        out = output_uri(cfg.output, style, stem, cfg.format) if isinstance(stem, str) else ""
        failed = Row(item.uri, style, FAILED, "", out, version, fingerprint, 0, 0, 0.0)
        if isinstance(stem, ValueError):
            rows.append(failed._replace(reason=str(stem)))
        elif cfg.mask_prefix is not None and item.mask is None:
            rows.append(failed._replace(reason=f"no mask for it below {cfg.mask_prefix}"))
        elif cfg.overwrite or out not in known.existing[style]:
            targets.append(Target(style, out))
        elif _is_done(known.history.get(out), version, fingerprint):
            last, reason = known.history[out], "already done (manifest)"
            skipped = failed._replace(status=SKIPPED, reason=reason, width=last.width)
            rows.append(skipped._replace(height=last.height))
        else:
            targets.append(Target(style, out, check_tag=True))
    todo = InputPlan(item.uri, item.mask, tuple(targets)) if targets else None
    return rows, todo


def _is_done(row: Row | None, version: str, fingerprint: str) -> bool:
    return (
        row is not None
        and row.status in (OK, SKIPPED)
        and (row.version, row.settings) == (version, fingerprint)
    )


def output_uri(output: str, style: str, stem: str, fmt: str) -> str:
    """``OUTPUT/<style>/<stem>.<ext>``."""
    return join(output, style, f"{stem}.{FORMATS[fmt][0]}")


def _output_stems(inputs: Sequence[data.Input], source: str) -> list[str | ValueError]:
    """Each input's output stem, or why it has none (see "Names" in the module doc)."""
    base = (source.rsplit("/", 1)[0] if "/" in source else ".") if _is_manifest(source) else source
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


def output_stem(uri: str, base: str) -> str:
    """``uri``'s path below ``base`` without its suffix; the whole path if not below it.

    Raises:
        ValueError: The path has ``..`` in it, so its output could land outside its folder.
    """
    try:
        rel = relative(uri, base)
    except ValueError:
        loc = parse_uri(uri)
        rel = f"{loc.bucket}/{loc.path}" if loc.bucket else loc.path
    parts = [p for p in rel.split("/") if p not in ("", ".")]
    if not parts or ".." in parts:
        raise ValueError(f"cannot name an output after {uri!r} (relative to {base!r})")
    return data.path_stem("/".join(parts))


def read_history(storage: Storage, output: str) -> dict[str, Row]:
    """The latest manifest row of every output below ``output``, over every run's manifest."""
    latest: dict[str, Row] = {}
    for uri in storage.list_files(join(output, MANIFEST_DIR), [".parquet"]):  # oldest first
        try:
            table = pq.read_table(io.BytesIO(storage.read_bytes(uri)))
            rows = [Row(**r) for r in table.select(MANIFEST_SCHEMA.names).to_pylist()]
        except (pa.ArrowException, KeyError, TypeError) as e:
            log.warning("%s: not a restyle manifest, ignored (%s)", uri, e)
            continue
        latest.update((r.output, r) for r in rows if r.output)
    return latest


def _is_manifest(uri: str) -> bool:
    return uri.lower().endswith(data.MANIFEST_SUFFIXES)


# ---------------------------------------------------------------- the driver: execute


def execute(p: Plan, storage: Storage) -> RestyleResult:
    """Runs a plan's remaining work on Ray (if any) and writes the run's manifest.

    The manifest is also written, with the rows so far, when the job stops on an error or an
    interrupt. Ray Data starts a local Ray if none is initialised; the CLI opens
    :func:`fsg_ray.distributed.session.ray_session` first.
    """
    t0 = time.perf_counter()
    rows = _Collector(storage, p.manifest, p.decided, p.outputs_to_make)
    try:
        if p.todo:
            _restyle_on_ray(p, storage, rows)
    finally:
        rows.write()
    counts = Counter(r.status for r in rows.rows)
    failures = tuple(r for r in rows.rows if r.status == FAILED)
    return RestyleResult(
        p.manifest,
        {s: counts.get(s, 0) for s in (OK, SKIPPED, FAILED)},
        failures,
        time.perf_counter() - t0,
    )


def _restyle_on_ray(p: Plan, storage: Storage, rows: _Collector) -> None:
    """Streams the actors' rows into ``rows``, then adds the inputs that were never read."""
    log.info("restyling %d outputs of %d inputs", p.outputs_to_make, len(p.todo))
    seen: set[str] = set()
    for batch in _dataset(p, storage).iter_batches(batch_size=None, batch_format="pyarrow"):
        new = [Row(**r) for r in cast(pa.Table, batch).to_pylist()]
        seen.update(r.input for r in new)
        rows.add(new)
    rows.add(_missing(p, seen))


def restyle(cfg: RestyleConfig, storage: Storage) -> RestyleResult:
    """:func:`plan`, then :func:`execute`."""
    return execute(plan(cfg, storage), storage)


def _dataset(p: Plan, storage: Storage) -> ray.data.Dataset:
    """read_binary_files over the inputs to do, into a pool of :class:`Restyler` actors."""
    ds, by_path = data.read_files(p.todo, storage, FILES_PER_BLOCK)
    cpus, gpus = _actor_resources(p.config.actors)
    return ds.map_batches(
        Restyler,
        batch_size=BATCH_IMAGES,
        batch_format="numpy",
        fn_constructor_kwargs={
            "registry_uri": p.config.registry,
            "versions": p.versions,
            "settings": dataclasses.asdict(p.settings),
            "storage_options": dataclasses.asdict(storage.options),
            "plans": by_path,
        },
        compute=ray.data.ActorPoolStrategy(size=p.config.actors),
        num_cpus=cpus,
        num_gpus=gpus,
    )


def _actor_resources(actors: int) -> tuple[float, float]:
    """(CPUs, GPUs) of each actor: one of each, or equal shares when the pool is larger.

    One CPU of the cluster stays free for the read tasks: a pool holding every CPU would starve
    them, and the job would wait forever.
    """
    total = ray.cluster_resources()
    cpus, gpus = float(total.get("CPU", 1.0)), float(total.get("GPU", 0.0))
    return min(1.0, max(cpus - 1, 0.0) / actors), min(1.0, gpus / actors)


def _missing(p: Plan, seen: set[str]) -> list[Row]:
    """Failed rows for the inputs that the read never delivered (deleted since listing)."""
    reason, fingerprint = "missing: no such file", p.settings.fingerprint
    return [
        Row(i.uri, t.style, FAILED, reason, t.output, p.versions[t.style], fingerprint, 0, 0, 0)
        for i in p.todo
        if i.uri not in seen
        for t in i.targets
    ]


class _Collector:
    """The run's rows: logs progress and rewrites the manifest now and then while they come."""

    def __init__(self, storage: Storage, uri: str, first: Iterable[Row], total: int) -> None:
        self.storage, self.uri, self.total = storage, uri, total
        self.rows = list(first)
        self.done = 0
        self.t0 = self.logged = self.written = time.monotonic()

    def add(self, rows: list[Row]) -> None:
        self.rows += rows
        self.done += len(rows)
        now = time.monotonic()
        if rows and (now - self.logged >= PROGRESS_EVERY_S or self.done == self.total):
            self.logged = now
            rate = self.done / max(now - self.t0, 1e-9)
            counts = Counter(r.status for r in self.rows)
            eta = (self.total - self.done) / rate if rate else 0.0
            text = _counts_text(counts)
            log.info(
                "restyle: %d/%d outputs, %.2f/s, ETA %.0f s (%s)",
                self.done,
                self.total,
                rate,
                eta,
                text,
            )
        if now - self.written >= MANIFEST_EVERY_S:
            self.written = now
            self.write()

    def write(self) -> str:
        """Writes (atomically replaces) the run's manifest with the rows so far."""
        return self.storage.write_bytes(self.uri, manifest_bytes(self.rows))


def manifest_bytes(rows: Iterable[Row]) -> bytes:
    """A Parquet manifest of ``rows`` sorted by input and style."""
    ordered = sorted(rows, key=lambda r: (r.input, r.style))
    table = pa.Table.from_pylist([r._asdict() for r in ordered], schema=MANIFEST_SCHEMA)
    buf = io.BytesIO()
    pq.write_table(table, buf)
    return buf.getvalue()


def format_summary(result: RestyleResult, max_failures: int = 20) -> str:
    """The lines printed at the end of ``fsg restyle``: counts, the manifest, failures."""
    counts = _counts_text(result.counts)
    lines = [f"restyle: {counts} in {result.seconds:.1f} s", f"manifest: {result.manifest}"]
    for row in result.failures[:max_failures]:
        lines.append(f"failed: {row.input} [{row.style}]: {row.reason}")
    if len(result.failures) > max_failures:
        lines.append(f"... and {len(result.failures) - max_failures} more in the manifest")
    return "\n".join(lines)


def _counts_text(counts: Mapping[str, int]) -> str:
    return ", ".join(f"{status} {counts.get(status, 0)}" for status in (OK, SKIPPED, FAILED))


# ---------------------------------------------------------------- the actors


@dataclass
class _Prepared:
    """An input decoded at its output size, with its mask and the targets left to make."""

    plan: InputPlan
    targets: list[Target]
    image: np.ndarray  # (H, W, 3) uint8: x, the reference for compositing
    mask: np.ndarray | None  # (H, W) bool
    seconds: float  # decoding and mask, shared by the targets


class Restyler:
    """The ``map_batches`` actor: holds every style's generator, restyles batches of files.

    Args:
        registry_uri: The style registry.
        versions: Style -> version to load (each once, in ``__init__``).
        settings: ``asdict`` of :class:`Settings`.
        storage_options: ``asdict`` of :class:`StorageOptions` (the S3 endpoint).
        plans: Each input's plan, by its path as ``read_binary_files`` gives it.
    """

    def __init__(
        self,
        registry_uri: str,
        versions: dict[str, str],
        settings: dict[str, Any],
        storage_options: dict[str, Any],
        plans: dict[str, InputPlan],
    ) -> None:
        self.settings = Settings(**settings)
        self.storage = Storage(StorageOptions(**storage_options))
        self.versions, self.plans = versions, plans
        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        self.bank = StyleBank.load(self.storage, registry_uri, versions, self.device)

    def __call__(self, batch: dict[str, np.ndarray]) -> pa.Table:
        rows: list[Row] = []
        ready: dict[tuple[int, ...], list[_Prepared]] = {}
        for raw, path in zip(batch["bytes"], batch["path"], strict=True):
            prepared = self._prepare(self.plans[str(path)], bytes(raw), rows)
            if prepared is not None:
                ready.setdefault(prepared.image.shape, []).append(prepared)
        for same_size in ready.values():
            rows += self._restyle(same_size)
        return pa.Table.from_pylist([r._asdict() for r in rows], schema=MANIFEST_SCHEMA)

    def _prepare(self, plan: InputPlan, raw: bytes, rows: list[Row]) -> _Prepared | None:
        """Decodes and masks an input; appends the rows of targets that end here."""
        t0 = time.perf_counter()
        targets = []
        for target in plan.targets:
            done = self._done_by_tag(plan, target) if target.check_tag else None
            if done is None:
                targets.append(target)
            else:
                rows.append(done)
        if not targets:
            return None
        try:
            img = compositing.fit_long_side(
                images.decode_image(raw, name=plan.uri), self.settings.max_side
            )
            rgb = np.asarray(img)
            mask = self._mask(plan, rgb)
        except images.ImageDecodeError as e:
            rows += [self._row(plan, t, FAILED, e.reason) for t in targets]
            return None
        return _Prepared(plan, targets, rgb, mask, time.perf_counter() - t0)

    def _mask(self, plan: InputPlan, rgb: np.ndarray) -> np.ndarray | None:
        """The garment mask at the output size (None: the whole image)."""
        if self.settings.masks == MASKS_AUTO:
            return masks.auto_mask(rgb)
        if self.settings.masks == MASKS_NONE or plan.mask is None:
            return None
        try:
            raw = self.storage.read_bytes(plan.mask)
            mask = images.decode_mask(raw, size=rgb.shape[:2], name=plan.mask)
        except (images.ImageDecodeError, StorageError) as e:
            raise images.ImageDecodeError(plan.uri, f"mask {e}") from e
        return mask.numpy() > 0.5

    def _restyle(self, same_size: list[_Prepared]) -> list[Row]:
        """Every style's G(x) for same-size inputs in one batch, then each one's output."""
        t0 = time.perf_counter()
        wanted = {
            style: [i for i, p in enumerate(same_size) if any(t.style == style for t in p.targets)]
            for style in self.versions
        }
        batch = np.stack([p.image for p in same_size])  # (B, H, W, 3)
        styled = self.bank.run(batch, wanted, self.device)
        share = (time.perf_counter() - t0) / sum(len(i) for i in wanted.values())
        return [
            self._finish(same_size[i], style, y, share)
            for style, picked in wanted.items()
            for i, y in zip(picked, styled.get(style, ()), strict=True)
        ]

    def _finish(self, p: _Prepared, style: str, styled: np.ndarray, seconds: float) -> Row:
        """Chroma, composite, encode and write one output."""
        t0 = time.perf_counter()
        target = next(t for t in p.targets if t.style == style)
        if self.settings.preserve_color:
            styled = compositing.keep_chroma(styled, p.image)
        out = compositing.composite(styled, p.image, p.mask)
        tag = {"style": style, "version": self.versions[style], **self._settings_tag()}
        try:
            self.storage.write_bytes(
                target.output, compositing.encode(out, self.settings.format, tag)
            )
        except StorageError as e:
            return self._row(p.plan, target, FAILED, f"write: {e}")
        h, w = out.shape[:2]
        seconds += p.seconds / len(p.targets) + time.perf_counter() - t0
        return self._row(p.plan, target, OK, "")._replace(width=w, height=h, seconds=seconds)

    def _done_by_tag(self, plan: InputPlan, target: Target) -> Row | None:
        """A skipped row if the existing output's own tag names this version and settings."""
        try:
            found = compositing.read_tag(self.storage.read_bytes(target.output))
        except StorageError:
            return None
        expected = {"style": target.style, "version": self.versions[target.style]}
        if found is None or found[0] != {**expected, **self._settings_tag()}:
            return None
        (w, h), reason = found[1], "already done (file tag)"
        return self._row(plan, target, SKIPPED, reason)._replace(width=w, height=h)

    def _settings_tag(self) -> dict[str, str]:
        return {"settings": self.settings.fingerprint}

    def _row(self, plan: InputPlan, target: Target, status: str, reason: str) -> Row:
        version, fingerprint = self.versions[target.style], self.settings.fingerprint
        return Row(
            plan.uri, target.style, status, reason, target.output, version, fingerprint, 0, 0, 0
        )
