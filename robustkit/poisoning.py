"""Data poisoning attacks on graph-based semi-supervised learning (label propagation).

The learner builds a Gaussian-kernel graph on labeled and unlabeled points and predicts
the unlabeled labels by the harmonic solution of label propagation; the attacker perturbs
the *training labels* within a budget to make the predictions on the unlabeled points as
wrong as possible. Everything here follows seed 003, chapter 1, §1.2 (Liu, Si, Zhu, Li,
Hsieh, *A unified framework for data poisoning attack to graph-based semi-supervised
learning*, NeurIPS 2019):

- graph and learner (§1.2.1): :func:`gaussian_kernel` ``S_ij = exp(-gamma ||x_i - x_j||^2)``,
  :func:`laplacian` ``L = D - S``, the harmonic solution of eq. (1.1)
  ``y_u = (D_uu - S_uu)^{-1} S_ul y_l`` (:func:`propagation_matrix`,
  :func:`harmonic_solution`, :func:`label_propagation`); :func:`label_spreading` is the
  related method of Zhou et al. (2004) implemented by scikit-learn's ``LabelSpreading``;
- regression (§1.2.4): :func:`poison_regression` with estimated unlabeled labels (eq. 1.3a,
  top right singular vector of ``K``) or true labels (eq. 1.3b), a non-convex trust-region
  problem (eq. 1.4) solved by the two-phase projected gradient method of Algorithm 1
  (:func:`trust_region_pgd`) or exactly by an eigendecomposition and the secular equation,
  hard case included (:func:`trust_region_exact`);
- classification (§1.2.5): the discrete problem (eq. 1.6) by :func:`greedy_flips` and by the
  probabilistic method (eq. 1.7-1.10, :func:`probabilistic_flips`) with the Gumbel
  relaxation of Bernoulli flips (eq. 1.8, :func:`gumbel_flip_relaxation`);
- baselines (§1.2.6): random noise / random flips, degree and PageRank centralities
  (:func:`degree_centrality`, :func:`pagerank`, :func:`centrality_flips`,
  :func:`centrality_perturbation`, :func:`random_perturbation`, :func:`random_flips`).

Conventions: the ``n = n_l + n_u`` points are ordered ``X = [X_l; X_u]`` (labeled first),
as in the seed; tensors keep their device, floating dtypes are kept (use float64 for the
graph solves) and integer inputs become float64; binary labels are ``-1 / +1``.

Seed deviations (documented where they apply): the seed leaves several details open, which
are fixed here: the sign of the eq. (1.3a) singular vector (the sign that raises the mean
prediction), ties of the greedy search (broken by the smooth margin), the loss of
eq. (1.7) averaged rather than summed over unlabeled nodes (only rescales ``lambda``), the
squeeze ``tanh(s x)`` with a sharpness ``s`` (the seed uses ``s = 1``), and the probabilistic
method keeps the best top-``c_max`` set met along its optimization path.

Used by: chapter 12, *Poisoning the training data*.
"""
from __future__ import annotations

import math
from typing import NamedTuple, Optional

import numpy as np
import torch

__all__ = [
    # graph and learner
    "gaussian_kernel", "median_heuristic_gamma", "laplacian", "propagation_matrix",
    "harmonic_solution", "label_propagation", "label_spreading", "split_labeled",
    # regression poisoning
    "rmse", "regression_trust_region", "trust_region_pgd", "trust_region_exact",
    "TrustRegionResult", "poison_regression", "poison_regression_estimated",
    # classification poisoning
    "error_rate", "flip_errors", "greedy_flips", "gumbel_flip_relaxation",
    "probabilistic_flips", "ProbabilisticResult",
    # baselines
    "degree_centrality", "pagerank", "random_flips", "centrality_flips",
    "random_perturbation", "centrality_perturbation",
]


# --------------------------------------------------------------------------------------
# input checks
# --------------------------------------------------------------------------------------
def _as_float(a, name: str, ndim=None, like: Optional[torch.Tensor] = None) -> torch.Tensor:
    if isinstance(a, (list, tuple, np.ndarray, int, float)):
        a = torch.as_tensor(np.asarray(a))
    if not isinstance(a, torch.Tensor):
        raise TypeError(f"{name} must be a tensor, array or list, got {type(a).__name__}")
    if not torch.is_floating_point(a):
        a = a.to(torch.float64)
    if like is not None:
        a = a.to(device=like.device, dtype=like.dtype)
    if ndim is not None:
        ndims = (ndim,) if isinstance(ndim, int) else tuple(ndim)
        if a.ndim not in ndims:
            raise ValueError(f"{name} must have {' or '.join(map(str, ndims))} dimensions, "
                             f"got shape {tuple(a.shape)}")
    if a.numel() and not torch.isfinite(a).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return a


