"""Random Self-Ensemble (RSE): noise layers before every convolution, ensembled predictions.

Seed 003 §2.1 (Liu, Cheng, Zhang & Hsieh 2018). RSE turns one network into an infinite
family ``f_eps(w, x)`` by a *noise layer* ``x -> x + eps`` in front of each convolution
(Fig. 2.1): the first one ("init-noise", std ``sigma_init``) perturbs the image, the
others ("inner-noise", std ``sigma_inner``) the feature maps. The noise is drawn in
training (Algorithm 2: one noisy gradient per step, i.e. minimizing eq. 2.7, which acts
as a Lipschitz regularizer, eq. 2.11-2.12) *and* at test time, where ``n`` draws are
ensembled by averaging the softmax probabilities (eq. 2.6 / 2.8).

- :class:`NoiseLayer`: Gaussian ``eps ~ N(0, sigma^2)`` or Bernoulli-Gaussian
  ``eps_i = b_i e_i`` (``b_i ~ B(1, p)``, ``e_i ~ N(0, sigma^2)``), a
  :class:`robustkit.modes.StochasticModule` (noise iff ``self.stochastic``, independent of
  ``train()`` / ``eval()``: GUIDE §5 trap 1);
- :func:`small_convnet`: the small strided convnet of chapter 6 (fast on a CPU);
- :func:`insert_noise_layers` / :func:`rse_network`: the RSE builder, a copy of any model
  with a noise layer before each ``nn.Conv2d`` (init noise in pixel units);
- :func:`ensemble_proba`, :class:`SelfEnsemble`: the deployed classifier of eq. (2.6),
  vectorized over the draws when every random layer draws independent noise per sample.

Training needs no special objective: :func:`robustkit.train.fit` with the default
cross-entropy on the noisy network *is* Algorithm 2 (the noise layers stay on in
training). Used by: chapter 6, *Randomized defenses*.
"""
from __future__ import annotations

import copy
import math
from typing import Sequence

import torch
import torch.nn as nn

from ..modes import StochasticModule, is_stochastic_module

__all__ = ["NoiseLayer", "noise_layers", "small_convnet", "insert_noise_layers", "rse_network",
           "set_noise_levels", "ensemble_proba", "SelfEnsemble", "KINDS"]

KINDS = ("gaussian", "bernoulli-gaussian")


def _check_std(std, name: str = "std") -> float | torch.Tensor:
    if isinstance(std, torch.Tensor) or (isinstance(std, (list, tuple))):
        t = torch.as_tensor(std, dtype=torch.float32).detach().clone()
        if t.ndim > 1 or t.numel() == 0:
            raise ValueError(f"{name} must be a number or a 1-D sequence (one per channel), "
                             f"got shape {tuple(t.shape)}")
        if not torch.isfinite(t).all() or (t < 0).any():
            raise ValueError(f"{name} must be finite and >= 0, got {t.tolist()}")
        return t.reshape(-1)
    if isinstance(std, bool) or not isinstance(std, (int, float)) or not math.isfinite(std) or std < 0:
        raise ValueError(f"{name} must be a finite number >= 0 (a standard deviation), got {std!r}")
    return float(std)


