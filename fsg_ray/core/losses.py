"""Losses of the discriminator D (paper §2.3) and the GAN objective (§2.4, Eq. 7).

Code (paper):
    gram                      Gram_k^phi (Eq. 3), normalised by C_k H_k W_k as in Johnson et al.
    content_loss              l_content^(2), Eq. 2 (global content, phi_j)
    style_loss                l_style^(2), Eq. 3 (global style, phi_k)
    patch_content_loss        l_content^(1), Eq. 4 (patch content, varphi_c)
    patch_style_loss          l_style^(1), Eq. 5 (hinge on varphi_s's neural-patch scores s_i)
    sliced_wasserstein_loss   a non-adversarial patch style term (not in the paper; off there)
    colour_loss               the same distance on pixel colours, RGB or chroma (not in the paper)
    global_loss               L^(2) = lambda_2 l_style^(2) + lambda_3 l_content^(2) (Eq. 1)
    patch_loss                L^(1) = l_style^(1) + lambda_1 l_content^(1) (Eq. 1)
    discriminator_gan_loss    -V(D, G) of Eq. 7 for varphi_s (real: style patches)
    generator_gan_loss        the generator's side of Eq. 7 (non-saturating form)

Two normalisations (``LossConfig.normalize``): ``paper`` divides squared distances by the
feature size as Eq. 2-4 do; ``relative`` divides each by the squared norm of its target
(scale free), which random VGG weights need (docs/paper_map.md, "Deviations").
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor

from fsg_ray.config import LossConfig


def luminance(img: Tensor) -> Tensor:
    """Rec. 601 luma of images (B, 3, H, W), repeated on 3 channels for the VGG input."""
    weights = torch.tensor([0.299, 0.587, 0.114], device=img.device, dtype=img.dtype)
    y = (img * weights.view(1, 3, 1, 1)).sum(dim=1, keepdim=True)  # (B, 1, H, W)
    return y.expand(-1, 3, -1, -1)


def luminance_like(img: Tensor, target: Tensor, match: str, min_std: float = 0.01) -> Tensor:
    """:func:`luminance` of ``img`` with its per-image mean (``match="mean"``), or mean and
    standard deviation (``"mean_std"``), set to those of ``target``'s luma (both (B, 3, H,
    W)): what is left of img's luma is its pattern of edges and shading, at the target's
    brightness (and contrast).

    ``min_std`` bounds the scale-up of a nearly flat image (luma in [0, 1]).
    """
    y, ref = luminance(img)[:, :1], luminance(target)[:, :1].detach()  # (B, 1, H, W)
    out = y - y.mean(dim=(2, 3), keepdim=True)
    if match == "mean_std":
        out = out / y.std(dim=(2, 3), keepdim=True).clamp_min(min_std)
        out = out * ref.std(dim=(2, 3), keepdim=True)
    elif match != "mean":
        raise ValueError(f"unknown luma match {match!r}")
    return (out + ref.mean(dim=(2, 3), keepdim=True)).expand(-1, 3, -1, -1)


def content_hat_view(y_hat: Tensor, target: Tensor, cfg: LossConfig) -> Tensor:
    """What the content losses compare of the generated image: as :func:`content_view`, or
    with ``content_luma_match`` its luma matched to ``target``'s (:func:`luminance_like`)."""
    if cfg.content_luminance and cfg.content_luma_match != "none":
        return luminance_like(y_hat, target, cfg.content_luma_match)
    return content_view(y_hat, cfg)


def content_view(img: Tensor, cfg: LossConfig) -> Tensor:
    """What the content losses (Eq. 2, 4) look at: the image, or its luminance."""
    return luminance(img) if cfg.content_luminance else img


def gram(features: Tensor, centered: bool = False) -> Tensor:
    """Gram matrix Gram_k(y) = F F^T / (C H W) of features (B, C, H, W) -> (B, C, C).

    Args:
        features: activations phi_k(y).
        centered: subtract each channel's spatial mean first (a covariance Gram).
    """
    b, c, h, w = features.shape
    f = features.float().reshape(b, c, h * w)  # (B, C, HW)
    if centered:
        f = f - f.mean(dim=2, keepdim=True)
    return f @ f.transpose(1, 2) / (c * h * w)  # (B, C, C)


