r"""Training objectives of the concepts (seed 000 §5.2-5.3) and their training loop.

Sharp (§5.2.1): :math:`\mathbb E_{x\sim\pi_y}[H(C(x), y)]`. Fuzzy (§5.2.2): only samples
not yet classified as ``y`` count, :math:`\mathbb E[\mathbb 1_{\arg\max C(x)\ne y}H(C(x),y)]`.
Entropy regularization (§5.3): subtract :math:`\beta H(\pi_y)`. Chapter 4.
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..modes import eval_mode
from ._checks import check_int, check_nonneg, check_positive

_KINDS = ("sharp", "fuzzy")


def _check_logits(logits, y):
    if not isinstance(logits, torch.Tensor) or logits.dim() != 2:
        raise ValueError("logits must be a tensor of shape (N, classes)")
    if not isinstance(y, torch.Tensor) or y.shape != logits.shape[:1]:
        raise ValueError(f"labels must have shape ({logits.shape[0]},)")


def sharp_loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    r"""Sharp objective: mean cross-entropy :math:`H(C(x), y)` of the samples (seed 000 §5.2.1)."""
    _check_logits(logits, y)
    return F.cross_entropy(logits, y)


def fuzzy_loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    r"""Fuzzy objective :math:`\frac1N\sum_i \mathbb 1[\arg\max C(x_i)\ne y_i]\,H(C(x_i), y_i)` (§5.2.2).

    Samples already classified as their class contribute 0 (no push towards high
    confidence), so the concept stays near the class margin. Averaged over all ``N``
    samples, the Monte Carlo estimate of the seed's expectation. Chapter 4.
    """
    _check_logits(logits, y)
    ce = F.cross_entropy(logits, y, reduction="none")
    wrong = (logits.argmax(1) != y).to(ce.dtype)
    return (wrong * ce).mean()


def concept_objective(classifier: nn.Module, concept: nn.Module, y: torch.Tensor, *,
                      kind: str = "sharp", beta: float = 0.0,
                      generator: Optional[torch.Generator] = None):
    r"""Regularized objective :math:`\mathbb E[l(C(x),y)] - \beta\,\overline{H(\pi_y)}` (seed 000 §5.3).

    Draws one sample per label in ``y`` from ``concept`` (reparameterized), scores it with
    ``classifier`` (logits) and subtracts ``beta`` times the mean entropy of the requested
    class distributions (``concept.entropy(y)``). Returns ``(loss, logits)``. Chapter 4.
    """
    if kind not in _KINDS:
        raise ValueError(f"kind must be one of {_KINDS}, got {kind!r}")
    beta = check_nonneg(beta, "beta")
    x = concept.sample(y, generator=generator)
    logits = classifier(x)
    y = y.to(logits.device)
    loss = sharp_loss(logits, y) if kind == "sharp" else fuzzy_loss(logits, y)
    if beta > 0:
        loss = loss - beta * concept.entropy(y).mean()
    return loss, logits


def fit_concepts(concept: nn.Module, classifier: nn.Module, *, steps: int = 100,
                 batch_size: int = 100, lr: float = 1e-2, kind: str = "sharp",
                 beta: float = 0.0, seed: int = 0) -> dict:
    r"""Train the concepts of a frozen classifier by Adam on :func:`concept_objective`.

    Seed 000 Algorithm 3 / §7.1.1 (100 iterations of batches of 256 in the seed). Each
    batch holds ``batch_size`` labels spread evenly over the classes. The classifier is
    in eval mode and its parameters receive no gradient; its modes and
    ``requires_grad`` flags are restored. Returns ``{"loss": [...], "acc": [...]}``,
    where ``acc`` is the fraction of samples classified as their requested class.
    Chapter 4.
    """
    steps = check_int(steps, "steps")
    batch_size = check_int(batch_size, "batch_size")
    lr = check_positive(lr, "lr")
    n_classes = concept.num_classes
    dev = next(concept.parameters()).device
    gen = torch.Generator(device=dev).manual_seed(seed)
    y = torch.arange(batch_size, device=dev) % n_classes
    opt = torch.optim.Adam(concept.parameters(), lr=lr)
    flags = [p.requires_grad for p in classifier.parameters()]
    history = {"loss": [], "acc": []}
    try:
        for p in classifier.parameters():
            p.requires_grad_(False)
        with eval_mode(classifier):
            concept.train()
            for _ in range(steps):
                loss, logits = concept_objective(classifier, concept, y, kind=kind, beta=beta,
                                                 generator=gen)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                history["loss"].append(float(loss.detach()))
                history["acc"].append(float((logits.argmax(1) == y).float().mean()))
    finally:
        for p, f in zip(classifier.parameters(), flags):
            p.requires_grad_(f)
        concept.eval()
    return history
