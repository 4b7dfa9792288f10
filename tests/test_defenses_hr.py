"""HR loss (seed 001), FGSM with a chosen loss and the confusion matrix: direct computations."""
import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from robustkit.defenses import conditional_confusion, fgsm_with_loss, hr_loss, hr_objective
from robustkit.infotheory import renyi_divergence


def _logits(n=7, m=5, seed=0, scale=2.0):
    g = torch.Generator().manual_seed(seed)
    return scale * torch.randn(n, m, generator=g, dtype=torch.float64), \
        torch.randint(0, m, (n,), generator=g)


def _loop_hr(logits, y, alpha):
    """Explicit python loops over samples and classes, math module only."""
    n, m = logits.shape
    ent, powers = 0.0, 0.0
    for i in range(n):
        row = [float(v) for v in logits[i]]
        mx = max(row)
        z = sum(math.exp(v - mx) for v in row)
        probs = [math.exp(v - mx) / z for v in row]
        ent += -sum(p * math.log(p) for p in probs if p > 0) / n
        powers += probs[int(y[i])] ** (1 - alpha) / n
    return ent + math.log(powers) / (alpha - 1), ent, math.log(powers) / (alpha - 1)


@pytest.mark.parametrize("alpha", [1.6, 1.1, 3.0])
def test_hr_loss_matches_explicit_loops(alpha):
    logits, y = _logits(seed=int(alpha * 10))
    loss, ent, ren = hr_loss(logits, y, alpha, return_terms=True)
    ref, ref_ent, ref_ren = _loop_hr(logits, y, alpha)
    assert loss.item() == pytest.approx(ref, rel=1e-10)
    assert ent.item() == pytest.approx(ref_ent, rel=1e-10)
    assert ren.item() == pytest.approx(ref_ren, rel=1e-10)


def test_renyi_term_is_alpha_times_seed001_divergence_of_empirical_joints():
    # p_XY puts 1/N on (x_n, y_n); p_XYhat puts p(y|x_n)/N on (x_n, y): flattened N*M tables.
    alpha = 1.6
    logits, y = _logits(n=9, m=4, seed=3)
    n, m = logits.shape
    P = torch.zeros(n, m, dtype=torch.float64)
    P[torch.arange(n), y] = 1.0 / n
    Q = torch.softmax(logits, 1) / n
    d001 = renyi_divergence(P.flatten(), Q.flatten(), alpha, normalization="seed001")
    _, _, ren = hr_loss(logits, y, alpha, return_terms=True)
    assert ren.item() == pytest.approx(alpha * d001.item(), rel=1e-10)
    assert ren.item() == pytest.approx(renyi_divergence(P.flatten(), Q.flatten(), alpha).item(),
                                       rel=1e-10)


def test_renyi_term_bounds_cross_entropy_and_tends_to_it():
    logits, y = _logits(n=32, m=10, seed=5)
    ce = F.cross_entropy(logits, y).item()
    terms = [hr_loss(logits, y, a, return_terms=True)[2].item() for a in (1.0, 1 + 1e-7, 1.3, 1.6, 2.5)]
    assert terms[0] == pytest.approx(ce, rel=1e-12)           # alpha = 1: the limit, exactly CE
    assert terms[1] == pytest.approx(ce, rel=1e-5)            # continuity at alpha -> 1
    assert all(t >= ce - 1e-12 for t in terms)                 # Jensen: CE <= alpha D_alpha
    assert all(b >= a - 1e-12 for a, b in zip(terms, terms[1:]))  # non-decreasing in alpha
    assert terms[-1] > ce + 1e-3                               # and really different from CE


def test_single_sample_renyi_term_is_cross_entropy():
    # a per-sample Renyi divergence against a one-hot label collapses to -log p_y for any alpha,
    # which is why the term must be estimated on the whole batch
    logits, y = _logits(n=1, m=6, seed=11)
    ce = F.cross_entropy(logits, y).item()
    for a in (1.2, 1.6, 4.0):
        assert hr_loss(logits, y, a, return_terms=True)[2].item() == pytest.approx(ce, rel=1e-10)
    big, yb = _logits(n=8, m=6, seed=12)
    batch = hr_loss(big, yb, 1.6, return_terms=True)[2].item()
    per_sample_mean = sum(hr_loss(big[i:i + 1], yb[i:i + 1], 1.6, return_terms=True)[2].item()
                          for i in range(8)) / 8
    assert batch > per_sample_mean + 1e-6


def test_hr_loss_gradcheck_and_stability():
    logits, y = _logits(n=5, m=4, seed=2)
    logits.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda t: hr_loss(t, y, 1.6), (logits,))
    huge = torch.tensor([[1e4, -1e4, 0.0], [-1e4, 1e4, 0.0]])
    value = hr_loss(huge, torch.tensor([1, 1]), 1.6)   # p_y ~ 0 for the first sample
    assert torch.isfinite(value) and value.item() > 1e3


