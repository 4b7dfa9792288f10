"""Model modes: ``training`` (BatchNorm statistics, dropout) and ``stochastic`` (intended randomness).

PyTorch has one switch, ``module.training``, and peer attack libraries flip it with
``model.eval()``. That is right for BatchNorm, but it silently turns *off* the
randomness that randomized defenses rely on (Random Self-Ensemble noise, Bayesian
weights, MC dropout, SDE noise), so an attack run in ``eval()`` would evaluate a
different, deterministic model (GUIDE §5, trap 1). robustkit keeps two switches:

- ``training``: the usual PyTorch flag, set by ``train()`` / ``eval()``;
- ``stochastic``: an attribute of :class:`StochasticModule` layers; such a layer draws its
  randomness iff ``self.stochastic`` is true, whatever ``self.training`` says.

Attacks and evaluators run the model under :func:`eval_mode` (every submodule in eval,
each submodule's own flag restored afterwards, also on exceptions) and never touch
``stochastic``; :func:`stochastic` / :func:`set_stochastic` switch randomness on or off
explicitly (e.g. to compare a randomized defense with its deterministic twin).

Used by: chapter 2 (attacks), the chapters on randomized defenses (RSE, Adv-BNN, SDE),
uncertainty (MC dropout) and adversarial training.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch.nn as nn

__all__ = [
    "StochasticModule",
    "is_stochastic_module",
    "set_stochastic",
    "restore_stochastic",
    "stochastic",
    "training_states",
    "restore_training",
    "eval_mode",
]


class StochasticModule(nn.Module):
    """Base class of layers with *intended* randomness, switched by ``self.stochastic``.

    Subclasses draw their noise in ``forward`` iff ``self.stochastic`` is true (default
    ``True``), independently of ``self.training``: a Random Self-Ensemble noise layer
    stays noisy when an attack calls ``model.eval()``. Switch it with
    :func:`set_stochastic` or the :func:`stochastic` context manager.

    Used by: the noise layers of randomized defenses (RSE, Adv-BNN, neural SDE, MC dropout).
    """

    stochastic: bool = True

    def __init__(self, *args, stochastic: bool = True, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if not isinstance(stochastic, bool):
            raise TypeError(f"stochastic must be a bool, got {stochastic!r}")
        self.stochastic = stochastic

    def extra_repr(self) -> str:
        return f"stochastic={self.stochastic}"


def is_stochastic_module(module: nn.Module) -> bool:
    """True if ``module`` has a boolean ``stochastic`` switch (a :class:`StochasticModule` or duck-typed)."""
    return isinstance(module, StochasticModule) or isinstance(getattr(module, "stochastic", None), bool)


def _check_module(model) -> None:
    if not isinstance(model, nn.Module):
        raise TypeError(f"expected an nn.Module, got {type(model).__name__}")


def set_stochastic(model: nn.Module, flag: bool) -> dict[str, bool]:
    """Set ``.stochastic = flag`` on every submodule that has the switch.

    Returns the previous states ``{qualified name: bool}`` (pass them to
    :func:`restore_stochastic`). A model without stochastic layers is left unchanged and
    gives an empty dict. Used by: :func:`stochastic`, the randomized-defense chapters.
    """
    _check_module(model)
    if not isinstance(flag, bool):
        raise TypeError(f"flag must be a bool, got {flag!r}")
    previous = {}
    for name, module in model.named_modules():
        if is_stochastic_module(module):
            previous[name] = bool(module.stochastic)
            module.stochastic = flag
    return previous


def restore_stochastic(model: nn.Module, states: dict[str, bool]) -> None:
    """Restore the ``stochastic`` switches saved by :func:`set_stochastic`."""
    _check_module(model)
    modules = dict(model.named_modules())
    for name, flag in states.items():
        if name not in modules:
            raise KeyError(f"no submodule named {name!r} in {type(model).__name__}")
        modules[name].stochastic = flag


@contextmanager
def stochastic(model: nn.Module, flag: bool = True) -> Iterator[nn.Module]:
    """Context manager: stochastic layers of ``model`` on (``flag=True``) or off, restored on exit.

    ``with stochastic(model, False): ...`` evaluates the deterministic twin of a
    randomized defense (noise off); the previous switches come back afterwards, also
    when an exception is raised.
    """
    states = set_stochastic(model, flag)
    try:
        yield model
    finally:
        restore_stochastic(model, states)


def training_states(model: nn.Module) -> dict[str, bool]:
    """The ``training`` flag of every submodule, ``{qualified name: bool}`` (``""`` is the root)."""
    _check_module(model)
    return {name: bool(m.training) for name, m in model.named_modules()}


def restore_training(model: nn.Module, states: dict[str, bool]) -> None:
    """Restore the ``training`` flags saved by :func:`training_states` (submodule by submodule)."""
    _check_module(model)
    for name, module in model.named_modules():
        if name in states:
            module.training = states[name]


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Context manager: ``model.eval()`` for the duration, then each submodule's own flag back.

    Unlike ``was_training = model.training; ...; model.train(was_training)``, this also
    restores *nested* modes (e.g. a caller who keeps one dropout layer in train mode for
    MC dropout). ``stochastic`` switches are not touched. Used by every attack and
    evaluator of :mod:`robustkit.attacks` (GUIDE §5, trap 1).
    """
    states = training_states(model)
    model.eval()
    try:
        yield model
    finally:
        restore_training(model, states)
