"""Features as superpixels: masks and scores on a (possibly coarse) feature grid.

An explanation ranks *features*. For images a feature is a ``patch x patch`` superpixel
(all channels together); ``patch=1`` gives single pixels. Feature masks and scores have
shape ``(N, F)`` with ``F = (H // patch) * (W // patch)``; :func:`to_pixels` expands a
feature mask to the input shape and :func:`pool_scores` sums a pixel attribution over each
superpixel. Chapter 11 (seed 003 §7.1 evaluates MNIST with single pixels; coarse
superpixels are our cheaper setting).
"""
from __future__ import annotations

import torch


def _check_image(x: torch.Tensor, name: str = "x") -> None:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.ndim != 4:
        raise ValueError(f"{name} must have shape (N, C, H, W), got {tuple(x.shape)}")
    if x.shape[0] == 0:
        raise ValueError(f"{name} is empty")
    if not torch.is_floating_point(x):
        raise TypeError(f"{name} must be a float tensor")
    if bool((x.detach() < 0).any()) or bool((x.detach() > 1).any()):
        raise ValueError(f"{name} must lie in [0, 1]")


def _check_patch(shape, patch: int) -> tuple[int, int]:
    if not isinstance(patch, int) or isinstance(patch, bool) or patch < 1:
        raise ValueError(f"patch must be a positive int, got {patch!r}")
    H, W = shape[-2], shape[-1]
    if H % patch or W % patch:
        raise ValueError(f"patch={patch} must divide the image size {H}x{W}")
    return H // patch, W // patch


def n_features(shape, patch: int = 1) -> int:
    """Number of superpixel features ``(H/patch)*(W/patch)`` of an image of shape ``(..., H, W)``. Chapter 11."""
    h, w = _check_patch(shape, patch)
    return h * w


def to_pixels(mask: torch.Tensor, shape, patch: int = 1) -> torch.Tensor:
    """Expand a feature mask/score ``(N, F)`` to pixels ``(N, C, H, W)`` (superpixel upsampling). Chapter 11."""
    C, H, W = shape[-3], shape[-2], shape[-1]
    h, w = _check_patch(shape, patch)
    if mask.ndim != 2 or mask.shape[1] != h * w:
        raise ValueError(f"mask must have shape (N, {h * w}) for image {C}x{H}x{W} and patch {patch}, "
                         f"got {tuple(mask.shape)}")
    m = mask.reshape(-1, 1, h, w)
    if patch > 1:
        m = m.repeat_interleave(patch, dim=2).repeat_interleave(patch, dim=3)
    return m.expand(-1, C, H, W)


def pool_scores(attr: torch.Tensor, patch: int = 1, *, absolute: bool = False) -> torch.Tensor:
    """Sum a pixel attribution ``(N, C, H, W)`` over channels and superpixels -> ``(N, F)``.

    ``absolute=True`` sums ``|attr|`` (importance regardless of sign). Chapter 11.
    """
    if attr.ndim != 4:
        raise ValueError(f"attr must have shape (N, C, H, W), got {tuple(attr.shape)}")
    h, w = _check_patch(attr.shape, patch)
    a = attr.abs() if absolute else attr
    a = a.sum(1)
    N = a.shape[0]
    return a.reshape(N, h, patch, w, patch).sum((2, 4)).reshape(N, h * w)


def top_k_mask(scores: torch.Tensor, k) -> torch.Tensor:
    """Boolean ``(N, F)`` mask of the ``k`` highest scores per row (ties: lower index first).

    ``k`` is an int or a per-sample LongTensor ``(N,)`` with ``0 <= k <= F``. The relevant set
    S_r of an attribution (seed 003 §7.1.2: sort by importance, keep the top K). Chapter 11.
    """
    if scores.ndim != 2:
        raise ValueError(f"scores must have shape (N, F), got {tuple(scores.shape)}")
    N, F = scores.shape
    kt = torch.as_tensor(k, device=scores.device).long()
    if kt.ndim == 0:
        kt = kt.expand(N)
    if kt.shape != (N,):
        raise ValueError(f"k must be an int or a tensor of shape ({N},)")
    if bool((kt < 0).any()) or bool((kt > F).any()):
        raise ValueError(f"k must lie in [0, {F}]")
    if torch.isnan(scores).any():
        raise ValueError("scores contain NaN")
    order = torch.sort(scores, dim=1, descending=True, stable=True).indices
    ranks = torch.empty_like(order)
    ranks.scatter_(1, order, torch.arange(F, device=scores.device).expand(N, F))
    return ranks < kt[:, None]
