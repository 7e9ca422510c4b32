"""Train the whole style catalogue at once on Ray Train: one ``TorchTrainer`` per style.

**Pattern.** Ray 2.60 runs Train V2, which refuses a Trainer inside a Tuner. Its two ways to
run many trainers at once are a Tune grid whose function trainables each call
``TorchTrainer.fit()``, or one Ray task per trainer. We use one task per style
(:func:`_fit_style`, ``num_cpus=0``): a style's failure is that task's result and nothing
else's, no Tune layer sits between the catalogue and Ray Train, and the launching tasks hold
no resources, so N styles on fewer GPUs (or CPUs) queue in Ray's scheduler instead of
deadlocking; each trainer asks for its own workers' CPUs and GPUs.

Per style, under ``<runs>/<catalogue>/<style>/`` (any storage URI)::

    checkpoint.pt        the full resume state, every ``checkpoint_every`` steps and at the end
    samples/step_*.png   before/after grids of the held-out garments, every ``sample_every``
    losses.png           the loss curves
    result.json          written once the style is published: a rerun skips the style
    ray/                 Ray Train's own run state

and ``<runs>/<catalogue>/data_report.json`` lists the input files that were skipped.

**Resume.** A worker that dies is restarted by Ray Train (``FailureConfig``); the new worker
finds ``checkpoint.pt`` and continues the same phase and step, with the same data order.
Rerunning the command after the driver died does the same for unfinished styles, because
run folders have stable names (the catalogue's and the style's, no timestamps).

The training loop itself is :func:`fsg_ray.core.algorithm.train`, unchanged: this module only
feeds it (Ray Data shards), watches it (progress lines, ``ray.train.report``, samples) and
saves what it produces (checkpoints, registry).
"""

from __future__ import annotations

import dataclasses
import io
import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import ray
import torch
from torch import Tensor

from fsg_ray.config import (
    CatalogueConfig,
    StorageOptions,
    StyleSpec,
    TrainConfig,
    from_dict,
    to_dict,
)
from fsg_ray.core import algorithm, transforms
from fsg_ray.distributed import console, data, session
from fsg_ray.distributed.batches import RayDataBatches
from fsg_ray.io import images, inputs, registry, visualize
from fsg_ray.io.storage import NotFound, Storage, StorageError
from fsg_ray.io.uri import join
from fsg_ray.io.weights import load_vgg

log = logging.getLogger(__name__)

CHECKPOINT, RESULT, LOSSES = "checkpoint.pt", "result.json", "losses.png"
#: Seconds between two progress lines of a style in the console.
PROGRESS_EVERY_S = 10.0
#: Steps averaged into the final losses of a run.
FINAL_WINDOW = 20
#: Side of each picture in the sample grids.
SAMPLE_SIDE = 160

Status = Literal["published", "skipped", "failed"]
#: Called in every training worker after each step with the style's name and the step.
StepHook = Callable[[str, algorithm.StepInfo], None]


@dataclass(frozen=True)
class StyleResult:
    """How one style of the catalogue ended.

    Attributes:
        style: Its name.
        status: ``published`` (trained now), ``skipped`` (published by an earlier run) or
            ``failed``.
        steps: Training steps in its history.
        wall_s: Seconds from the trainer's start to its end (this run only).
        final_losses: Mean of each loss over the last steps of the run.
        version: Registry version, if published.
        error: Why it failed.
    """

    style: str
    status: Status
    steps: int = 0
    wall_s: float = 0.0
    final_losses: dict[str, float] = field(default_factory=dict)
    version: str | None = None
    error: str = ""


# ---------------------------------------------------------------- the driver


def storage_for(cat: CatalogueConfig) -> Storage:
    """Storage with the catalogue's S3 endpoint and region over the environment's."""
    return Storage(StorageOptions.given(cat.storage.endpoint_url, cat.storage.s3_region))


def run_uri(cat: CatalogueConfig, style: str | None = None) -> str:
    """``<runs>/<catalogue>[/<style>]``."""
    base = join(cat.storage.runs, cat.name)
    return join(base, style) if style else base


