"""QP-verify: certified lower bounds of the minimal adversarial perturbation of K-NN.

Seed 003 eq. 3.12 (1-NN), Lemma 3 / eq. 3.18-3.19 (K-NN) and Theorem 3 / eq. 3.45-3.46
(Mahalanobis K-NN, ``M = G^T G``): with ``s = (K + 1) / 2``,

    eps* >= s-th min_{j: y_j != y}  s-th max_{i: y_i = y}  eps~(x_i, x_j, z),
    eps~(x+, x-, z) = [d_M(z, x-) - d_M(z, x+)]_+ / (2 ||M (x+ - x-)||),

the distance from ``z`` to the bisector of ``x+`` and ``x-`` (eq. 3.44 is the closed-form
optimum of the one-constraint QP, i.e. one dual coordinate of eq. 3.11). Computing every
pair costs ``O(n+ n- d)`` per test point; we get the *same* value far faster by a safe
two-stage search: (1) the inner s-th max over the ``n_pos`` positives nearest to ``z``
(a subset gives a smaller s-th max, hence a valid lower bound of each inner value) for all
negatives at once; (2) exact inner values for the negatives in ascending order of their
stage-1 values, stopping once the next stage-1 value reaches the current s-th smallest
exact value (no remaining negative can lower it). Batched over test points for stage 1.

Used by chapter 8 (Tables 3.1-3.2, Fig. 3.3, Tables 3.4-3.5).
"""
from __future__ import annotations

import torch

from ._common import PerturbationResult, as_labels, check_k, knn_predict, sq_dists
from .exact import Prepared

__all__ = ["pair_bounds", "verify_knn", "certified_error"]


def pair_bounds(prep: Prepared, dz: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor) -> torch.Tensor:
    """(len(pos), len(neg)) matrix of ``eps~(x_i, x_j, z)`` (eq. 3.45; eq. 3.19 Euclidean),
    clamped at 0; pairs with ``M (x_i - x_j) = 0`` give 0 (their bisector is everything)."""
    num = (dz[neg][None, :] - dz[pos][:, None]).clamp_min(0)
    den = 2 * prep.pair_norms(pos, neg)
    return torch.where(num > 0, num / den.clamp_min(1e-300), torch.zeros_like(num))


def _kth_max(m: torch.Tensor, s: int) -> torch.Tensor:
    """s-th largest value along dim 0 (0 if fewer than s rows: the bound is then trivial)."""
    if m.shape[0] < s:
        return torch.zeros(m.shape[1], dtype=m.dtype, device=m.device)
    return torch.topk(m, s, dim=0).values[-1]


def verify_knn(train_x, train_y, x, y=None, *, k: int = 1, G=None, n_pos: int = 256,
               block: int = 4096) -> PerturbationResult:
    """Certified radius of the (Mahalanobis) K-NN classifier at each test point (QP-verify).

    Returns ``eps`` with ``f(z + delta) = f(z)`` for all ``||delta||_2 < eps`` (seed 003
    eq. 3.12 for ``k=1``, Lemma 3 eq. 3.18 for odd ``k``, Theorem 3 eq. 3.46 with a metric
    ``G``). Test points misclassified by the K-NN (when ``y`` is given) get 0. The value is
    exactly the seed's bound over *all* pairs (see the module docstring for the two-stage
    search; ``n_pos`` only changes the speed). Used by chapter 8.
    """
    prep = Prepared(train_x, train_y, G)
    Z = prep.test_points(x)
    B = Z.shape[0]
    k = check_k(k, prep.X.shape[0])
    if y is not None:
        y = as_labels(y, B, "y", device=Z.device)
    if isinstance(n_pos, bool) or not isinstance(n_pos, int) or n_pos < 1:
        raise ValueError(f"n_pos must be a positive integer, got {n_pos!r}")
    s = (k + 1) // 2
    pred = prep.predict(Z, k)
    eps = torch.zeros(B, dtype=torch.float64, device=Z.device)
    n_exact = torch.zeros(B, dtype=torch.int64, device=Z.device)
    D = prep.dists(Z)                                          # (B, n)
    for bi in range(B):
        c = int(pred[bi])
        if y is not None and int(y[bi]) != c:
            continue
        dz = D[bi]
        pos = (prep.y == c).nonzero().flatten()
        neg = (prep.y != c).nonzero().flatten()
        if pos.numel() < s:
            continue                                           # trivial bound 0
        near = pos[torch.topk(dz[pos], min(n_pos, pos.numel()), largest=False).indices]
        stage1 = torch.cat([_kth_max(pair_bounds(prep, dz, near, neg[t:t + block]), s)
                            for t in range(0, neg.numel(), block)])
        order = torch.argsort(stage1)
        exact_vals = torch.empty(0, dtype=torch.float64, device=Z.device)
        thr = float("inf")
        t = 0
        blk = 256
        while t < order.numel() and float(stage1[order[t]]) < thr:
            js = neg[order[t:t + blk]]
            vals = _kth_max(pair_bounds(prep, dz, pos, js), s)
            exact_vals = torch.cat([exact_vals, vals])
            n_exact[bi] += js.numel()
            if exact_vals.numel() >= s:
                thr = float(torch.topk(exact_vals, s, largest=False).values[-1])
            t += blk
            blk = min(blk * 2, 1024)
        eps[bi] = max(thr, 0.0) if exact_vals.numel() >= s else 0.0
    return PerturbationResult(eps=eps, pred=pred, info={"n_exact": n_exact, "method": "QP-verify"})


def certified_error(radii, lower_bounds, correct=None) -> torch.Tensor:
    """Certified robust error (seed 003 eq. 3.39): fraction of points whose certified radius
    is not larger than each radius, misclassified points counting as radius 0 (``correct``
    False). With exact radii (1-NN) this is also the optimal empirical robust error, eq. 3.40.
    Note: a point with radius exactly ``r`` counts as an error at ``r`` (``<=``). Chapter 8."""
    lb = torch.as_tensor(lower_bounds, dtype=torch.float64).flatten()
    r = torch.as_tensor(radii, dtype=torch.float64).flatten()
    if lb.numel() == 0:
        raise ValueError("lower_bounds is empty")
    if correct is not None:
        correct = torch.as_tensor(correct, dtype=torch.bool).flatten()
        if correct.shape != lb.shape:
            raise ValueError("correct and lower_bounds differ in length")
        lb = torch.where(correct, lb, torch.zeros_like(lb))
    return (lb[None, :] <= r[:, None]).double().mean(1)