def test_hr_objective_returns_loss_and_logits():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 3)).double()
    x = torch.rand(6, 1, 2, 2, dtype=torch.float64)
    y = torch.tensor([0, 1, 2, 0, 1, 2])
    loss, logits = hr_objective(2.0)(model, x, y)
    assert torch.equal(logits, model(x))
    assert loss.item() == pytest.approx(hr_loss(model(x), y, 2.0).item())


def _manual_fgsm(model, x, y, eps, loss_of_logits):
    xr = x.clone().requires_grad_(True)
    g, = torch.autograd.grad(loss_of_logits(model(xr), y), xr)
    return (x + eps * g.sign()).clamp(0, 1)


class _DropNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(16, 12), nn.Tanh())
        self.drop = nn.Dropout(0.5)
        self.head = nn.Linear(12, 3)

    def forward(self, x):
        return self.head(self.drop(self.body(x)))


@pytest.mark.parametrize("loss", ["ce", "hr"])
def test_fgsm_with_loss_matches_manual_and_restores_state(loss):
    torch.manual_seed(1)
    model = _DropNet().double()
    x = torch.rand(10, 1, 4, 4, dtype=torch.float64)
    y = torch.randint(0, 3, (10,))
    model.train()
    model.body.eval()                                      # a nested mode must survive
    p0 = next(model.parameters())
    p0.grad = torch.full_like(p0, 7.0)                     # a caller's gradient must survive
    eps = 0.1
    x_adv = fgsm_with_loss(model, x, y, eps, loss=loss)
    assert model.training and not model.body.training and model.drop.training
    assert torch.equal(p0.grad, torch.full_like(p0, 7.0))
    model.eval()
    fn = (lambda lo, t: F.cross_entropy(lo, t)) if loss == "ce" else (lambda lo, t: hr_loss(lo, t, 1.6))
    ref = _manual_fgsm(model, x, y, eps, fn)
    assert torch.allclose(x_adv, ref)
    assert (x_adv - x).abs().max() <= eps + 1e-12 and x_adv.min() >= 0 and x_adv.max() <= 1


def test_hr_fgsm_depends_on_batch_and_chunks_like_batches():
    torch.manual_seed(2)
    model = _DropNet().double().eval()
    x = torch.rand(12, 1, 4, 4, dtype=torch.float64)
    y = torch.randint(0, 3, (12,))
    chunked = fgsm_with_loss(model, x, y, 0.05, loss="hr", batch_size=4)
    parts = torch.cat([fgsm_with_loss(model, x[i:i + 4], y[i:i + 4], 0.05, loss="hr")
                       for i in range(0, 12, 4)])
    assert torch.equal(chunked, parts)
    ce_chunked = fgsm_with_loss(model, x, y, 0.05, loss="ce", batch_size=4)
    assert torch.equal(ce_chunked, fgsm_with_loss(model, x, y, 0.05, loss="ce"))  # CE decomposes


def test_conditional_confusion_against_loop():
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 4, (200,), generator=g)
    pred = torch.where(torch.rand(200, generator=g) < 0.7, y, torch.randint(0, 4, (200,), generator=g))
    C = conditional_confusion(pred, y, 5)              # class 4 absent: zero column
    for j in range(5):
        n_j = int((y == j).sum())
        for i in range(5):
            expect = float(((pred == i) & (y == j)).sum()) / n_j if n_j else 0.0
            assert C[i, j].item() == pytest.approx(expect)
    assert torch.allclose(C[:, :4].sum(0), torch.ones(4, dtype=torch.float64))
    assert torch.equal(conditional_confusion(y, y, 4), torch.eye(4, dtype=torch.float64))


def test_bad_inputs():
    logits, y = _logits()
    with pytest.raises(ValueError):
        hr_loss(logits, y, 0.5)                       # alpha must be >= 1
    with pytest.raises(ValueError):
        hr_loss(logits, y[:-1])
    with pytest.raises(ValueError):
        hr_loss(logits, y + 10)
    with pytest.raises(TypeError):
        hr_loss(logits, y.double())
    with pytest.raises(ValueError):
        hr_loss(logits[0], y[:1])
    with pytest.raises(ValueError):
        hr_objective(float("nan"))
    model = _DropNet()
    x = torch.rand(3, 1, 4, 4)
    yy = torch.tensor([0, 1, 2])
    with pytest.raises(ValueError):
        fgsm_with_loss(model, x, yy, -0.1)
    with pytest.raises(ValueError):
        fgsm_with_loss(model, x * 3, yy, 0.1)         # outside [0, 1]
    with pytest.raises(ValueError):
        fgsm_with_loss(model, x, yy, 0.1, loss="mse")
    with pytest.raises(ValueError):
        conditional_confusion(yy, yy, 2)              # label 2 out of range
    with pytest.raises(ValueError):
        conditional_confusion(yy, yy[:2], 3)