def train_catalogue(
    cat: CatalogueConfig,
    storage: Storage | None = None,
    styles: Sequence[str] | None = None,
    on_step: StepHook | None = None,
) -> list[StyleResult]:
    """Trains every style of the catalogue (or ``styles``) at once; publishes each to the
    registry as it finishes. Styles published by an earlier run of the catalogue are skipped.

    Needs a running Ray (``ray.init``). Never raises for one style's failure: it is that
    style's result.

    Args:
        cat: The validated catalogue.
        storage: Reads data and writes runs and registry (default: :func:`storage_for`).
        styles: Train only these (names from the catalogue).
        on_step: Called in every worker of every style after each step, with the style's
            name and the :class:`~fsg_ray.core.algorithm.StepInfo`, after the step's metrics
            and samples and before its checkpoint (e.g. to watch a run, or in tests to kill a
            worker). It is pickled with the job (cloudpickle), so it must be importable on
            the workers, or be a closure cloudpickle can carry.

    Raises:
        ValueError: ``styles`` names a style the catalogue does not have; no usable data.
    """
    storage = storage or storage_for(cat)
    specs = [cat.style(name) for name in styles] if styles else list(cat.styles)
    results: dict[str, StyleResult] = {}
    todo: list[StyleSpec] = []
    for spec in specs:
        early = _before_training(cat, spec, storage)
        if early is None:
            todo.append(spec)
        else:
            results[spec.name] = early
    if todo:
        pending = _launch(cat, storage, todo, on_step)
        for name, ref in pending.items():
            results[name] = ray.get(ref)
    return [results[s.name] for s in specs]


def _before_training(cat: CatalogueConfig, spec: StyleSpec, storage: Storage) -> StyleResult | None:
    """A style's result without training it: published already, or unusable (None: train it)."""
    run = run_uri(cat, spec.name)
    done = _read_result(storage, run)
    if done is not None:
        result, config = done
        if config != to_dict(cat.style_config(spec.name)):
            other = (
                f"{run} holds a published run of another config; give the catalogue a new "
                "name (or remove that run folder) to train this one"
            )
            return StyleResult(spec.name, "failed", error=other)
        log.info("%s: published already (%s), skipping", spec.name, result.version)
        return dataclasses.replace(result, status="skipped", wall_s=0.0)
    problem = _style_image_problem(cat, spec, storage)
    if problem is not None:
        log.error("%s: %s", spec.name, problem)
        return StyleResult(spec.name, "failed", error=problem)
    return None


def _style_image_problem(cat: CatalogueConfig, spec: StyleSpec, storage: Storage) -> str | None:
    """Why the style image cannot be used, checked before any trainer starts (None: fine)."""
    try:
        inputs.load_style(spec.image, storage, cat.style_config(spec.name).data.style_size)
    except (images.ImageDecodeError, StorageError) as e:
        return f"style image: {e}"
    return None


def _launch(
    cat: CatalogueConfig, storage: Storage, specs: list[StyleSpec], on_step: StepHook | None
) -> dict[str, Any]:
    """Builds the data once per distinct data config, then starts one trainer task per style.

    Every data set is decoded before the first trainer starts: a trainer holds its CPUs, and
    the decoding of a later set would wait for them, the whole run of the trainer long.
    """
    prepared: dict[tuple[Any, ...], tuple[data.TrainingData, list[np.ndarray]]] = {}
    keys = {}
    for spec in specs:
        cfg = cat.style_config(spec.name)
        keys[spec.name] = key = (cfg.data, cfg.schedule.seed)
        if key not in prepared:
            prepared[key] = _prepare_data(cat, storage, cfg)
    pending = {}
    for spec in specs:
        td, heldout = prepared[keys[spec.name]]
        job = {
            "catalogue": to_dict(cat),
            "style": spec.name,
            "storage": dataclasses.asdict(storage.options),
            "heldout": heldout,
            "on_step": on_step,
            "git_commit": registry.git_commit(),
            "data_fingerprint": _data_fingerprint(cat, td.report),
        }
        pending[spec.name] = _fit_style.remote(job, td.full, td.patches)
    return pending


def _prepare_data(
    cat: CatalogueConfig, storage: Storage, cfg: TrainConfig
) -> tuple[data.TrainingData, list[np.ndarray]]:
    """X^(1), X^(2) (materialized), the bad-file report, and the held-out garments (uint8)."""
    td = data.training_data(
        cat.data.full,
        cat.data.shop,
        storage,
        cfg.data,
        cfg.schedule.seed,
        cat.data.masks,
        holdout=cat.samples,
    )
    inputs.write_report(td.report, run_uri(cat), storage)
    heldout = []
    for item in td.heldout:
        try:
            img = images.to_tensor(images.decode_image(storage.read_bytes(item.uri), name=item.uri))
        except images.ImageDecodeError as e:
            log.warning("held-out garment skipped: %s", e)
            continue
        img = transforms.resize_short_side(img, cfg.data.global_target_size)
        heldout.append(data.to_uint8(img))
    return td, heldout


