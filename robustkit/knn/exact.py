"""Exact minimal adversarial perturbation of 1-NN classifiers (seed 003 §3.1.2, §3.2.6).

For a test point ``z`` predicted as class ``c``, split the training set into ``S+`` (label
``c``) and ``S-`` (the others). Making ``x_j^-`` the nearest neighbor of ``z + delta`` is
the QP of eq. 3.3-3.5 (one per negative ``j``), and the minimal perturbation is
``eps* = min_j sqrt(2 eps^(j))`` (eq. 3.6). Algorithm 5 (QP-exact) solves these QPs

1. in ascending order of ``||z - x_j^-||`` (sorting),
2. skipping subproblem ``j`` when the closed-form dual bound (eq. 3.11, 3.16) over the
   ``n_screen`` positives nearest to ``z`` already exceeds the best value found,
3. each through its dual by greedy coordinate ascent (eq. 3.13-3.14, Algorithm 9) on the
   constraints that survive the screening rule of Lemma 2 (eq. 3.15), with
   ``||delta*|| <= min(||x_j^- - z||, best)``.

Screening with the running best can drop an active constraint of a subproblem that cannot
win anyway; we therefore check every candidate against *all* constraints and add the
violated ones back (constraint generation), so the answer is exact, not only "usually".

The Mahalanobis version (Algorithm 8, eq. 3.49-3.50) is the same computation with rows
``a_i = M (x_j - x_i)`` and ``d_M`` distances, ``M = G^T G``; the perturbation is still
measured in the Euclidean norm of the input space. An optional box ``lo <= z + delta <= hi``
(e.g. pixels in ``[0, 1]``) adds bounds on ``delta``; the dual ascent then clips
``A^T lambda`` (see :mod:`robustkit.knn.qp`).

Used by chapter 8.
"""
from __future__ import annotations

import math
import warnings

import torch

from ._common import PerturbationResult, as_labels, as_matrix, metric_matrix, sq_dists, vote
from .qp import dual_greedy_qp

__all__ = ["exact_1nn", "qp_top_k", "subproblem", "Prepared"]


class Prepared:
    """Training set in the form the solvers need: ``X`` (n, d) float64, labels ``y``, the
    metric factor ``G`` (or None), ``XM = X M`` (rows of the constraint matrices) and the
    transformed points ``GX`` used for ``d_M`` distances."""

    def __init__(self, train_x, train_y, G=None, device=None):
        self.X = as_matrix(train_x, "train_x", device=device)
        self.y = as_labels(train_y, self.X.shape[0], "train_y", device=self.X.device)
        self.G = metric_matrix(G, self.X.shape[1], device=self.X.device)
        if self.G is None:
            self.GX, self.XM = self.X, self.X
        else:
            self.GX = self.X @ self.G.T
            self.XM = self.GX @ self.G          # rows x_i^T M
        sqn = lambda a: torch.linalg.vector_norm(a, dim=1) ** 2     # no (n, d) temporary
        self.xsq = sqn(self.X)
        self.sq = self.xsq if self.G is None else sqn(self.XM)     # ||M x_i||^2
        self.gsq = self.xsq if self.G is None else sqn(self.GX)
        self.scale = 1.0 + float(self.X.abs().max())              # for absolute tolerances
        self.n_classes = int(self.y.max()) + 1
        if int(self.y.unique().numel()) < 2:
            raise ValueError("the training set needs at least two classes")

    def test_points(self, x):
        Z = as_matrix(x, "x", device=self.X.device)
        if Z.shape[1] != self.X.shape[1]:
            raise ValueError(f"x has dimension {Z.shape[1]}, training points {self.X.shape[1]}")
        return Z

    def predict(self, Z, k: int = 1, chunk: int = 1024):
        """K-NN predictions for already-checked test points ``Z`` (B, d) (see knn_predict)."""
        out = []
        for s in range(0, Z.shape[0], chunk):
            idx = self.dists(Z[s:s + chunk]).topk(k, dim=1, largest=False).indices
            out.append(vote(self.y[idx], self.n_classes))
        return torch.cat(out)

    def dists(self, Z):
        """(B, n) squared d_M distances from test points to all training points."""
        GZ = Z if self.G is None else Z @ self.G.T
        return ((GZ * GZ).sum(1)[:, None] + self.gsq[None, :] - 2 * GZ @ self.GX.T).clamp_min_(0)

    def eucl(self, z, idx):
        """Euclidean distances ||x_i - z|| for i in ``idx`` (no copy of the rows)."""
        return (self.xsq[idx] + (z * z).sum() - 2 * (self.X @ z)[idx]).clamp_min(0).sqrt()

    def pair_norms(self, I, J):
        """(len(I), len(J)) matrix of ||M (x_i - x_j)||, gathering only the smaller side."""
        if max(I.numel(), J.numel()) <= self.XM.shape[0] // 2:
            g = self.XM[I] @ self.XM[J].T
        elif I.numel() <= J.numel():
            g = (self.XM[I] @ self.XM.T)[:, J]
        else:
            g = (self.XM[J] @ self.XM.T)[:, I].T
        return (self.sq[I][:, None] + self.sq[J][None, :] - 2 * g).clamp_min(0).sqrt()


