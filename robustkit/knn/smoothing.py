"""Gaussian randomized smoothing (Cohen, Rosenfeld and Kolter 2019), the neural-network
baseline of seed 003 Fig. 3.3 / Fig. 3.7.

The smoothed classifier ``g(x) = argmax_c P(f(x + N(0, sigma^2 I)) = c)`` is robust at
``x`` within the L2 radius ``sigma Phi^{-1}(p_A)`` when the top class has probability
``p_A > 1/2`` (Cohen et al., Theorem 1, with ``p_B = 1 - p_A``). CERTIFY estimates it by
Monte Carlo: ``n0`` draws choose the class, ``n`` fresh draws count it, and a one-sided
Clopper-Pearson bound gives ``p_A_lower`` with confidence ``1 - alpha``; the point is
certified with radius ``sigma Phi^{-1}(p_A_lower)`` if that is positive, else it abstains.
Batched over test points and noise draws. Used by chapter 8.
"""
from __future__ import annotations

import numpy as np
import torch
from scipy.stats import beta, binom, norm

from ..modes import eval_mode

__all__ = ["clopper_pearson_lower", "smoothing_certify", "smoothing_predict", "train_noisy_convnet",
           "noisy_objective"]


def clopper_pearson_lower(successes, trials, alpha: float = 0.001) -> np.ndarray:
    """One-sided ``(1 - alpha)`` Clopper-Pearson lower confidence bound of a binomial
    proportion: the ``alpha`` quantile of ``Beta(k, n - k + 1)`` (0 when ``k = 0``)."""
    k = np.asarray(successes, dtype=np.float64)
    n = np.asarray(trials, dtype=np.float64)
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    if np.any(n < 1) or np.any(k < 0) or np.any(k > n) or np.any(k != np.round(k)):
        raise ValueError("need integer counts 0 <= successes <= trials, trials >= 1")
    with np.errstate(invalid="ignore"):
        out = beta.ppf(alpha, np.maximum(k, 1), n - k + 1)
    return np.where(k == 0, 0.0, out)


def _counts(model, x, sigma, n, n_classes, batch_size, generator):
    counts = torch.zeros(x.shape[0], n_classes, dtype=torch.int64)
    dev = next(model.parameters()).device
    xs = x.to(dev)
    with torch.no_grad():
        done = 0
        while done < n:
            m = min(batch_size // max(1, x.shape[0]) or 1, n - done)
            noise = torch.randn((m,) + tuple(x.shape), generator=generator, dtype=x.dtype)
            batch = (xs[None] + sigma * noise.to(dev)).reshape(-1, *x.shape[1:])
            pred = model(batch).argmax(1).reshape(m, x.shape[0]).cpu()
            counts += torch.nn.functional.one_hot(pred, n_classes).sum(0)
            done += m
    return counts


def _check(model, x, sigma, n):
    if not isinstance(model, torch.nn.Module):
        raise TypeError("model must be a torch.nn.Module returning logits")
    if not isinstance(x, torch.Tensor) or x.ndim < 2:
        raise ValueError("x must be a batch tensor (N, ...)")
    if not sigma > 0:
        raise ValueError(f"sigma must be positive, got {sigma}")
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"the number of noise draws must be a positive integer, got {n!r}")


def smoothing_certify(model, x, *, sigma: float, n0: int = 100, n: int = 1000, alpha: float = 0.001,
                      n_classes: int = 10, batch_size: int = 10_000, seed: int = 0):
    """CERTIFY of Cohen et al. 2019 (Algorithm "certify"), vectorized over ``x`` (N, ...).

    Returns ``(pred, radius)``: ``pred`` the smoothed prediction (-1 = abstain) and the
    certified L2 radius ``sigma Phi^{-1}(p_A_lower)`` (0 for abstentions). The model is used
    in eval mode (its mode is restored). Seed 003 Fig. 3.3 (RandSmooth); chapter 8."""
    _check(model, x, sigma, n)
    _check(model, x, sigma, n0)
    g = torch.Generator().manual_seed(seed)
    with eval_mode(model):
        guess = _counts(model, x, sigma, n0, n_classes, batch_size, g).argmax(1)
        c = _counts(model, x, sigma, n, n_classes, batch_size, g)
    n_a = c.gather(1, guess[:, None])[:, 0].numpy()
    p_low = clopper_pearson_lower(n_a, n, alpha)
    radius = np.where(p_low > 0.5, sigma * norm.ppf(np.clip(p_low, 0.5, 1 - 1e-16)), 0.0)
    pred = torch.where(torch.from_numpy(p_low > 0.5), guess, torch.full_like(guess, -1))
    return pred, torch.from_numpy(radius)


def smoothing_predict(model, x, *, sigma: float, n: int = 100, alpha: float = 0.001,
                      n_classes: int = 10, batch_size: int = 10_000, seed: int = 0) -> torch.Tensor:
    """PREDICT of Cohen et al. 2019: the top class of ``n`` noisy draws, or -1 (abstain) when a
    two-sided binomial test of the top two counts is not significant at level ``alpha``."""
    _check(model, x, sigma, n)
    g = torch.Generator().manual_seed(seed)
    with eval_mode(model):
        c = _counts(model, x, sigma, n, n_classes, batch_size, g)
    top2 = torch.topk(c, 2, dim=1)
    na, nb = top2.values[:, 0].numpy(), top2.values[:, 1].numpy()
    # two-sided binomial test of na successes in na + nb trials with p = 1/2
    p = np.minimum(1.0, 2 * binom.cdf(nb, na + nb, 0.5))
    return torch.where(torch.from_numpy(p <= alpha), top2.indices[:, 0], torch.full_like(top2.indices[:, 0], -1))


def noisy_objective(sigma: float):
    """Training objective with Gaussian data augmentation ``x + N(0, sigma^2)`` (Cohen et al.
    2019, §"training"), for :func:`robustkit.train.fit`: returns ``(loss, logits)``."""
    def objective(model, x, y):
        logits = model(x + sigma * torch.randn_like(x))
        return torch.nn.functional.cross_entropy(logits, y), logits
    return objective


def train_noisy_convnet(images, labels, *, sigma: float, epochs: int, lr: float = 1e-3,
                        batch_size: int = 128, seed: int = 0, key_extra: dict | None = None):
    """``MnistConvNet`` trained with Gaussian noise augmentation (the base classifier of
    RandSmooth), through the checkpoint cache (:func:`robustkit.train.cached_fit`).
    Returns ``(model, history, from_cache)``. Chapter 8."""
    from ..data import make_loader
    from ..models import MnistConvNet
    from ..runtime import seed_everything
    from ..train import cached_fit, fit

    def build():
        seed_everything(seed)
        return MnistConvNet()

    def train_fn(model):
        loader = make_loader(images, labels, batch_size=batch_size, seed=seed)
        return fit(model, loader, epochs=epochs, lr=lr, loss_fn=noisy_objective(sigma), progress=False)

    key = {"what": "randsmooth-base", "sigma": float(sigma), "epochs": int(epochs), "lr": float(lr),
           "n": int(images.shape[0]), "seed": int(seed), "batch_size": int(batch_size)}
    key.update(key_extra or {})
    return cached_fit(build, train_fn, key=key)
