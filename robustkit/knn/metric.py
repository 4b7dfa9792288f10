"""Adversarially robust metric learning, ARML (seed 003 §3.2, eq. 3.41-3.48, Algorithm 7).

A Mahalanobis K-NN uses ``d_M(x, x') = (x - x')^T M (x - x')`` with ``M = G^T G`` (eq. 3.37).
The minimal L2 perturbation that brings ``x`` closer to ``x-`` than to ``x+`` in that
metric has the closed form (eq. 3.44-3.45, proof in §3.2.4)

    eps~(x+, x-, x; M) = (d_M(x, x-) - d_M(x, x+)) / (2 ||M (x+ - x-)||),

a differentiable function of ``G``. ARML minimizes ``mean_i loss(eps~(randnear+(x_i),
randnear-(x_i), x_i; G^T G))`` (eq. 3.48) where ``randnear+/-`` draw one of the
``n_near`` nearest same-class / other-class training points in the current metric
(no gradient through the sampling), with a non-increasing loss (hinge ``[1 - eps]_+``,
exponential, logistic or negative). Note ``eps~`` is invariant to rescaling ``G``, as a
perturbation size in input space should be. NCA (Goldberger et al. 2004) is the baseline,
through scikit-learn. Used by chapter 8 (Tables 3.4-3.5).
"""
from __future__ import annotations

import math

import numpy as np
import torch

from ._common import as_labels, as_matrix, sq_dists

__all__ = ["triplet_bound", "arml_fit", "nca_metric", "LOSSES"]

LOSSES = {
    "hinge": lambda e: torch.relu(1 - e),
    "exp": lambda e: torch.exp(-e),
    "logistic": lambda e: torch.nn.functional.softplus(-e),
    "negative": lambda e: -e,
}


def triplet_bound(x_pos: torch.Tensor, x_neg: torch.Tensor, x: torch.Tensor, G: torch.Tensor | None = None,
                  clamp: bool = False) -> torch.Tensor:
    """``eps~(x+, x-, x; G^T G)`` of seed 003 eq. 3.45 (``[.]_+`` of eq. 3.44 if ``clamp``),
    batched over the leading dimension, differentiable in ``G`` (identity if None): the
    L2 distance from ``x`` to the d_M-bisector of ``x+`` and ``x-`` (signed: negative when
    ``x`` is already closer to ``x-``). Pairs with ``M (x+ - x-) = 0`` give 0. Chapter 8."""
    if not (x_pos.shape == x_neg.shape == x.shape) or x.ndim != 2:
        raise ValueError("x_pos, x_neg and x must all have the same shape (B, d)")
    if G is None:
        d_neg = ((x - x_neg) ** 2).sum(1)
        d_pos = ((x - x_pos) ** 2).sum(1)
        den = (x_pos - x_neg).norm(dim=1)
    else:
        if G.ndim != 2 or G.shape[1] != x.shape[1]:
            raise ValueError(f"G must be (D', {x.shape[1]}), got {tuple(G.shape)}")
        gx, gp, gn = x @ G.T, x_pos @ G.T, x_neg @ G.T
        d_neg = ((gx - gn) ** 2).sum(1)
        d_pos = ((gx - gp) ** 2).sum(1)
        den = ((gp - gn) @ G).norm(dim=1)                     # ||M (x+ - x-)||, M = G^T G
    num = d_neg - d_pos
    out = torch.where(den > 1e-12, num / (2 * den.clamp_min(1e-12)), torch.zeros_like(num))
    return out.clamp_min(0) if clamp else out


