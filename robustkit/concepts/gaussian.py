r"""Multivariate normal concepts with an LDL^T covariance (seed 000 §5.6, Proposition 7).

:math:`\Sigma = L D L^\top` with ``L`` unit lower triangular and ``D`` diagonal positive is
symmetric positive definite, and :math:`L D^{1/2}` is its Cholesky factor, so sampling
(:math:`x = \mu + L D^{1/2} z`), the log-density and the log-determinant
(:math:`\sum_i \log d_i`) are exact and cheap. A diagonal and a low-rank-plus-diagonal
option fit 784-dimensional images in little memory. Chapter 4.
"""
from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn as nn

from ._checks import check_int, check_labels, check_positive

_STRUCTURES = ("ldl", "diag", "lowrank")


def ldl_covariance(L_strict: torch.Tensor, log_d: torch.Tensor) -> torch.Tensor:
    r"""Build :math:`\Sigma = L\,\mathrm{diag}(e^{\log d})\,L^\top` (seed 000 Proposition 7).

    ``L_strict`` ``(..., n, n)``: only its strictly lower part is used, the diagonal of
    ``L`` is 1. ``log_d`` ``(..., n)``. The seed writes :math:`L^\top D L`; both are SPD
    (they are the same family up to reversing the coordinate order). Chapter 4.
    """
    n = log_d.shape[-1]
    if L_strict.shape[-2:] != (n, n):
        raise ValueError(f"L_strict must end with ({n}, {n}), got {tuple(L_strict.shape)}")
    L = torch.tril(L_strict, -1) + torch.eye(n, dtype=L_strict.dtype, device=L_strict.device)
    S = (L * log_d.exp().unsqueeze(-2)) @ L.transpose(-1, -2)
    return 0.5 * (S + S.transpose(-1, -2))   # exactly symmetric in floating point


