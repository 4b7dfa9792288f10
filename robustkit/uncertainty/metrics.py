"""Metrics of predictive uncertainty: calibration, OOD detection, pixel ranking, diversity.

Seed 003 ch. 5 (Liu 2021): accuracy, negative log-likelihood and the expected calibration
error (ECE, eq. 5.3, Naeini et al. 2015; Guo et al. 2017) of §5.5; the ranking metrics
Precision@k / Recall@k (eq. 5.1), the ROC curve and the area under it for FPR <= 0.2 of
the image-to-image benchmark (§5.3); the Pearson correlation of the distribution-shift
experiment (Table 5.1) and between ensemble members.

Conventions: ``probs`` are predictive probabilities ``(N, K)`` (rows sum to one), scores
are "higher = more uncertain / more likely positive". Used by: chapter 10.
"""
from __future__ import annotations

import math

import numpy as np
import torch

__all__ = ["accuracy", "nll", "ece", "reliability_bins", "brier", "predictive_entropy",
           "roc_curve", "auroc", "partial_auc", "precision_recall_at_k", "pearson",
           "member_correlation", "classification_report", "uncertainty_decomposition"]


def _probs(probs, labels=None):
    if not isinstance(probs, torch.Tensor):
        probs = torch.as_tensor(np.asarray(probs))
    if probs.ndim != 2 or probs.shape[0] == 0 or probs.shape[1] < 2:
        raise ValueError(f"probs must have shape (N, K) with N >= 1 and K >= 2, got {tuple(probs.shape)}")
    if not probs.is_floating_point():
        raise TypeError(f"probs must be floating point, got {probs.dtype}")
    probs = probs.detach()
    if not bool(torch.isfinite(probs).all()) or bool((probs < 0).any()):
        raise ValueError("probs must be finite and non-negative (pass softmax probabilities, not logits)")
    if not torch.allclose(probs.sum(1), torch.ones(1, dtype=probs.dtype, device=probs.device), atol=1e-3):
        raise ValueError("rows of probs must sum to 1 (pass softmax probabilities, not logits)")
    if labels is None:
        return probs
    if not isinstance(labels, torch.Tensor):
        labels = torch.as_tensor(np.asarray(labels))
    if labels.shape != probs.shape[:1]:
        raise ValueError(f"labels must have shape ({probs.shape[0]},), got {tuple(labels.shape)}")
    if labels.is_floating_point() or labels.dtype == torch.bool:
        raise TypeError(f"labels must be integers, got {labels.dtype}")
    if bool((labels < 0).any()) or bool((labels >= probs.shape[1]).any()):
        raise ValueError(f"labels must lie in [0, {probs.shape[1] - 1}]")
    return probs, labels.to(probs.device)


def accuracy(probs, labels) -> float:
    """Fraction of rows whose arg-max equals the label."""
    probs, labels = _probs(probs, labels)
    return float((probs.argmax(1) == labels).double().mean())


def nll(probs, labels, eps: float = 1e-12) -> float:
    """Mean negative log-likelihood ``-mean log p(y|x)`` (nats); probabilities floored at ``eps``."""
    probs, labels = _probs(probs, labels)
    return float(-probs.gather(1, labels[:, None]).clamp_min(eps).double().log().mean())


def brier(probs, labels) -> float:
    """Mean Brier score ``sum_k (p_k - 1[y=k])^2``."""
    probs, labels = _probs(probs, labels)
    onehot = torch.nn.functional.one_hot(labels, probs.shape[1]).to(probs.dtype)
    return float((probs - onehot).pow(2).sum(1).double().mean())


def predictive_entropy(probs) -> torch.Tensor:
    """Entropy ``-sum_k p_k log p_k`` of each row (nats), ``0 log 0 = 0``: an uncertainty score."""
    probs = _probs(probs)
    return -(probs * torch.where(probs > 0, probs.log(), torch.zeros_like(probs))).sum(1)


def _check_bins(n_bins) -> int:
    if isinstance(n_bins, bool) or not isinstance(n_bins, (int, np.integer)) or n_bins < 1:
        raise ValueError(f"n_bins must be a positive integer, got {n_bins!r}")
    return int(n_bins)


