"""Shared figures: one style, image grids, curves, training histories and heatmaps.

Every function builds its figure with ``fig, ax = plt.subplots(...)`` and *returns* it
(a ``Figure`` or an ``Axes``) without calling ``plt.show()``: chapters end the cell
with ``plt.show()`` (or assign the result), tests use the Agg backend. The colours
are the Okabe-Ito palette, readable by colour-blind readers and in grayscale print.

Used by: every chapter (first defined in chapter 0, *Getting started*).
"""
from __future__ import annotations

import math
from typing import Mapping, Sequence

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np

__all__ = [
    "OKABE_ITO",
    "CORRECT_COLOR",
    "WRONG_COLOR",
    "STYLE",
    "set_style",
    "image_grid",
    "plot_curves",
    "plot_history",
    "heatmap",
]

# Okabe & Ito (2008), "Color Universal Design": distinguishable under all common
# colour-vision deficiencies.
OKABE_ITO = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7",
             "#56B4E9", "#F0E442", "#000000")
CORRECT_COLOR = "#009E73"  # bluish green: prediction == label
WRONG_COLOR = "#D55E00"    # vermillion: prediction != label

STYLE: dict = {
    "figure.dpi": 110,
    "savefig.dpi": 150,
    "savefig.bbox": "tight",
    "font.size": 10,
    "axes.titlesize": 11,
    "axes.labelsize": 10,
    "xtick.labelsize": 9,
    "ytick.labelsize": 9,
    "legend.fontsize": 9,
    "legend.frameon": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "grid.linestyle": "-",
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.prop_cycle": mpl.cycler(color=list(OKABE_ITO)),
    "image.cmap": "viridis",
    "lines.linewidth": 1.8,
    "lines.markersize": 4,
}


def set_style() -> dict:
    """Apply the course's matplotlib style (``STYLE``) to ``rcParams``; return it.

    Font sizes for a notebook column, a light grid, no top/right spines, 110 dpi in
    notebooks, the Okabe-Ito colour cycle. Changes the global rcParams (that is what a
    style is); call it once at the top of a chapter. Used by: every chapter.
    """
    mpl.rcParams.update(STYLE)
    return dict(STYLE)


def _to_numpy(a, name: str) -> np.ndarray:
    if hasattr(a, "detach"):
        a = a.detach().to("cpu").numpy()
    try:
        return np.asarray(a)
    except Exception as exc:
        raise TypeError(f"{name} must be array-like, got {type(a).__name__}") from exc


def _name(value, class_names) -> str:
    v = int(value)
    if class_names is None:
        return str(v)
    if not 0 <= v < len(class_names):
        raise ValueError(f"class index {v} out of range for {len(class_names)} class names")
    return str(class_names[v])


