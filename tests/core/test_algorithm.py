"""Algorithm 1 on tiny shapes: gradients, schedule, loss going down, exact resume."""

from __future__ import annotations

import io

import pytest
import torch

from fsg_ray import config
from fsg_ray.core import algorithm
from fsg_ray.core.models import VGGWeights, load_vgg
from fsg_ray.io.folders import InMemoryBatches


def make_data(cfg: config.TrainConfig, sampler_seed: int = 0) -> InMemoryBatches:
    g = torch.Generator().manual_seed(0)
    full = [torch.rand(3, 40, 48, generator=g) for _ in range(3)]
    patches = torch.rand(6, 3, cfg.data.patch_size, cfg.data.patch_size, generator=g)
    return InMemoryBatches(full, patches, cfg.data, cfg.schedule.batch_size, sampler_seed)


def make_style(cfg: config.TrainConfig) -> torch.Tensor:
    s = cfg.data.style_size
    xs = torch.arange(s).float()
    stripes = ((xs[None, :] + xs[:, None]) // 6 % 2).expand(3, s, s).clone()
    stripes[1] *= 0.3
    return stripes[None]


@pytest.fixture
def run(tiny_cfg: config.TrainConfig, vgg: VGGWeights) -> algorithm.Run:
    return algorithm.new_run(tiny_cfg, vgg, make_style(tiny_cfg), torch.device("cpu"))


def grads(params) -> list[torch.Tensor | None]:
    return [p.grad for p in params]


def test_schedule_of_each_mode(tiny_cfg: config.TrainConfig) -> None:
    names = lambda cfg: [(p.name, p.steps) for p in algorithm.schedule_phases(cfg)]  # noqa: E731
    full = config.override(
        tiny_cfg, schedule={"alternations": 2, "global_steps": 3, "patch_steps": 4}
    )
    assert names(full) == [("gan", 2), ("global", 3), ("patch", 4), ("global", 3), ("patch", 4)]
    g = config.override(tiny_cfg, schedule={"mode": "global_only", "global_only_steps": 7})
    assert names(g) == [("global", 7)]
    p = config.override(tiny_cfg, schedule={"mode": "patch_only"})
    assert names(p) == [("gan", 2), ("patch", 2)]
    assert names(config.TrainConfig()) == [("gan", 3000), ("global", 3000), ("patch", 3000)]


def test_gan_step_trains_decoder_and_discriminator_not_encoder(
    run: algorithm.Run, tiny_cfg
) -> None:
    data = make_data(tiny_cfg)
    x = data.patch_batch()
    real = algorithm.style_crops(run.style, tiny_cfg.data.patch_size, len(x), run.crop_rng)
    out = algorithm.gan_step(run.nets, run.opts, x, real, tiny_cfg)
    assert set(out) == {"gan_d", "gan_g", "patch_content"}
    assert all(g is None for g in grads(run.nets.gen.encoder.parameters()))
    assert all(g is None for g in grads(run.nets.phi.parameters()))
    assert all(
        g is not None and g.abs().sum() > 0 for g in grads(run.nets.gen.decoder.parameters())
    )
    assert all(g is not None and g.abs().sum() > 0 for g in grads(run.nets.disc.parameters()))


@pytest.mark.parametrize("phase", ["global", "patch"])
def test_alternation_leaves_discriminator_untouched(
    run: algorithm.Run, tiny_cfg, phase: str
) -> None:
    data = make_data(tiny_cfg)
    disc_before = {k: v.clone() for k, v in run.nets.disc.state_dict().items()}
    if phase == "global":
        x_low, y_c = data.global_batch()
        algorithm.global_step(run.nets, run.opts.global_, x_low, y_c, run.targets, tiny_cfg)
    else:
        algorithm.patch_step(run.nets, run.opts.patch, data.patch_batch(), tiny_cfg)
    assert all(g is None for g in grads(run.nets.disc.parameters()))
    assert all(g is None for g in grads(run.nets.gen.encoder.parameters()))
    assert all(
        g is not None and g.abs().sum() > 0 for g in grads(run.nets.gen.decoder.parameters())
    )
    for k, v in run.nets.disc.state_dict().items():  # BN running stats included
        assert torch.equal(v, disc_before[k]), k


def test_global_step_upsamples_x_to_the_target_size(run: algorithm.Run, tiny_cfg) -> None:
    x_low, y_c = make_data(tiny_cfg).global_batch()
    assert x_low.shape[-1] == 16 and y_c.shape[-1] == 32
    seen = []
    hook = run.nets.gen.register_forward_hook(lambda m, i, o: seen.append(o.shape))
    algorithm.global_step(run.nets, run.opts.global_, x_low, y_c, run.targets, tiny_cfg)
    hook.remove()
    assert seen == [torch.Size([2, 3, 32, 32])]


def test_a_short_run_lowers_the_global_loss_on_a_fixed_batch(run: algorithm.Run, tiny_cfg) -> None:
    x_low, y_c = make_data(tiny_cfg).global_batch()
    first = [
        algorithm.global_step(run.nets, run.opts.global_, x_low, y_c, run.targets, tiny_cfg)[
            "global"
        ]
        for _ in range(30)
    ]
    assert first[-1] < 0.7 * first[0], first


def test_train_runs_every_phase_and_reports_progress(run: algorithm.Run, tiny_cfg) -> None:
    infos: list[algorithm.StepInfo] = []
    ckpts: list[int] = []
    algorithm.train(
        run,
        make_data(tiny_cfg),
        on_step=infos.append,
        on_checkpoint=lambda r: ckpts.append(len(r.progress.history)),
    )
    assert [i.phase for i in infos] == ["gan"] * 2 + ["global"] * 2 + ["patch"] * 2
    assert [i.done for i in infos] == list(range(1, 7)) and infos[-1].total == 6
    assert ckpts == [6]  # checkpoint_every=0: only at the end
    assert run.progress.phase_index == 3 and len(run.progress.history) == 6


def test_checkpoint_round_trip_gives_the_same_next_losses(tiny_cfg, vgg: VGGWeights) -> None:
    """Stop mid-phase, save, load into fresh objects: the next steps match bit for bit."""
    cfg = config.override(tiny_cfg, schedule={"global_steps": 3})
    style = make_style(cfg)

    def fresh() -> tuple[algorithm.Run, InMemoryBatches]:
        return algorithm.new_run(cfg, vgg, style, torch.device("cpu")), make_data(cfg)

    torch.manual_seed(123)
    straight, data = fresh()
    algorithm.train(straight, data)
    expected = straight.progress.history

    torch.manual_seed(123)
    first, data = fresh()
    algorithm.train(first, data, max_steps=3)  # stops inside the global phase
    assert (first.progress.phase_index, first.progress.step) == (1, 1)
    buf = io.BytesIO()
    torch.save(algorithm.checkpoint_state(first, data), buf)
    buf.seek(0)
    state = torch.load(buf, weights_only=True)

    torch.manual_seed(999)  # the restored RNG state must win over whatever came before
    resumed_data = make_data(cfg, sampler_seed=5)
    resumed = algorithm.restore_run(state, vgg, style, torch.device("cpu"), resumed_data)
    algorithm.train(resumed, resumed_data)
    assert resumed.progress.history == expected


def test_mismatched_vgg_weights_are_refused(run: algorithm.Run, tiny_cfg) -> None:
    other = load_vgg("random:1")
    with pytest.raises(
        algorithm.EncoderMismatchError, match=r"trained with VGG weights 'random:0'.*'random:1'"
    ):
        algorithm.load_generator(algorithm.generator_state(run), other, torch.device("cpu"))
    with pytest.raises(algorithm.EncoderMismatchError, match="random:1"):
        algorithm.restore_run(
            algorithm.checkpoint_state(run), other, run.style, torch.device("cpu")
        )
    with pytest.raises(algorithm.EncoderMismatchError, match="config asks for vgg_weights"):
        algorithm.new_run(tiny_cfg, other, run.style, torch.device("cpu"))


def test_nets_are_channels_last_on_the_cpu_too(run: algorithm.Run) -> None:
    convs = [
        m.weight
        for net in (run.nets.gen, run.nets.phi, run.nets.disc)
        for m in net.modules()
        if isinstance(m, torch.nn.Conv2d)
    ]
    assert convs and all(w.is_contiguous(memory_format=torch.channels_last) for w in convs)


def test_generator_state_loads_for_inference(run: algorithm.Run, vgg: VGGWeights) -> None:
    buf = io.BytesIO()
    torch.save(algorithm.generator_state(run), buf)
    buf.seek(0)
    gen = algorithm.load_generator(torch.load(buf, weights_only=True), vgg, torch.device("cpu"))
    run.nets.gen.eval()
    x = torch.rand(1, 3, 21, 30)
    with torch.no_grad():
        # channels_last changes the summation order, not the function
        assert torch.allclose(gen(x), run.nets.gen(x), atol=1e-5)
    assert not gen.training


def test_patch_step_with_swd_trains_the_decoder_on_the_style_patches(
    tiny_cfg, vgg: VGGWeights
) -> None:
    cfg = config.override(
        tiny_cfg, loss={"patch_swd_weight": 1.0, "patch_swd_layers": ["relu1_1", "relu2_1"]}
    )
    run = algorithm.new_run(cfg, vgg, make_style(cfg), torch.device("cpu"))
    assert set(run.targets.patches) == {"relu1_1", "relu2_1"}
    out = algorithm.patch_step(
        run.nets, run.opts.patch, make_data(cfg).patch_batch(), cfg, run.targets
    )
    assert out["patch_swd"] > 0
    assert all(g is not None for g in grads(run.nets.gen.decoder.parameters()))
    assert all(g is None for g in grads(run.nets.disc.parameters()))
    with pytest.raises(ValueError, match="patch_swd_weight > 0 needs the style's patch targets"):
        algorithm.patch_step(run.nets, run.opts.patch, make_data(cfg).patch_batch(), cfg)


def test_recalibrate_batchnorm_recomputes_statistics_on_whole_images(
    run: algorithm.Run, tiny_cfg
) -> None:
    gen, data = run.nets.gen, make_data(tiny_cfg)
    bns = [m for m in gen.decoder.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    for m in bns:  # statistics of some other phase
        m.running_mean.fill_(5.0)
        m.running_var.fill_(9.0)
    state = gen.decoder.state_dict()
    weights = {k: v.clone() for k, v in state.items() if "running" not in k and "tracked" not in k}
    gen.decoder.eval()
    assert algorithm.recalibrate_batchnorm(gen, data, 0) == 0
    assert bns[0].running_mean.eq(5.0).all()
    assert algorithm.recalibrate_batchnorm(gen, data, 3) == len(bns) > 0
    # the cumulative average of 3 batches' statistics, the weights untouched, eval mode kept
    assert all(int(m.num_batches_tracked) == 3 and m.momentum == 0.1 for m in bns)
    assert not bns[0].running_mean.eq(5.0).any() and not gen.decoder.training
    state = gen.decoder.state_dict()
    assert all(torch.equal(state[k], v) for k, v in weights.items())
    # the first layer's statistics are those of D_e's input on the 3 batches' y_c
    replay = make_data(tiny_cfg)
    with torch.no_grad():
        z = torch.cat([gen.encode(replay.global_batch()[1]) for _ in range(3)])
        h = gen.decoder.net[0](z)
    assert torch.allclose(bns[0].running_mean, h.mean(dim=(0, 2, 3)), atol=1e-4)


def test_recalibrate_batchnorm_on_averages_batches_of_any_size(run: algorithm.Run) -> None:
    gen = run.nets.gen
    bns = [m for m in gen.decoder.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    torch.manual_seed(0)
    photos = [torch.rand(2, 3, 40, 40), torch.rand(1, 3, 48, 32)]  # e.g. a last odd photo
    gen.decoder.eval()
    assert algorithm.recalibrate_batchnorm_on(gen, iter(photos)) == len(bns)
    assert all(int(m.num_batches_tracked) == 2 and m.momentum == 0.1 for m in bns)
    assert not gen.decoder.training
    # each batch weighs the same (cumulative average of the batch means), whatever its size
    with torch.no_grad():
        means = [gen.decoder.net[0](gen.encode(p)).mean(dim=(0, 2, 3)) for p in photos]
    assert torch.allclose(bns[0].running_mean, (means[0] + means[1]) / 2, atol=1e-4)


def test_recalibrate_batchnorm_on_restores_the_mode_when_a_batch_fails(
    run: algorithm.Run,
) -> None:
    gen = run.nets.gen
    bns = [m for m in gen.decoder.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    gen.decoder.eval()

    def batches():
        yield torch.rand(1, 3, 32, 32)
        raise OSError("shop photo unreadable")

    with pytest.raises(OSError, match="unreadable"):
        algorithm.recalibrate_batchnorm_on(gen, batches())
    assert not gen.decoder.training and all(m.momentum == 0.1 for m in bns)


def test_recalibrate_batchnorm_on_a_decoder_without_batchnorm_reads_nothing(
    tiny_cfg, vgg: VGGWeights
) -> None:
    cfg = config.override(tiny_cfg, model={"decoder_norm": "instance"})
    run = algorithm.new_run(cfg, vgg, make_style(cfg), torch.device("cpu"))

    def unread():
        raise AssertionError("batches read for a decoder without BatchNorm")
        yield

    assert algorithm.recalibrate_batchnorm_on(run.nets.gen, unread()) == 0


def test_train_recalibrates_batchnorm_after_the_last_phase(tiny_cfg, vgg: VGGWeights) -> None:
    cfg = config.override(tiny_cfg, schedule={"bn_recalibration_batches": 2})
    run = algorithm.new_run(cfg, vgg, make_style(cfg), torch.device("cpu"))
    bn = next(m for m in run.nets.gen.decoder.modules() if isinstance(m, torch.nn.BatchNorm2d))
    stopped = algorithm.train(run, make_data(cfg), max_steps=3)
    assert int(bn.num_batches_tracked) == 5  # mid-run: 2 GAN steps (2 passes each), 1 global
    algorithm.train(run, make_data(cfg))
    assert stopped.phase_index == 3 and int(bn.num_batches_tracked) == 2


def test_gan_step_with_swd_adds_the_term_to_the_generator_only(tiny_cfg, vgg: VGGWeights) -> None:
    cfg = config.override(tiny_cfg, loss={"gan_swd_weight": 2.0, "patch_swd_layers": ["relu1_1"]})
    run = algorithm.new_run(cfg, vgg, make_style(cfg), torch.device("cpu"))
    assert set(run.targets.patches) == {"relu1_1"}  # needed although patch_swd_weight is 0
    x = make_data(cfg).patch_batch()
    real = algorithm.style_crops(run.style, cfg.data.patch_size, len(x), run.crop_rng)
    out = algorithm.gan_step(run.nets, run.opts, x, real, cfg, run.targets)
    assert set(out) == {"gan_d", "gan_g", "gan_swd", "patch_content"} and out["gan_swd"] > 0
    with pytest.raises(ValueError, match="gan_swd_weight > 0 needs the style's patch targets"):
        algorithm.gan_step(run.nets, run.opts, x, real, cfg)


def test_colour_terms_reach_the_global_and_the_patch_steps(tiny_cfg, vgg: VGGWeights) -> None:
    cfg = config.override(tiny_cfg, loss={"colour_weight": 1.0, "patch_colour_weight": 0.5})
    run = algorithm.new_run(cfg, vgg, make_style(cfg), torch.device("cpu"))
    assert run.targets.colours is not None and torch.equal(run.targets.colours, run.style)
    data = make_data(cfg)
    x_low, y_c = data.global_batch()
    out = algorithm.global_step(run.nets, run.opts.global_, x_low, y_c, run.targets, cfg)
    assert out["global_colour"] > 0
    out = algorithm.patch_step(run.nets, run.opts.patch, data.patch_batch(), cfg, run.targets)
    assert out["patch_colour"] > 0
    assert all(g is not None for g in grads(run.nets.gen.decoder.parameters()))
    with pytest.raises(ValueError, match="patch_colour_weight > 0 needs the style's colours"):
        algorithm.patch_step(run.nets, run.opts.patch, data.patch_batch(), cfg)
