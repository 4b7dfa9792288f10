"""The small networks of the chapters, with input normalization inside the model.

Every model takes images in ``[0, 1]`` of shape ``(N, C, H, W)`` and returns logits
``(N, num_classes)``. Normalization ``(x - mean) / std`` is the first layer
(:class:`Normalize`), so attacks, defenses and plots all work in pixel space and the
eps-balls of the threat models are measured on the images the reader sees.

- :class:`MnistConvNet`: the MNIST convnet of seed 000 (Figure 18), chapters on
  generative distributions ("concepts") and adversarial training;
- :class:`DenseMLP`: the dense classifier compared with the convnet in seed 000 §7.3.3;
- :class:`SmallCifarNet`: a 4-conv + 2-fc VGG-like CIFAR-10 network (the classic
  "small CIFAR model" of the adversarial-examples literature, narrower by default so it
  trains on a laptop CPU).

:func:`build_model` builds any of them by name; :func:`count_parameters` counts weights.

Used by: chapter 0 (*Getting started*) onwards.
"""
from __future__ import annotations

import math
from typing import Callable, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from .data import dataset_stats

__all__ = [
    "MNIST_MEAN",
    "MNIST_STD",
    "CIFAR10_MEAN",
    "CIFAR10_STD",
    "Normalize",
    "MnistConvNet",
    "DenseMLP",
    "SmallCifarNet",
    "MODELS",
    "build_model",
    "count_parameters",
]

# Per-channel statistics of the training sets (pixels in [0, 1]), from the dataset registry.
MNIST_MEAN: float = dataset_stats("mnist").mean[0]
MNIST_STD: float = dataset_stats("mnist").std[0]
CIFAR10_MEAN: tuple[float, float, float] = dataset_stats("cifar10").mean
CIFAR10_STD: tuple[float, float, float] = dataset_stats("cifar10").std


def _as_channel_tensor(value: float | Sequence[float] | torch.Tensor, what: str) -> torch.Tensor:
    t = torch.as_tensor(value, dtype=torch.float32).detach().clone()
    if t.ndim > 1:
        raise ValueError(f"{what} must be a scalar or a 1-D sequence (one value per channel), "
                         f"got shape {tuple(t.shape)}")
    t = t.reshape(-1)
    if t.numel() == 0:
        raise ValueError(f"{what} must not be empty")
    if not torch.isfinite(t).all():
        raise ValueError(f"{what} must be finite, got {t.tolist()}")
    return t


