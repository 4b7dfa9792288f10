"""Neural SDE: a continuous-depth network whose hidden state follows a jump-diffusion.

Seed 003 §2.3 (Liu et al. 2020, *How does noise help robustness? Explanation and
exploration under the neural SDE framework*) augments the Neural ODE
``dh = f(h, t; w) dt`` (eq. 2.28, Chen et al. 2018) with a diffusion and a jump term
(eq. 2.30)::

    h_t = h_s + ∫ f(h, τ; w) dτ  +  ∫ G(h, τ) dB_τ  +  ∫ J(h, τ) ⊙ Z_{N_τ} dN_τ
                 (drift)             (diffusion)          (jump)

with ``B`` a Brownian motion, ``N`` a Poisson counting process of rate ``lambda``
(``P(N_{s->t} = n) = (lambda (t-s))^n e^{-lambda (t-s)} / n!``) and ``Z = ±1`` with
``P(Z = +1) = p``. The diffusions of the seed's experiments (§2.3.4, eq. 2.34-2.37):

- ``"none"``: ``G = 0``, the Neural ODE;
- ``"additive"``: ``G = sigma`` (Gaussian noise added to each block, eq. 2.35);
- ``"multiplicative"``: ``G = sigma * h`` (the experiments' choice, §2.3.4; eq. 2.38);
- ``"dropout"``: ``G = sigma * f(h, t)`` (Gaussian dropout, eq. 2.34, with
  ``sigma = sqrt(p_drop / (1 - p_drop))``: :func:`dropout_sigma`).

The jump term (eq. 2.31-2.32) puts a random number of dropout layers at random depths:
``J = jump_scale * f`` (``jump_size="drift"``), ``jump_scale * h`` (``"state"``) or the
constant ``jump_scale`` (``"constant"``); the direction ``Z`` is drawn per feature
(``jump_kind="dropout"``, eq. 2.31) or once per sample (``"depth"``: stochastic depth,
eq. 2.32). Note: in eq. 2.31 ``Z = (gamma - 1/2)/2`` takes the values ``±1/4``, so the jump
``2 f ⊙ Z = ±f/2``; with ``Z = ±1`` the same layer is ``J = f/2`` (``jump_scale = 0.5``),
and the ``1/2`` of the drift is absorbed in the learned ``f``.

Randomness is *intended* here (GUIDE §5 trap 1): :class:`SDEBlock` is a
:class:`robustkit.modes.StochasticModule`, it draws Brownian increments and jumps iff
``self.stochastic`` is true, whatever ``self.training`` says. With ``stochastic = False``
the diffusion is dropped and the jump is replaced by its mean ``lambda (2p - 1) J dt``
(the deterministic twin, "without test-time noise" of Table 2.5).

The solver is a fixed-step Euler-Maruyama scheme (Kloeden & Platen 1992; Algorithm 4
back-propagates through its steps, no adjoint): strong order 1/2 for state-dependent
noise, 1 for additive noise and for the ODE. A Brownian path can be passed explicitly
(increments or a ``bm(t0, t1)`` callable such as a ``torchsde`` Brownian interval), so
the same path drives several solves (the perturbation analysis of eq. 2.40 assumes it).

Used by: chapter 7, *Neural SDE: noise as a defense*.
"""
from __future__ import annotations

import math
from numbers import Real
from typing import Callable, Optional, Sequence, Union

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..attacks.eot import expected_logits
from ..models import Normalize
from ..modes import StochasticModule, eval_mode

__all__ = [
    "DIFFUSIONS", "JUMP_SIZES", "JUMP_KINDS",
    "dropout_sigma", "time_grid", "brownian_increments", "bernoulli_jumps",
    "euler_maruyama", "gbm_solution",
    "ConvDrift", "LinearDrift", "SDEBlock", "NeuralSDEClassifier",
    "ttn_predict", "ttn_accuracy",
]

DIFFUSIONS = ("none", "additive", "multiplicative", "dropout")
JUMP_SIZES = ("drift", "state", "constant")
JUMP_KINDS = ("dropout", "depth")

Brownian = Union[None, torch.Tensor, Callable]


