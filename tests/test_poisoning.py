"""Tests of robustkit.poisoning (seed 003 §1.2) against independent oracles.

Oracles: scipy dense solves and cdist, scikit-learn's LabelPropagation / LabelSpreading
(run to convergence), the SDP relaxation of the trust-region problem solved by cvxpy (tight
by the S-lemma), closed forms (2-D hard case), brute force over small flip sets, Monte Carlo.
"""
import itertools
import math

import numpy as np
import pytest
import scipy.linalg
import scipy.spatial.distance
import torch

import robustkit.poisoning as P

DT = torch.float64


def blobs(n=60, n_l=12, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 2))
    y = (x[:, 0] + 0.3 * rng.normal(size=n) > 0).astype(int)
    y[:2] = [0, 1]                                  # both classes among the labeled
    return x, y, n_l


def random_trs(d, seed, hard=False):
    g_ = torch.Generator().manual_seed(seed)
    Q, _ = torch.linalg.qr(torch.randn(d, d, generator=g_, dtype=DT))
    lam = torch.linspace(-2.0, 3.0, d, dtype=DT) + 0.1 * torch.rand(d, generator=g_, dtype=DT)
    lam[0] = lam[1] - 0.5 if hard else lam[0]        # simple bottom eigenvalue
    H = Q @ torch.diag(lam) @ Q.T
    H = 0.5 * (H + H.T)
    h = torch.randn(d, generator=g_, dtype=DT) * (0.3 if hard else 1.0)
    if hard:
        h[0] = 0.0                                   # g orthogonal to the bottom eigenvector
        h *= 0.6 / (h[1:] / (lam[1:] - lam[0])).norm()   # and ||(H - l_1 I)^+ g|| = 0.6 < 1
    return H, Q @ h


# ------------------------------------------------------------------ graph and learner
def test_gaussian_kernel_matches_cdist():
    rng = np.random.default_rng(1)
    x, z = rng.normal(size=(7, 3)), rng.normal(size=(5, 3))
    ref = np.exp(-0.7 * scipy.spatial.distance.cdist(x, z, "sqeuclidean"))
    S = P.gaussian_kernel(torch.tensor(x), torch.tensor(z), gamma=0.7)
    np.testing.assert_allclose(S.numpy(), ref, rtol=1e-12, atol=1e-14)
    Sxx = P.gaussian_kernel(torch.tensor(x), gamma=0.7)
    assert torch.equal(Sxx.diagonal(), torch.ones(7, dtype=DT))


def test_laplacian_energy_identity():
    x, _, _ = blobs()
    S = P.gaussian_kernel(torch.tensor(x), gamma=0.5)
    y = torch.randn(S.shape[0], dtype=DT, generator=torch.Generator().manual_seed(0))
    energy = 0.5 * (S * (y[:, None] - y[None, :]) ** 2).sum()
    assert torch.allclose(y @ P.laplacian(S) @ y, energy, rtol=1e-12)


def test_harmonic_solution_matches_direct_solve_and_minimizes_energy():
    x, y, n_l = blobs()
    S = P.gaussian_kernel(torch.tensor(x), gamma=0.5)
    yl = torch.tensor(2.0 * y[:n_l] - 1)
    f = P.harmonic_solution(S, yl)
    L = P.laplacian(S).numpy()
    ref = scipy.linalg.solve(L[n_l:, n_l:], -L[n_l:, :n_l] @ yl.numpy(), assume_a="pos")
    np.testing.assert_allclose(f.numpy(), ref, rtol=1e-10, atol=1e-12)
    # eq. (1.1): any other completion has a larger energy
    full = torch.cat([yl, f])
    e0 = full @ P.laplacian(S) @ full
    pert = torch.randn(f.shape[0], dtype=DT, generator=torch.Generator().manual_seed(3))
    full2 = torch.cat([yl, f + 1e-2 * pert])
    assert full2 @ P.laplacian(S) @ full2 > e0
    # harmonic: each unlabeled value is the weighted mean of its neighbours
    W = S.clone().fill_diagonal_(0)
    mean_nb = (W @ full) / W.sum(1)
    assert torch.allclose(mean_nb[n_l:], f, atol=1e-12)
    # constants propagate to constants: K 1 = 1
    K = P.propagation_matrix(S, n_l)
    assert torch.allclose(K.sum(1), torch.ones(K.shape[0], dtype=DT), atol=1e-12)
    assert (K >= 0).all()