class Normalize(nn.Module):
    """Per-channel standardization ``(x - mean) / std`` as the first layer of a model.

    ``mean`` and ``std`` are a scalar (shared by all channels) or one value per channel;
    they are registered as buffers, so they follow ``.to(device)`` and are saved in the
    ``state_dict``. Inputs are images in ``[0, 1]`` of shape ``(N, C, H, W)``.

    Convention of the course (GUIDE §4): normalization lives inside the model, so every
    attack and every eps is expressed in pixel space. Used by every model of
    :mod:`robustkit.models`.
    """

    def __init__(self, mean: float | Sequence[float] | torch.Tensor,
                 std: float | Sequence[float] | torch.Tensor) -> None:
        super().__init__()
        m = _as_channel_tensor(mean, "mean")
        s = _as_channel_tensor(std, "std")
        if (s <= 0).any():
            raise ValueError(f"std must be positive, got {s.tolist()}")
        if m.numel() != s.numel() and 1 not in (m.numel(), s.numel()):
            raise ValueError(f"mean and std must have the same number of channels "
                             f"(or one of them a scalar), got {m.numel()} and {s.numel()}")
        channels = max(m.numel(), s.numel())
        self.channels = channels
        self.register_buffer("mean", m.expand(channels).clone().view(1, channels, 1, 1))
        self.register_buffer("std", s.expand(channels).clone().view(1, channels, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4:
            raise ValueError(f"expected images of shape (N, C, H, W), got shape {tuple(x.shape)}")
        if self.channels != 1 and x.shape[1] != self.channels:
            raise ValueError(f"Normalize has {self.channels} channels but the input has "
                             f"{x.shape[1]} (shape {tuple(x.shape)})")
        return (x - self.mean) / self.std

    def extra_repr(self) -> str:
        fmt = lambda t: "(" + ", ".join(f"{v:.4g}" for v in t.flatten().tolist()) + ")"  # noqa: E731
        return f"mean={fmt(self.mean)}, std={fmt(self.std)}"


def _check_dropout(p: float) -> float:
    if not isinstance(p, (int, float)) or not 0.0 <= float(p) < 1.0:
        raise ValueError(f"dropout probability must be in [0, 1), got {p!r}")
    return float(p)


def _check_images(x: torch.Tensor, channels: int, size: tuple[int, int] | None, model: str) -> None:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{model} expects a torch.Tensor, got {type(x).__name__}")
    if x.ndim != 4 or x.shape[1] != channels or (size is not None and tuple(x.shape[2:]) != size):
        want = f"(N, {channels}, {size[0]}, {size[1]})" if size else f"(N, {channels}, H, W)"
        raise ValueError(f"{model} expects images of shape {want}, got {tuple(x.shape)}")


class MnistConvNet(nn.Module):
    """The MNIST convnet of seed 000 (Figure 18, the classic PyTorch MNIST example).

    ``conv(1->10, 5x5) -> maxpool 2 -> ReLU -> conv(10->20, 5x5) -> Dropout2d -> maxpool 2
    -> ReLU -> fc(320->50) -> ReLU -> dropout -> fc(50->10)``, 21,840 parameters.

    Deviations from the seed, on purpose: the network returns *logits* (the seed returns
    ``log_softmax``; attacks such as C&W and DeepFool need logits, and cross-entropy on
    logits is the same loss), normalization ``Normalize(0.1307, 0.3081)`` is its first
    layer (inputs in ``[0, 1]``), and the dropout probability ``dropout`` is an argument
    (default 0.5 as in the seed, used by both dropout layers).

    Used by: the chapters on generative distributions of a classifier and adversarial
    training (seed 000 §7).
    """

    def __init__(self, dropout: float = 0.5, num_classes: int = 10,
                 mean: float | Sequence[float] = MNIST_MEAN,
                 std: float | Sequence[float] = MNIST_STD) -> None:
        super().__init__()
        p = _check_dropout(dropout)
        self.normalize = Normalize(mean, std)
        self.conv1 = nn.Conv2d(1, 10, kernel_size=5)
        self.conv2 = nn.Conv2d(10, 20, kernel_size=5)
        self.conv2_drop = nn.Dropout2d(p)
        self.fc1 = nn.Linear(320, 50)
        self.fc_drop = nn.Dropout(p)
        self.fc2 = nn.Linear(50, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The 50-dimensional penultimate representation (after ``fc1`` and ReLU)."""
        _check_images(x, 1, (28, 28), "MnistConvNet")
        x = self.normalize(x)
        x = F.relu(F.max_pool2d(self.conv1(x), 2))
        x = F.relu(F.max_pool2d(self.conv2_drop(self.conv2(x)), 2))
        return F.relu(self.fc1(x.flatten(1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.fc_drop(self.features(x)))


class DenseMLP(nn.Module):
    """A fully connected classifier: ``flatten -> [Linear -> ReLU (-> dropout)]* -> Linear``.

    The dense network of seed 000 §7.3.3 (*dense vs convolutional classifiers*), which
    the seed finds less robust than :class:`MnistConvNet` ("blind spots for the weights
    associated to always-zero pixels"). Normalization is its first layer.

    Args:
        in_shape: shape ``(C, H, W)`` of one input image.
        hidden: widths of the hidden layers (may be empty: a linear classifier).
        num_classes: number of outputs (logits).
        mean, std: normalization statistics (scalar or per channel).
        dropout: dropout probability after each hidden layer (0 disables it).

    Used by: the chapter on generative distributions (dense vs convolutional).
    """

    def __init__(self, in_shape: Sequence[int] = (1, 28, 28), hidden: Sequence[int] = (256, 256),
                 num_classes: int = 10, mean: float | Sequence[float] = MNIST_MEAN,
                 std: float | Sequence[float] = MNIST_STD, dropout: float = 0.0) -> None:
        super().__init__()
        in_shape = tuple(int(s) for s in in_shape)
        if len(in_shape) != 3 or min(in_shape) < 1:
            raise ValueError(f"in_shape must be (C, H, W) with positive sizes, got {in_shape}")
        hidden = tuple(int(h) for h in hidden)
        if any(h < 1 for h in hidden):
            raise ValueError(f"hidden widths must be positive, got {hidden}")
        if int(num_classes) < 2:
            raise ValueError(f"num_classes must be >= 2, got {num_classes}")
        p = _check_dropout(dropout)
        self.in_shape = in_shape
        self.normalize = Normalize(mean, std)
        layers: list[nn.Module] = [nn.Flatten()]
        width = math.prod(in_shape)
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU()]
            if p > 0:
                layers.append(nn.Dropout(p))
            width = h
        layers.append(nn.Linear(width, int(num_classes)))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_images(x, self.in_shape[0], self.in_shape[1:], "DenseMLP")
        return self.net(self.normalize(x))


class SmallCifarNet(nn.Module):
    """A small VGG-like CIFAR-10 convnet: 4 convolutions and 2 fully connected layers.

    ``[conv3x3(w) -> ReLU] x2 -> maxpool 2 -> [conv3x3(2w) -> ReLU] x2 -> maxpool 2 ->
    fc(hidden) -> ReLU -> dropout -> fc(num_classes)``, the architecture family of the
    "small CIFAR model" of Carlini & Wagner (there with ``width=64, hidden=256``); the
    default ``width=32`` keeps CPU training to minutes. Normalization by the CIFAR-10
    channel statistics is its first layer. Works for any ``(in_channels, image_size,
    image_size)`` input with ``image_size`` divisible by 4 (default ``(3, 32, 32)``).

    Used by: the chapters that move from MNIST to natural images (CIFAR-10).
    """

    def __init__(self, num_classes: int = 10, width: int = 32, hidden: int = 256,
                 dropout: float = 0.5, in_channels: int = 3, image_size: int = 32,
                 mean: float | Sequence[float] = CIFAR10_MEAN,
                 std: float | Sequence[float] = CIFAR10_STD) -> None:
        super().__init__()
        if int(image_size) < 4 or int(image_size) % 4:
            raise ValueError(f"image_size must be a positive multiple of 4, got {image_size}")
        if int(width) < 1 or int(hidden) < 1 or int(in_channels) < 1:
            raise ValueError("width, hidden and in_channels must be positive")
        p = _check_dropout(dropout)
        w, self.in_channels, self.image_size = int(width), int(in_channels), int(image_size)
        self.normalize = Normalize(mean, std)
        self.conv = nn.Sequential(
            nn.Conv2d(self.in_channels, w, 3, padding=1), nn.ReLU(),
            nn.Conv2d(w, w, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(w, 2 * w, 3, padding=1), nn.ReLU(),
            nn.Conv2d(2 * w, 2 * w, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        )
        side = self.image_size // 4
        self.fc1 = nn.Linear(2 * w * side * side, int(hidden))
        self.fc_drop = nn.Dropout(p)
        self.fc2 = nn.Linear(int(hidden), int(num_classes))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The ``hidden``-dimensional penultimate representation (after ``fc1`` and ReLU)."""
        _check_images(x, self.in_channels, (self.image_size, self.image_size), "SmallCifarNet")
        return F.relu(self.fc1(self.conv(self.normalize(x)).flatten(1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.fc_drop(self.features(x)))


MODELS: dict[str, Callable[..., nn.Module]] = {
    "mnist_conv": MnistConvNet,
    "mlp": DenseMLP,
    "cifar_small": SmallCifarNet,
}


def build_model(name: str, **kwargs) -> nn.Module:
    """Build a model of :data:`MODELS` by name (``mnist_conv``, ``mlp``, ``cifar_small``).

    Keyword arguments go to the model's constructor. Used by every chapter that trains a
    classifier, and by :func:`robustkit.train.cached_fit` callers as ``build_model_fn``.
    """
    key = str(name).strip().lower()
    if key not in MODELS:
        raise ValueError(f"unknown model {name!r}: choose one of {', '.join(sorted(MODELS))}")
    return MODELS[key](**kwargs)


def count_parameters(model: nn.Module, trainable_only: bool = True) -> int:
    """Number of scalar parameters of ``model`` (only those with ``requires_grad`` by default)."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"expected an nn.Module, got {type(model).__name__}")
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
