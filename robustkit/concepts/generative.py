r"""Latent-variable classifiers, discriminative (DFZ) and generative (GFZ) (seed 004 §II).

Seed 004 {cite}`akhannouss2021generative`, following Li, Bradshaw and Sharma (2019):

- DFZ: :math:`p(x,y,z) = p(z)\,p(x\mid z)\,p(y\mid x,z)`;
- GFZ: :math:`p(x,y,z) = p(z)\,p(y\mid z)\,p(x\mid y,z)`;

both with :math:`p(z)=\mathcal N(0,I)`, a Bernoulli decoder for the pixels and an
amortized Gaussian posterior :math:`q(z\mid x,y)`, trained by maximizing the variational
lower bound :math:`\mathcal L(x,y)=\mathbb E_q[\log p(x,y,z)-\log q(z\mid x,y)]`. The
classifier's logits are :math:`\log p(x, y_c)` estimated for every class ``c`` (the
softmax of which is Bayes' rule :math:`p(y\mid x)`), so attacks and the logit-based
detection of seed 004 §III.3 apply unchanged. Dense networks keep it CPU-friendly.
Chapter 5.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..modes import StochasticModule
from ._checks import check_images, check_int, check_labels

_STRUCTURES = ("DFZ", "GFZ")


def _mlp(sizes):
    layers = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        layers += [nn.Linear(a, b), nn.ReLU()]
    return nn.Sequential(*layers[:-1])


class LatentVariableClassifier(StochasticModule):
    r"""DFZ or GFZ latent-variable classifier returning logits :math:`\log p(x, y_c)` (seed 004 §II.2).

    ``forward(x)`` evaluates, for every class, the lower bound with the analytic KL term;
    when ``self.stochastic`` is False (default) the reconstruction term is taken at the
    posterior mean (deterministic), otherwise ``n_samples`` reparameterized draws give the
    importance-weighted estimate :math:`\log\frac1K\sum_k p(x,y,z_k)/q(z_k\mid x,y)`.
    Training: :meth:`loss` (negative ELBO of the true label, averaged). Chapter 5.
    """

    def __init__(self, structure: str = "GFZ", num_classes: int = 10, image_shape=(1, 28, 28),
                 latent_dim: int = 32, hidden: int = 256, n_samples: int = 10) -> None:
        super().__init__(stochastic=False)
        if structure not in _STRUCTURES:
            raise ValueError(f"structure must be one of {_STRUCTURES}, got {structure!r}")
        self.structure = structure
        self.num_classes = check_int(num_classes, "num_classes", low=2)
        self.image_shape = tuple(int(s) for s in image_shape)
        self.latent_dim = check_int(latent_dim, "latent_dim")
        self.n_samples = check_int(n_samples, "n_samples")
        d, c, k, h = math.prod(self.image_shape), self.num_classes, self.latent_dim, hidden
        self.encoder = _mlp([d + c, h, h, 2 * k])                 # q(z | x, y)
        if structure == "GFZ":
            self.prior_y = _mlp([k, h, c])                         # p(y | z)
            self.decoder = _mlp([k + c, h, h, d])                  # p(x | y, z)
        else:
            self.decoder = _mlp([k, h, h, d])                      # p(x | z)
            self.classifier = _mlp([d + k, h, c])                  # p(y | x, z)

    def _check(self, x):
        x = check_images(x)
        if tuple(x.shape[1:]) != self.image_shape:
            raise ValueError(f"expected images of shape (N, {self.image_shape}), got {tuple(x.shape)}")
        return x.flatten(1)

    def posterior(self, x_flat: torch.Tensor, onehot: torch.Tensor):
        """Mean and log-variance of :math:`q(z\\mid x, y)`."""
        mu, logvar = self.encoder(torch.cat([x_flat, onehot], 1)).chunk(2, dim=1)
        return mu, logvar.clamp(-10, 10)

    def log_joint_terms(self, x_flat, onehot, z):
        r""":math:`\log p(x\mid\cdot) + \log p(y\mid\cdot)` at ``z`` (without :math:`\log p(z)`)."""
        if self.structure == "GFZ":
            x_logits = self.decoder(torch.cat([z, onehot], 1))
            y_logits = self.prior_y(z)
        else:
            x_logits = self.decoder(z)
            y_logits = self.classifier(torch.cat([x_flat, z], 1))
        log_px = -F.binary_cross_entropy_with_logits(x_logits, x_flat, reduction="none").sum(1)
        log_py = (torch.log_softmax(y_logits, 1) * onehot).sum(1)
        return log_px + log_py

    def elbo(self, x: torch.Tensor, y: torch.Tensor, *, sample: bool = True,
             generator=None) -> torch.Tensor:
        r"""Per-example lower bound :math:`\mathcal L(x,y)` with the analytic KL (seed 004 §II.2).

        ``sample=True``: one reparameterized draw; ``False``: at the posterior mean.
        """
        x_flat = self._check(x)
        y = check_labels(y, self.num_classes).to(x.device)
        onehot = F.one_hot(y, self.num_classes).to(x_flat.dtype)
        mu, logvar = self.posterior(x_flat, onehot)
        z = mu
        if sample:
            eps = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
            z = mu + (0.5 * logvar).exp() * eps
        kl = 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).sum(1)
        return self.log_joint_terms(x_flat, onehot, z) - kl

    def log_weights(self, x: torch.Tensor, y: torch.Tensor, n_samples: int, generator=None):
        r"""``(n_samples, N)`` values :math:`\log p(x,y,z_k) - \log q(z_k\mid x,y)`, :math:`z_k\sim q`."""
        x_flat = self._check(x)
        y = check_labels(y, self.num_classes).to(x.device)
        onehot = F.one_hot(y, self.num_classes).to(x_flat.dtype)
        mu, logvar = self.posterior(x_flat, onehot)
        n_samples = check_int(n_samples, "n_samples")
        eps = torch.randn((n_samples, *mu.shape), generator=generator, device=mu.device,
                          dtype=mu.dtype)
        z = (mu + (0.5 * logvar).exp() * eps).flatten(0, 1)              # (K*N, k), vectorized
        rep = lambda t: t.unsqueeze(0).expand(n_samples, *t.shape).flatten(0, 1)
        log_pz = -0.5 * (z.pow(2) + math.log(2 * math.pi)).sum(1)
        log_q = -0.5 * (eps.pow(2) + logvar + math.log(2 * math.pi)).sum(-1).flatten()
        lj = self.log_joint_terms(rep(x_flat), rep(onehot), z)
        return (lj + log_pz - log_q).view(n_samples, -1)

    def loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Negative mean ELBO per pixel-image (training objective, seed 004 §II.2)."""
        return -self.elbo(x, y).mean()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(N, classes)``: estimates of :math:`\\log p(x, y_c)` for every class."""
        n = x.shape[0]
        xs = x.repeat_interleave(self.num_classes, 0)
        ys = torch.arange(self.num_classes, device=x.device).repeat(n)
        if self.stochastic:
            lw = self.log_weights(xs, ys, self.n_samples)
            est = torch.logsumexp(lw, 0) - math.log(self.n_samples)
        else:
            est = self.elbo(xs, ys, sample=False)
        return est.view(n, self.num_classes)


def elbo_objective(model: LatentVariableClassifier, x: torch.Tensor, y: torch.Tensor):
    """Training objective for :func:`robustkit.fit`: the negative mean ELBO (seed 004 §II.2).

    Returns the loss only (no logits: computing all class logits would cost ``classes``
    more passes per batch), so ``fit`` records no training accuracy.
    """
    return model.loss(x, y)


def logit_thresholds(logits: torch.Tensor, labels: torch.Tensor, alpha: float) -> torch.Tensor:
    r"""Per-class thresholds :math:`\delta_c = \mu_c + \alpha\sigma_c` (seed 004 §III.3).

    :math:`\mu_c, \sigma_c`: mean and (unbiased) standard deviation of the predicted-class
    logit :math:`\log p(x, F(x))` over the **well-classified** samples of class ``c``.
    Classes with fewer than two such samples get ``-inf`` (never reject). Chapter 5.
    """
    if not isinstance(logits, torch.Tensor) or logits.dim() != 2:
        raise ValueError("logits must have shape (N, classes)")
    labels = check_labels(labels, logits.shape[1]).to(logits.device)
    if labels.shape[0] != logits.shape[0]:
        raise ValueError("logits and labels must have the same length")
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not math.isfinite(alpha):
        raise ValueError(f"alpha must be a finite number, got {alpha!r}")
    pred = logits.argmax(1)
    top = logits.max(1).values
    out = torch.full((logits.shape[1],), -math.inf, dtype=logits.dtype, device=logits.device)
    for c in range(logits.shape[1]):
        v = top[(labels == c) & (pred == c)]
        if v.numel() >= 2:
            out[c] = v.mean() + alpha * v.std()
    return out


def detect_adversarial(logits: torch.Tensor, thresholds: torch.Tensor) -> torch.Tensor:
    r"""Flag inputs with :math:`\log p(x, F(x)) < \delta_{F(x)}` (seed 004 §III.3); bool ``(N,)``."""
    if logits.dim() != 2 or thresholds.shape != logits.shape[1:]:
        raise ValueError("thresholds must have one entry per class of logits")
    pred = logits.argmax(1)
    return logits.max(1).values < thresholds.to(logits.device)[pred]


def relative_perturbation(x: torch.Tensor, x_adv: torch.Tensor) -> float:
    r"""Mean relative L2 perturbation :math:`\rho = \frac1n\sum_i\|\eta_i\|_2/\|x_i\|_2` (seed 004 §III)."""
    if x.shape != x_adv.shape:
        raise ValueError("x and x_adv must have the same shape")
    num = (x_adv - x).flatten(1).norm(dim=1)
    den = x.flatten(1).norm(dim=1).clamp_min(1e-12)
    return float((num / den).mean())
