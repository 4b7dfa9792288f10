"""Projections and ball sampling of robustkit.attacks.projections against cvxpy and closed forms."""
import cvxpy as cp
import numpy as np
import pytest
import scipy.stats
import torch

from robustkit.attacks.projections import (norms, project_l1, project_l1_box, project_l2,
                                           project_linf, random_in_ball)


def _cvx_project(z, eps, kind, x=None):
    d = cp.Variable(z.shape[0])
    cons = [cp.norm(d, 1 if kind.startswith("l1") else 2) <= eps]
    if x is not None:
        cons += [x + d >= 0, x + d <= 1]
    cp.Problem(cp.Minimize(cp.sum_squares(d - z)), cons).solve(solver=cp.CLARABEL)
    return d.value


def _assert_same_projection(ours, ref, z):
    """Ours is at least as close to z as the solver's answer (feasibility is checked separately),
    and both agree to the solver's accuracy (the objective is 2-strongly convex)."""
    f_ours, f_ref = ((ours - z) ** 2).sum(), ((ref - z) ** 2).sum()
    assert f_ours <= f_ref + 1e-8
    np.testing.assert_allclose(ours, ref, atol=1e-4)


@pytest.mark.parametrize("seed", range(4))
def test_l1_box_projection_matches_cvxpy(seed):
    g = torch.Generator().manual_seed(seed)
    n, dim = 6, 30
    x = torch.rand(n, dim, generator=g, dtype=torch.float64)
    x[:, :5] = 0.0                                   # pixels on the box faces
    x[:, 5:10] = 1.0
    z = torch.randn(n, dim, generator=g, dtype=torch.float64) * 0.5
    eps = torch.rand(n, generator=g, dtype=torch.float64) * 3
    eps[0] = 100.0                                   # ball inactive: only the box
    ours = project_l1_box(x, z, eps)
    for i in range(n):
        ref = _cvx_project(z[i].numpy(), float(eps[i]), "l1", x[i].numpy())
        _assert_same_projection(ours[i].numpy(), ref, z[i].numpy())
    assert (norms(ours, "l1") <= eps + 1e-9).all()
    assert ((x + ours) >= -1e-12).all() and ((x + ours) <= 1 + 1e-12).all()


@pytest.mark.parametrize("seed", range(2))
def test_l1_and_l2_ball_projections_match_cvxpy(seed):
    g = torch.Generator().manual_seed(10 + seed)
    z = torch.randn(5, 25, generator=g, dtype=torch.float64)
    eps = torch.tensor([0.1, 1.0, 3.0, 10.0, 100.0], dtype=torch.float64)
    p1, p2 = project_l1(z, eps), project_l2(z, eps)
    for i in range(5):
        _assert_same_projection(p1[i].numpy(), _cvx_project(z[i].numpy(), float(eps[i]), "l1"), z[i].numpy())
        _assert_same_projection(p2[i].numpy(), _cvx_project(z[i].numpy(), float(eps[i]), "l2"), z[i].numpy())
    assert (norms(p1, "l1") <= eps + 1e-9).all() and (norms(p2, "l2") <= eps + 1e-9).all()


def test_linf_projection_and_per_sample_eps():
    z = torch.tensor([[0.5, -2.0], [0.1, -0.05]])
    out = project_linf(z, torch.tensor([1.0, 0.07]))
    assert torch.equal(out, torch.tensor([[0.5, -1.0], [0.07, -0.05]]))


@pytest.mark.parametrize("norm", ["l2", "l1", "linf"])
def test_random_in_ball_is_uniform(norm):
    """Uniform in a d-ball: (||v|| / eps)^d ~ U(0, 1) for every norm (volume scales as r^d)."""
    d, n, eps = 3, 4000, 0.7
    g = torch.Generator().manual_seed(1)
    v = random_in_ball((n, 1, d), eps, norm, dtype=torch.float64, generator=g)
    r = norms(v, norm) / eps
    assert (r <= 1 + 1e-12).all()
    assert scipy.stats.kstest((r ** d).numpy(), "uniform").pvalue > 1e-3
    assert v.mean((0, 1)).abs().max() < 0.05                          # symmetric
    if norm == "l2":  # directions uniform: the first coordinate of v/|v| is U(-1, 1) in d = 3
        u = (v[:, 0, 0] / norms(v, "l2")).numpy()
        assert scipy.stats.kstest(u, scipy.stats.uniform(-1, 2).cdf).pvalue > 1e-3


def test_bad_inputs():
    with pytest.raises(ValueError, match="norm"):
        norms(torch.zeros(2, 3), "l3")
    with pytest.raises(ValueError, match="eps"):
        project_l2(torch.zeros(2, 3), -1.0)
    with pytest.raises(ValueError, match="shape"):
        project_l1_box(torch.zeros(2, 3), torch.zeros(2, 4), 1.0)
    with pytest.raises(ValueError, match="eps"):
        project_linf(torch.zeros(2, 3), torch.ones(3))
