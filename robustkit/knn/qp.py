"""Greedy coordinate ascent on the dual of a nearest-neighbor QP (seed 003 Algorithm 9).

Every exact computation of chapter 8 reduces to many small convex QPs of one shape,

    min_delta 1/2 ||delta||^2   s.t.  A delta + b >= 0,   lo <= delta <= hi (optional box),

seed 003 eq. 3.5 (rows ``a_i = x_j^- - x_i^+``, ``b_i = (||z - x_i^+||^2 - ||z - x_j^-||^2)/2``),
eq. 3.17 (K-NN) and eq. 3.49-3.50 (Mahalanobis, ``a_i = M (x_j - x_i)``). Their dual
(eq. 3.7, with the box: ``delta(lambda) = clip(A^T lambda, lo, hi)``)

    max_{lambda >= 0} D(lambda) = 1/2 ||delta||^2 - lambda^T (A delta + b)

has a sparse optimum (few active bisectors), so greedy coordinate ascent (eq. 3.13-3.14)
converges in a few times ``||lambda^*||_0`` steps. We add two things the seed leaves
implicit: an *active-set polish* (solve the equality-constrained QP on the support of
lambda and accept it when it satisfies the KKT conditions: exact up to round-off), and an
early stop when the dual value (a lower bound, weak duality eq. 3.10) exceeds
``stop_value`` (the subproblem cannot beat the best perturbation found so far).

Used by :mod:`robustkit.knn.exact`, :mod:`robustkit.knn.attacks`, chapter 8.
"""
from __future__ import annotations

from typing import NamedTuple

import torch

from ._common import single_thread

__all__ = ["QPSolution", "dual_greedy_qp"]


class QPSolution(NamedTuple):
    """``delta`` (d,), ``lam`` (m,), ``primal`` 1/2||delta||^2, ``dual`` D(lam) (a lower bound
    of the optimum), ``max_violation`` max_i -(a_i.delta + b_i)/||a_i|| (<= 0 when feasible),
    ``n_iter``, ``status`` in {"optimal", "polished", "pruned", "max_iter"}."""

    delta: torch.Tensor
    lam: torch.Tensor
    primal: float
    dual: float
    max_violation: float
    n_iter: int
    status: str


def _clip(u, lo, hi):
    if lo is not None:
        u = torch.maximum(u, lo)
    if hi is not None:
        u = torch.minimum(u, hi)
    return u


def _polish(A, b, lam, lo, hi, anorm, tol):
    """Solve the QP restricted to the support of ``lam`` with equality constraints; return
    (delta, lam) if the KKT conditions of the full problem hold, else None."""
    S = lam > 0
    if not S.any():
        return None
    u = A.T @ lam
    if lo is None and hi is None:
        free = torch.ones_like(u, dtype=torch.bool)
        fixed_val = torch.zeros_like(u)
    else:
        lo_ = lo if lo is not None else torch.full_like(u, -float("inf"))
        hi_ = hi if hi is not None else torch.full_like(u, float("inf"))
        free = (u > lo_) & (u < hi_)
        fixed_val = torch.where(u <= lo_, lo_, torch.where(u >= hi_, hi_, torch.zeros_like(u)))
        fixed_val = torch.where(free, torch.zeros_like(u), fixed_val)
    sup = S.nonzero().flatten()
    for _ in range(8):                       # drop multipliers that come out negative
        AS = A[sup]
        rhs = -b[sup] - AS @ fixed_val
        AF = AS[:, free]
        try:
            mu = torch.linalg.lstsq(AF @ AF.T, rhs[:, None]).solution[:, 0]
        except RuntimeError:
            return None
        if not (mu < -tol).any():
            break
        sup = sup[mu != mu.min()]
        if sup.numel() == 0:
            return None
    else:
        return None
    mu = mu.clamp_min(0)
    lam_new = torch.zeros_like(lam)
    lam_new[sup] = mu
    u_new = A.T @ lam_new
    delta = torch.where(free, u_new, fixed_val)
    if (torch.abs(_clip(u_new, lo, hi) - delta) > tol).any():   # clipped pattern consistent
        return None
    viol = (-(A @ delta + b) / anorm).max()
    if viol > tol:
        return None
    return delta, lam_new