def test_label_propagation_matches_sklearn():
    # LabelPropagation (rbf kernel, same gamma, hard clamping of labeled nodes, iterated to
    # convergence) is the fixed point F_u = D_uu^-1 (S_uu F_u + S_ul Y_l): the harmonic solution.
    from sklearn.semi_supervised import LabelPropagation
    x, y, n_l = blobs()
    ylab = np.full(len(y), -1)
    ylab[:n_l] = y[:n_l]
    lp = LabelPropagation(kernel="rbf", gamma=0.5, max_iter=100_000, tol=1e-13).fit(x, ylab)
    S = P.gaussian_kernel(torch.tensor(x), gamma=0.5)
    F = P.harmonic_solution(S, torch.tensor(np.eye(2)[y[:n_l]]))
    np.testing.assert_allclose(lp.label_distributions_[n_l:], F.numpy(), atol=1e-10)
    f = P.label_propagation(torch.tensor(x[:n_l]), torch.tensor(2.0 * y[:n_l] - 1),
                            torch.tensor(x[n_l:]), gamma=0.5)
    np.testing.assert_allclose(2 * lp.label_distributions_[n_l:, 1] - 1, f.numpy(), atol=1e-10)
    assert np.array_equal(lp.transduction_[n_l:], (f.numpy() > 0).astype(int))


def test_label_spreading_matches_sklearn_but_not_harmonic():
    from sklearn.semi_supervised import LabelSpreading
    x, y, n_l = blobs()
    ylab = np.full(len(y), -1)
    ylab[:n_l] = y[:n_l]
    ls = LabelSpreading(kernel="rbf", gamma=0.5, alpha=0.3, max_iter=100_000, tol=1e-13).fit(x, ylab)
    S = P.gaussian_kernel(torch.tensor(x), gamma=0.5)
    Y = torch.tensor(np.eye(2)[y[:n_l]])
    F = P.label_spreading(S, Y, alpha=0.3).numpy()
    np.testing.assert_allclose(ls.label_distributions_, F / F.sum(1, keepdims=True), atol=1e-10)
    # it does not clamp labeled nodes, so it is a different method from eq. (1.1)
    H = P.harmonic_solution(S, Y).numpy()
    assert np.abs(F[n_l:] / F[n_l:].sum(1, keepdims=True) - H).max() > 1e-3


def test_disconnected_graph_is_an_error():
    S = torch.zeros(5, 5, dtype=DT)
    S[0, 1] = S[1, 0] = 1.0
    S[2, 3] = S[3, 2] = S[3, 4] = S[4, 3] = 1.0      # nodes 2..4 unreachable from labeled 0
    with pytest.raises(ValueError, match="not connected"):
        P.propagation_matrix(S, 1)


def test_split_labeled_is_a_partition():
    x = torch.arange(20, dtype=DT)[:, None]
    y = torch.arange(20)
    xl, yl, xu, yu = P.split_labeled(x, y, 5, seed=3)
    assert sorted(torch.cat([yl, yu]).tolist()) == list(range(20))
    assert torch.equal(xl[:, 0].long(), yl) and torch.equal(xu[:, 0].long(), yu)
    assert torch.equal(P.split_labeled(x, y, 5, seed=3)[1], yl)


# ------------------------------------------------------------------ trust region (eq. 1.4)
def certify_global(H, g, r, res, tol=1e-8):
    """Moré-Sorensen: (H + lam I) z = -g, H + lam I >= 0, lam >= 0, lam (r - |z|) = 0."""
    z, lam = res.z, res.lam
    d = H.shape[0]
    assert lam >= -tol
    assert z.norm() <= r * (1 + 1e-10)
    assert torch.allclose((H + lam * torch.eye(d, dtype=DT)) @ z, -g, atol=tol * (1 + g.norm()))
    assert torch.linalg.eigvalsh(H + lam * torch.eye(d, dtype=DT)).min() >= -tol
    assert abs(lam * (r - z.norm().item())) <= tol


