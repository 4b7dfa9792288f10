"""The HR loss of seed 001: conditional entropy plus a Rényi goodness-of-fit term.

Picot et al. (seed 001) bound the error probability :math:`P_e` of a classifier by the
uncertainty of its soft decisions, the conditional entropy :math:`H(\\hat Y|X)` of the
softmax distribution, and by the goodness of fit :math:`D_\\alpha(p_{XY}\\|p_{X\\hat Y})`,
a Rényi divergence between the data distribution and :math:`p_{X\\hat Y}=p_X
p_{\\hat Y|X}` (Proposition 1), and relax the bound into the loss (eq. (3))

.. math::
    \\mathcal L_{HR}(\\theta) = H(\\hat Y|X) + \\alpha D_\\alpha(p_{XY}\\|p_{X\\hat Y}),
    \\qquad \\alpha>1 \\ (\\alpha = 1.6 \\text{ in the paper}),

with seed 001's normalization (appendix A, eq. (4))
:math:`D_\\alpha(\\mu\\|\\nu) = \\frac{1}{\\alpha(\\alpha-1)}\\log E_\\mu[(d\\nu/d\\mu)^{1-\\alpha}]`.
(Eq. (3) prints :math:`H(Y|X)`; the text, Proposition 1 and the conclusion make clear it
is the entropy of the soft decision :math:`\\hat Y`: :math:`H(Y|X)` does not depend on
the model.)

**Estimation on a batch.** With the empirical distribution of the batch,
:math:`p_{XY} = \\frac1N\\sum_n\\delta_{(x_n,y_n)}` and :math:`p_{X\\hat Y}(x_n, y) =
\\frac1N p_\\theta(y|x_n)`, the density ratio at the data points is
:math:`d\\nu/d\\mu(x_n, y_n) = p_\\theta(y_n|x_n)`, so

.. math::
    \\alpha D_\\alpha = \\frac{1}{\\alpha-1}\\log\\frac1N\\sum_{n=1}^N p_\\theta(y_n|x_n)^{1-\\alpha},
    \\qquad H(\\hat Y|X) = \\frac1N\\sum_n H(p_\\theta(\\cdot|x_n)).

The Rényi term is a log-mean-exp over the **whole batch**, not a mean of per-sample
divergences: a per-sample Rényi divergence between the one-hot label and the softmax
is :math:`-\\log p_\\theta(y_n|x_n)` for every :math:`\\alpha` (the cross-entropy), and
the loss would lose its dependence on :math:`\\alpha`. By Jensen's inequality the batch
term is at least the cross-entropy (seed 001: :math:`CE\\le\\alpha D_\\alpha + H`), it
tends to it as :math:`\\alpha\\to1`, and for :math:`\\alpha>1` it weighs the worst-fitted
samples of the batch more (weights :math:`\\propto p_\\theta(y_n|x_n)^{1-\\alpha}`).

Also here: :func:`fgsm_with_loss`, seed 001's evaluation attack (FGSM with the CE or
the HR loss), and :func:`conditional_confusion`, its confusion matrix
:math:`p_{\\hat Y|Y}`.

Used by: chapter 3, *Adversarial training and robust objectives*.
"""
from __future__ import annotations

import math
from typing import Callable, Union

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..modes import eval_mode
from ._checks import check_batch, check_logits, check_model, check_number

__all__ = ["hr_loss", "hr_objective", "fgsm_with_loss", "conditional_confusion"]

HR_ALPHA = 1.6


def _check_alpha(alpha) -> float:
    alpha = check_number(alpha, "alpha", low=1.0)
    return alpha


def hr_loss(logits: torch.Tensor, y: torch.Tensor, alpha: float = HR_ALPHA, *,
            return_terms: bool = False):
    """HR loss of a batch (seed 001, eq. (3), estimated as in the module docstring).

    ``logits`` ``(N, M)`` and labels ``y`` ``(N,)``. Returns the scalar
    :math:`\\frac1N\\sum_n H(p_\\theta(\\cdot|x_n)) + \\frac{1}{\\alpha-1}\\log\\frac1N\\sum_n
    p_\\theta(y_n|x_n)^{1-\\alpha}`, computed in log space (log-softmax, log-sum-exp); with
    ``return_terms=True`` returns ``(loss, entropy_term, renyi_term)`` where
    ``renyi_term`` is :math:`\\alpha D_\\alpha` (seed 001 normalization, i.e. the standard
    Rényi divergence of order alpha between the two empirical joint distributions).
    ``alpha`` must be > 1 (``alpha = 1`` gives the limit: cross-entropy + entropy).
    Chapter 3.
    """
    check_logits(logits, y)
    alpha = _check_alpha(alpha)
    logp = F.log_softmax(logits, dim=1)
    entropy = -(logp.exp() * logp).sum(1).mean()
    logp_y = logp.gather(1, y.long()[:, None]).squeeze(1)
    if alpha == 1.0:
        renyi = -logp_y.mean()
    else:
        n = logits.shape[0]
        renyi = (torch.logsumexp((1.0 - alpha) * logp_y, 0) - math.log(n)) / (alpha - 1.0)
    loss = entropy + renyi
    return (loss, entropy, renyi) if return_terms else loss


