"""Algorithm 1 of the paper (Alternating Patch-Global Back-propagation), in plain PyTorch.

    1: initialise E_n, phi, varphi_c with VGG           -> build_nets
    2: GAN initialisation of D_e and varphi_s           -> gan_step, repeated gan_init_steps times
    3: for t = 1..T                                     -> schedule_phases
    5-8:   tau(2) global steps, Eq. 1-3 and Eq. 8       -> global_step
    10-13: tau(1) patch steps, Eq. 1, 4, 5 and Eq. 9    -> patch_step
    OUTPUT theta (D_e's parameters)                     -> generator_state

Code (paper): ``gen`` = G = D_e o E_n; ``phi`` = the VGG loss net phi and varphi_c; ``disc`` =
varphi_s; ``opt_gan_g``/``opt_gan_d`` = the two players of Eq. 7; ``opt_global`` (eta^(2)) and
``opt_patch`` (eta^(1)) = the generator's optimisers of Eq. 8 and 9. E_n is frozen throughout,
varphi_s is frozen after GAN initialisation. Eq. 8/9's "least squares of L(t+1) - L(t)" is
realised as plain gradient descent (Adam) on L^(2) and L^(1); see docs/paper_map.md.

No Ray import here: Ray Train workers call :func:`train` unchanged.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import torch
import torch.nn.functional as F
from torch import Tensor

from fsg_ray.config import TrainConfig, from_dict, to_dict
from fsg_ray.core import losses
from fsg_ray.core.device import autocast
from fsg_ray.core.models import (
    Generator,
    PatchDiscriminator,
    VGG19Features,
    VGGWeights,
    vgg_channels,
)

PhaseName = Literal["gan", "global", "patch"]
CHECKPOINT_FORMAT = 1


class EncoderMismatchError(ValueError):
    """A checkpoint was trained against other VGG weights than the ones loaded."""


@dataclass(frozen=True)
class Phase:
    """One stretch of Algorithm 1: ``steps`` iterations of one kind of step."""

    name: PhaseName
    steps: int


def schedule_phases(cfg: TrainConfig) -> list[Phase]:
    """The ordered phases of a run for the configured mode (Algorithm 1 lines 2-15)."""
    s = cfg.schedule
    if s.mode == "global_only":  # FeedS-like baseline (Johnson et al.)
        return [Phase("global", s.global_only_steps)]
    gan = [Phase("gan", s.gan_init_steps)]
    if s.mode == "patch_only":  # MGAN-like baseline (Li & Wand)
        return gan + [Phase("patch", s.patch_steps) for _ in range(s.alternations)]
    per_t = [Phase("global", s.global_steps), Phase("patch", s.patch_steps)]
    return gan + per_t * s.alternations


class Batches(Protocol):
    """Training data as the core needs it; local and Ray Data loaders both implement it."""

    def global_batch(self) -> tuple[Tensor, Tensor]:
        """x in X^(2) at the low resolution and y_c at the high one: (B,3,s,s), (B,3,S,S)."""
        ...

    def patch_batch(self) -> Tensor:
        """Shop-photo patches x in X^(1), (B, 3, p, p)."""
        ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


@dataclass
class Nets:
    """The networks of one run."""

    gen: Generator
    phi: VGG19Features
    disc: PatchDiscriminator
    vgg_fingerprint: str


@dataclass
class Optimisers:
    """One Adam per player and phase (Eq. 7, 8, 9), each with its own learning rate."""

    gan_g: torch.optim.Optimizer
    gan_d: torch.optim.Optimizer
    global_: torch.optim.Optimizer
    patch: torch.optim.Optimizer

    def state_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k).state_dict() for k in ("gan_g", "gan_d", "global_", "patch")}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for k, v in state.items():
            getattr(self, k).load_state_dict(v)


@dataclass
class Progress:
    """Where a run is: phase index, step within it, and the loss history."""

    phase_index: int = 0
    step: int = 0
    history: list[dict[str, float]] = field(default_factory=list)


@dataclass(frozen=True, kw_only=True)
class StepInfo:
    """What a progress callback sees after each step (built by keyword: eight fields, five of
    them ints that a positional call could swap unnoticed).

    Attributes:
        phase: The kind of step.
        phase_index: Position of its phase in :func:`schedule_phases`.
        step: Steps done in this phase, this one included.
        phase_steps: Steps of this phase.
        done: Steps done in the whole run, this one included (over resumes too).
        total: Steps of the whole run.
        losses: This step's losses by name.
        seconds: Wall time of this step (data, forward, backward, update).
    """

    phase: PhaseName
    phase_index: int
    step: int
    phase_steps: int
    done: int
    total: int
    losses: dict[str, float]
    seconds: float


def build_nets(cfg: TrainConfig, vgg: VGGWeights, device: torch.device) -> Nets:
    """Algorithm 1 line 1: E_n, phi and varphi_c from VGG; D_e and varphi_s freshly initialised.

    D_e and varphi_s are initialised from ``schedule.seed`` with a private generator.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.schedule.seed)
        gen = Generator(vgg.state, cfg.model)
        disc = PatchDiscriminator(
            vgg_channels(cfg.loss.disc_layer), cfg.model.disc_channels, cfg.model.leaky_slope
        )
    phi = VGG19Features(vgg.state, cfg.loss.loss_layers()[-1])
    nets = Nets(gen, phi, disc, vgg.fingerprint)
    # channels_last on every device: cuDNN and oneDNN (CPU) both run convolutions faster in
    # it (CPU, demo shapes, one thread: benchmarks/bench_step_layout.py, docs/benchmarks.md).
    for net in (nets.gen, nets.phi, nets.disc):
        net.to(device).to(memory_format=torch.channels_last)
    return nets


