"""Gradient-norm (local Lipschitz) regularization of the loss.

Seed 003 (eq. (2.23)-(2.25)) linearizes the loss around a training point,
:math:`\\ell(x+\\xi) = \\ell(x) + \\xi^\\top\\nabla_x\\ell(x) + O(\\|\\xi\\|^2)`, so that the
adversarial-training objective :math:`\\max_{\\|\\xi\\|\\le\\gamma}\\ell(x+\\xi)` becomes, to first
order,

.. math::
    \\ell(f(x), y) + \\gamma\\,\\|\\nabla_x \\ell(f(x), y)\\|_*

where :math:`\\|\\cdot\\|_*` is the dual norm of the threat model's norm
(:math:`\\max_{\\|\\xi\\|_p\\le\\gamma}\\xi^\\top g = \\gamma\\|g\\|_q`, :math:`1/p+1/q=1`: L1 for an
Linf ball, L2 for an L2 ball, Linf for an L1 ball). Seed 000 §6.3 calls this Lipschitz
regularization: the input-gradient norm is the local Lipschitz constant of the loss.
Training through it needs the gradient of a gradient ("double backpropagation",
Drucker & LeCun 1992), i.e. ``create_graph=True``.

Used by: chapter 3, *Adversarial training and robust objectives* (the Lipschitz view).
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ._checks import check_batch, check_model, check_norm, check_number

__all__ = ["dual_norm", "input_gradient_norms", "gradient_norm_objective"]

_DUAL = {"linf": 1.0, "l2": 2.0, "l1": float("inf")}


def dual_norm(g: torch.Tensor, norm: str = "linf", *, smooth: float = 0.0) -> torch.Tensor:
    """Per-sample dual norm :math:`\\|g_n\\|_*` of a batch ``g`` of shape ``(N, ...)``.

    ``norm`` names the *threat model* (the ball of the perturbation): ``"linf"`` gives
    the L1 norm of ``g``, ``"l2"`` the L2 norm, ``"l1"`` the Linf norm. ``smooth > 0``
    uses :math:`\\sqrt{\\|g\\|_2^2+s^2}` for L2 (differentiable at 0). Seed 003 eq. (2.25).
    Chapter 3.
    """
    norm = check_norm(norm)
    if not isinstance(g, torch.Tensor) or g.ndim < 1:
        raise ValueError("g must be a tensor of shape (N, ...)")
    flat = g.flatten(1) if g.ndim > 1 else g[:, None]
    if norm == "linf":
        return flat.abs().sum(1)
    if norm == "l1":
        return flat.abs().amax(1)
    if smooth > 0:
        return torch.sqrt(flat.pow(2).sum(1) + smooth ** 2)
    return flat.norm(dim=1)


def input_gradient_norms(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *,
                         norm: str = "linf", create_graph: bool = False,
                         return_loss: bool = False, of: str = "loss"):
    """Per-sample local Lipschitz estimates :math:`\\|\\nabla_{x_n}\\ell(f(x_n), y_n)\\|_*`.

    ``of="loss"``: :math:`\\ell` is the cross-entropy; ``of="margin"``: the logit margin
    :math:`m = z_y - \\max_{j\\ne y} z_j` (the best other logit masked with ``-inf``),
    whose gradient does not vanish on confidently classified points, and
    :math:`m/\\|\\nabla_x m\\|_*` is the first-order distance to the decision boundary
    (the linearized certified radius). The gradient of each sample's own value with
    respect to its own input (one backward pass of the sum: samples do not
    interact unless the model mixes the batch, e.g. BatchNorm in training mode).
    The model's mode is used as it is (call it in eval mode to measure a trained model).
    ``create_graph=True`` keeps the graph for double backpropagation. Returns a tensor
    ``(N,)`` (and the per-sample losses or margins ``(N,)`` and logits if ``return_loss``).
    Seed 003 eq. (2.23)-(2.25), seed 000 §6.3. Chapter 3.
    """
    check_model(model)
    check_batch(x, y)
    if of not in ("loss", "margin"):
        raise ValueError(f"of must be 'loss' or 'margin', got {of!r}")
    x = x.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        logits = model(x)
        if of == "loss":
            losses = F.cross_entropy(logits, y, reduction="none")
        else:
            true = logits.gather(1, y[:, None]).squeeze(1)
            other = logits.scatter(1, y[:, None], float("-inf")).amax(1)
            losses = true - other
        (grad,) = torch.autograd.grad(losses.sum(), x, create_graph=create_graph)
    norms = dual_norm(grad, norm, smooth=1e-12 if create_graph else 0.0)
    if return_loss:
        return norms, losses, logits
    return norms


def gradient_norm_objective(gamma: float, *, norm: str = "linf"):
    """Lipschitz-regularized training objective (seed 003 eq. (2.25), seed 000 §6.3).

    Returns ``loss_fn(model, x, y) -> (loss, logits)`` for :func:`robustkit.train.fit`:

    .. math::
        L(\\theta) = \\frac1N\\sum_n \\Big[\\ell(f_\\theta(x_n), y_n)
                     + \\gamma\\,\\|\\nabla_{x_n}\\ell(f_\\theta(x_n), y_n)\\|_*\\Big],

    the first-order approximation of adversarial training with an ``norm``-ball of radius
    ``gamma`` (the dual norm :func:`dual_norm` makes the two coincide for a locally linear
    loss). Trained by double backpropagation (the input gradient is part of the graph).
    ``gamma = 0`` is standard training. Chapter 3.
    """
    gamma = check_number(gamma, "gamma", low=0.0)
    norm = check_norm(norm)

    def objective(model, x, y):
        if gamma == 0.0:
            check_batch(x, y)
            logits = model(x)
            return F.cross_entropy(logits, y), logits
        norms, losses, logits = input_gradient_norms(model, x, y, norm=norm, create_graph=True,
                                                     return_loss=True)
        return (losses + gamma * norms).mean(), logits

    objective.gamma, objective.norm = gamma, norm
    objective.__name__ = f"gradient_norm_objective(gamma={gamma:g}, norm={norm})"
    return objective