@pytest.mark.parametrize("seed", range(6))
def test_exact_trust_region_is_globally_optimal(seed):
    d = 3 + seed
    H, g = random_trs(d, seed)
    r = 0.5 + 0.3 * seed
    res = P.trust_region_exact(H, g, r)
    certify_global(H, g, r, res)
    assert math.isclose(res.value, (0.5 * res.z @ H @ res.z + g @ res.z).item(), rel_tol=1e-12)


@pytest.mark.parametrize("seed", range(2))
def test_exact_trust_region_matches_sdp_relaxation(seed):
    cp = pytest.importorskip("cvxpy")
    H, g = random_trs(5, 100 + seed)
    r = 0.8
    X = cp.Variable((6, 6), PSD=True)
    Hn, gn = H.numpy(), g.numpy()
    prob = cp.Problem(cp.Minimize(0.5 * cp.trace(Hn @ X[:5, :5]) + gn @ X[:5, 5]),
                      [cp.trace(X[:5, :5]) <= r * r, X[5, 5] == 1])
    prob.solve(solver="CLARABEL")
    assert P.trust_region_exact(H, g, r).value == pytest.approx(prob.value, abs=1e-6)


def test_exact_trust_region_hard_case_closed_form():
    # H = diag(-1, 1), g = (0, 1/2), r = 1: lam = 1, z = (+-sqrt(15)/4, -1/4), f = -9/16
    H = torch.diag(torch.tensor([-1.0, 1.0], dtype=DT))
    g = torch.tensor([0.0, 0.5], dtype=DT)
    res = P.trust_region_exact(H, g, 1.0)
    assert res.hard_case and res.lam == pytest.approx(1.0)
    assert res.value == pytest.approx(-9 / 16, abs=1e-12)
    assert abs(res.z[0].item()) == pytest.approx(math.sqrt(15) / 4, abs=1e-12)
    assert res.z[1].item() == pytest.approx(-0.25, abs=1e-12)
    # brute force over the disk
    t = torch.linspace(0, 2 * math.pi, 20001, dtype=DT)
    rad = torch.linspace(0, 1, 201, dtype=DT)
    zz = torch.stack([rad[:, None] * torch.cos(t), rad[:, None] * torch.sin(t)], -1).reshape(-1, 2)
    f = 0.5 * ((zz @ H) * zz).sum(1) + zz @ g
    assert f.min().item() >= res.value - 1e-12 and f.min().item() <= res.value + 1e-6


def test_exact_trust_region_interior_case():
    H = torch.diag(torch.tensor([1.0, 2.0, 4.0], dtype=DT))
    g = torch.tensor([0.1, -0.2, 0.4], dtype=DT)
    res = P.trust_region_exact(H, g, 10.0)
    assert torch.allclose(res.z, -g / H.diagonal()) and res.lam == 0.0


@pytest.mark.parametrize("seed", range(25))
def test_algorithm1_reaches_exact_optimum_random_indefinite(seed):
    d = 2 + seed % 12
    H, g = random_trs(d, 200 + seed)
    r = 0.3 + (seed % 5) * 0.4
    ex = P.trust_region_exact(H, g, r)
    res = P.trust_region_pgd(H, g, r)
    assert res.value == pytest.approx(ex.value, abs=1e-9 * (1 + abs(ex.value)))
    assert torch.allclose(res.z, ex.z, atol=1e-4)


@pytest.mark.parametrize("seed", range(8))
def test_algorithm1_reaches_exact_optimum_hard_case(seed):
    H, g = random_trs(6 + seed % 3, 300 + seed, hard=True)
    ex = P.trust_region_exact(H, g, 1.0)
    assert ex.hard_case
    certify_global(H, g, 1.0, ex)
    res = P.trust_region_pgd(H, g, 1.0)
    assert res.value == pytest.approx(ex.value, abs=1e-8)
    # without the saddle escapes, Algorithm 1 stalls in the hard case (it stays in v1^perp)
    stalled = P.trust_region_pgd(H, g, 1.0, escape_tries=0)
    assert stalled.value > ex.value + 1e-3


