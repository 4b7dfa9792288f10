r"""Robustness-based evaluation of explanations (seed 003 §7.1, Hsieh et al. 2021).

- :func:`restricted_pgd`: L2 PGD whose perturbation is zero outside a feature set S;
- :func:`restricted_minimal_perturbation`: :math:`g(f, x, S) = \epsilon^*_{x_S}` of eq. (7.1)
  (untargeted) or eq. (7.2) (targeted), estimated by restricted PGD plus a per-sample
  bisection over eps (an upper bound of the true minimum);
- :func:`robustness_curve`: Robustness-:math:`\bar S_r` / Robustness-:math:`S_r`
  (Def. 7.1.2) over :math:`|S_r|`, with :func:`auc` (trapezoid rule of §7.1.2);
- :func:`insertion_deletion`: insertion and deletion curves for comparison.

Chapter 11.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from ..attacks.base import frozen_parameters
from ..attacks.projections import project_l2
from ..modes import eval_mode
from .features import _check_image, to_pixels, top_k_mask


def _margin(logits: torch.Tensor, y: torch.Tensor, target) -> torch.Tensor:
    """Attack objective: >0 iff the attack succeeded (untargeted: best other - y; targeted: t - best other)."""
    if target is None:
        z_y = logits.gather(1, y[:, None])[:, 0]
        other = logits.scatter(1, y[:, None], float("-inf")).amax(1)
        return other - z_y
    z_t = logits.gather(1, target[:, None])[:, 0]
    other = logits.scatter(1, target[:, None], float("-inf")).amax(1)
    return z_t - other


def _check_xy(x, y, target, mask):
    _check_image(x)
    N = x.shape[0]
    if not isinstance(y, torch.Tensor) or y.shape != (N,) or y.dtype not in (torch.long, torch.int64):
        raise ValueError(f"y must be a LongTensor of shape ({N},)")
    if target is not None:
        if not isinstance(target, torch.Tensor) or target.shape != (N,):
            raise ValueError(f"target must be a LongTensor of shape ({N},)")
        if bool((target == y).any()):
            raise ValueError("target must differ from y for every sample")
    if mask is not None:
        if not isinstance(mask, torch.Tensor):
            raise TypeError("mask must be a tensor")
        if mask.shape != x.shape:
            raise ValueError(f"pixel mask must have the shape of x {tuple(x.shape)}, got {tuple(mask.shape)}")


def _as_eps(eps, N, like):
    e = torch.as_tensor(eps, dtype=like.dtype, device=like.device)
    if e.ndim == 0:
        e = e.expand(N)
    if e.shape != (N,):
        raise ValueError(f"eps must be a float or a tensor of shape ({N},)")
    if bool((e < 0).any()) or not bool(torch.isfinite(e).all()):
        raise ValueError("eps must be finite and >= 0")
    return e


@torch.no_grad()
def _predict(model, x, batch_size=1024):
    return torch.cat([model(x[i:i + batch_size]) for i in range(0, len(x), batch_size)])


def restricted_pgd(model: nn.Module, x: torch.Tensor, y: torch.Tensor, mask: torch.Tensor, eps, *,
                   steps: int = 20, alpha=None, target: torch.Tensor | None = None):
    r"""L2 PGD restricted to the pixels where ``mask`` is 1 (seed 003 §7.1.2, eq. 7.1).

    Maximizes the logit margin (untargeted: best other class minus ``y``; targeted:
    ``target`` minus best other) over :math:`\delta` with :math:`\|\delta\|_2\le\epsilon`,
    :math:`\delta_{\bar S}=0` and :math:`x+\delta\in[0,1]`; after every step the
    perturbation is masked, projected onto the ball and clamped (clamping never moves a
    zero coordinate since ``x`` is already in the box). Starts at :math:`\delta=0`,
    ``alpha`` defaults to ``2.5 * eps / steps``. Returns ``(x_adv, success)``, where
    ``success`` marks the samples whose best iterate is adversarial (``x_adv`` is that
    best iterate, else the last one). Model in eval mode, parameters untouched. Chapter 11.
    """
    _check_xy(x, y, target, mask)
    if not isinstance(steps, int) or steps < 1:
        raise ValueError("steps must be a positive int")
    N = x.shape[0]
    e = _as_eps(eps, N, x)
    a = 2.5 * e / steps if alpha is None else _as_eps(alpha, N, x)
    m = mask.to(x.dtype)
    view = (N,) + (1,) * (x.ndim - 1)
    delta = torch.zeros_like(x)
    best = x.clone()
    success = torch.zeros(N, dtype=torch.bool, device=x.device)
    with eval_mode(model), frozen_parameters(model):
        for _ in range(steps + 1):
            xa = (x + delta).detach().requires_grad_(True)
            obj = _margin(model(xa), y, target)
            won = (obj.detach() > 0) & ~success
            best[won] = xa.detach()[won]
            success |= won
            if _ == steps or bool(success.all()):
                break
            g, = torch.autograd.grad(obj.sum(), xa)
            g = g * m
            gn = g.flatten(1).norm(dim=1).clamp_min(1e-12)
            active = (~success).to(x.dtype).view(view)
            delta = delta + active * a.view(view) * g / gn.view(view)
            delta = project_l2(delta * m, e)
            delta = (x + delta).clamp(0, 1) - x
    best[~success] = (x + delta)[~success]
    return best.detach(), success


def restricted_minimal_perturbation(model: nn.Module, x: torch.Tensor, y: torch.Tensor, mask: torch.Tensor,
                                    *, eps_max: float, steps: int = 20, search_steps: int = 8,
                                    target: torch.Tensor | None = None) -> torch.Tensor:
    r"""Estimate :math:`g(f,x,S)=\epsilon^*_{x_S}` of eq. (7.1) (or eq. (7.2) with ``target``).

    Batched per-sample bisection over eps in ``[0, eps_max]`` with :func:`restricted_pgd` as
    the feasibility oracle; returns the smallest successful L2 norm found (an upper bound of
    the true minimum), ``0`` for inputs that are already adversarial, ``inf`` where the
    attack fails at ``eps_max``. ``mask`` is a pixel mask shaped like ``x`` (1 = in S).
    Seed 003 §7.1.2 (PGD attack, L2). Chapter 11.
    """
    _check_xy(x, y, target, mask)
    if not (isinstance(eps_max, (int, float)) and math.isfinite(eps_max) and eps_max > 0):
        raise ValueError("eps_max must be a finite float > 0")
    if not isinstance(search_steps, int) or search_steps < 0:
        raise ValueError("search_steps must be an int >= 0")
    N = x.shape[0]
    out = torch.full((N,), float("inf"), dtype=x.dtype, device=x.device)
    with eval_mode(model):
        clean = _margin(_predict(model, x), y, target) > 0
    out[clean] = 0.0
    hi = torch.full((N,), float(eps_max), dtype=x.dtype, device=x.device)
    lo = torch.zeros_like(hi)
    todo = ~clean
    if not bool(todo.any()):
        return out
    idx = todo.nonzero()[:, 0]
    tgt = None if target is None else target[idx]
    xa, ok = restricted_pgd(model, x[idx], y[idx], mask[idx], hi[idx], steps=steps, target=tgt)
    found = torch.full((N,), float("inf"), dtype=x.dtype, device=x.device)
    found[idx[ok]] = (xa - x[idx]).flatten(1).norm(dim=1)[ok]
    alive = idx[ok]  # bisection only where eps_max succeeded
    for _ in range(search_steps):
        if alive.numel() == 0:
            break
        mid = (lo[alive] + hi[alive]) / 2
        tgt = None if target is None else target[alive]
        xa, ok = restricted_pgd(model, x[alive], y[alive], mask[alive], mid, steps=steps, target=tgt)
        nrm = (xa - x[alive]).flatten(1).norm(dim=1)
        found[alive[ok]] = torch.minimum(found[alive[ok]], nrm[ok])
        hi[alive[ok]] = mid[ok]
        lo[alive[~ok]] = mid[~ok]
    out[todo] = found[todo]
    return out


def _check_sizes(sizes, F):
    s = torch.as_tensor(sizes).long().flatten()
    if s.numel() == 0:
        raise ValueError("sizes must not be empty")
    if bool((s < 0).any()) or bool((s > F).any()):
        raise ValueError(f"sizes must lie in [0, {F}]")
    if s.numel() > 1 and bool((s[1:] <= s[:-1]).any()):
        raise ValueError("sizes must be strictly increasing")
    return s


def _check_scores(x, scores, sizes) -> tuple[int, int, list]:
    """Validate images, a ``(N, F)`` score table and feature-set sizes; ``(N, F, sizes)``."""
    _check_image(x)
    N = x.shape[0]
    if scores.ndim != 2 or scores.shape[0] != N:
        raise ValueError(f"scores must have shape ({N}, F), got {tuple(scores.shape)}")
    F = scores.shape[1]
    return N, F, _check_sizes(sizes, F)


def robustness_curve(model: nn.Module, x: torch.Tensor, y: torch.Tensor, scores: torch.Tensor, sizes, *,
                     criterion: str = "complement", patch: int = 1, eps_max: float = 10.0, steps: int = 20,
                     search_steps: int = 8, target: torch.Tensor | None = None, cap: bool = True,
                     batch_size: int = 512) -> torch.Tensor:
    r"""Robustness-:math:`\bar S_r` or Robustness-:math:`S_r` (Def. 7.1.2) for each :math:`|S_r|` in ``sizes``.

    ``scores`` ``(N, F)`` ranks features (higher = more relevant); :math:`S_r` = the top
    ``K`` features. ``criterion="complement"`` perturbs only :math:`\bar S_r` (anchor S_r;
    higher is better), ``"relevant"`` perturbs only :math:`S_r` (lower is better). Returns
    ``(len(sizes), N)`` minimal L2 norms (eq. 7.1, or 7.2 with ``target``); failures at
    ``eps_max`` are capped to ``eps_max`` if ``cap`` (else ``inf``). All (size, sample)
    pairs run as one batch (chunks of ``batch_size``). Seed 003 §7.1.2. Chapter 11.
    """
    if criterion not in ("complement", "relevant"):
        raise ValueError(f"criterion must be 'complement' or 'relevant', got {criterion!r}")
    N, F, s = _check_scores(x, scores, sizes)
    masks = torch.stack([top_k_mask(scores, int(k)) for k in s])  # (K, N, F)
    if criterion == "complement":
        masks = ~masks
    pix = to_pixels(masks.reshape(-1, F).to(x.dtype), x.shape[1:], patch)
    X = x.repeat(len(s), 1, 1, 1)
    Y = y.repeat(len(s))
    T = None if target is None else target.repeat(len(s))
    out = []
    for i in range(0, X.shape[0], batch_size):
        sl = slice(i, i + batch_size)
        out.append(restricted_minimal_perturbation(model, X[sl], Y[sl], pix[sl].contiguous(), eps_max=eps_max,
                                                   steps=steps, search_steps=search_steps,
                                                   target=None if T is None else T[sl]))
    r = torch.cat(out).reshape(len(s), N)
    return r.clamp(max=eps_max) if cap else r


def auc(xs, ys) -> torch.Tensor:
    r"""Area under a curve by the trapezoid rule of seed 003 §7.1.2:
    :math:`\mathrm{AUC}=\sum_{i=1}^n (y_i+y_{i-1})/2\,(x_i-x_{i-1})`.

    ``xs`` strictly increasing ``(n+1,)``; ``ys`` ``(n+1,)`` or ``(n+1, ...)`` (AUC per column). Chapter 11.
    """
    x = torch.as_tensor(xs, dtype=torch.float64)
    y = torch.as_tensor(ys, dtype=torch.float64)
    if x.ndim != 1 or x.numel() < 2:
        raise ValueError("xs must be 1-D with at least 2 points")
    if y.shape[0] != x.shape[0]:
        raise ValueError(f"ys must have {x.shape[0]} rows, got shape {tuple(y.shape)}")
    if bool((x[1:] <= x[:-1]).any()):
        raise ValueError("xs must be strictly increasing")
    if not bool(torch.isfinite(y).all()):
        raise ValueError("ys must be finite (cap failed attacks first)")
    dx = (x[1:] - x[:-1]).reshape((-1,) + (1,) * (y.ndim - 1))
    return ((y[1:] + y[:-1]) / 2 * dx).sum(0)


def insertion_deletion(model: nn.Module, x: torch.Tensor, y: torch.Tensor, scores: torch.Tensor, sizes, *,
                       patch: int = 1, baseline: float | torch.Tensor = 0.0, batch_size: int = 1024):
    r"""Insertion and deletion curves (Samek et al.; Petsiuk et al.; seed 003 §7.1.2).

    For each :math:`K` in ``sizes``: insertion keeps only the top-K features of ``scores``
    (the rest set to ``baseline``), deletion sets the top-K to ``baseline``; the value is the
    softmax probability of class ``y``. Returns ``(insertion, deletion)``, each
    ``(len(sizes), N)``. Higher insertion AUC / lower deletion AUC is better. Chapter 11.
    """
    N, F, s = _check_scores(x, scores, sizes)
    b = torch.as_tensor(baseline, dtype=x.dtype, device=x.device).expand_as(x)
    masks = torch.stack([top_k_mask(scores, int(k)) for k in s]).reshape(-1, F).to(x.dtype)
    pix = to_pixels(masks, x.shape[1:], patch)
    X = x.repeat(len(s), 1, 1, 1)
    B = b.repeat(len(s), 1, 1, 1)
    Y = y.repeat(len(s))
    ins = pix * X + (1 - pix) * B
    dele = (1 - pix) * X + pix * B
    with eval_mode(model):
        pi = torch.softmax(_predict(model, ins, batch_size), 1).gather(1, Y[:, None])[:, 0]
        pd = torch.softmax(_predict(model, dele, batch_size), 1).gather(1, Y[:, None])[:, 0]
    return pi.reshape(len(s), N), pd.reshape(len(s), N)
