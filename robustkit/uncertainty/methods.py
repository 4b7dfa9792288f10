"""Uncertainty estimators of seed 003 ch. 5: ensembles, Bayesian approximations, FastEnsemble.

Every method ends as a :class:`Predictor`, whose ``samples(x)`` returns the outputs of
``S`` members / posterior draws, shape ``(S, N, ...)`` (logits for classifiers, images
for the U-Net). :func:`predict_proba` averages *probabilities* over the draws (never
logits), :func:`predict_mean_var` gives the mean and the per-pixel variance (the
uncertainty map of the image-to-image benchmark).

- naive deep ensemble (Lakshminarayanan et al. 2017): :func:`train_naive_ensemble`;
- MC dropout (Gal & Ghahramani 2016): :class:`MCDropoutPredictor`, :func:`mc_dropout`;
- SGLD (Welling & Teh 2011): :class:`SGLD`, :func:`train_sgld` (burn-in without noise,
  then sampling with noise, as in seed 003 §5.2);
- SVI / Bayes by Backprop (Blundell et al. 2015): :func:`train_svi` with the layers of
  :mod:`robustkit.defenses.bayesian`, :class:`StochasticPredictor`;
- snapshot ensembles (Huang et al. 2017): :func:`cyclic_cosine_lr`, :func:`train_snapshot`;
- BatchEnsemble (Wen et al. 2020): :class:`BatchEnsemble` (rank-1 factors);
- FastEnsemble (seed 003 Algorithm 10, eq. 5.2): :func:`fast_ensemble_loss`,
  :func:`train_fast_ensemble`.

Training functions take ``data = (inputs, targets)`` tensors and a per-example-mean
``loss(outputs, targets)`` (``F.cross_entropy`` or ``F.mse_loss``), and return a
:class:`robustkit.train.History` whose ``epoch_time`` records the wall time of each
phase, so :func:`robustkit.train.cached_fit` keeps the training cost with the weights.

Used by: chapter 10.
"""
from __future__ import annotations

import copy
import math
import time
from contextlib import contextmanager
from typing import Callable, Iterator, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..data import make_loader
from ..defenses.bayesian import bayesian_layers, kl_divergence
from ..modes import eval_mode, stochastic
from ..train import History
from .nets import MCDropout, dropout_modules

__all__ = ["Predictor", "Ensemble", "MCDropoutPredictor", "StochasticPredictor", "BatchEnsemble",
           "BELinear", "BEConv2d", "mc_dropout", "predict_proba", "predict_mean_var",
           "train_model", "train_naive_ensemble", "SGLD", "train_sgld", "train_svi",
           "cyclic_cosine_lr", "train_snapshot", "train_batch_ensemble", "l1_distance",
           "fast_ensemble_loss", "train_fast_ensemble"]

Loss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