def _check_positive(value, name: str, allow_zero: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    value = float(value)
    if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        raise ValueError(f"{name} must be {'non-negative' if allow_zero else 'positive'}, "
                         f"got {value}")
    return value


def _check_int(value, name: str, low: int = 0, high: Optional[int] = None) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    value = int(value)
    if value < low or (high is not None and value > high):
        raise ValueError(f"{name} must be in {low}..{'inf' if high is None else high}, "
                         f"got {value}")
    return value


def _check_pm1(y: torch.Tensor, name: str) -> None:
    if not ((y == 1) | (y == -1)).all():
        raise ValueError(f"{name} must contain only -1 and +1 (binary labels)")


def _generator(seed, device) -> torch.Generator:
    if isinstance(seed, torch.Generator):
        return seed
    return torch.Generator(device=device).manual_seed(_check_int(seed, "seed"))


# --------------------------------------------------------------------------------------
# graph and label propagation (seed 003 §1.2.1, eq. 1.1)
# --------------------------------------------------------------------------------------
def gaussian_kernel(x, z=None, *, gamma: float) -> torch.Tensor:
    """Gaussian kernel ``S_ij = exp(-gamma ||x_i - z_j||^2)`` (seed 003 §1.2.1).

    ``x``: ``(n, d)``, ``z``: ``(m, d)`` (default ``x``); returns ``(n, m)``. Squared
    distances are computed as ``|x|^2 + |z|^2 - 2 x.z`` and clamped at 0 (the diagonal of
    ``S(x, x)`` is exactly 1). Used by: chapter 12.
    """
    x = _as_float(x, "x", 2)
    z = x if z is None else _as_float(z, "z", 2, like=x)
    if x.shape[1] != z.shape[1]:
        raise ValueError(f"x and z must have the same number of features, got {x.shape[1]} "
                         f"and {z.shape[1]}")
    gamma = _check_positive(gamma, "gamma")
    d2 = (x * x).sum(1)[:, None] + (z * z).sum(1)[None, :] - 2.0 * x @ z.T
    d2 = d2.clamp_min(0.0)
    if z is x:
        d2.fill_diagonal_(0.0)
    return torch.exp(-gamma * d2)


def median_heuristic_gamma(x, scale: float = 1.0) -> float:
    """``gamma = scale / median_{i<j} ||x_i - x_j||^2``: a kernel width in data units.

    The seed (Table 1.1) picks ``gamma*`` by validation; in high dimension a raw ``gamma``
    underflows the kernel, so the chapter searches ``scale`` instead. Used by: chapter 12.
    """
    x = _as_float(x, "x", 2)
    if x.shape[0] < 2:
        raise ValueError("need at least 2 points for the median heuristic")
    scale = _check_positive(scale, "scale")
    sq = (x * x).sum(1)
    d2 = (sq[:, None] + sq[None, :] - 2.0 * x @ x.T).clamp_min(0.0)
    iu = torch.triu_indices(x.shape[0], x.shape[0], 1, device=x.device)
    med = d2[iu[0], iu[1]].median().item()
    if med <= 0:
        raise ValueError("all points coincide: the median squared distance is 0")
    return scale / med


def _check_graph(S, name: str = "S") -> torch.Tensor:
    S = _as_float(S, name, 2)
    if S.shape[0] != S.shape[1]:
        raise ValueError(f"{name} must be square, got shape {tuple(S.shape)}")
    if (S < 0).any():
        raise ValueError(f"{name} must have non-negative weights")
    if not torch.allclose(S, S.T, rtol=1e-10, atol=1e-12):
        raise ValueError(f"{name} must be symmetric")
    return S


def laplacian(S) -> torch.Tensor:
    """Graph Laplacian ``L = D - S`` with ``D = diag(sum_k S_ik)`` (seed 003 §1.2.1).

    ``y^T L y = 1/2 sum_ij S_ij (y_i - y_j)^2``, the energy of eq. (1.1). Used by: chapter 12.
    """
    S = _check_graph(S)
    return torch.diag(S.sum(1)) - S


def propagation_matrix(S, n_labeled: int) -> torch.Tensor:
    """``K = (D_uu - S_uu)^{-1} S_ul``, shape ``(n_u, n_l)`` (seed 003 eq. 1.1, §1.2.4).

    ``S``: ``(n, n)`` symmetric non-negative weights with the ``n_labeled`` labeled nodes
    first. The harmonic prediction is ``y_u = K y_l``; ``D`` sums over *all* nodes. Solved
    by a Cholesky factorization of the SPD matrix ``L_uu`` (it is singular when a group of
    unlabeled nodes has no path to a labeled node: a ``ValueError`` then, e.g. ``gamma`` too
    large). Used by: every attack of chapter 12.
    """
    S = _check_graph(S)
    n = S.shape[0]
    n_l = _check_int(n_labeled, "n_labeled", 1, n - 1)
    S = S.clone()
    S.fill_diagonal_(0.0)                       # self-loops cancel in D - S anyway
    deg = S.sum(1)
    L_uu = torch.diag(deg[n_l:]) - S[n_l:, n_l:]
    S_ul = S[n_l:, :n_l]
    chol, info = torch.linalg.cholesky_ex(L_uu)
    if info.item() != 0 or (deg[n_l:] <= torch.finfo(S.dtype).tiny).any():
        raise ValueError("the Laplacian block L_uu is singular: some unlabeled nodes are not "
                         "connected to any labeled node (kernel too narrow, gamma too large?)")
    K = torch.cholesky_solve(S_ul, chol)
    if not torch.isfinite(K).all():
        raise ValueError("propagation matrix is not finite (ill-conditioned graph: gamma too large?)")
    return K


def harmonic_solution(S, y_labeled) -> torch.Tensor:
    """Harmonic solution of label propagation, eq. (1.1) of seed 003 (Zhu et al. 2003).

    ``argmin_y y^T L y`` s.t. ``y_l = y_labeled``, i.e. ``y_u = (D_uu - S_uu)^{-1} S_ul y_l``.
    ``y_labeled``: ``(n_l,)`` (regression / ``-1, +1`` labels) or ``(n_l, C)`` (one-hot).
    Returns ``y_u`` of shape ``(n_u,)`` or ``(n_u, C)``. Used by: chapter 12.
    """
    S = _check_graph(S)
    y = _as_float(y_labeled, "y_labeled", (1, 2), like=S)
    K = propagation_matrix(S, y.shape[0])
    return K @ y


def label_propagation(x_labeled, y_labeled, x_unlabeled, *, gamma: float) -> torch.Tensor:
    """Label propagation with a Gaussian-kernel graph: eq. (1.1) of seed 003 on ``[X_l; X_u]``.

    Returns the predicted (real-valued) labels of ``x_unlabeled``; for ``-1/+1`` labels take
    the sign. Used by: chapter 12.
    """
    xl = _as_float(x_labeled, "x_labeled", 2)
    xu = _as_float(x_unlabeled, "x_unlabeled", 2, like=xl)
    y = _as_float(y_labeled, "y_labeled", (1, 2), like=xl)
    if y.shape[0] != xl.shape[0]:
        raise ValueError(f"y_labeled has {y.shape[0]} rows but x_labeled has {xl.shape[0]}")
    S = gaussian_kernel(torch.cat([xl, xu]), gamma=gamma)
    return harmonic_solution(S, y)


def label_spreading(S, y_labeled, n: Optional[int] = None, *, alpha: float = 0.2) -> torch.Tensor:
    """Label spreading (Zhou et al. 2004): ``F = (1 - alpha)(I - alpha N)^{-1} Y`` on all nodes.

    ``N = D^{-1/2} S D^{-1/2}`` with the diagonal of ``S`` ignored; ``Y`` holds
    ``y_labeled`` on the first ``n_l`` rows and zeros elsewhere. Unlike eq. (1.1) labeled
    nodes are not clamped, so it differs from the harmonic solution (it is what
    scikit-learn's ``LabelSpreading`` converges to). Returns ``(n,)`` or ``(n, C)``.
    Used by: chapter 12 (comparison with eq. 1.1).
    """
    S = _check_graph(S)
    y = _as_float(y_labeled, "y_labeled", (1, 2), like=S)
    alpha = _check_positive(alpha, "alpha")
    if not alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    n_all = S.shape[0]
    if y.shape[0] >= n_all:
        raise ValueError("need at least one unlabeled node (y_labeled is as long as the graph)")
    W = S.clone()
    W.fill_diagonal_(0.0)
    deg = W.sum(1)
    if (deg <= 0).any():
        raise ValueError("isolated node: every node needs a positive degree")
    dis = deg.rsqrt()
    Nm = dis[:, None] * W * dis[None, :]
    Y = torch.zeros((n_all,) + tuple(y.shape[1:]), dtype=S.dtype, device=S.device)
    Y[: y.shape[0]] = y
    A = torch.eye(n_all, dtype=S.dtype, device=S.device) - alpha * Nm
    return (1 - alpha) * torch.linalg.solve(A, Y)


def split_labeled(x, y, n_labeled: int, seed: int = 0):
    """Random labeled / unlabeled split, returned reordered as ``(x_l, y_l, x_u, y_u)``.

    As in the seed's experiments (§1.2.6: ``n_l`` points drawn at random are labeled, the
    rest unlabeled). Deterministic in ``seed``. Used by: chapter 12.
    """
    x = _as_float(x, "x", 2)
    y = torch.as_tensor(y, device=x.device)
    if y.shape[0] != x.shape[0]:
        raise ValueError(f"x has {x.shape[0]} rows but y has {y.shape[0]}")
    n_l = _check_int(n_labeled, "n_labeled", 1, x.shape[0] - 1)
    perm = torch.randperm(x.shape[0], generator=_generator(seed, "cpu")).to(x.device)
    lab, unl = perm[:n_l], perm[n_l:]
    return x[lab], y[lab], x[unl], y[unl]


# --------------------------------------------------------------------------------------
# regression poisoning (seed 003 §1.2.4)
# --------------------------------------------------------------------------------------
def rmse(pred, target) -> torch.Tensor:
    """``sqrt(mean((pred - target)^2))``, the regression metric of seed 003 §1.2.6."""
    pred = _as_float(pred, "pred", 1)
    target = _as_float(target, "target", 1, like=pred)
    if pred.shape != target.shape:
        raise ValueError(f"pred and target shapes differ: {tuple(pred.shape)} vs {tuple(target.shape)}")
    return ((pred - target) ** 2).mean().sqrt()


def _check_K(K, y_labeled):
    K = _as_float(K, "K", 2)
    y = _as_float(y_labeled, "y_labeled", 1, like=K)
    if K.shape[1] != y.shape[0]:
        raise ValueError(f"K has {K.shape[1]} columns but y_labeled has {y.shape[0]} entries")
    return K, y


def regression_trust_region(K, y_labeled, y_unlabeled):
    """``(H, g)`` of eq. (1.4) for the true-label attack eq. (1.3b) of seed 003.

    ``-1/2 ||K(y_l + delta) - y_u||^2 = 1/2 delta^T H delta + g^T delta + const`` with
    ``H = -K^T K`` and ``g = K^T (y_u - K y_l)``. Used by: :func:`poison_regression`.
    """
    K, y = _check_K(K, y_labeled)
    yu = _as_float(y_unlabeled, "y_unlabeled", 1, like=K)
    if yu.shape[0] != K.shape[0]:
        raise ValueError(f"K has {K.shape[0]} rows but y_unlabeled has {yu.shape[0]} entries")
    return -(K.T @ K), K.T @ (yu - K @ y)


def _check_trs(H, g, radius):
    H = _as_float(H, "H", 2)
    g = _as_float(g, "g", 1, like=H)
    if H.shape[0] != H.shape[1] or H.shape[0] != g.shape[0]:
        raise ValueError(f"H must be (d, d) and g (d,), got {tuple(H.shape)} and {tuple(g.shape)}")
    if not torch.allclose(H, H.T, rtol=1e-8, atol=1e-12 * max(1.0, H.abs().max().item())):
        raise ValueError("H must be symmetric")
    radius = _check_positive(radius, "radius")
    return H, g, radius


class TrustRegionResult(NamedTuple):
    """Solution ``z``, objective ``f(z) = 1/2 z^T H z + g^T z``, multiplier ``lam`` of the
    norm constraint, iterations of phase I / II (0 for the exact solver), hard case flag, and
    the objective after every iteration (Algorithm 1 only)."""

    z: torch.Tensor
    value: float
    lam: float
    phase1_iters: int
    phase2_iters: int
    hard_case: bool
    values: tuple = ()


def _quad(H, g, z):
    return 0.5 * z @ (H @ z) + g @ z


def _sphere_descent(H, g, z, r, beta, scale, tol, armijo, budget, hist):
    """Phase II of Algorithm 1: projected gradient on ``||z|| = r`` with Armijo backtracking."""
    t2 = 0
    a = 1.0 / beta
    f = _quad(H, g, z)
    while t2 < budget:
        grad = H @ z + g
        pg = grad - (z @ grad) / r ** 2 * z
        pgn2 = (pg @ pg).item()
        if math.sqrt(pgn2) <= tol * scale:
            break
        a = min(4.0 * a, 1e3 / beta)
        while True:
            w = z - a * pg
            z_new = r * w / w.norm()
            f_new = _quad(H, g, z_new)
            if f_new <= f - armijo * a * pgn2 and f_new < f:
                break
            a *= 0.5
            if a < 1e-12 / beta:                      # no decrease left at float precision
                return z, f, t2
        z, f = z_new, f_new
        hist.append(f.item())
        t2 += 1
    return z, f, t2


def trust_region_pgd(H, g, radius: float = 1.0, *, step: Optional[float] = None,
                     init_scale: float = 0.5, max_iter: int = 5000, tol: float = 1e-9,
                     armijo: float = 1e-4, escape_tries: int = 2, escape_size: float = 1e-3,
                     seed=0) -> TrustRegionResult:
    """Algorithm 1 of seed 003: two-phase projected gradient for ``min_{||z||<=r} 1/2 z^T H z + g^T z``.

    Phase I starts at ``z_0 = -init_scale * r g / ||g||`` (Theorem 1: ``init_scale`` below
    ``min(1, ||g||^3 / |g^T H g|)``) and takes gradient steps ``z <- z - eta (H z + g)`` with
    ``eta < 1 / ||H||_op`` (``||H||_op`` by power iteration) while inside the ball; the first
    iterate outside is projected on the sphere. Phase II runs projected gradient descent on
    the sphere, ``z <- r (z - a P_z grad) / ||z - a P_z grad||`` with ``P_z = I - z z^T / r^2``
    and an Armijo backtracking line search on ``a``, until the projected gradient is below
    ``tol`` (relative to ``||g|| + ||H|| r``), no decrease is left at float precision, or
    ``max_iter`` iterations (per phase). Only
    matrix-vector products with ``H``. If phase I converges inside the ball (``H`` positive
    definite with an interior minimizer), that point is returned. The seed proves
    convergence to the global minimum (Theorem 1) and an asymptotic linear rate (Theorem 2)
    when ``g`` has a component on the bottom eigenvector ``v_1``.

    Deviation (the hard case): when ``g^T v_1 = 0`` the iterates never leave ``v_1^perp`` and
    stall at a saddle point on the sphere; after phase II we therefore restart it
    ``escape_tries`` times from a random point at distance ``escape_size * r`` (seeded) and
    keep the better point (perturbed gradient descent, Jin et al. 2017). Used by:
    :func:`poison_regression`, chapter 12.
    """
    H, g, r = _check_trs(H, g, radius)
    init_scale = _check_positive(init_scale, "init_scale")
    if not init_scale < 1:
        raise ValueError(f"init_scale must be in (0, 1), got {init_scale}")
    max_iter = _check_int(max_iter, "max_iter", 1)
    escape_tries = _check_int(escape_tries, "escape_tries", 0)
    escape_size = _check_positive(escape_size, "escape_size")
    tol = _check_positive(tol, "tol")
    gnorm = g.norm()
    if gnorm == 0:
        raise ValueError("g = 0: Algorithm 1 needs a nonzero linear term (the solution is then "
                         "a bottom eigenvector; see poison_regression_estimated)")
    v = g / gnorm
    beta = 0.0
    for _ in range(100):
        w = H @ v
        beta_new = w.norm().item()
        if beta_new == 0:
            break
        v = w / beta_new
        if abs(beta_new - beta) <= 1e-6 * beta_new:
            beta = beta_new
            break
        beta = beta_new
    beta = max(beta, 1e-12 * gnorm.item() / r)
    eta = 1.0 / (1.1 * beta) if step is None else _check_positive(step, "step")
    scale = gnorm.item() + beta * r                       # gradient scale on the ball
    z = -init_scale * r * g / gnorm
    t1 = 0
    hist = [_quad(H, g, z).item()]
    # Phase I: gradient descent inside the ball
    while True:
        grad = H @ z + g
        if grad.norm().item() <= tol * scale or t1 >= max_iter:   # interior stationary point
            return TrustRegionResult(z * 1.0, hist[-1], 0.0, t1, 0, False, tuple(hist))
        z_new = z - eta * grad
        t1 += 1
        if z_new.norm() >= r:
            z = r * z_new / z_new.norm()
            hist.append(_quad(H, g, z).item())
            break
        z = z_new
        hist.append(_quad(H, g, z).item())
    # Phase II: projected gradient on the sphere, then saddle escapes
    z, f, t2 = _sphere_descent(H, g, z, r, beta, scale, tol, armijo, max_iter, hist)
    gen = _generator(seed, z.device)
    for _ in range(escape_tries):
        xi = torch.randn(z.shape, generator=gen, dtype=z.dtype, device=z.device)
        w = z + escape_size * r * xi / xi.norm()
        trial = []
        z2, f2, k = _sphere_descent(H, g, r * w / w.norm(), r, beta, scale, tol, armijo,
                                    max_iter, trial)
        t2 += k
        if f2 < f - 1e-12 * scale * r:
            z, f = z2, f2
            hist.extend(trial)
    lam = -(z @ (H @ z + g)).item() / r ** 2
    return TrustRegionResult(z, f.item(), lam, t1, t2, False, tuple(hist))


def trust_region_exact(H, g, radius: float = 1.0, *, hard_tol: float = 1e-10) -> TrustRegionResult:
    """Global solution of ``min_{||z||<=r} 1/2 z^T H z + g^T z`` by eigendecomposition.

    With ``H = Q diag(l) Q^T`` and ``h = Q^T g``, the global minimizer satisfies
    ``(H + lam I) z = -g``, ``H + lam I >= 0``, ``lam >= 0``, ``lam (r - ||z||) = 0``
    (Moré & Sorensen 1983). Interior case: ``l_1 > 0`` and ``||H^{-1} g|| <= r``. Otherwise
    ``lam > max(0, -l_1)`` solves the secular equation ``1/r - 1/||z(lam)|| = 0``,
    ``z(lam)_i = -h_i / (l_i + lam)`` (Brent's method, bracket ``[-l_1, -l_1 + ||g|| / r]``).
    Hard case: ``h`` vanishes on the bottom eigenspace (``|h_i| <= hard_tol ||g||``) and
    ``p = -(H - l_1 I)^+ g`` has ``||p|| <= r``: then ``lam = -l_1`` and
    ``z = p + tau q_1`` with ``||z|| = r``. Float64 NumPy / SciPy; ``O(d^3)``. The reference
    for Algorithm 1 (seed 003 §1.2.4). Used by: tests, benchmark, chapter 12.
    """
    from scipy.optimize import brentq

    H, g, r = _check_trs(H, g, radius)
    Hn = H.detach().cpu().double().numpy()
    gn = g.detach().cpu().double().numpy()
    lam_all, Q = np.linalg.eigh(0.5 * (Hn + Hn.T))
    h = Q.T @ gn
    gnorm = float(np.linalg.norm(gn))
    l1 = float(lam_all[0])
    spread = max(abs(lam_all).max(), 1e-300)
    out = lambda z, lam, hard: TrustRegionResult(  # noqa: E731
        torch.as_tensor(z, dtype=H.dtype, device=H.device),
        float(0.5 * z @ Hn @ z + gn @ z), float(lam), 0, 0, hard)
    if l1 > 0:
        z = -Q @ (h / lam_all)
        if np.linalg.norm(z) <= r:
            return out(z, 0.0, False)
    lo = max(0.0, -l1)
    bottom = (lam_all + lo) <= 1e-12 * spread           # eigenvalues at the pole
    if bottom.any() and np.all(np.abs(h[bottom]) <= hard_tol * max(gnorm, 1e-300)):
        p_hat = np.zeros_like(h)
        p_hat[~bottom] = -h[~bottom] / (lam_all[~bottom] + lo)
        pn = float(np.linalg.norm(p_hat))
        if pn <= r:                                     # the hard case
            tau = math.sqrt(max(r * r - pn * pn, 0.0))
            z = Q @ p_hat + tau * Q[:, 0]
            return out(z, lo, True)
    if gnorm == 0:                                      # no hard-case branch hit: H >= 0, z = 0
        return out(np.zeros_like(gn), 0.0, False)

    def psi(lam):
        d = lam_all + lam
        with np.errstate(divide="ignore"):
            if np.any((d <= 0) & (h != 0)):
                return 1.0 / r
            zz = np.where(d > 0, h / np.where(d > 0, d, 1.0), 0.0)
        nz = np.linalg.norm(zz)
        return 1.0 / r - (1.0 / nz if nz > 0 else np.inf)

    hi = lo + gnorm / r
    a = lo
    if psi(a) <= 0:                                      # numerically at the pole: nudge
        a = lo + 1e-15 * max(spread, hi)
    lam = brentq(psi, a, hi, xtol=1e-15 * max(1.0, hi), rtol=4 * np.finfo(float).eps,
                 maxiter=500)
    d = lam_all + lam
    z = -Q @ np.where(d > 0, h / np.where(d > 0, d, 1.0), 0.0)
    z *= r / np.linalg.norm(z)                          # exactly on the sphere
    return out(z, lam, False)


def poison_regression_estimated(K, d_max: float) -> torch.Tensor:
    """Eq. (1.3a) of seed 003: ``delta = d_max v_1``, top right singular vector of ``K``.

    Maximizes ``||K delta||`` over ``||delta|| <= d_max``: the attacker who does not know
    ``y_u`` pushes the predictions away from his own estimate ``K y_l``. The sign is free; we
    take the one that raises the mean prediction (``sum(K v_1) >= 0``). Used by: chapter 12.
    """
    K = _as_float(K, "K", 2)
    d_max = _check_positive(d_max, "d_max", allow_zero=True)
    _, _, Vh = torch.linalg.svd(K, full_matrices=False)
    v = Vh[0]
    if (K @ v).sum() < 0:
        v = -v
    return d_max * v


def poison_regression(K, y_labeled, d_max: float, y_unlabeled=None, *, solver: str = "pgd",
                      **solver_kwargs) -> torch.Tensor:
    """Label poisoning of label-propagation regression, eq. (1.3a)/(1.3b) of seed 003.

    Returns ``delta`` with ``||delta||_2 <= d_max`` that maximizes
    ``||K (y_l + delta) - h(y_u)||`` where ``h(y_u) = y_u`` if ``y_unlabeled`` is given (true
    label, eq. 1.3b, a trust-region problem, eq. 1.4, solved by Algorithm 1 with
    ``solver="pgd"`` or exactly with ``solver="exact"``) and ``h(y_u) = K y_l`` otherwise
    (estimated label, eq. 1.3a, by SVD). Used by: chapter 12.
    """
    K, y = _check_K(K, y_labeled)
    d_max = _check_positive(d_max, "d_max", allow_zero=True)
    if solver not in ("pgd", "exact"):
        raise ValueError(f"solver must be 'pgd' or 'exact', got {solver!r}")
    if d_max == 0:
        return torch.zeros_like(y)
    if y_unlabeled is None:
        return poison_regression_estimated(K, d_max)
    H, g = regression_trust_region(K, y, y_unlabeled)
    if g.norm() == 0:
        return poison_regression_estimated(K, d_max)
    fn = trust_region_pgd if solver == "pgd" else trust_region_exact
    return fn(H, g, d_max, **solver_kwargs).z


# --------------------------------------------------------------------------------------
# classification poisoning (seed 003 §1.2.5)
# --------------------------------------------------------------------------------------
def _check_binary(K, y_labeled, target):
    K, y = _check_K(K, y_labeled)
    _check_pm1(y, "y_labeled")
    t = _as_float(target, "target", 1, like=K)
    if t.shape[0] != K.shape[0]:
        raise ValueError(f"K has {K.shape[0]} rows but target has {t.shape[0]} entries")
    _check_pm1(t, "target")
    return K, y, t


def error_rate(pred, target) -> torch.Tensor:
    """Fraction of ``sign(pred) != target`` (``sign(0)`` counts as an error), seed 003 §1.2.6."""
    pred = _as_float(pred, "pred", 1)
    target = _as_float(target, "target", 1, like=pred)
    if pred.shape != target.shape:
        raise ValueError(f"pred and target shapes differ: {tuple(pred.shape)} vs {tuple(target.shape)}")
    return (torch.sign(pred) != target).to(pred.dtype).mean()


def flip_errors(K, y_labeled, flips, target) -> torch.Tensor:
    """Error rates of ``sign(K (y_l * delta))`` against ``target`` for a batch of flip sets.

    ``flips``: boolean ``(n_l,)`` or ``(B, n_l)`` (``True``: ``delta_i = -1``). The objective of
    eq. (1.6) of seed 003 equals ``-2 n_u`` times this error rate. Vectorized over the batch.
    Used by: greedy / probabilistic attacks, tests, chapter 12.
    """
    K, y, t = _check_binary(K, y_labeled, target)
    flips = torch.as_tensor(flips, device=K.device)
    if flips.dtype != torch.bool:
        raise TypeError(f"flips must be boolean, got {flips.dtype}")
    single = flips.ndim == 1
    F = flips[None] if single else flips
    if F.ndim != 2 or F.shape[1] != y.shape[0]:
        raise ValueError(f"flips must be (n_l,) or (B, n_l) with n_l={y.shape[0]}, got {tuple(flips.shape)}")
    ys = y[None] * (1.0 - 2.0 * F.to(K.dtype))                      # (B, n_l)
    err = (torch.sign(ys @ K.T) != t[None]).to(K.dtype).mean(1)
    return err[0] if single else err


def greedy_flips(K, y_labeled, c_max: int, target) -> torch.Tensor:
    """Greedy search for eq. (1.6) of seed 003: flip, one at a time, the label that most
    increases the number of wrong signs of ``K (y_l * delta)`` against ``target``.

    ``target``: the true ``y_u`` or the estimate ``sign(K y_l)`` (both ``-1/+1``). Ties of the
    count (frequent: the objective is piecewise constant) are broken by the smooth margin
    ``-mean(target * clip(K y, -1, 1))``. All ``n_l`` candidate flips are scored at once
    (an ``(n_u, n_l)`` update). Returns the flipped indices in order, length ``c_max``: the
    first ``c`` are the greedy attack of budget ``c``. Used by: chapter 12.
    """
    K, y, t = _check_binary(K, y_labeled, target)
    c_max = _check_int(c_max, "c_max", 0, y.shape[0])
    ys = y.clone()
    f = K @ ys
    available = torch.ones_like(y, dtype=torch.bool)
    order = []
    for _ in range(c_max):
        cand = f[:, None] - 2.0 * K * ys[None, :]                     # (n_u, n_l)
        count = (torch.sign(cand) != t[:, None]).to(K.dtype).sum(0)
        margin = 0.5 * (1.0 - (t[:, None] * cand.clamp(-1, 1)).mean(0))  # in [0, 1]
        score = count + 0.5 * margin
        score[~available] = -math.inf
        i = int(score.argmax())
        order.append(i)
        available[i] = False
        f = cand[:, i]
        ys[i] = -ys[i]
    return torch.tensor(order, dtype=torch.long, device=K.device)


def gumbel_flip_relaxation(alpha, tau: float, n_samples: int = 1, *, seed=0,
                           logits: bool = False) -> torch.Tensor:
    """Relaxed Bernoulli sign flips, eq. (1.8) of seed 003 (Gumbel / concrete trick).

    ``z = 2 / (1 + exp((log(alpha / (1 - alpha)) + g_1 - g_2) / tau)) - 1`` in ``(-1, 1)``
    with ``g_1, g_2`` i.i.d. Gumbel(0, 1); as ``tau -> 0``, ``P[z < 0] = alpha`` (the flip
    probability) and ``z -> -1 / +1``. ``alpha``: ``(n_l,)`` probabilities (or logits with
    ``logits=True``); returns ``(n_samples, n_l)``, differentiable in ``alpha``. ``seed``: int
    or ``torch.Generator``. Used by: :func:`probabilistic_flips`, chapter 12.
    """
    a = alpha if isinstance(alpha, torch.Tensor) else _as_float(alpha, "alpha", 1)
    if not torch.is_floating_point(a) or a.ndim != 1:
        raise ValueError(f"alpha must be a 1-D float tensor, got {tuple(a.shape)}")
    tau = _check_positive(tau, "tau")
    n_samples = _check_int(n_samples, "n_samples", 1)
    if logits:
        logit = a
    else:
        if ((a <= 0) | (a >= 1)).any():
            raise ValueError("alpha must be in the open interval (0, 1) (use logits=True for "
                             "unconstrained parameters)")
        logit = torch.log(a) - torch.log1p(-a)
    gen = _generator(seed, a.device)
    u = torch.rand((2, n_samples, a.shape[0]), generator=gen, dtype=a.dtype, device=a.device)
    u = u.clamp(torch.finfo(a.dtype).tiny, 1 - torch.finfo(a.dtype).eps)
    gumbel = -torch.log(-torch.log(u))
    delta_g = gumbel[0] - gumbel[1]
    return 2.0 * torch.sigmoid(-(logit[None] + delta_g) / tau) - 1.0


class ProbabilisticResult(NamedTuple):
    """Flipped indices (top-``c_max`` of ``alpha``), their error rate, the final ``alpha``
    and the relaxed loss of eq. (1.9) along the optimization."""

    flips: torch.Tensor
    error: float
    alpha: torch.Tensor
    losses: list


def probabilistic_flips(K, y_labeled, c_max: int, target, *, lam: Optional[float] = None,
                        tau: float = 0.5, sharpness: float = 5.0, steps: int = 200,
                        lr: float = 0.1, n_samples: int = 32, init_alpha: Optional[float] = None,
                        seed=0) -> ProbabilisticResult:
    """Probabilistic method of seed 003 (eq. 1.7-1.10): optimize flip probabilities ``alpha``.

    Minimizes ``L(alpha) = -1/2 E ||tanh(s K (y_l * z(alpha, Delta_G))) - target||^2 / n_u +
    lam/2 ||alpha||^2`` with the Gumbel relaxation ``z`` of eq. (1.8) (temperature ``tau``),
    ``n_samples`` Monte Carlo draws per step (the gradient estimator eq. 1.10) and Adam on
    ``logit(alpha)``. The attack flips the top-``c_max`` entries of ``alpha``; the best such
    set (exact error of eq. 1.6) met every few steps is kept. The seed reaches the budget
    "by selecting a proper lambda"; with ``lam=None`` (default) lambda is adapted during the
    optimization, ``lam <- lam * exp(0.2 (sum(alpha) / c_max - 1))``, so that the expected
    number of flips ``sum(alpha)`` settles near ``c_max``; a number fixes it. Deviations from
    the seed: the loss is averaged over unlabeled nodes, ``tanh(s x)`` has a sharpness ``s``
    (seed: 1), and alpha is parameterized by its logit. Used by: chapter 12.
    """
    K, y, t = _check_binary(K, y_labeled, target)
    n_l = y.shape[0]
    c_max = _check_int(c_max, "c_max", 0, n_l)
    adaptive = lam is None
    lam = 0.1 if adaptive else _check_positive(lam, "lam", allow_zero=True)
    sharpness = _check_positive(sharpness, "sharpness")
    steps = _check_int(steps, "steps", 1)
    lr = _check_positive(lr, "lr")
    if c_max == 0:
        flips = torch.zeros(0, dtype=torch.long, device=K.device)
        err = flip_errors(K, y, torch.zeros(n_l, dtype=torch.bool, device=K.device), t).item()
        return ProbabilisticResult(flips, err, torch.zeros_like(y), [])
    a0 = min(max(c_max / n_l, 1e-3), 0.5) if init_alpha is None else float(init_alpha)
    if not 0 < a0 < 1:
        raise ValueError(f"init_alpha must be in (0, 1), got {a0}")
    gen = _generator(seed, K.device)
    theta = torch.full((n_l,), math.log(a0 / (1 - a0)), dtype=K.dtype, device=K.device)
    theta += 0.01 * torch.randn(n_l, generator=gen, dtype=K.dtype, device=K.device)
    theta.requires_grad_(True)
    opt = torch.optim.Adam([theta], lr=lr)
    Kd = K.detach()
    best_err, best_set, losses = -1.0, None, []

    def check(th):
        nonlocal best_err, best_set
        idx = torch.topk(th.detach(), c_max).indices
        mask = torch.zeros(n_l, dtype=torch.bool, device=K.device)
        mask[idx] = True
        e = flip_errors(Kd, y, mask, t).item()
        if e > best_err:
            best_err, best_set = e, idx.sort().values
    every = max(1, steps // 20)
    for s in range(steps):
        z = gumbel_flip_relaxation(theta, tau, n_samples, seed=gen, logits=True)
        pred = torch.tanh(sharpness * ((z * y[None]) @ Kd.T))        # (B, n_u)
        alpha = torch.sigmoid(theta)
        loss = -0.5 * ((pred - t[None]) ** 2).sum(1).mean() / Kd.shape[0] \
            + 0.5 * lam * (alpha ** 2).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
        if adaptive:                                    # dual-like update towards sum(alpha) = c_max
            ratio = alpha.detach().sum().item() / c_max
            lam = min(max(lam * math.exp(0.2 * (ratio - 1.0)), 1e-6), 1e4)
        if s % every == every - 1 or s == steps - 1:
            check(theta)
    return ProbabilisticResult(best_set, best_err, torch.sigmoid(theta.detach()), losses)


# --------------------------------------------------------------------------------------
# baselines (seed 003 §1.2.6)
# --------------------------------------------------------------------------------------
def degree_centrality(S) -> torch.Tensor:
    """Weighted degree ``d_i = sum_{j != i} S_ij`` of every node (baseline of seed 003 §1.2.6)."""
    S = _check_graph(S)
    return S.sum(1) - S.diagonal()


def pagerank(S, damping: float = 0.85) -> torch.Tensor:
    """PageRank of the weighted graph ``S``: ``p = (1 - damping)/n + damping P^T p``, ``sum p = 1``.

    ``P = D^{-1} S`` (self-loops removed); solved exactly as the linear system
    ``(I - damping P^T) p = (1 - damping)/n`` (dense, ``O(n^3)``, the graphs of the chapter
    have a few thousand nodes). Centrality baseline of seed 003 §1.2.6. Used by: chapter 12.
    """
    S = _check_graph(S)
    damping = _check_positive(damping, "damping")
    if not damping < 1:
        raise ValueError(f"damping must be in (0, 1), got {damping}")
    W = S.clone()
    W.fill_diagonal_(0.0)
    deg = W.sum(1)
    n = W.shape[0]
    P = torch.where(deg[:, None] > 0, W / deg.clamp_min(1e-300)[:, None], 1.0 / n)
    A = torch.eye(n, dtype=W.dtype, device=W.device) - damping * P.T
    p = torch.linalg.solve(A, torch.full((n,), (1 - damping) / n, dtype=W.dtype, device=W.device))
    return p / p.sum()


def random_flips(n_labeled: int, c_max: int, seed=0) -> torch.Tensor:
    """``c_max`` distinct labeled indices drawn uniformly (random baseline, seed 003 §1.2.6)."""
    n_l = _check_int(n_labeled, "n_labeled", 1)
    c_max = _check_int(c_max, "c_max", 0, n_l)
    return torch.randperm(n_l, generator=_generator(seed, "cpu"))[:c_max].sort().values


def centrality_flips(scores_labeled, c_max: int) -> torch.Tensor:
    """Indices of the ``c_max`` labeled nodes of largest centrality (degree / PageRank baseline)."""
    s = _as_float(scores_labeled, "scores_labeled", 1)
    c_max = _check_int(c_max, "c_max", 0, s.shape[0])
    return torch.topk(s, c_max).indices


def random_perturbation(n_labeled: int, d_max: float, seed=0, dtype=torch.float64) -> torch.Tensor:
    """Gaussian noise rescaled to ``||delta||_2 = d_max`` (random baseline for regression)."""
    n_l = _check_int(n_labeled, "n_labeled", 1)
    d_max = _check_positive(d_max, "d_max", allow_zero=True)
    v = torch.randn(n_l, generator=_generator(seed, "cpu"), dtype=dtype)
    return d_max * v / v.norm()


def centrality_perturbation(scores_labeled, y_labeled, d_max: float, k: int = 10) -> torch.Tensor:
    """Regression baseline: spread ``d_max`` evenly over the ``k`` most central labeled nodes.

    ``delta_i = -sign(y_i - median(y_l)) d_max / sqrt(k)`` on those nodes (each label is
    pushed towards the other side of the label distribution), 0 elsewhere; the seed's
    appendix, which specifies its centrality baselines, is not part of seed 003, so this
    is our reading. Used by: chapter 12.
    """
    s = _as_float(scores_labeled, "scores_labeled", 1)
    y = _as_float(y_labeled, "y_labeled", 1, like=s)
    if s.shape != y.shape:
        raise ValueError("scores_labeled and y_labeled must have the same length")
    d_max = _check_positive(d_max, "d_max", allow_zero=True)
    k = _check_int(k, "k", 1, s.shape[0])
    idx = torch.topk(s, k).indices
    sign = -torch.sign(y[idx] - y.median())
    sign[sign == 0] = 1.0
    delta = torch.zeros_like(y)
    delta[idx] = sign * d_max / math.sqrt(k)
    return delta
