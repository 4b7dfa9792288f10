"""Norms and Euclidean projections onto the threat models' balls (and the pixel box).

All functions work on a batch: ``delta`` has shape ``(N, ...)`` and ``eps`` is a float or
a per-sample tensor ``(N,)``; norms are taken over all non-batch dimensions.

- :func:`project_linf`: clip to ``[-eps, eps]``;
- :func:`project_l2`: rescale onto the L2 ball when outside;
- :func:`project_l1_box`: the *exact* Euclidean projection onto
  ``{||delta||_1 <= eps} ∩ {0 <= x + delta <= 1}`` (sort-based thresholding, vectorized
  over the batch; GUIDE §5 trap 3: rescaling by the L1 norm is not a projection);
- :func:`random_in_ball`: uniform samples in the L1, L2 or Linf ball (random starts).

Seed 000 §6.1.1 derives projected gradient descent from the projection
``pi_C(z) = argmin_{x in C} ||x - z||_2^2 / 2``; these are those projections for the
sets ``C`` of the threat models. Used by: chapter 2 and every PGD attack.
"""
from __future__ import annotations

import math

import torch

__all__ = ["NORMS", "check_norm", "norms", "as_eps", "project_linf", "project_l2",
           "project_l1", "project_l1_box", "project", "random_in_ball"]

NORMS = ("linf", "l2", "l1")
_ALIASES = {"linf": "linf", "inf": "linf", "l_inf": "linf", "infinity": "linf", "li": "linf",
            "l2": "l2", "2": "l2", "l1": "l1", "1": "l1"}


def check_norm(norm) -> str:
    """Canonical name (``"linf"``, ``"l2"`` or ``"l1"``) of a norm given as string, int or ``inf``."""
    if isinstance(norm, (int, float)) and not isinstance(norm, bool):
        key = "linf" if math.isinf(norm) else str(int(norm)) if float(norm).is_integer() else None
    elif isinstance(norm, str):
        key = norm.strip().lower()
    else:
        key = None
    if key not in _ALIASES:
        raise ValueError(f"unknown norm {norm!r}: choose one of 'linf', 'l2', 'l1' (or inf, 2, 1)")
    return _ALIASES[key]


def _flat(t: torch.Tensor) -> torch.Tensor:
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"expected a torch.Tensor, got {type(t).__name__}")
    if t.ndim < 2:
        raise ValueError(f"expected a batch (N, ...), got shape {tuple(t.shape)}")
    return t.reshape(t.shape[0], -1)


def norms(delta: torch.Tensor, p="l2") -> torch.Tensor:
    """Per-sample norm ``||delta_n||_p`` over all non-batch dimensions, shape ``(N,)``."""
    p = check_norm(p)
    flat = _flat(delta)
    if p == "linf":
        return flat.abs().amax(1) if flat.shape[1] else flat.new_zeros(flat.shape[0])
    return flat.norm(p=2 if p == "l2" else 1, dim=1)


def as_eps(eps, n: int, like: torch.Tensor, name: str = "eps") -> torch.Tensor:
    """``eps`` (float or ``(N,)`` tensor) as a tensor ``(N,)`` on ``like``'s device and dtype; checked >= 0."""
    if isinstance(eps, torch.Tensor):
        e = eps.detach().to(device=like.device, dtype=like.dtype)
        if e.ndim == 0:
            e = e.expand(n)
        if e.shape != (n,):
            raise ValueError(f"{name} must be a float or a tensor of shape ({n},), got shape "
                             f"{tuple(eps.shape)}")
    elif isinstance(eps, (int, float)) and not isinstance(eps, bool):
        e = torch.full((n,), float(eps), device=like.device, dtype=like.dtype)
    else:
        raise TypeError(f"{name} must be a float or a tensor, got {type(eps).__name__}")
    if not torch.isfinite(e).all() or (e < 0).any():
        raise ValueError(f"{name} must be finite and >= 0, got {eps}")
    return e


