"""Runtime helpers: device choice, seeding and the run budget.

Every chapter starts with ``budget = robustkit.get_budget()`` and sizes its data,
epochs, attack steps and ensembles from it, so the same file runs in seconds in CI
(``smoke``), in a few minutes on a laptop (``cpu``) and at paper scale on a GPU
(``gpu``). The budget is read once from the environment variable
``ROBUSTKIT_BUDGET``; by default it is ``gpu`` when CUDA is available, else ``cpu``.

Used by: every chapter (first defined in chapter 0, *Getting started*).
"""
from __future__ import annotations

import functools
import os
import random
from dataclasses import dataclass, fields, replace
from typing import Any

import numpy as np
import torch

BUDGET_ENV = "ROBUSTKIT_BUDGET"
BUDGET_NAMES = ("smoke", "cpu", "gpu")

__all__ = [
    "Budget",
    "BUDGET_ENV",
    "BUDGET_NAMES",
    "get_budget",
    "make_budget",
    "get_device",
    "seed_everything",
]


@dataclass(frozen=True)
class Budget:
    """The size of a run: one small immutable object chapters consult.

    Attributes are generic knobs shared by all chapters; for a chapter-specific
    knob use :meth:`pick`, e.g. ``budget.pick(smoke=2, cpu=20, gpu=200)``.
    """

    name: str
    train_size: int      # training examples per dataset (``None``-like: -1 = all)
    test_size: int       # test examples used for evaluation
    epochs: int          # training epochs for the chapter's main models
    batch_size: int      # minibatch size
    attack_steps: int    # iterations of iterative attacks (PGD, C&W, DeepFool)
    restarts: int        # random restarts of attacks
    eot_samples: int     # expectation-over-transformation draws for random defenses
    ensemble_size: int   # members of ensembles / Monte Carlo predictions
    n_projections: int   # projections for sliced Wasserstein estimates
    n_seeds: int         # repetitions for error bars

    def pick(self, *, smoke: Any, cpu: Any, gpu: Any) -> Any:
        """Return the value matching this budget's name."""
        return {"smoke": smoke, "cpu": cpu, "gpu": gpu}[self.name]

    def subset(self, n_available: int, which: str = "train") -> int:
        """Number of examples to use out of ``n_available`` for ``which`` in {train, test}."""
        want = self.train_size if which == "train" else self.test_size
        if which not in ("train", "test"):
            raise ValueError(f"which must be 'train' or 'test', got {which!r}")
        return n_available if want < 0 else min(want, n_available)

    def as_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}


_PRESETS = {
    "smoke": Budget("smoke", train_size=2_000, test_size=500, epochs=1, batch_size=128,
                    attack_steps=5, restarts=1, eot_samples=2, ensemble_size=2,
                    n_projections=50, n_seeds=1),
    "cpu": Budget("cpu", train_size=20_000, test_size=2_000, epochs=3, batch_size=128,
                  attack_steps=20, restarts=1, eot_samples=10, ensemble_size=5,
                  n_projections=500, n_seeds=3),
    "gpu": Budget("gpu", train_size=-1, test_size=-1, epochs=20, batch_size=256,
                  attack_steps=100, restarts=5, eot_samples=40, ensemble_size=10,
                  n_projections=2_000, n_seeds=5),
}


def make_budget(name: str, **overrides: Any) -> Budget:
    """Build the preset budget ``name`` (smoke, cpu or gpu), optionally overriding fields."""
    key = str(name).strip().lower()
    if key not in _PRESETS:
        raise ValueError(
            f"unknown budget {name!r}: choose one of {', '.join(BUDGET_NAMES)} "
            f"(set {BUDGET_ENV}=smoke|cpu|gpu)")
    return replace(_PRESETS[key], **overrides) if overrides else _PRESETS[key]


@functools.lru_cache(maxsize=None)
def get_budget() -> Budget:
    """The run budget, read once from ``$ROBUSTKIT_BUDGET``.

    Default: ``gpu`` when CUDA is available, else ``cpu``. The value is cached for the
    whole process so a chapter sees one consistent budget; call
    ``get_budget.cache_clear()`` after changing the variable (tests do).
    """
    name = os.environ.get(BUDGET_ENV, "").strip()
    if not name:
        name = "gpu" if torch.cuda.is_available() else "cpu"
    return make_budget(name)


def get_device(prefer: str | torch.device | None = None) -> torch.device:
    """Pick a device: ``prefer`` if given, else CUDA, else Apple MPS, else the CPU."""
    if prefer is not None:
        device = torch.device(prefer)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise RuntimeError("CUDA was requested but is not available on this machine")
        return device
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def seed_everything(seed: int, deterministic: bool = True) -> torch.Generator:
    """Seed python, numpy and torch (CPU and CUDA); optionally make cuDNN deterministic.

    Returns a ``torch.Generator`` seeded with ``seed`` for code that wants an explicit
    generator instead of the global one.
    """
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    seed = int(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)
    if deterministic:
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
    return torch.Generator().manual_seed(seed)
