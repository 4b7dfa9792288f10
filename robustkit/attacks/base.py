"""The shared base of every attack: input checks, model modes, losses, gradients, final clipping.

An attack is built once, ``attack = PGD(model, eps=0.3)``, and called on a batch,
``x_adv = attack(x, y)`` (untargeted) or ``attack(x, y, target=t)`` (targeted). Whatever
the attack does inside, the base class guarantees (GUIDE §4-§5, the foolbox and
torchattacks designs of GUIDE §7):

- inputs are checked: ``x`` a float tensor ``(N, ...)`` in ``[0, 1]``, ``y`` integer labels
  ``(N,)`` in range, ``target`` different from ``y``; clear ``ValueError`` / ``TypeError``;
- the model runs in eval mode (:func:`robustkit.modes.eval_mode`), ``stochastic`` switches
  untouched, every submodule's ``training`` flag restored afterwards, also on errors;
- gradients are taken with respect to the input only: parameters are frozen for the
  duration (``requires_grad`` restored), so no ``.grad`` is left on the model;
- the result is projected onto the threat model's ball around ``x`` and clamped to
  ``[0, 1]``, and returned detached, on ``x``'s device.

Losses (to be *maximized* by the attacker, per sample): cross-entropy ``"ce"``
(untargeted: ``CE(z, y)``; targeted: ``-CE(z, t)``) or the logit margin ``"margin"``
(untargeted: ``max_{j != y} z_j - z_y``; targeted: ``z_t - max_{j != t} z_j``), where the
best other logit masks the reference class with ``-inf`` (GUIDE §5 trap 6).

Used by: every attack of chapter 2 and all later chapters.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..modes import eval_mode
from .projections import as_eps, check_norm, norms, project

__all__ = ["Attack", "FixedEpsAttack", "margin", "best_other_logit", "attack_loss",
           "is_adversarial", "frozen_parameters", "check_inputs"]

LOSSES = ("ce", "margin")


def best_other_logit(logits: torch.Tensor, cls: torch.Tensor) -> torch.Tensor:
    """``max_{j != cls} z_j`` per row: the reference class is masked with ``-inf`` (not ``* (1 - onehot)``)."""
    masked = logits.scatter(1, cls[:, None], float("-inf"))
    return masked.amax(1)


def margin(logits: torch.Tensor, y: torch.Tensor, target: torch.Tensor | None = None) -> torch.Tensor:
    """Attacker's margin per sample: ``> 0`` iff the attack succeeds (ties aside).

    Untargeted: ``max_{j != y} z_j - z_y``; targeted: ``z_t - max_{j != t} z_j``.
    """
    if target is None:
        return best_other_logit(logits, y) - logits.gather(1, y[:, None])[:, 0]
    return logits.gather(1, target[:, None])[:, 0] - best_other_logit(logits, target)


def attack_loss(logits: torch.Tensor, y: torch.Tensor, target: torch.Tensor | None = None,
                loss: str = "ce") -> torch.Tensor:
    """Per-sample loss that the attacker maximizes (see the module docstring)."""
    if loss == "ce":
        if target is None:
            return F.cross_entropy(logits, y, reduction="none")
        return -F.cross_entropy(logits, target, reduction="none")
    if loss == "margin":
        return margin(logits, y, target)
    raise ValueError(f"unknown loss {loss!r}: choose 'ce' or 'margin'")


def is_adversarial(logits: torch.Tensor, y: torch.Tensor, target: torch.Tensor | None = None) -> torch.Tensor:
    """Success criterion: prediction ``!= y`` (untargeted) or ``== target`` (targeted)."""
    pred = logits.argmax(1)
    return pred != y if target is None else pred == target


@contextmanager
def frozen_parameters(model: nn.Module) -> Iterator[None]:
    """``requires_grad=False`` on every parameter for the duration, restored afterwards.

    Attacks need gradients with respect to the input only: freezing saves the weight
    gradients' memory and guarantees that no ``.grad`` is accumulated on the model.
    """
    params = list(model.parameters())
    flags = [p.requires_grad for p in params]
    try:
        for p in params:
            p.requires_grad_(False)
        yield
    finally:
        for p, f in zip(params, flags):
            p.requires_grad_(f)


def _model_device(model: nn.Module, fallback: torch.device) -> torch.device:
    for t in model.parameters():
        return t.device
    for t in model.buffers():
        return t.device
    return fallback


def check_inputs(x, y, target=None) -> None:
    """Validate a batch for an attack: raise a clear ``TypeError`` / ``ValueError`` otherwise."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x must be a torch.Tensor of images in [0, 1], got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"x must be a floating-point tensor (images in [0, 1]), got dtype {x.dtype}")
    if x.ndim < 2 or x.shape[0] == 0:
        raise ValueError(f"x must be a non-empty batch of shape (N, C, H, W) or (N, D), got "
                         f"shape {tuple(x.shape)}")
    if not torch.isfinite(x).all():
        raise ValueError("x contains NaN or infinite values")
    lo, hi = float(x.min()), float(x.max())
    if lo < 0.0 or hi > 1.0:
        raise ValueError(f"x must be images in [0, 1] (normalization lives inside the model), "
                         f"got values in [{lo:.4g}, {hi:.4g}]")
    for name, t in (("y", y), ("target", target)):
        if t is None and name == "target":
            continue
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name} must be a LongTensor of class indices, got {type(t).__name__}")
        if t.dtype.is_floating_point or t.dtype == torch.bool or t.is_complex():
            raise TypeError(f"{name} must hold integer class indices, got dtype {t.dtype}")
        if t.shape != (x.shape[0],):
            raise ValueError(f"{name} must have shape ({x.shape[0]},) (one label per image), got "
                             f"{tuple(t.shape)}")
        if (t < 0).any():
            raise ValueError(f"{name} has negative class indices")
    if target is not None and (target.to(y.device) == y).any():
        raise ValueError("target must differ from the true label y for every sample "
                         "(a targeted attack towards the true class is meaningless)")