def image_grid(images, labels=None, preds=None, class_names: Sequence[str] | None = None,
               ncols: int = 8, title: str | None = None, cmap: str = "gray",
               ax_size: float = 1.4, vmin: float = 0.0, vmax: float = 1.0):
    """A grid of images with optional labels / predictions as titles; returns the Figure.

    ``images``: tensor or array ``(N, 1, H, W)``, ``(N, 3, H, W)`` or ``(N, H, W)``, values
    in ``[vmin, vmax]`` (default ``[0, 1]``; pass e.g. ``vmin=-eps, vmax=eps`` to show
    perturbations). With ``labels`` and ``preds`` each title is the prediction, in green
    when it equals the label and in red (with the true label in brackets) otherwise;
    with only one of them the titles are black. One axis per image (``len(fig.axes) ==
    N``). Used by: every chapter showing data, adversarial examples or generated images.
    """
    x = _to_numpy(images, "images").astype(np.float64, copy=False)
    if x.ndim == 3:
        x = x[:, None]
    if x.ndim != 4 or x.shape[1] not in (1, 3):
        raise ValueError(f"images must have shape (N, 1, H, W), (N, 3, H, W) or (N, H, W), "
                         f"got {tuple(x.shape)}")
    n = x.shape[0]
    if n == 0:
        raise ValueError("images is empty")
    if not (isinstance(ncols, (int, np.integer)) and ncols >= 1):
        raise ValueError(f"ncols must be a positive integer, got {ncols!r}")
    if not vmax > vmin:
        raise ValueError(f"need vmax > vmin, got vmin={vmin}, vmax={vmax}")
    lab = None if labels is None else _to_numpy(labels, "labels").reshape(-1)
    pre = None if preds is None else _to_numpy(preds, "preds").reshape(-1)
    for arr, what in ((lab, "labels"), (pre, "preds")):
        if arr is not None and arr.shape[0] != n:
            raise ValueError(f"{what} has {arr.shape[0]} entries for {n} images")

    ncols = int(min(ncols, n))
    nrows = math.ceil(n / ncols)
    extra = 0.35 if (lab is not None and pre is not None) else 0.2
    fig, axes = plt.subplots(nrows, ncols, squeeze=False,
                             figsize=(ax_size * ncols, (ax_size + extra) * nrows + (0.4 if title else 0)))
    for i, ax in enumerate(axes.flat):
        if i >= n:
            fig.delaxes(ax)
            continue
        img = x[i]
        if img.shape[0] == 1:
            ax.imshow(img[0], cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest")
        else:
            rgb = np.clip((img.transpose(1, 2, 0) - vmin) / (vmax - vmin), 0.0, 1.0)
            ax.imshow(rgb, interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.grid(False)
        for spine in ax.spines.values():
            spine.set_visible(False)
        if lab is not None and pre is not None:
            ok = int(pre[i]) == int(lab[i])
            text = _name(pre[i], class_names)
            if not ok:
                text += f" ({_name(lab[i], class_names)})"
            ax.set_title(text, color=CORRECT_COLOR if ok else WRONG_COLOR, fontsize=9)
        elif lab is not None or pre is not None:
            ax.set_title(_name((lab if lab is not None else pre)[i], class_names),
                         color="black", fontsize=9)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_curves(curves: Mapping[str, object], xlabel: str = "", ylabel: str = "",
                title: str | None = None, ax=None, logy: bool = False,
                errorbars: Mapping[str, object] | None = None, marker: str | None = "o"):
    """Plot several named curves on one Axes; returns the Axes.

    ``curves`` maps a label to ``(x, y)`` or to ``y`` alone (then ``x = 0, 1, ...``);
    ``errorbars`` optionally maps some labels to ``yerr`` (same length as ``y``: e.g. a
    standard deviation over seeds), drawn as error bars. ``logy`` uses a log y axis.
    Used by: accuracy-vs-eps curves, divergences vs ball size, calibration curves.
    """
    if not isinstance(curves, Mapping) or len(curves) == 0:
        raise ValueError("curves must be a non-empty dict {label: (x, y) or y}")
    errorbars = dict(errorbars or {})
    unknown = set(errorbars) - set(curves)
    if unknown:
        raise ValueError(f"errorbars given for unknown curves: {sorted(unknown)}")
    if ax is None:
        _, ax = plt.subplots(figsize=(5.5, 3.6))
    for label, value in curves.items():
        if isinstance(value, tuple) and len(value) == 2:
            xs, ys = (_to_numpy(v, f"curve {label!r}").astype(float).reshape(-1) for v in value)
        else:
            ys = _to_numpy(value, f"curve {label!r}").astype(float).reshape(-1)
            xs = np.arange(ys.shape[0], dtype=float)
        if xs.shape != ys.shape or ys.size == 0:
            raise ValueError(f"curve {label!r}: x and y must be non-empty and of equal length, "
                             f"got {xs.shape} and {ys.shape}")
        if label in errorbars:
            err = _to_numpy(errorbars[label], f"errorbars[{label!r}]").astype(float).reshape(-1)
            if err.shape != ys.shape:
                raise ValueError(f"errorbars[{label!r}] has length {err.size}, expected {ys.size}")
            ax.errorbar(xs, ys, yerr=err, label=str(label), marker=marker, capsize=3)
        else:
            ax.plot(xs, ys, label=str(label), marker=marker)
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    if len(curves) > 1:
        ax.legend()
    return ax


def plot_history(history, title: str | None = None):
    """Loss and accuracy per epoch of a training run; returns a Figure with two Axes.

    ``history`` is a :class:`robustkit.train.History` or its ``as_dict()``. Training
    curves are solid, validation curves (if any) dashed; a training accuracy that was
    not tracked (``nan``) is not drawn. Used by: chapters that train a model.
    """
    h = history.as_dict() if hasattr(history, "as_dict") else history
    if not isinstance(h, Mapping) or "train_loss" not in h:
        raise TypeError("history must be a History or a dict with 'train_loss'")
    if len(h["train_loss"]) == 0:
        raise ValueError("history is empty (no epoch was trained)")
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(9, 3.4))
    epochs = np.arange(1, len(h["train_loss"]) + 1)
    ax_loss.plot(epochs, h["train_loss"], marker="o", label="train")
    if h.get("val_loss"):
        ax_loss.plot(epochs[:len(h["val_loss"])], h["val_loss"], marker="o", ls="--", label="validation")
    acc = np.asarray(h.get("train_accuracy") or [np.nan], dtype=float)
    if np.isfinite(acc).any():
        ax_acc.plot(epochs[:acc.size], acc, marker="o", label="train")
    if h.get("val_accuracy"):
        ax_acc.plot(epochs[:len(h["val_accuracy"])], h["val_accuracy"], marker="o", ls="--",
                    label="validation")
    ax_loss.set(xlabel="epoch", ylabel="loss", title="loss")
    ax_acc.set(xlabel="epoch", ylabel="accuracy", title="accuracy")
    for ax in (ax_loss, ax_acc):
        ax.xaxis.get_major_locator().set_params(integer=True)
        if ax.get_legend_handles_labels()[0]:
            ax.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def heatmap(matrix, xticklabels: Sequence | None = None, yticklabels: Sequence | None = None, *,
            ax=None, cmap: str = "viridis", annotate: bool | None = None, fmt: str | None = None,
            vmin: float | None = None, vmax: float | None = None, colorbar: bool = True,
            xlabel: str = "", ylabel: str = "", title: str | None = None):
    """Draw a 2-D array as a heatmap (confusion matrices, divergence tables, maps).

    Rows go down, columns across (``matrix[i, j]`` at row ``i``, column ``j``). Cells are
    annotated with their value (``annotate=None``: only when the matrix has at most 20
    rows and columns), formatted with ``fmt`` (default ``"d"`` for integers, ``".2f"``
    otherwise), in white or black for contrast. Returns the Axes.
    Used by: confusion matrices, pairwise distances between class distributions.
    """
    m = _to_numpy(matrix, "matrix")
    if m.ndim != 2 or m.size == 0:
        raise ValueError(f"matrix must be a non-empty 2-D array, got shape {m.shape}")
    for labels_, size, what in ((xticklabels, m.shape[1], "xticklabels"),
                                (yticklabels, m.shape[0], "yticklabels")):
        if labels_ is not None and len(labels_) != size:
            raise ValueError(f"{what} has {len(labels_)} entries for {size} {'columns' if what[0] == 'x' else 'rows'}")
    is_int = np.issubdtype(m.dtype, np.integer) or m.dtype == bool
    values = m.astype(float)
    if ax is None:
        _, ax = plt.subplots(figsize=(max(3.0, 0.45 * m.shape[1] + 1.5), max(2.5, 0.45 * m.shape[0] + 1.0)))
    im = ax.imshow(values, cmap=cmap, vmin=vmin, vmax=vmax, aspect="auto", interpolation="nearest")
    ax.grid(False)
    ax.set_xticks(np.arange(m.shape[1]))
    ax.set_yticks(np.arange(m.shape[0]))
    if xticklabels is not None:
        xt = [str(t) for t in xticklabels]
        long_ = max(map(len, xt)) > 3
        ax.set_xticklabels(xt, rotation=45 if long_ else 0, ha="right" if long_ else "center")
    if yticklabels is not None:
        ax.set_yticklabels([str(t) for t in yticklabels])
    if annotate is None:
        annotate = max(m.shape) <= 20
    if annotate:
        fmt = fmt or ("d" if is_int else ".2f")
        for i in range(m.shape[0]):
            for j in range(m.shape[1]):
                v = values[i, j]
                r, g, b, _ = im.cmap(im.norm(v)) if np.isfinite(v) else (1.0, 1.0, 1.0, 1.0)
                dark = 0.299 * r + 0.587 * g + 0.114 * b < 0.5  # perceived luminance
                text = format(int(m[i, j]) if is_int else v, fmt)
                ax.text(j, i, text, ha="center", va="center", fontsize=8,
                        color="white" if dark else "black")
    if colorbar:
        ax.figure.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    return ax