def _box(box, z):
    if box is None:
        return None, None
    if not (isinstance(box, (tuple, list)) and len(box) == 2):
        raise ValueError(f"box must be None or a pair (low, high), got {box!r}")
    low, high = float(box[0]), float(box[1])
    if not low < high:
        raise ValueError(f"box must satisfy low < high, got {box!r}")
    if (z < low - 1e-12).any() or (z > high + 1e-12).any():
        raise ValueError(f"test points must lie inside the box [{low}, {high}]")
    return low - z, high - z


def subproblem(prep: Prepared, z: torch.Tensor, dz: torch.Tensor, j: int, pos: torch.Tensor):
    """Rows ``A`` and offsets ``b`` of the QP of negative ``j`` (eq. 3.4-3.5; eq. 3.50 with a
    metric): ``a_i = M(x_j - x_i)``, ``b_i = (d_M(z, x_i) - d_M(z, x_j)) / 2`` for i in ``pos``."""
    A = prep.XM[j][None, :] - prep.XM[pos]
    b = 0.5 * (dz[pos] - dz[j])
    return A, b


def _solve_j(prep, z, dz, j, pos, lo, hi, radius, best, screen, solver_kw, stats, guess=math.inf):
    """One subproblem with Lemma 2 screening and constraint generation; returns (eps, delta)
    or None if the subproblem is pruned (cannot beat ``best``)."""
    A, b = subproblem(prep, z, dz, j, pos)
    anorm = A.norm(dim=1)
    if screen:
        # Lemma 2 (eq. 3.15) with ||delta*|| <= R; a guess below the true norm only drops
        # constraints that the feasibility check below adds back
        R = min(radius, best, guess)
        work = (-b + anorm * R) >= 0
    else:
        work = torch.ones_like(b, dtype=torch.bool)
    stop = 0.5 * best * best if math.isfinite(best) else None
    lam = None
    tol_feas = 1e-9 * prep.scale
    for _ in range(50):
        idx = work.nonzero().flatten()
        sol = dual_greedy_qp(A[idx], b[idx], lo, hi, lam0=lam, stop_value=stop, **solver_kw)
        stats["constraints"] += int(idx.numel())
        if sol.status == "pruned":
            return None
        if sol.max_violation > 1e3 * tol_feas:             # not converged (reported) / infeasible
            stats["unconverged"] += 1
            return None
        viol = -(A @ sol.delta + b) / anorm.clamp_min(1e-300)
        bad = (viol > tol_feas) & ~work
        if not bad.any():
            return math.sqrt(2 * sol.primal), sol.delta
        if math.sqrt(2 * sol.primal) >= best:             # relaxation already too large
            return None
        full_lam = torch.zeros_like(b)
        full_lam[idx] = sol.lam
        work = work | bad
        lam = full_lam[work.nonzero().flatten()]
    raise RuntimeError("constraint generation did not converge")   # pragma: no cover


