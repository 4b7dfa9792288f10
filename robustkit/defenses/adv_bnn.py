"""Adv-BNN: adversarially trained Bayesian neural networks (seed 003 §2.2, Liu et al. 2019).

A Bayesian network keeps a mean-field Gaussian posterior ``q_{mu,s}(w) = prod_i
N(mu_i, exp(s_i)^2)`` (eq. 2.14) over its weights, with an isotropic prior
``N(0, s0^2 I)``; the layers and the closed-form KL (eq. 2.15, summed over every layer)
live in :mod:`robustkit.defenses.bayesian`. Adv-BNN maximizes the ELBO on *adversarial*
points (eq. 2.17-2.19); divided by the number of training points ``N`` and with a factor
``alpha`` on the KL (eq. 2.22) the per-batch loss is

    L(mu, s) = CE(f(x_adv; w), y) + alpha / N * KL(q_{mu,s} || p),  w = mu + exp(s) * eps,

minimized by Bayes by Backprop (eq. 2.20: the reparameterization makes the Monte Carlo
gradient unbiased), with ``x_adv`` found by PGD against the random network at every step
(Algorithm 3). Predictions average the softmax over ``m`` weight samples (eq. 2.27).

- :func:`to_bayesian` / :func:`bayesian_network`: replace every ``nn.Conv2d`` /
  ``nn.Linear`` by its variational version (the seed: "we only need to replace
  Conv/BatchNorm/Linear layers by their variational version");
- :func:`elbo_loss`: eq. (2.22) for given logits; :func:`bnn_objective` (clean data, a
  plain BNN) and :func:`adv_bnn_objective` (Algorithm 3) for :func:`robustkit.train.fit`;
- :func:`bayes_predict`: eq. (2.27);
- :func:`transfer_affinity`: the transfer-attack affinity ``rho_{A->B}`` of eq. (2.26).

Used by: chapter 6, *Randomized defenses*.
"""
from __future__ import annotations

import copy
import math
from typing import Optional, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from ._checks import check_batch, check_model, check_norm, check_number
from .bayesian import BayesConv2d, BayesLinear, bayesian_layers, kl_divergence
from .rse import ensemble_proba, small_convnet

__all__ = ["to_bayesian", "bayesian_network", "elbo_loss", "bnn_objective", "adv_bnn_objective",
           "AdvBNNObjective", "bayes_predict", "transfer_affinity", "posterior_std_summary"]


def to_bayesian(model: nn.Module, *, prior_sigma: float = 0.1, init_log_sigma: float = -4.0,
                copy_means: bool = False, inplace: bool = False) -> nn.Module:
    """Replace every ``nn.Conv2d`` and ``nn.Linear`` of ``model`` by a Bayesian layer.

    ``BayesConv2d`` / ``BayesLinear`` (:mod:`robustkit.defenses.bayesian`) with the same
    shapes, prior ``N(0, prior_sigma^2)`` and initial posterior std
    ``exp(init_log_sigma)``; with ``copy_means`` the posterior means start at the
    deterministic weights (a pretrained network made Bayesian), otherwise they are freshly
    initialized. Other layers (normalization, activations) are kept. ``model`` is copied
    unless ``inplace``. Raises ``ValueError`` if there is nothing to replace. Chapter 6.
    """
    check_model(model)
    prior_sigma = check_number(prior_sigma, "prior_sigma", low=0.0, strict=True)
    if isinstance(init_log_sigma, bool) or not isinstance(init_log_sigma, (int, float)) \
            or not math.isfinite(init_log_sigma):
        raise ValueError(f"init_log_sigma must be a finite number, got {init_log_sigma!r}")
    net = model if inplace else copy.deepcopy(model)
    targets = [(name, m) for name, m in net.named_modules()
               if type(m) in (nn.Conv2d, nn.Linear)]
    if not targets:
        raise ValueError(f"{type(model).__name__} has no nn.Conv2d / nn.Linear layer to make Bayesian")
    kw = dict(prior_sigma=prior_sigma, init_log_sigma=init_log_sigma)
    for name, m in targets:
        if isinstance(m, nn.Conv2d):
            if m.padding_mode != "zeros" or isinstance(m.padding, str):
                raise ValueError(f"layer {name!r}: only numeric zero padding is supported")
            new = BayesConv2d(m.in_channels, m.out_channels, m.kernel_size, stride=m.stride,
                              padding=m.padding, dilation=m.dilation, groups=m.groups,
                              bias=m.bias is not None, **kw)
        else:
            new = BayesLinear(m.in_features, m.out_features, bias=m.bias is not None, **kw)
        new.to(device=m.weight.device, dtype=m.weight.dtype)
        if copy_means:
            with torch.no_grad():
                new.weight_mu.copy_(m.weight)
                if m.bias is not None:
                    new.bias_mu.copy_(m.bias)
        parent_name, _, child = name.rpartition(".")
        parent = net.get_submodule(parent_name) if parent_name else net
        setattr(parent, child, new)
    return net