# ----------------------------------------------------------------------------- predictors
def _check_count(value, name: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return value


class Predictor(nn.Module):
    """Base of the predictive distributions: ``samples(x) -> (S, N, ...)`` outputs.

    ``forward(x)`` returns ``log`` of the probabilities averaged over the draws (so a
    predictor behaves like a classifier returning logits whose softmax is the predictive
    distribution). ``samples`` runs in batches of ``batch_size`` without gradients.
    """

    batch_size: int = 512

    def _draws(self, x: torch.Tensor) -> torch.Tensor:  # (S, n, ...) for one batch
        raise NotImplementedError

    def samples(self, x: torch.Tensor, batch_size: int | None = None) -> torch.Tensor:
        if not isinstance(x, torch.Tensor) or x.ndim < 2 or x.shape[0] == 0:
            raise ValueError(f"x must be a non-empty batch tensor, got {getattr(x, 'shape', type(x))}")
        bs = _check_count(batch_size or self.batch_size, "batch_size")
        with torch.no_grad():
            return torch.cat([self._draws(x[i:i + bs]) for i in range(0, x.shape[0], bs)], 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.samples(x).softmax(-1).mean(0).clamp_min(1e-30).log()


class Ensemble(Predictor):
    """An ensemble of ``members`` (same or different architectures), each run in eval mode.

    Used for the naive deep ensemble, SGLD samples, snapshots and FastEnsemble members.
    The members are an ``nn.ModuleList``, so the whole ensemble is one ``state_dict``
    (checkpointed by :func:`robustkit.train.cached_fit`).
    """

    def __init__(self, members: Sequence[nn.Module]) -> None:
        super().__init__()
        members = list(members)
        if not members or not all(isinstance(m, nn.Module) for m in members):
            raise ValueError("an Ensemble needs at least one nn.Module member")
        self.members = nn.ModuleList(members)

    def __len__(self) -> int:
        return len(self.members)

    def _draws(self, x):
        outs = []
        for m in self.members:
            with eval_mode(m), stochastic(m, False):
                outs.append(m(x))
        return torch.stack(outs)


@contextmanager
def mc_dropout(model: nn.Module) -> Iterator[nn.Module]:
    """Model in eval mode with **only** its dropout layers random (MC dropout).

    :class:`MCDropout` layers get ``stochastic=True``; PyTorch ``nn.Dropout*`` layers (which
    have no other switch) are put in train mode; everything else (BatchNorm!) stays in
    eval mode. Every flag is restored on exit. Raises ``ValueError`` if the model has no
    dropout layer.
    """
    drops = dropout_modules(model)
    if not drops:
        raise ValueError(f"{type(model).__name__} has no dropout layer: MC dropout needs one")
    with eval_mode(model):
        saved = [(m, m.stochastic) for m in drops if isinstance(m, MCDropout)]
        try:
            for m in drops:
                if isinstance(m, MCDropout):
                    m.stochastic = True
                else:
                    m.train()
            yield model
        finally:
            for m, flag in saved:
                m.stochastic = flag


class MCDropoutPredictor(Predictor):
    """MC dropout (Gal & Ghahramani 2016): ``n_samples`` passes with dropout on, BN in eval."""

    def __init__(self, model: nn.Module, n_samples: int = 20) -> None:
        super().__init__()
        self.model = model
        self.n_samples = _check_count(n_samples, "n_samples")
        if not dropout_modules(model):
            raise ValueError(f"{type(model).__name__} has no dropout layer: MC dropout needs one")

    def _draws(self, x):
        with mc_dropout(self.model):
            return torch.stack([self.model(x) for _ in range(self.n_samples)])


class StochasticPredictor(Predictor):
    """``n_samples`` passes of a model with stochastic layers on (e.g. SVI / Bayesian weights)."""

    def __init__(self, model: nn.Module, n_samples: int = 20) -> None:
        super().__init__()
        self.model = model
        self.n_samples = _check_count(n_samples, "n_samples")

    def _draws(self, x):
        with eval_mode(self.model), stochastic(self.model, True):
            return torch.stack([self.model(x) for _ in range(self.n_samples)])


def predict_proba(predictor: Predictor, x: torch.Tensor, batch_size: int | None = None) -> torch.Tensor:
    """Predictive probabilities ``mean_s softmax(f_s(x))`` ``(N, K)``: ensembles average probabilities."""
    if not isinstance(predictor, Predictor):
        raise TypeError(f"expected a Predictor, got {type(predictor).__name__}")
    return predictor.samples(x, batch_size).softmax(-1).mean(0)


def predict_mean_var(predictor: Predictor, x: torch.Tensor,
                     batch_size: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and variance over the draws of a regression output (per pixel for the U-Net)."""
    if not isinstance(predictor, Predictor):
        raise TypeError(f"expected a Predictor, got {type(predictor).__name__}")
    s = predictor.samples(x, batch_size)
    return s.mean(0), s.var(0, unbiased=False)


# ----------------------------------------------------------------------------- BatchEnsemble
class _BEMixin(nn.Module):
    """Rank-1 fast weights: member i uses ``W_i = W o (s_i r_i^T)`` (Wen et al. 2020)."""

    def _init_factors(self, n_members: int, cin: int, cout: int, bias: torch.Tensor | None,
                      generator: torch.Generator | None) -> None:
        self.n_members = n_members
        # random-sign initialization of the fast weights (Wen et al. 2020, appendix)
        sign = lambda n, d: torch.randint(0, 2, (n, d), generator=generator).float() * 2 - 1  # noqa: E731
        self.r = nn.Parameter(sign(n_members, cin))
        self.s = nn.Parameter(sign(n_members, cout))
        self.member_bias = nn.Parameter(
            bias.detach().clone().repeat(n_members, 1) if bias is not None else torch.zeros(n_members, cout))

    def _split(self, x):
        if x.shape[0] % self.n_members:
            raise ValueError(f"batch size {x.shape[0]} is not a multiple of n_members={self.n_members}: "
                             "BatchEnsemble inputs are tiled (member-major)")
        return x.reshape(self.n_members, x.shape[0] // self.n_members, *x.shape[1:])


class BELinear(_BEMixin):
    """BatchEnsemble linear layer: ``y = ((x o r_i) W^T) o s_i + b_i`` for member ``i``."""

    def __init__(self, linear: nn.Linear, n_members: int, generator=None) -> None:
        super().__init__()
        self.weight = linear.weight
        self._init_factors(n_members, linear.in_features, linear.out_features, linear.bias, generator)

    def forward(self, x):
        xs = self._split(x)                                         # (M, n, in)
        shape = (self.n_members, 1, -1)
        y = F.linear(xs * self.r.view(shape), self.weight) * self.s.view(shape) + self.member_bias.view(shape)
        return y.reshape(x.shape[0], -1)


class BEConv2d(_BEMixin):
    """BatchEnsemble convolution: input channels scaled by ``r_i``, output channels by ``s_i``."""

    def __init__(self, conv: nn.Conv2d, n_members: int, generator=None) -> None:
        super().__init__()
        self.conv = conv
        self._init_factors(n_members, conv.in_channels, conv.out_channels, conv.bias, generator)

    def forward(self, x):
        xs = self._split(x)                                         # (M, n, C, H, W)
        shape = (self.n_members, 1, -1, 1, 1)
        h = (xs * self.r.view(shape)).flatten(0, 1)
        h = F.conv2d(h, self.conv.weight, None, self.conv.stride, self.conv.padding,
                     self.conv.dilation, self.conv.groups)
        h = h.reshape(self.n_members, -1, *h.shape[1:])
        return (h * self.s.view(shape) + self.member_bias.view(shape)).flatten(0, 1)


class BatchEnsemble(Predictor):
    """BatchEnsemble (Wen et al. 2020) built from a network by replacing its layers.

    Every ``nn.Linear`` / ``nn.Conv2d`` of (a deep copy of) ``model`` becomes a
    :class:`BELinear` / :class:`BEConv2d` sharing the slow weight ``W`` between the
    ``n_members`` members, each with its own rank-1 factors ``r_i, s_i`` and bias: member
    ``i`` uses ``W o (s_i r_i^T)``, seed 003 §5.2. ``forward(x)`` tiles the batch
    ``n_members`` times (member-major) and returns the tiled outputs ``(M * N, ...)``
    (training: the loss is taken on the tiled targets); ``samples(x)`` reshapes them to
    ``(M, N, ...)``. Other layers (BatchNorm, dropout) are shared.
    """

    def __init__(self, model: nn.Module, n_members: int = 4, seed: int = 0) -> None:
        super().__init__()
        self.n_members = _check_count(n_members, "n_members")
        self.net = copy.deepcopy(model)
        g = torch.Generator().manual_seed(int(seed))
        replaced = self._convert(self.net, g)
        if replaced == 0:
            raise ValueError(f"{type(model).__name__} has no nn.Linear / nn.Conv2d layer to convert")

    def _convert(self, module: nn.Module, g) -> int:
        count = 0
        for name, child in module.named_children():
            if type(child) is nn.Linear:
                setattr(module, name, BELinear(child, self.n_members, g)); count += 1
            elif type(child) is nn.Conv2d:
                setattr(module, name, BEConv2d(child, self.n_members, g)); count += 1
            else:
                count += self._convert(child, g)
        return count

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.repeat(self.n_members, *([1] * (x.ndim - 1))))

    def _draws(self, x):
        with eval_mode(self):
            out = self.forward(x)
        return out.reshape(self.n_members, x.shape[0], *out.shape[1:])


# ----------------------------------------------------------------------------- training loops
def _check_data(data) -> tuple[torch.Tensor, torch.Tensor]:
    if not isinstance(data, (tuple, list)) or len(data) != 2:
        raise TypeError("data must be a pair (inputs, targets) of tensors")
    x, y = data
    if not isinstance(x, torch.Tensor) or not isinstance(y, torch.Tensor):
        raise TypeError("data must be a pair (inputs, targets) of tensors")
    if x.shape[0] != y.shape[0] or x.shape[0] == 0:
        raise ValueError(f"inputs and targets must be non-empty with the same length, got "
                         f"{x.shape[0]} and {y.shape[0]}")
    return x, y


def _check_lr(lr, name="lr") -> float:
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not math.isfinite(lr) or lr <= 0:
        raise ValueError(f"{name} must be a positive number, got {lr!r}")
    return float(lr)


def _loop(model, data, loss, epochs, batch_size, seed, step: Callable, history: History,
          objective: Callable | None = None, on_step: Callable | None = None) -> History:
    """``epochs`` passes over ``data``: ``step(loss_tensor, it)`` does the update."""
    x, y = _check_data(data)
    dev = next(model.parameters()).device
    loader = make_loader(x, y, batch_size=batch_size, seed=seed, device=dev)
    it = 0
    for epoch in range(epochs):
        model.train()
        start, total, n = time.perf_counter(), 0.0, 0
        for xb, yb in loader:
            xb, yb = xb.to(dev), yb.to(dev)
            value = objective(model, xb, yb) if objective is not None else loss(model(xb), yb)
            if not torch.isfinite(value):
                raise FloatingPointError(f"non-finite loss at epoch {epoch + 1} (learning rate too large?)")
            step(value, it)
            if on_step is not None:
                on_step(it)
            total += float(value.detach()) * xb.shape[0]
            n += xb.shape[0]
            it += 1
        history.train_loss.append(total / n)
        history.epoch_time.append(time.perf_counter() - start)
        history.lr.append(float("nan"))
        history.train_accuracy.append(float("nan"))
    model.eval()
    return history


def _adam_step(model, lr, weight_decay=0.0):
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=lr,
                           weight_decay=weight_decay)

    def step(value, it):
        opt.zero_grad(set_to_none=True)
        value.backward()
        opt.step()
    return step


def train_model(model: nn.Module, data, loss: Loss = F.cross_entropy, *, epochs: int = 3,
                lr: float = 1e-3, batch_size: int = 128, seed: int = 0) -> History:
    """Train one model with Adam on ``loss(model(x), y)``: the single-model baseline."""
    _check_count(epochs, "epochs", 0)
    return _loop(model, data, loss, epochs, batch_size, seed, _adam_step(model, _check_lr(lr)), History())


def train_naive_ensemble(ensemble: Ensemble, data, loss: Loss = F.cross_entropy, *, epochs: int = 3,
                         lr: float = 1e-3, batch_size: int = 128, seed: int = 0) -> History:
    """Deep ensemble (Lakshminarayanan et al. 2017): train every member independently.

    Members differ by their initialization (built by the caller with different seeds) and
    by the shuffling of the data (seed ``seed + i``). ``History.epoch_time`` holds one
    entry per member and epoch (the cost of the ensemble is their sum).
    """
    if not isinstance(ensemble, Ensemble):
        raise TypeError(f"expected an Ensemble, got {type(ensemble).__name__}")
    history = History()
    for i, member in enumerate(ensemble.members):
        _loop(member, data, loss, epochs, batch_size, seed + i, _adam_step(member, _check_lr(lr)), history)
    return history


# ----------------------------------------------------------------------------- SGLD
class SGLD(torch.optim.Optimizer):
    """Stochastic gradient Langevin dynamics (Welling & Teh 2011, eq. 4).

    For a posterior ``p(w | D) ∝ p(w) prod_i p(y_i | x_i, w)`` with ``N = n_data`` examples,
    the parameters' ``.grad`` must hold the gradient of the **mean** minibatch negative
    log-likelihood ``-(1/n) sum_{i in batch} log p(y_i | x_i, w)``; the update is

        w <- w - (lr / 2) * (N * grad + prior_precision * w) + sqrt(lr * temperature) * xi,

    ``xi ~ N(0, I)``: half a step on the minibatch estimate of the energy
    ``U(w) = -log p(w) - sum_i log p(y_i | x_i, w)`` (Gaussian prior ``N(0, 1 / prior_precision)``)
    plus injected Gaussian noise of variance ``lr`` (times ``temperature``; 1 is the exact
    posterior, 0 is SGD). ``noise=False`` turns the noise off (burn-in phase, seed 003 §5.2).
    """

    def __init__(self, params, lr: float, n_data: int, prior_precision: float = 0.0,
                 temperature: float = 1.0, noise: bool = True, generator: torch.Generator | None = None) -> None:
        _check_lr(lr)
        _check_count(n_data, "n_data")
        if not isinstance(prior_precision, (int, float)) or prior_precision < 0:
            raise ValueError(f"prior_precision must be >= 0, got {prior_precision!r}")
        if not isinstance(temperature, (int, float)) or temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {temperature!r}")
        super().__init__(params, dict(lr=lr, n_data=n_data, prior_precision=prior_precision,
                                      temperature=temperature, noise=bool(noise)))
        self.generator = generator

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lr, n, prec = group["lr"], group["n_data"], group["prior_precision"]
            std = math.sqrt(lr * group["temperature"]) if group["noise"] else 0.0
            for p in group["params"]:
                if p.grad is None:
                    continue
                grad_u = n * p.grad + prec * p
                p.add_(grad_u, alpha=-lr / 2)
                if std > 0:
                    noise = torch.randn(p.shape, generator=self.generator, dtype=p.dtype,
                                        device="cpu" if self.generator is not None else p.device)
                    p.add_(noise.to(p.device), alpha=std)
        return loss


def train_sgld(ensemble: Ensemble, data, loss: Loss = F.cross_entropy, *, burn_in_epochs: int = 2,
               sample_epochs: int = 1, lr: float = 1e-5, prior_precision: float = 1.0,
               temperature: float = 1.0, batch_size: int = 128, seed: int = 0) -> History:
    """SGLD with a burn-in phase (no noise) then a sampling phase (noise on), seed 003 §5.2.

    Runs the Markov chain on ``ensemble.members[0]`` (``loss`` must be the mean negative
    log-likelihood of a batch) and stores ``len(ensemble)`` samples, equally spaced over
    the ``sample_epochs`` of the sampling phase, into the members. The step size ``lr`` is
    the Langevin ``epsilon``: on the mean loss it acts like SGD with rate
    ``lr * N / 2``.
    """
    if not isinstance(ensemble, Ensemble):
        raise TypeError(f"expected an Ensemble, got {type(ensemble).__name__}")
    _check_count(burn_in_epochs, "burn_in_epochs", 0)
    _check_count(sample_epochs, "sample_epochs")
    x, _ = _check_data(data)
    chain = ensemble.members[0]
    opt = SGLD(chain.parameters(), lr=lr, n_data=int(x.shape[0]), prior_precision=prior_precision,
               temperature=temperature, noise=False)

    def step(value, it):
        opt.zero_grad(set_to_none=True)
        value.backward()
        opt.step()

    history = History()
    _loop(chain, data, loss, burn_in_epochs, batch_size, seed, step, history)
    for g in opt.param_groups:
        g["noise"] = True
    steps_per_epoch = math.ceil(x.shape[0] / batch_size)
    total = steps_per_epoch * sample_epochs
    k = len(ensemble)
    save_at = [min(total - 1, max(0, round((j + 1) * total / k) - 1)) for j in range(k)]
    states = {}

    def on_step(it):
        for j, when in enumerate(save_at):
            if when == it:
                states[j] = copy.deepcopy(chain.state_dict())

    _loop(chain, data, loss, sample_epochs, batch_size, seed + 1, step, history, on_step=on_step)
    for j, member in enumerate(ensemble.members):
        member.load_state_dict(states[j])
    return history


# ----------------------------------------------------------------------------- SVI
def train_svi(model: nn.Module, data, loss: Loss = F.cross_entropy, *, epochs: int = 3,
              lr: float = 1e-3, alpha: float = 1.0, batch_size: int = 128, seed: int = 0) -> History:
    """Stochastic variational inference with mean-field Gaussian weights (Bayes by Backprop).

    Minimizes ``loss(model(x), y) + alpha / N * KL(q || p)`` (seed 003 eq. 2.22 on clean
    data), one weight sample per step; ``model`` must have Bayesian layers
    (:mod:`robustkit.defenses.bayesian`). Predict with :class:`StochasticPredictor`.
    """
    if not bayesian_layers(model):
        raise ValueError("train_svi needs a model with Bayesian layers (e.g. bayesian=True)")
    x, _ = _check_data(data)
    n = int(x.shape[0])
    if not isinstance(alpha, (int, float)) or alpha < 0:
        raise ValueError(f"alpha must be >= 0, got {alpha!r}")

    def objective(m, xb, yb):
        with stochastic(m, True):
            return loss(m(xb), yb) + alpha / n * kl_divergence(m)

    _check_count(epochs, "epochs", 0)
    return _loop(model, data, loss, epochs, batch_size, seed, _adam_step(model, _check_lr(lr)), History(),
                 objective=objective)


# ----------------------------------------------------------------------------- snapshot ensembles
def cyclic_cosine_lr(step: int, total_steps: int, n_cycles: int, lr_max: float) -> float:
    """Snapshot-ensemble learning rate (Huang et al. 2017, eq. 2).

    ``lr(t) = lr_max / 2 * (cos(pi * (t mod ceil(T/M)) / ceil(T/M)) + 1)`` for step
    ``t = 0 .. T-1``, ``T = total_steps``, ``M = n_cycles``: restarts at ``lr_max`` at
    the start of each cycle and decays to (almost) 0 at its end, where a snapshot is taken.
    """
    _check_count(total_steps, "total_steps")
    _check_count(n_cycles, "n_cycles")
    if not 0 <= step < total_steps:
        raise ValueError(f"step must be in [0, {total_steps}), got {step}")
    c = math.ceil(total_steps / n_cycles)
    return lr_max / 2 * (math.cos(math.pi * (step % c) / c) + 1)


def train_snapshot(ensemble: Ensemble, data, loss: Loss = F.cross_entropy, *, epochs: int = 6,
                   lr_max: float = 0.1, momentum: float = 0.9, batch_size: int = 128,
                   seed: int = 0) -> History:
    """Snapshot ensemble: one SGD run with a cyclic cosine rate, one snapshot per cycle.

    ``len(ensemble)`` cycles over ``epochs`` epochs; at the last step of each cycle (rate
    at its minimum) the weights of ``members[0]`` (the trained network) are copied into
    the next member. Cost: one training run.
    """
    if not isinstance(ensemble, Ensemble):
        raise TypeError(f"expected an Ensemble, got {type(ensemble).__name__}")
    _check_count(epochs, "epochs")
    x, _ = _check_data(data)
    net = ensemble.members[0]
    k = len(ensemble)
    total = math.ceil(x.shape[0] / batch_size) * epochs
    if total < k:
        raise ValueError(f"{total} steps cannot make {k} cycles")
    opt = torch.optim.SGD(net.parameters(), lr=_check_lr(lr_max, "lr_max"), momentum=momentum)
    c = math.ceil(total / k)
    states = []

    def step(value, it):
        for g in opt.param_groups:
            g["lr"] = cyclic_cosine_lr(it, total, k, lr_max)
        opt.zero_grad(set_to_none=True)
        value.backward()
        opt.step()

    def on_step(it):
        if (it + 1) % c == 0 or it == total - 1:
            if len(states) < k:
                states.append(copy.deepcopy(net.state_dict()))

    history = _loop(net, data, loss, epochs, batch_size, seed, step, History(), on_step=on_step)
    for member, state in zip(ensemble.members, states):
        member.load_state_dict(state)
    return history


# ----------------------------------------------------------------------------- BatchEnsemble training
def train_batch_ensemble(model: BatchEnsemble, data, loss: Loss = F.cross_entropy, *, epochs: int = 3,
                         lr: float = 1e-3, batch_size: int = 128, seed: int = 0) -> History:
    """Train a :class:`BatchEnsemble`: every member sees every batch (inputs tiled ``M`` times)."""
    if not isinstance(model, BatchEnsemble):
        raise TypeError(f"expected a BatchEnsemble, got {type(model).__name__}")
    m = model.n_members

    def objective(mod, xb, yb):
        return loss(mod(xb), yb.repeat(m, *([1] * (yb.ndim - 1))))

    _check_count(epochs, "epochs", 0)
    return _loop(model, data, loss, epochs, batch_size, seed, _adam_step(model, _check_lr(lr)), History(),
                 objective=objective)


# ----------------------------------------------------------------------------- FastEnsemble
def l1_distance(model: nn.Module, anchor: dict) -> torch.Tensor:
    """``||w - w_anchor||_1`` over the trainable parameters (``anchor``: name -> tensor)."""
    terms = [(p - anchor[name].to(p.device)).abs().sum()
             for name, p in model.named_parameters() if p.requires_grad]
    return torch.stack(terms).sum()


def fast_ensemble_loss(task_loss: torch.Tensor, model: nn.Module, anchors: Sequence[dict],
                       lam: float) -> torch.Tensor:
    """Seed 003 eq. (5.2): ``l+(w) = l(f(x; w), y) - lam / |M| * sum_anchor ||w - w_anchor||_1``.

    ``anchors`` are the parameter dicts of the models already in the list ``M`` (the seed
    model first). Minimizing ``l+`` keeps the loss low while pushing ``w`` away from every
    anchor (the "loss valley" exploration of Fig. 5.5).
    """
    if not anchors:
        raise ValueError("FastEnsemble needs at least one anchor (the seed model)")
    if not isinstance(lam, (int, float)) or lam < 0:
        raise ValueError(f"lam must be >= 0, got {lam!r}")
    repulsion = torch.stack([l1_distance(model, a) for a in anchors]).sum()
    return task_loss - lam / len(anchors) * repulsion


def train_fast_ensemble(ensemble: Ensemble, data, loss: Loss = F.cross_entropy, *, seed_epochs: int = 3,
                        k2: int = 50, k3: int = 20, lam: float = 1e-4, lr: float = 1e-3,
                        member_lr: float | None = None, batch_size: int = 128, seed: int = 0) -> History:
    """FastEnsemble, seed 003 Algorithm 10.

    1. train the seed model ``w_0`` (``members[0]``) for ``seed_epochs`` epochs (``k1``
       iterations) with Adam;
    2. for ``n = 1 .. N-1``: start from ``w_0``, run ``k2`` iterations on ``l+`` of eq.
       (5.2) (repulsion from every model already in ``M``), then ``k3`` fine-tuning
       iterations on the plain loss, and append ``w_n`` to ``M``.

    ``History.epoch_time`` is ``[seed time, member 1 time, ..., member N-1 time]`` and
    ``History.train_loss`` the final training loss of each phase, so the overhead over one
    model is ``sum(epoch_time[1:]) / epoch_time[0]`` (seed 003: ``(k2 + k3) / k1`` per
    member, ~20% for six members).
    """
    if not isinstance(ensemble, Ensemble):
        raise TypeError(f"expected an Ensemble, got {type(ensemble).__name__}")
    _check_count(seed_epochs, "seed_epochs")
    _check_count(k2, "k2", 0)
    _check_count(k3, "k3", 0)
    x, y = _check_data(data)
    seed_net = ensemble.members[0]
    history = History()
    seed_hist = _loop(seed_net, data, loss, seed_epochs, batch_size, seed, _adam_step(seed_net, _check_lr(lr)),
                      History())
    history.epoch_time.append(seed_hist.total_time)
    history.train_loss.append(seed_hist.train_loss[-1])
    history.lr.append(lr)
    history.train_accuracy.append(float("nan"))
    anchors = [{n: p.detach().clone() for n, p in seed_net.named_parameters()}]
    dev = next(seed_net.parameters()).device
    member_lr = _check_lr(member_lr if member_lr is not None else lr, "member_lr")
    for i, member in enumerate(list(ensemble.members)[1:], start=1):
        start = time.perf_counter()
        member.load_state_dict(seed_net.state_dict())
        member.train()
        opt = torch.optim.Adam(member.parameters(), lr=member_lr)
        loader = make_loader(x, y, batch_size=batch_size, seed=seed + 100 * i, device=dev)
        batches = _cycle(loader)
        value = torch.zeros(())
        for it in range(k2 + k3):
            xb, yb = next(batches)
            xb, yb = xb.to(dev), yb.to(dev)
            value = loss(member(xb), yb)
            total = fast_ensemble_loss(value, member, anchors, lam) if it < k2 else value
            opt.zero_grad(set_to_none=True)
            total.backward()
            opt.step()
        member.eval()
        anchors.append({n: p.detach().clone() for n, p in member.named_parameters()})
        history.epoch_time.append(time.perf_counter() - start)
        history.train_loss.append(float(value.detach()))
        history.lr.append(member_lr)
        history.train_accuracy.append(float("nan"))
    return history


def _cycle(loader):
    while True:
        yield from loader