def build_optimisers(nets: Nets, cfg: TrainConfig) -> Optimisers:
    """Adam for D_e in each phase and for varphi_s (paper §3.1: Adam, no weight decay)."""
    s, dec = cfg.schedule, nets.gen.decoder.parameters
    return Optimisers(
        gan_g=torch.optim.Adam(dec(), lr=s.lr_gan, betas=(0.5, 0.999)),
        gan_d=torch.optim.Adam(nets.disc.parameters(), lr=s.lr_gan, betas=(0.5, 0.999)),
        global_=torch.optim.Adam(dec(), lr=s.lr_global),
        patch=torch.optim.Adam(dec(), lr=s.lr_patch),
    )


def style_crops(style: Tensor, size: int, n: int, gen: torch.Generator) -> Tensor:
    """n random size x size crops of the style image y_s (1, 3, S, S), randomly flipped.

    These are the "real" samples of varphi_s's GAN training (Algorithm 1 line 2).
    """
    _, _, h, w = style.shape
    ys = torch.randint(0, h - size + 1, (n,), generator=gen).tolist()
    xs = torch.randint(0, w - size + 1, (n,), generator=gen).tolist()
    flips = torch.rand(n, generator=gen).lt(0.5).tolist()
    crops = [style[0, :, y : y + size, x : x + size] for y, x in zip(ys, xs, strict=True)]
    crops = [c.flip(-1) if f else c for c, f in zip(crops, flips, strict=True)]
    return torch.stack(crops)  # (n, 3, size, size)