def bayesian_network(base: nn.Module | None = None, *, prior_sigma: float = 0.1,
                     init_log_sigma: float = -4.0, **convnet_kwargs) -> nn.Module:
    """A Bayesian version of ``base`` (default :func:`robustkit.defenses.rse.small_convnet`).

    The architecture of the RSE and baseline networks of chapter 6 with every weight
    replaced by a Gaussian posterior (eq. 2.14). Chapter 6.
    """
    if base is None:
        base = small_convnet(**convnet_kwargs)
    elif convnet_kwargs:
        raise ValueError("convnet_kwargs are only used when base is None")
    return to_bayesian(base, prior_sigma=prior_sigma, init_log_sigma=init_log_sigma, inplace=True)


def _check_n_train(n_train) -> int:
    if isinstance(n_train, bool) or not isinstance(n_train, int) or n_train < 1:
        raise ValueError(f"n_train must be a positive integer (training set size), got {n_train!r}")
    return n_train


def elbo_loss(model: nn.Module, logits: torch.Tensor, y: torch.Tensor, *, n_train: int,
              alpha: float = 1.0) -> torch.Tensor:
    """Negative ELBO per training point, eq. (2.22): ``CE(logits, y) + alpha / N * KL(q || p)``.

    ``KL`` is the closed form (eq. 2.15) summed over every Bayesian layer of ``model``
    (:func:`robustkit.defenses.bayesian.kl_divergence`); ``0 < alpha <= 1`` weakens the
    prior for small data sets or large models. Chapter 6.
    """
    n_train = _check_n_train(n_train)
    alpha = check_number(alpha, "alpha", low=0.0, strict=True, high=1.0)
    return F.cross_entropy(logits, y) + alpha / n_train * kl_divergence(model)


def bnn_objective(n_train: int, alpha: float = 1.0):
    """Bayes by Backprop on clean data (the "BNN" baseline): ``loss_fn(model, x, y) -> (loss, logits)``.

    One weight sample per forward pass (``w = mu + exp(s) * eps``, eq. 2.20), loss
    :func:`elbo_loss`. Chapter 6.
    """
    n_train = _check_n_train(n_train)
    alpha = check_number(alpha, "alpha", low=0.0, strict=True, high=1.0)

    def loss_fn(model: nn.Module, x: torch.Tensor, y: torch.Tensor):
        logits = model(x)
        return elbo_loss(model, logits, y, n_train=n_train, alpha=alpha), logits

    return loss_fn