# --------------------------------------------------------------------------- checks
def _finite(value, name: str, *, low: float | None = None, strict: bool = False,
            high: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(float(value)):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    value = float(value)
    if low is not None and (value < low or (strict and value == low)):
        raise ValueError(f"{name} must be {'>' if strict else '>='} {low}, got {value!r}")
    if high is not None and value > high:
        raise ValueError(f"{name} must be <= {high}, got {value!r}")
    return value


def _count(value, name: str, low: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    return int(value)


def _choice(value, name: str, options: Sequence[str]) -> str:
    if not isinstance(value, str) or value not in options:
        raise ValueError(f"unknown {name} {value!r}: choose one of {', '.join(options)}")
    return value


def _check_ts(ts) -> torch.Tensor:
    if not isinstance(ts, torch.Tensor):
        raise TypeError(f"ts must be a 1-D tensor of times, got {type(ts).__name__}")
    if ts.ndim != 1 or ts.numel() < 2:
        raise ValueError(f"ts must be a 1-D tensor with at least 2 times, got shape {tuple(ts.shape)}")
    if not ts.is_floating_point() or not bool(torch.isfinite(ts).all()):
        raise ValueError("ts must hold finite floating-point times")
    if not bool((ts[1:] > ts[:-1]).all()):
        raise ValueError("ts must be strictly increasing")
    return ts


# --------------------------------------------------------------------------- noise sources
def dropout_sigma(p_drop: float) -> float:
    """Diffusion scale of Gaussian dropout, ``sqrt(p / (1 - p))`` (seed 003 eq. 2.34), chapter 7.

    Dropout with rate ``p`` rescaled by ``1 / (1 - p)`` multiplies ``f`` by a two-point
    variable of mean 1 and variance ``p / (1 - p)``; Gaussian dropout replaces it by
    ``1 + sqrt(p / (1 - p)) z``, ``z ~ N(0, 1)``.
    """
    p = _finite(p_drop, "p_drop", low=0.0)
    if p >= 1.0:
        raise ValueError(f"p_drop must be in [0, 1), got {p_drop!r}")
    return math.sqrt(p / (1.0 - p))


def time_grid(t1: float, steps: int, t0: float = 0.0, *, dtype=torch.float32, device=None) -> torch.Tensor:
    """The uniform grid ``t0, t0 + dt, ..., t1`` with ``steps`` steps (``dt = (t1 - t0) / steps``)."""
    t0, t1 = _finite(t0, "t0"), _finite(t1, "t1")
    if t1 <= t0:
        raise ValueError(f"t1 must be > t0, got t0={t0}, t1={t1}")
    steps = _count(steps, "steps")
    return torch.linspace(t0, t1, steps + 1, dtype=dtype, device=device)


def brownian_increments(shape: Sequence[int], ts: torch.Tensor, *, generator: torch.Generator | None = None,
                        dtype=None, device=None) -> torch.Tensor:
    """Increments ``B_{t_{k+1}} - B_{t_k} ~ N(0, t_{k+1} - t_k)``, shape ``(len(ts) - 1, *shape)``.

    Independent standard Brownian motions, one per entry of ``shape`` (Kloeden & Platen
    §4.4; seed 003 §2.3: "``dB_t`` as i.i.d. ``N(0, dt)``"). ``B_t`` itself is the cumulative
    sum. Summing consecutive increments gives the same path on a coarser grid (used for
    the convergence studies of chapter 7).
    """
    ts = _check_ts(ts)
    shape = tuple(int(s) for s in shape)
    if any(s < 0 for s in shape):
        raise ValueError(f"shape must be non-negative, got {shape}")
    dtype = dtype or (ts.dtype if ts.is_floating_point() else torch.get_default_dtype())
    device = device if device is not None else ts.device
    dt = (ts[1:] - ts[:-1]).to(dtype=dtype, device=device)
    z = torch.randn((dt.numel(), *shape), generator=generator, dtype=dtype, device=device)
    return z * dt.sqrt().view(-1, *([1] * len(shape)))


def bernoulli_jumps(shape: Sequence[int], dt: float, rate: float, p: float = 0.5, *,
                    kind: str = "dropout", generator: torch.Generator | None = None,
                    dtype=torch.float32, device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Jumps of the term ``∫ Z_{N_τ} dN_τ`` over one step of length ``dt`` (seed 003 eq. 2.30-2.32).

    ``shape = (N, ...)``: per sample, the number of jumps in the step is
    ``n ~ Poisson(rate * dt)`` (the jump times of one sample are shared by all its
    features: a dropout layer placed at a random depth, Fig. 2.11); each jump has
    direction ``Z = ±1`` with ``P(Z = +1) = p``, drawn per feature (``kind="dropout"``,
    eq. 2.31) or once per sample (``"depth"``, stochastic depth, eq. 2.32). The sum of
    ``n`` directions is ``2 Binomial(n, p) - n``.

    Returns ``(counts, sums)``: counts of shape ``(N,)``, sums of shape ``shape``
    (``"dropout"``) or ``(N, 1, ..., 1)`` (``"depth"``). Chapter 7.
    """
    shape = tuple(int(s) for s in shape)
    if len(shape) < 1 or any(s < 1 for s in shape):
        raise ValueError(f"shape must be (N, ...) with positive sizes, got {shape}")
    dt = _finite(dt, "dt", low=0.0, strict=True)
    rate = _finite(rate, "rate", low=0.0)
    p = _finite(p, "p", low=0.0, high=1.0)
    kind = _choice(kind, "jump kind", JUMP_KINDS)
    lam = torch.full((shape[0],), rate * dt, dtype=dtype, device=device)
    counts = torch.poisson(lam, generator=generator)
    view = (shape[0],) + (1,) * (len(shape) - 1)
    if kind == "depth":
        plus = torch.binomial(counts, torch.full_like(counts, p), generator=generator)
        return counts, (2 * plus - counts).view(view)
    n = counts.view(view).expand(shape)
    if p in (0.0, 1.0) or not bool((counts > 0).any()):
        sums = n * (2 * p - 1)
    else:
        plus = torch.binomial(n.contiguous(), torch.full(shape, p, dtype=dtype, device=device),
                              generator=generator)
        sums = 2 * plus - n
    return counts, sums


# --------------------------------------------------------------------------- solver
def euler_maruyama(drift: Callable, y0: torch.Tensor, ts: torch.Tensor, diffusion: Optional[Callable] = None, *,
                   brownian: Brownian = None, jump: Optional[Callable] = None,
                   generator: torch.Generator | None = None, return_path: bool = False) -> torch.Tensor:
    """Fixed-step Euler-Maruyama for the Itô SDE ``dy = f(t, y) dt + g(t, y) ⊙ dB (+ jumps)``.

    One step per interval of ``ts`` (Kloeden & Platen 1992, §9.1; seed 003 Algorithm 4)::

        y_{k+1} = y_k + f(t_k, y_k) dt_k + g(t_k, y_k) ⊙ ΔB_k + jump(t_k, y_k, dt_k)

    - ``drift(t, y)`` returns a tensor shaped like ``y``; ``diffusion(t, y)`` returns the
      *diagonal* noise coefficient (broadcastable to ``y``) or ``None`` (no noise);
      ``diffusion=None`` gives the explicit Euler scheme of the ODE (Neural ODE, eq. 2.28).
    - ``brownian``: ``None`` draws ``ΔB_k ~ N(0, dt_k)`` with ``generator``; a tensor of
      increments of shape ``(len(ts) - 1, *y0.shape)``; or a callable ``bm(t_k, t_{k+1})``
      returning the increment (e.g. ``torchsde.BrownianInterval``): the same path then drives
      several solves.
    - ``jump(t, y, dt)`` returns the jump increment of the step (or ``None``).

    Gradients flow through every step (discretize-then-optimize). Returns ``y`` at
    ``ts[-1]``, or the whole path ``(len(ts), *y0.shape)`` with ``return_path=True``.
    Strong order 1/2 in general, 1 for additive noise and for the ODE. Chapter 7.
    """
    if not callable(drift):
        raise TypeError(f"drift must be callable as drift(t, y), got {type(drift).__name__}")
    if diffusion is not None and not callable(diffusion):
        raise TypeError(f"diffusion must be callable as diffusion(t, y) or None, got {type(diffusion).__name__}")
    if jump is not None and not callable(jump):
        raise TypeError(f"jump must be callable as jump(t, y, dt) or None, got {type(jump).__name__}")
    if not isinstance(y0, torch.Tensor) or not y0.is_floating_point():
        raise TypeError("y0 must be a floating-point tensor")
    ts = _check_ts(ts).to(device=y0.device)
    n = ts.numel() - 1
    if isinstance(brownian, torch.Tensor):
        if tuple(brownian.shape) != (n, *y0.shape):
            raise ValueError(f"brownian increments must have shape {(n, *y0.shape)} (steps, *y0.shape), "
                             f"got {tuple(brownian.shape)}")
    elif brownian is not None and not callable(brownian):
        raise TypeError("brownian must be None, a tensor of increments or a callable bm(t0, t1)")
    y, path = y0, [y0]
    for k in range(n):
        t, t_next = ts[k], ts[k + 1]
        dt = t_next - t
        y_next = y + drift(t, y) * dt
        if diffusion is not None:
            g = diffusion(t, y)
            if g is not None:
                if brownian is None:
                    dB = torch.randn(y.shape, generator=generator, dtype=y.dtype, device=y.device) * dt.sqrt()
                elif isinstance(brownian, torch.Tensor):
                    dB = brownian[k]
                else:
                    dB = brownian(t, t_next)
                y_next = y_next + g * dB
        if jump is not None:
            dj = jump(t, y, dt)
            if dj is not None:
                y_next = y_next + dj
        y = y_next
        if return_path:
            path.append(y)
    return torch.stack(path) if return_path else y


def gbm_solution(x0, mu: float, sigma: float, ts: torch.Tensor, brownian_path: torch.Tensor) -> torch.Tensor:
    """Exact geometric Brownian motion ``x_t = x_0 exp((mu - sigma^2/2) t + sigma B_t)`` (seed 003 eq. 2.38).

    Solves ``dx = mu x dt + sigma x dB`` (the toy example has ``mu = 1``) for the given
    Brownian path ``B`` sampled at ``ts`` (shape ``(len(ts), ...)``, ``B_{ts[0]} = 0``).
    Almost surely ``x_t -> 0`` iff ``sigma^2 > 2 mu``. Chapter 7.
    """
    ts = _check_ts(ts)
    if not isinstance(brownian_path, torch.Tensor) or brownian_path.shape[0] != ts.numel():
        raise ValueError("brownian_path must be a tensor of shape (len(ts), ...)")
    mu, sigma = _finite(mu, "mu"), _finite(sigma, "sigma")
    t = (ts - ts[0]).to(brownian_path.dtype).view(-1, *([1] * (brownian_path.ndim - 1)))
    x0 = torch.as_tensor(x0, dtype=brownian_path.dtype, device=brownian_path.device)
    return x0 * torch.exp((mu - 0.5 * sigma ** 2) * t + sigma * brownian_path)


# --------------------------------------------------------------------------- drifts
class ConvDrift(nn.Module):
    """The drift ``f(h, t; w)``: a small residual conv block with the time as an extra channel.

    ``GroupNorm -> ReLU -> conv3x3([h, t] -> hidden) -> GroupNorm -> ReLU ->
    conv3x3([., t] -> channels)``, the ODE function of Chen et al. (2018) (``ConcatConv``);
    GroupNorm has no running statistics, so train and eval modes compute the same ``f``.
    Seed 003 §2.3.4 ("f a neural network with several convolution blocks"). Chapter 7.
    """

    def __init__(self, channels: int, hidden: int | None = None, groups: int = 4) -> None:
        super().__init__()
        channels = _count(channels, "channels")
        hidden = channels if hidden is None else _count(hidden, "hidden")
        groups = _count(groups, "groups")
        self.channels = channels
        self.norm1 = nn.GroupNorm(math.gcd(groups, channels), channels)
        self.conv1 = nn.Conv2d(channels + 1, hidden, 3, padding=1)
        self.norm2 = nn.GroupNorm(math.gcd(groups, hidden), hidden)
        self.conv2 = nn.Conv2d(hidden + 1, channels, 3, padding=1)

    @staticmethod
    def _concat_time(t: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        tt = torch.as_tensor(t, dtype=h.dtype, device=h.device).expand(h.shape[0], 1, *h.shape[2:])
        return torch.cat([h, tt], dim=1)

    def forward(self, t, h: torch.Tensor) -> torch.Tensor:
        if h.ndim != 4 or h.shape[1] != self.channels:
            raise ValueError(f"ConvDrift expects hidden states (N, {self.channels}, H, W), got {tuple(h.shape)}")
        out = self.conv1(self._concat_time(t, F.relu(self.norm1(h))))
        return self.conv2(self._concat_time(t, F.relu(self.norm2(out))))


class LinearDrift(nn.Module):
    """A linear drift ``f(h, t) = h A^T + b`` on vectors ``(N, D)`` (tests and toy examples; chapter 7).

    ``A = a I`` with ``b = 0`` gives the toy SDE of eq. 2.38 (``a = 1``); its Lipschitz
    constant is ``||A||_2`` (Corollary 2.1).
    """

    def __init__(self, dim: int, a: float | None = None, bias: bool = False) -> None:
        super().__init__()
        dim = _count(dim, "dim")
        self.linear = nn.Linear(dim, dim, bias=bias)
        if a is not None:
            a = _finite(a, "a")
            with torch.no_grad():
                self.linear.weight.copy_(a * torch.eye(dim))
                if bias:
                    self.linear.bias.zero_()

    def forward(self, t, h: torch.Tensor) -> torch.Tensor:
        return self.linear(h)


# --------------------------------------------------------------------------- SDE block
class SDEBlock(StochasticModule):
    """Hidden-state jump-diffusion ``h_0 -> h_T`` solved by Euler-Maruyama (seed 003 eq. 2.30-2.37).

    Args:
        channels: channels of the hidden state (for the default :class:`ConvDrift`).
        drift: the drift module ``f(t, h)`` (default ``ConvDrift(channels)``).
        diffusion: ``"none"`` (Neural ODE), ``"additive"`` (``G = sigma``),
            ``"multiplicative"`` (``G = sigma h``) or ``"dropout"`` (``G = sigma f(h, t)``).
        sigma: diffusion scale (``>= 0``); for dropout use :func:`dropout_sigma`.
        t1, steps: integration range ``[0, t1]`` and number of Euler steps (the "depth").
        jump_rate: rate ``lambda >= 0`` of the Poisson jump times (0: no jump term).
        jump_p: ``P(Z = +1)`` of the jump directions.
        jump_size: ``J = jump_scale * f`` (``"drift"``), ``* h`` (``"state"``) or constant.
        jump_kind: directions per feature (``"dropout"``) or per sample (``"depth"``).
        stochastic: draw noise (default ``True``); see :mod:`robustkit.modes`.

    With ``stochastic = False`` (any ``training`` mode) the block is deterministic: no
    diffusion, and jumps replaced by their mean ``lambda (2p - 1) J dt``. Chapter 7.
    """

    def __init__(self, channels: int | None = None, *, drift: nn.Module | None = None,
                 diffusion: str = "none", sigma: float = 0.0, t1: float = 1.0, steps: int = 4,
                 jump_rate: float = 0.0, jump_p: float = 0.5, jump_size: str = "drift",
                 jump_scale: float = 1.0, jump_kind: str = "dropout", stochastic: bool = True) -> None:
        super().__init__(stochastic=stochastic)
        if drift is None:
            if channels is None:
                raise ValueError("give the number of channels (for the default ConvDrift) or a drift module")
            drift = ConvDrift(channels)
        elif not isinstance(drift, nn.Module):
            raise TypeError(f"drift must be an nn.Module computing f(t, h), got {type(drift).__name__}")
        self.drift = drift
        self.diffusion = _choice(diffusion, "diffusion", DIFFUSIONS)
        self.sigma = _finite(sigma, "sigma", low=0.0)
        self.t1 = _finite(t1, "t1", low=0.0, strict=True)
        self.steps = _count(steps, "steps")
        self.jump_rate = _finite(jump_rate, "jump_rate", low=0.0)
        self.jump_p = _finite(jump_p, "jump_p", low=0.0, high=1.0)
        self.jump_size = _choice(jump_size, "jump_size", JUMP_SIZES)
        self.jump_scale = _finite(jump_scale, "jump_scale")
        self.jump_kind = _choice(jump_kind, "jump_kind", JUMP_KINDS)

    def extra_repr(self) -> str:
        s = f"diffusion={self.diffusion!r}, sigma={self.sigma:g}, t1={self.t1:g}, steps={self.steps}"
        if self.jump_rate > 0:
            s += (f", jump_rate={self.jump_rate:g}, jump_p={self.jump_p:g}, jump_size={self.jump_size!r}, "
                  f"jump_scale={self.jump_scale:g}, jump_kind={self.jump_kind!r}")
        return s + f", stochastic={self.stochastic}"

    @property
    def noisy(self) -> bool:
        """True when a forward pass draws randomness (``stochastic`` on and a noise term present)."""
        return self.stochastic and ((self.diffusion != "none" and self.sigma > 0) or self.jump_rate > 0)

    def grid(self, *, dtype=torch.float32, device=None) -> torch.Tensor:
        """The solver's time grid ``0, dt, ..., t1`` (``steps + 1`` points)."""
        return time_grid(self.t1, self.steps, dtype=dtype, device=device)

    def forward(self, h: torch.Tensor, *, brownian: Brownian = None, generator: torch.Generator | None = None,
                return_path: bool = False) -> torch.Tensor:
        """Solve from ``h_0 = h`` to ``h_T``; the path ``(steps + 1, *h.shape)`` with ``return_path``.

        ``brownian`` (increments ``(steps, *h.shape)`` or ``bm(t0, t1)``) and ``generator``
        fix the randomness, so two inputs can be driven by the same noise (eq. 2.40).
        """
        if not isinstance(h, torch.Tensor) or not h.is_floating_point():
            raise TypeError("the hidden state must be a floating-point tensor")
        if h.ndim < 2 or h.shape[0] == 0:
            raise ValueError(f"the hidden state must be a non-empty batch (N, ...), got shape {tuple(h.shape)}")
        ts = self.grid(dtype=h.dtype, device=h.device)
        cache: dict = {}

        def f(t, y):
            out = self.drift(t, y)
            cache["y"], cache["f"] = y, out
            return out

        def f_at(t, y):  # f(t, y) of the current step, computed once per step
            return cache["f"] if cache.get("y") is y else self.drift(t, y)

        noise_on = self.stochastic
        diffusion = None
        if noise_on and self.diffusion != "none" and self.sigma > 0:
            sigma = self.sigma
            if self.diffusion == "additive":
                diffusion = lambda t, y: torch.full_like(y, sigma)  # noqa: E731
            elif self.diffusion == "multiplicative":
                diffusion = lambda t, y: sigma * y  # noqa: E731
            else:
                diffusion = lambda t, y: sigma * f_at(t, y)  # noqa: E731

        jump = None
        if self.jump_rate > 0:
            def size(t, y):
                if self.jump_size == "drift":
                    return self.jump_scale * f_at(t, y)
                if self.jump_size == "state":
                    return self.jump_scale * y
                return torch.full_like(y, self.jump_scale)

            if noise_on:
                def jump(t, y, dt):
                    _, sums = bernoulli_jumps(y.shape, float(dt), self.jump_rate, self.jump_p,
                                              kind=self.jump_kind, generator=generator,
                                              dtype=y.dtype, device=y.device)
                    return size(t, y) * sums
            else:
                mean_rate = self.jump_rate * (2 * self.jump_p - 1)
                if mean_rate != 0:
                    jump = lambda t, y, dt: size(t, y) * (mean_rate * dt)  # noqa: E731

        if isinstance(brownian, torch.Tensor):
            brownian = brownian.to(device=h.device, dtype=h.dtype)
        return euler_maruyama(f, h, ts, diffusion, brownian=brownian if diffusion is not None else None,
                              jump=jump, generator=generator, return_path=return_path)


# --------------------------------------------------------------------------- classifier
class NeuralSDEClassifier(nn.Module):
    """Image classifier ``Normalize -> conv stem -> SDEBlock -> head`` (seed 003 §2.3.4), chapter 7.

    Stem: ``conv3x3(C -> width) -> GroupNorm -> ReLU -> conv4x4/2(width -> width)``
    (halves the resolution); SDE block on ``(width, H/2, W/2)``; head:
    ``GroupNorm -> ReLU -> adaptive average pool to 4x4 -> Linear(16 width -> classes)``.
    Inputs are images in ``[0, 1]``; returns logits. The keyword arguments of the block
    (``diffusion``, ``sigma``, ``t1``, ``steps``, ``jump_*``) are passed through. The
    deployed prediction of a noisy model averages the softmax over draws (:func:`ttn_predict`).
    """

    def __init__(self, in_channels: int = 1, num_classes: int = 10, width: int = 16, *,
                 mean: float | Sequence[float] = 0.5, std: float | Sequence[float] = 0.5,
                 **block_kwargs) -> None:
        super().__init__()
        in_channels = _count(in_channels, "in_channels")
        num_classes = _count(num_classes, "num_classes", low=2)
        width = _count(width, "width")
        self.in_channels = in_channels
        self.normalize = Normalize(mean, std)
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, padding=1), nn.GroupNorm(math.gcd(4, width), width), nn.ReLU(),
            nn.Conv2d(width, width, 4, stride=2, padding=1))
        self.block = SDEBlock(width, **block_kwargs)
        self.head = nn.Sequential(nn.GroupNorm(math.gcd(4, width), width), nn.ReLU(),
                                  nn.AdaptiveAvgPool2d(4), nn.Flatten(), nn.Linear(16 * width, num_classes))

    def _check(self, x) -> None:
        if not isinstance(x, torch.Tensor) or not x.is_floating_point():
            raise TypeError("NeuralSDEClassifier expects a floating-point image tensor (N, C, H, W) in [0, 1]")
        if x.ndim != 4 or x.shape[1] != self.in_channels or x.shape[0] == 0 or min(x.shape[2:]) < 2:
            raise ValueError(f"expected images of shape (N, {self.in_channels}, H, W), got {tuple(x.shape)}")

    def initial_state(self, x: torch.Tensor) -> torch.Tensor:
        """``h_0``: the stem's features of the images ``x``."""
        self._check(x)
        return self.stem(self.normalize(x))

    def hidden_path(self, x: torch.Tensor, *, brownian: Brownian = None,
                    generator: torch.Generator | None = None) -> torch.Tensor:
        """Hidden states ``h_t`` at the solver's grid, shape ``(steps + 1, N, width, H/2, W/2)`` (Fig. 2.17)."""
        return self.block(self.initial_state(x), brownian=brownian, generator=generator, return_path=True)

    def forward(self, x: torch.Tensor, *, brownian: Brownian = None,
                generator: torch.Generator | None = None) -> torch.Tensor:
        h = self.block(self.initial_state(x), brownian=brownian, generator=generator)
        return self.head(h)


# --------------------------------------------------------------------------- test-time noise
def ttn_predict(model: nn.Module, x: torch.Tensor, samples: int = 10, *, batch_size: int = 256) -> torch.Tensor:
    """Test-time-noise ensemble: softmax averaged over ``samples`` noisy passes, ``(N, classes)``.

    Seed 003 §2.3.4 ("keeps randomness at testing time and takes the averaged prediction
    of multiple forward propagations", Table 2.5 "TTN"). Runs in eval mode without
    gradients; the ``stochastic`` switches are left as the caller set them (wrap in
    ``robustkit.modes.stochastic(model, False)`` for the prediction without TTN).
    Probabilities are averaged, not logits (GUIDE §5 trap 9). Chapter 7.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    samples = _count(samples, "samples")
    batch_size = _count(batch_size, "batch_size")
    if not isinstance(x, torch.Tensor) or x.ndim < 2 or x.shape[0] == 0:
        raise ValueError("x must be a non-empty batch tensor (N, ...)")
    dev = next((p.device for p in model.parameters()), x.device)
    out = []
    with eval_mode(model), torch.no_grad():
        for i in range(0, x.shape[0], batch_size):
            out.append(expected_logits(model, x[i:i + batch_size].to(dev), samples).exp().to(x.device))
    return torch.cat(out)


def ttn_accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, samples: int = 10, *,
                 batch_size: int = 256) -> float:
    """Accuracy of the test-time-noise ensemble :func:`ttn_predict` on ``(x, y)``. Chapter 7."""
    if not isinstance(y, torch.Tensor) or y.shape != x.shape[:1]:
        raise ValueError("y must be a label tensor of shape (N,) matching x")
    probs = ttn_predict(model, x, samples, batch_size=batch_size)
    return (probs.argmax(1).cpu() == y.cpu()).float().mean().item()
