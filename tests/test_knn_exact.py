"""robustkit.knn exact solvers against independent oracles (seed 003 §3.1-3.2, chapter 8).

Oracles: the 2-D toy case with a known answer (GUIDE §5 trap 10), cvxpy on every QP of
eq. 3.5 / 3.50 (no screening, no greedy solver), brute-force grid search in 2-D, the
direct all-pairs formulas of eq. 3.12 / 3.18 / 3.46, and invariants (verify <= exact <=
attacks, screening and sorting never change the answer, the perturbed point really flips).
"""
import math

import cvxpy as cp
import numpy as np
import pytest
import torch

from robustkit import knn

TOY_X = torch.tensor([[0.5, 0.5], [1.0, 0.5], [0.0, 1.0]])
TOY_Y = torch.tensor([1, 1, 0])
TOY_Z = torch.tensor([[0.0, 0.0]])


def random_problem(n=30, d=5, classes=3, n_test=6, seed=0):
    g = np.random.default_rng(seed)
    X = g.uniform(0, 1, (n, d))
    y = np.arange(n) % classes
    Z = g.uniform(0, 1, (n_test, d))
    return torch.from_numpy(X), torch.from_numpy(y), torch.from_numpy(Z)


def nn_label(X, y, p, G=None):
    Xm, pm = (X, p) if G is None else (X @ G.T, p @ G.T)
    return int(y[np.argmin(((Xm - pm) ** 2).sum(1))])


def cvxpy_exact(X, y, z, G=None, box=None):
    """min over negatives j of the QP (3.5) / (3.50), each solved by cvxpy (Clarabel)."""
    X, y, z = np.asarray(X), np.asarray(y), np.asarray(z)
    M = np.eye(X.shape[1]) if G is None else np.asarray(G).T @ np.asarray(G)
    dM = np.einsum("nd,de,ne->n", X - z, M, X - z)
    c = y[np.argmin(dM)]
    best = math.inf
    for j in np.flatnonzero(y != c):
        pos = np.flatnonzero(y == c)
        A = (X[j] - X[pos]) @ M
        b = 0.5 * (dM[pos] - dM[j])
        delta = cp.Variable(X.shape[1])
        cons = [A @ delta + b >= 0]
        if box is not None:
            cons += [z + delta >= box[0], z + delta <= box[1]]
        prob = cp.Problem(cp.Minimize(0.5 * cp.sum_squares(delta)), cons)
        prob.solve(solver=cp.CLARABEL, tol_gap_abs=1e-12, tol_gap_rel=1e-12, tol_feas=1e-12)
        if prob.status == "optimal":
            best = min(best, math.sqrt(2 * prob.value))
    return best


# ----------------------------------------------------------------------------- the 2-D oracle
def test_toy_oracle_without_box():
    res = knn.exact_1nn(TOY_X, TOY_Y, TOY_Z)
    assert torch.allclose(res.delta[0], torch.tensor([-0.25, 0.25], dtype=torch.float64), atol=1e-9)
    assert res.eps[0] == pytest.approx(math.sqrt(2) / 4, abs=1e-9)
    assert int(res.target[0]) == 2
    assert int(knn.knn_predict(TOY_X, TOY_Y, res.x_adv)[0]) == 0


def test_toy_oracle_with_box():
    res = knn.exact_1nn(TOY_X, TOY_Y, TOY_Z, box=(0, 1))
    assert torch.allclose(res.delta[0], torch.tensor([0.0, 0.5], dtype=torch.float64), atol=1e-9)
    assert res.eps[0] == pytest.approx(0.5, abs=1e-9)
    assert int(knn.knn_predict(TOY_X, TOY_Y, res.x_adv)[0]) == 0
    assert (res.x_adv >= 0).all() and (res.x_adv <= 1).all()


def test_toy_oracle_lp_and_verify():
    linf = knn.exact_1nn_lp(TOY_X, TOY_Y, TOY_Z, norm="inf")
    assert linf.eps[0] == pytest.approx(0.25, abs=1e-9)
    assert torch.allclose(linf.delta[0], torch.tensor([-0.25, 0.25], dtype=torch.float64), atol=1e-9)
    l1 = knn.exact_1nn_lp(TOY_X, TOY_Y, TOY_Z, norm=1)
    assert l1.eps[0] == pytest.approx(0.5, abs=1e-9)
    # a single active bisector: the dual bound (3.12) is exact here
    assert knn.verify_knn(TOY_X, TOY_Y, TOY_Z).eps[0] == pytest.approx(math.sqrt(2) / 4, abs=1e-12)


