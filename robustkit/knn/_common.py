"""Shared helpers of :mod:`robustkit.knn`: input checks, distances, K-NN prediction, results.

Seed 003 (X. Liu, PhD dissertation 2021), chapter 3; used by chapter 8 (*Provable
robustness of nearest neighbors*).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

__all__ = ["PerturbationResult", "knn_predict", "as_matrix", "as_labels", "check_k",
           "metric_matrix"]


@dataclass
class PerturbationResult:
    """The answer of an attack, an exact solver or a verifier, one entry per test point.

    ``eps`` (B,) float64: norm of the perturbation (attack / exact) or certified lower bound
    (verify); 0 for misclassified points, ``inf`` where an attack failed.
    ``delta`` (B, d) or ``None``: the perturbation (flattened; ``x + delta`` sits on the
    decision boundary for exact solvers, use :attr:`x_adv` for a point strictly across it).
    ``success`` (B,) bool: the attack found an adversarial example (always True for exact,
    not meaningful for verifiers). ``target`` (B,) int64: index of the training point whose
    Voronoi cell (1-NN) or cluster (K-NN) is reached, -1 if none. ``n_solved`` (B,) int64:
    subproblems (QPs / LPs) actually solved, the rest being screened out. ``pred`` (B,): the
    clean prediction. ``x_adv`` (B, d) or ``None``: a point strictly across the boundary.
    """

    eps: torch.Tensor
    delta: torch.Tensor | None = None
    success: torch.Tensor | None = None
    target: torch.Tensor | None = None
    n_solved: torch.Tensor | None = None
    pred: torch.Tensor | None = None
    x_adv: torch.Tensor | None = None
    info: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.eps.shape[0])

    def mean_eps(self) -> float:
        """Mean of the finite ``eps`` (attack success rate is ``success.float().mean()``)."""
        finite = torch.isfinite(self.eps)
        return float(self.eps[finite].mean()) if finite.any() else float("nan")


def as_matrix(x, name: str, dtype=torch.float64, device=None) -> torch.Tensor:
    """Flatten ``x`` ((N, ...) tensor or array) to a finite (N, d) tensor of ``dtype``."""
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(x)
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch tensor or numpy array, got {type(x).__name__}")
    if x.ndim == 0:
        raise ValueError(f"{name} must have a leading batch dimension, got a scalar")
    if x.ndim == 1:
        raise ValueError(f"{name} must be 2-D (N, d) or an image batch (N, C, H, W); got 1-D "
                         f"shape {tuple(x.shape)} (use x[None] for a single point)")
    if x.shape[0] == 0:
        raise ValueError(f"{name} is empty")
    if not (x.is_floating_point() or x.dtype in (torch.int64, torch.int32, torch.uint8)):
        raise TypeError(f"{name} must hold real numbers, got dtype {x.dtype}")
    x = x.reshape(x.shape[0], -1).to(dtype=dtype, device=device)
    if not torch.isfinite(x).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return x


def as_labels(y, n: int, name: str, device=None) -> torch.Tensor:
    """Check integer labels of length ``n`` and return them as an int64 tensor."""
    if isinstance(y, np.ndarray):
        y = torch.from_numpy(y)
    if isinstance(y, (list, tuple)):
        y = torch.tensor(y)
    if not isinstance(y, torch.Tensor):
        raise TypeError(f"{name} must be a tensor/array of integer labels, got {type(y).__name__}")
    if y.is_floating_point() or y.is_complex() or y.dtype == torch.bool:
        raise TypeError(f"{name} must hold integer labels, got dtype {y.dtype}")
    y = y.reshape(-1).to(dtype=torch.int64, device=device)
    if y.shape[0] != n:
        raise ValueError(f"{name} has {y.shape[0]} labels for {n} points")
    if (y < 0).any():
        raise ValueError(f"{name} must be non-negative class indices")
    return y


def check_k(k, n_train: int) -> int:
    """K of a K-NN classifier: a positive odd integer not larger than the training set."""
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
        raise TypeError(f"K must be an integer, got {k!r}")
    k = int(k)
    if k < 1 or k % 2 == 0:
        raise ValueError(f"K must be a positive odd integer (majority vote without ties), got {k}")
    if k > n_train:
        raise ValueError(f"K={k} is larger than the training set ({n_train} points)")
    return k


def metric_matrix(G, d: int, dtype=torch.float64, device=None) -> torch.Tensor | None:
    """Check a Mahalanobis factor ``G`` (D', d) with M = G^T G (seed 003 eq. 3.37, 3.41)."""
    if G is None:
        return None
    if isinstance(G, np.ndarray):
        G = torch.from_numpy(G)
    if not isinstance(G, torch.Tensor) or G.ndim != 2:
        raise TypeError("metric G must be a 2-D tensor (D', d) with M = G^T G")
    if G.shape[1] != d:
        raise ValueError(f"metric G has {G.shape[1]} columns for {d}-dimensional data")
    G = G.detach().to(dtype=dtype, device=device)
    if not torch.isfinite(G).all():
        raise ValueError("metric G contains NaN or infinite values")
    return G


def sq_dists(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Squared Euclidean distances (na, nb), clamped at 0 (matmul form, batched)."""
    d = (a * a).sum(-1)[..., :, None] + (b * b).sum(-1)[..., None, :] - 2 * a @ b.transpose(-1, -2)
    return d.clamp_min_(0)


def vote(neighbor_labels: torch.Tensor, n_classes: int) -> torch.Tensor:
    """Majority vote over the last dimension; ties go to the smallest label."""
    counts = torch.zeros(*neighbor_labels.shape[:-1], n_classes, dtype=torch.int64,
                         device=neighbor_labels.device)
    counts.scatter_add_(-1, neighbor_labels, torch.ones_like(neighbor_labels))
    return counts.argmax(-1)


def knn_predict(train_x, train_y, x, k: int = 1, G=None, chunk: int = 1024) -> torch.Tensor:
    """Predictions of the (Mahalanobis) K-NN classifier (seed 003 §3.1.1, eq. 3.37).

    Distances ``d_M(x, x') = ||G x - G x'||^2`` (Euclidean when ``G`` is None); majority vote
    of the ``k`` nearest training points, ties between classes go to the smallest label.
    Vectorized over chunks of test points. Used by chapter 8.
    """
    X = as_matrix(train_x, "train_x")
    y = as_labels(train_y, X.shape[0], "train_y", device=X.device)
    Z = as_matrix(x, "x", device=X.device)
    if Z.shape[1] != X.shape[1]:
        raise ValueError(f"x has dimension {Z.shape[1]}, training points {X.shape[1]}")
    k = check_k(k, X.shape[0])
    Gm = metric_matrix(G, X.shape[1], device=X.device)
    if Gm is not None:
        X, Z = X @ Gm.T, Z @ Gm.T
    n_classes = int(y.max()) + 1
    out = []
    for s in range(0, Z.shape[0], chunk):
        d = sq_dists(Z[s:s + chunk], X)
        idx = d.topk(k, dim=1, largest=False).indices
        out.append(vote(y[idx], n_classes))
    return torch.cat(out)


class single_thread:
    """Context manager: run torch CPU ops on one thread, restoring the caller's setting.

    The solvers' inner loops are long sequences of small ops (a matrix-vector product per
    coordinate step); intra-op threading only adds synchronization there, and on a busy
    machine it can slow them down by an order of magnitude."""

    def __enter__(self):
        self.n = torch.get_num_threads()
        if self.n != 1:
            torch.set_num_threads(1)
        return self

    def __exit__(self, *exc):
        if self.n != 1:
            torch.set_num_threads(self.n)
        return False
