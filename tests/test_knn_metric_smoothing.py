"""robustkit.knn.metric (ARML, seed 003 §3.2) and robustkit.knn.smoothing (Cohen et al. 2019).

Oracles: the closed form of the triplet problem (eq. 3.44) against cvxpy, the Mahalanobis
exact solver against Theorem 3's lower bound, Clopper-Pearson against a direct computation
of the binomial tail (math.comb sums and bisection, no scipy), and randomized smoothing of
a linear classifier whose exact certified radius (distance to the hyperplane) is known.
"""
import math

import cvxpy as cp
import numpy as np
import pytest
import torch

from robustkit import knn


def test_triplet_bound_matches_cvxpy_and_is_scale_invariant():
    g = np.random.default_rng(0)
    for _ in range(4):
        xp, xn, x = (g.normal(size=5) for _ in range(3))
        G = g.normal(size=(5, 5))
        M = G.T @ G
        delta = cp.Variable(5)
        # d_M(x + delta, x-) <= d_M(x + delta, x+)  <=>  linear constraint (eq. 3.50)
        lhs = 2 * (xp - xn) @ M @ delta
        rhs = (x - xp) @ M @ (x - xp) - (x - xn) @ M @ (x - xn)
        prob = cp.Problem(cp.Minimize(cp.sum_squares(delta)), [-lhs <= rhs])
        prob.solve(solver=cp.CLARABEL)
        t = lambda Gm: knn.triplet_bound(*(torch.from_numpy(v)[None] for v in (xp, xn, x)),
                                         torch.from_numpy(Gm), clamp=True)
        assert float(t(G)) == pytest.approx(math.sqrt(max(prob.value, 0)), abs=1e-6)
        assert float(t(3.7 * G)) == pytest.approx(float(t(G)), rel=1e-10)


def test_triplet_bound_identity_is_bisector_distance():
    xp, xn, x = torch.tensor([[0.5, 0.5]]), torch.tensor([[0.0, 1.0]]), torch.tensor([[0.0, 0.0]])
    assert float(knn.triplet_bound(xp, xn, x)) == pytest.approx(math.sqrt(2) / 4, abs=1e-7)


def test_theorem3_le_mahalanobis_exact_and_arml_trains():
    from robustkit import load_dataset
    tr = load_dataset("digits", "train", n=200, seed=1)
    te = load_dataset("digits", "test", n=20, seed=1)
    X, y = tr.images.flatten(1), tr.labels
    Z, yz = te.images.flatten(1), te.labels
    G, hist = knn.arml_fit(X, y, epochs=4, lr=5e-3, batch_size=100, rank=40)
    assert G.shape == (40, 64)
    assert hist[-1] < hist[0]                        # the ARML objective decreases
    lower = knn.verify_knn(X, y, Z, yz, G=G)
    exact = knn.exact_1nn(X, y, Z, yz, G=G)
    assert (lower.eps <= exact.eps + 1e-8).all()
    ok = exact.eps > 0
    assert (knn.knn_predict(X, y, exact.x_adv[ok], G=G) != yz[ok]).all()


def test_nca_metric_shape():
    g = np.random.default_rng(0)
    X = np.concatenate([g.normal(0, 1, (20, 3)), g.normal(3, 1, (20, 3))])
    y = np.repeat([0, 1], 20)
    G = knn.nca_metric(X, y, n_components=2, max_iter=10)
    assert G.shape == (2, 3)


def binom_tail_direct(k, n, p):
    """P(Bin(n, p) >= k) by direct summation."""
    return sum(math.comb(n, i) * p ** i * (1 - p) ** (n - i) for i in range(k, n + 1))


def cp_lower_direct(k, n, alpha):
    """Clopper-Pearson one-sided lower bound: the p with P(Bin(n, p) >= k) = alpha (bisection)."""
    if k == 0:
        return 0.0
    lo, hi = 0.0, 1.0
    for _ in range(100):
        mid = (lo + hi) / 2
        if binom_tail_direct(k, n, mid) < alpha:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


@pytest.mark.parametrize("k,n", [(0, 20), (1, 20), (13, 20), (20, 20), (95, 100), (480, 500)])
def test_clopper_pearson_matches_direct_computation(k, n):
    for alpha in (0.05, 0.001):
        assert float(knn.clopper_pearson_lower(k, n, alpha)) == pytest.approx(cp_lower_direct(k, n, alpha), abs=1e-9)


def test_clopper_pearson_bad_inputs():
    with pytest.raises(ValueError):
        knn.clopper_pearson_lower(5, 3)
    with pytest.raises(ValueError):
        knn.clopper_pearson_lower(1, 3, alpha=1.5)
    with pytest.raises(ValueError):
        knn.clopper_pearson_lower(1.5, 3)


class Linear(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.tensor([3.0, 4.0]), requires_grad=False)

    def forward(self, x):
        s = x.flatten(1) @ self.w - 1.0
        return torch.stack([-s, s], 1)


def test_smoothing_certifies_a_linear_classifier():
    model = Linear()
    x = torch.tensor([[0.5, 0.3], [0.1, 0.1], [0.0, 0.05]])    # margins 1.2/5, -0.3/5, -0.8/5
    margin = (x @ model.w - 1.0).abs() / 5.0
    truth = (x @ model.w - 1.0 > 0).long()
    sigma = 0.25
    pred, radius = knn.smoothing_certify(model, x, sigma=sigma, n0=100, n=20_000, alpha=0.001)
    assert (pred == truth).all()
    # for a linear model the smoothed classifier's exact radius is the distance to the hyperplane
    assert (radius <= margin.double() + 1e-9).all()
    assert (radius >= 0.8 * margin.double()).all()
    assert (knn.smoothing_predict(model, x, sigma=sigma, n=2000) == truth).all()
    with pytest.raises(ValueError):
        knn.smoothing_certify(model, x, sigma=-1.0)
    with pytest.raises(ValueError):
        knn.smoothing_certify(model, x, sigma=0.2, n=0)


def test_arml_bad_inputs():
    X = torch.rand(10, 3)
    y = torch.arange(10) % 2
    with pytest.raises(ValueError, match="loss"):
        knn.arml_fit(X, y, loss="square")
    with pytest.raises(ValueError):
        knn.arml_fit(X, y, epochs=-1)
    with pytest.raises(ValueError):
        knn.triplet_bound(X[:2], X[:3], X[:2])