# ------------------------------------------------------------------------------ cvxpy oracle
def test_dual_greedy_qp_matches_cvxpy():
    g = np.random.default_rng(3)
    for _ in range(5):
        m, d = 25, 6
        A = g.normal(size=(m, d))
        b = g.normal(size=m) - 1.0
        delta0 = g.normal(size=d) * 3
        b = np.maximum(b, -(A @ delta0) + 0.1)          # delta0 strictly feasible (Slater)
        sol = knn.dual_greedy_qp(torch.from_numpy(A), torch.from_numpy(b))
        v = cp.Variable(d)
        prob = cp.Problem(cp.Minimize(0.5 * cp.sum_squares(v)), [A @ v + b >= 0])
        prob.solve(solver=cp.CLARABEL, tol_gap_abs=1e-12, tol_gap_rel=1e-12, tol_feas=1e-12)
        assert sol.primal == pytest.approx(prob.value, abs=1e-7)
        assert np.allclose(sol.delta.numpy(), v.value, atol=1e-6)
        assert sol.dual == pytest.approx(sol.primal, abs=1e-7)        # strong duality
        assert sol.max_violation <= 1e-9


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_exact_matches_cvxpy(seed):
    X, y, Z = random_problem(seed=seed)
    res = knn.exact_1nn(X, y, Z)
    for b in range(Z.shape[0]):
        assert float(res.eps[b]) == pytest.approx(cvxpy_exact(X, y, Z[b]), abs=1e-6)


def test_exact_with_box_matches_cvxpy():
    X, y, Z = random_problem(n=24, d=4, seed=5)
    res = knn.exact_1nn(X, y, Z, box=(0, 1))
    for b in range(Z.shape[0]):
        assert float(res.eps[b]) == pytest.approx(cvxpy_exact(X, y, Z[b], box=(0, 1)), abs=1e-6)
    assert (res.x_adv >= 0).all() and (res.x_adv <= 1).all()


def test_mahalanobis_exact_matches_cvxpy():
    X, y, Z = random_problem(n=24, d=4, seed=7)
    G = torch.from_numpy(np.random.default_rng(7).normal(size=(3, 4)))   # low rank M
    res = knn.exact_1nn(X, y, Z, G=G)
    for b in range(Z.shape[0]):
        assert float(res.eps[b]) == pytest.approx(cvxpy_exact(X, y, Z[b], G=G), abs=1e-6)
        assert nn_label(X.numpy(), y.numpy(), res.x_adv[b].numpy(), G.numpy()) != int(res.pred[b])


# ------------------------------------------------------------------------- brute force in 2-D
def brute_force(X, y, z, norm=2, radius=1.0, steps=401):
    t = np.linspace(-radius, radius, steps)
    D = np.stack(np.meshgrid(t, t, indexing="ij"), -1).reshape(-1, 2)
    P = z[None] + D
    labels = y[np.argmin(((P[:, None, :] - X[None]) ** 2).sum(-1), axis=1)]
    c = y[np.argmin(((X - z) ** 2).sum(1))]
    flip = labels != c
    norms = np.linalg.norm(D, ord=norm, axis=1)
    return norms[flip].min(), t[1] - t[0]


def test_exact_and_lp_match_brute_force_in_2d():
    g = np.random.default_rng(11)
    X = g.uniform(0, 1, (12, 2))
    y = np.arange(12) % 3
    for z in g.uniform(0.2, 0.8, (4, 2)):
        for norm, fn in ((2, lambda: knn.exact_1nn(X, y, z[None])),
                         (np.inf, lambda: knn.exact_1nn_lp(X, y, z[None], norm="inf")),
                         (1, lambda: knn.exact_1nn_lp(X, y, z[None], norm=1))):
            eps = float(fn().eps[0])
            bf, h = brute_force(X, y, z, norm=norm)
            slack = {2: math.sqrt(2), np.inf: 1.0, 1: 2.0}[norm] * h
            assert eps <= bf + 1e-9, (norm, eps, bf)        # exact is a minimum
            assert bf <= eps + slack, (norm, eps, bf)       # the grid finds it up to a cell