def gan_step(
    nets: Nets,
    opts: Optimisers,
    x: Tensor,
    real: Tensor,
    cfg: TrainConfig,
    targets: losses.StyleTargets | None = None,
) -> dict[str, float]:
    """One GAN-initialisation step (Algorithm 1 line 2, Eq. 7 with z = E_n(x)).

    varphi_s learns to tell neural patches of the style image (real) from those of G(x);
    D_e learns to fool it while keeping x's content (Eq. 4), as in MGAN. E_n stays frozen.
    With ``loss.gan_swd_weight`` > 0 D_e's loss also has the patch SWD term (not the paper).
    """
    lc, device = cfg.loss, x.device
    use_swd = lc.gan_swd_weight > 0
    if use_swd and (targets is None or not targets.patches):
        raise ValueError("loss.gan_swd_weight > 0 needs the style's patch targets")
    # D step first, as in MGAN: varphi_s on real style patches and on G(x).detach(). G(x) and
    # the VGG features are computed without a graph (no_grad), since no gradient may reach
    # D_e in this half; varphi_s learns only from the current generator's samples.
    nets.disc.train().requires_grad_(True)
    with torch.no_grad(), autocast(device):
        fake = nets.gen(x)
        feats_real = nets.phi(real, (lc.disc_layer,))[lc.disc_layer]
        feats_fake = nets.phi(fake, (lc.disc_layer,))[lc.disc_layer]
    with autocast(device):
        d_loss = losses.discriminator_gan_loss(nets.disc(feats_real), nets.disc(feats_fake))
    opts.gan_d.zero_grad(set_to_none=True)
    d_loss.backward()
    opts.gan_d.step()
    # G step: D_e against a frozen varphi_s, plus patch content. Frozen so that the backward
    # of the G loss computes no gradient for varphi_s's weights: opt_gan_g steps D_e only,
    # and in a data-parallel run each such gradient would also cost an all-reduce
    # (trainer._sync_gradients). G(x) is recomputed with a graph: the D step's had none.
    nets.disc.requires_grad_(False)
    with autocast(device):
        extra = lc.patch_swd_layers if use_swd else ()
        disc_feat, feat_hat, target, feats = patch_features(nets, nets.gen(x), x, cfg, extra)
        adv = losses.generator_gan_loss(nets.disc(disc_feat))
        content = losses.patch_content_loss(feat_hat, target, lc.normalize)
        g_loss = lc.adversarial_weight * adv + lc.patch_content_weight * content
        parts = {"gan_d": float(d_loss.detach()), "gan_g": float(adv.detach())}
        if use_swd and targets is not None:
            swd = losses.patch_swd_loss(feats, targets, lc)
            g_loss = g_loss + lc.gan_swd_weight * swd
            parts["gan_swd"] = float(swd.detach())
    opts.gan_g.zero_grad(set_to_none=True)
    g_loss.backward()
    opts.gan_g.step()
    return {**parts, "patch_content": float(content.detach())}


def global_step(
    nets: Nets,
    opt: torch.optim.Optimizer,
    x_low: Tensor,
    y_c: Tensor,
    targets: losses.StyleTargets,
    cfg: TrainConfig,
) -> dict[str, float]:
    """One global back-propagation step (Algorithm 1 lines 6-7, Eq. 1-3, Eq. 8).

    x (72 px) is upsampled to y_c's size (288 px) before G, so y_hat = G(up(x)) is compared
    with the true high-resolution y_c (Eq. 2): G learns to add the detail.
    """
    lc, device = cfg.loss, x_low.device
    # varphi_s takes no part in L^(2); frozen anyway, so that it is in the same state however
    # the run got here (a run resumed into this phase builds a fresh, trainable varphi_s).
    nets.disc.requires_grad_(False)
    x_up = F.interpolate(x_low, size=y_c.shape[-2:], mode="bicubic", align_corners=False)
    with autocast(device):
        y_hat = nets.gen(x_up.clamp(0, 1))
        if lc.content_luminance:
            style_hat = nets.phi(y_hat, lc.style_layers)
            content_hat = nets.phi(losses.content_hat_view(y_hat, y_c, lc), lc.content_layers)
        else:  # one pass serves both
            style_hat = content_hat = nets.phi(y_hat, lc.style_layers + lc.content_layers)
        with torch.no_grad():
            content_c = nets.phi(losses.content_view(y_c, lc), lc.content_layers)
        loss, parts = losses.global_loss(style_hat, content_hat, content_c, targets, lc, y_hat)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return {"global": float(loss.detach()), **parts}


def patch_step(
    nets: Nets,
    opt: torch.optim.Optimizer,
    x: Tensor,
    cfg: TrainConfig,
    targets: losses.StyleTargets | None = None,
) -> dict[str, float]:
    """One patch back-propagation step (Algorithm 1 lines 11-12, Eq. 1, 4, 5, Eq. 9).

    y_c = x; varphi_s is frozen (eval mode: its BN statistics do not move either). With
    ``loss.patch_swd_weight`` > 0 the patch SWD style term against ``targets`` is added,
    with ``loss.patch_colour_weight`` > 0 the colour term.
    """
    lc, device = cfg.loss, x.device
    use_swd = lc.patch_swd_weight > 0
    if use_swd and (targets is None or not targets.patches):
        raise ValueError("loss.patch_swd_weight > 0 needs the style's patch targets")
    if lc.patch_colour_weight > 0 and (targets is None or targets.colours is None):
        raise ValueError("loss.patch_colour_weight > 0 needs the style's colours")
    nets.disc.eval().requires_grad_(False)
    with autocast(device):
        extra = lc.patch_swd_layers if use_swd else ()
        y_hat = nets.gen(x)
        disc_feat, feat_hat, target, feats = patch_features(nets, y_hat, x, cfg, extra)
        scores = nets.disc(disc_feat)
        swd = losses.patch_swd_loss(feats, targets, lc) if use_swd and targets else None
        colour = None
        if lc.patch_colour_weight > 0 and targets is not None:
            colour = losses.colour_loss(y_hat, targets, lc)
        loss, parts = losses.patch_loss(scores, feat_hat, target, lc, swd, colour)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return {"patch": float(loss.detach()), **parts}