class Attack:
    """Base class: ``attack(x, y, target=None) -> x_adv`` (see the module docstring).

    Subclasses implement ``_run(x, y, target) -> x_adv`` (inputs already checked and on
    the model's device, model in eval mode with frozen parameters, gradients enabled)
    and may override :meth:`_finalize`. ``eot_samples`` (>= 1) averages the input
    gradient over that many forward passes of a randomized model (expectation over
    transformation, :mod:`robustkit.attacks.eot`).
    """

    #: threat-model norm of the result (``None``: minimal-perturbation attack, box only)
    norm: str | None = None

    def __init__(self, model: nn.Module, *, loss: str = "ce", eot_samples: int = 1) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module returning logits, got {type(model).__name__}")
        if loss not in LOSSES:
            raise ValueError(f"unknown loss {loss!r}: choose one of {', '.join(LOSSES)}")
        if isinstance(eot_samples, bool) or not isinstance(eot_samples, int) or eot_samples < 1:
            raise ValueError(f"eot_samples must be a positive integer, got {eot_samples!r}")
        self.model = model
        self.loss = loss
        self.eot_samples = eot_samples

    # ----------------------------------------------------------------- public
    def __call__(self, x: torch.Tensor, y: torch.Tensor, *, target: torch.Tensor | None = None) -> torch.Tensor:
        check_inputs(x, y, target)
        out_device = x.device
        dev = _model_device(self.model, x.device)
        x = x.detach().to(dev)
        y = y.detach().to(dev).long()
        target = None if target is None else target.detach().to(dev).long()
        with eval_mode(self.model), frozen_parameters(self.model), torch.enable_grad():
            self._num_classes_checked = False
            x_adv = self._run(x, y, target)
            with torch.no_grad():
                x_adv = self._finalize(x, x_adv.detach())
        return x_adv.detach().to(out_device)

    def __repr__(self) -> str:
        keys = [k for k in ("eps", "norm", "steps", "alpha", "restarts", "loss", "eot_samples")
                if k in vars(self) or k == "norm"]
        args = ", ".join(f"{k}={getattr(self, k)!r}" for k in keys
                         if not isinstance(getattr(self, k), torch.Tensor))
        return f"{type(self).__name__}({args})"

    # ----------------------------------------------------------------- helpers for subclasses
    def _run(self, x, y, target):  # pragma: no cover - abstract
        raise NotImplementedError

    def _logits(self, x: torch.Tensor, y: torch.Tensor | None = None,
                target: torch.Tensor | None = None) -> torch.Tensor:
        logits = self.model(x)
        if not isinstance(logits, torch.Tensor) or logits.ndim != 2 or logits.shape[0] != x.shape[0]:
            raise ValueError("the model must return logits of shape (N, classes), got "
                             f"{tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__}")
        if not self._num_classes_checked and y is not None:
            c = logits.shape[1]
            for name, t in (("y", y), ("target", target)):
                if t is not None and int(t.max()) >= c:
                    raise ValueError(f"{name} has class index {int(t.max())} but the model has {c} classes")
            self._num_classes_checked = True
        return logits

    def _grad(self, x_adv: torch.Tensor, y: torch.Tensor, target: torch.Tensor | None,
              loss: str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Input gradient of the summed per-sample loss (EOT average); also the last logits."""
        loss = loss or self.loss
        grad = None
        for _ in range(self.eot_samples):
            xa = x_adv.detach().requires_grad_(True)
            logits = self._logits(xa, y, target)
            value = attack_loss(logits, y, target, loss).sum()
            (g,) = torch.autograd.grad(value, xa)
            grad = g if grad is None else grad + g
        if self.eot_samples > 1:
            grad = grad / self.eot_samples
        return grad, logits.detach()

    def _finalize(self, x: torch.Tensor, x_adv: torch.Tensor) -> torch.Tensor:
        """Clip to the box (subclasses with a ball also project onto it)."""
        return x_adv.clamp(0.0, 1.0)


class FixedEpsAttack(Attack):
    """An attack inside a fixed ``norm`` ball of radius ``eps`` (float or per-sample ``(N,)`` tensor)."""

    def __init__(self, model: nn.Module, eps, norm="linf", **kwargs) -> None:
        super().__init__(model, **kwargs)
        self.norm = check_norm(norm)
        if isinstance(eps, torch.Tensor):
            if eps.ndim > 1:
                raise ValueError(f"eps must be a float or a 1-D tensor (one per sample), got shape "
                                 f"{tuple(eps.shape)}")
            if not torch.isfinite(eps).all() or (eps < 0).any():
                raise ValueError(f"eps must be finite and >= 0, got {eps}")
        elif isinstance(eps, (int, float)) and not isinstance(eps, bool):
            if not (eps >= 0 and eps < float("inf")):
                raise ValueError(f"eps must be a finite number >= 0, got {eps!r}")
        else:
            raise TypeError(f"eps must be a float or a tensor, got {type(eps).__name__}")
        self.eps = eps

    def _eps(self, x: torch.Tensor) -> torch.Tensor:
        return as_eps(self.eps, x.shape[0], x)

    def _finalize(self, x: torch.Tensor, x_adv: torch.Tensor) -> torch.Tensor:
        """Project onto the ``eps`` ball and clamp to ``[0, 1]`` (foolbox's final clipping).

        Rounding in ``x + delta`` can push an L1 / L2 norm a few ulps above ``eps``;
        offending rows are projected again onto a radius shrunk by that rounding bound,
        so ``||x_adv - x|| <= eps`` holds in float64 arithmetic.
        """
        eps = self._eps(x)
        out = (x + project(x, x_adv - x, eps, self.norm)).clamp(0.0, 1.0)
        if self.norm != "linf":
            d = x[0].numel()
            measured = norms(out.double() - x.double(), self.norm)
            bad = measured > eps.double()
            if bad.any():
                ulp = torch.finfo(x.dtype).eps
                slack = ulp * (d if self.norm == "l1" else d ** 0.5)
                eps2 = (eps * (1 - 4 * ulp) - slack).clamp_min(0)
                redo = (x + project(x, out - x, eps2, self.norm)).clamp(0.0, 1.0)
                out = torch.where(bad.view(-1, *([1] * (x.ndim - 1))), redo, out)
        return out
