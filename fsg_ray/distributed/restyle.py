"""``fsg restyle``: bulk-restyle a product catalogue with published generators, as an offline
Ray Data job.

The driver plans first, without Ray (:mod:`fsg_ray.distributed.restyle_plan`: styles
resolved, inputs listed, what is done skipped; the output names, the done rule and the
manifest are described there). :func:`execute` then has Ray Data read the remaining files
(``read_binary_files``) into one pool of :class:`Restyler` actors; each actor loads every
requested style's generator once (one VGG encoder shared by all) and, per image: decode
(:func:`fsg_ray.io.images.decode_image`), shrink to ``max_side``, mask, G(x), optional chroma of
the input, composite, encode, atomic write. Nothing about one file stops the job: a bad
input, an unwritable output, a full disk or any other error of one item becomes a failed row
with its reason, and a batch whose G(x) fails (e.g. out of memory) is run again image by
image, so only the images that fail alone fail.

**Resume.** Outputs are written atomically, so a killed job leaves whole files or none; a rerun
of the same command then produces exactly the missing outputs. The manifest of a running job
is rewritten every :data:`MANIFEST_EVERY_S` seconds and at the end, then folded into the
output's history (:func:`fsg_ray.distributed.restyle_plan.fold_into_history`).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import pyarrow as pa
import ray.data
import torch

from fsg_ray.config import MASKS_AUTO, MASKS_NONE, RestyleConfig, StorageOptions
from fsg_ray.core import masks
from fsg_ray.distributed.data import read_files
from fsg_ray.distributed.restyle_plan import (
    FAILED,
    MANIFEST_SCHEMA,
    OK,
    SKIPPED,
    InputPlan,
    Plan,
    RestyleResult,
    Row,
    Settings,
    Target,
    counts_text,
    fold_into_history,
    manifest_bytes,
    plan,
)
from fsg_ray.io import compositing, images, quantize
from fsg_ray.io.generators import EncoderCache, StyleBank
from fsg_ray.io.storage import Storage, StorageError

log = logging.getLogger(__name__)

#: Images per actor call; those of equal size in it go through G as one tensor batch.
BATCH_IMAGES = 8
#: Input files per read task.
FILES_PER_BLOCK = 16
#: Seconds between two progress lines.
PROGRESS_EVERY_S = 10.0
#: Seconds between two rewrites of the running job's manifest.
MANIFEST_EVERY_S = 60.0
#: Photos of the job that ``runtime: onnx-int8`` reads first: half calibrate each style's int8
#: model, half are held aside for its quality gate (:func:`fsg_ray.io.quantize.choose_int8`).
INT8_PHOTOS = 16


def execute(p: Plan, storage: Storage) -> RestyleResult:
    """Runs a plan's remaining work on Ray (if any) and writes the run's manifest.

    The manifest is also written, with the rows so far, when the job stops on an error or an
    interrupt. Ray Data starts a local Ray if none is initialised; the CLI opens
    :func:`fsg_ray.distributed.trainer.ray_session` first.
    """
    t0 = time.perf_counter()
    rows = _Collector(storage, p.manifest, p.decided, p.outputs_to_make)
    try:
        if p.todo:
            _restyle_on_ray(p, storage, rows)
    finally:
        rows.write()
        _fold(p, storage, rows.rows)
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
    models = int8_models(p, storage)
    for batch in _dataset(p, storage, models).iter_batches(batch_size=None, batch_format="pyarrow"):
        new = [Row(**r) for r in cast(pa.Table, batch).to_pylist()]
        seen.update(r.input for r in new)
        rows.add(new)
    rows.add(_missing(p, seen))


def restyle(cfg: RestyleConfig, storage: Storage) -> RestyleResult:
    """:func:`plan`, then :func:`execute`."""
    return execute(plan(cfg, storage), storage)


def int8_models(p: Plan, storage: Storage) -> dict[str, bytes]:
    """``runtime: onnx-int8`` on a CPU-only machine: each style's int8 model where it passes
    the quality gate, made once here on the driver so that every actor runs the same one.

    The photos are the job's first :data:`INT8_PHOTOS` inputs to do (decoded and shrunk as
    the actors will), so the activation ranges are those of this catalogue; a resumed job
    calibrates on the inputs it still has to do. A style whose gate fails, or whose photos
    cannot be read at all, keeps its fp32 ONNX model; a log line says which and why.
    """
    if p.config.runtime != "onnx-int8" or torch.cuda.is_available() or not p.todo:
        return {}
    t0 = time.perf_counter()
    photos = _photos(p, storage, INT8_PHOTOS)
    if not photos:
        log.warning("onnx-int8: none of the first inputs could be read; every style stays fp32")
        return {}
    cache, threads = EncoderCache(storage, torch.device("cpu")), max(1, torch.get_num_threads())
    models = {}
    for style, version in p.versions.items():
        gen, found = cache.load(p.config.registry, style, version)
        style_image = _style_image(found.metadata, storage)
        choice = quantize.choose_int8(gen, photos, style_image, threads, p.settings.downscale)
        log.info("onnx-int8: %s %s %s", style, version, choice.reason)
        if choice.model is not None:
            models[style] = choice.model
    log.info("onnx-int8: %d of %d styles in int8 (%.1f s)", len(models), len(p.versions),
             time.perf_counter() - t0)  # fmt: skip
    return models


def _photos(p: Plan, storage: Storage, n: int) -> list[np.ndarray]:
    """Up to ``n`` of the inputs to do, decoded and fitted to ``max_side``; unreadable ones are
    passed over (the actors give them their failed rows)."""
    out: list[np.ndarray] = []
    for item in p.todo:
        if len(out) == n:
            break
        try:
            img = images.decode_image(storage.read_bytes(item.uri), name=item.uri)
        except (images.ImageDecodeError, StorageError):
            continue
        out.append(np.asarray(compositing.fit_long_side(img, p.config.max_side)))
    return out


def _style_image(metadata: dict[str, Any], storage: Storage) -> np.ndarray | None:
    """The style image a version was trained on, for the int8 gate; None if it is gone."""
    uri = metadata.get("style_image")
    if not isinstance(uri, str):
        return None
    try:
        return np.asarray(images.decode_image(storage.read_bytes(uri), name=uri))
    except (images.ImageDecodeError, StorageError, ValueError):
        log.info("onnx-int8: style image %s unreadable; gating on the fp32 outputs alone", uri)
        return None


def _dataset(p: Plan, storage: Storage, models: dict[str, bytes]) -> ray.data.Dataset:
    """read_binary_files over the inputs to do, into a pool of :class:`Restyler` actors."""
    ds, by_path = read_files(p.todo, storage, FILES_PER_BLOCK)
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
            "runtime": p.config.runtime,
            "threads": max(1, int(cpus)),
            "models": models,
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


def _fold(p: Plan, storage: Storage, rows: list[Row]) -> None:
    """Folds the run into the output's history; a failure is logged, not raised (the run's
    manifest is written, and the next run folds it)."""
    try:
        fold_into_history(storage, p.config.output, p.run_id, rows)
    except StorageError:
        log.exception("%s: could not fold run %s into the history", p.config.output, p.run_id)


def _missing(p: Plan, seen: set[str]) -> list[Row]:
    """Failed rows for the inputs that the read never delivered (deleted since listing)."""
    reason, fingerprint = "missing: no such file", p.settings.fingerprint
    return [
        Row(
            i.uri, t.style, FAILED, reason, t.output, p.versions[t.style], fingerprint, 0, 0, 0
        )._replace(input_id=i.identity)
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
            text = counts_text(counts)
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
        runtime: ``auto``, ``torch``, ``onnx`` or ``onnx-int8``
            (:func:`fsg_ray.io.generators.for_runtime`).
        threads: The actor's CPUs: ONNX Runtime's intra-op threads.
        models: Style -> its int8 ONNX model (:func:`int8_models`); other styles run fp32.
    """

    def __init__(
        self,
        registry_uri: str,
        versions: dict[str, str],
        settings: dict[str, Any],
        storage_options: dict[str, Any],
        plans: dict[str, InputPlan],
        runtime: str = "torch",
        threads: int = 1,
        models: dict[str, bytes] | None = None,
    ) -> None:
        self.settings = Settings(**settings)
        self.storage = Storage(StorageOptions(**storage_options))
        self.versions, self.plans = versions, plans
        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        self.bank = StyleBank.load(
            self.storage,
            registry_uri,
            versions,
            self.device,
            runtime,
            threads,
            models,
            self.settings.downscale,
        )

    def __call__(self, batch: dict[str, np.ndarray]) -> pa.Table:
        rows: list[Row] = []
        ready: dict[tuple[int, ...], list[_Prepared]] = {}
        for raw, path in zip(batch["bytes"], batch["path"], strict=True):
            plan = self.plans[str(path)]
            try:
                prepared = self._prepare(plan, bytes(raw), rows)
            except Exception as e:  # one input's failure, whatever it is, is that input's row
                log.exception("%s: preparing the input failed", plan.uri)
                rows += [self._row(plan, t, FAILED, _reason(e)) for t in plan.targets]
                continue
            if prepared is not None:
                ready.setdefault(prepared.image.shape, []).append(prepared)
        for same_size in ready.values():
            rows += self._restyle_or_split(same_size)
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

    def _restyle_or_split(self, same_size: list[_Prepared]) -> list[Row]:
        """:meth:`_restyle` on the batch; if G(x) fails for it (out of memory, a bad
        generator), again image by image, so that one image's failure is only its own."""
        try:
            return self._restyle(same_size)
        except Exception as e:
            if len(same_size) > 1:
                log.warning("G(x) failed for a batch of %d, one by one now: %s", len(same_size), e)
                return [row for p in same_size for row in self._restyle_or_split([p])]
            log.exception("%s: G(x) failed", same_size[0].plan.uri)
            p = same_size[0]
            return [self._row(p.plan, t, FAILED, f"G(x): {_reason(e)}") for t in p.targets]

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
        """Strength, chroma, composite, encode and write one output; any failure is its failed
        row."""
        t0 = time.perf_counter()
        target = next(t for t in p.targets if t.style == style)
        try:
            styled = compositing.with_strength(styled, p.image, self.settings.strength)
            if self.settings.preserve_color:
                styled = compositing.keep_chroma(styled, p.image)
            out = compositing.composite(styled, p.image, p.mask)
            data = compositing.encode(out, self.settings.format, self._tag(p.plan, style))
        except Exception as e:
            log.exception("%s: composing the output failed", target.output)
            return self._row(p.plan, target, FAILED, f"encode: {_reason(e)}")
        try:
            self.storage.write_bytes(target.output, data)
        except StorageError as e:  # an unwritable folder, a full disk: local ones too
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
        if not plan.identity or found is None or found[0] != self._tag(plan, target.style):
            return None
        (w, h), reason = found[1], "already done (file tag)"
        return self._row(plan, target, SKIPPED, reason)._replace(width=w, height=h)

    def _tag(self, plan: InputPlan, style: str) -> dict[str, str]:
        """An output's provenance tag: what made it, from which input as it was then."""
        return {
            "style": style,
            "version": self.versions[style],
            "settings": self.settings.fingerprint,
            "input": plan.uri,
            "input_id": plan.identity,
        }

    def _row(self, plan: InputPlan, target: Target, status: str, reason: str) -> Row:
        version, fingerprint = self.versions[target.style], self.settings.fingerprint
        return Row(
            plan.uri, target.style, status, reason, target.output, version, fingerprint, 0, 0, 0
        )._replace(input_id=plan.identity)


def _reason(e: BaseException) -> str:
    """A failed row's reason: the error's type and message (one line)."""
    text = " ".join(str(e).split())
    return f"{type(e).__name__}: {text}" if text else type(e).__name__