def dual_greedy_qp(A: torch.Tensor, b: torch.Tensor, lo: torch.Tensor | None = None,
                   hi: torch.Tensor | None = None, lam0: torch.Tensor | None = None,
                   max_iter: int = 20_000, tol: float = 1e-10, stop_value: float | None = None,
                   polish: bool = True) -> QPSolution:
    """Solve ``min 1/2||delta||^2 s.t. A delta + b >= 0 (, lo <= delta <= hi)`` through its dual.

    Greedy coordinate ascent (seed 003 eq. 3.13-3.14, Algorithm 9): keep
    ``g = -(A delta(lambda) + b)``, pick ``i* = argmax_i |max(lambda_i + g_i/||a_i||^2, 0) -
    lambda_i|`` and update that single coordinate. Without a box the step is the exact line
    maximum; with a box ``||a_i||^2`` is an upper bound of the curvature, so each step still
    increases ``D``. Stops when every projected step moves ``delta`` by less than ``tol``
    (KKT up to ``tol``), then polishes on the support of ``lambda``; stops early with status
    ``"pruned"`` once ``D(lambda) >= stop_value`` (weak duality: the optimum is at least
    that). Constraints with ``a_i = 0`` are dropped if ``b_i >= 0`` and make the problem
    infeasible otherwise (``ValueError``). Seed 003 §3.1.2; used by chapter 8.
    """
    if A.ndim != 2 or b.ndim != 1 or A.shape[0] != b.shape[0]:
        raise ValueError(f"A must be (m, d) and b (m,), got {tuple(A.shape)} and {tuple(b.shape)}")
    m, d = A.shape
    anorm2 = (A * A).sum(1)
    zero = anorm2 <= 1e-30
    if zero.any():
        if (b[zero] < 0).any():
            raise ValueError("infeasible QP: a constraint 0 . delta + b_i >= 0 with b_i < 0")
        keep = ~zero
        sol = dual_greedy_qp(A[keep], b[keep], lo, hi,
                             None if lam0 is None else lam0[keep], max_iter, tol, stop_value, polish)
        lam = torch.zeros(m, dtype=A.dtype, device=A.device)
        lam[keep] = sol.lam
        return sol._replace(lam=lam)
    if m == 0:
        delta = _clip(torch.zeros(d, dtype=A.dtype, device=A.device), lo, hi)
        return QPSolution(delta, torch.zeros(0, dtype=A.dtype, device=A.device),
                          0.5 * float(delta @ delta), 0.5 * float(delta @ delta), -float("inf"), 0,
                          "optimal")
    with single_thread():
        return _greedy(A, b, lo, hi, lam0, max_iter, tol, stop_value, polish, anorm2)


def _greedy(A, b, lo, hi, lam0, max_iter, tol, stop_value, polish, anorm2, polish_every=100):
    m, d = A.shape
    anorm = anorm2.sqrt()
    lam = torch.zeros(m, dtype=A.dtype, device=A.device) if lam0 is None else lam0.clone()
    u = A.T @ lam
    delta = _clip(u, lo, hi)
    status = "max_iter"
    it = 0
    for it in range(1, max_iter + 1):
        g = -(A @ delta + b)
        step = (lam + g / anorm2).clamp_min(0) - lam            # eq. 3.13
        i = int(torch.argmax(step.abs()))
        s = step[i]
        if float(s.abs() * anorm[i]) <= tol:
            status = "optimal"
            break
        if stop_value is not None:
            dual = 0.5 * float(delta @ delta) + float(lam @ g)
            if dual >= stop_value:
                status = "pruned"
                break
        lam[i] += s                                               # eq. 3.14
        u = u + s * A[i]
        delta = _clip(u, lo, hi)
        if polish and it % polish_every == 0:                     # support found? finish exactly
            out = _polish(A, b, lam, lo, hi, anorm, max(tol, 1e-12) * 100)
            if out is not None:
                delta, lam = out
                status = "polished"
                break
    g = -(A @ delta + b)
    if polish and status in ("optimal", "max_iter"):
        out = _polish(A, b, lam, lo, hi, anorm, max(tol, 1e-12) * 100)
        if out is not None:
            delta, lam = out
            g = -(A @ delta + b)
            status = "polished"
    primal = 0.5 * float(delta @ delta)
    dual = 0.5 * float(delta @ delta) + float(lam @ g)
    viol = float((g / anorm).max())
    return QPSolution(delta, lam, primal, dual, viol, it, status)