def patch_features(
    nets: Nets, y_hat: Tensor, x: Tensor, cfg: TrainConfig, extra: tuple[str, ...] = ()
) -> tuple[Tensor, Tensor, Tensor, dict[str, Tensor]]:
    """What the patch losses read: varphi_s's input tap of y_hat, varphi_c of y_hat and of
    y_c = x (Eq. 4; the target without gradient), and y_hat's colour features at the
    ``extra`` taps. One VGG pass over y_hat's colours (two with luminance content).
    """
    lc = cfg.loss
    with torch.no_grad():
        target = nets.phi(losses.content_view(x, lc), (lc.patch_content_layer,))
    tap = lc.patch_content_layer
    colour_taps = (lc.disc_layer, *extra)
    if lc.content_luminance:
        feats = nets.phi(y_hat, colour_taps)
        content_hat = nets.phi(losses.content_hat_view(y_hat, x, lc), (tap,))[tap]
    else:
        feats = nets.phi(y_hat, (*colour_taps, tap))
        content_hat = feats[tap]
    return feats[lc.disc_layer], content_hat, target[tap], feats


def compute_style_targets(nets: Nets, style: Tensor, cfg: TrainConfig) -> losses.StyleTargets:
    """Style statistics of y_s at phi's style layers (and patch SWD taps), once per run."""
    lc = cfg.loss
    taps = lc.style_layers + (lc.patch_swd_layers if lc.uses_swd else ())
    with torch.no_grad(), autocast(style.device):
        feats = nets.phi(style, tuple(dict.fromkeys(taps)))
    return losses.style_targets(feats, cfg.loss, style)


@dataclass
class Run:
    """Everything one training run holds: the resume state of Algorithm 1."""

    cfg: TrainConfig
    nets: Nets
    opts: Optimisers
    progress: Progress
    crop_rng: torch.Generator
    style: Tensor
    targets: losses.StyleTargets

    @property
    def device(self) -> torch.device:
        return self.style.device


def new_run(cfg: TrainConfig, vgg: VGGWeights, style: Tensor, device: torch.device) -> Run:
    """A fresh run for one style image y_s (1, 3, S, S) in [0, 1].

    Raises:
        EncoderMismatchError: ``vgg`` is not the source ``cfg.model.vgg_weights`` names.
    """
    if vgg.spec != cfg.model.vgg_weights:
        raise EncoderMismatchError(
            f"config asks for vgg_weights {cfg.model.vgg_weights!r} but {vgg.spec!r} was loaded"
        )
    nets = build_nets(cfg, vgg, device)
    style = style.to(device)
    crop_rng = torch.Generator().manual_seed(cfg.schedule.seed)
    targets = compute_style_targets(nets, style, cfg)
    return Run(cfg, nets, build_optimisers(nets, cfg), Progress(), crop_rng, style, targets)


def _one_step(run: Run, phase: PhaseName, data: Batches) -> dict[str, float]:
    """One step of ``phase``: draws its batch, runs it, returns its losses."""
    cfg, nets, opts = run.cfg, run.nets, run.opts
    if phase == "gan":
        # Line 2 trains on the shop-photo patches X^(1): the inputs of the patch phase, where
        # varphi_s later judges G(x). Its "real" samples are crops of y_s drawn from the
        # run's own generator (crop_rng, saved in checkpoints), so a resumed run draws the
        # same crops.
        x = data.patch_batch().to(run.device)
        real = style_crops(run.style, cfg.data.patch_size, x.shape[0], run.crop_rng)
        return gan_step(nets, opts, x, real, cfg, run.targets)
    # Each phase steps its own optimiser (eta^(2) for Eq. 8, eta^(1) for Eq. 9) on the same
    # theta; their Adam moments carry over from one alternation t to the next.
    if phase == "global":
        x_low, y_c = (t.to(run.device) for t in data.global_batch())
        return global_step(nets, opts.global_, x_low, y_c, run.targets, cfg)
    return patch_step(nets, opts.patch, data.patch_batch().to(run.device), cfg, run.targets)


