"""Minimal perturbation by per-sample binary search over eps, for any fixed-eps attack.

For a fixed-radius attack ``A_eps`` (FGSM, PGD ...), the *minimal adversarial radius* of
a sample is ``eps*(x) = inf{eps : f(A_eps(x)) != y}``. Assuming success is monotone in
``eps`` (true for an ideal attack, approximately for PGD), a bisection on
``[0, eps_max]`` finds it to tolerance ``tol`` in ``ceil(log2(eps_max / tol))`` attack
calls on the whole batch, each sample with its own radius (the attacks accept a tensor
``eps`` of shape ``(N,)``). Clean errors get ``0``; samples not fooled at ``eps_max``
get ``inf``.

Used by: chapter 2 (distributions of minimal perturbations) and later chapters.
"""
from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn as nn

from ..modes import eval_mode
from .base import check_inputs, is_adversarial
from .projections import check_norm

__all__ = ["minimal_perturbation"]


def minimal_perturbation(attack_factory: Callable, model: nn.Module, x: torch.Tensor, y: torch.Tensor, *,
                         eps_max: float, norm="linf", tol: float | None = None,
                         return_adv: bool = False):
    """Per-sample smallest ``eps`` at which ``attack_factory(eps)`` fools ``model`` (bisection).

    Args:
        attack_factory: ``eps -> Attack``, called with a per-sample tensor ``eps`` (N,).
        model: the classifier (evaluated in eval mode, modes restored).
        x, y: images in ``[0, 1]`` and true labels.
        eps_max: upper end of the search (the attack is tried there first).
        norm: the attack's norm (checked against ``attack.norm`` when it has one).
        tol: bisection tolerance (default ``eps_max / 256``).
        return_adv: also return the adversarial examples found at the upper bracket
            (``x`` itself where none was found).

    Returns ``eps`` (N,) (and ``x_adv`` if ``return_adv``): an upper bracket of the
    minimal radius within ``tol``; ``0`` for clean errors, ``inf`` if not fooled at
    ``eps_max``.
    """
    norm = check_norm(norm)
    check_inputs(x, y)
    if not callable(attack_factory):
        raise TypeError("attack_factory must be a callable eps -> Attack")
    if not isinstance(eps_max, (int, float)) or not 0 < eps_max < float("inf"):
        raise ValueError(f"eps_max must be a positive finite number, got {eps_max!r}")
    tol = eps_max / 256 if tol is None else tol
    if not isinstance(tol, (int, float)) or not tol > 0:
        raise ValueError(f"tol must be a positive number, got {tol!r}")
    n = x.shape[0]
    view = (-1,) + (1,) * (x.ndim - 1)

    def fooled(eps: torch.Tensor):
        attack = attack_factory(eps)
        if getattr(attack, "norm", None) not in (None, norm):
            raise ValueError(f"attack_factory builds {norm!r}-norm attacks? it returned norm "
                             f"{attack.norm!r}")
        adv = attack(x, y)
        with torch.no_grad(), eval_mode(model):
            return is_adversarial(model(adv), y.to(adv.device)), adv

    with torch.no_grad(), eval_mode(model):
        clean_wrong = model(x).argmax(1) != y.to(x.device)
    hi = torch.full((n,), float(eps_max), dtype=x.dtype, device=x.device)
    lo = torch.zeros_like(hi)
    ok, adv_hi = fooled(hi.clone())
    best_adv = torch.where(ok.view(view), adv_hi, x)
    for _ in range(max(1, math.ceil(math.log2(eps_max / tol)))):
        mid = (lo + hi) / 2
        ok_mid, adv_mid = fooled(mid.clone())
        win = ok_mid & ok
        hi = torch.where(win, mid, hi)
        lo = torch.where(win, lo, mid)
        best_adv = torch.where(win.view(view), adv_mid, best_adv)
    eps = torch.where(ok, hi, torch.full_like(hi, float("inf")))
    eps = torch.where(clean_wrong, torch.zeros_like(eps), eps)
    best_adv = torch.where(clean_wrong.view(view), x, best_adv)
    return (eps, best_adv) if return_adv else eps
