"""Minimal L-infinity and L1 adversarial perturbations of 1-NN by linear programming.

Seed 003 §3.1.4, eq. 3.20 (``min v`` s.t. ``A delta + b >= 0``, ``-v <= delta_i <= v``) and
eq. 3.21 (``min 1^T v`` s.t. ``A delta + b >= 0``, ``-v_i <= delta_i <= v_i``), one LP per
negative training point as in Algorithm 5, solved by SciPy's HiGHS. The same speed-ups as
in the L2 case apply with the dual norm: a single constraint ``a . delta + b >= 0`` needs
``||delta||_p >= [-b]_+ / ||a||_q`` (``q`` the dual exponent), which gives the screening
bounds over the nearest positives; each LP starts from the constraints of the positives
nearest to ``z`` and adds violated ones until the solution is feasible for all of them
(constraint generation: exact). Used by chapter 8.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from scipy.optimize import linprog

from ._common import PerturbationResult, as_labels, knn_predict
from .exact import Prepared, subproblem

__all__ = ["exact_1nn_lp"]


def _solve_lp(A, b, norm, lo, hi):
    m, d = A.shape
    if norm == "inf":     # variables (delta, v)
        c = np.zeros(d + 1)
        c[-1] = 1.0
        rows = [np.hstack([-A, np.zeros((m, 1))])]
        eye = np.eye(d)
        rows += [np.hstack([eye, -np.ones((d, 1))]), np.hstack([-eye, -np.ones((d, 1))])]
        rhs = np.concatenate([b, np.zeros(2 * d)])
        bounds = [(None if lo is None else lo[i], None if hi is None else hi[i]) for i in range(d)]
        bounds.append((0, None))
    else:                 # norm 1, variables (delta, v)
        c = np.concatenate([np.zeros(d), np.ones(d)])
        eye = np.eye(d)
        rows = [np.hstack([-A, np.zeros((m, d))]), np.hstack([eye, -eye]), np.hstack([-eye, -eye])]
        rhs = np.concatenate([b, np.zeros(2 * d)])
        bounds = [(None if lo is None else lo[i], None if hi is None else hi[i]) for i in range(d)]
        bounds += [(0, None)] * d
    res = linprog(c, A_ub=np.vstack(rows), b_ub=rhs, bounds=bounds, method="highs")
    if res.status != 0:
        return None
    return res.x[:d], float(res.fun)


def exact_1nn_lp(train_x, train_y, x, y=None, *, norm="inf", box=None, n_screen: int = 8,
                 n_init: int = 50) -> PerturbationResult:
    """Exact minimal ``Linf`` (``norm="inf"``, eq. 3.20) or ``L1`` (``norm=1``, eq. 3.21)
    adversarial perturbation of the 1-NN classifier, one HiGHS LP per surviving negative.

    Same output as :func:`robustkit.knn.exact_1nn` (``delta`` on the boundary, ``x_adv``
    pushed 1e-6 of the way towards the target point so the prediction really changes).
    ``box=(0, 1)`` keeps ``z + delta`` in the box. Meant for moderate dimensions (the LPs
    are dense); the course uses it on 2-D toys and the 8x8 digits. Chapter 8."""
    if norm in (float("inf"), "inf", "linf", "Linf"):
        norm, q = "inf", 1
    elif norm in (1, "1", "l1", "L1"):
        norm, q = "1", float("inf")
    else:
        raise ValueError(f"norm must be 'inf' or 1, got {norm!r}")
    prep = Prepared(train_x, train_y)
    Z = prep.test_points(x)
    B = Z.shape[0]
    if y is not None:
        y = as_labels(y, B, "y", device=Z.device)
    pred = prep.predict(Z, 1)
    eps = torch.zeros(B, dtype=torch.float64)
    delta = torch.zeros_like(Z)
    target = torch.full((B,), -1, dtype=torch.int64)
    n_solved = torch.zeros(B, dtype=torch.int64)
    D = prep.dists(Z)
    for bi in range(B):
        z, c, dz = Z[bi], int(pred[bi]), D[bi]
        if y is not None and int(y[bi]) != c:
            continue
        lo = hi = None
        if box is not None:
            lo = (float(box[0]) - z).numpy()
            hi = (float(box[1]) - z).numpy()
        pos = (prep.y == c).nonzero().flatten()
        neg = (prep.y != c).nonzero().flatten()
        order = neg[torch.argsort(dz[neg], stable=True)].tolist()
        near = pos[torch.topk(dz[pos], min(n_screen, pos.numel()), largest=False).indices]
        best, best_d, best_j = math.inf, None, -1
        for j in order:
            A, b = subproblem(prep, z, dz, j, near)
            lb = float(((-b).clamp_min(0) / torch.linalg.vector_norm(A, ord=q, dim=1).clamp_min(1e-300)).max())
            if lb >= best:
                continue
            A, b = subproblem(prep, z, dz, j, pos)
            An, bn = A.numpy(), b.numpy()
            work = np.zeros(len(bn), dtype=bool)
            work[np.argsort(dz[pos].numpy())[:n_init]] = True
            n_solved[bi] += 1
            while True:
                out = _solve_lp(An[work], bn[work], norm, lo, hi)
                if out is None:
                    break
                d_, val = out
                if val >= best:
                    break
                viol = -(An @ d_ + bn)
                bad = (viol > 1e-9) & ~work
                if not bad.any():
                    best, best_d, best_j = val, d_, j
                    break
                work |= bad
        eps[bi] = best
        delta[bi] = torch.from_numpy(best_d)
        target[bi] = best_j
    x_adv = Z + delta
    has = target >= 0
    x_adv[has] += 1e-6 * (prep.X[target[has]] - x_adv[has])
    return PerturbationResult(eps=eps, delta=delta, success=torch.ones(B, dtype=torch.bool),
                              target=target, n_solved=n_solved, pred=pred, x_adv=x_adv,
                              info={"method": f"LP-exact L{norm}"})
