"""Figures of the uncertainty chapter: reliability diagrams and OOD boxes over uncertainty maps.

Used by: chapter 10.
"""
from __future__ import annotations

import numpy as np

from .metrics import ece, reliability_bins

__all__ = ["reliability_diagram", "draw_boxes"]


def reliability_diagram(probs, labels, n_bins: int = 15, ax=None, title: str | None = None,
                        color: str = "#0072B2"):
    """Reliability diagram (Guo et al. 2017): accuracy per confidence bin of eq. (5.3) vs the diagonal.

    Bars: accuracy of each bin ``((m-1)/M, m/M]``; red hatched: the gap to the bin's mean
    confidence; the ECE and the number of bins are written in the corner. Returns ``ax``.
    """
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(3.4, 3.4))
    bins = reliability_bins(probs, labels, n_bins)
    edges, acc, conf = bins["edges"], bins["accuracy"], bins["confidence"]
    centers, width = (edges[:-1] + edges[1:]) / 2, edges[1] - edges[0]
    ok = bins["count"] > 0
    ax.bar(centers[ok], acc[ok], width=width, color=color, edgecolor="k", lw=0.5, label="accuracy")
    ax.bar(centers[ok], conf[ok] - acc[ok], bottom=acc[ok], width=width, color="#D55E00", alpha=0.35,
           edgecolor="#D55E00", hatch="//", lw=0.5, label="gap to confidence")
    ax.plot([0, 1], [0, 1], "k--", lw=1)
    ax.text(0.04, 0.93, f"ECE = {ece(probs, labels, n_bins):.3f}\n(M = {n_bins} bins)", va="top", fontsize=8,
            bbox={"facecolor": "white", "alpha": 0.8, "lw": 0})
    ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="confidence", ylabel="accuracy")
    if title:
        ax.set_title(title, fontsize=10)
    return ax


def draw_boxes(ax, boxes, color: str = "#00FF66", lw: float = 1.5) -> None:
    """Draw boxes ``(B, 4)`` = (top, left, height, width) in pixel coordinates on an image axis."""
    from matplotlib.patches import Rectangle

    for t, l, h, w in np.asarray(boxes).reshape(-1, 4).tolist():
        ax.add_patch(Rectangle((l - 0.5, t - 0.5), w, h, fill=False, edgecolor=color, lw=lw))
