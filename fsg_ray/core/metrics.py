"""Numeric style, structure and silhouette metrics for comparing stylised garments.

Each metric is defined in docs/metrics.md; this module is the definition in code. Images are
(3, H, W) tensors in [0, 1]; garment masks are (H, W) bool tensors, True on the garment. An
output is always compared with its own input x (structure, silhouette, leakage) or with the
style image y_s (style). Pure PyTorch and NumPy, no Ray import.

    metric                    reads                       best   identical images give
    gram_style_distance       output in mask, y_s, VGG    0      0
    sliced_wasserstein        output in mask, y_s         0      0
    structure_similarity      x, output, mask             1      1
    silhouette_iou            mask of x, mask of output   1      1
    background_leakage        x, output, mask             0      0
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from fsg_ray.core import masks
from fsg_ray.core.models import VGG19Features

#: VGG taps of the evaluation style distance (those of AdaIN and of the random-VGG profile).
STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1")
#: Side of the pixel patches compared by :func:`sliced_wasserstein`.
SWD_PATCH = 7
#: Random projections of :func:`sliced_wasserstein`.
SWD_PROJECTIONS = 64
#: Patches kept per image by :func:`sliced_wasserstein` (a seeded subsample above this).
SWD_MAX_PATCHES = 16384
#: Gaussian blur (pixels) before the edge maps of :func:`structure_similarity`.
EDGE_SIGMA = 1.0
#: The garment region of :func:`structure_similarity` grows by this many pixels, so that the
#: outline itself (which lies on the mask's border) counts.
EDGE_MARGIN = 3
_EPS = 1e-12


def luma(img: Tensor) -> Tensor:
    """Rec. 601 luma (H, W) of an image (3, H, W)."""
    weights = torch.tensor([0.299, 0.587, 0.114], dtype=img.dtype, device=img.device)
    return (img * weights.view(3, 1, 1)).sum(dim=0)


def _gaussian_blur(x: Tensor, sigma: float) -> Tensor:
    """Separable Gaussian blur of (H, W), reflect padding; ``sigma`` <= 0 returns ``x``."""
    if sigma <= 0:
        return x
    r = max(1, int(3 * sigma + 0.5))
    t = torch.arange(-r, r + 1, dtype=x.dtype, device=x.device)
    k = torch.exp(-(t**2) / (2 * sigma**2))
    k = k / k.sum()
    out = F.pad(x[None, None], (r, r, r, r), mode="reflect")  # (1, 1, H + 2r, W + 2r)
    out = F.conv2d(out, k.view(1, 1, 1, -1))
    return F.conv2d(out, k.view(1, 1, -1, 1))[0, 0]


def edge_map(img: Tensor, sigma: float = EDGE_SIGMA) -> Tensor:
    """Sobel gradient magnitude (H, W) of the blurred luma of an image (3, H, W)."""
    y = _gaussian_blur(luma(img), sigma)
    sobel = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]], dtype=y.dtype)
    kernels = torch.stack([sobel, sobel.T])[:, None].to(y.device)  # (2, 1, 3, 3): d/dx, d/dy
    grad = F.conv2d(F.pad(y[None, None], (1, 1, 1, 1), mode="replicate"), kernels)[0]
    return grad.pow(2).sum(dim=0).sqrt()


def dilate(mask: Tensor, radius: int) -> Tensor:
    """A bool mask (H, W) grown by ``radius`` pixels (a square structuring element)."""
    if radius <= 0:
        return mask.clone()
    grown = F.max_pool2d(mask[None, None].float(), 2 * radius + 1, stride=1, padding=radius)
    return grown[0, 0] > 0


def structure_similarity(
    inp: Tensor,
    out: Tensor,
    mask: Tensor,
    sigma: float = EDGE_SIGMA,
    margin: int = EDGE_MARGIN,
) -> float:
    """Pearson correlation of the luminance edge maps of input and output inside the garment.

    The region is the mask grown by ``margin`` pixels. 1: the same edges at the same places
    (any brightness scale); lower when edges move, blur, vanish, or new ones appear (a
    texture adds edges too, so a stylised garment never reaches 1). A region without any
    edge in both maps counts as 1, without edges in one of them as 0.

    Raises:
        ValueError: The images' sizes differ, or the mask does not match them.
    """
    _check_pair(inp, out, mask)
    region = dilate(mask, margin)
    a, b = edge_map(inp, sigma)[region].double(), edge_map(out, sigma)[region].double()
    if a.numel() == 0:
        return 1.0
    a, b = a - a.mean(), b - b.mean()
    na, nb = a.norm(), b.norm()
    if na < 1e-9 or nb < 1e-9:
        return 1.0 if na < 1e-9 and nb < 1e-9 else 0.0
    return float((a @ b) / (na * nb))


def silhouette_iou(a: Tensor, b: Tensor) -> float:
    """Intersection over union of two garment masks (H, W); two empty masks give 1.

    Raises:
        ValueError: The masks' sizes differ.
    """
    if a.shape != b.shape:
        raise ValueError(f"masks of different sizes: {tuple(a.shape)} and {tuple(b.shape)}")
    union = int((a | b).sum())
    return 1.0 if union == 0 else int((a & b).sum()) / union


def estimate_mask(img: Tensor) -> Tensor:
    """The garment mask (H, W) bool of a product shot on a plain background
    (:func:`fsg_ray.core.masks.auto_mask`)."""
    rgb = (img.detach().float().clamp(0, 1) * 255).round().byte().permute(1, 2, 0).cpu().numpy()
    return torch.from_numpy(masks.auto_mask(np.ascontiguousarray(rgb)))


def background_leakage(inp: Tensor, out: Tensor, mask: Tensor) -> float:
    """Mean absolute change, in [0, 1] per channel, of the pixels outside the garment mask.

    0 when every background pixel is kept (e.g. after compositing through the mask), and
    for a mask that covers the whole image.

    Raises:
        ValueError: The images' sizes differ, or the mask does not match them.
    """
    _check_pair(inp, out, mask)
    outside = ~mask
    if not bool(outside.any()):
        return 0.0
    return float((out - inp).abs()[:, outside].mean())


def _check_pair(inp: Tensor, out: Tensor, mask: Tensor) -> None:
    if inp.shape != out.shape or inp.dim() != 3 or inp.shape[0] != 3:
        raise ValueError(
            f"expected two images (3, H, W) of one size, got {tuple(inp.shape)} and "
            f"{tuple(out.shape)}"
        )
    if mask.shape != inp.shape[1:] or mask.dtype != torch.bool:
        raise ValueError(
            f"expected a bool mask {tuple(inp.shape[1:])}, got {mask.dtype} {tuple(mask.shape)}"
        )


def _masked_stats(features: Tensor, weights: Tensor) -> tuple[Tensor, Tensor]:
    """Channel means (C,) and covariance, the centred Gram (C, C), of features (C, h, w),
    each position weighted by ``weights`` (h, w)."""
    c = features.shape[0]
    f = features.double().reshape(c, -1)  # (C, hw)
    w = weights.double().reshape(-1)
    total = w.sum().clamp_min(_EPS)
    mean = (f * w).sum(dim=1) / total
    centred = f - mean[:, None]
    cov = (centred * w) @ centred.T / total  # (C, C)
    return mean, cov


def _relative(a: Tensor, b: Tensor) -> float:
    """||a - b||^2 / ||b||^2 (0 when both are zero)."""
    return float((a - b).pow(2).sum() / b.pow(2).sum().clamp_min(_EPS))


def gram_style_distance(
    out: Tensor,
    style: Tensor,
    phi: VGG19Features,
    mask: Tensor | None = None,
    layers: tuple[str, ...] = STYLE_LAYERS,
) -> float:
    """Style distance of an output to the style image y_s under a VGG ``phi`` (lower: closer).

    Per layer l: ||Gram_l(out) - Gram_l(y_s)||_F^2 / ||Gram_l(y_s)||_F^2 with the centred
    Gram (the features' covariance), plus ||mu_l(out) - mu_l(y_s)||^2 / ||mu_l(y_s)||^2 for
    the channel means; the mean over ``layers``. The output's statistics are taken over the
    garment only: each feature position is weighted by the share of the mask under it.

    ``phi`` should not be the training loss net: a generator trained on a net's Grams can
    match them without matching the style as another net sees it.

    Raises:
        ValueError: The mask does not match the output, or covers nothing.
    """
    weights = _feature_weights(out, mask)
    with torch.no_grad():
        f_out = phi(out[None], layers)
        f_style = phi(style[None], layers)
    total = 0.0
    for layer in layers:
        fo, fs = f_out[layer][0], f_style[layer][0]
        w = F.interpolate(weights[None, None], size=fo.shape[-2:], mode="area")[0, 0]
        mean_o, cov_o = _masked_stats(fo, w)
        mean_s, cov_s = _masked_stats(fs, torch.ones(fs.shape[-2:], dtype=fs.dtype))
        total += _relative(cov_o, cov_s) + _relative(mean_o, mean_s)
    return total / len(layers)


def _feature_weights(img: Tensor, mask: Tensor | None) -> Tensor:
    """The mask as float weights (H, W); all ones without a mask."""
    if mask is None:
        return torch.ones(img.shape[-2:], dtype=torch.float32, device=img.device)
    if mask.shape != img.shape[-2:] or mask.dtype != torch.bool:
        raise ValueError(
            f"expected a bool mask {tuple(img.shape[-2:])}, got {mask.dtype} {tuple(mask.shape)}"
        )
    if not bool(mask.any()):
        raise ValueError("the garment mask is empty")
    return mask.float()


def pixel_patches(
    img: Tensor,
    size: int = SWD_PATCH,
    mask: Tensor | None = None,
    max_patches: int = SWD_MAX_PATCHES,
    seed: int = 0,
) -> Tensor:
    """Every ``size`` x ``size`` pixel patch (stride 1) of an image (3, H, W), flattened:
    (N, 3 * size * size). With a mask, only patches whose centre is on the garment. Above
    ``max_patches`` a seeded random subsample (the same for images of the same size).

    Raises:
        ValueError: The image is smaller than a patch, or no patch is left.
    """
    h, w = img.shape[-2:]
    if h < size or w < size:
        raise ValueError(f"an image of {h}x{w} px has no {size}x{size} patch")
    cols = F.unfold(img[None].float(), size)[0].T  # (L, 3 * size * size), row-major centres
    if mask is not None:
        r = size // 2
        keep = mask[r : h - size + 1 + r, r : w - size + 1 + r].reshape(-1)
        cols = cols[keep]
    if cols.shape[0] == 0:
        raise ValueError("no pixel patch has its centre on the garment")
    if cols.shape[0] > max_patches:
        gen = torch.Generator().manual_seed(seed)
        cols = cols[torch.randperm(cols.shape[0], generator=gen)[:max_patches]]
    return cols


def sliced_wasserstein(
    out: Tensor,
    style: Tensor,
    mask: Tensor | None = None,
    size: int = SWD_PATCH,
    projections: int = SWD_PROJECTIONS,
    seed: int = 0,
) -> float:
    """Sliced Wasserstein-2 distance between the pixel-patch distributions of an output
    (inside the garment) and of the style image (lower: closer); no network involved.

    The patches of each image are projected on ``projections`` seeded random unit
    directions; per direction the sorted projections are compared at the same quantiles
    (as many as the smaller set has patches); the result is the root mean square of the
    differences. Two images with the same patches, in any arrangement, give 0.

    Raises:
        ValueError: An image is smaller than a patch, or the mask leaves no patch.
    """
    a = pixel_patches(out, size, mask, seed=seed)
    b = pixel_patches(style, size, seed=seed)
    gen = torch.Generator().manual_seed(seed)
    directions = torch.randn(a.shape[1], projections, generator=gen, dtype=torch.float64)
    directions = directions / directions.norm(dim=0, keepdim=True)
    pa = torch.sort(a.double() @ directions, dim=0).values  # (Na, P)
    pb = torch.sort(b.double() @ directions, dim=0).values  # (Nb, P)
    n = min(pa.shape[0], pb.shape[0])
    qa = pa[torch.linspace(0, pa.shape[0] - 1, n, dtype=torch.float64).round().long()]
    qb = pb[torch.linspace(0, pb.shape[0] - 1, n, dtype=torch.float64).round().long()]
    return float((qa - qb).pow(2).mean().sqrt())
