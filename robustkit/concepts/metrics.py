r"""Concept metrics and classification by concepts (seed 000 §5.5.2, §5.6, §7.2-7.3).

Maps are compared with :mod:`robustkit.infotheory`: entropy, Bhattacharyya coefficient,
Hellinger distance and the sliced Wasserstein distance between the maps seen as images;
Gaussian concepts with the closed forms. Chapter 4.
"""
from __future__ import annotations

import math
from typing import Optional

import torch

from .. import infotheory as it
from ._checks import check_images


def _check_maps(maps) -> torch.Tensor:
    if not isinstance(maps, torch.Tensor) or maps.dim() < 2 or not maps.is_floating_point():
        raise ValueError("maps must be a float tensor (n_classes, ...) of probability maps")
    flat = maps.reshape(maps.shape[0], -1)
    if (flat < 0).any() or not torch.allclose(flat.sum(1), torch.ones_like(flat[:, 0]),
                                              atol=1e-4 * max(1.0, math.sqrt(flat.shape[1]) / 10)):
        raise ValueError("each map must be nonnegative and sum to 1")
    return flat


def map_entropy(maps: torch.Tensor, base: Optional[float] = 2) -> torch.Tensor:
    r"""Entropy :math:`H(\mathrm{map}_y) = -\sum_{ij}\mathrm{map}_y(i,j)\log_2 \mathrm{map}_y(i,j)` per map (§5.5.2)."""
    return it.entropy(_check_maps(maps), dim=-1, base=base)


def _pairwise(fn, maps) -> torch.Tensor:
    flat = _check_maps(maps)
    return fn(flat.unsqueeze(1), flat.unsqueeze(0))


def pairwise_bhattacharyya(maps: torch.Tensor) -> torch.Tensor:
    r"""Matrix of Bhattacharyya coefficients :math:`\sum_{ij}\sqrt{\mathrm{map}_y\mathrm{map}_{y'}}` (§5.5.2)."""
    return _pairwise(it.bhattacharyya, maps)


def pairwise_hellinger(maps: torch.Tensor) -> torch.Tensor:
    r"""Matrix of Hellinger distances :math:`\sqrt{1 - BC}` between maps (§5.5.2)."""
    return _pairwise(it.hellinger, maps)


def pairwise_sliced_wasserstein(maps: torch.Tensor, n_projections: int = 100,
                                seed: Optional[int] = 0) -> torch.Tensor:
    r"""Matrix of sliced :math:`W_2` distances between maps as mass on the pixel grid (§5.5.2).

    Maps ``(n, H, W)`` or ``(n, 1, H, W)``; uses
    :func:`robustkit.infotheory.image_sliced_wasserstein` (pixel units) with shared
    projections. Symmetric, zero diagonal.
    """
    _check_maps(maps)
    m = maps.reshape(maps.shape[0], maps.shape[-2], maps.shape[-1])
    n = m.shape[0]
    i, j = torch.triu_indices(n, n, 1)
    d = it.image_sliced_wasserstein(m[i], m[j], n_projections=n_projections, seed=seed)
    out = torch.zeros(n, n, dtype=d.dtype, device=d.device)
    out[i, j] = d
    out[j, i] = d
    return out


def off_diagonal_summary(matrix: torch.Tensor) -> dict:
    """Mean and min of the off-diagonal entries of a square distance matrix (seed 000 §7.3)."""
    if not isinstance(matrix, torch.Tensor) or matrix.dim() != 2 or matrix.shape[0] != matrix.shape[1] \
            or matrix.shape[0] < 2:
        raise ValueError("matrix must be square, at least 2 x 2")
    mask = ~torch.eye(matrix.shape[0], dtype=torch.bool, device=matrix.device)
    vals = matrix[mask]
    return {"mean": float(vals.mean()), "min": float(vals.min())}