def _distance(pred: Tensor, target: Tensor, normalize: str) -> Tensor:
    """Squared distance per sample, averaged over the batch.

    ``paper``: ||pred - target||^2 / numel (per sample); ``relative``: divided by ||target||^2.
    """
    diff = (pred.float() - target.float()).flatten(1).pow(2).sum(dim=1)  # (B,)
    if normalize == "relative":
        return (diff / target.float().flatten(1).pow(2).sum(dim=1).clamp_min(1e-12)).mean()
    return diff.mean() / pred[0].numel()


def content_loss(pred: Tensor, target: Tensor, normalize: str = "paper") -> Tensor:
    """l_content^(2), Eq. 2: ||phi_j(y_hat) - phi_j(y_c)||^2 / (C_j H_j W_j), batch mean."""
    return _distance(pred, target, normalize)


@dataclass(frozen=True)
class StyleTargets:
    """Statistics of the style image y_s, computed once before training (fast_neural_style).

    Attributes:
        grams: layer -> Gram of y_s, (1, C, C).
        means: layer -> channel means of phi_k(y_s), (1, C).
        patches: layer -> y_s's neural patches at each ``patch_swd_layers`` tap, (1, C, H, W);
            empty unless a SWD weight is > 0.
        colours: y_s itself, (1, 3, S, S), when ``colour_weight`` > 0; else None.
    """

    grams: dict[str, Tensor]
    means: dict[str, Tensor]
    patches: dict[str, Tensor] = field(default_factory=dict)
    colours: Tensor | None = None


def style_targets(
    features: dict[str, Tensor], cfg: LossConfig, image: Tensor | None = None
) -> StyleTargets:
    """Gram and mean targets of the style image's features, per style layer (and the
    features themselves at the patch SWD taps when that term is on; the style ``image``'s
    pixels when the colour term is on).

    Raises:
        ValueError: ``colour_weight`` > 0 but no ``image`` is given.
    """
    grams = {k: gram(features[k], cfg.gram == "centered").detach() for k in cfg.style_layers}
    means = {k: features[k].float().mean(dim=(2, 3)).detach() for k in cfg.style_layers}
    patches = {}
    if cfg.uses_swd:
        patches = {k: features[k].float().detach() for k in cfg.patch_swd_layers}
    colours = None
    if cfg.colour_weight > 0 or cfg.patch_colour_weight > 0:
        if image is None:
            raise ValueError("a colour weight > 0 needs the style image's pixels")
        colours = image.float().detach()
    return StyleTargets(grams, means, patches, colours)


#: Random directions of the colour term per step: RGB has 3 dimensions, so few suffice.
COLOUR_PROJECTIONS = 16


def colour_loss(image: Tensor, targets: StyleTargets, cfg: LossConfig) -> Tensor:
    """Sliced Wasserstein distance between the colours of ``image`` (B, 3, H, W) and of
    y_s: every pixel is one point of R^3 (a 1x1 patch in :func:`sliced_wasserstein_loss`).
    Matches the whole colour distribution, so a palette the style does not have costs
    however the VGG features see it.

    With ``cfg.colour_space == "chroma"`` the directions lie in the plane across the grey
    axis (unit vectors orthogonal to (1, 1, 1)): brightening or darkening a pixel along the
    grey axis changes none of its projections, so the term leaves shading alone. Its
    ``relative`` scale is then y_s's mean squared pixel value, as in RGB (the chroma of a
    grey style is near 0, and would make a ratio explode)."""
    if targets.colours is None:
        raise ValueError("the colour term needs StyleTargets.colours")
    if cfg.colour_space == "rgb":
        dirs = random_directions(3, COLOUR_PROJECTIONS).to(image.device)
        return sliced_wasserstein_loss(image, targets.colours, dirs, cfg.normalize)
    dirs = chroma_directions(COLOUR_PROJECTIONS).to(image.device)
    diff = sliced_wasserstein_loss(image, targets.colours, dirs, "paper")
    if cfg.normalize == "relative":
        return diff / targets.colours.float().pow(2).mean().clamp_min(1e-12)
    return diff


def chroma_directions(count: int) -> Tensor:
    """``count`` random unit vectors of R^3 orthogonal to the grey axis, (3, count)."""
    d = torch.randn(3, count)
    d = d - d.mean(dim=0, keepdim=True)  # remove the component along (1, 1, 1)
    return d / d.norm(dim=0, keepdim=True).clamp_min(1e-12)