def reliability_bins(probs, labels, n_bins: int = 15) -> dict:
    """Confidence binning of seed 003 eq. (5.3): ``B_m = ((m-1)/M, m/M]``, ``M = n_bins``.

    Confidence = max probability, correctness = arg-max == label; a confidence of exactly 0
    (impossible for K >= 2 classes) would go to the first bin. Returns numpy arrays
    ``edges`` (M+1,), ``count``, ``accuracy`` and ``confidence`` per bin (nan for empty
    bins). Used by :func:`ece` and the reliability diagrams of chapter 10.
    """
    probs, labels = _probs(probs, labels)
    n_bins = _check_bins(n_bins)
    conf, pred = probs.double().max(1)
    correct = (pred == labels).double()
    edges = torch.linspace(0, 1, n_bins + 1, dtype=torch.float64, device=conf.device)
    # right-closed bins: index m-1 such that (m-1)/M < conf <= m/M
    idx = (torch.bucketize(conf, edges, right=False) - 1).clamp(0, n_bins - 1)
    count = torch.bincount(idx, minlength=n_bins).double()
    acc_sum = torch.bincount(idx, weights=correct, minlength=n_bins)
    conf_sum = torch.bincount(idx, weights=conf, minlength=n_bins)
    safe = count.clamp_min(1)
    nan = torch.full_like(count, float("nan"))
    return {"edges": edges.cpu().numpy(), "count": count.cpu().numpy().astype(np.int64),
            "accuracy": torch.where(count > 0, acc_sum / safe, nan).cpu().numpy(),
            "confidence": torch.where(count > 0, conf_sum / safe, nan).cpu().numpy()}


def ece(probs, labels, n_bins: int = 15) -> float:
    """Expected calibration error, seed 003 eq. (5.3) with ``n_bins`` equal-width bins.

    ``ECE = sum_m |B_m| / n * |Acc(B_m) - Conf(B_m)|`` over the bins
    ``B_m = ((m-1)/M, m/M]`` of the top-class confidence (Naeini et al. 2015; Guo et al.
    2017 use M = 15, our default). Matches ``torchmetrics`` ``MulticlassCalibrationError
    (n_bins=M, norm="l1")`` except for confidences lying exactly on a bin edge, which
    torchmetrics puts in the bin on their right.
    """
    bins = reliability_bins(probs, labels, n_bins)
    count = bins["count"]
    n = count.sum()
    gap = np.abs(np.nan_to_num(bins["accuracy"]) - np.nan_to_num(bins["confidence"]))
    return float((count / n * gap).sum())


def _scores_labels(scores, labels):
    s = torch.as_tensor(scores).detach().reshape(-1).double().cpu()
    y = torch.as_tensor(labels).detach().reshape(-1).cpu()
    if s.shape != y.shape:
        raise ValueError(f"scores and labels must have the same number of entries, got {s.numel()} and {y.numel()}")
    if s.numel() == 0:
        raise ValueError("scores must not be empty")
    if not bool(torch.isfinite(s).all()):
        raise ValueError("scores must be finite")
    if y.is_floating_point() and not bool(((y == 0) | (y == 1)).all()):
        raise ValueError("labels must be binary (0 = negative / in-distribution, 1 = positive)")
    y = y.bool() if y.dtype != torch.bool else y
    if y.all() or (~y).all():
        raise ValueError("labels must contain both positives and negatives")
    return s, y


