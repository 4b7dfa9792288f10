"""Defensive distillation (Papernot et al. 2016), the baseline of seed 003 §2.1 (Table 2.1).

A *teacher* is trained with a softmax at temperature ``T`` (``softmax(z / T)``); its soft
labels ``softmax(z_teacher(x) / T)`` then train a *student* of the same architecture,
again at temperature ``T``; the student is deployed at temperature 1, i.e. with its raw
logits. Its logits are then about ``T`` times larger than a normally trained network's,
the softmax saturates and the gradient of the cross-entropy with respect to the input
vanishes (in float32 it is often exactly zero): gradient-based attacks on the loss fail,
while attacks on logits (C&W, margin losses) go through (Carlini & Wagner 2017). Seed 003
uses ``T = 40``.

- :func:`temperature_objective`: cross-entropy of ``softmax(model(x) / T)`` (teacher);
- :func:`soft_labels`: the teacher's probabilities at temperature ``T``;
- :func:`distillation_objective`: cross-entropy of the student at ``T`` against them.

All objectives have the signature ``loss_fn(model, x, y) -> (loss, logits)`` of
:func:`robustkit.train.fit`. Used by: chapter 6 (baseline of the RSE comparison).
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..modes import eval_mode
from ._checks import check_batch, check_model, check_number

__all__ = ["temperature_objective", "soft_labels", "distillation_objective"]


def temperature_objective(temperature: float = 40.0):
    """Teacher objective: ``CE(softmax(model(x) / T), y)`` (Papernot et al. 2016, step 1).

    Returns ``loss_fn(model, x, y) -> (loss, logits)``; ``T = 1`` is ordinary training.
    Chapter 6.
    """
    t = check_number(temperature, "temperature", low=0.0, strict=True)

    def loss_fn(model: nn.Module, x: torch.Tensor, y: torch.Tensor):
        logits = model(x)
        return F.cross_entropy(logits / t, y), logits

    return loss_fn


@torch.no_grad()
def soft_labels(teacher: nn.Module, x: torch.Tensor, temperature: float = 40.0) -> torch.Tensor:
    """``softmax(teacher(x) / T)``, computed in eval mode without gradients, shape ``(N, classes)``."""
    check_model(teacher)
    t = check_number(temperature, "temperature", low=0.0, strict=True)
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x must be a tensor, got {type(x).__name__}")
    with eval_mode(teacher):
        return torch.softmax(teacher(x) / t, dim=1)


def distillation_objective(teacher: nn.Module, temperature: float = 40.0):
    """Student objective: ``-sum_k q_k log softmax(student(x) / T)_k`` with ``q = soft_labels``.

    The soft labels ``q`` come from ``teacher`` at the same temperature ``T`` (Papernot et
    al. 2016, step 2); the hard labels ``y`` are not used. Returns ``loss_fn(model, x, y)
    -> (loss, logits)`` (logits at temperature 1, as deployed). Chapter 6.
    """
    check_model(teacher)
    t = check_number(temperature, "temperature", low=0.0, strict=True)

    def loss_fn(model: nn.Module, x: torch.Tensor, y: torch.Tensor):
        check_batch(x, y)
        q = soft_labels(teacher, x, t)
        logits = model(x)
        loss = -(q * torch.log_softmax(logits / t, dim=1)).sum(1).mean()
        return loss, logits

    return loss_fn
