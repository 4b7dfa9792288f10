"""Carlini-Wagner L2 attack (seed 003 eq. 2.2-2.3; Carlini & Wagner 2017).

C&W solves, per sample, ``min_{x'} ||x' - x||_2^2 + c * g(x')`` (seed 003 eq. 2.2) with
the hinge on logits ``Z`` (eq. 2.3)

    g(x') = max( Z(x')_y - max_{i != y} Z(x')_i, -kappa )            (untargeted)
    g(x') = max( max_{i != t} Z(x')_i - Z(x')_t, -kappa )            (targeted, class t)

(seed 003 writes the attacker's side of the same margin; the best other logit masks the
reference class with ``-inf``). The box ``[0, 1]`` is removed by the change of variables
``x' = (tanh(w) + 1) / 2``, initialized at ``w = atanh((2x - 1)(1 - 1e-6))`` (the factor
keeps ``atanh`` finite at pixels 0 and 1). ``w`` is optimized with Adam; the constant
``c`` is tuned *per sample* by binary search (multiplied by 10 until a first success,
then bisected), and the smallest successful L2 perturbation over all iterations and
search steps is kept (GUIDE §5 trap 7). Samples never fooled are returned unchanged.

Used by: chapter 2, the randomized-defense chapters (RSE is evaluated with C&W in
seed 003 §2.1).
"""
from __future__ import annotations

import torch

from .base import Attack, best_other_logit

__all__ = ["CarliniWagnerL2"]


class CarliniWagnerL2(Attack):
    """Carlini-Wagner L2 (seed 003 eq. 2.2-2.3), per-sample binary search over ``c``.

    Args:
        model: returns logits for images in ``[0, 1]``.
        c: initial constant (per sample it is searched: x10 until success, then bisection).
        kappa: confidence margin of the hinge (``>= 0``).
        steps: Adam iterations per binary-search step.
        lr: Adam learning rate in ``w`` space.
        binary_search_steps: number of values of ``c`` tried (1 = fixed ``c``).
        abort_early: stop a search step when the total loss stalls (checked every
            ``steps // 10`` iterations, as in the authors' code).
    """

    norm = None

    def __init__(self, model, *, c: float = 1.0, kappa: float = 0.0, steps: int = 100,
                 lr: float = 0.01, binary_search_steps: int = 9, abort_early: bool = True) -> None:
        super().__init__(model)
        for name, v in (("steps", steps), ("binary_search_steps", binary_search_steps)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        for name, v, lo in (("c", c, 0.0), ("lr", lr, 0.0)):
            if not isinstance(v, (int, float)) or not v > lo:
                raise ValueError(f"{name} must be a positive number, got {v!r}")
        if not isinstance(kappa, (int, float)) or kappa < 0:
            raise ValueError(f"kappa must be a number >= 0, got {kappa!r}")
        self.c, self.kappa, self.steps, self.lr = float(c), float(kappa), steps, float(lr)
        self.binary_search_steps, self.abort_early = binary_search_steps, bool(abort_early)

    def _hinge(self, logits, y, target):
        if target is None:
            diff = logits.gather(1, y[:, None])[:, 0] - best_other_logit(logits, y)
        else:
            diff = best_other_logit(logits, target) - logits.gather(1, target[:, None])[:, 0]
        return diff.clamp_min(-self.kappa), -diff  # hinge, attacker's margin

    def _run(self, x, y, target):
        n = x.shape[0]
        view = (-1,) + (1,) * (x.ndim - 1)
        w0 = torch.atanh((2 * x - 1) * (1 - 1e-6))
        lower = torch.zeros(n, device=x.device, dtype=x.dtype)
        upper = torch.full((n,), 1e10, device=x.device, dtype=x.dtype)
        const = torch.full((n,), self.c, device=x.device, dtype=x.dtype)
        best_l2 = torch.full((n,), float("inf"), device=x.device, dtype=x.dtype)
        best_adv = x.clone()
        check_every = max(self.steps // 10, 1)
        for _ in range(self.binary_search_steps):
            w = w0.clone().requires_grad_(True)
            opt = torch.optim.Adam([w], lr=self.lr)
            success_round = torch.zeros(n, dtype=torch.bool, device=x.device)
            prev = float("inf")
            for i in range(self.steps):
                x_adv = (torch.tanh(w) + 1) / 2
                logits = self._logits(x_adv, y, target)
                l2sq = (x_adv - x).pow(2).flatten(1).sum(1)
                hinge, adv_margin = self._hinge(logits, y, target)
                loss = l2sq + const * hinge
                total = loss.sum()
                (grad,) = torch.autograd.grad(total, w)
                with torch.no_grad():
                    success = adv_margin > self.kappa
                    improved = success & (l2sq < best_l2)
                    best_l2 = torch.where(improved, l2sq, best_l2)
                    best_adv = torch.where(improved.view(view), x_adv.detach(), best_adv)
                    success_round |= success
                if self.abort_early and i % check_every == 0:
                    t = float(total.detach())
                    if t > prev * 0.9999:
                        break
                    prev = t
                w.grad = grad
                opt.step()
            with torch.no_grad():
                # the last iterate was scored before the step: score the final point too
                x_adv = (torch.tanh(w) + 1) / 2
                logits = self._logits(x_adv)
                _, adv_margin = self._hinge(logits, y, target)
                l2sq = (x_adv - x).pow(2).flatten(1).sum(1)
                success = adv_margin > self.kappa
                improved = success & (l2sq < best_l2)
                best_l2 = torch.where(improved, l2sq, best_l2)
                best_adv = torch.where(improved.view(view), x_adv, best_adv)
                success_round |= success
                upper = torch.where(success_round, torch.minimum(upper, const), upper)
                lower = torch.where(success_round, lower, torch.maximum(lower, const))
                const = torch.where(upper < 1e9, (lower + upper) / 2,
                                    torch.where(success_round, const, const * 10))
        self.best_l2_ = best_l2.sqrt()
        return best_adv