class AdvBNNObjective:
    """Algorithm 3 of seed 003: PGD adversaries, a fresh weight sample, CE + ``alpha/N`` KL.

    ``loss_fn(model, x, y) -> (loss, logits)``: (1) ``x_adv`` = PGD in the ``norm`` ball of
    radius ``eps`` against the *random* network (weights resampled at every forward pass,
    as in the seed; ``eot_samples > 1`` averages gradients over draws), generated by
    :func:`robustkit.defenses.adversarial_training.pgd_training_objective`'s attack (eval
    mode, modes and gradients restored); (2) one forward pass on ``x_adv`` with a new
    weight sample; (3) ``loss = CE + alpha / n_train * KL`` (eq. 2.22). The returned logits
    are those of ``x_adv``. Chapter 6.
    """

    def __init__(self, eps: float, n_train: int, *, alpha: float = 1.0, steps: int = 7,
                 step_size: Optional[float] = None, norm: str = "linf", eot_samples: int = 1) -> None:
        self.eps = check_number(eps, "eps", low=0.0)
        self.n_train = _check_n_train(n_train)
        self.alpha = check_number(alpha, "alpha", low=0.0, strict=True, high=1.0)
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise ValueError(f"steps must be a positive integer, got {steps!r}")
        if isinstance(eot_samples, bool) or not isinstance(eot_samples, int) or eot_samples < 1:
            raise ValueError(f"eot_samples must be a positive integer, got {eot_samples!r}")
        self.steps, self.norm, self.eot_samples = steps, check_norm(norm), eot_samples
        self.step_size = None if step_size is None else check_number(step_size, "step_size",
                                                                     low=0.0, strict=True)

    def __repr__(self) -> str:
        return (f"AdvBNNObjective(eps={self.eps:g}, norm={self.norm}, steps={self.steps}, "
                f"alpha={self.alpha:g}, n_train={self.n_train}, eot_samples={self.eot_samples})")

    def perturb(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The adversarial batch of step 1 (detached)."""
        check_model(model)
        check_batch(x, y)
        if self.eps == 0.0:
            return x.detach()
        from ..attacks.pgd import PGD
        attack = PGD(model, self.eps, norm=self.norm, steps=self.steps, alpha=self.step_size,
                     random_start=True, eot_samples=self.eot_samples)
        return attack(x, y).detach()

    def __call__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor):
        if not bayesian_layers(model):
            raise ValueError("Adv-BNN needs a Bayesian network (see to_bayesian / bayesian_network)")
        x_adv = self.perturb(model, x, y)
        logits = model(x_adv)
        return elbo_loss(model, logits, y, n_train=self.n_train, alpha=self.alpha), logits


def adv_bnn_objective(eps: float, n_train: int, *, alpha: float = 1.0, steps: int = 7,
                      step_size: Optional[float] = None, norm: str = "linf",
                      eot_samples: int = 1) -> AdvBNNObjective:
    """The Adv-BNN training objective (Algorithm 3, eq. 2.22); see :class:`AdvBNNObjective`."""
    return AdvBNNObjective(eps, n_train, alpha=alpha, steps=steps, step_size=step_size,
                           norm=norm, eot_samples=eot_samples)


def bayes_predict(model: nn.Module, x: torch.Tensor, m: int = 10) -> torch.Tensor:
    """Posterior predictive of eq. (2.27): ``(1/m) sum_k softmax(f(x; w_k))``, ``w_k ~ q``.

    Returns probabilities ``(N, classes)`` (argmax is the Adv-BNN prediction); one weight
    sample per forward pass, so the ``m`` passes are looped
    (:func:`robustkit.defenses.rse.ensemble_proba`). Chapter 6.
    """
    return ensemble_proba(model, x, m, vectorize=False)


def transfer_affinity(clean_accuracy: Sequence[float] | torch.Tensor,
                      transfer_accuracy) -> torch.Tensor:
    """Affinity matrix of transfer attacks, seed 003 eq. (2.26).

    ``rho[A, B] = (Acc[B] - Acc[B|A]) / (Acc[B] - Acc[B|B])`` where ``clean_accuracy[B] =
    Acc[B]`` and ``transfer_accuracy[A, B] = Acc[B|A]`` is the accuracy of model ``B`` on
    the adversarial examples crafted on model ``A`` (the diagonal: white-box). ``rho`` is
    1 on the diagonal, ~1 when A's adversaries fool B as well as B's own, ~0 when they do
    not transfer; it is not symmetric. ``nan`` where the white-box attack does not lower
    B's accuracy (zero denominator). Chapter 6.
    """
    clean = torch.as_tensor(clean_accuracy, dtype=torch.float64)
    cross = torch.as_tensor(transfer_accuracy, dtype=torch.float64)
    if clean.ndim != 1 or cross.shape != (clean.numel(), clean.numel()):
        raise ValueError(f"clean_accuracy must be (k,) and transfer_accuracy (k, k), got "
                         f"{tuple(clean.shape)} and {tuple(cross.shape)}")
    if not (torch.isfinite(clean).all() and torch.isfinite(cross).all()):
        raise ValueError("accuracies must be finite")
    if (clean < 0).any() or (clean > 1).any() or (cross < 0).any() or (cross > 1).any():
        raise ValueError("accuracies must be fractions in [0, 1]")
    denom = clean - cross.diagonal()                      # Acc[B] - Acc[B|B], per column B
    num = clean[None, :] - cross                          # Acc[B] - Acc[B|A]
    rho = num / denom[None, :]
    return torch.where(denom[None, :] > 0, rho, torch.full_like(rho, float("nan")))


@torch.no_grad()
def posterior_std_summary(model: nn.Module) -> dict:
    """Mean posterior std ``exp(s)`` and mean ``|mu|`` of each Bayesian layer (for plots)."""
    layers = bayesian_layers(model)
    if not layers:
        raise ValueError(f"{type(model).__name__} has no Bayesian layer")
    out = {}
    for i, layer in enumerate(layers):
        out[f"{i}:{type(layer).__name__}"] = {
            "sigma": float(layer.weight_log_sigma.exp().mean()),
            "abs_mu": float(layer.weight_mu.abs().mean()),
            "snr": float((layer.weight_mu.abs() / layer.weight_log_sigma.exp()).mean()),
        }
    return out
