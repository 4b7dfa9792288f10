"""Synthetic corruptions at five severities (MNIST-C / CIFAR10-C style), vectorized in torch.

Seed 003 Fig. 5.6 / Table 5.2 evaluate calibration under the 15 corruptions x 5 severities
of CIFAR10-C (Hendrycks & Dietterich 2019). CIFAR10-C is not available offline, so we
rebuild the protocol on 28x28 grey images with eight corruptions of the same families
(noise, blur, digital, geometric), each with five increasing severities. Every function
maps images in ``[0, 1]`` ``(N, C, H, W)`` to images in ``[0, 1]``, deterministically
given ``seed``.

Used by: chapter 10 (classification under distribution shift).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

__all__ = ["CORRUPTIONS", "SEVERITY_PARAMS", "corrupt"]

SEVERITY_PARAMS: dict[str, tuple[float, ...]] = {
    "gaussian_noise": (0.1, 0.2, 0.3, 0.45, 0.6),        # std of additive noise
    "shot_noise": (60.0, 25.0, 12.0, 5.0, 3.0),          # photons per unit intensity
    "impulse_noise": (0.03, 0.06, 0.1, 0.17, 0.27),      # salt-and-pepper fraction
    "gaussian_blur": (0.6, 0.9, 1.2, 1.6, 2.0),          # blur std (pixels)
    "contrast": (0.5, 0.35, 0.25, 0.15, 0.08),           # contrast factor
    "brightness": (0.1, 0.2, 0.3, 0.4, 0.5),             # added intensity
    "rotate": (10.0, 20.0, 30.0, 45.0, 60.0),            # degrees (random sign)
    "pixelate": (0.8, 0.65, 0.5, 0.4, 0.3),              # resolution factor
}
CORRUPTIONS: tuple[str, ...] = tuple(SEVERITY_PARAMS)


def _blur(x, sigma):
    radius = max(1, int(math.ceil(3 * sigma)))
    t = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    k = k / k.sum()
    c = x.shape[1]
    x = F.pad(x, (radius, radius, radius, radius), mode="replicate")
    x = F.conv2d(x, k.view(1, 1, 1, -1).repeat(c, 1, 1, 1), groups=c)
    return F.conv2d(x, k.view(1, 1, -1, 1).repeat(c, 1, 1, 1), groups=c)


def corrupt(images: torch.Tensor, name: str, severity: int, seed: int = 0) -> torch.Tensor:
    """Corrupt ``images`` with corruption ``name`` at ``severity`` in 1..5 (0 = unchanged).

    Names: ``gaussian_noise``, ``shot_noise`` (Poisson), ``impulse_noise``
    (salt-and-pepper), ``gaussian_blur``, ``contrast``, ``brightness``, ``rotate``
    (bilinear, random sign), ``pixelate``; parameters in :data:`SEVERITY_PARAMS`.
    """
    if not isinstance(images, torch.Tensor) or images.ndim != 4 or not images.is_floating_point():
        raise ValueError(f"images must be a float tensor (N, C, H, W), got {getattr(images, 'shape', type(images))}")
    if bool((images < 0).any()) or bool((images > 1).any()):
        raise ValueError("images must lie in [0, 1]")
    if name not in SEVERITY_PARAMS:
        raise ValueError(f"unknown corruption {name!r}; choose one of {', '.join(CORRUPTIONS)}")
    if isinstance(severity, bool) or not isinstance(severity, int) or not 0 <= severity <= 5:
        raise ValueError(f"severity must be an integer in 0..5, got {severity!r}")
    if severity == 0:
        return images.clone()
    c = SEVERITY_PARAMS[name][severity - 1]
    g = torch.Generator().manual_seed(int(seed))
    x = images
    rand = lambda *shape: torch.rand(*shape, generator=g).to(x)   # noqa: E731
    randn = lambda *shape: torch.randn(*shape, generator=g).to(x)  # noqa: E731
    if name == "gaussian_noise":
        out = x + c * randn(*x.shape)
    elif name == "shot_noise":
        out = torch.poisson(x.cpu() * c, generator=g).to(x) / c
    elif name == "impulse_noise":
        u = rand(*x.shape)
        out = torch.where(u < c / 2, torch.zeros_like(x), torch.where(u > 1 - c / 2, torch.ones_like(x), x))
    elif name == "gaussian_blur":
        out = _blur(x, c)
    elif name == "contrast":
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        out = (x - mean) * c + mean
    elif name == "brightness":
        out = x + c
    elif name == "rotate":
        sign = torch.where(rand(x.shape[0]) < 0.5, -1.0, 1.0)
        theta = sign * math.radians(c)
        cos, sin = theta.cos(), theta.sin()
        zero = torch.zeros_like(cos)
        mat = torch.stack([torch.stack([cos, -sin, zero], 1), torch.stack([sin, cos, zero], 1)], 1)
        grid = F.affine_grid(mat, list(x.shape), align_corners=False)
        out = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    else:  # pixelate
        h, w = x.shape[-2:]
        small = F.interpolate(x, size=(max(1, round(h * c)), max(1, round(w * c))), mode="area")
        out = F.interpolate(small, size=(h, w), mode="nearest")
    return out.clamp(0, 1)