def concept_summary(maps: torch.Tensor, n_projections: int = 100, seed: Optional[int] = 0) -> dict:
    """All map metrics of seed 000 §7.3: mean/max entropy (bits), mean/min Hellinger and SW2."""
    h = map_entropy(maps)
    hel = off_diagonal_summary(pairwise_hellinger(maps))
    sw = off_diagonal_summary(pairwise_sliced_wasserstein(maps, n_projections, seed))
    return {"entropy_mean": float(h.mean()), "entropy_max": float(h.max()),
            "hellinger_mean": hel["mean"], "hellinger_min": hel["min"],
            "sw_mean": sw["mean"], "sw_min": sw["min"]}


def map_log_likelihood(images: torch.Tensor, maps: torch.Tensor, *, weighting: str = "binary",
                       threshold: float = 0.5, eps: float = 1e-12) -> torch.Tensor:
    r"""Log-likelihood score of each image under each class map ``(N, n_classes)`` (seed 000 §5.5.2).

    ``weighting="binary"``: :math:`\sum_{ij:\,I_{ij}>t}\log\mathrm{map}_y(i,j)`, the log of the
    seed's "probability that all alight pixels of I would have been set alight" (the
    seed's factor :math:`\prod I_{ij}` does not depend on ``y`` and is dropped);
    ``"intensity"``: :math:`\sum_{ij} I_{ij}\log\mathrm{map}_y(i,j)`, the multinomial
    log-likelihood with the intensities as counts. Chapter 4.
    """
    images = check_images(images)
    flat_maps = _check_maps(maps)
    flat = images.reshape(images.shape[0], -1)
    if flat.shape[1] != flat_maps.shape[1]:
        raise ValueError(f"images have {flat.shape[1]} pixels, maps {flat_maps.shape[1]}")
    if weighting == "binary":
        w = (flat > threshold).to(flat_maps.dtype)
    elif weighting == "intensity":
        w = flat.to(flat_maps.dtype)
    else:
        raise ValueError(f"weighting must be 'binary' or 'intensity', got {weighting!r}")
    return w @ torch.log(flat_maps + eps).T


def classify_by_concepts(images: torch.Tensor, maps: torch.Tensor, **kwargs) -> torch.Tensor:
    """Predicted class: argmax of :func:`map_log_likelihood` (seed 000 §7.2, about 70% on MNIST)."""
    return map_log_likelihood(images, maps, **kwargs).argmax(1)


def gaussian_concept_metrics(means: torch.Tensor, covs: torch.Tensor, w2: bool = True) -> dict:
    r"""Entropy, Bhattacharyya distance, Hellinger and :math:`W_2` of Gaussian concepts (seed 000 §5.6).

    The Hellinger distance saturates at 1 for nearly disjoint high-dimensional normals;
    the Bhattacharyya distance :math:`-\log BC` keeps resolving them.

    ``means`` ``(n, d)`` (or image-shaped), ``covs`` ``(n, d, d)``; uses
    :func:`robustkit.infotheory.gaussian_entropy`, ``gaussian_hellinger`` and ``gaussian_w2``
    (``w2=False`` skips the matrix square roots, slow at 784 dimensions).
    """
    m = means.reshape(means.shape[0], -1)
    n, d = m.shape
    if covs.shape != (n, d, d):
        raise ValueError(f"covs must have shape ({n}, {d}, {d}), got {tuple(covs.shape)}")
    i, j = torch.triu_indices(n, n, 1)
    db = torch.zeros(n, n, dtype=m.dtype)
    db[i, j] = db[j, i] = it.gaussian_bhattacharyya_distance(m[i], covs[i], m[j], covs[j]).to(m.dtype)
    hel = torch.sqrt((-torch.expm1(-db)).clamp(0.0, 1.0))      # H = sqrt(1 - BC), BC = exp(-D_B)
    out = {"entropy": it.gaussian_entropy(covs), "bhattacharyya_distance": db, "hellinger": hel}
    if w2:
        dist = torch.zeros(n, n, dtype=m.dtype)
        dist[i, j] = dist[j, i] = it.gaussian_w2(m[i], covs[i], m[j], covs[j]).to(m.dtype)
        out["w2"] = dist
    return out
