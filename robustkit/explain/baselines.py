r"""Baseline feature attributions compared in seed 003 Table 7.1 (chapter 11).

All take ``model`` (logits), images ``x`` ``(N, C, H, W)`` in [0, 1] and the explained class
``target`` ``(N,)``; the explained output is the logit of ``target`` unless stated. Pixel
methods return ``(N, C, H, W)``; coalition methods (KernelSHAP, leave-one-out) work on
``patch x patch`` superpixels and return ``(N, F)``. Zero is the default reference value,
as in seed 003 §7.3 ("we use zero as the reference value for all explanations that require
baseline").
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as Fn
from torch import nn

from ..attacks.base import frozen_parameters
from ..modes import eval_mode
from .features import _check_image, n_features, to_pixels


def _check(model, x, target):
    if not isinstance(model, nn.Module):
        raise TypeError("model must be an nn.Module")
    _check_image(x)
    if not isinstance(target, torch.Tensor) or target.shape != (x.shape[0],) or target.dtype != torch.long:
        raise ValueError(f"target must be a LongTensor of shape ({x.shape[0]},)")


def _baseline(baseline, x):
    b = torch.as_tensor(baseline, dtype=x.dtype, device=x.device)
    try:
        return b.expand_as(x)
    except RuntimeError:
        raise ValueError(f"baseline of shape {tuple(b.shape)} does not broadcast to x {tuple(x.shape)}") from None


def _out_grad(model, x, target):
    """Gradient of the target logit w.r.t. the input (model in eval mode, weights untouched)."""
    with eval_mode(model), frozen_parameters(model):
        xg = x.detach().requires_grad_(True)
        out = model(xg).gather(1, target[:, None]).sum()
        g, = torch.autograd.grad(out, xg)
    return g


def vanilla_gradient(model: nn.Module, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    r"""Vanilla gradient :math:`\nabla_x f_t(x)` (Simonyan et al. 2014; "Grad" in seed 003 Table 7.1). Chapter 11."""
    _check(model, x, target)
    return _out_grad(model, x, target)


def integrated_gradients(model: nn.Module, x: torch.Tensor, target: torch.Tensor, *, baseline=0.0,
                         n_steps: int = 50, batch_size: int = 1024, return_delta: bool = False):
    r"""Integrated gradients (Sundararajan et al. 2017; "IG" in seed 003 Table 7.1):

    :math:`\mathrm{IG}_i(x) = (x_i - x'_i)\int_0^1 \partial_i f_t(x' + \alpha(x-x'))\,d\alpha`,
    the integral by the trapezoid rule on ``n_steps`` equally spaced points (the nodes of
    captum's ``riemann_trapezoid``, whose weights sum to ``(n-1)/n`` instead of 1). Completeness: :math:`\sum_i \mathrm{IG}_i = f_t(x) - f_t(x')` up
    to the quadrature error; ``return_delta=True`` also returns that gap ``(N,)``. Chapter 11.
    """
    _check(model, x, target)
    if not isinstance(n_steps, int) or n_steps < 2:
        raise ValueError("n_steps must be an int >= 2")
    b = _baseline(baseline, x)
    N = x.shape[0]
    alphas = torch.linspace(0, 1, n_steps, dtype=x.dtype, device=x.device)
    w = torch.full((n_steps,), 1.0 / (n_steps - 1), dtype=x.dtype, device=x.device)
    w[0] = w[-1] = 0.5 / (n_steps - 1)
    path = b[None] + alphas.view(-1, 1, 1, 1, 1) * (x - b)[None]  # (S, N, C, H, W)
    flat = path.reshape(-1, *x.shape[1:])
    T = target.repeat(n_steps)
    g = torch.cat([_out_grad(model, flat[i:i + batch_size], T[i:i + batch_size])
                   for i in range(0, flat.shape[0], batch_size)]).reshape(path.shape)
    ig = (x - b) * (w.view(-1, 1, 1, 1, 1) * g).sum(0)
    if not return_delta:
        return ig
    with torch.no_grad(), eval_mode(model):
        gap = model(x).gather(1, target[:, None])[:, 0] - model(b).gather(1, target[:, None])[:, 0]
    return ig, ig.flatten(1).sum(1) - gap


def expected_gradients(model: nn.Module, x: torch.Tensor, target: torch.Tensor, references: torch.Tensor, *,
                       n_samples: int = 32, seed: int = 0) -> torch.Tensor:
    r"""Expected gradients (Erion et al.; "EG" in seed 003 Table 7.1): IG averaged over references,

    :math:`\mathrm{EG}_i(x)=\mathbb E_{x'\sim D,\ \alpha\sim U(0,1)}[(x_i-x'_i)\,\partial_i f_t(x'+\alpha(x-x'))]`,
    Monte Carlo with ``n_samples`` draws of (reference from ``references``, alpha) per input. Chapter 11.
    """
    _check(model, x, target)
    _check_image(references, "references")
    if references.shape[1:] != x.shape[1:]:
        raise ValueError("references must have the image shape of x")
    if not isinstance(n_samples, int) or n_samples < 1:
        raise ValueError("n_samples must be a positive int")
    gen = torch.Generator().manual_seed(seed)
    N = x.shape[0]
    idx = torch.randint(len(references), (n_samples, N), generator=gen)
    ref = references[idx.flatten()].to(x.device).reshape(n_samples, N, *x.shape[1:])
    a = torch.rand(n_samples, N, generator=gen).to(x).view(n_samples, N, 1, 1, 1)
    pts = ref + a * (x[None] - ref)
    g = _out_grad(model, pts.reshape(-1, *x.shape[1:]), target.repeat(n_samples)).reshape(pts.shape)
    return ((x[None] - ref) * g).mean(0)


def _coalition_values(model, x, target, Z, baseline, patch, output, batch_size):
    """f_t on x with features in coalition Z (M, F) kept and the others at baseline -> (N, M)."""
    N = x.shape[0]
    M, F = Z.shape
    b = _baseline(baseline, x)
    pix = to_pixels(Z.to(x.dtype), x.shape[1:], patch)  # (M, C, H, W)
    out = torch.empty(N, M, dtype=x.dtype, device=x.device)
    with torch.no_grad(), eval_mode(model):
        for n in range(N):  # loop over samples, batched over coalitions
            for i in range(0, M, batch_size):
                p = pix[i:i + batch_size]
                inp = p * x[n] + (1 - p) * b[n]
                z = model(inp)
                if output == "prob":
                    z = torch.softmax(z, 1)
                out[n, i:i + batch_size] = z[:, target[n]]
    return out


def _kernel_weight(F: int, s: torch.Tensor) -> torch.Tensor:
    s = s.double()
    lb = torch.lgamma(torch.tensor(F + 1.0, dtype=torch.float64)) - torch.lgamma(s + 1) - torch.lgamma(F - s + 1)
    return (F - 1) / (torch.exp(lb) * s * (F - s))


def kernel_shap(model: nn.Module, x: torch.Tensor, target: torch.Tensor, *, patch: int = 1, n_samples: int = 512,
                baseline=0.0, output: str = "logit", seed: int = 0, batch_size: int = 1024) -> torch.Tensor:
    r"""KernelSHAP (Lundberg & Lee 2017; "SHAP" in seed 003 Table 7.1) on superpixel features.

    Weighted least squares :math:`\min_\phi\sum_z \pi(z)\,(v(z)-\phi_0-\phi^\top z)^2` with the
    Shapley kernel :math:`\pi(z)=\frac{F-1}{\binom{F}{|z|}|z|(F-|z|)}`, under the efficiency
    constraints :math:`\phi_0=v(\mathbf 0)`, :math:`\phi_0+\sum_i\phi_i=v(\mathbf 1)`; ``v(z)`` is the
    target logit (or probability, ``output="prob"``) with the features outside ``z`` at
    ``baseline``. If ``n_samples >= 2^F - 2`` all coalitions are enumerated (exact Shapley
    values); otherwise coalition sizes are drawn from the kernel and weighted uniformly.
    Returns ``(N, F)``. Chapter 11.
    """
    _check(model, x, target)
    if output not in ("logit", "prob"):
        raise ValueError("output must be 'logit' or 'prob'")
    F = n_features(x.shape, patch)
    if F < 2:
        raise ValueError("KernelSHAP needs at least 2 features")
    if not isinstance(n_samples, int) or n_samples < 1:
        raise ValueError("n_samples must be a positive int")
    if F <= 20 and n_samples >= 2 ** F - 2:
        codes = torch.arange(1, 2 ** F - 1)
        Z = ((codes[:, None] >> torch.arange(F)) & 1).bool()
        wts = _kernel_weight(F, Z.sum(1))
    else:
        gen = torch.Generator().manual_seed(seed)
        sizes = torch.arange(1, F)
        p = (F - 1) / (sizes * (F - sizes)).double()
        s = sizes[torch.multinomial(p / p.sum(), n_samples, replacement=True, generator=gen)]
        r = torch.rand(n_samples, F, generator=gen).argsort(1).argsort(1)
        Z = r < s[:, None]
        wts = torch.ones(n_samples, dtype=torch.float64)
    Z = Z.to(x.device)
    allz = torch.cat([torch.zeros(1, F, dtype=torch.bool, device=x.device),
                      torch.ones(1, F, dtype=torch.bool, device=x.device), Z])
    v = _coalition_values(model, x, target, allz, baseline, patch, output, batch_size).double()
    v0, v1, vz = v[:, :1], v[:, 1:2], v[:, 2:]
    # eliminate phi_F = (v1 - v0) - sum_{i<F} phi_i
    Zd = Z.double()
    A = Zd[:, :-1] - Zd[:, -1:]                      # (M, F-1)
    rhs = vz - v0 - Zd[:, -1][None] * (v1 - v0)      # (N, M)
    Wt = wts.to(x.device)
    AtWA = A.T @ (Wt[:, None] * A) + 1e-12 * torch.eye(F - 1, dtype=torch.float64, device=x.device)
    phi_head = torch.linalg.solve(AtWA, (A.T @ (Wt[:, None] * rhs.T))).T  # (N, F-1)
    phi_last = (v1 - v0)[:, 0] - phi_head.sum(1)
    return torch.cat([phi_head, phi_last[:, None]], 1).to(x.dtype)


def leave_one_out(model: nn.Module, x: torch.Tensor, target: torch.Tensor, *, patch: int = 1, baseline=0.0,
                  output: str = "logit", batch_size: int = 1024) -> torch.Tensor:
    r"""Leave-one-out (Zeiler & Fergus; "LOO" in seed 003 Table 7.1): :math:`f_t(x) - f_t(x_{i\to x'_i})`
    for each superpixel ``i`` set to ``baseline``. Returns ``(N, F)``. Chapter 11."""
    _check(model, x, target)
    if output not in ("logit", "prob"):
        raise ValueError("output must be 'logit' or 'prob'")
    F = n_features(x.shape, patch)
    Z = ~torch.eye(F, dtype=torch.bool, device=x.device)
    allz = torch.cat([torch.ones(1, F, dtype=torch.bool, device=x.device), Z])
    v = _coalition_values(model, x, target, allz, baseline, patch, output, batch_size)
    return v[:, :1] - v[:, 1:]


def _tv(m):
    return (m[..., 1:, :] - m[..., :-1, :]).abs().mean((-1, -2)) + (m[..., :, 1:] - m[..., :, :-1]).abs().mean((-1, -2))


def meaningful_perturbation(model: nn.Module, x: torch.Tensor, target: torch.Tensor, *, baseline=0.0,
                            steps: int = 150, lr: float = 0.1, l1: float = 0.05, tv: float = 0.2,
                            mask_scale: int = 4, seed: int = 0) -> torch.Tensor:
    r"""Meaningful perturbation mask (Fong & Vedaldi 2017; "BBMP" in seed 003 Table 7.1).

    Learns a smooth mask :math:`m\in[0,1]^{H\times W}` (upsampled from a ``1/mask_scale``
    grid) that deletes as little as possible while destroying the target:
    :math:`\min_m p_t(m\odot x + (1-m)\odot x') + \lambda_1\|1-m\|_1/d + \lambda_{TV}\,\mathrm{TV}(m)`
    with Adam, vectorized over the batch. Returns the deletion map ``1 - m`` ``(N, 1, H, W)``
    broadcast to the channels (higher = more important). Chapter 11.
    """
    _check(model, x, target)
    if not isinstance(mask_scale, int) or mask_scale < 1 or x.shape[-1] % mask_scale or x.shape[-2] % mask_scale:
        raise ValueError("mask_scale must be a positive int dividing H and W")
    N, C, H, W = x.shape
    b = _baseline(baseline, x)
    gen = torch.Generator().manual_seed(seed)
    theta = (2.0 + 0.01 * torch.randn(N, 1, H // mask_scale, W // mask_scale, generator=gen)).to(x)
    theta.requires_grad_(True)
    opt = torch.optim.Adam([theta], lr=lr)
    with eval_mode(model), frozen_parameters(model), torch.enable_grad():
        for _ in range(steps):
            m = torch.sigmoid(Fn.interpolate(theta, size=(H, W), mode="bilinear", align_corners=False))
            xp = m * x + (1 - m) * b
            p = torch.softmax(model(xp), 1).gather(1, target[:, None])[:, 0]
            loss = (p + l1 * (1 - m).mean((1, 2, 3)) + tv * _tv(m[:, 0])).sum()
            opt.zero_grad()
            loss.backward()
            opt.step()
    with torch.no_grad():
        m = torch.sigmoid(Fn.interpolate(theta, size=(H, W), mode="bilinear", align_corners=False))
    return (1 - m).expand(N, C, H, W).detach()


def random_attribution(x: torch.Tensor, *, patch: int = 1, seed: int = 0) -> torch.Tensor:
    """Random ranking ("Random" in seed 003 Table 7.1): i.i.d. uniform scores ``(N, F)``. Chapter 11."""
    _check_image(x)
    gen = torch.Generator().manual_seed(seed)
    return torch.rand(x.shape[0], n_features(x.shape, patch), generator=gen).to(x.device)
