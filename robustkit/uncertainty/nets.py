"""Small networks of the uncertainty benchmark: a BatchNorm convnet classifier and a U-Net.

Both take images in ``[0, 1]`` (normalization inside), use :class:`MCDropout` layers (so
MC dropout can switch exactly these on at test time while BatchNorm stays in eval mode)
and, with ``bayesian=True``, mean-field Gaussian layers
(:mod:`robustkit.defenses.bayesian`) for stochastic variational inference.

- :class:`UncertaintyConvNet`: ``[conv3x3 -> BN -> ReLU -> maxpool] x 2 -> dropout -> fc ->
  ReLU -> dropout -> fc``, the classifier of the MNIST / Fashion-MNIST benchmarks
  (a small stand-in for the VGG16 of seed 003 Table 5.2);
- :class:`UNet`: the encoder-decoder with skip connections of Ronneberger et al. (2015),
  the backbone of the image-to-image benchmark of seed 003 §5.3, shrunk to a few
  thousand weights (upsampling by interpolation + convolution instead of transposed
  convolutions, so every weight layer is a ``Conv2d`` that BatchEnsemble can wrap).

Used by: chapter 10.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..defenses.bayesian import BayesConv2d, BayesLinear
from ..models import MNIST_MEAN, MNIST_STD, Normalize
from ..modes import StochasticModule

__all__ = ["MCDropout", "UncertaintyConvNet", "UNet", "dropout_modules"]


class MCDropout(StochasticModule):
    """Dropout that is active when training **or** when ``self.stochastic`` (default off).

    Behaves like ``nn.Dropout(p)`` in ``train()`` / ``eval()``; MC dropout (Gal &
    Ghahramani 2016) sets ``stochastic=True`` on these layers only, so predictions are
    sampled with dropout on while BatchNorm keeps its running statistics (eval mode).
    """

    def __init__(self, p: float = 0.5, *, stochastic: bool = False) -> None:
        super().__init__(stochastic=stochastic)
        if not isinstance(p, (int, float)) or not 0 <= p < 1:
            raise ValueError(f"dropout probability must be in [0, 1), got {p!r}")
        self.p = float(p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.dropout(x, self.p, training=self.training or self.stochastic)

    def extra_repr(self) -> str:
        return f"p={self.p}, stochastic={self.stochastic}"


_TORCH_DROPOUT = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout)


def dropout_modules(model: nn.Module) -> list[nn.Module]:
    """The dropout layers of ``model``: :class:`MCDropout` and PyTorch's ``nn.Dropout*``."""
    return [m for m in model.modules() if isinstance(m, (MCDropout,) + _TORCH_DROPOUT)]


def _conv(cin, cout, k, bayesian, prior_sigma, **kw):
    if bayesian:
        return BayesConv2d(cin, cout, k, prior_sigma=prior_sigma, **kw)
    return nn.Conv2d(cin, cout, k, **kw)


def _linear(cin, cout, bayesian, prior_sigma):
    return BayesLinear(cin, cout, prior_sigma=prior_sigma) if bayesian else nn.Linear(cin, cout)


