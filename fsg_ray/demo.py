"""``fsg demo``: train one style on synthetic data in minutes on a laptop CPU.

Writes under ``--out``: ``data/`` (the synthetic dataset), ``config.yaml``,
``checkpoint.pt`` (full resume state), ``generator.pt`` (what inference needs),
``samples/step_*.png`` (held-out garments during training), ``grid.png`` (before/after) and
``losses.png``. Rerunning with the same ``--out`` resumes from the checkpoint.
"""

from __future__ import annotations

import dataclasses
import io
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import yaml
from PIL import Image
from torch import Tensor
from tqdm import tqdm

from fsg_ray import algorithm as A
from fsg_ray import config as C
from fsg_ray import images, local_data, synthetic, transforms, visualize
from fsg_ray.models import Generator, VGGWeights, load_vgg
from fsg_ray.storage import atomic_write_bytes

log = logging.getLogger(__name__)
DEMO_IMAGE_SIZE = 160


def demo_config(quick: bool = False, seed: int = 0) -> C.TrainConfig:
    """The demo's profile: random VGG weights, small images, a short Algorithm 1 schedule.

    Sizes are scaled down from the paper's (72->288 px global, 128 px patches, 256 px style)
    so that the whole run fits in minutes on 2 CPU cores, with the style image at the global
    output's scale (96 px) so that its pattern has the same size in y_s and y_hat. Losses are
    the random-VGG profile. tau(1) = 0: a discriminator trained for only 150 GAN steps is
    easy to exploit, and patch steps against it turned the garments into one flat colour
    (measured; docs/paper_map.md, "Deviations"). ``quick`` is a seconds-long smoke schedule
    that runs every phase, for tests.
    """
    gan, glob, patch = (2, 2, 2) if quick else (150, 400, 0)
    loss = dataclasses.replace(
        C.LossConfig.random_vgg(), content_weight=2.0, adversarial_weight=0.5
    )
    data = C.DataConfig(
        global_input_size=24,
        global_target_size=96,
        patch_size=64,
        patch_stride=16,
        style_size=96,
        patch_mask_fraction=0.5,
    )
    schedule = C.ScheduleConfig(
        gan_init_steps=gan,
        global_steps=glob,
        patch_steps=patch,
        lr_gan=2e-3,
        lr_global=2e-3,
        lr_patch=2e-3,
        checkpoint_every=100,
        sample_every=100,
        seed=seed,
    )
    return C.TrainConfig(C.ModelConfig(vgg_weights="random:0"), loss, data, schedule)


@dataclass(frozen=True)
class DemoData:
    """The decoded synthetic dataset."""

    style: Tensor
    batches: local_data.InMemoryBatches
    heldout: list[Tensor]
    heldout_masks: list[Tensor]


def prepare_data(root: Path, style_name: str, cfg: C.TrainConfig) -> DemoData:
    """Writes the synthetic dataset (once) and decodes it for training."""
    layout = synthetic.SyntheticLayout()
    if not (root / layout.styles / f"{style_name}.png").exists():
        log.info("writing the synthetic dataset to %s", root)
        synthetic.write_dataset(
            root,
            seed=cfg.schedule.seed,
            n_full=48,
            n_shop=12,
            n_heldout=4,
            full_size=DEMO_IMAGE_SIZE,
            shop_size=DEMO_IMAGE_SIZE,
            style_size=cfg.data.style_size,
        )
    style = images.to_tensor(images.load_image(root / layout.styles / f"{style_name}.png"))
    style = transforms.resize(style, cfg.data.style_size)[None]  # (1, 3, S, S)
    full = local_data.load_folder(root / layout.full, int(1.5 * cfg.data.global_target_size))
    patches = local_data.shop_patches(root / layout.shop, root / layout.shop_masks, cfg.data)
    batches = local_data.InMemoryBatches(
        full, patches, cfg.data, cfg.schedule.batch_size, cfg.schedule.seed
    )
    heldout = local_data.load_folder(root / layout.heldout, DEMO_IMAGE_SIZE)
    masks = [
        images.mask_to_tensor(images.load_image(p))
        for p in local_data.list_images(root / layout.heldout_masks)
    ]
    return DemoData(style, batches, heldout, masks)


def stylise(gen: Generator, inputs: list[Tensor]) -> list[Tensor]:
    """Runs the generator on each image (any size), in eval mode, without gradients."""
    was_training = gen.training
    gen.eval()
    with torch.inference_mode():
        out = [gen(x[None])[0] for x in inputs]
    gen.train(was_training)
    return out


