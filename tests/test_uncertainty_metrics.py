"""Tests of robustkit.uncertainty.metrics against torchmetrics, scikit-learn, scipy and brute force."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.stats import pearsonr
from sklearn.metrics import roc_auc_score, roc_curve as sk_roc_curve
from torchmetrics.classification import MulticlassCalibrationError

from robustkit.uncertainty import metrics as M


def _preds(n=2000, k=10, seed=0, temperature=2.0):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, k, generator=g) * temperature
    labels = torch.where(torch.rand(n, generator=g) < 0.7, logits.argmax(1), torch.randint(0, k, (n,), generator=g))
    return logits.softmax(1), labels


@pytest.mark.parametrize("n_bins", [5, 10, 15])
def test_ece_matches_torchmetrics(n_bins):
    probs, labels = _preds()
    ref = MulticlassCalibrationError(num_classes=10, n_bins=n_bins, norm="l1")(probs, labels).item()
    assert M.ece(probs, labels, n_bins) == pytest.approx(ref, abs=1e-5)


def test_ece_binning_is_right_closed_by_hand():
    # eq. 5.3: B_m = ((m-1)/M, m/M]; confidence 0.6 with M = 5 falls into (0.4, 0.6], not (0.6, 0.8]
    probs = torch.tensor([[0.6, 0.4], [0.7, 0.3], [0.9, 0.1], [0.95, 0.05]], dtype=torch.float64)
    labels = torch.tensor([0, 1, 0, 0])
    bins = M.reliability_bins(probs, labels, n_bins=5)
    assert bins["count"].tolist() == [0, 0, 1, 1, 2]
    assert np.isnan(bins["accuracy"][0])
    expected = 0.25 * abs(1 - 0.6) + 0.25 * abs(0 - 0.7) + 0.5 * abs(1 - 0.925)
    assert M.ece(probs, labels, 5) == pytest.approx(expected)


def test_perfect_calibration_gives_small_ece():
    g = torch.Generator().manual_seed(1)
    conf = 0.5 + 0.5 * torch.rand(200_000, generator=g, dtype=torch.float64)
    correct = torch.rand(200_000, generator=g, dtype=torch.float64) < conf   # P(correct | conf) = conf
    probs = torch.stack([conf, 1 - conf], 1)
    labels = torch.where(correct, 0, 1)
    assert M.ece(probs, labels, 15) < 0.01


def test_accuracy_nll_brier():
    probs, labels = _preds(500)
    assert M.accuracy(probs, labels) == pytest.approx((probs.argmax(1) == labels).float().mean().item())
    assert M.nll(probs, labels) == pytest.approx(F.nll_loss(probs.log(), labels).item(), rel=1e-5)
    onehot = F.one_hot(labels, 10).float()
    assert M.brier(probs, labels) == pytest.approx(((probs - onehot) ** 2).sum(1).mean().item(), rel=1e-5)
    ent = M.predictive_entropy(torch.tensor([[1.0, 0.0], [0.5, 0.5]]))
    assert torch.allclose(ent, torch.tensor([0.0, np.log(2)], dtype=ent.dtype))


def _scores(n=3000, seed=0, ties=False):
    rng = np.random.default_rng(seed)
    y = rng.random(n) < 0.15
    s = rng.normal(size=n) + 1.2 * y
    if ties:
        s = np.round(s, 1)
    return s, y


@pytest.mark.parametrize("ties", [False, True])
def test_roc_and_auroc_match_sklearn(ties):
    s, y = _scores(ties=ties)
    fpr, tpr, _ = M.roc_curve(s, y)
    sk_fpr, sk_tpr, _ = sk_roc_curve(y, s, drop_intermediate=False)
    assert np.allclose(fpr, sk_fpr) and np.allclose(tpr, sk_tpr)
    assert M.auroc(s, y) == pytest.approx(roc_auc_score(y, s), abs=1e-10)


@pytest.mark.parametrize("max_fpr", [0.05, 0.2, 0.5])
def test_partial_auc_matches_sklearn_standardized(max_fpr):
    s, y = _scores(seed=3, ties=True)
    a = M.partial_auc(s, y, max_fpr)
    # scikit-learn returns the McClish standardization of the same partial area
    lo, hi = 0.5 * max_fpr ** 2, max_fpr
    assert 0.5 * (1 + (a - lo) / (hi - lo)) == pytest.approx(roc_auc_score(y, s, max_fpr=max_fpr), abs=1e-10)
    assert 0 <= a <= max_fpr


def test_partial_auc_extremes():
    y = np.array([0, 0, 0, 1, 1])
    assert M.partial_auc([0, 0.1, 0.2, 0.9, 0.8], y, 0.2) == pytest.approx(0.2)   # perfect ranking
    assert M.partial_auc([0.9, 0.8, 0.7, 0.1, 0.2], y, 0.2) == pytest.approx(0.0)  # reversed


def test_precision_recall_at_k_brute_force():
    rng = np.random.default_rng(0)
    s = rng.permutation(400).astype(float)          # distinct scores: the top-k set is unique
    y = rng.random(400) < 0.2
    ks = np.array([1, 5, 17, 80, 399, 400])
    prec, rec = M.precision_recall_at_k(s, y, ks)
    for k, p, r in zip(ks, prec, rec):
        top = set(np.argsort(-s)[:k])
        positives = set(np.flatnonzero(y))
        tp = len(top & positives)
        assert p == pytest.approx(tp / k) and r == pytest.approx(tp / len(positives))
    p1, r1 = M.precision_recall_at_k(s, y, 17)
    assert np.ndim(p1) == 0 and p1 == pytest.approx(prec[2])


def test_pearson_and_member_correlation():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=300), rng.normal(size=300)
    b = b + a
    assert M.pearson(torch.tensor(a), torch.tensor(b)).item() == pytest.approx(pearsonr(a, b)[0])
    x = rng.normal(size=(4, 20, 3))
    assert np.allclose(M.member_correlation(x).numpy(), np.corrcoef(x.reshape(4, -1)))
    per_row = M.pearson(torch.tensor(x[0]), torch.tensor(x[1]), dim=1)
    assert np.allclose(per_row.numpy(), [pearsonr(x[0, i], x[1, i])[0] for i in range(20)])


def test_bad_inputs():
    probs, labels = _preds(20)
    with pytest.raises(ValueError, match="not logits"):
        M.ece(torch.randn(20, 10), labels)            # logits instead of probabilities
    with pytest.raises(ValueError):
        M.nll(probs, labels + 10)
    with pytest.raises(ValueError):
        M.ece(probs, labels, n_bins=0)
    with pytest.raises(ValueError):
        M.accuracy(probs, labels[:5])
    with pytest.raises(TypeError):
        M.accuracy(probs, labels.float())
    with pytest.raises(ValueError, match="both"):
        M.auroc([0.1, 0.2], [1, 1])
    with pytest.raises(ValueError):
        M.partial_auc([0.1, 0.2], [0, 1], max_fpr=0)
    with pytest.raises(ValueError):
        M.precision_recall_at_k([0.1, 0.2], [0, 1], 0)
    with pytest.raises(ValueError):
        M.roc_curve([0.1, float("nan")], [0, 1])
    with pytest.raises(ValueError):
        M.pearson(torch.zeros(3), torch.zeros(4))
    with pytest.raises(ValueError):
        M.member_correlation(torch.zeros(1, 5))


def test_uncertainty_decomposition():
    g = torch.Generator().manual_seed(0)
    p = torch.softmax(torch.randn(5, 40, 4, generator=g, dtype=torch.float64) * 2, -1)
    d = M.uncertainty_decomposition(p)
    pbar = p.mean(0)
    total = -(pbar * pbar.log()).sum(1)
    ale = -(p * p.log()).sum(2).mean(0)
    assert torch.allclose(d["total"], total) and torch.allclose(d["aleatoric"], ale)
    assert torch.allclose(d["epistemic"], total - ale) and (d["epistemic"] > 0).all()
    same = M.uncertainty_decomposition(p[:1].repeat(3, 1, 1))
    assert same["epistemic"].abs().max() < 1e-12          # identical members: no epistemic part
    with pytest.raises(ValueError):
        M.uncertainty_decomposition(p[0])
