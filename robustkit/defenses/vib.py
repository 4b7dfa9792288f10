"""Deep variational information bottleneck (VIB) classifier (seed 002; Alemi et al. 2017).

The information bottleneck asks for a representation :math:`Z` of the input that is
maximally informative about the label and minimally about the input,
:math:`\\max I(Z;Y) - \\beta I(Z;X)`. With a stochastic encoder
:math:`p(z|x)=\\mathcal N(z\\,|\\,f^\\mu_e(x), \\operatorname{diag} f^\\sigma_e(x)^2)`, a variational
decoder :math:`q(y|z)` and a variational marginal :math:`r(z)=\\mathcal N(0, I)`, seed 002
derives the upper bound on :math:`-[I(Z;Y)-\\beta I(Z;X)]` (eq. (17))

.. math::
    J_{IB} = \\frac1N\\sum_{n=1}^N \\mathbb E_{\\epsilon\\sim\\mathcal N(0,I)}
    \\big[-\\log q(y_n\\,|\\,f(x_n,\\epsilon))\\big] + \\beta\\,
    \\mathrm{KL}\\big[p(Z|x_n)\\,\\|\\,r(Z)\\big],

estimated with one reparameterized sample :math:`z = f^\\mu_e(x) + f^\\sigma_e(x)\\odot\\epsilon`
(Kingma & Welling 2014). The MNIST model of seed 002: encoder MLP 784-1024-1024-2K
(ReLU), the last layer giving K means and K standard deviations (softplus), decoder a
logistic regression :math:`q(y|z)=\\mathrm{softmax}(Wz+b)`, K = 256 or K = 2; evaluated
with one posterior sample ("1 shot eval") or by averaging the softmax over 12 samples
("avg eval").

- :class:`VIBClassifier`: the model; a :class:`robustkit.modes.StochasticModule` whose
  ``forward`` returns the logarithm of the Monte-Carlo averaged softmax (so argmax,
  softmax and cross-entropy of the output are those of the averaged prediction, which
  is how the model is deployed and must be attacked); with ``stochastic = False`` it
  uses the mean embedding :math:`z=\\mu(x)`;
- :func:`vib_objective`: the training objective for :func:`robustkit.train.fit`
  (reuses :func:`robustkit.infotheory.vib_loss`).

Used by: chapter 3, *Adversarial training and robust objectives* (VIB section).
"""
from __future__ import annotations

import math
from typing import Optional, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..infotheory import vib_loss
from ..models import MNIST_MEAN, MNIST_STD, Normalize
from ..modes import StochasticModule
from ._checks import check_batch, check_number

__all__ = ["VIBClassifier", "vib_objective", "confidence_ellipse_radius"]