class UncertaintyConvNet(nn.Module):
    """BatchNorm convnet classifier for 28x28 grey images (MNIST, Fashion-MNIST).

    Args: ``width`` (channels of the first conv; the second has ``2 * width``),
    ``hidden`` (fc width), ``dropout`` (probability of both :class:`MCDropout` layers),
    ``bayesian`` (mean-field Gaussian conv / fc layers with prior ``N(0, prior_sigma^2)``),
    ``mean`` / ``std`` (normalization). Returns logits.
    """

    def __init__(self, num_classes: int = 10, width: int = 16, hidden: int = 64,
                 dropout: float = 0.25, bayesian: bool = False, prior_sigma: float = 0.1,
                 mean: float = MNIST_MEAN, std: float = MNIST_STD, in_channels: int = 1,
                 image_size: int = 28) -> None:
        super().__init__()
        if image_size % 4:
            raise ValueError(f"image_size must be a multiple of 4, got {image_size}")
        self.in_channels, self.image_size = int(in_channels), int(image_size)
        w = int(width)
        self.normalize = Normalize(mean, std)
        self.features = nn.Sequential(
            _conv(self.in_channels, w, 3, bayesian, prior_sigma, padding=1), nn.BatchNorm2d(w),
            nn.ReLU(), nn.MaxPool2d(2),
            _conv(w, 2 * w, 3, bayesian, prior_sigma, padding=1), nn.BatchNorm2d(2 * w),
            nn.ReLU(), nn.MaxPool2d(2), nn.Flatten())
        side = self.image_size // 4
        self.head = nn.Sequential(
            MCDropout(dropout), _linear(2 * w * side * side, int(hidden), bayesian, prior_sigma),
            nn.ReLU(), MCDropout(dropout), _linear(int(hidden), int(num_classes), bayesian, prior_sigma))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"expected images (N, {self.in_channels}, H, W), got {tuple(x.shape)}")
        return self.head(self.features(self.normalize(x)))


class _Block(nn.Sequential):
    def __init__(self, cin, cout, bayesian, prior_sigma):
        super().__init__(_conv(cin, cout, 3, bayesian, prior_sigma, padding=1), nn.BatchNorm2d(cout),
                         nn.ReLU(),
                         _conv(cout, cout, 3, bayesian, prior_sigma, padding=1), nn.BatchNorm2d(cout),
                         nn.ReLU())


class UNet(nn.Module):
    """A small U-Net (Ronneberger et al. 2015) for image-to-image regression.

    ``depth`` poolings, channels ``base * 2^level``; skip connections concatenate encoder
    features with the upsampled decoder features; :class:`MCDropout` before every decoder
    block; a final 1x1 convolution gives ``out_channels`` maps (identity output: the
    target is regressed with the squared error). Any image size divisible by ``2^depth``.
    """

    def __init__(self, in_channels: int = 1, out_channels: int = 1, base: int = 8, depth: int = 2,
                 dropout: float = 0.1, bayesian: bool = False, prior_sigma: float = 0.1,
                 mean: float = MNIST_MEAN, std: float = MNIST_STD) -> None:
        super().__init__()
        if int(depth) < 1 or int(base) < 1:
            raise ValueError("depth and base must be positive")
        self.depth = int(depth)
        self.in_channels = int(in_channels)
        self.normalize = Normalize(mean, std)
        widths = [int(base) * 2 ** i for i in range(self.depth + 1)]
        self.down = nn.ModuleList()
        cin = self.in_channels
        for w in widths:
            self.down.append(_Block(cin, w, bayesian, prior_sigma))
            cin = w
        self.drop = nn.ModuleList()
        self.up = nn.ModuleList()
        for level in reversed(range(self.depth)):
            self.drop.append(MCDropout(dropout))
            self.up.append(_Block(widths[level + 1] + widths[level], widths[level], bayesian, prior_sigma))
        self.out = _conv(widths[0], int(out_channels), 1, bayesian, prior_sigma)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"expected images (N, {self.in_channels}, H, W), got {tuple(x.shape)}")
        if x.shape[-1] % 2 ** self.depth or x.shape[-2] % 2 ** self.depth:
            raise ValueError(f"image size must be divisible by {2 ** self.depth}, got {tuple(x.shape[-2:])}")
        h = self.normalize(x)
        skips = []
        for i, block in enumerate(self.down):
            h = block(h)
            if i < self.depth:
                skips.append(h)
                h = F.max_pool2d(h, 2)
        for drop, block in zip(self.drop, self.up):
            skip = skips.pop()
            h = F.interpolate(h, size=skip.shape[-2:], mode="nearest")
            h = block(torch.cat([drop(h), skip], 1))
        return self.out(h)
