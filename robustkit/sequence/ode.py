"""A fixed-step fourth-order Runge-Kutta solver for the FLOATER position dynamics.

FLOATER (seed 003 §4.1.3, eq. 4.8) reads position vectors off the solution of an ODE
``dp/dt = h(t, p; theta)`` at the grid ``t_i = i * dt``. On such a uniform grid a
fixed-step RK4 solver with back-propagation through its steps ("discretize, then
optimize") is exact enough (local error O(dt^5)) and needs no adaptive step control;
the tests check it against an analytic linear ODE and against ``torchdiffeq``'s
``rk4`` and ``dopri5`` solvers (robustkit itself never imports ``torchdiffeq``).

Used by: chapter 9, *Learning to encode position*.
"""
from __future__ import annotations

from typing import Callable

import torch

__all__ = ["rk4_step", "rk4_solve"]

Dynamics = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def rk4_step(func: Dynamics, t: torch.Tensor, y: torch.Tensor, dt: torch.Tensor) -> torch.Tensor:
    """One classical Runge-Kutta step: ``y + dt/6 (k1 + 2 k2 + 2 k3 + k4)`` (RK4).

    ``func(t, y)`` returns ``dy/dt`` with the shape of ``y``. Seed 003 §4.1.3 (eq. 4.8),
    chapter 9.
    """
    half = dt / 2
    k1 = func(t, y)
    k2 = func(t + half, y + half * k1)
    k3 = func(t + half, y + half * k2)
    k4 = func(t + dt, y + dt * k3)
    return y + (dt / 6) * (k1 + 2 * k2 + 2 * k3 + k4)


def rk4_solve(func: Dynamics, y0: torch.Tensor, t: torch.Tensor, substeps: int = 1) -> torch.Tensor:
    """Solve ``dy/dt = func(t, y)``, ``y(t[0]) = y0`` with fixed-step RK4; return ``y`` at ``t``.

    ``t`` is a 1-D strictly increasing tensor of times; between two consecutive times the
    solver takes ``substeps`` equal RK4 steps. The result has shape ``(len(t), *y0.shape)``
    and its first entry is ``y0``; gradients flow through every step (no adjoint), so the
    dynamics' parameters train end to end as in FLOATER (seed 003 §4.1.3, eq. 4.8).
    The call signature ``func(t, y)`` is torchdiffeq's, so the same dynamics can be
    checked against ``torchdiffeq.odeint``. Used by: chapter 9.
    """
    if not callable(func):
        raise TypeError(f"func must be callable as func(t, y), got {type(func).__name__}")
    if not isinstance(y0, torch.Tensor) or not isinstance(t, torch.Tensor):
        raise TypeError("y0 and t must be torch tensors")
    if not y0.is_floating_point():
        raise TypeError(f"y0 must be a floating-point tensor, got dtype {y0.dtype}")
    if t.ndim != 1 or t.numel() == 0:
        raise ValueError(f"t must be a non-empty 1-D tensor of times, got shape {tuple(t.shape)}")
    if not torch.isfinite(t).all():
        raise ValueError("t must be finite")
    if t.numel() > 1 and not bool((t[1:] > t[:-1]).all()):
        raise ValueError("t must be strictly increasing")
    if isinstance(substeps, bool) or not isinstance(substeps, int) or substeps < 1:
        raise ValueError(f"substeps must be a positive integer, got {substeps!r}")
    t = t.to(device=y0.device, dtype=y0.dtype)
    out = [y0]
    y = y0
    for k in range(t.numel() - 1):
        dt = (t[k + 1] - t[k]) / substeps
        for s in range(substeps):
            y = rk4_step(func, t[k] + s * dt, y, dt)
        out.append(y)
    return torch.stack(out)