def exact_1nn(train_x, train_y, x, y=None, *, G=None, box=None, n_screen: int = 8,
              sort: bool = True, screen: bool = True, max_subproblems: int | None = None,
              max_iter: int = 20_000, tol: float = 1e-10, push: float = 1e-6) -> PerturbationResult:
    """Minimal L2 adversarial perturbation of the (Mahalanobis) 1-NN classifier: QP-exact.

    Seed 003 Algorithm 5 (Euclidean, eq. 3.3-3.16) and Algorithm 8 (Mahalanobis ``M = G^T G``,
    eq. 3.49-3.50, Theorem 4 eq. 3.68 for the screening bounds). For each test point the
    answer is ``eps* = min_j ||delta^(j)||`` over the negatives ``j`` (eq. 3.6); ``delta``
    puts ``z + delta`` on the boundary of the Voronoi cell of ``x_target``, and
    ``x_adv = z + delta + push (x_target - z - delta)`` is strictly inside it (the 1-NN
    prediction really changes). Points whose label ``y`` differs from the 1-NN prediction
    get ``eps = 0`` (they are already errors). ``box=(0, 1)`` keeps ``z + delta`` in the box.

    ``n_screen`` positives per negative for the subproblem screening (eq. 3.16, Fig. 3.4),
    ``sort``/``screen`` switch the two speed-ups off for ablations, ``max_subproblems=k``
    only looks at the ``k`` nearest negatives (QP-top-k: an attack, an upper bound).
    Vectorized parts (distances, screening bounds) are batched; the subproblems of one
    test point are solved one after the other, as the screening needs. Used by chapter 8.
    """
    prep = Prepared(train_x, train_y, G)
    Z = prep.test_points(x)
    B = Z.shape[0]
    if y is not None:
        y = as_labels(y, B, "y", device=Z.device)
    if isinstance(n_screen, bool) or not isinstance(n_screen, int) or n_screen < 1:
        raise ValueError(f"n_screen must be a positive integer, got {n_screen!r}")
    if max_subproblems is not None and (not isinstance(max_subproblems, int) or max_subproblems < 1):
        raise ValueError(f"max_subproblems must be None or a positive integer, got {max_subproblems!r}")
    solver_kw = dict(max_iter=max_iter, tol=tol)
    pred = prep.predict(Z, 1)
    eps = torch.zeros(B, dtype=torch.float64, device=Z.device)
    delta = torch.zeros_like(Z)
    target = torch.full((B,), -1, dtype=torch.int64, device=Z.device)
    n_solved = torch.zeros(B, dtype=torch.int64, device=Z.device)
    n_constraints = torch.zeros(B, dtype=torch.int64, device=Z.device)
    unconverged = torch.zeros(B, dtype=torch.int64, device=Z.device)
    gen = torch.Generator().manual_seed(0)
    for bi in range(B):
        z = Z[bi]
        c = int(pred[bi])
        if y is not None and int(y[bi]) != c:
            continue                                          # misclassified: eps = 0
        lo, hi = _box(box, z)
        dz = prep.dists(z[None])[0]
        pos = (prep.y == c).nonzero().flatten()
        neg = (prep.y != c).nonzero().flatten()
        eucl = prep.eucl(z, neg)                              # ||x_j - z||: a feasible delta
        if sort:
            order = neg[torch.argsort(dz[neg], stable=True)]
            radius_of = dict(zip(neg.tolist(), eucl.tolist()))
        else:
            order = neg[torch.randperm(neg.numel(), generator=gen).to(neg.device)]
            radius_of = dict(zip(neg.tolist(), eucl.tolist()))
        if max_subproblems is not None:
            order = order[:max_subproblems]
        if screen:                                            # eq. 3.16 with n_screen positives
            near = pos[torch.topk(dz[pos], min(n_screen, pos.numel()), largest=False).indices]
            num = (dz[order][:, None] - dz[near][None, :]).clamp_min(0)
            den = 2 * prep.pair_norms(order, near)
            lb = torch.where(num > 0, num / den.clamp_min(1e-300), torch.zeros_like(num)).amax(1)
            lb = lb.tolist()
        best, best_delta, best_j = math.inf, None, -1
        stats = {"constraints": 0, "unconverged": 0}
        solved = 0
        for t, j in enumerate(order.tolist()):
            if screen and lb[t] >= best:
                continue
            solved += 1
            guess = 2.0 * lb[t] if screen and lb[t] > 0 else math.inf
            out = _solve_j(prep, z, dz, j, pos, lo, hi, radius_of[j], best, screen, solver_kw, stats,
                           guess)
            if out is not None and out[0] < best:
                best, best_delta, best_j = out[0], out[1], j
        eps[bi], delta[bi], target[bi] = best, best_delta, best_j
        n_solved[bi], n_constraints[bi] = solved, stats["constraints"]
        unconverged[bi] = stats["unconverged"]
    if unconverged.any():
        warnings.warn(f"{int(unconverged.sum())} subproblems did not converge in max_iter={max_iter} "
                      "steps (or were infeasible under the box) and were skipped: the returned eps "
                      "is then an upper bound; raise max_iter", RuntimeWarning)
    x_adv = Z + delta
    has_t = target >= 0
    if has_t.any():
        x_adv[has_t] = x_adv[has_t] + push * (prep.X[target[has_t]] - x_adv[has_t])
    return PerturbationResult(eps=eps, delta=delta, success=torch.ones(B, dtype=torch.bool),
                              target=target, n_solved=n_solved, pred=pred, x_adv=x_adv,
                              info={"n_constraints": n_constraints, "unconverged": unconverged,
                                    "method": "QP-exact"})


def qp_top_k(train_x, train_y, x, y=None, k: int = 1, **kwargs) -> PerturbationResult:
    """QP-top-k (seed 003 §3.1.5): Algorithm 5 restricted to the ``k`` negatives nearest to
    the test point; every answer is a successful attack, so an upper bound of ``eps*``.
    Keyword arguments as in :func:`exact_1nn`. Used by chapter 8 (Table 3.1)."""
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    res = exact_1nn(train_x, train_y, x, y, max_subproblems=k, **kwargs)
    res.info["method"] = f"QP-top-{k}"
    return res