# ------------------------------------------------------------------------- the verify bound
def direct_bound(X, y, z, k=1, G=None):
    """s-th min over negatives of s-th max over positives of eps~ (eq. 3.12 / 3.18 / 3.46)."""
    M = np.eye(X.shape[1]) if G is None else G.T @ G
    dM = np.einsum("nd,de,ne->n", X - z, M, X - z)
    Xm = X if G is None else X @ G.T
    order = np.argsort(((Xm - (z if G is None else G @ z)) ** 2).sum(1), kind="stable")[:k]
    vals, cnt = np.unique(y[order], return_counts=True)
    c = vals[np.argmax(cnt)]
    s = (k + 1) // 2
    P, N = np.flatnonzero(y == c), np.flatnonzero(y != c)
    E = np.zeros((len(P), len(N)))
    for a, i in enumerate(P):
        for b_, j in enumerate(N):
            den = 2 * np.linalg.norm(M @ (X[i] - X[j]))
            E[a, b_] = max(dM[j] - dM[i], 0) / den if den > 0 else 0.0
    inner = np.sort(E, axis=0)[::-1][s - 1]
    return max(np.sort(inner)[s - 1], 0.0)


@pytest.mark.parametrize("k", [1, 3, 5])
def test_verify_equals_direct_formula(k):
    X, y, Z = random_problem(n=40, d=3, seed=k)
    res = knn.verify_knn(X, y, Z, k=k, n_pos=2)       # tiny stage 1: stage 2 must fix it
    for b in range(Z.shape[0]):
        assert float(res.eps[b]) == pytest.approx(direct_bound(X.numpy(), y.numpy(), Z[b].numpy(), k), abs=1e-10)


def test_verify_mahalanobis_equals_direct_formula():
    X, y, Z = random_problem(n=30, d=4, seed=9)
    G = np.random.default_rng(9).normal(size=(4, 4))
    res = knn.verify_knn(X, y, Z, k=3, G=torch.from_numpy(G), n_pos=3)
    for b in range(Z.shape[0]):
        assert float(res.eps[b]) == pytest.approx(direct_bound(X.numpy(), y.numpy(), Z[b].numpy(), 3, G), abs=1e-10)


def test_verify_radius_is_safe_monte_carlo():
    X, y, Z = random_problem(n=30, d=2, seed=4)
    for k in (1, 3):
        res = knn.verify_knn(X, y, Z, k=k)
        g = torch.Generator().manual_seed(0)
        for b in range(Z.shape[0]):
            u = torch.randn(4000, 2, generator=g, dtype=torch.float64)
            u = u / u.norm(dim=1, keepdim=True) * torch.rand(4000, 1, generator=g, dtype=torch.float64).sqrt()
            pts = Z[b] + 0.999 * float(res.eps[b]) * u
            assert (knn.knn_predict(X, y, pts, k) == res.pred[b]).all()


# ---------------------------------------------------------------------- invariants on digits
@pytest.fixture(scope="module")
def digits():
    from robustkit import load_dataset
    tr = load_dataset("digits", "train", n=300, seed=0)
    te = load_dataset("digits", "test", n=60, seed=0)
    X, y = tr.images.flatten(1).double(), tr.labels
    Z, yz = te.images.flatten(1).double(), te.labels
    ok = (knn.knn_predict(X, y, Z) == yz).nonzero().flatten()[:8]
    return X, y, Z[ok], yz[ok]


def test_verify_le_exact_le_attacks(digits):
    X, y, Z, yz = digits
    exact = knn.exact_1nn(X, y, Z, yz)
    lower = knn.verify_knn(X, y, Z, yz)
    assert (lower.eps <= exact.eps + 1e-9).all()
    assert (exact.eps > 0).all()
    attacks = [knn.qp_top_k(X, y, Z, yz, k=1), knn.qp_top_k(X, y, Z, yz, k=10),
               knn.naive_attack(X, y, Z, yz), knn.naive_attack(X, y, Z, yz, n_tries=10),
               knn.mean_attack(X, y, Z, yz), knn.substitute_attack(X, y, Z, yz, steps=40),
               knn.qp_greedy(X, y, Z, yz, k=1, t=3)]
    for res in attacks:
        ok = res.success
        assert ok.float().mean() > 0.5, res.info["method"]
        assert (exact.eps[ok] <= res.eps[ok] + 1e-7).all(), res.info["method"]
        flipped = knn.knn_predict(X, y, res.x_adv[ok]) != yz[ok]
        assert flipped.all(), res.info["method"]
    # more subproblems never hurt; Naive-10 is at least as good as Naive-1
    assert (attacks[1].eps <= attacks[0].eps + 1e-9).all()
    assert (attacks[3].eps <= attacks[2].eps + 1e-9).all()


