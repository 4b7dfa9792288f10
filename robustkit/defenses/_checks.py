"""Input checks shared by the defenses (private)."""
from __future__ import annotations

import math
from numbers import Real

import torch
import torch.nn as nn


def check_model(model) -> None:
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")


def check_batch(x, y) -> None:
    """``x`` float (N, ...) in [0, 1], ``y`` integer labels (N,)."""
    if not isinstance(x, torch.Tensor) or not isinstance(y, torch.Tensor):
        raise TypeError("x and y must be torch tensors")
    if not x.is_floating_point():
        raise TypeError(f"x must be a floating-point tensor, got dtype {x.dtype}")
    if x.ndim < 2 or x.shape[0] == 0:
        raise ValueError(f"x must be a non-empty batch (N, ...), got shape {tuple(x.shape)}")
    if y.ndim != 1 or y.shape[0] != x.shape[0]:
        raise ValueError(f"shape mismatch: y has shape {tuple(y.shape)}, expected ({x.shape[0]},)")
    if y.is_floating_point() or y.dtype == torch.bool:
        raise TypeError(f"y must hold integer class labels, got dtype {y.dtype}")
    xd = x.detach()
    if not bool(torch.isfinite(xd).all()):
        raise ValueError("x contains NaN or infinite values")
    if bool((xd < 0).any()) or bool((xd > 1).any()):
        raise ValueError(f"x must lie in [0, 1] (images in pixel space), got range "
                         f"[{float(xd.min()):.4g}, {float(xd.max()):.4g}]")


def check_logits(logits, y) -> None:
    if not isinstance(logits, torch.Tensor) or logits.ndim != 2 or not logits.is_floating_point():
        raise ValueError("logits must be a float tensor of shape (N, classes)")
    if logits.shape[0] == 0:
        raise ValueError("logits must hold at least one row")
    if not isinstance(y, torch.Tensor) or y.shape != logits.shape[:1]:
        shape = tuple(y.shape) if isinstance(y, torch.Tensor) else type(y).__name__
        raise ValueError(f"shape mismatch: y has shape {shape}, expected ({logits.shape[0]},)")
    if y.is_floating_point() or y.dtype == torch.bool:
        raise TypeError(f"y must hold integer class labels, got dtype {y.dtype}")
    if bool((y < 0).any()) or bool((y >= logits.shape[1]).any()):
        raise ValueError(f"labels must lie in [0, {logits.shape[1] - 1}]")


def check_number(value, name: str, *, low: float = 0.0, strict: bool = False,
                 high: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, Real) or math.isnan(float(value)) \
            or math.isinf(float(value)):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    value = float(value)
    if (strict and value <= low) or (not strict and value < low):
        raise ValueError(f"{name} must be {'>' if strict else '>='} {low}, got {value!r}")
    if high is not None and value > high:
        raise ValueError(f"{name} must be <= {high}, got {value!r}")
    return value


NORMS = {"linf": math.inf, "l2": 2.0, "l1": 1.0}


def check_norm(norm) -> str:
    key = str(norm).strip().lower() if isinstance(norm, str) else norm
    aliases = {"inf": "linf", "linf": "linf", "l_inf": "linf", math.inf: "linf",
               "l2": "l2", 2: "l2", "2": "l2", "l1": "l1", 1: "l1", "1": "l1"}
    if key not in aliases:
        raise ValueError(f"unknown norm {norm!r}: choose 'linf', 'l2' or 'l1'")
    return aliases[key]