def train(
    run: Run,
    data: Batches,
    on_step: Callable[[StepInfo], None] | None = None,
    on_checkpoint: Callable[[Run], None] | None = None,
    max_steps: int | None = None,
) -> Progress:
    """Runs (or resumes) Algorithm 1 from ``run.progress`` to the end of the schedule.

    Args:
        run: networks, optimisers and progress; mutated in place.
        data: X^(1) patches and X^(2) pairs.
        on_step: called after every step (progress bars, metrics).
        on_checkpoint: called every ``schedule.checkpoint_every`` steps and at the end.
        max_steps: stop after this many steps of this call (tests, time-boxed jobs).
    """
    # Algorithm 1 flattened into one list of phases: line 2 (GAN initialisation), then T times
    # (lines 3-15) tau^(2) global steps (lines 5-8) and tau^(1) patch steps (lines 10-13).
    # One (phase index, step) pair then says where a run is, so a resumed run re-enters the
    # very phase and step it stopped in, instead of restarting an alternation t.
    phases = schedule_phases(run.cfg)
    total = sum(p.steps for p in phases)
    every = run.cfg.schedule.checkpoint_every
    # Only D_e (theta) learns and is in training mode (BN on batch statistics); E_n and phi
    # keep line 1's VGG weights in eval mode whatever is asked of them (models.VGG19Features).
    run.nets.gen.decoder.train()
    taken = 0
    for index in range(run.progress.phase_index, len(phases)):
        phase = phases[index]
        while run.progress.step < phase.steps:
            # Checked before drawing a batch, so a time-boxed call stops between two steps
            # and a later call continues exactly there.
            if max_steps is not None and taken >= max_steps:
                return run.progress
            t0 = time.perf_counter()
            step_losses = _one_step(run, phase.name, data)
            # Count the step before anyone looks: on_step and a checkpoint taken now both see
            # it done, so a run resumed from that checkpoint starts with the next step and
            # never repeats or skips one. The phase index goes into the history as a float
            # so that the history stays plain floats (torch.load(weights_only=True)).
            run.progress.step += 1
            run.progress.history.append({"phase": float(index), **step_losses})
            taken += 1
            done = len(run.progress.history)  # over the whole run, resumes included
            # Side work first (progress, metrics, samples: none of it changes the run), then
            # the checkpoint, the slow part, which holds the state after this step.
            if on_step is not None:
                on_step(
                    StepInfo(
                        phase=phase.name,
                        phase_index=index,
                        step=run.progress.step,
                        phase_steps=phase.steps,
                        done=done,
                        total=total,
                        losses=step_losses,
                        seconds=time.perf_counter() - t0,
                    )
                )
            # Every `every` steps of the run, not of the phase: the cadence does not restart
            # at phase boundaries or after a resume.
            if on_checkpoint is not None and every and done % every == 0:
                on_checkpoint(run)
        # End of a phase: theta carries over as is to the next one (line 14, theta_{t+1} =
        # theta_t); only the position moves on.
        run.progress.phase_index, run.progress.step = index + 1, 0
    recalibrate_batchnorm(run.nets.gen, data, run.cfg.schedule.bn_recalibration_batches)
    # The final state is always saved, whatever the cadence: it is what gets published.
    if on_checkpoint is not None:
        on_checkpoint(run)
    return run.progress


def recalibrate_batchnorm(gen: Generator, data: Batches, batches: int) -> int:
    """Recomputes D_e's BatchNorm running statistics on ``batches`` batches of whole sharp
    images y_c (the global batches' targets); returns the number of BN layers reset.

    Why: in eval mode, as restyling and serving run G, BN uses its running statistics, and
    those follow the last batches D_e trained on: 64 px shop-photo patches after a patch
    phase, bicubically upsampled street photos after a global one; neither is the sharp
    whole photo G then sees. Measured on real product photos (docs/experiments.md): most of
    the structure lost after a patch phase came back. No-op for ``batches`` = 0.
    """
    if batches <= 0:
        return 0
    return recalibrate_batchnorm_on(gen, (data.global_batch()[1] for _ in range(batches)))


