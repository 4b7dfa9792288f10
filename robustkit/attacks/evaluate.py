"""Robustness evaluation: robust accuracy, accuracy-vs-eps curves, minimal perturbations,
and sanity checks for gradient masking.

The protocol (GUIDE §5 traps 5 and 8; Athalye et al. 2018, Carlini et al. 2019):

- always pass the *true* labels; a clean error counts as non-robust, so robust accuracy
  ``= P[f(x) = y and f(x_adv) = y]`` is never above clean accuracy;
- robust accuracy must fall monotonically with eps and reach ~0 at a large eps;
- a stronger attack (more steps, restarts, a margin loss, EOT) must never *help* the
  model, a single-step attack must not beat the iterative one, random noise must not
  beat the gradient attack, and zero input gradients are a red flag.

:func:`gradient_masking_report` runs these checks and returns flags; a model that raises
any of them has not been shown robust, only hard to attack with *these* gradients.

Used by: chapter 2 (the evaluation protocol on a deliberately masked model) and every
later chapter that reports robust accuracy.
"""
from __future__ import annotations

import math
from typing import Callable, Iterable, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..modes import eval_mode
from .base import Attack, check_inputs, frozen_parameters
from .fgsm import FGSM
from .minimal import minimal_perturbation
from .pgd import PGD
from .projections import check_norm, norms, random_in_ball

__all__ = ["iter_batches", "robust_accuracy", "accuracy_vs_eps", "minimal_perturbation_norms",
           "gradient_masking_report"]


def _model_device(model: nn.Module) -> torch.device:
    for t in model.parameters():
        return t.device
    return torch.device("cpu")


def iter_batches(data, batch_size: int = 256) -> Iterable[tuple[torch.Tensor, torch.Tensor]]:
    """Yield ``(x, y)`` batches from a loader of pairs or from a pair of tensors ``(x, y)``."""
    if isinstance(data, (tuple, list)) and len(data) == 2 and all(isinstance(t, torch.Tensor) for t in data):
        x, y = data
        if x.shape[0] != y.shape[0]:
            raise ValueError(f"x and y differ in length: {x.shape[0]} vs {y.shape[0]}")
        if x.shape[0] == 0:
            raise ValueError("empty dataset")
        for i in range(0, x.shape[0], batch_size):
            yield x[i:i + batch_size], y[i:i + batch_size]
        return
    if isinstance(data, torch.Tensor) or not hasattr(data, "__iter__"):
        raise TypeError("data must be a pair (x, y) of tensors or a loader yielding (x, y) batches")
    seen = False
    for batch in data:
        if isinstance(batch, dict):
            batch = (batch["images"], batch["labels"])
        if not isinstance(batch, (tuple, list)) or len(batch) < 2:
            raise ValueError("loaders must yield (images, labels) pairs")
        seen = True
        yield batch[0], batch[1]
    if not seen:
        raise ValueError("the loader yielded no batches (empty dataset?)")