def _data_fingerprint(cat: CatalogueConfig, report: inputs.DataReport) -> str:
    """What the styles were trained on: the sources and how many of their inputs were used.

    Hashing every file's size would list each prefix again; the report already counts them.
    """
    sources = [(cat.data.full, report.inputs), (cat.data.shop, report.good)]
    sources += [(cat.data.masks or "", len(report.bad))]
    return registry.data_fingerprint(sources)


# max_calls=1: the worker process exits after the task. Ray Train's fit() leaves its
# controller's handle in the SIGINT handler it installs, so a reused worker would keep the
# TrainController, and the DatasetManager and SplitCoordinators it owns, alive (and polling)
# for the life of the cluster: a long-lived Ray that trains catalogue after catalogue would
# gather three or more idle actors per style trained.
@ray.remote(num_cpus=0, max_calls=1)
def _fit_style(job: dict[str, Any], full: ray.data.Dataset, patches: ray.data.Dataset) -> Any:
    """One style's trainer, in its own task: fits, then reads the result the worker wrote."""
    from ray.train import FailureConfig, LoggingConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    cat = from_dict(CatalogueConfig, job["catalogue"])
    storage = Storage(StorageOptions(**job["storage"]))
    style, t0 = job["style"], time.perf_counter()
    res = cat.resources
    gpus = res.worker_gpus(ray.cluster_resources().get("GPU", 0.0))
    per_worker = {"CPU": res.cpus_per_worker, **({"GPU": gpus} if gpus else {})}
    fs, path = storage.filesystem(join(run_uri(cat, style), "ray"))
    trainer = TorchTrainer(
        _train_loop,
        train_loop_config=job,
        scaling_config=ScalingConfig(
            num_workers=res.workers_per_style,
            use_gpu=gpus > 0,
            resources_per_worker=per_worker,
        ),
        # mypy sees Train V1's RunConfig; at run time ray.train is V2, which has logging_config.
        run_config=RunConfig(  # type: ignore[call-arg]
            name=style,
            storage_path=path,
            storage_filesystem=fs,
            failure_config=FailureConfig(max_failures=cat.max_failures),
            # Our progress lines say more than Ray Train's INFO logs, less often.
            logging_config=LoggingConfig(log_level="WARNING"),
        ),
        datasets={data.FULL: full, data.PATCHES: patches},
        dataset_config=data.train_dataset_config(),
    )
    try:
        trainer.fit()
    except Exception as e:  # TrainingFailedError and its causes: this style fails alone
        return StyleResult(style, "failed", wall_s=time.perf_counter() - t0, error=_reason(e))
    done = _read_result(storage, run_uri(cat, style))
    if done is None:
        return StyleResult(style, "failed", error="the trainer ended without publishing")
    return dataclasses.replace(done[0], wall_s=round(time.perf_counter() - t0, 1))


def _reason(exc: BaseException) -> str:
    """The innermost error of a chain: Ray wraps the worker's error in several layers."""
    while exc.__cause__ is not None:
        exc = exc.__cause__
    return f"{type(exc).__name__}: {exc}".strip().splitlines()[-1][:500]


def _read_result(storage: Storage, run: str) -> tuple[StyleResult, dict[str, Any]] | None:
    """A finished style's result and the config it was trained with (None: not finished)."""
    try:
        raw = json.loads(storage.read_bytes(join(run, RESULT)))
    except NotFound:
        return None
    return StyleResult(**raw["result"]), raw["config"]