def recalibrate_batchnorm_on(gen: Generator, batches: Iterable[Tensor]) -> int:
    """Recomputes D_e's BatchNorm running statistics over ``batches`` of images (B, 3, H, W)
    in [0, 1]; returns the number of BN layers reset (0 for a decoder without BN, e.g.
    ``decoder_norm: instance``, whose batches are then not read).

    The weights do not change; the statistics become a cumulative average
    (``momentum=None``) over all the batches, each weighted equally.
    """
    layers = [m for m in gen.decoder.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    if not layers:
        return 0
    momenta = [m.momentum for m in layers]
    was_training = gen.decoder.training
    device = next(gen.decoder.parameters()).device
    for m in layers:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over all the batches below
    gen.decoder.train()
    try:
        with torch.no_grad():
            for batch in batches:
                gen(batch.to(device))
    finally:
        for m, momentum in zip(layers, momenta, strict=True):
            m.momentum = momentum
        gen.decoder.train(was_training)
    return len(layers)


def checkpoint_state(run: Run, data: Batches | None = None) -> dict[str, Any]:
    """The full resume state: networks, optimisers, phase, step, history, RNGs, data order.

    Only tensors and plain Python values, so ``torch.load(weights_only=True)`` reads it.
    """
    return {
        **generator_state(run),
        "disc": run.nets.disc.state_dict(),
        "optimisers": run.opts.state_dict(),
        "phase_index": run.progress.phase_index,
        "step": run.progress.step,
        "history": [dict(h) for h in run.progress.history],
        # Both random generators and the data position: with them a resumed run draws the
        # same style crops and reads the same batches as the run would have without the stop,
        # which makes resuming exact rather than merely close.
        "crop_rng": run.crop_rng.get_state(),
        "torch_rng": torch.get_rng_state(),
        "data": data.state_dict() if data is not None else {},
    }


def check_encoder(state: dict[str, Any], vgg: VGGWeights) -> None:
    """Refuses a checkpoint trained against other VGG weights than the loaded encoder's.

    Raises:
        EncoderMismatchError: naming both weight sources.
    """
    if state["vgg_fingerprint"] != vgg.fingerprint:
        raise EncoderMismatchError(
            f"this generator was trained with VGG weights {state['vgg_weights']!r} "
            f"(fingerprint {state['vgg_fingerprint']}), but the encoder loaded here is "
            f"{vgg.spec!r} (fingerprint {vgg.fingerprint}); load it with "
            f"vgg_weights={state['vgg_weights']!r}"
        )


def restore_run(
    state: dict[str, Any],
    vgg: VGGWeights,
    style: Tensor,
    device: torch.device,
    data: Batches | None = None,
) -> Run:
    """Rebuilds a :class:`Run` from :func:`checkpoint_state`, ready to continue exactly."""
    check_encoder(state, vgg)
    run = new_run(from_dict(TrainConfig, state["config"]), vgg, style, device)
    run.nets.gen.decoder.load_state_dict(state["decoder"])
    run.nets.disc.load_state_dict(state["disc"])
    run.opts.load_state_dict(state["optimisers"])
    run.progress = Progress(state["phase_index"], state["step"], list(state["history"]))
    run.crop_rng.set_state(state["crop_rng"])
    torch.set_rng_state(state["torch_rng"])
    if data is not None:
        data.load_state_dict(state["data"])
    return run


def generator_state(run: Run) -> dict[str, Any]:
    """What inference needs: theta (D_e's weights), the config and the encoder's identity."""
    return {
        "format": CHECKPOINT_FORMAT,
        "config": to_dict(run.cfg),
        "vgg_weights": run.cfg.model.vgg_weights,
        "vgg_fingerprint": run.nets.vgg_fingerprint,
        "decoder": run.nets.gen.decoder.state_dict(),
    }


def load_generator(state: dict[str, Any], vgg: VGGWeights, device: torch.device) -> Generator:
    """A ready-to-run generator (eval mode) from :func:`generator_state` or a checkpoint.

    Weights are laid out channels_last on every device: oneDNN (CPU) and cuDNN (GPU) both run
    3x3 convolutions faster in NHWC (measured on CPU: 2.0 vs 1.7 images/s at 288 px).

    Raises:
        EncoderMismatchError: ``vgg`` is not the encoder the decoder was trained with.
    """
    cfg = from_dict(TrainConfig, state["config"])
    check_encoder(state, vgg)
    gen = Generator(vgg.state, cfg.model)
    gen.decoder.load_state_dict(state["decoder"])
    return gen.to(device).to(memory_format=torch.channels_last).eval()