@torch.no_grad()
def _predict(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    with eval_mode(model):
        return model(x).argmax(1)


def robust_accuracy(model: nn.Module, attack: Attack | None, data, *, batch_size: int = 256,
                    return_details: bool = False):
    """Fraction of samples classified correctly *both* clean and under ``attack``.

    ``data``: ``(x, y)`` tensors or a loader of batches; ``attack``: an Attack (built on
    ``model`` or on a surrogate: transfer) or ``None`` for clean accuracy. Clean errors
    count as non-robust (GUIDE §5 trap 8). Predictions are taken in eval mode; for a
    randomized model pass its deployed form (:class:`~robustkit.attacks.eot.ExpectedModel`).
    With ``return_details`` returns a dict ``{"robust_accuracy", "clean_accuracy",
    "attack_success_rate" (among clean-correct), "n", "robust" (bool per sample)}``.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    if attack is not None and not callable(attack):
        raise TypeError("attack must be a robustkit Attack (callable x, y -> x_adv) or None")
    dev = _model_device(model)
    clean, robust = [], []
    for x, y in iter_batches(data, batch_size):
        check_inputs(x, y)
        x, y = x.to(dev), y.to(dev).long()
        c = _predict(model, x) == y
        if attack is None:
            r = c
        else:
            r = c & (_predict(model, attack(x, y).to(dev)) == y)
        clean.append(c.cpu())
        robust.append(r.cpu())
    clean, robust = torch.cat(clean), torch.cat(robust)
    acc = robust.float().mean().item()
    if not return_details:
        return acc
    n_clean = int(clean.sum())
    return {"robust_accuracy": acc, "clean_accuracy": clean.float().mean().item(),
            "attack_success_rate": (1 - robust.sum().item() / n_clean) if n_clean else float("nan"),
            "n": int(clean.numel()), "robust": robust}


def accuracy_vs_eps(model: nn.Module, make_attack: Callable[[float], Attack], eps_list: Sequence[float],
                    data, *, batch_size: int = 256) -> dict:
    """Robust accuracy for each radius: ``{"eps": [...], "accuracy": [...]}``.

    ``make_attack(eps) -> Attack``; ``eps = 0`` gives the clean accuracy (no attack run).
    A correct curve starts at the clean accuracy, is non-increasing and reaches ~0 at a
    large eps (see :func:`gradient_masking_report`).
    """
    if not callable(make_attack):
        raise TypeError("make_attack must be a callable eps -> Attack")
    eps_list = [float(e) for e in eps_list]
    if not eps_list or any(not (e >= 0 and math.isfinite(e)) for e in eps_list):
        raise ValueError(f"eps_list must be a non-empty list of finite radii >= 0, got {eps_list}")
    if not isinstance(data, (tuple, list)):  # a loader: read it once, reuse for every eps
        data = _materialize(data)
    accs = [robust_accuracy(model, None if e == 0 else make_attack(e), data, batch_size=batch_size)
            for e in eps_list]
    return {"eps": eps_list, "accuracy": accs}


def _materialize(data):
    xs, ys = zip(*iter_batches(data))
    return torch.cat(xs), torch.cat(ys)


def minimal_perturbation_norms(model: nn.Module, data, attack, *, norm="l2", eps_max: float | None = None,
                               tol: float | None = None, batch_size: int = 256) -> torch.Tensor:
    """Per-sample size of the smallest adversarial perturbation found, shape ``(N,)``.

    ``attack`` is either a minimal-perturbation Attack (DeepFool, C&W: the ``norm`` of
    ``x_adv - x`` is measured where the attack succeeded) or a factory ``eps -> Attack``
    for a fixed-radius attack (bisection by
    :func:`~robustkit.attacks.minimal.minimal_perturbation` up to ``eps_max``). Clean
    errors get ``0``, failures ``inf``. Used for the distributions of minimal
    perturbations in chapter 2.
    """
    norm = check_norm(norm)
    dev = _model_device(model)
    out = []
    for x, y in iter_batches(data, batch_size):
        x, y = x.to(dev), y.to(dev).long()
        if isinstance(attack, Attack):
            check_inputs(x, y)
            adv = attack(x, y).to(dev)
            clean_ok = _predict(model, x) == y
            fooled = _predict(model, adv) != y
            d = norms(adv - x, norm)
            d = torch.where(fooled, d, torch.full_like(d, float("inf")))
            d = torch.where(clean_ok, d, torch.zeros_like(d))
        elif callable(attack):
            if eps_max is None:
                raise ValueError("eps_max is required when attack is a factory eps -> Attack")
            d = minimal_perturbation(attack, model, x, y, eps_max=eps_max, norm=norm, tol=tol)
        else:
            raise TypeError("attack must be an Attack or a factory eps -> Attack")
        out.append(d.cpu())
    return torch.cat(out)


def _zero_gradient_fraction(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    with eval_mode(model), frozen_parameters(model), torch.enable_grad():
        xa = x.detach().clone().requires_grad_(True)
        loss = F.cross_entropy(model(xa), y, reduction="sum")
        (g,) = torch.autograd.grad(loss, xa)
    return (g.flatten(1).abs().amax(1) == 0).float().mean().item()


def gradient_masking_report(model: nn.Module, data, *, norm="linf", eps_list: Sequence[float] | None = None,
                            eps_ref: float | None = None, large_eps: float | None = None, steps: int = 20,
                            restarts: int = 3, noise_draws: int = 10, tol: float = 0.02,
                            max_samples: int = 512) -> dict:
    """Sanity checks that expose gradient masking (GUIDE §5 trap 5; Athalye et al. 2018).

    Runs PGD (cross-entropy) over ``eps_list`` and, at ``eps_ref`` (default: the middle
    radius), FGSM, PGD with ``4 * steps`` steps and ``restarts`` restarts, PGD with the
    margin loss and ``noise_draws`` uniform random perturbations (worst case per
    sample); at ``large_eps`` (default: the whole box, ``1`` for Linf, ``sqrt(d)`` for
    L2, ``d`` for L1) PGD with the margin loss. Flags (``True`` = suspicious, each with
    tolerance ``tol`` in accuracy):

    - ``not_monotone``: accuracy increases somewhere along ``eps_list``;
    - ``not_zero_at_large_eps``: accuracy above ``tol`` at ``large_eps``;
    - ``single_step_beats_iterative``: FGSM accuracy below PGD's;
    - ``stronger_attack_helps_model``: more steps / restarts give a *higher* accuracy;
    - ``margin_beats_ce``: the margin loss finds many more adversarial examples;
    - ``noise_beats_gradient``: random noise beats the gradient attack;
    - ``zero_gradients``: more than ``tol`` of the inputs have an exactly zero gradient.

    The tolerance is ``max(tol, 2 / n)`` for ``n`` samples (two samples never raise a flag).

    Returns a dict with the numbers, ``flags`` (name -> bool), ``suspicious`` (any flag)
    and ``messages`` (one line per raised flag).
    """
    norm = check_norm(norm)
    x, y = _materialize(data) if not isinstance(data, (tuple, list)) else data
    x, y = x[:max_samples], y[:max_samples]
    check_inputs(x, y)
    dev = _model_device(model)
    x, y = x.to(dev), y.to(dev).long()
    d = x[0].numel()
    if eps_list is None:
        eps_list = {"linf": [0, 0.05, 0.1, 0.2, 0.3], "l2": [0, 0.5, 1, 2, 3],
                    "l1": [0, 2.5, 5, 10, 20]}[norm]
    eps_list = sorted(float(e) for e in eps_list)
    nonzero = [e for e in eps_list if e > 0]
    if not nonzero:
        raise ValueError("eps_list needs at least one positive radius")
    eps_ref = nonzero[len(nonzero) // 2] if eps_ref is None else float(eps_ref)
    large_eps = {"linf": 1.0, "l2": math.sqrt(d), "l1": float(d)}[norm] if large_eps is None else large_eps
    data_t = (x, y)

    def pgd(eps, **kw):
        return PGD(model, eps, norm=norm, **{"steps": steps, **kw})

    curve = accuracy_vs_eps(model, lambda e: pgd(e), eps_list, data_t)
    acc_pgd = robust_accuracy(model, pgd(eps_ref), data_t)
    acc_strong = robust_accuracy(model, pgd(eps_ref, steps=4 * steps, restarts=restarts), data_t)
    acc_margin = robust_accuracy(model, pgd(eps_ref, loss="margin"), data_t)
    acc_large = robust_accuracy(model, pgd(large_eps, loss="margin", steps=max(steps, 20),
                                           alpha=large_eps / 4 if norm != "l1" else None), data_t)
    acc_fgsm = (robust_accuracy(model, FGSM(model, eps_ref), data_t) if norm == "linf" else
                robust_accuracy(model, pgd(eps_ref, steps=1, alpha=eps_ref, random_start=False), data_t))
    robust_noise = _predict(model, x) == y
    for _ in range(noise_draws):
        delta = random_in_ball(x.shape, eps_ref, norm, device=dev, dtype=x.dtype)
        robust_noise &= _predict(model, (x + delta).clamp(0, 1)) == y
    acc_noise = robust_noise.float().mean().item()
    zero_frac = _zero_gradient_fraction(model, x, y)

    accs = curve["accuracy"]
    tol = max(tol, 2.0 / x.shape[0])  # never flag a difference of one or two samples
    flags = {
        "not_monotone": any(b > a + tol for a, b in zip(accs, accs[1:])),
        "not_zero_at_large_eps": acc_large > tol,
        "single_step_beats_iterative": acc_fgsm < acc_pgd - tol,
        "stronger_attack_helps_model": acc_strong > acc_pgd + tol,
        "margin_beats_ce": acc_margin < acc_pgd - tol,
        "noise_beats_gradient": acc_noise < acc_pgd - tol,
        "zero_gradients": zero_frac > tol,
    }
    text = {
        "not_monotone": "robust accuracy increases with eps somewhere",
        "not_zero_at_large_eps": f"accuracy {acc_large:.3f} > 0 at eps = {large_eps:g} (the whole box)",
        "single_step_beats_iterative": f"FGSM ({acc_fgsm:.3f}) beats PGD ({acc_pgd:.3f})",
        "stronger_attack_helps_model": f"more steps/restarts raise accuracy ({acc_pgd:.3f} -> {acc_strong:.3f})",
        "margin_beats_ce": f"margin loss ({acc_margin:.3f}) beats cross-entropy ({acc_pgd:.3f})",
        "noise_beats_gradient": f"random noise ({acc_noise:.3f}) beats PGD ({acc_pgd:.3f})",
        "zero_gradients": f"{100 * zero_frac:.1f}% of inputs have an exactly zero input gradient",
    }
    return {"norm": norm, "eps": curve["eps"], "pgd_accuracy": accs, "eps_ref": eps_ref,
            "pgd_ref_accuracy": acc_pgd, "strong_pgd_accuracy": acc_strong,
            "margin_pgd_accuracy": acc_margin, "fgsm_accuracy": acc_fgsm, "noise_accuracy": acc_noise,
            "large_eps": large_eps, "large_eps_accuracy": acc_large, "zero_grad_fraction": zero_frac,
            "flags": flags, "suspicious": any(flags.values()),
            "messages": [text[k] for k, v in flags.items() if v]}