def _view(e: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return e.view(-1, *([1] * (like.ndim - 1)))


def project_linf(delta: torch.Tensor, eps) -> torch.Tensor:
    """Projection onto the Linf ball: ``clip(delta, -eps, eps)`` (per-sample ``eps`` allowed)."""
    e = _view(as_eps(eps, delta.shape[0], delta), delta)
    return torch.maximum(torch.minimum(delta, e), -e)


def project_l2(delta: torch.Tensor, eps) -> torch.Tensor:
    """Projection onto the L2 ball: ``delta * min(1, eps / ||delta||_2)``."""
    e = as_eps(eps, delta.shape[0], delta)
    n = norms(delta, "l2")
    factor = torch.where(n > e, e / n.clamp_min(torch.finfo(delta.dtype).tiny), torch.ones_like(n))
    return delta * _view(factor, delta)


def _l1_threshold(a: torch.Tensor, u: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
    """Per-row lambda >= 0 with ``sum_i clamp(a_i - lambda, 0, u_i) = e`` (0 when already inside).

    ``a, u >= 0`` of shape ``(N, d)``, ``e`` of shape ``(N,)``. The function
    ``phi(lambda) = sum_i clamp(a_i - lambda, 0, u_i)`` is piecewise linear and
    non-increasing, with breakpoints ``a_i - u_i`` (coordinate leaves its box bound: the
    slope drops by 1) and ``a_i`` (coordinate reaches 0: the slope rises by 1). Sorting
    the ``2d`` breakpoints and a cumulative sum give ``phi`` at every breakpoint in
    ``O(d log d)``; the root is interpolated on the bracketing segment.
    """
    n, d = a.shape
    phi0 = torch.minimum(a, u).sum(1)
    events = torch.cat([(a - u).clamp_min(0), a], dim=1)                     # (N, 2d)
    jumps = torch.cat([-torch.ones_like(a), torch.ones_like(a)], dim=1)
    # a coordinate with a_i = 0 contributes nothing: its two events cancel at lambda = 0
    order = torch.argsort(events, dim=1, stable=True)
    ev = torch.gather(events, 1, order)
    slope = torch.cumsum(torch.gather(jumps, 1, order), dim=1)               # slope right of ev_k
    seg = slope[:, :-1] * (ev[:, 1:] - ev[:, :-1])
    phi = torch.cat([phi0[:, None], phi0[:, None] + torch.cumsum(seg, dim=1)], dim=1)
    # first breakpoint where phi <= e (exists: phi(max a) = 0 <= e)
    below = phi <= e[:, None]
    k = torch.argmax(below.to(torch.uint8), dim=1).clamp_min(1)
    idx = (k - 1)[:, None]
    ev_k, phi_k, s_k = ev.gather(1, idx)[:, 0], phi.gather(1, idx)[:, 0], slope.gather(1, idx)[:, 0]
    lam = ev_k + (phi_k - e) / (-s_k).clamp_min(1)
    return torch.where(phi0 > e, lam, torch.zeros_like(lam))


def project_l1_box(x: torch.Tensor, delta: torch.Tensor, eps) -> torch.Tensor:
    """Exact Euclidean projection of ``delta`` onto ``{||d||_1 <= eps} ∩ {0 <= x + d <= 1}``.

    KKT: the projection is ``d_i = sign(z_i) * clamp(|z_i| - lambda, 0, u_i)`` with
    ``u_i = 1 - x_i`` if ``z_i > 0`` else ``x_i`` (the room left in the box in the
    direction of ``z_i``), and ``lambda >= 0`` the smallest value with ``||d||_1 <= eps``
    (found by sort-based thresholding, :func:`_l1_threshold`). Requires ``x`` in
    ``[0, 1]``. Computed in float64 and returned in ``delta``'s dtype.

    Used by: L1 PGD (seed 000 §6.1, figure 14), chapter 2; checked against cvxpy.
    """
    if x.shape != delta.shape:
        raise ValueError(f"x and delta must have the same shape, got {tuple(x.shape)} and "
                         f"{tuple(delta.shape)}")
    e = as_eps(eps, delta.shape[0], delta).double()
    z, xf = _flat(delta).double(), _flat(x).double()
    u = torch.where(z > 0, 1.0 - xf, xf).clamp_min(0)
    a = z.abs()
    lam = _l1_threshold(a, u, e)
    d = torch.sign(z) * torch.minimum((a - lam[:, None]).clamp_min(0), u)
    return d.to(delta.dtype).view_as(delta)


def project_l1(delta: torch.Tensor, eps) -> torch.Tensor:
    """Exact Euclidean projection onto the L1 ball (no box): soft-thresholding at the sorted level.

    Same algorithm as :func:`project_l1_box` with infinite box bounds (Duchi et al.'s
    sort-based simplex projection applied to ``|delta|``).
    """
    e = as_eps(eps, delta.shape[0], delta).double()
    z = _flat(delta).double()
    a = z.abs()
    lam = _l1_threshold(a, a, e)  # u = a: clamp(a - lam, 0, a) = (a - lam)_+ for lam >= 0
    d = torch.sign(z) * (a - lam[:, None]).clamp_min(0)
    return d.to(delta.dtype).view_as(delta)


def project(x: torch.Tensor, delta: torch.Tensor, eps, norm) -> torch.Tensor:
    """Project ``delta`` onto the ``norm`` ball of radius ``eps`` (and, for L1, the box); see above."""
    norm = check_norm(norm)
    if norm == "linf":
        return project_linf(delta, eps)
    if norm == "l2":
        return project_l2(delta, eps)
    return project_l1_box(x, delta, eps)


def random_in_ball(shape, eps, norm, *, device=None, dtype=torch.float32,
                   generator: torch.Generator | None = None) -> torch.Tensor:
    """Uniform random points in the ``norm`` ball of radius ``eps`` (per sample), shape ``shape``.

    - Linf: ``U(-eps, eps)`` per coordinate;
    - L2: a Gaussian direction normalized to the unit sphere, times ``eps * U^(1/d)``
      (uniform in the ball, not a uniform radius: GUIDE §5 trap 2);
    - L1: ``eps * s * E_{1:d} / (E_1 + ... + E_{d+1})`` with ``E_i ~ Exp(1)`` and random
      signs ``s`` (the normalized exponential spacings are uniform on the simplex
      ``{v >= 0, sum v <= 1}``).

    Used by: the random starts of FGSM-RS and PGD.
    """
    norm = check_norm(norm)
    shape = tuple(shape)
    n, d = shape[0], math.prod(shape[1:])
    like = torch.empty(0, device=device, dtype=dtype)
    e = as_eps(eps, n, like).view(n, 1)
    kw = dict(device=device, dtype=dtype, generator=generator)
    if norm == "linf":
        out = (2 * torch.rand(n, d, **kw) - 1) * e
    elif norm == "l2":
        g = torch.randn(n, d, **kw)
        g = g / g.norm(dim=1, keepdim=True).clamp_min(torch.finfo(dtype).tiny)
        r = torch.rand(n, 1, **kw) ** (1.0 / d)
        out = g * r * e
    else:
        expo = -torch.log1p(-torch.rand(n, d + 1, **kw))  # Exp(1), finite
        signs = torch.where(torch.rand(n, d, **kw) < 0.5, -1.0, 1.0).to(dtype)
        out = signs * expo[:, :d] / expo.sum(1, keepdim=True) * e
    return out.view(shape)