def roc_curve(scores, labels) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ROC curve of the ranking "higher score = positive": ``(fpr, tpr, thresholds)``.

    One point per distinct score (ties form a single step, as in scikit-learn), starting
    at (0, 0). ``labels``: 1 / True for positives (OOD pixels or OOD images). Vectorized
    (one sort). Used by :func:`auroc`, :func:`partial_auc` and the ROC figures of chapter 10.
    """
    s, y = _scores_labels(scores, labels)
    order = torch.argsort(s, descending=True, stable=True)
    s, y = s[order], y[order].double()
    tp, fp = torch.cumsum(y, 0), torch.cumsum(1 - y, 0)
    last = torch.ones_like(s, dtype=torch.bool)
    last[:-1] = s[1:] != s[:-1]          # keep the last index of each group of ties
    tpr = torch.cat([torch.zeros(1, dtype=torch.float64), tp[last] / tp[-1]])
    fpr = torch.cat([torch.zeros(1, dtype=torch.float64), fp[last] / fp[-1]])
    thr = torch.cat([torch.tensor([float("inf")], dtype=torch.float64), s[last]])
    return fpr.numpy(), tpr.numpy(), thr.numpy()


def partial_auc(scores, labels, max_fpr: float = 0.2) -> float:
    """Area under the ROC curve for ``FPR <= max_fpr``, *not* standardized (max = ``max_fpr``).

    This is the "AUC (controlling FPR <= 0.2)" of seed 003 Fig. 5.2 / Table 5.1, whose
    values lie in [0, 0.2] (a random ranking scores ``max_fpr^2 / 2 = 0.02``). The ROC is
    linearly interpolated at ``max_fpr``. scikit-learn's ``roc_auc_score(max_fpr=...)``
    returns the McClish-standardized ``(1 + (A - m^2/2) / (m - m^2/2)) / 2`` of this area.
    """
    if not isinstance(max_fpr, (int, float)) or not 0 < max_fpr <= 1:
        raise ValueError(f"max_fpr must be in (0, 1], got {max_fpr!r}")
    fpr, tpr, _ = roc_curve(scores, labels)
    stop = np.searchsorted(fpr, max_fpr, side="right")
    x, y = fpr[:stop], tpr[:stop]
    if x[-1] < max_fpr:
        lo = stop - 1
        t = tpr[lo] + (tpr[stop] - tpr[lo]) * (max_fpr - fpr[lo]) / (fpr[stop] - fpr[lo])
        x, y = np.append(x, max_fpr), np.append(y, t)
    return float(np.trapezoid(y, x) if hasattr(np, "trapezoid") else np.trapz(y, x))


def auroc(scores, labels) -> float:
    """Area under the ROC curve (= probability that a positive outranks a negative, ties 1/2)."""
    return partial_auc(scores, labels, 1.0)


def precision_recall_at_k(scores, labels, k) -> tuple[np.ndarray, np.ndarray]:
    """Precision@k and Recall@k of seed 003 eq. (5.1), for one ``k`` or an array of ``k``.

    Rank the entries (pixels) by ``scores`` in descending order, take the top-``k`` set
    ``S2``; with ``S1`` the positives (pixels inside the OOD boxes),
    ``TP@k = |S1 ∩ S2|``, ``Precision@k = TP@k / k``, ``Recall@k = TP@k / |S1|``.
    Ties are broken by position (stable sort). Returns two arrays of the shape of ``k``.
    """
    s, y = _scores_labels(scores, labels)
    ks = np.atleast_1d(np.asarray(k))
    if ks.size == 0 or not np.issubdtype(ks.dtype, np.integer) or (ks < 1).any() or (ks > s.numel()).any():
        raise ValueError(f"k must be integers in [1, {s.numel()}], got {k!r}")
    order = torch.argsort(s, descending=True, stable=True)
    tp = torch.cumsum(y[order].double(), 0).numpy()[ks - 1]
    precision, recall = tp / ks, tp / float(y.sum())
    shape = np.shape(k)
    return precision.reshape(shape), recall.reshape(shape)


def pearson(a, b, dim: int = -1) -> torch.Tensor:
    """Pearson correlation of ``a`` and ``b`` along ``dim`` (e.g. per image: flatten first).

    Used for the distribution-shift experiment of seed 003 (Table 5.1: correlation between
    a U-Net's prediction and the ground truth) and :func:`member_correlation`.
    """
    a, b = torch.as_tensor(a).double(), torch.as_tensor(b).double()
    if a.shape != b.shape:
        raise ValueError(f"a and b must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}")
    if a.numel() == 0 or a.shape[dim] < 2:
        raise ValueError("need at least 2 entries along dim")
    a = a - a.mean(dim, keepdim=True)
    b = b - b.mean(dim, keepdim=True)
    denom = (a.pow(2).sum(dim) * b.pow(2).sum(dim)).sqrt()
    return (a * b).sum(dim) / denom.clamp_min(1e-300)


def member_correlation(samples) -> torch.Tensor:
    """Pearson correlation matrix ``(S, S)`` between the flattened outputs of ``S`` members.

    ``samples`` has shape ``(S, N, ...)`` (e.g. predicted probabilities or errors of each
    member); the off-diagonal mean measures the (lack of) diversity of an ensemble.
    """
    x = torch.as_tensor(samples).double()
    if x.ndim < 2 or x.shape[0] < 2:
        raise ValueError(f"samples must have shape (S >= 2, N, ...), got {tuple(x.shape)}")
    x = x.reshape(x.shape[0], -1)
    x = x - x.mean(1, keepdim=True)
    x = x / x.norm(dim=1, keepdim=True).clamp_min(1e-300)
    return x @ x.T


def classification_report(probs, labels, n_bins: int = 15) -> dict:
    """``{"accuracy", "nll", "ece", "brier"}`` of predictive probabilities (Table 5.2 metrics)."""
    return {"accuracy": accuracy(probs, labels), "nll": nll(probs, labels),
            "ece": ece(probs, labels, n_bins), "brier": brier(probs, labels)}


def uncertainty_decomposition(member_probs) -> dict:
    """Split the predictive entropy into aleatoric and epistemic parts (Depeweg et al. 2018).

    ``member_probs``: ``(S, N, K)`` probabilities of ``S`` members / posterior draws.
    ``total = H[mean_s p_s]``, ``aleatoric = mean_s H[p_s]`` (expected data noise),
    ``epistemic = total - aleatoric`` = the mutual information ``I(y; w | x)`` between the
    label and the weights, >= 0 by concavity of H (zero when all members agree).
    Returns a dict of ``(N,)`` tensors. Used by: chapter 10 (§10.1).
    """
    p = torch.as_tensor(member_probs)
    if p.ndim != 3 or p.shape[0] < 1:
        raise ValueError(f"member_probs must have shape (S, N, K), got {tuple(p.shape)}")
    total = predictive_entropy(p.mean(0))
    aleatoric = torch.stack([predictive_entropy(q) for q in p]).mean(0)
    return {"total": total, "aleatoric": aleatoric, "epistemic": (total - aleatoric).clamp_min(0)}
