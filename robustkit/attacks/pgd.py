"""Projected gradient descent (PGD) for the Linf, L2 and L1 threat models.

PGD (seed 000 §6.1.1; seed 003 eq. 2.4-2.5; Madry et al. 2018) maximizes the loss in
the ball ``B_p(x, eps)`` by the fixed-point iteration of projected gradient ascent,

    x_{k+1} = Pi_{B ∩ [0,1]^d}( x_k + alpha * s_k ),

with ``s_k`` the steepest-ascent direction of the norm: ``sign(g)`` for Linf (eq. 2.5),
``g / ||g||_2`` for L2, and for L1 the *sparse* direction of SLIDE (Tramèr & Boneh 2019):
``sign(g_i)`` on the ``q`` coordinates of largest ``|g_i|`` (coordinates already at a box
face and pushed outwards are skipped, Croce & Hein 2021), normalized to unit L1 norm.
The order of operations is step, project onto the eps-ball, clamp to ``[0, 1]`` (also
right after the random start); for L1 the projection is the exact projection onto the
L1 ball intersected with the box (:func:`~robustkit.attacks.projections.project_l1_box`).

Random starts are uniform in the ball; with ``restarts > 1`` the worst case per sample
(largest attacker margin) over the restarts is kept. Targeted attacks descend the loss
of the target class.

Used by: chapter 2 (figures of adversarial examples for L1 / L2 / Linf at several ball
sizes, after seed 000 figures 14-16), chapter 3 (adversarial training), every later
robustness evaluation.
"""
from __future__ import annotations

import torch

from .base import FixedEpsAttack, margin
from .projections import project, project_l1_box, random_in_ball

__all__ = ["PGD", "steepest_step"]


def steepest_step(grad: torch.Tensor, norm: str, x_adv: torch.Tensor | None = None,
                  sparsity: float = 0.95) -> torch.Tensor:
    """Unit steepest-ascent direction of ``norm`` for the gradient ``grad`` (per sample).

    Linf: ``sign(g)``; L2: ``g / (||g||_2 + 1e-10)``; L1: ``sign(g)`` on the top
    ``q = max(1, round((1 - sparsity) d))`` coordinates of ``|g|`` (excluding those that
    the box blocks at ``x_adv``), divided by their number (unit L1 norm).
    """
    n = grad.shape[0]
    if norm == "linf":
        return grad.sign()
    flat = grad.reshape(n, -1)
    if norm == "l2":
        return (flat / (flat.norm(dim=1, keepdim=True) + 1e-10)).view_as(grad)
    d = flat.shape[1]
    q = max(1, int(round((1.0 - sparsity) * d)))
    mag = flat.abs()
    if x_adv is not None:
        xf = x_adv.reshape(n, -1)
        blocked = ((xf <= 0) & (flat < 0)) | ((xf >= 1) & (flat > 0))
        mag = mag.masked_fill(blocked, 0.0)
    top = mag.topk(q, dim=1).indices
    sel = torch.zeros_like(flat).scatter_(1, top, 1.0) * (mag > 0)
    count = sel.sum(1, keepdim=True).clamp_min(1.0)
    return (sel * flat.sign() / count).view_as(grad)


class PGD(FixedEpsAttack):
    """PGD in the ``norm`` ball of radius ``eps`` (seed 000 §6.1, seed 003 eq. 2.4-2.5).

    Args:
        model: returns logits for images in ``[0, 1]``.
        eps: radius (float or per-sample tensor ``(N,)``).
        norm: ``"linf"``, ``"l2"`` or ``"l1"``.
        steps: iterations per restart.
        alpha: step size (default ``2.5 * eps / steps``, Madry et al.), float or ``(N,)``.
        random_start: start uniformly in the ball (clamped to the box).
        restarts: independent runs; the worst case per sample is kept.
        loss: ``"ce"`` or ``"margin"`` (logit margin, best other logit masked with -inf).
        eot_samples: gradient averaged over that many draws of a randomized model.
        l1_sparsity: for L1, fraction of coordinates *not* updated per step (SLIDE's
            percentile; default 0.95, i.e. the top 5 % of the gradient's coordinates).
    """

    def __init__(self, model, eps, *, norm="linf", steps: int = 40, alpha=None,
                 random_start: bool = True, restarts: int = 1, loss: str = "ce",
                 eot_samples: int = 1, l1_sparsity: float = 0.95) -> None:
        super().__init__(model, eps, norm=norm, loss=loss, eot_samples=eot_samples)
        for name, v in (("steps", steps), ("restarts", restarts)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        if alpha is not None:
            a = torch.as_tensor(alpha)
            if not torch.isfinite(a).all() or (a < 0).any() or a.ndim > 1:
                raise ValueError(f"alpha must be a non-negative float or (N,) tensor, got {alpha!r}")
        if not isinstance(l1_sparsity, (int, float)) or not 0.0 <= l1_sparsity < 1.0:
            raise ValueError(f"l1_sparsity must be in [0, 1), got {l1_sparsity!r}")
        self.steps, self.alpha, self.random_start = steps, alpha, bool(random_start)
        self.restarts, self.l1_sparsity = restarts, float(l1_sparsity)

    def _alpha(self, x: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        if self.alpha is None:
            a = 2.5 * eps / self.steps
        else:
            a = torch.as_tensor(self.alpha, dtype=x.dtype, device=x.device)
            a = a.expand(x.shape[0]) if a.ndim == 0 else a
        return a.view(-1, *([1] * (x.ndim - 1)))

    def _one_run(self, x, y, target, eps, alpha):
        if self.random_start:
            delta = random_in_ball(x.shape, eps, self.norm, device=x.device, dtype=x.dtype)
            if self.norm == "l1":
                delta = project_l1_box(x, delta, eps)
            x_adv = (x + delta).clamp(0.0, 1.0)
        else:
            x_adv = x.clone()
        for _ in range(self.steps):
            grad, _ = self._grad(x_adv, y, target)
            x_adv = x_adv + alpha * steepest_step(grad, self.norm, x_adv, self.l1_sparsity)
            delta = project(x, x_adv - x, eps, self.norm)
            x_adv = (x + delta).clamp(0.0, 1.0)
        return x_adv

    def _run(self, x, y, target):
        eps = self._eps(x)
        alpha = self._alpha(x, eps)
        best, best_score = None, None
        for _ in range(self.restarts):
            x_adv = self._one_run(x, y, target, eps, alpha)
            if self.restarts == 1:
                return x_adv
            with torch.no_grad():
                score = margin(self._logits(x_adv), y, target)
            if best is None:
                best, best_score = x_adv, score
            else:
                better = score > best_score
                best = torch.where(better.view(-1, *([1] * (x.ndim - 1))), x_adv, best)
                best_score = torch.where(better, score, best_score)
        return best