def _check_count(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


class VIBClassifier(StochasticModule):
    """Stochastic-encoder classifier of seed 002 (Alemi et al. 2017, §4.1).

    ``Normalize -> flatten -> [Linear -> ReLU] x len(hidden) -> Linear(2K)``: the first K
    outputs are the means :math:`\\mu`, the last K give the standard deviations
    :math:`\\sigma = \\mathrm{softplus}(h - \\text{std\\_offset}) + \\text{min\\_std}`;
    decoder ``Linear(K, num_classes)`` (logistic regression). ``std_offset = 5`` (as in
    the authors' demo code) starts training with small noise; ``min_std`` keeps
    :math:`\\log\\sigma` finite.

    Modes: draws noise iff ``self.stochastic`` (default True), whatever ``self.training``
    says. ``mc_samples`` (default 12, seed 002's "avg eval") is the number of draws
    averaged by ``forward``; ``mc_samples = 1`` is the "1 shot eval".

    Args:
        K: bottleneck size (256 or 2 in seed 002).
        in_shape: ``(C, H, W)`` of an input image.
        hidden: encoder widths (seed 002: 1024, 1024).
        num_classes: number of classes.

    Chapter 3.
    """

    def __init__(self, K: int = 256, *, in_shape: Sequence[int] = (1, 28, 28),
                 hidden: Sequence[int] = (1024, 1024), num_classes: int = 10,
                 mc_samples: int = 12, std_offset: float = 5.0, min_std: float = 1e-6,
                 mean: float | Sequence[float] = MNIST_MEAN,
                 std: float | Sequence[float] = MNIST_STD, stochastic: bool = True) -> None:
        super().__init__(stochastic=stochastic)
        self.K = _check_count(K, "K")
        self.in_shape = tuple(int(s) for s in in_shape)
        if len(self.in_shape) != 3 or min(self.in_shape) < 1:
            raise ValueError(f"in_shape must be (C, H, W) with positive sizes, got {in_shape}")
        hidden = tuple(_check_count(int(h), "hidden width") for h in hidden)
        self.num_classes = _check_count(num_classes, "num_classes")
        if self.num_classes < 2:
            raise ValueError("num_classes must be >= 2")
        self.mc_samples = _check_count(mc_samples, "mc_samples")
        self.std_offset = check_number(std_offset, "std_offset", low=-math.inf)
        self.min_std = check_number(min_std, "min_std", low=0.0)
        self.normalize = Normalize(mean, std)
        layers: list[nn.Module] = []
        width = math.prod(self.in_shape)
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU()]
            width = h
        layers.append(nn.Linear(width, 2 * self.K))
        self.encoder = nn.Sequential(*layers)
        self.decoder = nn.Linear(self.K, self.num_classes)

    def extra_repr(self) -> str:
        return (f"K={self.K}, mc_samples={self.mc_samples}, std_offset={self.std_offset}, "
                f"stochastic={self.stochastic}")

    def _check_input(self, x) -> None:
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"VIBClassifier expects a torch.Tensor, got {type(x).__name__}")
        if x.ndim != 4 or tuple(x.shape[1:]) != self.in_shape:
            raise ValueError(f"VIBClassifier expects images of shape (N, {', '.join(map(str, self.in_shape))}), "
                             f"got {tuple(x.shape)}")

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Parameters ``(mu, sigma)`` of :math:`p(z|x)`, each ``(N, K)``."""
        self._check_input(x)
        h = self.encoder(self.normalize(x).flatten(1))
        mu, raw = h[:, :self.K], h[:, self.K:]
        return mu, F.softplus(raw - self.std_offset) + self.min_std

    @staticmethod
    def sample(mu: torch.Tensor, sigma: torch.Tensor, n_samples: int = 1, *,
               generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """Reparameterized draws :math:`z = \\mu + \\sigma\\odot\\epsilon`, shape ``(S, N, K)``.

        Differentiable in ``mu`` and ``sigma`` (Kingma & Welling 2014); ``generator``
        makes the draws reproducible.
        """
        n_samples = _check_count(n_samples, "n_samples")
        if mu.shape != sigma.shape:
            raise ValueError(f"mu and sigma must have the same shape, got {tuple(mu.shape)} "
                             f"and {tuple(sigma.shape)}")
        eps = torch.randn((n_samples, *mu.shape), generator=generator,
                          dtype=mu.dtype, device=mu.device if generator is None else "cpu")
        return mu + sigma * eps.to(mu.device)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Logits of the logistic-regression decoder :math:`q(y|z)`, shape ``z.shape[:-1] + (classes,)``."""
        return self.decoder(z)

    def predict_proba(self, x: torch.Tensor, n_samples: Optional[int] = None, *,
                      generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """Monte-Carlo predictive :math:`\\frac1S\\sum_s q(y|z_s)`, :math:`z_s\\sim p(z|x)` (seed 002).

        ``n_samples`` defaults to ``mc_samples``; averages *probabilities* (not logits).
        With ``stochastic = False``: :math:`q(y|\\mu(x))`. Shape ``(N, classes)``.
        """
        mu, sigma = self.encode(x)
        if not self.stochastic:
            return F.softmax(self.decode(mu), dim=-1)
        s = self.mc_samples if n_samples is None else _check_count(n_samples, "n_samples")
        z = self.sample(mu, sigma, s, generator=generator)
        return F.softmax(self.decode(z), dim=-1).mean(0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Log of the averaged softmax over ``mc_samples`` draws (a valid logit vector)."""
        mu, sigma = self.encode(x)
        if not self.stochastic:
            return self.decode(mu)
        z = self.sample(mu, sigma, self.mc_samples)
        logp = F.log_softmax(self.decode(z), dim=-1)
        return torch.logsumexp(logp, 0) - math.log(self.mc_samples)


def vib_objective(beta: float, *, n_samples: int = 1):
    """VIB training objective (seed 002 eq. (17)) for :func:`robustkit.train.fit`.

    ``loss_fn(model, x, y) -> (loss, logits)`` for a :class:`VIBClassifier`:
    :math:`\\frac1N\\sum_n\\big[\\frac1S\\sum_s -\\log q(y_n|z_{n,s}) + \\beta\\,\\mathrm{KL}(
    \\mathcal N(\\mu_n,\\sigma_n^2)\\|\\mathcal N(0,I))\\big]` with ``S = n_samples``
    reparameterized draws (1 in the seed), the KL in closed form
    (:func:`robustkit.infotheory.vib_loss`). Draws are taken whatever
    ``model.stochastic`` says: the bound is defined by the stochastic encoder. The
    returned logits are those of the first draw. ``beta = 0`` is a stochastic
    encoder without compression. Chapter 3.
    """
    beta = check_number(beta, "beta", low=0.0)
    n_samples = _check_count(n_samples, "n_samples")

    def objective(model, x, y):
        if not isinstance(model, VIBClassifier):
            raise TypeError(f"vib_objective needs a VIBClassifier, got {type(model).__name__}")
        check_batch(x, y)
        mu, sigma = model.encode(x)
        z = model.sample(mu, sigma, n_samples)
        logits = model.decode(z)
        S, N = z.shape[:2]
        loss = vib_loss(logits.reshape(S * N, -1), y.repeat(S), mu.repeat(S, 1),
                        std=sigma.repeat(S, 1), beta=beta)
        return loss, logits[0]

    objective.beta, objective.n_samples = beta, n_samples
    objective.__name__ = f"vib_objective(beta={beta:g})"
    return objective


def confidence_ellipse_radius(level: float = 0.95, dim: int = 2) -> float:
    """Mahalanobis radius of the ``level`` confidence region of a ``dim``-D Gaussian.

    :math:`r = \\sqrt{\\chi^2_{d}(\\text{level})}`; in 2-D, :math:`\\chi^2_2` has the closed
    form :math:`-2\\log(1-\\text{level})` (5.991 at 95 %). The ellipse of
    :math:`\\mathcal N(\\mu, \\operatorname{diag}\\sigma^2)` has semi-axes :math:`r\\sigma_k`
    (seed 002, Figure 2). Chapter 3.
    """
    level = check_number(level, "level", low=0.0, strict=True, high=1.0)
    if level >= 1.0:
        raise ValueError("level must be < 1")
    dim = _check_count(dim, "dim")
    if dim == 2:
        return math.sqrt(-2.0 * math.log1p(-level))
    from scipy.stats import chi2
    return math.sqrt(float(chi2.ppf(level, dim)))