def sliced_wasserstein_loss(
    pred: Tensor, target: Tensor, directions: Tensor, normalize: str = "relative"
) -> Tensor:
    """Sliced Wasserstein-2 distance between two sets of neural patches (Heitz et al. 2021).

    Each spatial position of a VGG map is one neural patch, a point in R^C (its receptive
    field is the patch). Both point sets are projected on the unit ``directions``; per
    direction the sorted projections are compared at the same quantiles. Unlike a Gram, this
    matches the whole distribution of the style's patches, and unlike Eq. 5 it needs no
    learned critic that the generator could exploit.

    Args:
        pred: features of G(x), (B, C, h, w); every position of the batch is one point.
        target: features of y_s, (1, C, H, W).
        directions: (C, P) unit columns.
        normalize: ``relative`` divides by the mean squared projection of the target, so the
            value is scale free (0 for identical sets); ``paper`` leaves it unscaled.
    """
    c = pred.shape[1]
    a = pred.float().permute(0, 2, 3, 1).reshape(-1, c) @ directions  # (B*h*w, P)
    b = target.float().permute(0, 2, 3, 1).reshape(-1, c) @ directions  # (H*W, P)
    a, b = torch.sort(a, dim=0).values, torch.sort(b, dim=0).values
    # The target's quantiles at the prediction's count: every predicted patch gets a gradient.
    idx = torch.linspace(0, b.shape[0] - 1, a.shape[0], device=b.device).round().long()
    diff = (a - b[idx]).pow(2).mean()
    if normalize == "relative":
        return diff / b.pow(2).mean().clamp_min(1e-12)
    return diff


def random_directions(channels: int, count: int, gen: torch.Generator | None = None) -> Tensor:
    """``count`` random unit vectors of R^channels as columns, (channels, count)."""
    d = torch.randn(channels, count, generator=gen)
    return d / d.norm(dim=0, keepdim=True)


def patch_swd_loss(features: dict[str, Tensor], targets: StyleTargets, cfg: LossConfig) -> Tensor:
    """The patch SWD style term: :func:`sliced_wasserstein_loss` summed over
    ``patch_swd_layers``, with fresh random directions each call (drawn from torch's global
    generator, which checkpoints save)."""
    total = torch.zeros((), device=next(iter(features.values())).device)
    for k in cfg.patch_swd_layers:
        dirs = random_directions(features[k].shape[1], cfg.swd_projections).to(total.device)
        total = total + sliced_wasserstein_loss(
            features[k], targets.patches[k], dirs, cfg.normalize
        )
    return total


def style_loss(features: dict[str, Tensor], targets: StyleTargets, cfg: LossConfig) -> Tensor:
    """l_style^(2), Eq. 3: ||Gram_k(y_hat) - Gram_k(y_s)||_F^2, summed over the style layers.

    With ``paper`` normalisation the Gram is divided by C_k H_k W_k (so the loss does not
    depend on image size: y_hat is 288 px, y_s 256 px), and the squared Frobenius norm is
    taken as written. ``mean_weight`` adds a channel-mean term per layer (0 in the paper).
    """
    total = torch.zeros((), device=next(iter(features.values())).device)
    for k in cfg.style_layers:
        g = gram(features[k], cfg.gram == "centered")  # (B, C, C)
        target = targets.grams[k].expand_as(g)
        if cfg.normalize == "relative":
            total = total + _distance(g, target, "relative")
        else:
            total = total + (g - target).pow(2).sum(dim=(1, 2)).mean()
        if cfg.mean_weight > 0:
            mu = features[k].float().mean(dim=(2, 3))  # (B, C)
            mu_loss = _distance(mu, targets.means[k].expand_as(mu), cfg.normalize)
            total = total + cfg.mean_weight * mu_loss
    return total


def patch_content_loss(pred: Tensor, target: Tensor, normalize: str = "paper") -> Tensor:
    """l_content^(1), Eq. 4: (1/N) sum_i ||varphi_c(Psi_i(y_hat)) - varphi_c(Psi_i(y_c))||^2.

    Each training sample of the patch stage is one patch Psi_i, so N is the batch size;
    each patch's distance is divided by its feature size "in the similar way as Eq. (2)".
    """
    return _distance(pred, target, normalize)


