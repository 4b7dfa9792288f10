"""Fast gradient sign method (FGSM) and its random-start variant (FGSM-RS).

FGSM (seed 001; seed 003 eq. 2.1; seed 004 Alg. 1; Goodfellow et al. 2015) takes one step
of size ``eps`` along the sign of the input gradient of the loss,

    x' = clip_[0,1]( x + eps * sign(grad_x loss(f(x), y)) ),

the steepest ascent step of a linearized loss inside the Linf ball. Seed 003 writes it
as a *descent* on the classifier's score ``f(w, x)`` of the true class; ascending the
cross-entropy is the same direction. FGSM-RS (Wong et al. 2020, "fast adversarial
training") starts from a uniform random point of the ball and takes a step ``alpha``
(default ``1.25 eps``), then projects back onto the ball.

Used by: chapter 2 (attacks), chapter 3 (fast adversarial training), the HR-loss and VIB
robustness experiments (seeds 001, 002).
"""
from __future__ import annotations

import torch

from .base import FixedEpsAttack
from .projections import project_linf, random_in_ball

__all__ = ["FGSM"]


class FGSM(FixedEpsAttack):
    """FGSM (seed 003 eq. 2.1, seed 004 Alg. 1); ``random_start=True`` gives FGSM-RS.

    Args:
        model: returns logits for images in ``[0, 1]``.
        eps: Linf radius (float or per-sample tensor ``(N,)``).
        random_start: start from ``U(-eps, eps)`` (clamped to the box), step ``alpha``.
        alpha: step of FGSM-RS (default ``1.25 * eps``, Wong et al.); ignored otherwise.
        loss: ``"ce"`` (default) or ``"margin"`` (logit margin).
        eot_samples: gradient averaged over that many draws of a randomized model.
    """

    def __init__(self, model, eps, *, random_start: bool = False, alpha=None, loss: str = "ce",
                 eot_samples: int = 1) -> None:
        super().__init__(model, eps, norm="linf", loss=loss, eot_samples=eot_samples)
        if alpha is not None and (not isinstance(alpha, (int, float, torch.Tensor)) or
                                  (torch.as_tensor(alpha) < 0).any()):
            raise ValueError(f"alpha must be a non-negative number, got {alpha!r}")
        self.random_start = bool(random_start)
        self.alpha = alpha

    def _run(self, x, y, target):
        eps = self._eps(x).view(-1, *([1] * (x.ndim - 1)))
        if not self.random_start:
            grad, _ = self._grad(x, y, target)
            return x + eps * grad.sign()
        alpha = 1.25 * eps if self.alpha is None else torch.as_tensor(self.alpha, dtype=x.dtype,
                                                                       device=x.device)
        x0 = (x + random_in_ball(x.shape, self._eps(x), "linf", device=x.device,
                                 dtype=x.dtype)).clamp(0.0, 1.0)
        grad, _ = self._grad(x0, y, target)
        delta = project_linf(x0 + alpha * grad.sign() - x, self._eps(x))
        return (x + delta).clamp(0.0, 1.0)