def composite(styled: Tensor, original: Tensor, mask: Tensor) -> Tensor:
    """Styled pixels inside the garment mask (H, W), the original's outside it."""
    return styled * mask + original * (1 - mask)


def before_after(data: DemoData, gen: Generator, style_name: str) -> Image.Image:
    """Grid: style image | input garment | generated | generated inside the garment mask."""
    outs = stylise(gen, data.heldout)
    masked = [
        composite(o, x, m) for o, x, m in zip(outs, data.heldout, data.heldout_masks, strict=True)
    ]
    columns = {
        f"style: {style_name}": [images.to_image(data.style[0])],
        "input": [images.to_image(x) for x in data.heldout],
        "generated G(x)": [images.to_image(o) for o in outs],
        "inside garment mask": [images.to_image(o) for o in masked],
    }
    return visualize.grid(columns, cell=DEMO_IMAGE_SIZE)


class ProgressBar:
    """A tqdm bar over all steps: phase, step/total of the phase, losses, it/s and ETA."""

    def __init__(self, total: int, initial: int) -> None:
        self.bar = tqdm(total=total, initial=initial, unit="step", dynamic_ncols=True)

    def __call__(self, info: A.StepInfo) -> None:
        self.bar.set_description(f"{info.phase:>6} {info.step}/{info.phase_steps}")
        self.bar.set_postfix({k: f"{v:.3g}" for k, v in info.losses.items()}, refresh=False)
        self.bar.update(1)

    def close(self) -> None:
        self.bar.close()


def run_demo(out: Path, style_name: str = "stripes", quick: bool = False, seed: int = 0) -> dict:
    """Trains the demo style and writes every artefact; returns their paths and timings.

    Raises:
        ValueError: unknown style name (the message lists the valid ones).
    """
    if style_name not in synthetic.STYLE_NAMES:
        raise ValueError(f"unknown style {style_name!r}; choose from {synthetic.STYLE_NAMES}")
    t0 = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    cfg = demo_config(quick, seed)
    data = prepare_data(out / "data", style_name, cfg)
    vgg = load_vgg(cfg.model.vgg_weights)
    run = _resume_or_start(out, cfg, vgg, data)
    phases = [p.name for p in A.schedule_phases(cfg)]
    bar = ProgressBar(sum(p.steps for p in A.schedule_phases(cfg)), len(run.progress.history))

    def on_step(info: A.StepInfo) -> None:
        bar(info)
        every = cfg.schedule.sample_every
        if every and info.done % every == 0:
            visualize.save_png(
                before_after(data, run.nets.gen, style_name),
                out / "samples" / f"step_{info.done:06d}.png",
            )

    def on_checkpoint(r: A.Run) -> None:
        _save_torch(A.checkpoint_state(r, data.batches), out / "checkpoint.pt")

    A.train(run, data.batches, on_step=on_step, on_checkpoint=on_checkpoint)
    bar.close()
    _save_torch(A.generator_state(run), out / "generator.pt")
    visualize.save_png(before_after(data, run.nets.gen, style_name), out / "grid.png")
    visualize.save_png(visualize.loss_curves(run.progress.history, phases), out / "losses.png")
    atomic_write_bytes(out / "config.yaml", yaml.safe_dump(C.to_dict(cfg)).encode())
    return {
        "out": str(out),
        "style": style_name,
        "steps": len(run.progress.history),
        "seconds": round(time.perf_counter() - t0, 1),
    }


def _resume_or_start(out: Path, cfg: C.TrainConfig, vgg: VGGWeights, data: DemoData) -> A.Run:
    path = out / "checkpoint.pt"
    if path.exists():
        state = torch.load(path, map_location="cpu", weights_only=True)
        if state["config"] == C.to_dict(cfg):
            log.info("resuming from %s (step %d)", path, len(state["history"]))
            return A.restore_run(state, vgg, data.style, torch.device("cpu"), data.batches)
        raise ValueError(
            f"{path} holds a run with another config; choose another --out or remove it"
        )
    return A.new_run(cfg, vgg, data.style, torch.device("cpu"))


def _save_torch(obj: dict, path: Path) -> None:
    buf = io.BytesIO()
    torch.save(obj, buf)
    atomic_write_bytes(path, buf.getvalue())