def test_algorithm1_interior_solution():
    H = torch.diag(torch.tensor([1.0, 3.0], dtype=DT))
    g = torch.tensor([0.2, -0.3], dtype=DT)
    res = P.trust_region_pgd(H, g, 5.0)
    assert res.phase2_iters == 0 and torch.allclose(res.z, -g / H.diagonal(), atol=1e-8)


# ------------------------------------------------------------------ regression poisoning
def regression_instance(n=80, n_l=15, seed=0):
    rng = np.random.default_rng(seed)
    x = torch.tensor(rng.normal(size=(n, 3)))
    y = torch.tensor(np.sin(x[:, 0].numpy()) + 0.1 * rng.normal(size=n))
    S = P.gaussian_kernel(x, gamma=0.5)
    K = P.propagation_matrix(S, n_l)
    return K, y[:n_l], y[n_l:]


def test_estimated_label_attack_is_top_singular_direction():
    K, yl, yu = regression_instance()
    delta = P.poison_regression(K, yl, 2.0)
    assert delta.norm().item() == pytest.approx(2.0)
    smax = torch.linalg.matrix_norm(K, 2)
    assert (K @ delta).norm().item() == pytest.approx(2.0 * smax.item(), rel=1e-10)
    # beats random directions of the same norm on the estimated-label objective
    for s in range(20):
        rnd = P.random_perturbation(yl.shape[0], 2.0, seed=s)
        assert (K @ rnd).norm() <= (K @ delta).norm() + 1e-12


@pytest.mark.parametrize("d_max", [0.5, 2.0])
def test_true_label_attack_pgd_matches_exact_and_beats_baselines(d_max):
    K, yl, yu = regression_instance(seed=1)
    d_pgd = P.poison_regression(K, yl, d_max, yu, solver="pgd")
    d_ex = P.poison_regression(K, yl, d_max, yu, solver="exact")
    loss = lambda d: P.rmse(K @ (yl + d), yu).item()  # noqa: E731
    assert d_pgd.norm().item() <= d_max * (1 + 1e-9)
    assert loss(d_pgd) == pytest.approx(loss(d_ex), rel=1e-7)
    clean = loss(torch.zeros_like(yl))
    assert loss(d_ex) > clean
    assert loss(d_ex) >= loss(P.poison_regression(K, yl, d_max)) - 1e-12   # knowing y_u helps
    for s in range(10):
        assert loss(d_ex) >= loss(P.random_perturbation(yl.shape[0], d_max, seed=s))
    deg = torch.rand(yl.shape[0], generator=torch.Generator().manual_seed(0), dtype=DT)
    assert loss(d_ex) >= loss(P.centrality_perturbation(deg, yl, d_max, k=5))


def test_regression_attack_zero_budget():
    K, yl, yu = regression_instance()
    assert torch.equal(P.poison_regression(K, yl, 0.0, yu), torch.zeros_like(yl))


# ------------------------------------------------------------------ classification poisoning
def classification_instance(n=120, n_l=14, seed=0):
    rng = np.random.default_rng(seed)
    x = torch.tensor(rng.normal(size=(n, 2)))
    y = torch.where(x[:, 0] + 0.4 * torch.tensor(rng.normal(size=n)) > 0, 1.0, -1.0).double()
    y[0], y[1] = 1.0, -1.0
    S = P.gaussian_kernel(x, gamma=1.0)
    return P.propagation_matrix(S, n_l), y[:n_l], y[n_l:]


def test_flip_errors_batch_matches_loop():
    K, yl, yu = classification_instance()
    masks = torch.rand(6, yl.shape[0], generator=torch.Generator().manual_seed(1)) < 0.3
    batch = P.flip_errors(K, yl, masks, yu)
    for m, e in zip(masks, batch):
        yy = torch.where(m, -yl, yl)
        assert e.item() == pytest.approx(P.error_rate(K @ yy, yu).item())


