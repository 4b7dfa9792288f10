r"""Small normalizing flows with exact log-determinants (seed 000 §5.7).

Each layer maps ``z`` ``(N, n)`` to ``(x, log|det J|)``; a :class:`FlowSequence` composes
them and gives the change-of-variables density
:math:`\log p_X(x) = \log p_Z(f^{-1}(x)) - \sum_k\log|\det J_k|`. Layers: elementwise
(affine and leaky-ReLU), triangular, Householder (orthogonal, log-det 0) and the seed's
proposed Cauchy-matrix layer :math:`a_{ij} = 1/(x_i - y_j)` with the Cauchy determinant
:math:`\det A = \prod_{i<j}(x_j-x_i)(y_i-y_j)/\prod_{i,j}(x_i-y_j)`. Chapter 4.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from ._checks import check_int, check_positive


def _check_z(z: torch.Tensor, n: int) -> None:
    if not isinstance(z, torch.Tensor) or z.dim() != 2 or z.shape[1] != n:
        raise ValueError(f"input must have shape (N, {n}), got "
                         f"{tuple(z.shape) if isinstance(z, torch.Tensor) else type(z).__name__}")


class FlowLayer(nn.Module):
    """Base class: ``forward(z) -> (x, logabsdet)`` and ``inverse(x) -> z`` (seed 000 §5.7)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dim = check_int(dim, "dim")

    def inverse(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError


class ElementwiseAffineFlow(FlowLayer):
    r"""Elementwise :math:`x = e^{s}\odot z + b`, :math:`\log|\det| = \sum s` (seed 000 §5.7.1)."""

    def __init__(self, dim: int) -> None:
        super().__init__(dim)
        self.log_scale = nn.Parameter(torch.zeros(dim))
        self.shift = nn.Parameter(torch.zeros(dim))

    def forward(self, z):
        _check_z(z, self.dim)
        return z * self.log_scale.exp() + self.shift, self.log_scale.sum().expand(z.shape[0])

    def inverse(self, x):
        _check_z(x, self.dim)
        return (x - self.shift) * torch.exp(-self.log_scale)


class LeakyReLUFlow(FlowLayer):
    r"""Bijective activation :math:`x = \max(z, a z)`, :math:`\log|\det| = \log a\cdot\#\{z_i<0\}` (§5.7.1)."""

    def __init__(self, dim: int, negative_slope: float = 0.1) -> None:
        super().__init__(dim)
        self.negative_slope = check_positive(negative_slope, "negative_slope")

    def forward(self, z):
        _check_z(z, self.dim)
        x = F.leaky_relu(z, self.negative_slope)
        return x, (z < 0).sum(1).to(z.dtype) * math.log(self.negative_slope)

    def inverse(self, x):
        _check_z(x, self.dim)
        return torch.where(x < 0, x / self.negative_slope, x)


class TriangularFlow(FlowLayer):
    r"""Lower-triangular :math:`x = Tz + b`, diagonal :math:`e^{s}`: :math:`\log|\det| = \sum s` (§5.7.2)."""

    def __init__(self, dim: int) -> None:
        super().__init__(dim)
        self.strict = nn.Parameter(torch.randn(dim, dim) / (2 * math.sqrt(dim)))
        self.log_diag = nn.Parameter(torch.zeros(dim))
        self.bias = nn.Parameter(torch.zeros(dim))

    def matrix(self) -> torch.Tensor:
        """The triangular matrix ``T``."""
        return torch.tril(self.strict, -1) + torch.diag(self.log_diag.exp())

    def forward(self, z):
        _check_z(z, self.dim)
        return z @ self.matrix().T + self.bias, self.log_diag.sum().expand(z.shape[0])

    def inverse(self, x):
        _check_z(x, self.dim)
        return torch.linalg.solve_triangular(self.matrix(), (x - self.bias).T, upper=False).T


class HouseholderFlow(FlowLayer):
    r"""Product of ``n_reflections`` Householder reflections :math:`I - 2vv^\top/\|v\|^2` (§5.7.2).

    Orthogonal, so :math:`\log|\det| = 0` (the determinant is :math:`(-1)^k`).
    """

    def __init__(self, dim: int, n_reflections: int = 2) -> None:
        super().__init__(dim)
        check_int(n_reflections, "n_reflections")
        self.v = nn.Parameter(torch.randn(n_reflections, dim))

    def _reflect(self, x, v):
        return x - 2 * (x @ v).unsqueeze(1) * v / v.dot(v)

    def matrix(self) -> torch.Tensor:
        """The orthogonal matrix ``Q`` with ``x = Q z``."""
        return self.forward(torch.eye(self.dim, dtype=self.v.dtype, device=self.v.device))[0].T

    def forward(self, z):
        _check_z(z, self.dim)
        x = z
        for v in self.v:
            x = self._reflect(x, v)
        return x, torch.zeros(z.shape[0], dtype=z.dtype, device=z.device)

    def inverse(self, x):
        _check_z(x, self.dim)
        z = x
        for v in reversed(self.v):
            z = self._reflect(z, v)
        return z


def cauchy_logdet(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Sign and log|det| of the Cauchy matrix :math:`a_{ij} = 1/(x_i - y_j)` (seed 000 §5.7.2).

    :math:`\det A = \prod_{i<j}(x_j - x_i)(y_i - y_j) / \prod_{i,j}(x_i - y_j)`, computed in
    log space: :math:`O(n^2)` with no matrix factorization.
    """
    if x.dim() != 1 or y.shape != x.shape:
        raise ValueError("x and y must be 1-D tensors of the same length")
    diff = x.unsqueeze(1) - y.unsqueeze(0)
    if (diff == 0).any():
        raise ValueError("x_i - y_j must be nonzero for all i, j")
    i, j = torch.triu_indices(len(x), len(x), 1)
    num = torch.cat([x[j] - x[i], y[i] - y[j]])
    if (num == 0).any():
        raise ValueError("x and y must have distinct entries (the matrix is singular)")
    factors = torch.cat([num, diff.reshape(-1)])
    n_neg = int((num < 0).sum()) + int((diff < 0).sum())
    sign = torch.tensor(-1.0 if n_neg % 2 else 1.0, dtype=x.dtype)
    return sign, num.abs().log().sum() - diff.abs().log().sum()


class CauchyFlow(FlowLayer):
    r"""The seed's proposed Cauchy-matrix layer :math:`x = Az + b`, :math:`a_{ij} = 1/(x_i - y_j)` (§5.7.2).

    Injective sequences by cumulative sums of positive steps: :math:`x_i = c + \sum_{k\le i}
    \mathrm{softplus}(a_k)` and :math:`y_j = -\sum_{k\le j}\mathrm{softplus}(b_k)`, so
    :math:`x_i - y_j > 0` always and the matrix is invertible (the seed leaves this
    choice open). Log-determinant by :func:`cauchy_logdet`. Cauchy matrices are badly
    conditioned (the Hilbert matrix is one), so keep ``dim`` small.
    """

    def __init__(self, dim: int, offset: float = 0.5) -> None:
        super().__init__(dim)
        self.offset = check_positive(offset, "offset")
        self.a = nn.Parameter(torch.zeros(dim))
        self.b = nn.Parameter(torch.zeros(dim))
        self.bias = nn.Parameter(torch.zeros(dim))

    def sequences(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The node sequences ``(x, y)``."""
        return self.offset + torch.cumsum(F.softplus(self.a), 0), -torch.cumsum(F.softplus(self.b), 0)

    def matrix(self) -> torch.Tensor:
        """The Cauchy matrix ``A``."""
        x, y = self.sequences()
        return 1.0 / (x.unsqueeze(1) - y.unsqueeze(0))

    def forward(self, z):
        _check_z(z, self.dim)
        logdet = cauchy_logdet(*self.sequences())[1]
        return z @ self.matrix().T + self.bias, logdet.expand(z.shape[0])

    def inverse(self, x):
        _check_z(x, self.dim)
        return torch.linalg.solve(self.matrix(), (x - self.bias).T).T


class FlowSequence(nn.Module):
    r"""Composition :math:`f = f_K\circ\dots\circ f_1` with a standard normal base (seed 000 §5.7)."""

    def __init__(self, *layers: FlowLayer) -> None:
        super().__init__()
        if not layers:
            raise ValueError("a flow needs at least one layer")
        dims = {layer.dim for layer in layers}
        if len(dims) != 1:
            raise ValueError(f"all layers must have the same dim, got {sorted(dims)}")
        self.dim = dims.pop()
        self.layers = nn.ModuleList(layers)

    def forward(self, z):
        """``(x, sum of log|det J_k|)``."""
        total = torch.zeros(z.shape[0], dtype=z.dtype, device=z.device)
        for layer in self.layers:
            z, ld = layer(z)
            total = total + ld
        return z, total

    def inverse(self, x):
        for layer in reversed(self.layers):
            x = layer.inverse(x)
        return x

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        r"""Change of variables :math:`\log p_Z(f^{-1}(x)) - \log|\det Df(f^{-1}(x))|`."""
        z = self.inverse(x)
        _, logdet = self.forward(z)
        base = -0.5 * (z.pow(2).sum(1) + self.dim * math.log(2 * math.pi))
        return base - logdet

    def sample(self, n: int, generator=None) -> torch.Tensor:
        """``n`` samples ``f(z)``, ``z ~ N(0, I)``."""
        p = next(self.parameters(), None)
        dev = p.device if p is not None else None
        dt = p.dtype if p is not None else torch.get_default_dtype()
        return self.forward(torch.randn(check_int(n, "n"), self.dim, generator=generator,
                                        device=dev, dtype=dt))[0]
