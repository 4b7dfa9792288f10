r"""Explanations that optimize the robustness criteria: Greedy and Greedy-AS (seed 003 §7.2).

The set value of a relevant set :math:`S_r` is the restricted minimal perturbation
:math:`g(f,x,S)` of eq. (7.1) (:func:`~robustkit.explain.criteria.restricted_minimal_perturbation`):

- objective ``"complement"`` (eq. 7.3): maximize :math:`v(S_r) = g(f, x, \bar S_r)`;
- objective ``"relevant"`` (eq. 7.4): minimize :math:`v(S_r) = g(f, x, S_r)`;
- objective ``"both"``: maximize :math:`g(f,x,\bar S_r) - g(f,x,S_r)` (our combination).

:func:`greedy` solves the sub-problem of eq. (7.5) by exhaustive search over the unchosen
features; :func:`greedy_as` replaces it by the regression of eq. (7.6) over random subsets,
whose coefficients are Banzhaf values (Hammer & Holzman 1992), see
:func:`banzhaf_regression` and :func:`banzhaf_exact`. Chapter 11.
"""
from __future__ import annotations

import itertools

import torch
from torch import nn

from .criteria import restricted_minimal_perturbation
from .features import _check_image, n_features, to_pixels

_OBJECTIVES = ("complement", "relevant", "both")


def banzhaf_exact(value_fn, n: int) -> torch.Tensor:
    r"""Exact Banzhaf values :math:`\phi_i = 2^{-(n-1)}\sum_{S\subseteq N\setminus i} [v(S\cup i) - v(S)]`
    by enumerating all :math:`2^n` coalitions (brute-force oracle, small ``n`` only).

    ``value_fn(B)`` maps a float ``(M, n)`` 0/1 matrix of coalitions to values ``(M,)``. Chapter 11.
    """
    if not isinstance(n, int) or n < 1 or n > 20:
        raise ValueError("n must be an int in [1, 20]")
    B = torch.tensor(list(itertools.product([0.0, 1.0], repeat=n)), dtype=torch.float64)
    v = torch.as_tensor(value_fn(B), dtype=torch.float64)
    phi = torch.empty(n, dtype=torch.float64)
    for i in range(n):
        on, off = B[:, i] == 1, B[:, i] == 0
        phi[i] = (v[on].sum() - v[off].sum()) / 2 ** (n - 1)
    return phi


def banzhaf_regression(B: torch.Tensor, v: torch.Tensor, *, ridge: float = 0.0):
    r"""Least squares :math:`\min_{w,c}\sum_S (w^\top b(S) + c - v(S))^2` of eq. (7.6).

    ``B`` ``(..., M, n)`` 0/1 coalition matrix, ``v`` ``(..., M)`` values (batched over the
    leading dims). Over all :math:`2^n` coalitions the solution ``w`` equals the Banzhaf
    values (Hammer & Holzman 1992); over uniformly random coalitions it is their
    sub-sampled estimate. ``ridge`` adds :math:`\lambda\|w\|^2`. Returns ``(w, c)``. Chapter 11.
    """
    if B.ndim < 2 or v.shape != B.shape[:-1]:
        raise ValueError(f"B must be (..., M, n) and v (..., M); got {tuple(B.shape)} and {tuple(v.shape)}")
    if not bool(torch.isfinite(v).all()):
        raise ValueError("v must be finite")
    n = B.shape[-1]
    A = torch.cat([B.double(), torch.ones(B.shape[:-1] + (1,), dtype=torch.float64, device=B.device)], -1)
    AtA = A.transpose(-1, -2) @ A
    reg = torch.zeros(n + 1, dtype=torch.float64, device=B.device)
    reg[:n] = ridge
    AtA = AtA + torch.diag(reg) + 1e-10 * torch.eye(n + 1, dtype=torch.float64, device=B.device)
    sol = torch.linalg.solve(AtA, (A.transpose(-1, -2) @ v.double()[..., None]))[..., 0]
    return sol[..., :n].to(v.dtype), sol[..., n].to(v.dtype)


def _check(model, x, y, objective, k_total, per_step, F):
    _check_image(x)
    if not isinstance(model, nn.Module):
        raise TypeError("model must be an nn.Module")
    if objective not in _OBJECTIVES:
        raise ValueError(f"objective must be one of {_OBJECTIVES}, got {objective!r}")
    if not isinstance(k_total, int) or not (1 <= k_total <= F):
        raise ValueError(f"k_total must be an int in [1, {F}]")
    if not isinstance(per_step, int) or per_step < 1:
        raise ValueError("per_step must be a positive int")
    if not isinstance(y, torch.Tensor) or y.shape != (x.shape[0],):
        raise ValueError(f"y must be a LongTensor of shape ({x.shape[0]},)")


def _set_values(model, x, y, sets, *, objective, patch, target, attack_kw, batch_size):
    """Value v(S_r) for feature sets ``sets`` (N, M, F) bool -> (N, M); higher = better."""
    N, M, F = sets.shape
    shape = x.shape[1:]
    X = x[:, None].expand(N, M, *shape).reshape(N * M, *shape)
    Y = y[:, None].expand(N, M).reshape(-1)
    T = None if target is None else target[:, None].expand(N, M).reshape(-1)
    flat = sets.reshape(N * M, F)
    eps_max = attack_kw["eps_max"]

    def g(feat):
        out = []
        for i in range(0, N * M, batch_size):
            sl = slice(i, i + batch_size)
            pix = to_pixels(feat[sl].to(x.dtype), shape, patch).contiguous()
            out.append(restricted_minimal_perturbation(model, X[sl], Y[sl], pix,
                                                       target=None if T is None else T[sl], **attack_kw))
        return torch.cat(out).clamp(max=eps_max)

    if objective == "complement":
        v = g(~flat)
    elif objective == "relevant":
        v = -g(flat)
    else:
        v = g(~flat) - g(flat)
    return v.reshape(N, M)