def arml_fit(train_x, train_y, *, epochs: int = 10, lr: float = 1e-2, batch_size: int = 256,
             n_near: int = 10, loss: str = "hinge", rank: int | None = None, seed: int = 0,
             G0=None, device=None) -> tuple[torch.Tensor, list[float]]:
    """Learn ``G`` (``M = G^T G``) by ARML, seed 003 Algorithm 7 / eq. 3.48.

    ``G`` starts at the identity (or ``G0``; ``rank`` keeps its first ``rank`` rows for a
    low-rank metric); every epoch, for minibatches of training points, ``randnear+`` /
    ``randnear-`` draw uniformly one of the ``n_near`` nearest same-class (itself excluded)
    / other-class points in the current metric, and Adam takes a step on the mean loss of
    ``eps~`` (:func:`triplet_bound`). Returns ``(G, losses per epoch)``. Chapter 8."""
    X = as_matrix(train_x, "train_x", dtype=torch.float32, device=device)
    y = as_labels(train_y, X.shape[0], "train_y", device=X.device)
    if loss not in LOSSES:
        raise ValueError(f"unknown loss {loss!r}: choose one of {sorted(LOSSES)}")
    for name, v in (("epochs", epochs), ("batch_size", batch_size), ("n_near", n_near)):
        if isinstance(v, bool) or not isinstance(v, int) or v < (0 if name == "epochs" else 1):
            raise ValueError(f"{name} must be a positive integer, got {v!r}")
    if not (isinstance(lr, (int, float)) and lr > 0):
        raise ValueError(f"lr must be positive, got {lr!r}")
    n, d = X.shape
    if G0 is None:
        G = torch.eye(d, dtype=X.dtype, device=X.device)
        if rank is not None:
            G = G[:rank]
    else:
        G = as_matrix(G0, "G0", dtype=X.dtype, device=X.device)
        if G.shape[1] != d:
            raise ValueError(f"G0 must have {d} columns")
    G = G.clone().requires_grad_(True)
    opt = torch.optim.Adam([G], lr=lr)
    gen = torch.Generator().manual_seed(seed)
    lossf = LOSSES[loss]
    history = []
    for _ in range(epochs):
        perm = torch.randperm(n, generator=gen).to(X.device)
        total, count = 0.0, 0
        for s in range(0, n, batch_size):
            idx = perm[s:s + batch_size]
            with torch.no_grad():
                GX = X @ G.T
                D = sq_dists(GX[idx], GX)
                D[torch.arange(idx.numel()), idx] = math.inf          # not itself
                same = y[idx][:, None] == y[None, :]
                dpos = torch.where(same, D, torch.full_like(D, math.inf))
                dneg = torch.where(~same, D, torch.full_like(D, math.inf))
                kp = min(n_near, int(same.sum(1).min()) - 1)
                kn = min(n_near, int((~same).sum(1).min()))
                if kp < 1 or kn < 1:
                    raise ValueError("every class needs at least two training points")
                near_p = torch.topk(dpos, kp, dim=1, largest=False).indices
                near_n = torch.topk(dneg, kn, dim=1, largest=False).indices
                pick_p = torch.randint(kp, (idx.numel(),), generator=gen).to(X.device)
                pick_n = torch.randint(kn, (idx.numel(),), generator=gen).to(X.device)
                ip = near_p[torch.arange(idx.numel()), pick_p]
                ineg = near_n[torch.arange(idx.numel()), pick_n]
            eps = triplet_bound(X[ip], X[ineg], X[idx], G)
            obj = lossf(eps).mean()
            opt.zero_grad()
            obj.backward()
            opt.step()
            total += float(obj.detach()) * idx.numel()
            count += idx.numel()
        history.append(total / count)
    return G.detach(), history


def nca_metric(train_x, train_y, *, n_components: int | None = None, max_iter: int = 50,
               seed: int = 0) -> torch.Tensor:
    """The NCA baseline (Goldberger et al. 2004) of seed 003 §3.2.3 through scikit-learn's
    ``NeighborhoodComponentsAnalysis``; returns its linear map as ``G`` (``M = G^T G``)."""
    from sklearn.neighbors import NeighborhoodComponentsAnalysis

    X = as_matrix(train_x, "train_x").cpu().numpy()
    y = as_labels(train_y, X.shape[0], "train_y").cpu().numpy()
    nca = NeighborhoodComponentsAnalysis(n_components=n_components, max_iter=max_iter,
                                         random_state=seed)
    nca.fit(X, y)
    return torch.from_numpy(np.asarray(nca.components_, dtype=np.float64))
