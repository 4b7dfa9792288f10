"""Position encoders for transformers: sinusoidal, learned, FLOATER and recurrent.

All encoders follow seed 003 §4.1 (X. Liu, *Building Trustworthy Machine Learning Models*,
ch. 4, "Learning to encode position"):

- :class:`SinusoidalEncoder`: the fixed encoding of eq. (4.6) at the input block, or the
  per-block variant of eq. (4.7) ``p_i^(n) = s(i) + s(n)``;
- :class:`LearnedEncoder`: a learned position embedding ``(n_blocks, max_len, d)``; not
  inductive, so positions beyond ``max_len`` raise a ``ValueError``;
- :class:`FloaterEncoder`: FLOATER, positions read off an ODE ``dp/dt = h(t, p; theta)``
  (eq. 4.8) at ``t_i = i * dt``, one dynamics shared by every block with one initial value
  per block (eq. 4.10);
- :class:`FloaterBiasEncoder`: the *compatible* form (eq. 4.11-4.13): the input keeps the
  sinusoidal encoding and the ODE drives position-dependent biases of the queries, keys
  and values of every block; ``h = 0`` and ``b(0) = 0`` give back the sinusoidal
  transformer exactly (warm start);
- :class:`RecurrentEncoder`: the RNN / GRU / LSTM alternatives of Table 4.6 (eq. 4.14).

Every encoder maps ``(length, offset)`` to the encodings of positions
``offset + 1, ..., offset + length`` (1-based as in eq. 4.6), one slice per block:
``(n_blocks, length, d_model)`` for additive encoders (``injection == "add"``) and
``(n_blocks, length, 3 * d_model)`` for query/key/value biases (``injection == "qkv"``).
Encoders built with ``n_blocks=1`` inject at the input block only, with ``n_blocks`` equal
to the transformer's depth at every block (Table 4.2).

The recurrent encoders (FLOATER, RNNs) cache their trajectory: in eval mode a trajectory is
computed once (without gradients) and reused, extended when a longer sequence arrives and
recomputed only when a parameter changed (tracked through the tensors' version counters),
so inference has no ODE overhead (§4.1.4, "Remarks on training and testing efficiency").
In training mode ``refresh_every = k > 1`` recomputes the trajectory (with gradients) on
every k-th call and reuses the detached one in between: the paper's training-time trick.

Used by: chapter 9, *Learning to encode position*.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn

from .ode import rk4_solve

__all__ = [
    "sinusoidal_frequencies",
    "sinusoidal_encoding",
    "sinusoidal_velocity",
    "PositionEncoder",
    "SinusoidalEncoder",
    "LearnedEncoder",
    "FloaterDynamics",
    "FloaterEncoder",
    "FloaterBiasEncoder",
    "RecurrentEncoder",
    "build_encoder",
    "ENCODERS",
]

DEFAULT_C = 1e-4


# --------------------------------------------------------------------------- helpers
def _check_int(value, name: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        kind = "positive" if minimum == 1 else f">= {minimum}"
        raise ValueError(f"{name} must be an integer {kind}, got {value!r}")
    return int(value)


def _check_d_model(d_model) -> int:
    d_model = _check_int(d_model, "d_model")
    if d_model % 2:
        raise ValueError(f"d_model must be even (sine/cosine pairs), got {d_model}")
    return d_model


def _check_positive_float(value, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")
    return float(value)


def sinusoidal_frequencies(d_model: int, c: float = DEFAULT_C, *, dtype=torch.float32,
                           device=None) -> torch.Tensor:
    """The angular frequencies ``omega_k = c^(2k/d)``, ``k = 0..d/2-1`` of eq. (4.6).

    With ``c = 1e-4`` they go from 1 down to about ``1e-4`` (wavelengths ``2*pi`` to
    ``2*pi*10^4``). Seed 003 §4.1.2, eq. (4.6); chapter 9.
    """
    d_model = _check_d_model(d_model)
    if not (0 < c < 1):
        raise ValueError(f"c must lie in (0, 1) (the paper uses 1e-4), got {c!r}")
    k = torch.arange(0, d_model, 2, dtype=torch.float64, device=device)
    return (c ** (k / d_model)).to(dtype)


def _positions(positions, dtype, device) -> torch.Tensor:
    if isinstance(positions, bool):
        raise TypeError("positions must be an int (length) or a 1-D tensor of positions")
    if isinstance(positions, int):
        _check_int(positions, "length", minimum=0)
        return torch.arange(1, positions + 1, dtype=dtype, device=device)
    positions = torch.as_tensor(positions, device=device)
    if positions.ndim != 1:
        raise ValueError(f"positions must be 1-D, got shape {tuple(positions.shape)}")
    return positions.to(dtype)


def sinusoidal_encoding(positions, d_model: int, c: float = DEFAULT_C, *, dtype=torch.float32,
                        device=None) -> torch.Tensor:
    """The sinusoidal position encoding of eq. (4.6): ``(L, d_model)``.

    ``p_i[j] = sin(i c^(j/d))`` for even ``j`` and ``cos(i c^((j-1)/d))`` for odd ``j``.
    ``positions`` is a length ``L`` (positions ``1..L``) or a 1-D tensor of (possibly
    fractional) positions. Seed 003 §4.1.2, eq. (4.6) {Vaswani et al. 2017}; chapter 9.
    """
    pos = _positions(positions, torch.float64, device)
    omega = sinusoidal_frequencies(d_model, c, dtype=torch.float64, device=pos.device)
    angle = pos[:, None] * omega[None, :]
    out = torch.empty(pos.numel(), d_model, dtype=torch.float64, device=pos.device)
    out[:, 0::2] = torch.sin(angle)
    out[:, 1::2] = torch.cos(angle)
    return out.to(dtype)


def sinusoidal_velocity(t: torch.Tensor, d_model: int, c: float = DEFAULT_C) -> torch.Tensor:
    """The dynamics ``h(t)`` of eq. (4.9) whose ODE solution is the sinusoidal encoding.

    ``dp[j]/dt = omega cos(t omega)`` for even ``j`` and ``-omega sin(t omega)`` for odd ``j``
    (``omega = c^(j/d)``, resp. ``c^((j-1)/d)``), so ``p(0) = (0, 1, 0, 1, ...)`` and
    ``dp/dt = h(t)`` give ``p(i) = `` eq. (4.6). (The seed prints the factor as
    ``c^(-j/d)``; the derivative of ``sin(t c^(j/d))`` is ``c^(j/d) cos(t c^(j/d))``.)
    ``t`` is a scalar tensor; the result has shape ``(d_model,)`` and ``t``'s dtype.
    Seed 003 §4.1.3, eq. (4.9); chapter 9.
    """
    t = torch.as_tensor(t)
    dtype = t.dtype if t.is_floating_point() else torch.float32
    omega = sinusoidal_frequencies(d_model, c, dtype=dtype, device=t.device)
    out = torch.empty(*t.shape, d_model, dtype=dtype, device=t.device)
    angle = t[..., None].to(dtype) * omega
    out[..., 0::2] = omega * torch.cos(angle)
    out[..., 1::2] = -omega * torch.sin(angle)
    return out


# --------------------------------------------------------------------------- base class
class PositionEncoder(nn.Module):
    """Base class: ``encoder(length, offset=0)`` gives the encodings of one sequence.

    Positions are ``offset + 1 .. offset + length``; the result has shape
    ``(n_blocks, length, width)`` with ``width = d_model`` for additive encoders
    (``injection = "add"``, eq. 4.5: ``Phi_n(x) = x + p^(n)``) and ``3 * d_model`` for
    query/key/value biases (``injection = "qkv"``, eq. 4.12). ``inductive`` says whether
    any length is accepted (seed 003 Table 4.1). Chapter 9.
    """

    injection = "add"
    inductive = True

    def __init__(self, d_model: int, n_blocks: int = 1) -> None:
        super().__init__()
        self.d_model = _check_d_model(d_model)
        self.n_blocks = _check_int(n_blocks, "n_blocks")
        # an empty buffer that follows .to(device/dtype), for encoders without parameters
        self.register_buffer("_anchor", torch.zeros(0), persistent=False)

    @property
    def width(self) -> int:
        """Width of one encoding vector: ``d_model`` (additive) or ``3 d_model`` (q/k/v biases)."""
        return 3 * self.d_model if self.injection == "qkv" else self.d_model

    def _check_request(self, length, offset) -> tuple[int, int]:
        length = _check_int(length, "length")
        offset = _check_int(offset, "offset", minimum=0)
        return length, offset

    def _device_dtype(self):
        for t in self.parameters():
            return t.device, t.dtype
        for t in self.buffers():
            return t.device, t.dtype
        return torch.device("cpu"), torch.float32

    def extra_repr(self) -> str:
        return f"d_model={self.d_model}, n_blocks={self.n_blocks}"


class SinusoidalEncoder(PositionEncoder):
    """Fixed sinusoidal encoding: eq. (4.6) at the input, or eq. (4.7) at every block.

    With ``block_term=True`` (default when ``n_blocks > 1``) block ``n = 1..N`` receives
    ``s(i) + s(n)``, the per-block encoding of eq. (4.7) {Dehghani et al. 2018}; with
    ``n_blocks=1`` and ``block_term=False`` it is eq. (4.6). No parameters; inductive.
    Seed 003 §4.1.2; chapter 9.
    """

    def __init__(self, d_model: int, n_blocks: int = 1, block_term: bool | None = None,
                 c: float = DEFAULT_C) -> None:
        super().__init__(d_model, n_blocks)
        self.block_term = (n_blocks > 1) if block_term is None else bool(block_term)
        sinusoidal_frequencies(d_model, c)  # validates c
        self.c = float(c)

    def forward(self, length: int, offset: int = 0) -> torch.Tensor:
        length, offset = self._check_request(length, offset)
        device, dtype = self._device_dtype()
        pos = torch.arange(offset + 1, offset + length + 1, device=device)
        enc = sinusoidal_encoding(pos, self.d_model, self.c, dtype=dtype, device=device)
        enc = enc.unsqueeze(0).expand(self.n_blocks, -1, -1)
        if self.block_term:
            blocks = torch.arange(1, self.n_blocks + 1, device=device)
            enc = enc + sinusoidal_encoding(blocks, self.d_model, self.c, dtype=dtype,
                                            device=device)[:, None, :]
        return enc.contiguous()

    def extra_repr(self) -> str:
        return super().extra_repr() + f", block_term={self.block_term}"


class LearnedEncoder(PositionEncoder):
    """Learned position embedding ``(n_blocks, max_len, d_model)`` {Devlin et al. 2018}.

    Not inductive (seed 003 Table 4.1): a position beyond ``max_len`` raises a
    ``ValueError``; positions inside ``max_len`` but never seen in training keep their
    random initial values (``N(0, init_std^2)``). ``n_blocks * max_len * d_model``
    parameters (§4.1.4: "L_max d N"). Seed 003 §4.1.2; chapter 9.
    """

    inductive = False

    def __init__(self, d_model: int, max_len: int, n_blocks: int = 1, init_std: float = 0.5) -> None:
        super().__init__(d_model, n_blocks)
        self.max_len = _check_int(max_len, "max_len")
        init_std = _check_positive_float(init_std, "init_std")
        self.weight = nn.Parameter(torch.randn(n_blocks, self.max_len, d_model) * init_std)

    def forward(self, length: int, offset: int = 0) -> torch.Tensor:
        length, offset = self._check_request(length, offset)
        if offset + length > self.max_len:
            raise ValueError(
                f"LearnedEncoder holds {self.max_len} positions (max_len) but position "
                f"{offset + length} was requested (length {length}, offset {offset}): a learned "
                "embedding is not inductive; build it with a larger max_len or use an inductive "
                "encoder (sinusoidal, FLOATER, recurrent)")
        return self.weight[:, offset:offset + length]

    def extra_repr(self) -> str:
        return super().extra_repr() + f", max_len={self.max_len}"


# --------------------------------------------------------------------------- cached trajectories
class _TrajectoryEncoder(PositionEncoder):
    """Encoders whose positions come from a recurrence: cached trajectories (see module doc)."""

    def __init__(self, d_model: int, n_blocks: int, cache: bool = True, refresh_every: int = 1) -> None:
        super().__init__(d_model, n_blocks)
        self.cache = bool(cache)
        self.refresh_every = _check_int(refresh_every, "refresh_every")
        self._traj = None       # (n_blocks, n, width), detached, positions 1..n
        self._state = None      # whatever _compute needs to extend the trajectory
        self._key = None
        self._calls = 0
        self.n_solves = 0       # how many times the recurrence ran (for benchmarks and tests)

    def clear_cache(self) -> None:
        """Forget the cached trajectory."""
        self._traj, self._state, self._key = None, None, None

    def _param_key(self):
        return tuple((id(p), p._version, p.device, p.dtype) for p in self.parameters())

    def _compute(self, n: int, previous=None):
        """Return ``(trajectory (n_blocks, n, width), state)``; may extend ``previous``."""
        raise NotImplementedError

    def forward(self, length: int, offset: int = 0) -> torch.Tensor:
        length, offset = self._check_request(length, offset)
        need = offset + length
        if self.training and torch.is_grad_enabled():
            self._calls += 1
            reuse = (self.refresh_every > 1 and self._traj is not None and self._traj.shape[1] >= need
                     and (self._calls - 1) % self.refresh_every != 0)
            if reuse:
                traj = self._traj
            else:
                traj, state = self._compute(need)
                self.n_solves += 1
                self._traj, self._key = traj.detach(), self._param_key()
                self._state = None if state is None else tuple(s.detach() for s in state)
            return traj[:, offset:need]
        if not self.cache:
            traj, _ = self._compute(need)
            self.n_solves += 1
            return traj[:, offset:need]
        key = self._param_key()
        if self._traj is None or self._key != key:
            self.clear_cache()
        if self._traj is None or self._traj.shape[1] < need:
            with torch.no_grad():
                previous = None if self._traj is None else (self._traj, self._state)
                traj, state = self._compute(need, previous)
            self.n_solves += 1
            self._traj, self._state, self._key = traj, state, key
        return self._traj[:, offset:need]

    def train(self, mode: bool = True):
        self._calls = 0
        return super().train(mode)


class FloaterDynamics(nn.Module):
    """The FLOATER flow ``h(t, p) = W2 tanh(W1 p + w_t t + b1) + b2`` (eq. 4.8).

    "Two FFN and one nonlinearity layers" (seed 003 §4.1.4); ``2 d H + 2 H + d``
    parameters for width ``d`` and hidden size ``H`` (``2 d H + H + d`` for an autonomous
    flow, ``time_input=False``: ``h(p)`` only). ``zero_init=True`` sets ``W2 = 0``,
    ``b2 = 0`` so that ``h == 0`` (the compatible initialization of eq. 4.13);
    ``out_scale`` shrinks the random initialization of ``W2`` otherwise ("initialize
    FLOATER with smaller weights"). Seed 003 §4.1.3; chapter 9.
    """

    def __init__(self, d_model: int, hidden: int, zero_init: bool = False, out_scale: float = 1.0,
                 time_input: bool = True) -> None:
        super().__init__()
        self.lin1 = nn.Linear(d_model, hidden)
        self.time = nn.Parameter(torch.randn(hidden)) if time_input else None
        self.lin2 = nn.Linear(hidden, d_model)
        with torch.no_grad():
            if zero_init:
                self.lin2.weight.zero_()
                self.lin2.bias.zero_()
            else:
                self.lin2.weight.mul_(out_scale)
                self.lin2.bias.mul_(out_scale)

    def forward(self, t: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
        z = self.lin1(p)
        if self.time is not None:
            z = z + t * self.time
        return self.lin2(torch.tanh(z))


class FloaterEncoder(_TrajectoryEncoder):
    """FLOATER: positions ``p^(n)_i = p^(n)(i dt)`` of the flow ``dp/dt = h(t, p; theta)``.

    One dynamics :class:`FloaterDynamics` (``hidden`` units, default ``d_model``) is shared
    by all blocks (eq. 4.10) and each block ``n`` has its own initial value ``p^(n)(0)``
    (``N(0, init_std^2)``), so all blocks are solved as one batched ODE with fixed-step RK4
    (:func:`robustkit.sequence.ode.rk4_solve`, ``substeps`` RK4 steps per position).
    Parameters: ``2 d H + 2 H + d + n_blocks d``. Inductive: any length (the trajectory is
    extended on demand). Caching: see the module docstring. Seed 003 §4.1.3, eq. (4.8),
    (4.10); chapter 9.
    """

    _streams = 1

    def __init__(self, d_model: int, n_blocks: int = 1, hidden: int | None = None, dt: float = 0.1,
                 substeps: int = 1, init_std: float = 1.0, zero_init: bool = False,
                 out_scale: float = 1.0, time_input: bool = True, cache: bool = True,
                 refresh_every: int = 1) -> None:
        super().__init__(d_model, n_blocks, cache=cache, refresh_every=refresh_every)
        self.hidden = _check_int(hidden if hidden is not None else d_model, "hidden")
        self.dt = _check_positive_float(dt, "dt")
        self.substeps = _check_int(substeps, "substeps")
        if isinstance(init_std, bool) or not isinstance(init_std, (int, float)) or init_std < 0:
            raise ValueError(f"init_std must be a non-negative number, got {init_std!r}")
        self.dynamics = FloaterDynamics(d_model, self.hidden, zero_init=zero_init, out_scale=out_scale,
                                        time_input=time_input)
        shape = (n_blocks, self._streams, d_model) if self._streams > 1 else (n_blocks, d_model)
        self.initial = nn.Parameter(torch.randn(shape) * init_std)

    def trajectory_times(self, n: int, start: int = 0) -> torch.Tensor:
        """The grid ``t_i = i dt`` for ``i = start..n`` (float64 arithmetic, then the parameters' dtype)."""
        device, dtype = self._device_dtype()
        return (torch.arange(start, n + 1, dtype=torch.float64, device=device) * self.dt).to(dtype)

    def _compute(self, n: int, previous=None):
        if previous is not None and previous[0] is not None and previous[1] is not None:
            old, (last,) = previous
            start = old.shape[1]
            y = rk4_solve(self.dynamics, last, self.trajectory_times(n, start), self.substeps)[1:]
            new = self._to_output(y)
            traj = torch.cat([old, new], dim=1)
            return traj, (y[-1],)
        y = rk4_solve(self.dynamics, self.initial, self.trajectory_times(n), self.substeps)[1:]
        return self._to_output(y), (y[-1],)

    def _to_output(self, y: torch.Tensor) -> torch.Tensor:
        # y: (n, n_blocks, [streams,] d) -> (n_blocks, n, streams * d)
        y = y.movedim(0, 1)
        return y.reshape(y.shape[0], y.shape[1], -1)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", hidden={self.hidden}, dt={self.dt}, substeps={self.substeps}"


class FloaterBiasEncoder(FloaterEncoder):
    """The compatible FLOATER of eq. (4.11)-(4.13): ODE-driven query/key/value biases.

    The input block keeps the fixed sinusoidal encoding (eq. 4.6, attribute ``base``);
    block ``n`` adds ``b^(n)_i = b^(n)(i dt)`` to its queries, keys and values, where the
    three bias streams of every block follow the shared dynamics ``h`` (eq. 4.13) from
    initial values ``b^(n)(0)``. Defaults: ``b(0) = 0`` and ``h == 0`` (``zero_init``), so
    the model *is* the sinusoidal transformer until training moves it (warm start).
    Output ``(n_blocks, length, 3 d)`` in the ``[q | k | v]`` layout of ``in_proj_bias``.
    Parameters: ``2 d H + 2 H + d + 3 n_blocks d``. Seed 003 §4.1.3; chapter 9.
    """

    injection = "qkv"
    _streams = 3

    def __init__(self, d_model: int, n_blocks: int = 1, hidden: int | None = None, dt: float = 0.1,
                 substeps: int = 1, init_std: float = 0.0, zero_init: bool = True,
                 out_scale: float = 1.0, time_input: bool = True, cache: bool = True,
                 refresh_every: int = 1, c: float = DEFAULT_C) -> None:
        super().__init__(d_model, n_blocks, hidden=hidden, dt=dt, substeps=substeps,
                         init_std=init_std, zero_init=zero_init, out_scale=out_scale,
                         time_input=time_input, cache=cache, refresh_every=refresh_every)
        self.base = SinusoidalEncoder(d_model, 1, block_term=False, c=c)


class RecurrentEncoder(_TrajectoryEncoder):
    """Position encodings produced by an RNN, GRU or LSTM (seed 003 eq. 4.14, Table 4.6).

    ``p_i`` is the recurrent network's output at step ``i`` for the input ``z_i``: the
    scalar ``i * dt`` (``inputs="scalar"``) or the sinusoidal vector of position ``i`` of
    width ``d_in`` (``inputs="vector"``, "Vectorize(i)"). Each block has its own learned
    initial hidden state (cell state zero for the LSTM), the recurrent weights are shared.
    Parameters: those of ``torch.nn.RNN/GRU/LSTM(d_in, d_model, num_layers)`` plus
    ``n_blocks * num_layers * d_model``. Inductive; cached like FLOATER. Chapter 9.
    """

    CELLS = {"rnn": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM}

    def __init__(self, d_model: int, n_blocks: int = 1, cell: str = "rnn", num_layers: int = 1,
                 inputs: str = "scalar", d_in: int | None = None, dt: float = 0.1,
                 init_std: float = 0.5, cache: bool = True, refresh_every: int = 1) -> None:
        super().__init__(d_model, n_blocks, cache=cache, refresh_every=refresh_every)
        cell = str(cell).lower()
        if cell not in self.CELLS:
            raise ValueError(f"cell must be one of {sorted(self.CELLS)}, got {cell!r}")
        if inputs not in ("scalar", "vector"):
            raise ValueError(f"inputs must be 'scalar' or 'vector', got {inputs!r}")
        self.cell, self.inputs = cell, inputs
        self.num_layers = _check_int(num_layers, "num_layers")
        self.d_in = 1 if inputs == "scalar" else _check_d_model(d_in if d_in is not None else d_model)
        self.dt = _check_positive_float(dt, "dt")
        self.rnn = self.CELLS[cell](self.d_in, d_model, num_layers=self.num_layers, batch_first=True)
        self.initial = nn.Parameter(torch.randn(self.num_layers, n_blocks, d_model) * init_std)

    def _inputs(self, n: int) -> torch.Tensor:
        device, dtype = self._device_dtype()
        if self.inputs == "scalar":
            z = (torch.arange(1, n + 1, dtype=torch.float64, device=device) * self.dt)[:, None]
        else:
            z = sinusoidal_encoding(n, self.d_in, dtype=torch.float64, device=device)
        return z.to(dtype).unsqueeze(0).expand(self.n_blocks, -1, -1)

    def _compute(self, n: int, previous=None):
        z = self._inputs(n)
        h0 = self.initial
        if self.cell == "lstm":
            out, _ = self.rnn(z, (h0, torch.zeros_like(h0)))
        else:
            out, _ = self.rnn(z, h0)
        return out, None

    def extra_repr(self) -> str:
        return (super().extra_repr() + f", cell={self.cell}, num_layers={self.num_layers}, "
                f"inputs={self.inputs}, d_in={self.d_in}")


ENCODERS = ("none", "sinusoidal", "learned", "floater", "floater_bias", "rnn", "gru", "lstm")


def build_encoder(name: str, d_model: int, n_blocks: int = 1, max_len: int | None = None,
                  **kwargs) -> PositionEncoder | None:
    """Build an encoder by name: one of :data:`ENCODERS` (``"none"`` gives ``None``).

    ``max_len`` is required by ``"learned"``; ``"rnn"``, ``"gru"``, ``"lstm"`` build a
    :class:`RecurrentEncoder` with that cell; other keyword arguments go to the class.
    Chapter 9.
    """
    key = str(name).strip().lower()
    if key not in ENCODERS:
        raise ValueError(f"unknown encoder {name!r}: choose one of {', '.join(ENCODERS)}")
    if key == "none":
        return None
    if key == "sinusoidal":
        return SinusoidalEncoder(d_model, n_blocks, **kwargs)
    if key == "learned":
        if max_len is None:
            raise ValueError("the learned encoder needs max_len")
        return LearnedEncoder(d_model, max_len, n_blocks, **kwargs)
    if key == "floater":
        return FloaterEncoder(d_model, n_blocks, **kwargs)
    if key == "floater_bias":
        return FloaterBiasEncoder(d_model, n_blocks, **kwargs)
    return RecurrentEncoder(d_model, n_blocks, cell=key, **kwargs)
