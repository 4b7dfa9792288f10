r"""Information-theoretic explainers (seed 000 §4): L2X and the VIB explainer (chapter 11).

Both learn an *instance-wise* feature selector for a fixed black-box classifier ``model``
on ``patch x patch`` superpixels, and an approximator :math:`q(y\mid x_S)` that predicts the
black box's label from the masked input :math:`t = x\odot z` (non-selected features at 0):

- **L2X** (Chen et al. 2018): maximize the variational lower bound
  :math:`I(X_S;Y)\ge \mathbb E[\log q(Y\mid X_S)] + H(Y)` over selections of exactly ``k``
  features, relaxed by a continuous top-k sample: ``k`` independent Gumbel-softmax
  (Concrete) draws over the ``F`` selector logits, combined by an element-wise maximum.
  At test time the selection is the hard top-k of the logits.
- **VIB explainer** (Bang et al. 2019, "VIBI"; seed 000 eq. of §4):
  :math:`\max I(t;y)-\beta I(x;t)`. We relax the binary mask with Gaussian logits
  :math:`u\sim\mathcal N(\mu(x),\operatorname{diag}\sigma^2(x))`, :math:`z=\sigma(u/\tau)`, and bound
  :math:`I(x;t)` by :math:`\mathbb E_x\,D(\mathcal N(\mu,\sigma^2)\,\|\,\mathcal N(m_0,I))` (closed-form
  Gaussian KL, :func:`robustkit.infotheory.diag_gaussian_kl_to_standard`), as in the VIB of
  Alemi et al.; Bang et al. use a categorical selection instead (stated deviation).

The selectors' logits ``(N, F)`` are the feature scores.
"""
from __future__ import annotations

import torch
import torch.nn.functional as Fn
from torch import nn

from ..infotheory import diag_gaussian_kl_to_standard
from ..modes import eval_mode
from .features import _check_image, n_features, to_pixels


def gumbel_topk_relaxed(logits: torch.Tensor, k: int, tau: float, *, generator=None) -> torch.Tensor:
    r"""Continuous top-k sample of L2X (Chen et al. 2018, eq. 6): the element-wise max of ``k``
    Concrete samples :math:`\mathrm{softmax}((\log\pi + G_j)/\tau)`, :math:`G_j` i.i.d. Gumbel. ``(N, F)`` in [0, 1]. Chapter 11."""
    if logits.ndim != 2:
        raise ValueError("logits must have shape (N, F)")
    if not isinstance(k, int) or not (1 <= k <= logits.shape[1]):
        raise ValueError(f"k must be an int in [1, {logits.shape[1]}]")
    if not tau > 0:
        raise ValueError("tau must be > 0")
    u = torch.rand((k,) + logits.shape, generator=generator).to(logits).clamp(1e-10, 1 - 1e-10)
    g = -torch.log(-torch.log(u))
    return torch.softmax((logits.log_softmax(1)[None] + g) / tau, dim=-1).amax(0)


class _Selector(nn.Module):
    """Small conv net: image -> per-superpixel outputs (n_out channels) on the (H/p, W/p) grid."""

    def __init__(self, in_ch: int, patch: int, n_out: int = 1, width: int = 32):
        super().__init__()
        self.patch = patch
        self.net = nn.Sequential(
            nn.Conv2d(in_ch, width, 3, padding=1), nn.ReLU(),
            nn.Conv2d(width, width, 3, padding=1), nn.ReLU(),
            nn.Conv2d(width, n_out, 1))

    def forward(self, x):
        h = self.net(x)
        if self.patch > 1:
            h = Fn.avg_pool2d(h, self.patch)
        return h.flatten(2).transpose(1, 2)  # (N, F, n_out)


class _Approximator(nn.Module):
    def __init__(self, shape, n_classes: int, width: int = 128):
        super().__init__()
        d = int(torch.tensor(shape).prod())
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(d, width), nn.ReLU(), nn.Linear(width, n_classes))

    def forward(self, t):
        return self.net(t)