class NoiseLayer(StochasticModule):
    """The RSE noise layer ``x -> x + eps`` (seed 003 §2.1, Fig. 2.1, eq. 2.7).

    Args:
        std: standard deviation ``sigma`` (a number, or one value per channel: dimension 1).
        kind: ``"gaussian"`` (``eps ~ N(0, sigma^2)`` i.i.d.) or ``"bernoulli-gaussian"``
            (``eps_i = b_i e_i``, ``b_i ~ Bernoulli(p)``, ``e_i ~ N(0, sigma^2)``; the
            seed's variant below eq. 2.7).
        p: probability that a coordinate is perturbed (Bernoulli-Gaussian only), in (0, 1].
        stochastic: draw noise iff true (default). ``train()`` / ``eval()`` do not matter:
            an RSE network stays random when an attack puts it in eval mode.

    Every sample of a batch (and every coordinate) gets independent noise, so ``n``
    copies of a batch in one forward pass are ``n`` independent draws
    (``draws_per_sample = True``, used by :class:`SelfEnsemble`). Chapter 6.
    """

    #: independent noise for every sample of a batch (a batch of copies = independent draws)
    draws_per_sample = True

    def __init__(self, std=0.1, kind: str = "gaussian", p: float = 0.5, *,
                 stochastic: bool = True) -> None:
        super().__init__(stochastic=stochastic)
        if not isinstance(kind, str) or kind.strip().lower().replace("_", "-") not in KINDS:
            raise ValueError(f"unknown noise kind {kind!r}: choose one of {', '.join(KINDS)}")
        self.kind = kind.strip().lower().replace("_", "-")
        if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0.0 < p <= 1.0:
            raise ValueError(f"p must be a probability in (0, 1], got {p!r}")
        self.p = float(p)
        std = _check_std(std)
        if isinstance(std, torch.Tensor):
            self.register_buffer("std", std)
        else:
            self.std = std

    @property
    def per_channel(self) -> bool:
        return isinstance(self.std, torch.Tensor)

    def _std_for(self, x: torch.Tensor):
        if not self.per_channel:
            return self.std
        if x.ndim < 2 or x.shape[1] != self.std.numel():
            raise ValueError(f"NoiseLayer has {self.std.numel()} per-channel stds but the input has "
                             f"shape {tuple(x.shape)} (channels on dimension 1)")
        return self.std.to(x.dtype).view(1, -1, *([1] * (x.ndim - 2)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.stochastic:
            return x
        std = self._std_for(x)
        if not isinstance(std, torch.Tensor) and std == 0.0:
            return x
        noise = torch.randn_like(x) * std
        if self.kind == "bernoulli-gaussian" and self.p < 1.0:
            noise = noise * (torch.rand_like(x) < self.p).to(x.dtype)
        return x + noise

    def extra_repr(self) -> str:
        std = [round(v, 6) for v in self.std.tolist()] if self.per_channel else self.std
        extra = f", p={self.p}" if self.kind == "bernoulli-gaussian" else ""
        std = round(std, 6) if isinstance(std, float) else std
        return f"std={std}, kind={self.kind}{extra}, stochastic={self.stochastic}"


def noise_layers(model: nn.Module) -> list[NoiseLayer]:
    """The :class:`NoiseLayer` s of ``model``, in module order (the first is the init noise)."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    return [m for m in model.modules() if isinstance(m, NoiseLayer)]


def small_convnet(in_channels: int = 1, num_classes: int = 10, image_size: int = 28,
                  width: int = 16, hidden: int = 100, mean=0.1307, std=0.3081) -> nn.Sequential:
    """The small network of chapter 6: three convolutions (two strided), two dense layers.

    ``Normalize -> conv5x5/2(w) -> ReLU -> conv3x3/2(2w) -> ReLU -> conv3x3(2w) -> ReLU ->
    fc(hidden) -> ReLU -> fc(classes)``; for 28x28 MNIST images and ``w = 16`` about
    180k parameters and ~4x cheaper than :class:`robustkit.models.MnistConvNet` on a CPU,
    which matters when every evaluation step costs ``eot_samples`` forward passes. A
    plain (deterministic) ``nn.Sequential``: :func:`rse_network` adds the noise layers,
    :func:`robustkit.defenses.adv_bnn.bayesian_network` makes it Bayesian. ``mean`` /
    ``std`` are the normalization statistics (MNIST by default). Chapter 6.
    """
    from ..models import Normalize
    for name, v in (("in_channels", in_channels), ("num_classes", num_classes),
                    ("image_size", image_size), ("width", width), ("hidden", hidden)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be a positive integer, got {v!r}")
    if num_classes < 2:
        raise ValueError(f"num_classes must be >= 2, got {num_classes}")
    side = (((image_size + 1) // 2) + 1) // 2
    return nn.Sequential(
        Normalize(mean, std),
        nn.Conv2d(in_channels, width, 5, stride=2, padding=2), nn.ReLU(),
        nn.Conv2d(width, 2 * width, 3, stride=2, padding=1), nn.ReLU(),
        nn.Conv2d(2 * width, 2 * width, 3, padding=1), nn.ReLU(),
        nn.Flatten(),
        nn.Linear(2 * width * side * side, hidden), nn.ReLU(),
        nn.Linear(hidden, num_classes),
    )


def _normalize_std(model: nn.Module, first_conv: nn.Module):
    """Per-channel std of the robustkit ``Normalize`` layer seen before ``first_conv`` (or None)."""
    from ..models import Normalize
    for m in model.modules():
        if m is first_conv:
            return None
        if isinstance(m, Normalize):
            return m.std.detach().reshape(-1).clone()
    return None


def insert_noise_layers(model: nn.Module, init_std: float = 0.2, inner_std: float = 0.1, *,
                        kind: str = "gaussian", p: float = 0.5, pixel_units: bool = True,
                        inplace: bool = False) -> nn.Module:
    """RSE builder: a noise layer before each ``nn.Conv2d`` of ``model`` (seed 003 Fig. 2.1).

    Every convolution ``conv`` becomes ``nn.Sequential(NoiseLayer(std), conv)``; the
    first convolution (in module order) gets the *init noise* ``init_std``, all others the
    *inner noise* ``inner_std`` (eq. 2.13 compares such pairs). The weights are shared
    with ``model`` if ``inplace``, otherwise copied (``model`` is left unchanged), so a
    trained plain network becomes its "test noise only" twin (Fig. 2.2).

    ``pixel_units``: if a :class:`robustkit.models.Normalize` layer comes before the first
    convolution (robustkit models normalize inside), the init noise acts on normalized
    inputs; its std is divided per channel by the normalization std so that it equals
    ``init_std`` in pixel units (images in ``[0, 1]``), as in the seed. Raises
    ``ValueError`` for a model without convolution. Chapter 6.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    init_std, inner_std = _check_std(init_std, "init_std"), _check_std(inner_std, "inner_std")
    if noise_layers(model):
        raise ValueError("model already has noise layers; use set_noise_levels to change them")
    net = model if inplace else copy.deepcopy(model)
    convs = [(name, m) for name, m in net.named_modules() if isinstance(m, nn.Conv2d)]
    if not convs:
        raise ValueError(f"{type(model).__name__} has no nn.Conv2d: RSE puts noise before convolutions")
    first = convs[0][1]
    init = init_std
    if pixel_units:
        norm_std = _normalize_std(net, first)
        if norm_std is not None:
            base = init_std if isinstance(init_std, torch.Tensor) else torch.tensor([init_std])
            init = base / norm_std.to(base.dtype)
            if init.numel() == 1:
                init = float(init)
    for i, (name, conv) in enumerate(convs):
        layer = NoiseLayer(init if i == 0 else inner_std, kind=kind, p=p)
        parent_name, _, child = name.rpartition(".")
        parent = net.get_submodule(parent_name) if parent_name else net
        setattr(parent, child, nn.Sequential(layer, conv))
    return net


def rse_network(base: nn.Module | None = None, init_std: float = 0.2, inner_std: float = 0.1, *,
                kind: str = "gaussian", p: float = 0.5, **convnet_kwargs) -> nn.Module:
    """An RSE network: ``base`` (default :func:`small_convnet`) with noise before each conv.

    ``rse_network(init_std=0.2, inner_std=0.1)`` is the seed's setting (Table 2.1);
    ``init_std = inner_std = 0`` gives the same architecture without noise (the "no
    defense" baseline with identical parameter names). ``convnet_kwargs`` go to
    :func:`small_convnet` when ``base`` is None. Chapter 6.
    """
    if base is None:
        base = small_convnet(**convnet_kwargs)
    elif convnet_kwargs:
        raise ValueError("convnet_kwargs are only used when base is None")
    return insert_noise_layers(base, init_std, inner_std, kind=kind, p=p, inplace=True)


def set_noise_levels(model: nn.Module, init_std: float, inner_std: float) -> nn.Module:
    """Change the noise levels of an RSE network in place (init noise in pixel units); returns it.

    Handy for the "test noise only" model of Fig. 2.2 and the noise sweeps of eq. (2.13).
    """
    layers = noise_layers(model)
    if not layers:
        raise ValueError("model has no NoiseLayer (build it with insert_noise_layers / rse_network)")
    init_std, inner_std = _check_std(init_std, "init_std"), _check_std(inner_std, "inner_std")
    first_conv = next(m for m in model.modules() if isinstance(m, nn.Conv2d))
    norm_std = _normalize_std(model, first_conv)
    init = init_std
    if norm_std is not None:
        base = init_std if isinstance(init_std, torch.Tensor) else torch.tensor([init_std])
        init = base / norm_std.to(base.dtype)
        init = float(init) if init.numel() == 1 else init
    for i, layer in enumerate(layers):
        std = init if i == 0 else inner_std
        if isinstance(std, torch.Tensor):
            if "std" in layer._buffers:
                layer.std = std.to(layer.std.device)
            else:
                layer.register_buffer("std", std)
        else:
            if "std" in layer._buffers:
                del layer._buffers["std"]
            layer.std = std
    return model


def _vectorizable(model: nn.Module) -> bool:
    """True if every random layer draws independent noise per sample (copies = draws)."""
    found = False
    for m in model.modules():
        if is_stochastic_module(m):
            if not getattr(m, "draws_per_sample", False):
                return False
            found = True
    return found


def _check_n(n, name: str = "n") -> int:
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"{name} must be a positive integer, got {n!r}")
    return n


def _draw_logprobs(model: nn.Module, x: torch.Tensor, n: int, vectorize: bool | None,
                   chunk: int | None) -> torch.Tensor:
    """Log-probabilities of ``n`` draws, shape ``(n, N, classes)``."""
    if vectorize is None:
        vectorize = _vectorizable(model)
    if not vectorize:
        return torch.stack([torch.log_softmax(model(x), dim=1) for _ in range(n)])
    per = n if chunk is None else max(1, min(n, chunk))
    outs = []
    done = 0
    while done < n:
        k = min(per, n - done)
        xs = x.unsqueeze(0).expand(k, *x.shape).reshape(k * x.shape[0], *x.shape[1:])
        out = torch.log_softmax(model(xs), dim=1)
        outs.append(out.view(k, x.shape[0], -1))
        done += k
    return torch.cat(outs)


def ensemble_proba(model: nn.Module, x: torch.Tensor, n: int = 10, *, vectorize: bool | None = None,
                   chunk: int | None = None) -> torch.Tensor:
    """RSE / Bayesian ensemble prediction: ``p = (1/n) sum_j softmax(f_{eps_j}(x))`` (eq. 2.6, 2.27).

    Averages *probabilities*, not logits (GUIDE §5 trap 9); ``argmax`` of the result is the
    prediction of Algorithm 2 (the seed's sum differs by the factor ``1/n`` only). When
    every random layer draws independent noise per sample (RSE :class:`NoiseLayer`), the
    ``n`` draws run as one batch of ``n`` copies (``vectorize=None`` decides
    automatically; ``chunk`` bounds the copies per forward pass); Bayesian layers, which
    sample one weight per forward pass, are looped. Runs with gradients if enabled (so
    it can be attacked); the caller's modes are untouched. Returns ``(N, classes)``.
    Chapter 6.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x must be a tensor, got {type(x).__name__}")
    n = _check_n(n)
    if chunk is not None:
        _check_n(chunk, "chunk")
    return _draw_logprobs(model, x, n, vectorize, chunk).exp().mean(0)


class SelfEnsemble(nn.Module):
    """The deployed RSE / Adv-BNN classifier: ``log mean_j softmax(f_j(x))`` over ``n`` draws.

    ``forward`` returns log-probabilities of the ensemble (eq. 2.6 for RSE, eq. 2.27 for
    Adv-BNN), a valid logit vector, so every attack and evaluator of
    :mod:`robustkit.attacks` can use it; attacking it with gradients is the EOT attack on
    the deployed model (the gradient of the averaged probability). Same role as
    :class:`robustkit.attacks.ExpectedModel`, vectorized over the draws for RSE noise
    layers (see :func:`ensemble_proba`). Chapter 6.
    """

    def __init__(self, model: nn.Module, n: int = 10, *, vectorize: bool | None = None,
                 chunk: int | None = None) -> None:
        super().__init__()
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
        self.model = model
        self.n = _check_n(n)
        self.vectorize = vectorize
        self.chunk = None if chunk is None else _check_n(chunk, "chunk")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logp = _draw_logprobs(self.model, x, self.n, self.vectorize, self.chunk)
        return torch.logsumexp(logp, dim=0) - math.log(self.n)

    def extra_repr(self) -> str:
        return f"n={self.n}"