def format_summary(results: Sequence[StyleResult]) -> str:
    """The table printed at the end of ``fsg train``."""
    header = ("style", "status", "steps", "wall", "final losses", "version")
    rows = [header]
    for r in results:
        losses = ", ".join(f"{k} {v:.3g}" for k, v in sorted(r.final_losses.items()))
        status = r.status if not r.error else f"{r.status}: {r.error}"
        wall = f"{r.wall_s:.0f} s" if r.wall_s else "-"
        rows.append((r.style, status, str(r.steps), wall, losses or "-", r.version or "-"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(line.rstrip() for line in lines)


# ---------------------------------------------------------------- the training worker


@dataclass
class _Job:
    """Everything a worker needs, rebuilt from the trainer's config on its first line."""

    cat: CatalogueConfig
    cfg: TrainConfig
    spec: StyleSpec
    storage: Storage
    run: str
    heldout: list[Tensor]
    raw: dict[str, Any]

    @classmethod
    def from_config(cls, job: dict[str, Any]) -> _Job:
        cat = from_dict(CatalogueConfig, job["catalogue"])
        heldout = [
            torch.from_numpy(np.array(h)).permute(2, 0, 1).float() / 255 for h in job["heldout"]
        ]
        return cls(
            cat,
            cat.style_config(job["style"]),
            cat.style(job["style"]),
            Storage(StorageOptions(**job["storage"])),
            run_uri(cat, job["style"]),
            heldout,
            job,
        )


def _train_loop(config: dict[str, Any]) -> None:
    """Ray Train's ``train_loop_per_worker``: Algorithm 1 for one style, resumable."""
    job = _Job.from_config(config)
    # Ray Train configured this worker's logging just before: filter its console now.
    console.quiet_worker(session.RAY_DIR)
    ctx = ray.train.get_context()
    rank = ctx.get_world_rank()
    device = ray.train.torch.get_device()
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed shapes per phase: autotune once
    cfg, storage = job.cfg, job.storage
    vgg = load_vgg(cfg.model.vgg_weights, storage)
    style = inputs.load_style(job.spec.image, storage, cfg.data.style_size)[None]
    batches = RayDataBatches.from_train_shards(cfg.data, cfg.schedule.batch_size, cfg.schedule.seed)
    run, starts = _resume_or_start(job, vgg, style, device, batches)
    if ctx.get_world_size() > 1:
        _sync_gradients(run)
    log.info("[%s] rank %d on %s: starting at step %d", job.spec.name, rank, device, starts[-1])
    watch = _Watch(job, run, rank, starts)
    t0 = time.perf_counter()
    with batches:
        algorithm.train(
            run,
            batches,
            on_step=watch.on_step,
            on_checkpoint=lambda r: _save_checkpoint(job, r, batches, starts, rank),
        )
    if rank == 0:
        _finish(job, run, time.perf_counter() - t0, starts)


def _resume_or_start(
    job: _Job, vgg: Any, style: Tensor, device: torch.device, batches: RayDataBatches
) -> tuple[algorithm.Run, list[int]]:
    """The run from the style's checkpoint if there is one, else a fresh one."""
    uri = join(job.run, CHECKPOINT)
    try:
        raw = job.storage.read_bytes(uri)
    except NotFound:
        return algorithm.new_run(job.cfg, vgg, style, device), [0]
    state = torch.load(io.BytesIO(raw), map_location="cpu", weights_only=True)
    if state["config"] != to_dict(job.cfg):
        raise ValueError(
            f"{uri} holds a run of another config; give the catalogue a new name "
            "or remove that run folder"
        )
    run = algorithm.restore_run(state, vgg, style, device, batches)
    return run, [*state.get("starts", []), len(run.progress.history)]


def _sync_gradients(run: algorithm.Run) -> None:
    """Data parallel: averages every trained parameter's gradient over the workers.

    A hook per parameter, after its gradient is accumulated, so Algorithm 1's steps
    (which call ``backward`` and ``step`` themselves) stay unchanged. Rank 0's initial
    weights are broadcast first, so all workers start equal.
    """
    import torch.distributed as dist

    world = dist.get_world_size()
    params = [*run.nets.gen.decoder.parameters(), *run.nets.disc.parameters()]
    for p in params:
        dist.broadcast(p.data, src=0)

    def average(p: Tensor) -> None:
        assert p.grad is not None
        dist.all_reduce(p.grad)
        p.grad /= world

    for p in params:
        p.register_post_accumulate_grad_hook(average)


class _Watch:
    """Per-step side work: progress lines, metrics to Ray Train (the mean losses of every
    ``report_every`` steps), samples, then the caller's ``on_step`` hook."""

    def __init__(self, job: _Job, run: algorithm.Run, rank: int, starts: list[int]) -> None:
        self.job, self.run, self.rank, self.starts = job, run, rank, starts
        self.t0 = self.last = time.perf_counter()
        self.first = len(run.progress.history)
        self.pending: dict[str, list[float]] = {}  # losses since the last report

    def on_step(self, info: algorithm.StepInfo) -> None:
        for k, v in info.losses.items():
            self.pending.setdefault(k, []).append(v)
        if info.done % self.job.cfg.schedule.report_every == 0 or info.done == info.total:
            means = {k: float(np.mean(v)) for k, v in self.pending.items()}
            ray.train.report({"step": info.done, "phase": info.phase, **means})
            self.pending = {}
        now = time.perf_counter()
        if self.rank == 0 and (now - self.last >= PROGRESS_EVERY_S or info.done == info.total):
            self.last = now
            log.info("%s", self._line(info, now))
        every = self.job.cfg.schedule.sample_every
        if self.rank == 0 and every and info.done % every == 0:
            name = f"samples/step_{info.done:06d}.png"
            self.job.storage.write_bytes(join(self.job.run, name), self._samples())
        hook: StepHook | None = self.job.raw.get("on_step")
        if hook is not None:
            hook(self.job.spec.name, info)

    def _line(self, info: algorithm.StepInfo, now: float) -> str:
        rate = (info.done - self.first) / max(now - self.t0, 1e-9)
        eta = (info.total - info.done) / rate if rate > 0 else float("inf")
        losses = " ".join(f"{k} {v:.3g}" for k, v in info.losses.items())
        return (
            f"[{self.job.spec.name}] {info.phase} {info.step}/{info.phase_steps} "
            f"| {info.done}/{info.total} | {losses} | {rate:.2f} it/s | ETA {eta:.0f} s"
        )

    def _samples(self) -> bytes:
        return _png(sample_grid(self.job, self.run))


def _save_checkpoint(
    job: _Job, run: algorithm.Run, batches: RayDataBatches, starts: list[int], rank: int
) -> None:
    if rank != 0:
        return
    state = {**algorithm.checkpoint_state(run, batches), "starts": list(starts)}
    buf = io.BytesIO()
    torch.save(state, buf)
    job.storage.write_bytes(join(job.run, CHECKPOINT), buf.getvalue())
    phases = [p.name for p in algorithm.schedule_phases(run.cfg)]
    curves = visualize.loss_curves(run.progress.history, phases)
    job.storage.write_bytes(join(job.run, LOSSES), _png(curves))


def sample_grid(job: _Job, run: algorithm.Run) -> Any:
    """Style | held-out garment | G(garment), one row per held-out garment."""
    gen = run.nets.gen
    was_training = gen.training
    gen.eval()
    with torch.inference_mode():
        outs = [gen(x[None].to(run.device))[0].float().cpu() for x in job.heldout]
    gen.train(was_training)
    columns = {
        f"style: {job.spec.name}": [images.to_image(run.style[0].cpu())],
        "input": [images.to_image(x) for x in job.heldout],
        "generated G(x)": [images.to_image(o) for o in outs],
    }
    return visualize.grid(columns, cell=SAMPLE_SIDE)


def _png(img: Any) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def final_losses(
    history: Sequence[dict[str, float]], window: int = FINAL_WINDOW
) -> dict[str, float]:
    """Each loss's mean over the last ``window`` steps that recorded it (so the global
    phase's content and style losses are kept when the patch phase comes last)."""
    values: dict[str, list[float]] = {}
    for h in history:
        for k, v in h.items():
            if k != "phase":
                values.setdefault(k, []).append(v)
    return {k: round(float(np.mean(v[-window:])), 5) for k, v in values.items()}


def _finish(job: _Job, run: algorithm.Run, train_s: float, starts: list[int]) -> None:
    """Publishes the generator (once) and writes result.json, which marks the style done."""
    history = run.progress.history
    run_id = f"{job.run}@{len(history)}"
    published = _published_version(job, run_id)
    if published is None:
        metadata = {
            "run_id": run_id,
            "catalogue": job.cat.name,
            "style_image": job.spec.image,
            "mode": job.cfg.schedule.mode,
            "base_style": job.spec.base,
            "config": to_dict(job.cfg),
            "schedule": to_dict(job.cfg.schedule),
            "data": {**to_dict(job.cat.data), "fingerprint": job.raw["data_fingerprint"]},
            "git_commit": job.raw["git_commit"],
            "final_losses": final_losses(history),
            "timings": {"steps": len(history), "train_s_last_attempt": round(train_s, 1)},
            "starts": starts,
        }
        files = {"samples.png": _png(sample_grid(job, run))}
        files[LOSSES] = job.storage.read_bytes(join(job.run, LOSSES))
        published = registry.publish(
            job.storage,
            job.cat.storage.registry,
            job.spec.name,
            algorithm.generator_state(run),
            metadata,
            files,
        ).version
    result = StyleResult(
        job.spec.name,
        "published",
        len(history),
        round(train_s, 1),
        final_losses(history),
        published,
    )
    done = {"result": dataclasses.asdict(result), "config": to_dict(job.cfg)}
    job.storage.write_bytes(join(job.run, RESULT), json.dumps(done).encode())
    log.info("[%s] published as %s", job.spec.name, published)


def _published_version(job: _Job, run_id: str) -> str | None:
    """The registry version this very run already published (a crash before result.json)."""
    try:
        current = registry.resolve(job.storage, job.cat.storage.registry, job.spec.name)
    except LookupError:
        return None
    return current.version if current.metadata.get("run_id") == run_id else None