class GaussianConcept(nn.Module):
    r"""Class-conditional normals :math:`\mathcal N(\mu_y, \Sigma_y)` (seed 000 §5.6).

    ``structure``: ``"ldl"`` (full covariance :math:`L D L^\top`, Prop. 7), ``"diag"``
    or ``"lowrank"`` (:math:`W W^\top + \mathrm{diag}(d)`, ``rank`` columns). Samples by
    reparameterization; ``sample(..., clamp=True)`` clips to the image box ``[0, 1]``
    before the classifier sees them. Chapter 4.
    """

    def __init__(self, num_classes: int = 10, image_shape=(1, 28, 28), structure: str = "ldl",
                 rank: int = 10, init_std: float = 0.1, init_mean: float = 0.5) -> None:
        super().__init__()
        if structure not in _STRUCTURES:
            raise ValueError(f"structure must be one of {_STRUCTURES}, got {structure!r}")
        self.num_classes = check_int(num_classes, "num_classes", low=2)
        self.image_shape = tuple(int(s) for s in image_shape)
        self.structure = structure
        d = math.prod(self.image_shape)
        self.dim = d
        init_std = check_positive(init_std, "init_std")
        self.mean = nn.Parameter(torch.full((num_classes, d), float(init_mean)))
        self.log_d = nn.Parameter(torch.full((num_classes, d), 2 * math.log(init_std)))
        if structure == "ldl":
            self.L_strict = nn.Parameter(torch.zeros(num_classes, d, d))
        elif structure == "lowrank":
            self.rank = check_int(rank, "rank")
            self.W = nn.Parameter(torch.randn(num_classes, d, self.rank) * init_std / 10)

    def _idx(self, y) -> torch.Tensor:
        if y is None:
            return torch.arange(self.num_classes, device=self.mean.device)
        return check_labels(y, self.num_classes).to(self.mean.device)

    def scale_tril(self, y: Optional[torch.Tensor] = None) -> torch.Tensor:
        r"""Cholesky factor :math:`L D^{1/2}` ``(N, d, d)`` (``ldl`` and ``diag`` only)."""
        idx = self._idx(y)
        sd = (0.5 * self.log_d[idx]).exp()
        if self.structure == "diag":
            return torch.diag_embed(sd)
        if self.structure == "ldl":
            L = torch.tril(self.L_strict[idx], -1) + torch.eye(self.dim, device=sd.device)
            return L * sd.unsqueeze(-2)
        raise ValueError("scale_tril is defined for the 'ldl' and 'diag' structures")

    def covariance(self, y: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Covariance matrices ``(N, d, d)`` of the requested classes (all when ``y`` is None)."""
        idx = self._idx(y)
        if self.structure == "ldl":
            return ldl_covariance(self.L_strict[idx], self.log_d[idx])
        if self.structure == "diag":
            return torch.diag_embed(self.log_d[idx].exp())
        W = self.W[idx]
        S = W @ W.transpose(-1, -2)
        return 0.5 * (S + S.transpose(-1, -2)) + torch.diag_embed(self.log_d[idx].exp())

    def means(self, y: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Means ``(N, C, H, W)`` of the requested classes."""
        return self.mean[self._idx(y)].reshape(-1, *self.image_shape)

    def _per_class(self, idx: torch.Tensor, v: torch.Tensor, fn) -> torch.Tensor:
        """Apply ``fn(L_c, rows)`` to the rows of ``v`` grouped by class ``c = idx``.

        One ``tril`` over all classes and ``unbind`` (whose backward stacks the gradients
        once), instead of indexing ``L_strict[c]`` per class (a full-size gradient each).
        """
        Ls = torch.tril(self.L_strict, -1).unbind(0)
        order = torch.argsort(idx, stable=True)
        classes, counts = torch.unique_consecutive(idx[order], return_counts=True)
        pieces = [fn(Ls[c], chunk) for c, chunk in
                  zip(classes.tolist(), torch.split(v[order], counts.tolist()))]
        out = torch.cat(pieces)
        return out[torch.argsort(order)]

    def _unit_lower_apply(self, idx: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """``(I + strict(L_c)) v`` per row (``c = idx``)."""
        return self._per_class(idx, v, lambda Ls, rows: rows + rows @ Ls.T)

    def _unit_lower_solve(self, idx: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """``L_c^{-1} v`` per row by unit-triangular solves."""
        eye = torch.eye(self.dim, device=v.device, dtype=v.dtype)
        return self._per_class(idx, v, lambda Ls, rows: torch.linalg.solve_triangular(
            Ls + eye, rows.T, upper=False, unitriangular=True).T)

    def sample(self, y: torch.Tensor, *, clamp: bool = True,
               generator: Optional[torch.Generator] = None) -> torch.Tensor:
        r"""Reparameterized samples :math:`\mu_y + A_y z` ``(N, C, H, W)``, :math:`z\sim\mathcal N(0,I)`."""
        idx = self._idx(y)
        z = torch.randn(len(idx), self.dim, generator=generator, device=self.mean.device)
        sd = (0.5 * self.log_d[idx]).exp()
        if self.structure == "diag":
            x = self.mean[idx] + sd * z
        elif self.structure == "ldl":
            x = self.mean[idx] + self._unit_lower_apply(idx, sd * z)
        else:
            z2 = torch.randn(len(idx), self.rank, generator=generator, device=self.mean.device)
            x = self.mean[idx] + sd * z + (self.W[idx] @ z2.unsqueeze(-1)).squeeze(-1)
        x = x.reshape(-1, *self.image_shape)
        return x.clamp(0.0, 1.0) if clamp else x

    def log_prob(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Gaussian log-density of the (unclipped) flattened images ``x`` under class ``y``."""
        idx = self._idx(y)
        v = x.reshape(len(x), -1) - self.mean[idx]
        if self.structure == "lowrank":
            dist = torch.distributions.LowRankMultivariateNormal(
                self.mean[idx], self.W[idx], self.log_d[idx].exp())
            return dist.log_prob(x.reshape(len(x), -1))
        sd = (0.5 * self.log_d[idx]).exp()
        sol = (self._unit_lower_solve(idx, v) if self.structure == "ldl" else v) / sd
        logdet = self.log_d[idx].sum(-1)
        return -0.5 * (sol.pow(2).sum(-1) + logdet + self.dim * math.log(2 * math.pi))

    def entropy(self, y: Optional[torch.Tensor] = None) -> torch.Tensor:
        r"""Differential entropy :math:`\tfrac12\log((2\pi e)^d|\Sigma|)` in nats (seed 000 §5.6)."""
        idx = self._idx(y)
        if self.structure == "lowrank":
            logdet = torch.linalg.slogdet(self.covariance(y))[1]
        else:
            logdet = self.log_d[idx].sum(-1)   # det(L D L^T) = prod d_i
        return 0.5 * (self.dim * math.log(2 * math.pi * math.e) + logdet)