def patch_style_loss(scores: Tensor) -> Tensor:
    """l_style^(1), Eq. 5: (1/N) sum_i max(0, 1 - s_i) over every neural patch's score."""
    return F.relu(1.0 - scores.float()).mean()


def global_loss(
    style_hat: dict[str, Tensor],
    content_hat: dict[str, Tensor],
    content_c: dict[str, Tensor],
    targets: StyleTargets,
    cfg: LossConfig,
    image: Tensor | None = None,
) -> tuple[Tensor, dict[str, float]]:
    """L^(2) = lambda_2 l_style^(2) + lambda_3 l_content^(2) (Eq. 1-3), plus
    ``colour_weight`` times :func:`colour_loss` of y_hat when that weight is > 0.

    Args:
        style_hat: phi style taps of the generated image y_hat.
        content_hat: phi content taps of y_hat (of its luminance if ``content_luminance``).
        content_c: the same taps of the content image y_c.
        targets: style statistics of y_s.
        cfg: layers, weights and normalisation.
        image: y_hat itself, (B, 3, H, W); needed when ``colour_weight`` > 0.

    Returns:
        The loss and its parts as floats, for logging.
    """
    l_style = style_loss(style_hat, targets, cfg)
    l_content = sum(
        (content_loss(content_hat[j], content_c[j], cfg.normalize) for j in cfg.content_layers),
        start=torch.zeros((), device=l_style.device),
    )
    total = cfg.style_weight * l_style + cfg.content_weight * l_content
    parts = {"global_style": float(l_style.detach()), "global_content": float(l_content.detach())}
    if cfg.colour_weight > 0:
        if image is None:
            raise ValueError("loss.colour_weight > 0 needs the generated image")
        l_colour = colour_loss(image, targets, cfg)
        total = total + cfg.colour_weight * l_colour
        parts["global_colour"] = float(l_colour.detach())
    return total, parts


def patch_loss(
    scores: Tensor,
    feat_hat: Tensor,
    feat_c: Tensor,
    cfg: LossConfig,
    swd: Tensor | None = None,
    colour: Tensor | None = None,
) -> tuple[Tensor, dict[str, float]]:
    """L^(1) = l_style^(1) + lambda_1 l_content^(1) (Eq. 1, 4, 5), plus
    ``patch_swd_weight`` times the patch SWD term and ``patch_colour_weight`` times the
    colour term when they are given.

    Args:
        scores: varphi_s logits of y_hat's neural patches, (B, 1, h, w).
        feat_hat: varphi_c features of y_hat.
        feat_c: varphi_c features of y_c = x.
        cfg: weights and normalisation.
        swd: :func:`patch_swd_loss` of y_hat (None: the term is off).
        colour: :func:`colour_loss` of y_hat (None: the term is off).
    """
    l_style = patch_style_loss(scores)
    l_content = patch_content_loss(feat_hat, feat_c, cfg.normalize)
    total = cfg.patch_style_weight * l_style + cfg.patch_content_weight * l_content
    parts = {"patch_style": float(l_style.detach()), "patch_content": float(l_content.detach())}
    if swd is not None:
        total = total + cfg.patch_swd_weight * swd
        parts["patch_swd"] = float(swd.detach())
    if colour is not None:
        total = total + cfg.patch_colour_weight * colour
        parts["patch_colour"] = float(colour.detach())
    return total, parts


def discriminator_gan_loss(real_scores: Tensor, fake_scores: Tensor) -> Tensor:
    """-V(D, G) of Eq. 7 for varphi_s: -(E log D(real) + E log(1 - D(fake))), per patch."""
    real = F.binary_cross_entropy_with_logits(
        real_scores.float(), torch.ones_like(real_scores, dtype=torch.float32)
    )
    fake = F.binary_cross_entropy_with_logits(
        fake_scores.float(), torch.zeros_like(fake_scores, dtype=torch.float32)
    )
    return real + fake


def generator_gan_loss(fake_scores: Tensor) -> Tensor:
    """The generator's side of Eq. 7, in Goodfellow et al.'s non-saturating form.

    min log(1 - D(G(z))) has vanishing gradients while D wins early on; maximising
    log D(G(z)) has the same fixed point (Goodfellow et al. 2014, §3).
    """
    return F.binary_cross_entropy_with_logits(
        fake_scores.float(), torch.ones_like(fake_scores, dtype=torch.float32)
    )