def _take_best(values: torch.Tensor, chosen: torch.Tensor, rank: torch.Tensor, t: int, m: int) -> int:
    """One greedy step: add the ``m`` unchosen features of highest value to ``chosen``
    (in place), record their order ``t, t+1, ...`` in ``rank``; return ``t + m``."""
    pick = values.masked_fill(chosen, float("-inf")).topk(m, dim=1).indices
    chosen.scatter_(1, pick, True)
    rank.scatter_(1, pick, torch.arange(t, t + m, device=rank.device).expand(len(rank), m))
    return t + m


def _scores_from_order(order_rank: torch.Tensor, F: int) -> torch.Tensor:
    return (F - order_rank).to(torch.float32)


def greedy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, k_total: int, per_step: int = 1,
           objective: str = "complement", patch: int = 1, target: torch.Tensor | None = None,
           eps_max: float = 10.0, steps: int = 20, search_steps: int = 8, batch_size: int = 1024) -> torch.Tensor:
    r"""Greedy (seed 003 eq. 7.5): from :math:`S_r^0=\emptyset`, add the feature ``i`` maximizing
    :math:`g(f,x,\overline{S_r^t\cup i})` (``objective="complement"``) or minimizing
    :math:`g(f,x,S_r^t\cup i)` (``"relevant"``), by exhaustive search over the unchosen
    features (batched over features and samples), ``per_step`` features per step, until
    ``k_total`` are chosen. Returns scores ``(N, F)``: earlier choices score higher, the
    unchosen features score 0 (ties). Cost: ``F`` set evaluations per step. Chapter 11.
    """
    F = n_features(x.shape, patch)
    _check(model, x, y, objective, k_total, per_step, F)
    N = x.shape[0]
    kw = dict(eps_max=eps_max, steps=steps, search_steps=search_steps)
    chosen = torch.zeros(N, F, dtype=torch.bool, device=x.device)
    rank = torch.full((N, F), F, dtype=torch.long, device=x.device)
    eye = torch.eye(F, dtype=torch.bool, device=x.device)
    t = 0
    while t < k_total:
        cand = chosen[:, None, :] | eye[None]  # (N, F, F): S_r ∪ {i}
        v = _set_values(model, x, y, cand, objective=objective, patch=patch, target=target,
                        attack_kw=kw, batch_size=batch_size)
        t = _take_best(v, chosen, rank, t, min(per_step, k_total - t))
    s = _scores_from_order(rank, F)
    return s.masked_fill(~chosen, 0.0)


def greedy_as(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, k_total: int, per_step: int = 1,
              n_subsets: int = 64, objective: str = "complement", patch: int = 1,
              target: torch.Tensor | None = None, eps_max: float = 10.0, steps: int = 20,
              search_steps: int = 8, ridge: float = 1e-3, seed: int = 0, batch_size: int = 1024) -> torch.Tensor:
    r"""Greedy-AS (seed 003 eq. 7.6): greedy selection by Banzhaf values of the set value.

    At step ``t``, draw ``n_subsets`` uniformly random subsets :math:`S` of the unchosen
    features (each feature in with probability 1/2), evaluate :math:`v(S_r^t\cup S)` (batched
    over subsets and samples), regress it on :math:`b(S)` (:func:`banzhaf_regression`) and
    add the ``per_step`` unchosen features with the largest coefficients (value oriented so
    that larger is better: ``"relevant"`` uses :math:`-g`). Returns scores ``(N, F)``: features
    chosen earlier score higher; unchosen features are ranked below them by the last
    regression's coefficients. Seed 003 §7.2.1. Chapter 11.
    """
    F = n_features(x.shape, patch)
    _check(model, x, y, objective, k_total, per_step, F)
    if not isinstance(n_subsets, int) or n_subsets < 2:
        raise ValueError("n_subsets must be an int >= 2")
    N = x.shape[0]
    gen = torch.Generator().manual_seed(seed)
    kw = dict(eps_max=eps_max, steps=steps, search_steps=search_steps)
    chosen = torch.zeros(N, F, dtype=torch.bool, device=x.device)
    rank = torch.full((N, F), F, dtype=torch.long, device=x.device)
    t = 0
    w = torch.zeros(N, F, device=x.device)
    while t < k_total:
        S = (torch.rand(N, n_subsets, F, generator=gen) < 0.5).to(x.device) & ~chosen[:, None, :]
        v = _set_values(model, x, y, chosen[:, None, :] | S, objective=objective, patch=patch,
                        target=target, attack_kw=kw, batch_size=batch_size)
        w, _ = banzhaf_regression(S.to(x.dtype), v.to(x.dtype), ridge=ridge)
        t = _take_best(w, chosen, rank, t, min(per_step, k_total - t))
    s = _scores_from_order(rank, F)
    # unchosen: ranked by the last regression, strictly below every chosen feature
    w = w.masked_fill(chosen, 0.0)
    wr = torch.argsort(torch.argsort(w, dim=1), dim=1).to(torch.float32)  # 0..F-1 ascending
    below = (wr + 1) / (F + 1) * (F - k_total) / F  # in (0, (F-k)/F) < smallest chosen score F-k+1
    return torch.where(chosen, s, below)
