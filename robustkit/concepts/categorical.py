"""Categorical concepts: probability maps over pixels sampled with Gumbel-softmax.

Seed 000 §5.5 (Gumbel-max and its relaxation, the categorical model for MNIST) and §7.1.1
{cite}`darrin2020notion`; the relaxation is Jang et al. / Maddison et al. (2017).
Chapter 4.
"""
from __future__ import annotations

from typing import Optional, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from ._checks import check_int, check_labels, check_positive


def sample_gumbel(shape, *, generator: Optional[torch.Generator] = None,
                  device=None, dtype=torch.float32) -> torch.Tensor:
    """Standard Gumbel noise ``G = -log(-log U)``, ``U ~ Uniform(0, 1)`` (seed 000 §5.5.1).

    ``U`` is kept away from 0 and 1 so ``G`` is finite. Chapter 4.
    """
    u = torch.rand(shape, generator=generator, device=device, dtype=dtype)
    tiny = torch.finfo(dtype).tiny
    u = u.clamp(tiny, 1.0 - torch.finfo(dtype).eps)
    return -torch.log(-torch.log(u))


def gumbel_softmax_sample(logits: torch.Tensor, tau: float, n_draws: int = 1, *,
                          generator: Optional[torch.Generator] = None) -> torch.Tensor:
    r"""Relaxed one-hot draws :math:`\mathrm{softmax}((\log\alpha + G)/\tau)` (seed 000 §5.5.1).

    ``logits`` ``(..., D)`` are unnormalized log-probabilities :math:`\log\alpha`; returns
    ``(..., n_draws, D)`` points of the simplex. As ``tau -> 0`` each draw tends to the
    one-hot vector of :math:`\arg\max(\log\alpha + G)`, which is distributed as
    ``Categorical(softmax(logits))`` (Gumbel-max trick); the map is differentiable in
    ``logits`` for ``tau > 0``. Chapter 4.
    """
    if not isinstance(logits, torch.Tensor) or not logits.is_floating_point() or logits.dim() < 1:
        raise TypeError("logits must be a floating tensor of shape (..., D)")
    tau = check_positive(tau, "tau")
    n_draws = check_int(n_draws, "n_draws")
    g = sample_gumbel((*logits.shape[:-1], n_draws, logits.shape[-1]), generator=generator,
                      device=logits.device, dtype=logits.dtype)
    return torch.softmax((logits.unsqueeze(-2) + g) / tau, dim=-1)


def pixels_to_image(draws: torch.Tensor, shape: Sequence[int]) -> torch.Tensor:
    """Sum the relaxed one-hot draws ``(N, K, D)`` and clip to ``[0, 1]`` (seed 000 §5.5.2).

    Returns images of shape ``(N, *shape)`` with ``prod(shape) == D``. Chapter 4.
    """
    n, _, d = draws.shape
    if int(torch.tensor(shape).prod()) != d:
        raise ValueError(f"shape {tuple(shape)} does not hold {d} pixels")
    return draws.sum(-2).clamp(max=1.0).reshape(n, *shape)


class CategoricalConcept(nn.Module):
    r"""Class-conditional probability maps :math:`\mathrm{map}_y` over the pixels (seed 000 §5.5.2).

    A small network maps the one-hot class to logits over the ``C*H*W`` pixels; the map
    is their softmax. An image of class ``y`` is ``K`` pixels drawn from the map with
    the relaxed Gumbel-softmax trick at temperature ``tau``, summed and clipped to
    ``[0, 1]`` (the seed uses ``K = 500``). ``hidden=0`` gives one free logit vector per
    class (no network). Chapter 4.
    """

    def __init__(self, num_classes: int = 10, image_shape: Sequence[int] = (1, 28, 28),
                 hidden: int = 128, k: int = 500, tau: float = 0.5) -> None:
        super().__init__()
        self.num_classes = check_int(num_classes, "num_classes", low=2)
        if len(image_shape) != 3:
            raise ValueError(f"image_shape must be (C, H, W), got {tuple(image_shape)}")
        self.image_shape = tuple(int(s) for s in image_shape)
        self.k = check_int(k, "k")
        self.tau = check_positive(tau, "tau")
        d = self.image_shape[0] * self.image_shape[1] * self.image_shape[2]
        hidden = check_int(hidden, "hidden", low=0)
        if hidden == 0:
            self.net = nn.Linear(self.num_classes, d, bias=False)
            nn.init.zeros_(self.net.weight)
        else:
            self.net = nn.Sequential(nn.Linear(self.num_classes, hidden), nn.ReLU(),
                                     nn.Linear(hidden, d))
            nn.init.zeros_(self.net[-1].weight)   # start from the uniform map
            nn.init.zeros_(self.net[-1].bias)

    def logits(self, y: torch.Tensor) -> torch.Tensor:
        """Pixel logits ``(N, D)`` for the class labels ``y`` ``(N,)``."""
        y = check_labels(y, self.num_classes)
        dev = next(self.parameters()).device
        onehot = F.one_hot(y.to(dev), self.num_classes).float()
        return self.net(onehot)

    def maps(self, y: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Probability maps ``(N, C, H, W)`` summing to 1 (all classes when ``y`` is None)."""
        if y is None:
            y = torch.arange(self.num_classes, device=next(self.parameters()).device)
        return torch.softmax(self.logits(y), dim=-1).reshape(-1, *self.image_shape)

    def sample(self, y: torch.Tensor, *, tau: Optional[float] = None, k: Optional[int] = None,
               generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """Differentiable images ``(N, C, H, W)`` in ``[0, 1]``, one per label in ``y``."""
        tau = self.tau if tau is None else tau
        k = self.k if k is None else k
        draws = gumbel_softmax_sample(self.logits(y), tau, k, generator=generator)
        return pixels_to_image(draws, self.image_shape)

    def entropy(self, y: Optional[torch.Tensor] = None, base: Optional[float] = None) -> torch.Tensor:
        """Entropy of each map (seed 000 §5.5.2), in nats or in ``base``; differentiable."""
        logp = torch.log_softmax(self.logits(
            torch.arange(self.num_classes, device=next(self.parameters()).device)
            if y is None else y), dim=-1)
        h = -(logp.exp() * logp).sum(-1)
        return h if base is None else h / torch.log(torch.tensor(float(base)))