def test_greedy_first_flip_is_brute_force_optimal_and_pairs_bounded():
    K, yl, yu = classification_instance(seed=2)
    n_l = yl.shape[0]
    order = P.greedy_flips(K, yl, 2, yu)
    singles = P.flip_errors(K, yl, torch.eye(n_l, dtype=torch.bool), yu)
    assert P.flip_errors(K, yl, torch.eye(n_l, dtype=torch.bool)[order[0]], yu) == singles.max()
    pairs = list(itertools.combinations(range(n_l), 2))
    masks = torch.zeros(len(pairs), n_l, dtype=torch.bool)
    for k, (i, j) in enumerate(pairs):
        masks[k, [i, j]] = True
    best_pair = P.flip_errors(K, yl, masks, yu).max()
    mask2 = torch.zeros(n_l, dtype=torch.bool)
    mask2[order] = True
    greedy2 = P.flip_errors(K, yl, mask2, yu)
    assert greedy2 <= best_pair + 1e-12 and greedy2 >= singles.max() - 1e-12


def test_greedy_never_worse_than_random_at_equal_budget():
    K, yl, yu = classification_instance(n=200, n_l=30, seed=3)
    n_l = yl.shape[0]
    order = P.greedy_flips(K, yl, 8, yu)
    assert len(set(order.tolist())) == 8
    for c in range(1, 9):
        g_mask = torch.zeros(n_l, dtype=torch.bool)
        g_mask[order[:c]] = True
        g_err = P.flip_errors(K, yl, g_mask, yu)
        rnd = torch.zeros(50, n_l, dtype=torch.bool)
        for s in range(50):
            rnd[s, P.random_flips(n_l, c, seed=1000 * c + s)] = True
        assert g_err >= P.flip_errors(K, yl, rnd, yu).max() - 1e-12


@pytest.mark.parametrize("alpha", [0.05, 0.3, 0.7])
def test_gumbel_relaxation_flip_probabilities_match_alpha(alpha):
    n = 40_000
    a = torch.full((3,), alpha, dtype=DT)
    z = P.gumbel_flip_relaxation(a, tau=0.005, n_samples=n, seed=5)
    assert z.shape == (n, 3) and (z.abs() <= 1).all()
    flip = (1 - z) / 2                               # relaxed indicator of delta = -1
    se = math.sqrt(alpha * (1 - alpha) / n)
    assert abs(flip.mean().item() - alpha) < 5 * se + 1e-3
    assert abs((z < 0).double().mean().item() - alpha) < 5 * se
    assert ((z.abs() > 0.99).double().mean()) > 0.97       # nearly binary at low temperature
    hot = P.gumbel_flip_relaxation(a, tau=200.0, n_samples=2000, seed=5)
    assert abs(((1 - hot) / 2).mean().item() - 0.5) < 0.02  # a high temperature blurs to 1/2


def test_gumbel_relaxation_is_differentiable():
    theta = torch.zeros(4, dtype=DT, requires_grad=True)
    z = P.gumbel_flip_relaxation(theta, 0.5, 64, seed=0, logits=True)
    z.sum().backward()
    assert (theta.grad < 0).all()     # a larger flip logit lowers z


def test_probabilistic_flips_at_least_random():
    K, yl, yu = classification_instance(n=200, n_l=30, seed=3)
    n_l = yl.shape[0]
    res = P.probabilistic_flips(K, yl, 5, yu, steps=100, seed=0)
    assert res.flips.shape == (5,) and len(set(res.flips.tolist())) == 5
    mask = torch.zeros(n_l, dtype=torch.bool)
    mask[res.flips] = True
    assert res.error == pytest.approx(P.flip_errors(K, yl, mask, yu).item())
    rnd = torch.zeros(50, n_l, dtype=torch.bool)
    for s in range(50):
        rnd[s, P.random_flips(n_l, 5, seed=s)] = True
    assert res.error >= P.flip_errors(K, yl, rnd, yu).mean().item()
    assert ((res.alpha > 0) & (res.alpha < 1)).all()