def hr_objective(alpha: float = HR_ALPHA):
    """Training objective ``loss_fn(model, x, y) -> (HR loss, logits)`` for ``fit``.

    Seed 001 eq. (3) with :func:`hr_loss` on each minibatch (alpha = 1.6 as in the
    paper). Chapter 3.
    """
    alpha = _check_alpha(alpha)

    def objective(model, x, y):
        logits = model(x)
        return hr_loss(logits, y, alpha), logits

    objective.alpha = alpha
    objective.__name__ = f"hr_objective(alpha={alpha:g})"
    return objective


LossSpec = Union[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]]


def _resolve_loss(loss: LossSpec, alpha: float):
    if callable(loss):
        return loss
    key = str(loss).strip().lower()
    if key == "ce":
        return lambda logits, y: F.cross_entropy(logits, y)
    if key == "hr":
        return lambda logits, y: hr_loss(logits, y, alpha)
    raise ValueError(f"loss must be 'ce', 'hr' or a callable(logits, y), got {loss!r}")


def fgsm_with_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, *,
                   loss: LossSpec = "ce", alpha: float = HR_ALPHA,
                   batch_size: int | None = None) -> torch.Tensor:
    """FGSM with a chosen loss: :math:`x_{adv} = \\mathrm{clip}_{[0,1]}(x + \\varepsilon\\,
    \\mathrm{sgn}\\nabla_x\\mathcal L(x, y))` (Goodfellow et al. 2015; seed 001 §3).

    ``loss`` is ``"ce"`` (cross-entropy), ``"hr"`` (:func:`hr_loss` with ``alpha``) or any
    ``callable(logits, y) -> scalar``: seed 001 attacks each model with both losses
    ("attack-based CE / HR"). The HR loss couples the samples of a batch (its Rényi term
    is a log-mean over the batch), so its gradient, hence the attack, depends on the batch:
    ``batch_size`` chunks the data like the training batches (default: one batch).
    The model runs in eval mode; every submodule's mode and the parameters' gradients
    are restored. Returns detached adversarial images. Chapter 3.
    """
    check_model(model)
    check_batch(x, y)
    eps = check_number(eps, "eps", low=0.0)
    loss_fn = _resolve_loss(loss, _check_alpha(alpha))
    if eps == 0.0:
        return x.detach().clone()
    n = x.shape[0]
    bs = n if batch_size is None else int(batch_size)
    if bs < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size!r}")
    grads = {p: p.grad for p in model.parameters()}
    flags = {p: p.requires_grad for p in model.parameters()}
    out = []
    try:
        with eval_mode(model):
            for p in model.parameters():
                p.requires_grad_(False)
            for start in range(0, n, bs):
                xb = x[start:start + bs].detach().clone().requires_grad_(True)
                with torch.enable_grad():
                    value = loss_fn(model(xb), y[start:start + bs])
                    (g,) = torch.autograd.grad(value, xb)
                out.append((xb.detach() + eps * g.sign()).clamp_(0.0, 1.0))
    finally:
        for p in model.parameters():
            p.requires_grad_(flags[p])
            p.grad = grads[p]
    return torch.cat(out)


def conditional_confusion(pred: torch.Tensor, y: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Confusion matrix :math:`C[\\hat y, y] = \\hat p(\\hat Y=\\hat y\\,|\\,Y=y)` (seed 001 §3).

    Row index: the decision :math:`\\hat y`; column index: the true class :math:`y`;
    each column sums to one (a column of a class absent from ``y`` is all zeros). Seed 001
    compares :math:`\\|I - C\\|_F` of CE- and HR-trained models under attack. Chapter 3.
    """
    if not isinstance(pred, torch.Tensor) or not isinstance(y, torch.Tensor) \
            or pred.ndim != 1 or pred.shape != y.shape:
        raise ValueError("pred and y must be 1-D label tensors of the same shape")
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}")
    if pred.numel() and (int(pred.min()) < 0 or int(y.min()) < 0
                         or int(pred.max()) >= num_classes or int(y.max()) >= num_classes):
        raise ValueError(f"labels must lie in [0, {num_classes - 1}]")
    counts = torch.bincount(pred.long() * num_classes + y.long(),
                            minlength=num_classes * num_classes).reshape(num_classes, num_classes)
    counts = counts.double()
    totals = counts.sum(0, keepdim=True)
    return torch.where(totals > 0, counts / totals.clamp_min(1), torch.zeros_like(counts))
