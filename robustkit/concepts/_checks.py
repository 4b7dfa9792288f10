"""Small argument checks shared by the concepts modules (seed 000 §5; chapter 4)."""
from __future__ import annotations

import math

import torch


def check_positive(value, name: str) -> float:
    """Return ``value`` as a float, or raise ValueError unless finite and > 0."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or value <= 0:
        raise ValueError(f"{name} must be a finite positive number, got {value!r}")
    return float(value)


def check_nonneg(value, name: str) -> float:
    """Return ``value`` as a float, or raise ValueError unless finite and >= 0."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or value < 0:
        raise ValueError(f"{name} must be a finite nonnegative number, got {value!r}")
    return float(value)


def check_int(value, name: str, low: int = 1) -> int:
    """Return ``value`` or raise ValueError unless it is an integer >= ``low``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    return value


def check_labels(y, n_classes: int) -> torch.Tensor:
    """Check a 1-D integer label tensor with values in ``[0, n_classes)``."""
    if not isinstance(y, torch.Tensor):
        raise TypeError(f"labels must be a torch.Tensor, got {type(y).__name__}")
    if y.dim() != 1 or y.dtype not in (torch.int64, torch.int32, torch.int16, torch.uint8):
        raise ValueError(f"labels must be a 1-D integer tensor, got shape {tuple(y.shape)} "
                         f"and dtype {y.dtype}")
    if y.numel() and (int(y.min()) < 0 or int(y.max()) >= n_classes):
        raise ValueError(f"labels must lie in [0, {n_classes}), got range "
                         f"[{int(y.min())}, {int(y.max())}]")
    return y.long()


def check_images(x, name: str = "images") -> torch.Tensor:
    """Check a float image batch ``(N, C, H, W)`` with values in ``[0, 1]``."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() != 4 or not x.is_floating_point():
        raise ValueError(f"{name} must be a float tensor of shape (N, C, H, W), got "
                         f"shape {tuple(x.shape)} and dtype {x.dtype}")
    if x.numel() and (not torch.isfinite(x).all() or x.min() < 0 or x.max() > 1):
        raise ValueError(f"{name} must have finite values in [0, 1]")
    return x
