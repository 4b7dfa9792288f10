"""DeepFool for the L2 and Linf norms (seed 004 Alg. 2; Moosavi-Dezfooli et al. 2016).

At each iteration DeepFool linearizes the logits around the current point ``x_i`` and
moves to the closest decision boundary of the linearized classifier. With
``w_k = grad Z_k(x_i) - grad Z_y(x_i)`` and ``f_k = Z_k(x_i) - Z_y(x_i)`` for the
candidate classes ``k != y``, and ``q`` the dual exponent of ``p`` (``q = 2`` for L2,
``q = 1`` for Linf):

    l   = argmin_{k != y} |f_k| / ||w_k||_q
    r_i = (|f_l| / ||w_l||_q + 1e-4) * |w_l|^{q-1} sign(w_l) / ||w_l||_q^{q-1}

(L2: ``r_i = (|f_l|/||w_l||_2 + 1e-4) w_l / ||w_l||_2``; Linf:
``r_i = (|f_l|/||w_l||_1 + 1e-4) sign(w_l)``). The perturbations accumulate,
``r = sum_i r_i``, and the next point is ``x_{i+1} = clip(x + (1 + overshoot) r)``: the
overshoot multiplies the *accumulated* perturbation (GUIDE §5 trap 7). The batch is
processed together; each sample stops as soon as it is misclassified (per-sample
stopping), and inputs the model already misclassifies are returned unchanged. Logits,
not probabilities, are linearized (trap 6). For a linear (affine) classifier one step
gives the exact minimal perturbation ``min_k |f_k| / ||w_k||_q`` (plus 1e-4).

Seed 004 writes the algorithm with the model's loss ``J``; we follow the original paper
and linearize the logits. Used by: chapter 2 (minimal perturbations, comparison with C&W).
"""
from __future__ import annotations

import torch

from .base import Attack
from .projections import check_norm

__all__ = ["DeepFool", "class_jacobian"]


def class_jacobian(z: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Gradients of every column of ``z`` (M, K) with respect to ``x`` (M, ...): shape (K, M, ...).

    Rows of ``z`` must depend only on the matching row of ``x`` (eval mode, no batch
    coupling), so the gradient of a column's *sum* gives every row's gradient at once:
    K backward passes for the whole batch (faster on CPU than a vmapped batched backward).
    """
    k = z.shape[1]
    rows = [torch.autograd.grad(z[:, j].sum(), x, retain_graph=j < k - 1)[0] for j in range(k)]
    return torch.stack(rows)


class DeepFool(Attack):
    """DeepFool (seed 004 Alg. 2) for ``norm="l2"`` or ``"linf"``, batched with per-sample stopping.

    Args:
        model: returns logits for images in ``[0, 1]``.
        norm: ``"l2"`` or ``"linf"``.
        steps: maximum number of iterations.
        overshoot: the final point is ``x + (1 + overshoot) * r``.
        num_classes: candidate classes: the ``num_classes`` largest logits of the clean
            input (the true class among them); ``None`` uses all classes.

    Untargeted only (``target`` raises). Samples not fooled after ``steps`` iterations
    are returned at their last iterate.
    """

    def __init__(self, model, *, norm="l2", steps: int = 50, overshoot: float = 0.02,
                 num_classes: int | None = None) -> None:
        super().__init__(model)
        self.norm = check_norm(norm)
        if self.norm == "l1":
            raise ValueError("DeepFool supports norm 'l2' or 'linf' (p > 1 in seed 004 Alg. 2), got 'l1'")
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise ValueError(f"steps must be a positive integer, got {steps!r}")
        if not isinstance(overshoot, (int, float)) or overshoot < 0:
            raise ValueError(f"overshoot must be a number >= 0, got {overshoot!r}")
        if num_classes is not None and (isinstance(num_classes, bool) or not isinstance(num_classes, int)
                                        or num_classes < 2):
            raise ValueError(f"num_classes must be an integer >= 2 or None, got {num_classes!r}")
        self.steps, self.overshoot, self.num_classes = steps, float(overshoot), num_classes

    def __call__(self, x, y, *, target=None):
        if target is not None:
            raise ValueError("DeepFool is an untargeted attack: do not pass target")
        return super().__call__(x, y)

    def _finalize(self, x, x_adv):
        return x_adv.clamp(0.0, 1.0)

    def _run(self, x, y, target):
        n = x.shape[0]
        view = (-1,) + (1,) * (x.ndim - 1)
        with torch.no_grad():
            logits0 = self._logits(x, y)
        c = logits0.shape[1]
        k = c if self.num_classes is None else min(self.num_classes, c)
        # candidates: the true class first, then the k-1 largest other logits
        others = logits0.scatter(1, y[:, None], float("-inf")).topk(k - 1, dim=1).indices
        cand = torch.cat([y[:, None], others], dim=1)                          # (N, k)
        active = logits0.argmax(1) == y                                        # misclassified: unchanged
        r_tot = torch.zeros_like(x)
        x_adv = x.clone()
        for it in range(self.steps + 1):
            idx = active.nonzero().squeeze(1)
            if idx.numel() == 0:
                break
            xa = x_adv[idx].detach().requires_grad_(True)
            logits = self._logits(xa)
            still = logits.argmax(1) == y[idx]
            active[idx] = still
            if not still.any() or it == self.steps:
                continue
            z = logits.gather(1, cand[idx])                                    # (M, k)
            jac = class_jacobian(z, xa)                                        # (k, M, ...)
            with torch.no_grad():
                m = idx.shape[0]
                w = (jac[1:] - jac[:1]).reshape(k - 1, m, -1)                 # (k-1, M, D)
                f = (z[:, 1:] - z[:, :1]).T.detach()                           # (k-1, M)
                wn = w.norm(dim=2) if self.norm == "l2" else w.abs().sum(2)
                ratio = f.abs() / (wn + 1e-8)
                best = ratio.argmin(0)                                         # (M,)
                ar = torch.arange(m, device=x.device)
                wl, pert, wnl = w[best, ar], ratio[best, ar], wn[best, ar]
                if self.norm == "l2":
                    r = (pert + 1e-4)[:, None] * wl / (wnl[:, None] + 1e-8)
                else:
                    r = (pert + 1e-4)[:, None] * wl.sign()
                r = r.view_as(xa) * still.view(view)                           # finished: no step
                r_tot[idx] += r
                x_adv[idx] = (x[idx] + (1 + self.overshoot) * r_tot[idx]).clamp(0.0, 1.0)
        return x_adv