def _check_fit(model, x, k, patch, epochs, batch_size):
    if not isinstance(model, nn.Module):
        raise TypeError("model must be an nn.Module")
    _check_image(x)
    F = n_features(x.shape, patch)
    if k is not None and (not isinstance(k, int) or not (1 <= k <= F)):
        raise ValueError(f"k must be an int in [1, {F}]")
    if not isinstance(epochs, int) or epochs < 1 or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError("epochs and batch_size must be positive ints")
    return F


@torch.no_grad()
def _labels(model, x):
    with eval_mode(model):
        return torch.cat([model(x[i:i + 1024]).argmax(1) for i in range(0, len(x), 1024)])


def _fit_loop(ex, x, y, batch_loss, *, epochs, batch_size, lr, seed):
    """Adam over shuffled mini-batches; ``batch_loss(ex, xb, yb, generator) -> loss``."""
    opt = torch.optim.Adam(ex.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(seed)
    ex.train()
    for _ in range(epochs):
        perm = torch.randperm(len(x), generator=gen)
        for i in range(0, len(x), batch_size):
            b = perm[i:i + batch_size]
            loss = batch_loss(ex, x[b], y[b], gen)
            opt.zero_grad()
            loss.backward()
            opt.step()
    return ex.eval()


class _PosthocAccuracy:
    """``approx_accuracy``: how often q on the hard top-k selection agrees with the black box."""

    @torch.no_grad()
    def approx_accuracy(self, model: nn.Module, x: torch.Tensor) -> float:
        return float((self(x, hard=True).argmax(1) == _labels(model, x)).float().mean())


class L2X(_PosthocAccuracy, nn.Module):
    r"""L2X explainer (Chen et al. 2018; seed 000 §4): selector + approximator, see :meth:`fit`.

    ``scores(x)`` -> selector logits ``(N, F)``; ``mask(x)`` -> hard top-k feature mask;
    ``approx_accuracy(model, x)`` -> post-hoc accuracy of the approximator on the hard
    selections w.r.t. the black box's labels. Chapter 11.
    """

    def __init__(self, shape, n_classes: int, k: int, *, patch: int = 1, tau: float = 0.5):
        super().__init__()
        self.shape, self.k, self.patch, self.tau = tuple(shape), k, patch, tau
        self.selector = _Selector(shape[0], patch)
        self.approximator = _Approximator(shape, n_classes)

    def scores(self, x):
        return self.selector(x)[..., 0]

    def mask(self, x):
        s = self.scores(x)
        return torch.zeros_like(s).scatter(1, s.topk(self.k, 1).indices, 1.0)

    def forward(self, x, *, hard: bool = False, generator=None):
        s = self.scores(x)
        z = self.mask(x) if hard else gumbel_topk_relaxed(s, self.k, self.tau, generator=generator)
        return self.approximator(x * to_pixels(z, x.shape[1:], self.patch))

    @classmethod
    def fit(cls, model: nn.Module, x: torch.Tensor, *, k: int, patch: int = 1, n_classes: int | None = None,
            epochs: int = 5, batch_size: int = 128, lr: float = 1e-3, tau: float = 0.5, seed: int = 0) -> "L2X":
        r"""Train on images ``x``: maximize :math:`\mathbb E\log q(f(x)\mid x\odot z)` (cross-entropy to the
        black box's predicted labels) through the relaxed top-k mask. Returns the fitted explainer (eval mode)."""
        _check_fit(model, x, k, patch, epochs, batch_size)
        torch.manual_seed(seed)
        y = _labels(model, x)
        n_classes = int(y.max()) + 1 if n_classes is None else n_classes
        ex = cls(x.shape[1:], n_classes, k, patch=patch, tau=tau).to(x.device)
        return _fit_loop(ex, x, y, lambda e, xb, yb, g: Fn.cross_entropy(e(xb, generator=g), yb),
                         epochs=epochs, batch_size=batch_size, lr=lr, seed=seed)


class VIBExplainer(_PosthocAccuracy, nn.Module):
    r"""VIB explainer (Bang et al. 2019, relaxed with Gaussian logits; seed 000 §4), see :meth:`fit`.

    Loss per input: :math:`-\log q(f(x)\mid x\odot z) + \beta\,D(\mathcal N(\mu,\sigma^2)\|\mathcal N(m_0 1,I))`,
    with a prior mean :math:`m_0<0` (``prior_mean``) so that features are off unless informative,
    :math:`z=\sigma(u/\tau)`, :math:`u=\mu+\sigma\epsilon`. ``scores(x)`` = :math:`\mu(x)` ``(N, F)``;
    ``mask(x)`` = hard top-k of :math:`\mu` (``k`` given at construction). Chapter 11.
    """

    def __init__(self, shape, n_classes: int, k: int, *, patch: int = 1, tau: float = 0.2, beta: float = 1e-3,
                 prior_mean: float = -2.0):
        super().__init__()
        self.shape, self.k, self.patch, self.tau, self.beta = tuple(shape), k, patch, tau, beta
        self.prior_mean = prior_mean
        self.encoder = _Selector(shape[0], patch, n_out=2)
        self.approximator = _Approximator(shape, n_classes)

    def stats(self, x):
        h = self.encoder(x)
        return h[..., 0], h[..., 1].clamp(-10, 10)  # mu, logvar

    def scores(self, x):
        return self.stats(x)[0]

    def mask(self, x):
        s = self.scores(x)
        return torch.zeros_like(s).scatter(1, s.topk(self.k, 1).indices, 1.0)

    def loss(self, x, y, *, generator=None):
        """Return (total, cross-entropy, KL) averaged over the batch."""
        mu, lv = self.stats(x)
        eps = torch.randn(mu.shape, generator=generator).to(mu)
        z = torch.sigmoid((mu + (0.5 * lv).exp() * eps) / self.tau)
        ce = Fn.cross_entropy(self.approximator(x * to_pixels(z, x.shape[1:], self.patch)), y)
        # KL(N(mu, s^2) || N(m0, I)) = KL(N(mu - m0, s^2) || N(0, I))
        kl = diag_gaussian_kl_to_standard(mu - self.prior_mean, logvar=lv).mean()
        return ce + self.beta * kl, ce, kl

    def forward(self, x, *, hard: bool = True):
        # deterministic mask sigma(mu / tau); hard=True keeps it on the top-k features only
        z = torch.sigmoid(self.scores(x) / self.tau)
        if hard:
            z = z * self.mask(x)
        return self.approximator(x * to_pixels(z, x.shape[1:], self.patch))

    @classmethod
    def fit(cls, model: nn.Module, x: torch.Tensor, *, k: int, patch: int = 1, n_classes: int | None = None,
            beta: float = 1e-3, prior_mean: float = -2.0, epochs: int = 5, batch_size: int = 128, lr: float = 1e-3,
            tau: float = 0.2,
            seed: int = 0) -> "VIBExplainer":
        """Train on images ``x`` against the black box's predicted labels; returns the explainer (eval mode)."""
        _check_fit(model, x, k, patch, epochs, batch_size)
        if not beta >= 0:
            raise ValueError("beta must be >= 0")
        torch.manual_seed(seed)
        y = _labels(model, x)
        n_classes = int(y.max()) + 1 if n_classes is None else n_classes
        ex = cls(x.shape[1:], n_classes, k, patch=patch, tau=tau, beta=beta,
                 prior_mean=prior_mean).to(x.device)
        return _fit_loop(ex, x, y, lambda e, xb, yb, g: e.loss(xb, yb, generator=g)[0],
                         epochs=epochs, batch_size=batch_size, lr=lr, seed=seed)
