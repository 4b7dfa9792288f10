"""Mean-field Gaussian (Bayes-by-Backprop) layers and their closed-form KL to the prior.

Seed 003 §2.2 (Adv-BNN): each weight has its own Gaussian posterior
``q(w_i) = N(mu_i, exp(s_i)^2)`` (eq. 2.14), sampled by the reparameterization
``w = mu + exp(s) * eps, eps ~ N(0, I)`` in every forward pass (Bayes by Backprop,
Blundell et al. 2015), with an isotropic Gaussian prior ``N(0, s0^2 I)``. The KL term of
the ELBO is computed exactly by eq. (2.15),

    KL(N(mu, sigma^2) || N(0, s0^2)) = log(s0 / sigma) + (sigma^2 + mu^2) / (2 s0^2) - 1/2,

summed over every weight of every Bayesian layer (:func:`kl_divergence`) and scaled by
``alpha / N_train`` in the loss (eq. 2.22, :func:`elbo_objective`).

The layers are :class:`robustkit.modes.StochasticModule` s: they sample weights iff
``self.stochastic`` (default ``True``), whatever ``self.training`` says, so an attack
running the model in ``eval()`` still faces the random model; with ``stochastic=False``
they use the posterior means.

Used by: chapter 10 (SVI baseline of the uncertainty benchmark) and the Adv-BNN chapter.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..modes import StochasticModule

__all__ = ["BayesLinear", "BayesConv2d", "gaussian_kl_to_prior", "kl_divergence",
           "bayesian_layers", "elbo_objective"]


def _check_positive(value, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or value <= 0:
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")
    return float(value)


def gaussian_kl_to_prior(mu: torch.Tensor, log_sigma: torch.Tensor, prior_sigma: float) -> torch.Tensor:
    """Sum over entries of KL(N(mu, exp(log_sigma)^2) || N(0, prior_sigma^2)), seed 003 eq. (2.15).

    ``log(s0 / sigma) + (sigma^2 + mu^2) / (2 s0^2) - 1/2`` per weight, summed; a scalar
    tensor differentiable in ``mu`` and ``log_sigma``. Used by :func:`kl_divergence`.
    """
    prior_sigma = _check_positive(prior_sigma, "prior_sigma")
    if mu.shape != log_sigma.shape:
        raise ValueError(f"mu and log_sigma differ in shape: {tuple(mu.shape)} vs {tuple(log_sigma.shape)}")
    var_ratio = torch.exp(2 * log_sigma) / prior_sigma ** 2
    return (math.log(prior_sigma) - log_sigma + 0.5 * (var_ratio + mu.pow(2) / prior_sigma ** 2)
            - 0.5).sum()


class _BayesMixin(StochasticModule):
    """Shared parameters ``weight_mu``, ``weight_log_sigma`` (and bias) and sampling."""

    def _init_bayes(self, weight_shape, bias: bool, prior_sigma: float, init_log_sigma: float,
                    fan_in: int) -> None:
        self.prior_sigma = _check_positive(prior_sigma, "prior_sigma")
        if not isinstance(init_log_sigma, (int, float)) or not math.isfinite(init_log_sigma):
            raise ValueError(f"init_log_sigma must be a finite number, got {init_log_sigma!r}")
        self.init_log_sigma = float(init_log_sigma)
        self.weight_mu = nn.Parameter(torch.empty(weight_shape))
        self.weight_log_sigma = nn.Parameter(torch.empty(weight_shape))
        if bias:
            self.bias_mu = nn.Parameter(torch.empty(weight_shape[0]))
            self.bias_log_sigma = nn.Parameter(torch.empty(weight_shape[0]))
        else:
            self.register_parameter("bias_mu", None)
            self.register_parameter("bias_log_sigma", None)
        self._fan_in = fan_in
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Means as PyTorch's default (Kaiming-uniform) init; log-std ``init_log_sigma``."""
        nn.init.kaiming_uniform_(self.weight_mu, a=math.sqrt(5))
        nn.init.constant_(self.weight_log_sigma, self.init_log_sigma)
        if self.bias_mu is not None:
            bound = 1 / math.sqrt(self._fan_in) if self._fan_in > 0 else 0
            nn.init.uniform_(self.bias_mu, -bound, bound)
            nn.init.constant_(self.bias_log_sigma, self.init_log_sigma)

    def sample_weights(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``w = mu + exp(s) * eps`` (eq. 2.20 reparameterization) if stochastic, else ``mu``."""
        if not self.stochastic:
            return self.weight_mu, self.bias_mu
        w = self.weight_mu + self.weight_log_sigma.exp() * torch.randn_like(self.weight_mu)
        b = None
        if self.bias_mu is not None:
            b = self.bias_mu + self.bias_log_sigma.exp() * torch.randn_like(self.bias_mu)
        return w, b

    def kl(self) -> torch.Tensor:
        """Closed-form KL of this layer's posterior to the prior N(0, prior_sigma^2 I), eq. (2.15)."""
        total = gaussian_kl_to_prior(self.weight_mu, self.weight_log_sigma, self.prior_sigma)
        if self.bias_mu is not None:
            total = total + gaussian_kl_to_prior(self.bias_mu, self.bias_log_sigma, self.prior_sigma)
        return total


class BayesLinear(_BayesMixin):
    """Linear layer with mean-field Gaussian weights (seed 003 §2.2, eq. 2.14).

    ``BayesLinear(in_features, out_features, bias=True, prior_sigma=0.1,
    init_log_sigma=-5.0)``; a fresh weight sample per forward pass when
    ``self.stochastic`` (default), the posterior mean otherwise.
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, *,
                 prior_sigma: float = 0.1, init_log_sigma: float = -5.0,
                 stochastic: bool = True) -> None:
        super().__init__(stochastic=stochastic)
        if int(in_features) < 1 or int(out_features) < 1:
            raise ValueError("in_features and out_features must be positive")
        self.in_features, self.out_features = int(in_features), int(out_features)
        self._init_bayes((self.out_features, self.in_features), bias, prior_sigma,
                         init_log_sigma, self.in_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w, b = self.sample_weights()
        return F.linear(x, w, b)

    def extra_repr(self) -> str:
        return (f"{self.in_features}, {self.out_features}, bias={self.bias_mu is not None}, "
                f"prior_sigma={self.prior_sigma}, stochastic={self.stochastic}")


class BayesConv2d(_BayesMixin):
    """2-D convolution with mean-field Gaussian kernels (seed 003 §2.2, eq. 2.14).

    Same arguments as ``nn.Conv2d`` (``stride``, ``padding``, ``dilation``, ``groups``)
    plus ``prior_sigma``, ``init_log_sigma`` and ``stochastic``.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0,
                 dilation=1, groups: int = 1, bias: bool = True, *, prior_sigma: float = 0.1,
                 init_log_sigma: float = -5.0, stochastic: bool = True) -> None:
        super().__init__(stochastic=stochastic)
        k = nn.modules.utils._pair(kernel_size)
        if int(in_channels) < 1 or int(out_channels) < 1 or min(k) < 1:
            raise ValueError("channels and kernel_size must be positive")
        if in_channels % groups or out_channels % groups:
            raise ValueError("in_channels and out_channels must be divisible by groups")
        self.in_channels, self.out_channels, self.kernel_size = int(in_channels), int(out_channels), k
        self.stride, self.padding, self.dilation, self.groups = stride, padding, dilation, groups
        self._init_bayes((self.out_channels, self.in_channels // groups, *k), bias, prior_sigma,
                         init_log_sigma, (self.in_channels // groups) * k[0] * k[1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w, b = self.sample_weights()
        return F.conv2d(x, w, b, self.stride, self.padding, self.dilation, self.groups)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, padding={self.padding}, prior_sigma={self.prior_sigma}, "
                f"stochastic={self.stochastic}")


def bayesian_layers(model: nn.Module) -> list[nn.Module]:
    """The Bayesian layers (:class:`BayesLinear`, :class:`BayesConv2d`) of ``model``."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    return [m for m in model.modules() if isinstance(m, _BayesMixin)]


def kl_divergence(model: nn.Module) -> torch.Tensor:
    """KL(q || p) of all Bayesian weights of ``model``, summed over every layer (eq. 2.15).

    This is ``g(mu, s)`` of seed 003 eq. (2.21), the ``kl_divergence(w)`` of Algorithm 3;
    the loss uses ``alpha / N_train * kl_divergence(model)`` (eq. 2.22). Raises
    ``ValueError`` if the model has no Bayesian layer (a silent 0 would hide a bug).
    """
    layers = bayesian_layers(model)
    if not layers:
        raise ValueError(f"{type(model).__name__} has no Bayesian layer (BayesLinear / BayesConv2d)")
    return torch.stack([layer.kl() for layer in layers]).sum()


def elbo_objective(n_train: int, alpha: float = 1.0):
    """Training objective of SVI / Bayes by Backprop, seed 003 eq. (2.22) with clean inputs.

    Returns ``loss_fn(model, x, y) -> (loss, logits)`` for :func:`robustkit.train.fit` with
    ``loss = CE(model(x), y) + alpha / n_train * kl_divergence(model)`` (one weight sample
    per forward pass; stochastic layers are switched on for the step).
    """
    if isinstance(n_train, bool) or not isinstance(n_train, int) or n_train < 1:
        raise ValueError(f"n_train must be a positive integer, got {n_train!r}")
    alpha = _check_positive(alpha, "alpha")

    def loss_fn(model: nn.Module, x: torch.Tensor, y: torch.Tensor):
        logits = model(x)
        return F.cross_entropy(logits, y) + alpha / n_train * kl_divergence(model), logits

    return loss_fn