# ------------------------------------------------------------------ baselines
def test_pagerank_matches_linear_solve_and_degree():
    x, _, _ = blobs(n=30)
    S = P.gaussian_kernel(torch.tensor(x), gamma=0.5)
    p = P.pagerank(S, damping=0.85)
    W = S.numpy().copy()
    np.fill_diagonal(W, 0)
    Pm = W / W.sum(1, keepdims=True)
    n = W.shape[0]
    ref = np.full(n, 1.0 / n)
    for _ in range(2000):                            # power iteration as the oracle
        ref = 0.15 / n + 0.85 * Pm.T @ ref
    np.testing.assert_allclose(p.numpy(), ref / ref.sum(), atol=1e-12)
    np.testing.assert_allclose(P.degree_centrality(S).numpy(), W.sum(1), rtol=1e-12)
    # PageRank of an undirected graph with no teleport is proportional to degree
    p1 = P.pagerank(S, damping=0.999999)
    np.testing.assert_allclose(p1.numpy(), W.sum(1) / W.sum(), atol=1e-5)


def test_centrality_flips_pick_top_scores():
    s = torch.tensor([0.1, 0.9, 0.5, 0.7], dtype=DT)
    assert sorted(P.centrality_flips(s, 2).tolist()) == [1, 3]
    d = P.centrality_perturbation(s, torch.tensor([0.0, 1.0, 0.2, 0.0], dtype=DT), 1.0, k=2)
    assert d.norm().item() == pytest.approx(1.0) and (d[[0, 2]] == 0).all()


# ------------------------------------------------------------------ bad input
def test_bad_inputs():
    x = torch.randn(5, 2, dtype=DT)
    with pytest.raises(ValueError, match="gamma"):
        P.gaussian_kernel(x, gamma=-1.0)
    with pytest.raises(ValueError, match="features"):
        P.gaussian_kernel(x, torch.randn(3, 4, dtype=DT), gamma=1.0)
    with pytest.raises(ValueError, match="symmetric"):
        P.laplacian(torch.tensor([[0.0, 1.0], [2.0, 0.0]]))
    with pytest.raises(ValueError, match="non-negative"):
        P.laplacian(torch.tensor([[0.0, -1.0], [-1.0, 0.0]]))
    with pytest.raises(ValueError, match="NaN"):
        P.gaussian_kernel(torch.tensor([[float("nan"), 0.0]]), gamma=1.0)
    S = P.gaussian_kernel(x, gamma=1.0)
    with pytest.raises(ValueError, match="n_labeled"):
        P.propagation_matrix(S, 5)
    K = P.propagation_matrix(S, 2)
    with pytest.raises(ValueError, match="-1 and \\+1"):
        P.greedy_flips(K, torch.tensor([0.0, 1.0], dtype=DT), 1, torch.ones(3, dtype=DT))
    with pytest.raises(ValueError, match="c_max"):
        P.greedy_flips(K, torch.tensor([-1.0, 1.0], dtype=DT), 3, torch.ones(3, dtype=DT))
    with pytest.raises(ValueError, match="columns"):
        P.poison_regression(K, torch.zeros(3, dtype=DT), 1.0)
    with pytest.raises(ValueError, match="solver"):
        P.poison_regression(K, torch.zeros(2, dtype=DT), 1.0, solver="newton")
    with pytest.raises(ValueError, match="open interval"):
        P.gumbel_flip_relaxation(torch.tensor([0.0, 0.5], dtype=DT), 0.1)
    with pytest.raises(ValueError, match="tau"):
        P.gumbel_flip_relaxation(torch.tensor([0.2], dtype=DT), 0.0)
    with pytest.raises(ValueError, match="radius"):
        P.trust_region_exact(torch.eye(2, dtype=DT), torch.ones(2, dtype=DT), 0.0)
    with pytest.raises(ValueError, match="g = 0"):
        P.trust_region_pgd(-torch.eye(2, dtype=DT), torch.zeros(2, dtype=DT), 1.0)
    with pytest.raises(TypeError, match="boolean"):
        P.flip_errors(K, torch.tensor([-1.0, 1.0], dtype=DT), torch.tensor([0, 1]),
                      torch.ones(3, dtype=DT))
    with pytest.raises(ValueError, match="damping"):
        P.pagerank(S, damping=1.0)