def test_exact_flips_and_screening_never_changes_the_answer(digits):
    X, y, Z, yz = digits
    ref = knn.exact_1nn(X, y, Z, yz)
    assert (knn.knn_predict(X, y, ref.x_adv) != yz).all()
    assert ((ref.x_adv - Z - ref.delta).norm(dim=1) <= 1e-5 * (ref.eps + 1)).all()
    for kwargs in ({"screen": False}, {"sort": False}, {"n_screen": 1}, {"n_screen": 64}):
        other = knn.exact_1nn(X, y, Z, yz, **kwargs)
        assert torch.allclose(other.eps, ref.eps, atol=1e-8), kwargs
    unscreened = knn.exact_1nn(X, y, Z, yz, screen=False)
    assert (ref.n_solved <= unscreened.n_solved).all()
    assert (ref.n_solved < unscreened.n_solved).any()


def test_knn_verify_le_qp_greedy(digits):
    X, y, Z, yz = digits
    lower = knn.verify_knn(X, y, Z, k=5)
    upper = knn.qp_greedy(X, y, Z, k=5, t=3)
    ok = upper.success
    assert ok.float().mean() > 0.5
    assert (lower.eps[ok] <= upper.eps[ok] + 1e-9).all()
    assert (knn.knn_predict(X, y, upper.x_adv[ok], 5) != upper.pred[ok]).all()
    naive = knn.naive_attack(X, y, Z, k=5, n_tries=3)
    okn = naive.success
    assert (lower.eps[okn] <= naive.eps[okn] + 1e-9).all()


def test_misclassified_points_get_zero():
    X, y, Z = random_problem(seed=1)
    pred = knn.knn_predict(X, y, Z)
    wrong = (pred + 1) % 3
    for res in (knn.exact_1nn(X, y, Z, wrong), knn.verify_knn(X, y, Z, wrong),
                knn.naive_attack(X, y, Z, wrong)):
        assert (res.eps == 0).all()


def test_certified_error_curve():
    cre = knn.certified_error([0.0, 0.5, 1.0], torch.tensor([0.2, 0.7, 1.5, 0.9]),
                              correct=torch.tensor([True, True, True, False]))
    assert torch.allclose(cre, torch.tensor([0.25, 0.5, 0.75], dtype=torch.float64))


# ------------------------------------------------------------------------------- bad inputs
def test_bad_inputs():
    with pytest.raises(ValueError, match="1-D"):
        knn.exact_1nn(TOY_X, TOY_Y, torch.tensor([0.0, 0.0]))
    with pytest.raises(ValueError, match="dimension"):
        knn.exact_1nn(TOY_X, TOY_Y, torch.zeros(1, 3))
    with pytest.raises(ValueError, match="NaN"):
        knn.verify_knn(TOY_X, TOY_Y, torch.tensor([[float("nan"), 0.0]]))
    with pytest.raises(ValueError, match="two classes"):
        knn.exact_1nn(TOY_X, torch.tensor([1, 1, 1]), TOY_Z)
    with pytest.raises(ValueError, match="labels"):
        knn.exact_1nn(TOY_X, torch.tensor([1, 1]), TOY_Z)
    with pytest.raises(TypeError, match="integer labels"):
        knn.exact_1nn(TOY_X, torch.tensor([1.0, 1.0, 0.0]), TOY_Z)
    with pytest.raises(ValueError, match="odd"):
        knn.verify_knn(TOY_X, TOY_Y, TOY_Z, k=2)
    with pytest.raises(ValueError, match="box"):
        knn.exact_1nn(TOY_X, TOY_Y, TOY_Z, box=(1, 0))
    with pytest.raises(ValueError, match="inside the box"):
        knn.exact_1nn(TOY_X, TOY_Y, TOY_Z - 1, box=(0, 1))
    with pytest.raises(ValueError, match="n_screen"):
        knn.exact_1nn(TOY_X, TOY_Y, TOY_Z, n_screen=0)
    with pytest.raises(ValueError, match="norm"):
        knn.exact_1nn_lp(TOY_X, TOY_Y, TOY_Z, norm=3)
    with pytest.raises(ValueError, match="columns"):
        knn.exact_1nn(TOY_X, TOY_Y, TOY_Z, G=torch.eye(3))
    with pytest.raises(TypeError):
        knn.exact_1nn([[0.0, 1.0]], TOY_Y, TOY_Z)
    with pytest.raises(ValueError, match="infeasible"):
        knn.dual_greedy_qp(torch.zeros(1, 2, dtype=torch.float64), torch.tensor([-1.0], dtype=torch.float64))
