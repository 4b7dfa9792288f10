"""Expectation over transformation (EOT) for randomized models (Athalye et al. 2018).

A randomized defense (noise layers, Bayesian weights, MC dropout, SDE noise) computes a
random function ``f(x; omega)``; the attacker's useful gradient is that of the expected
loss, ``grad_x E_omega[loss(f(x; omega), y)] = E_omega[grad_x loss(f(x; omega), y)]``,
estimated by averaging the gradients of ``eot_samples`` independent forward passes
(GUIDE §5 trap 4: use >= 20 draws for a real evaluation). A single draw is a noisy,
weaker gradient, which makes a randomized model *look* more robust than it is.

The defense must also be *evaluated as deployed*: :class:`ExpectedModel` wraps a
randomized model into the averaged-softmax classifier (log of the mean probability over
draws, a valid logit vector), and :func:`expected_logits` computes it for a batch.
Randomness stays on under ``eval()``: it follows the ``stochastic`` switch of
:mod:`robustkit.modes`.

Used by: chapter 2 (EOT on a noisy model) and the randomized-defense chapters.
"""
from __future__ import annotations

import copy
import math

import torch
import torch.nn as nn

from .base import Attack

__all__ = ["EOT", "ExpectedModel", "expected_logits"]


def EOT(attack: Attack, samples: int) -> Attack:
    """A copy of ``attack`` whose input gradients average ``samples`` forward passes (EOT).

    Works for every gradient-based attack of :mod:`robustkit.attacks` that uses the
    shared gradient helper (FGSM, PGD). ``attack`` itself is not modified.
    """
    if not isinstance(attack, Attack):
        raise TypeError(f"attack must be a robustkit Attack, got {type(attack).__name__}")
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
        raise ValueError(f"samples must be a positive integer, got {samples!r}")
    out = copy.copy(attack)
    out.eot_samples = samples
    return out


def expected_logits(model: nn.Module, x: torch.Tensor, samples: int) -> torch.Tensor:
    """``log mean_s softmax(model(x))`` over ``samples`` forward passes (the deployed prediction)."""
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
        raise ValueError(f"samples must be a positive integer, got {samples!r}")
    logp = torch.stack([torch.log_softmax(model(x), dim=1) for _ in range(samples)])
    return torch.logsumexp(logp, dim=0) - math.log(samples)


class ExpectedModel(nn.Module):
    """The deployed classifier of a randomized model: average of softmax over ``samples`` draws.

    ``forward`` returns ``log mean softmax`` (ensembles average probabilities, not logits:
    GUIDE §5 trap 9), usable as logits by every attack and evaluator.
    """

    def __init__(self, model: nn.Module, samples: int = 20) -> None:
        super().__init__()
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
        if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
            raise ValueError(f"samples must be a positive integer, got {samples!r}")
        self.model, self.samples = model, samples

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return expected_logits(self.model, x, self.samples)
