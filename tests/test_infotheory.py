"""Tests of robustkit.infotheory against independent oracles.

Oracles: scipy.stats / scipy.special, POT (ot.emd2, ot.wasserstein_1d,
ot.sliced_wasserstein_distance), torch.distributions, brute-force sums, Monte Carlo,
numerical integration and closed forms; invariants (identities, monotonicity, bounds).
"""
import math
import re
import sys

import numpy as np
import pytest
import scipy.integrate
import scipy.linalg
import scipy.spatial
import scipy.special
import scipy.stats
import torch
from torch.distributions import MultivariateNormal, Normal
from torch.distributions import kl_divergence as torch_kl

import robustkit.infotheory as it

ot = pytest.importorskip("ot")

TOL = dict(rtol=1e-6, atol=1e-6)
SEEDS = [0, 1, 2]


def _dirichlet(rng, shape, n, zeros=0):
    p = rng.dirichlet(np.ones(n), size=shape)
    if zeros:
        p[..., :zeros] = 0.0
        p = p / p.sum(-1, keepdims=True)
    return p


def _spd(rng, d, batch=()):
    A = rng.normal(size=(*batch, d, d))
    return A @ np.swapaxes(A, -1, -2) + 0.5 * np.eye(d)


def _gaussian_pair(seed, d):
    """Two random Gaussians (m1, S1, m2, S2) in dimension d, drawn from ``seed``."""
    rng = np.random.default_rng(seed)
    m1, m2 = rng.normal(size=d), rng.normal(size=d)
    S1, S2 = _spd(rng, d), _spd(rng, d)
    return m1, S1, m2, S2


def _close(a, b, **kw):
    np.testing.assert_allclose(np.asarray(torch.as_tensor(a).detach().cpu(), dtype=float), b, **{**TOL, **kw})


# ---------------------------------------------------------------- discrete entropies


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("base", [None, 2, 10])
def test_entropy_matches_scipy(seed, base):
    rng = np.random.default_rng(seed)
    p = _dirichlet(rng, (4, 3), 7, zeros=seed)  # some exact zeros: 0 log 0 = 0
    h = it.entropy(p, base=base)
    assert h.shape == (4, 3) and h.dtype == torch.float64
    _close(h, scipy.stats.entropy(p, base=base, axis=-1))
    _close(it.entropy(np.moveaxis(p, -1, 0), dim=0, base=base), scipy.stats.entropy(p, base=base, axis=-1))
    # elementwise definition through scipy.special.entr
    _close(it.entropy(p), scipy.special.entr(p).sum(-1))


def test_entropy_bounds_and_scalar():
    h = it.entropy(torch.full((8,), 1 / 8, dtype=torch.float64), base=2)
    assert h.ndim == 0 and h.item() == pytest.approx(3.0, abs=1e-12)
    assert it.entropy([0.0, 1.0, 0.0]).item() == 0.0
    assert it.entropy(np.array([1.0])).item() == 0.0


@pytest.mark.parametrize("seed", SEEDS)
def test_binary_entropy(seed):
    rng = np.random.default_rng(seed)
    p = rng.random(20)
    p[:2] = [0.0, 1.0]
    h = it.binary_entropy(p, base=2)
    _close(h, scipy.stats.entropy(np.stack([p, 1 - p]), base=2, axis=0))
    assert it.binary_entropy(0.5, base=2).item() == pytest.approx(1.0)
    assert it.binary_entropy(torch.tensor([0.0, 1.0])).abs().max().item() == 0.0


@pytest.mark.parametrize("seed", SEEDS)
def test_joint_conditional_mutual_information_identities(seed):
    rng = np.random.default_rng(seed)
    pxy = _dirichlet(rng, (5,), 12, zeros=seed).reshape(5, 3, 4)  # batch of 3x4 tables
    H = lambda v: scipy.stats.entropy(v, axis=-1)  # noqa: E731
    px, py = pxy.sum(-1), pxy.sum(-2)
    hxy = H(pxy.reshape(5, -1))
    _close(it.joint_entropy(pxy), hxy)
    # brute force Def. 5: H(X|Y) = sum_y p(y) H(X|Y=y)
    brute = np.zeros(5)
    for b in range(5):
        for y in range(4):
            if py[b, y] > 0:
                brute[b] += py[b, y] * H(pxy[b, :, y] / py[b, y])
    _close(it.conditional_entropy(pxy, given="y"), brute)
    _close(it.conditional_entropy(pxy, given=-1), brute)
    _close(it.conditional_entropy(pxy), hxy - H(py))  # Prop. 2
    _close(it.conditional_entropy(pxy, given="x"), hxy - H(px))
    _close(it.conditional_entropy(pxy, given=0), hxy - H(px))
    mi = it.mutual_information(pxy)
    rel = scipy.special.rel_entr(pxy, px[:, :, None] * py[:, None, :]).sum((-2, -1))
    _close(mi, rel)  # I = D(P_XY || P_X P_Y)
    _close(mi, H(px) - brute)  # Def. 6
    _close(mi, H(px) + H(py) - hxy)
    _close(it.mutual_information(pxy, base=2), rel / np.log(2))
    assert (mi >= -1e-12).all()


def test_mutual_information_extremes():
    p = np.array([0.2, 0.3, 0.5])
    _close(it.mutual_information(np.diag(p)), scipy.stats.entropy(p))  # X = Y
    _close(it.mutual_information(np.outer(p, [0.1, 0.9])), 0.0, atol=1e-12)  # independent
    _close(it.conditional_entropy(np.diag(p)), 0.0, atol=1e-12)


def _zero_cases():
    p = np.array([0.2, 0.3, 0.5])
    dirac = np.array([0.0, 1.0, 0.0])
    m, S = np.array([0.5, -1.0]), np.array([[2.0, 0.3], [0.3, 0.7]])
    return {
        "entropy(dirac)": lambda: it.entropy(dirac),
        "entropy(dirac, bits)": lambda: it.entropy(torch.tensor([[1.0, 0.0], [0.0, 1.0]]), base=2),
        "binary_entropy(0, 1)": lambda: it.binary_entropy([0.0, 1.0]),
        "joint_entropy(dirac)": lambda: it.joint_entropy(np.diag(dirac)),
        "conditional_entropy(X = Y)": lambda: it.conditional_entropy(np.diag(p), given="x"),
        "mutual_information(independent)": lambda: it.mutual_information(np.outer(p, [0.1, 0.9])),
        "mutual_information(dirac)": lambda: it.mutual_information(np.diag(dirac)),
        "cross_entropy(dirac, dirac)": lambda: it.cross_entropy(dirac, dirac),
        "kl(p, p)": lambda: it.kl_divergence(p, p),
        "renyi_0.5(p, p)": lambda: it.renyi_divergence(p, p, 0.5),
        "renyi_inf(p, p)": lambda: it.renyi_divergence(p, p, math.inf),
        "bhattacharyya_distance(p, p)": lambda: it.bhattacharyya_distance(p, p),
        "hellinger(p, p)": lambda: it.hellinger(p, p),
        "gaussian_kl(N, N)": lambda: it.gaussian_kl(m, S, m, S),
        "gaussian_bhattacharyya_distance(N, N)": lambda: it.gaussian_bhattacharyya_distance(m, S, m, S),
        "gaussian_hellinger(N, N)": lambda: it.gaussian_hellinger(m, S, m, S),
        "gaussian_w2(N, N)": lambda: it.gaussian_w2(m, S, m, S),
        "diag_kl(N(0, 1))": lambda: it.diag_gaussian_kl_to_standard(torch.zeros(3), logvar=torch.zeros(3)),
        "wasserstein_exact(X, X)": lambda: it.wasserstein_exact(np.eye(3), np.eye(3)),
    }


@pytest.mark.parametrize("name", list(_zero_cases()))
def test_zero_results_print_without_minus_sign(name):
    # deterministic / identical inputs: +0.0, not -0.0 or -1e-17 (printed "-0.0000")
    v = _zero_cases()[name]()
    assert v.abs().max().item() <= 1e-7, name  # sqrt-type distances: sqrt(rounding)
    assert not torch.signbit(v).any(), f"{name} = {v}"
    minus = re.compile(r"(?<![eE])-")  # a minus sign, not an exponent's
    assert not minus.search(str(v)) and not minus.search(repr(v.tolist())), f"{name}: {v}"
    assert all("-" not in f"{x:.4f}" for x in v.reshape(-1).tolist())
    if v.ndim == 0:
        assert "-" not in f"{v:.4f}"


def test_entropy_gradient_at_zero_probability():
    # d/dp (-p log p) = -(1 + log p): +inf at p = 0 (one-sided), not nan
    p = torch.tensor([0.0, 0.25, 0.75], dtype=torch.float64, requires_grad=True)
    it.entropy(p).backward()
    assert p.grad[0].item() == math.inf
    _close(p.grad[1:], -(1 + np.log([0.25, 0.75])), rtol=1e-12)


# ---------------------------------------------------------------- divergences


@pytest.mark.parametrize("seed", SEEDS)
def test_kl_and_cross_entropy_match_scipy(seed):
    rng = np.random.default_rng(seed)
    p = _dirichlet(rng, (6,), 5, zeros=1)
    q = _dirichlet(rng, (), 5)  # broadcast over p's batch
    kl = it.kl_divergence(p, q)
    _close(kl, scipy.special.rel_entr(p, q).sum(-1))
    _close(kl, scipy.stats.entropy(p, q, axis=-1))
    _close(it.kl_divergence(p, q, base=2), scipy.stats.entropy(p, q, axis=-1, base=2))
    _close(it.cross_entropy(p, q), scipy.stats.entropy(p, axis=-1) + scipy.stats.entropy(p, q, axis=-1))
    _close(it.cross_entropy(p, q), -(p * np.log(q)).sum(-1))
    _close(it.kl_divergence(p, p), 0.0, atol=1e-12)


def test_kl_infinite_and_zero_conventions():
    p = torch.tensor([0.5, 0.5, 0.0], dtype=torch.float64)
    q = torch.tensor([0.5, 0.0, 0.5], dtype=torch.float64)
    assert math.isinf(it.kl_divergence(p, q).item()) and it.kl_divergence(p, q).item() > 0
    assert math.isinf(it.cross_entropy(p, q).item())
    r = torch.tensor([0.25, 0.25, 0.5], dtype=torch.float64)
    assert it.kl_divergence(p, r).item() == pytest.approx(math.log(2))  # p = 0 term counts 0


def _renyi_brute(p, q, alpha):
    s = sum(pi**alpha * qi ** (1 - alpha) for pi, qi in zip(p, q) if pi > 0)
    return math.log(s) / (alpha - 1)


@pytest.mark.parametrize("seed", SEEDS)
def test_renyi_divergence(seed):
    rng = np.random.default_rng(seed)
    p, q = _dirichlet(rng, (), 6), _dirichlet(rng, (), 6)
    alphas = [0.1, 0.5, 0.9, 1.0, 1.5, 2.0, 5.0, 20.0]
    vals = [it.renyi_divergence(p, q, a).item() for a in alphas]
    for a, v in zip(alphas, vals):
        expected = scipy.stats.entropy(p, q) if a == 1.0 else _renyi_brute(p, q, a)
        assert v == pytest.approx(expected, rel=1e-9, abs=1e-12)
        # seed 001 eq. (4) is the standard divergence divided by alpha
        assert it.renyi_divergence(p, q, a, normalization="seed001").item() == pytest.approx(v / a, rel=1e-12)
    assert all(b >= a - 1e-12 for a, b in zip(vals, vals[1:]))  # non-decreasing in alpha
    kl = scipy.stats.entropy(p, q)
    for eps in (1e-4, -1e-4):
        assert it.renyi_divergence(p, q, 1 + eps).item() == pytest.approx(kl, abs=1e-3 * kl)
    d_inf = it.renyi_divergence(p, q, math.inf).item()
    assert d_inf == pytest.approx(np.log((p / q).max()), rel=1e-12)
    assert vals[-1] <= d_inf + 1e-12 and it.renyi_divergence(p, q, 2000.0).item() == pytest.approx(d_inf, rel=1e-2)
    # alpha = 1/2: D = -2 log BC = 2 * Bhattacharyya distance
    assert vals[1] == pytest.approx(2 * it.bhattacharyya_distance(p, q).item(), rel=1e-10)


def test_renyi_support_mismatch():
    p = np.array([0.5, 0.5, 0.0])
    q = np.array([0.5, 0.0, 0.5])
    assert math.isinf(it.renyi_divergence(p, q, 2.0).item())
    assert math.isinf(it.renyi_divergence(p, q, math.inf).item())
    assert it.renyi_divergence(p, q, 0.5).item() == pytest.approx(_renyi_brute(p, q, 0.5))
    disjoint = np.array([0.0, 0.0, 1.0])
    assert it.renyi_divergence(np.array([1.0, 0.0, 0.0]), disjoint, 0.5).item() == math.inf


@pytest.mark.parametrize("seed", SEEDS)
def test_bhattacharyya_hellinger_tv(seed):
    rng = np.random.default_rng(seed)
    p, q = _dirichlet(rng, (4,), 9, zeros=1), _dirichlet(rng, (4,), 9)
    bc = np.sqrt(p * q).sum(-1)
    _close(it.bhattacharyya(p, q), bc)
    _close(it.bhattacharyya_distance(p, q), -np.log(bc))
    h = it.hellinger(p, q)
    _close(h, np.sqrt(0.5 * ((np.sqrt(p) - np.sqrt(q)) ** 2).sum(-1)))  # Def. 12/13 with 1/2
    _close(h, np.sqrt(1 - bc))  # Prop. 4
    assert ((h >= 0) & (h <= 1)).all()
    tv = it.total_variation(p, q)
    _close(tv, 0.5 * np.abs(p - q).sum(-1))
    # Pinsker (seed 000, Remark 3) and the Hellinger / TV sandwich H^2 <= TV <= sqrt(2) H
    assert (it.kl_divergence(p, q) >= 2 * tv**2).all()
    assert (h**2 <= tv + 1e-12).all() and (tv <= math.sqrt(2) * h + 1e-12).all()
    assert it.hellinger([1.0, 0.0], [0.0, 1.0]).item() == pytest.approx(1.0)
    assert it.hellinger(p, p).abs().max().item() < 1e-7


# ---------------------------------------------------------------- Gaussian closed forms


@pytest.mark.parametrize("seed", SEEDS)
def test_gaussian_kl_entropy_vs_torch_distributions(seed):
    rng = np.random.default_rng(seed)
    d, B = 4, 3
    m1, m2 = rng.normal(size=(B, d)), rng.normal(size=(B, d))
    S1, S2 = _spd(rng, d, (B,)), _spd(rng, d, (B,))
    P = MultivariateNormal(torch.tensor(m1), torch.tensor(S1))
    Q = MultivariateNormal(torch.tensor(m2), torch.tensor(S2))
    kl = it.gaussian_kl(m1, S1, m2, S2)
    assert kl.shape == (B,) and kl.dtype == torch.float64
    _close(kl, torch_kl(P, Q).numpy())
    _close(it.gaussian_entropy(S1), P.entropy().numpy())
    _close(it.gaussian_entropy(S1, base=2), P.entropy().numpy() / np.log(2))
    # broadcasting: one prior for the batch
    _close(it.gaussian_kl(m1, S1, m2[0], S2[0]), torch_kl(P, MultivariateNormal(Q.loc[0], Q.covariance_matrix[0])))
    _close(it.gaussian_kl(m1, S1, m1, S1), np.zeros(B), atol=1e-10)


def test_gaussian_kl_monte_carlo():
    d = 3
    m1, S1, m2, S2 = _gaussian_pair(5, d)
    P = MultivariateNormal(torch.tensor(m1), torch.tensor(S1))
    Q = MultivariateNormal(torch.tensor(m2), torch.tensor(S2))
    torch.manual_seed(0)
    z = P.sample((200_000,))
    llr = P.log_prob(z) - Q.log_prob(z)
    se = llr.std().item() / math.sqrt(z.shape[0])
    assert abs(it.gaussian_kl(m1, S1, m2, S2).item() - llr.mean().item()) < 5 * se
    # Bhattacharyya coefficient BC = E_P[sqrt(q/p)]
    ratio = torch.exp(0.5 * (Q.log_prob(z) - P.log_prob(z)))
    se = ratio.std().item() / math.sqrt(z.shape[0])
    assert abs(it.gaussian_bhattacharyya(m1, S1, m2, S2).item() - ratio.mean().item()) < 5 * se


@pytest.mark.parametrize("seed", SEEDS)
def test_gaussian_hellinger_and_bhattacharyya(seed):
    d = 3
    m1, S1, m2, S2 = _gaussian_pair(seed, d)
    S = (S1 + S2) / 2
    diff = m1 - m2
    bc = (
        np.linalg.det(S1) ** 0.25 * np.linalg.det(S2) ** 0.25 / np.linalg.det(S) ** 0.5
        * np.exp(-diff @ np.linalg.solve(S, diff) / 8)
    )  # seed 000 section 5.6, written with determinants
    _close(it.gaussian_bhattacharyya(m1, S1, m2, S2), bc)
    _close(it.gaussian_bhattacharyya_distance(m1, S1, m2, S2), -np.log(bc))
    _close(it.gaussian_hellinger(m1, S1, m2, S2), np.sqrt(1 - bc))


@pytest.mark.parametrize("m1,s1,m2,s2", [(0.0, 1.0, 1.0, 2.0), (-0.5, 0.3, 0.4, 0.35), (2.0, 1.5, 2.0, 1.5)])
def test_gaussian_1d_closed_forms(m1, s1, m2, s2):
    args = ([m1], [[s1**2]], [m2], [[s2**2]])
    args = [np.asarray(a, dtype=float) for a in args]
    # Hellinger: closed form and numerical integration of Def. 12
    h2 = 1 - math.sqrt(2 * s1 * s2 / (s1**2 + s2**2)) * math.exp(-((m1 - m2) ** 2) / (4 * (s1**2 + s2**2)))
    f = lambda x: 0.5 * (  # noqa: E731
        math.sqrt(scipy.stats.norm.pdf(x, m1, s1)) - math.sqrt(scipy.stats.norm.pdf(x, m2, s2))
    ) ** 2
    h2_quad = scipy.integrate.quad(f, -30, 30, points=[m1, m2], limit=200)[0]
    _close(it.gaussian_hellinger(*args), math.sqrt(max(h2, 0)), atol=1e-7)
    assert h2_quad == pytest.approx(h2, abs=1e-8)
    # W2 between 1-D normals: sqrt((m1-m2)^2 + (s1-s2)^2)
    _close(it.gaussian_w2(*args), math.hypot(m1 - m2, s1 - s2), atol=1e-7)
    _close(it.gaussian_w2(*args, squared=True), (m1 - m2) ** 2 + (s1 - s2) ** 2, atol=1e-7)
    # KL between 1-D normals
    kl = math.log(s2 / s1) + (s1**2 + (m1 - m2) ** 2) / (2 * s2**2) - 0.5
    _close(it.gaussian_kl(*args), kl)
    _close(it.gaussian_kl(*args), torch_kl(Normal(m1, s1), Normal(m2, s2)).double())


@pytest.mark.parametrize("seed", SEEDS)
def test_gaussian_w2_vs_scipy_sqrtm_and_psd(seed):
    d = 4
    m1, S1, m2, S2 = _gaussian_pair(seed, d)
    r = scipy.linalg.sqrtm(S2).real
    w2 = np.sum((m1 - m2) ** 2) + np.trace(S1 + S2 - 2 * scipy.linalg.sqrtm(r @ S1 @ r).real)
    _close(it.gaussian_w2(m1, S1, m2, S2, squared=True), w2)
    _close(it.gaussian_w2(m1, S1, m2, S2), it.gaussian_w2(m2, S2, m1, S1))  # symmetric
    # degenerate covariance: N(m, 0) are Diracs, W2 = |m1 - m2|
    Z = np.zeros((d, d))
    _close(it.gaussian_w2(m1, Z, m2, Z), np.linalg.norm(m1 - m2))
    # W2 >= distance between the means (Jensen)
    assert it.gaussian_w2(m1, S1, m2, S2).item() >= np.linalg.norm(m1 - m2) - 1e-12


def test_diag_gaussian_kl_and_vib_loss():
    torch.manual_seed(0)
    mu = torch.randn(5, 3, dtype=torch.float64)
    logvar = torch.randn(5, 3, dtype=torch.float64)
    kl = it.diag_gaussian_kl_to_standard(mu, logvar=logvar)
    ref = torch_kl(
        MultivariateNormal(mu, torch.diag_embed(logvar.exp())),
        MultivariateNormal(torch.zeros(3, dtype=torch.float64), torch.eye(3, dtype=torch.float64)),
    )
    _close(kl, ref.numpy())
    _close(it.diag_gaussian_kl_to_standard(mu, std=(0.5 * logvar).exp()), ref.numpy())
    _close(it.gaussian_kl(mu, torch.diag_embed(logvar.exp()), torch.zeros(3), torch.eye(3)), ref.numpy())
    logits = torch.randn(5, 4, dtype=torch.float64)
    y = torch.tensor([0, 1, 2, 3, 0])
    loss, ce, klm = it.vib_loss(logits, y, mu, logvar=logvar, beta=0.1, return_terms=True)
    manual_ce = -torch.log_softmax(logits, -1)[torch.arange(5), y].mean()
    _close(ce, manual_ce.item())
    _close(klm, ref.mean().item())
    _close(loss, manual_ce.item() + 0.1 * ref.mean().item())
    with pytest.raises(ValueError, match="exactly one"):
        it.vib_loss(logits, y, mu, beta=0.1)
    with pytest.raises(ValueError, match="shape mismatch"):
        it.vib_loss(logits, y[:3], mu, logvar=logvar)


# ---------------------------------------------------------------- 1-D Wasserstein


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("sizes", [(7, 7), (13, 9)])
def test_wasserstein_1d_p1_vs_scipy(seed, sizes):
    rng = np.random.default_rng(seed)
    u, v = rng.normal(size=sizes[0]), rng.normal(1, 2, size=sizes[1])
    uw, vw = rng.random(sizes[0]), rng.random(sizes[1])
    _close(it.wasserstein_1d(u, v), scipy.stats.wasserstein_distance(u, v))
    _close(it.wasserstein_1d(u, v, uw, vw), scipy.stats.wasserstein_distance(u, v, uw, vw))
    _close(it.wasserstein_1d(u, v, uw, None), scipy.stats.wasserstein_distance(u, v, uw, None))


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("p", [1.5, 2, 3])
def test_wasserstein_1d_general_p_vs_pot(seed, p):
    rng = np.random.default_rng(seed)
    u, v = rng.normal(size=11), rng.exponential(size=8)
    uw, vw = rng.random(11), rng.random(8)
    uw, vw = uw / uw.sum(), vw / vw.sum()
    M = np.abs(u[:, None] - v[None, :]) ** p
    exact = ot.emd2(uw, vw, M) ** (1 / p)  # LP, independent of the quantile formula
    _close(it.wasserstein_1d(u, v, uw, vw, p=p), exact)
    _close(it.wasserstein_1d(u, v, uw, vw, p=p), ot.wasserstein_1d(u, v, uw, vw, p=p) ** (1 / p))
    # equal sizes, uniform weights: fast path == general path
    w = rng.normal(size=11)
    _close(it.wasserstein_1d(u, w, p=p), it.wasserstein_1d(u, w, np.ones(11), np.ones(11), p=p), rtol=1e-12)
    _close(it.wasserstein_1d(u, w, p=p), ot.emd2([], [], np.abs(u[:, None] - w[None, :]) ** p) ** (1 / p))


def test_wasserstein_1d_batched_matches_loop():
    rng = np.random.default_rng(3)
    u, v = rng.normal(size=(4, 5, 10)), rng.normal(size=(5, 6))  # broadcast batch dims
    vw = rng.random((5, 6))
    w = it.wasserstein_1d(u, v, None, vw, p=1)
    assert w.shape == (4, 5)
    for i in range(4):
        for j in range(5):
            assert w[i, j].item() == pytest.approx(scipy.stats.wasserstein_distance(u[i, j], v[j], None, vw[j]))


def test_wasserstein_1d_hist():
    rng = np.random.default_rng(4)
    x = np.sort(rng.random(12)) * 10
    a, b = rng.random((3, 12)), rng.random(12)
    w1 = it.wasserstein_1d_hist(a, b, positions=x)
    assert w1.shape == (3,)
    for i in range(3):
        assert w1[i].item() == pytest.approx(scipy.stats.wasserstein_distance(x, x, a[i], b), rel=1e-9)
    an, bn = a[0] / a[0].sum(), b / b.sum()
    w2 = ot.emd2(an, bn, (x[:, None] - x[None, :]) ** 2) ** 0.5
    _close(it.wasserstein_1d_hist(a[0], b, p=2, positions=x), w2)
    # default grid 0..n-1: a Dirac moved by k bins is at distance k
    e = np.eye(12)
    assert it.wasserstein_1d_hist(e[2], e[7]).item() == pytest.approx(5.0)
    assert it.wasserstein_1d_hist(e[2], e[7], p=3).item() == pytest.approx(5.0)


# ---------------------------------------------------------------- sliced Wasserstein


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("p", [1, 2])
def test_sliced_wasserstein_vs_pot_same_projections(seed, p):
    rng = np.random.default_rng(seed)
    X, Y = rng.normal(size=(30, 5)), rng.normal(0.5, 1.5, size=(24, 5))
    a, b = rng.random(30), rng.random(24)
    theta = it.random_projections(5, 40, seed=seed, dtype=torch.float64)
    assert torch.allclose(theta.norm(dim=0), torch.ones(40, dtype=torch.float64))
    ours = it.sliced_wasserstein(X, Y, p=p, projections=theta)
    _close(ours, ot.sliced_wasserstein_distance(X, Y, p=p, projections=theta.numpy()))
    ours_w = it.sliced_wasserstein(X, Y, p=p, x_weights=a, y_weights=b, projections=theta)
    pot_w = ot.sliced_wasserstein_distance(X, Y, a / a.sum(), b / b.sum(), p=p, projections=theta.numpy())
    _close(ours_w, pot_w)
    # projections drawn from a seed are the ones used
    _close(it.sliced_wasserstein(X, Y, n_projections=40, p=p, seed=seed), ours.item(), rtol=1e-12)


def test_sliced_wasserstein_invariants():
    rng = np.random.default_rng(7)
    X, Y = rng.normal(size=(40, 3)), rng.normal(1.0, 1.0, size=(40, 3))
    sw = it.sliced_wasserstein(X, Y, n_projections=200, seed=0)
    assert it.sliced_wasserstein(X, X, n_projections=50, seed=0).item() == pytest.approx(0.0, abs=1e-12)
    assert sw.item() == pytest.approx(it.sliced_wasserstein(Y, X, n_projections=200, seed=0).item(), rel=1e-12)
    w2 = ot.emd2([], [], ot.dist(X, Y)) ** 0.5  # exact W2 by network simplex
    assert 0 < sw.item() <= w2 + 1e-12
    _close(it.wasserstein_exact(X, Y, p=2, solver="highs"), w2)  # our LP (HiGHS, not POT) agrees with POT
    # seed 000 Algorithm 2 (mean of W2 over projections) <= SW_2 (power-mean inequality)
    theta = it.random_projections(3, 200, seed=0, dtype=torch.float64)
    per_proj = it.wasserstein_1d(torch.tensor(X @ theta.numpy()).T, torch.tensor(Y @ theta.numpy()).T, p=2)
    assert per_proj.mean().item() <= sw.item() + 1e-12
    _close(per_proj.pow(2).mean().sqrt(), sw.item())


def test_sliced_wasserstein_translation():
    rng = np.random.default_rng(8)
    d = 4
    X = torch.tensor(rng.normal(size=(25, d)))
    t = torch.tensor(rng.normal(size=d))
    theta = it.random_projections(d, 64, seed=1, dtype=torch.float64)
    # each projection translates by <theta, t>: SW_2^2 = mean (theta^T t)^2 exactly
    _close(it.sliced_wasserstein(X, X + t, projections=theta) ** 2, (t @ theta).pow(2).mean().item())
    _close(it.sliced_wasserstein(X, X + t, projections=theta, p=1), (t @ theta).abs().mean().item())
    # and E_theta (theta^T t)^2 = ||t||^2 / d (Monte Carlo, 20000 directions)
    sw2 = it.sliced_wasserstein(X, X + t, n_projections=20_000, seed=2) ** 2
    assert sw2.item() == pytest.approx(t.pow(2).sum().item() / d, rel=0.03)


def test_sliced_wasserstein_batched_and_unequal_sizes():
    rng = np.random.default_rng(9)
    X, Y = torch.tensor(rng.normal(size=(3, 20, 2))), torch.tensor(rng.normal(size=(3, 15, 2)))
    theta = it.random_projections(2, 30, seed=0, dtype=torch.float64)
    sw = it.sliced_wasserstein(X, Y, projections=theta)
    assert sw.shape == (3,)
    for i in range(3):
        ref = ot.sliced_wasserstein_distance(X[i].numpy(), Y[i].numpy(), projections=theta.numpy())
        assert sw[i].item() == pytest.approx(ref, rel=1e-9)


def test_sliced_wasserstein_float32_and_reproducible():
    g = torch.Generator().manual_seed(0)
    X = torch.randn(50, 6, generator=g)
    Y = torch.randn(50, 6, generator=g) + 1
    a = it.sliced_wasserstein(X, Y, n_projections=20, seed=3)
    b = it.sliced_wasserstein(X, Y, n_projections=20, generator=torch.Generator().manual_seed(3))
    assert a.dtype == torch.float32 and a.ndim == 0
    assert a.item() == b.item()
    assert a.item() != it.sliced_wasserstein(X, Y, n_projections=20, seed=4).item()


# ---------------------------------------------------------------- images


def _grid(H, W):
    return np.stack(np.meshgrid(np.arange(H), np.arange(W), indexing="ij"), -1).reshape(-1, 2).astype(float)


def test_image_sliced_wasserstein_vs_pot():
    rng = np.random.default_rng(10)
    B, H, W = 3, 5, 6
    img1, img2 = rng.random((B, H, W)), rng.random((B, H, W))
    img1[0, :2] = 0.0  # zero pixels are allowed
    theta = it.random_projections(2, 25, seed=0, dtype=torch.float64)
    sw = it.image_sliced_wasserstein(img1, img2, projections=theta)
    assert sw.shape == (B,)
    g = _grid(H, W)
    for i in range(B):
        a, b = img1[i].ravel() / img1[i].sum(), img2[i].ravel() / img2[i].sum()
        ref = ot.sliced_wasserstein_distance(g, g, a, b, projections=theta.numpy())
        assert sw[i].item() == pytest.approx(ref, rel=1e-9)
        _close(sw[i], it.sliced_wasserstein(g, g, x_weights=a, y_weights=b, projections=theta).item())
    unit = it.image_sliced_wasserstein(img1, img2, projections=theta, coords="unit")
    _close(unit, sw.numpy() / (max(H, W) - 1))
    # a single image against a batch broadcasts
    assert it.image_sliced_wasserstein(img1[0], img2, projections=theta).shape == (B,)


@pytest.mark.parametrize("solver", ["highs", "pot"])
def test_image_wasserstein_exact_vs_pot_and_translation(solver):
    rng = np.random.default_rng(11)
    H, W = 6, 6
    img1, img2 = rng.random((H, W)), rng.random((H, W))
    img2[rng.random((H, W)) < 0.4] = 0.0
    g = _grid(H, W)
    a, b = img1.ravel() / img1.sum(), img2.ravel() / img2.sum()
    if solver == "highs":  # the POT oracle checks the HiGHS LP (the POT path is checked against HiGHS)
        for p in (1, 2):
            ref = ot.emd2(a, b, ot.dist(g, g, metric="euclidean") ** p) ** (1 / p)
            _close(it.image_wasserstein_exact(img1, img2, p=p, solver="highs"), ref)
    exact = it.image_wasserstein_exact(img1, img2, solver=solver)
    assert it.image_sliced_wasserstein(img1, img2, n_projections=100, seed=0).item() <= exact.item() + 1e-12
    # a pattern translated by (1, 2) pixels: W_p = sqrt(5) for every p; SW_2 = sqrt(5 / 2) in expectation
    pat = np.zeros((H, W))
    pat[1:3, 0:3] = rng.random((2, 3))
    moved = np.roll(pat, (1, 2), axis=(0, 1))
    for p in (1, 2, 3):
        w = it.image_wasserstein_exact(pat, moved, p=p, solver=solver)
        assert w.item() == pytest.approx(math.sqrt(5), rel=1e-7)
    swt = it.image_sliced_wasserstein(pat, moved, n_projections=20_000, seed=1)
    assert swt.item() == pytest.approx(math.sqrt(2.5), rel=0.02)
    batch = it.image_wasserstein_exact(np.stack([img1, pat]), np.stack([img2, moved]), solver=solver)
    assert batch.shape == (2,)
    _close(batch, [exact.item(), math.sqrt(5)])


# ---------------------------------------------------------------- exact OT solvers (POT vs HiGHS)


def _check_plan(plan, a, b, C, w, p):
    plan = plan.numpy()
    assert plan.min() >= -1e-12
    np.testing.assert_allclose(plan.sum(1), a, atol=1e-9)
    np.testing.assert_allclose(plan.sum(0), b, atol=1e-9)
    assert (plan * C).sum() == pytest.approx(w.item() ** p, rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("p", [1, 2, 3])
def test_wasserstein_exact_pot_and_highs_agree(seed, p):
    rng = np.random.default_rng(seed)
    n, m, d = 12 + seed, 9, 3
    X, Y = rng.normal(size=(n, d)), rng.normal(0.5, 1.5, size=(m, d))
    xw, yw = rng.random(n), rng.random(m)
    a, b = xw / xw.sum(), yw / yw.sum()
    C = scipy.spatial.distance.cdist(X, Y) ** p
    w_hi, plan_hi = it.wasserstein_exact(X, Y, xw, yw, p=p, solver="highs", return_plan=True)
    w_pot, plan_pot = it.wasserstein_exact(X, Y, xw, yw, p=p, solver="pot", return_plan=True)
    assert w_pot.shape == () and w_pot.dtype == torch.float64 and plan_pot.shape == (n, m)
    assert abs(w_pot.item() - w_hi.item()) <= 1e-7
    _check_plan(plan_hi, a, b, C, w_hi, p)
    _check_plan(plan_pot, a, b, C, w_pot, p)
    # random costs: the optimal plan is unique, so both solvers return it
    np.testing.assert_allclose(plan_pot.numpy(), plan_hi.numpy(), atol=1e-7)
    assert it.wasserstein_exact(X, Y, xw, yw, p=p).item() == pytest.approx(w_pot.item(), abs=1e-12)  # auto
    # float32 in, float32 out, same semantics
    w32 = it.wasserstein_exact(torch.tensor(X, dtype=torch.float32), torch.tensor(Y, dtype=torch.float32), p=p)
    assert w32.dtype == torch.float32


def test_image_wasserstein_exact_solvers_agree_on_images():
    rng = np.random.default_rng(12)
    B, H, W = 3, 7, 8
    img1, img2 = rng.random((B, H, W)), rng.random((B, H, W))
    img1[rng.random((B, H, W)) < 0.3] = 0.0
    img2[:, :2] = 0.0
    for p in (1, 2):
        hi = it.image_wasserstein_exact(img1, img2, p=p, solver="highs")
        pot = it.image_wasserstein_exact(img1, img2, p=p, solver="pot")
        assert hi.shape == pot.shape == (B,)
        assert (pot - hi).abs().max().item() <= 1e-7
        _close(it.image_wasserstein_exact(img1, img2, p=p, coords="unit", solver="pot"), pot.numpy() / (max(H, W) - 1))


def test_exact_solver_choice_and_errors(monkeypatch):
    X, Y = np.array([[0.0, 0.0], [1.0, 0.0]]), np.array([[0.0, 2.0]])
    for solver in ("simplex", "", None, 1):
        with pytest.raises(ValueError, match="solver must be"):
            it.wasserstein_exact(X, Y, solver=solver)
    with pytest.raises(ValueError, match="solver must be"):
        it.image_wasserstein_exact(np.ones((2, 2)), np.ones((2, 2)), solver="ot")
    expected = math.sqrt(4.5)  # half the mass moves 2, half moves sqrt(5): W2^2 = (4 + 5) / 2
    # POT made unimportable: "pot" fails clearly, "auto" falls back to HiGHS
    monkeypatch.setitem(sys.modules, "ot", None)
    with pytest.raises(ImportError, match='solver="pot" needs the POT package'):
        it.wasserstein_exact(X, Y, solver="pot")
    with pytest.raises(ImportError, match="POT"):
        it.image_wasserstein_exact(np.eye(3), np.ones((3, 3)), solver="pot")
    assert it.wasserstein_exact(X, Y, solver="auto").item() == pytest.approx(expected, rel=1e-12)
    assert it.wasserstein_exact(X, Y, solver="HiGHS").item() == pytest.approx(expected, rel=1e-12)


def test_pot_non_optimal_exit_is_an_error(monkeypatch):
    rng = np.random.default_rng(13)
    X, Y = rng.normal(size=(30, 2)), rng.normal(size=(30, 2))
    monkeypatch.setattr(it, "_POT_NUM_ITERMAX", 2)  # stop POT's simplex long before optimality
    with pytest.raises(RuntimeError, match="did not reach optimality"):
        it.wasserstein_exact(X, Y, solver="pot")
    assert it.wasserstein_exact(X, Y, solver="highs").item() > 0


# ---------------------------------------------------------------- blocked 1-D solver


@pytest.fixture
def tiny_blocks(monkeypatch):
    """Force the blocked paths of the weighted 1-D solver on small problems."""

    def set_blocks(n_elements):
        monkeypatch.setattr(it, "_BLOCK_ELEMENTS_CPU", n_elements)
        monkeypatch.setattr(it, "_BLOCK_ELEMENTS_GPU", n_elements)

    return set_blocks


@pytest.mark.parametrize("block", [60, 300])  # 60: blocks of projections within a pair; 300: whole pairs
def test_image_sliced_wasserstein_blocked_matches_unblocked(tiny_blocks, block):
    rng = np.random.default_rng(14)
    img1 = torch.tensor(rng.random((2, 3, 4, 5)))  # batch (2, 3), n = 20 pixels
    img2 = torch.tensor(rng.random((3, 4, 5)))
    img1[0, 0, :2] = 0.0  # zero masses: ties in the cumulative weights
    theta = it.random_projections(2, 7, seed=0, dtype=torch.float64)

    def value_and_grads():
        a, b = img1.clone().requires_grad_(), img2.clone().requires_grad_()
        v = it.image_sliced_wasserstein(a, b, projections=theta, p=1.5)
        v.sum().backward()
        return v.detach(), a.grad, b.grad

    ref = value_and_grads()
    tiny_blocks(block)
    out = value_and_grads()
    assert out[0].shape == (2, 3)
    for r, o in zip(ref, out):
        assert (r - o).abs().max().item() <= 1e-12
    # each pair against POT's sliced distance with the same projections
    g = _grid(4, 5)
    for i in range(2):
        for j in range(3):
            a, b = img1[i, j].numpy().ravel(), img2[j].numpy().ravel()
            pot = ot.sliced_wasserstein_distance(g, g, a / a.sum(), b / b.sum(), p=1.5, projections=theta.numpy())
            assert out[0][i, j].item() == pytest.approx(pot, rel=1e-9)
    th2 = it.random_projections(2, 3, seed=1, dtype=torch.float64)
    x = torch.rand(2, 2, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0)).add(0.1).requires_grad_()
    y = torch.rand(2, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1)).add(0.1)
    tiny_blocks(13)  # 1 row per block
    assert torch.autograd.gradcheck(lambda t: it.image_sliced_wasserstein(t, y, projections=th2), (x,))


def test_weighted_1d_blocked_matches_unblocked_and_pot(tiny_blocks):
    rng = np.random.default_rng(15)
    u, v = rng.normal(size=(5, 9)), rng.normal(size=(5, 6))
    uw, vw = rng.random((5, 9)), rng.random((5, 6))
    uw[:, :2] = 0.0  # zero weights: ties inside the cumulative weights
    vw[:, 0] = 0.0
    X, Y = rng.normal(size=(11, 3)), rng.normal(size=(8, 3))
    xw, yw = rng.random(11), rng.random(8)
    theta = it.random_projections(3, 6, seed=2, dtype=torch.float64)
    ref_1d = it.wasserstein_1d(u, v, uw, vw, p=2)
    ref_sw = it.sliced_wasserstein(X, Y, x_weights=xw, y_weights=yw, projections=theta, p=3)
    ref_h = it.wasserstein_1d_hist(uw, np.abs(vw[:, :1]) + uw[::-1], p=2)
    tiny_blocks(40)  # 2 rows of 9 + 6 (or 19 + 19) per block
    assert (it.wasserstein_1d(u, v, uw, vw, p=2) - ref_1d).abs().max().item() <= 1e-12
    sw = it.sliced_wasserstein(X, Y, x_weights=xw, y_weights=yw, projections=theta, p=3)
    assert abs(sw.item() - ref_sw.item()) <= 1e-12
    assert (it.wasserstein_1d_hist(uw, np.abs(vw[:, :1]) + uw[::-1], p=2) - ref_h).abs().max().item() <= 1e-12
    for i in range(5):
        a, b = uw[i] / uw[i].sum(), vw[i] / vw[i].sum()
        exact = ot.emd2(a, b, (u[i][:, None] - v[i][None, :]) ** 2) ** 0.5  # LP oracle
        assert ref_1d[i].item() == pytest.approx(exact, rel=1e-9)


def test_weighted_1d_ties_between_the_two_measures():
    # equal cumulative weights on both sides (every breakpoint tied), zero weights and
    # repeated values: the merge must still integrate the right quantile pieces
    u = np.array([0.0, 1.0, 1.0, 3.0, 7.0])
    v = np.array([-2.0, 0.5, 4.0, 4.0, 10.0])
    w = np.array([0.25, 0.0, 0.25, 0.25, 0.25])
    for p in (1, 2, 3):
        exact = ot.emd2(w, w, np.abs(u[:, None] - v[None, :]) ** p) ** (1 / p)
        assert it.wasserstein_1d(u, v, w, w, p=p).item() == pytest.approx(exact, rel=1e-12)
        w2 = np.array([0.5, 0.0, 0.0, 0.25, 0.25])
        exact = ot.emd2(w, w2, np.abs(u[:, None] - v[None, :]) ** p) ** (1 / p)
        assert it.wasserstein_1d(u, v, w, w2, p=p).item() == pytest.approx(exact, rel=1e-12)


def test_image_sliced_wasserstein_batched_equals_loop():
    rng = np.random.default_rng(16)
    img1, img2 = torch.tensor(rng.random((6, 9, 9))), torch.tensor(rng.random((6, 9, 9)))
    img1[img1 < 0.3] = 0.0
    theta = it.random_projections(2, 40, seed=3, dtype=torch.float64)
    batched = it.image_sliced_wasserstein(img1, img2, projections=theta)
    loop = torch.stack([it.image_sliced_wasserstein(a, b, projections=theta) for a, b in zip(img1, img2)])
    assert (batched - loop).abs().max().item() <= 1e-12


# ---------------------------------------------------------------- gradients


def test_gradcheck():
    g = torch.Generator().manual_seed(0)
    dd = dict(dtype=torch.float64)
    p = torch.softmax(torch.randn(3, 5, generator=g, **dd), -1).requires_grad_()
    q = torch.softmax(torch.randn(3, 5, generator=g, **dd), -1).requires_grad_()
    # perturbations leave the simplex: validate with a loose atol
    assert torch.autograd.gradcheck(lambda a: it.entropy(a, atol=1e-3), (p,))
    pxy = torch.softmax(torch.randn(2, 12, generator=g, **dd), -1).reshape(2, 3, 4).requires_grad_()
    for f in (it.joint_entropy, it.mutual_information, it.conditional_entropy):
        assert torch.autograd.gradcheck(lambda t: f(t, atol=1e-3), (pxy,))
    assert torch.autograd.gradcheck(it.binary_entropy, (p.detach()[0].clone().requires_grad_(),))
    assert torch.autograd.gradcheck(lambda a, b: it.cross_entropy(a, b, atol=1e-3), (p, q))
    assert torch.autograd.gradcheck(lambda a, b: it.kl_divergence(a, b, atol=1e-3), (p, q))
    assert torch.autograd.gradcheck(lambda a, b: it.renyi_divergence(a, b, 2.5, atol=1e-3), (p, q))
    u = torch.randn(2, 7, generator=g, **dd).requires_grad_()
    v = torch.randn(2, 7, generator=g, **dd).requires_grad_()
    v2 = torch.randn(2, 5, generator=g, **dd).requires_grad_()
    assert torch.autograd.gradcheck(lambda a, b: it.wasserstein_1d(a, b, p=2), (u, v))
    assert torch.autograd.gradcheck(lambda a, b: it.wasserstein_1d(a, b, p=1), (u, v2))
    X = torch.randn(6, 3, generator=g, **dd).requires_grad_()
    Y = torch.randn(5, 3, generator=g, **dd).requires_grad_()
    theta = it.random_projections(3, 8, seed=0, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda a, b: it.sliced_wasserstein(a, b, projections=theta), (X, Y))
    m1 = torch.randn(3, generator=g, **dd).requires_grad_()
    A = torch.randn(3, 3, generator=g, **dd)
    S = (A @ A.T + torch.eye(3, **dd)).requires_grad_()
    m2, S2 = torch.zeros(3, **dd), torch.eye(3, **dd) * 2
    assert torch.autograd.gradcheck(lambda m, s: it.gaussian_kl(m, 0.5 * (s + s.T), m2, S2), (m1, S))
    img = torch.rand(3, 3, generator=g, **dd).add(0.1).requires_grad_()
    img2 = torch.rand(3, 3, generator=g, **dd).add(0.1)
    th2 = it.random_projections(2, 4, seed=0, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda a: it.image_sliced_wasserstein(a, img2, projections=th2), (img,))


def test_dtypes_and_inputs():
    p32 = torch.tensor([0.25, 0.75])
    assert it.entropy(p32).dtype == torch.float32
    assert it.entropy(np.array([0.25, 0.75])).dtype == torch.float64
    assert it.entropy([0.25, 0.75]).dtype == torch.get_default_dtype()
    assert it.kl_divergence(p32, np.array([0.5, 0.5])).dtype == torch.float64  # promotion
    assert it.wasserstein_1d([0, 1], [2, 3]).item() == pytest.approx(2.0)  # integers accepted


# ---------------------------------------------------------------- bad inputs


def test_bad_inputs():
    p = np.array([0.5, 0.5])
    with pytest.raises(ValueError, match="negative"):
        it.entropy([0.5, 0.7, -0.2])
    with pytest.raises(ValueError, match="sum to 1"):
        it.entropy([0.5, 0.6])
    with pytest.raises(ValueError, match="sum to 1"):
        it.kl_divergence(p, [0.2, 0.2])
    with pytest.raises(ValueError, match="shape mismatch"):
        it.kl_divergence(p, [0.2, 0.3, 0.5])
    with pytest.raises(ValueError, match="shape mismatch"):
        it.hellinger(np.full((3, 2), 0.5), np.full((4, 2), 0.5))
    with pytest.raises(ValueError, match="empty"):
        it.entropy(np.zeros(0))
    with pytest.raises(ValueError, match="NaN"):
        it.entropy([np.nan, 1.0])
    with pytest.raises(ValueError, match="base"):
        it.entropy(p, base=1)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        it.binary_entropy([0.2, 1.2])
    with pytest.raises(ValueError, match="joint table"):
        it.mutual_information(p)
    with pytest.raises(ValueError, match="given"):
        it.conditional_entropy(np.full((2, 2), 0.25), given="z")
    for alpha in (0.0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="alpha"):
            it.renyi_divergence(p, p, alpha)
    with pytest.raises(ValueError, match="normalization"):
        it.renyi_divergence(p, p, 2.0, normalization="other")
    with pytest.raises(ValueError, match="alpha=inf"):
        it.renyi_divergence(p, p, math.inf, normalization="seed001")


def test_bad_gaussian_inputs():
    I2 = np.eye(2)
    with pytest.raises(ValueError, match="positive definite"):
        it.gaussian_kl([0, 0], I2, [0, 0], np.diag([1.0, -1.0]))
    with pytest.raises(ValueError, match="positive definite"):
        it.gaussian_entropy(np.array([[1.0, 2.0], [2.0, 1.0]]))
    with pytest.raises(ValueError, match="symmetric"):
        it.gaussian_hellinger([0, 0], I2, [0, 0], np.array([[1.0, 0.5], [0.0, 1.0]]))
    with pytest.raises(ValueError, match="semi-definite"):
        it.gaussian_w2([0, 0], I2, [0, 0], np.diag([1.0, -1.0]))
    with pytest.raises(ValueError, match="shape mismatch"):
        it.gaussian_kl([0, 0, 0], I2, [0, 0], I2)
    with pytest.raises(ValueError, match="shape mismatch"):
        it.gaussian_w2([0, 0], I2, [0, 0, 0], np.eye(3))
    with pytest.raises(ValueError, match=r"\(\.\.\., d, d\)"):
        it.gaussian_entropy(np.ones(3))
    with pytest.raises(ValueError, match="std must be > 0"):
        it.diag_gaussian_kl_to_standard([0.0], std=[0.0])


def test_bad_transport_inputs():
    u = np.array([0.0, 1.0])
    for p in (0.5, 0, -1, math.inf):
        with pytest.raises(ValueError, match="p must be"):
            it.wasserstein_1d(u, u, p=p)
    with pytest.raises(ValueError, match="p must be"):
        it.sliced_wasserstein(np.zeros((3, 2)), np.zeros((3, 2)), p=0.5)
    with pytest.raises(ValueError, match="empty"):
        it.wasserstein_1d(np.zeros(0), u)
    with pytest.raises(ValueError, match="negative"):
        it.wasserstein_1d(u, u, [1.0, -1.0])
    with pytest.raises(ValueError, match="positive total mass"):
        it.wasserstein_1d(u, u, [0.0, 0.0])
    with pytest.raises(ValueError, match="shape mismatch"):
        it.wasserstein_1d(u, u, [1.0, 1.0, 1.0])
    with pytest.raises(ValueError, match="shape mismatch"):
        it.wasserstein_1d(np.zeros((3, 2)), np.zeros((4, 2)))
    with pytest.raises(ValueError, match="strictly increasing"):
        it.wasserstein_1d_hist([0.5, 0.5], [0.2, 0.8], positions=[1.0, 0.0])
    with pytest.raises(ValueError, match="shape mismatch"):
        it.wasserstein_1d_hist([0.5, 0.5], [0.2, 0.3, 0.5])
    with pytest.raises(ValueError, match="shape mismatch"):
        it.sliced_wasserstein(np.zeros((3, 2)), np.zeros((3, 3)))
    with pytest.raises(ValueError, match="point cloud"):
        it.sliced_wasserstein(np.zeros(3), np.zeros(3))
    with pytest.raises(ValueError, match="empty"):
        it.sliced_wasserstein(np.zeros((0, 2)), np.zeros((3, 2)))
    with pytest.raises(ValueError, match="projections must have shape"):
        it.sliced_wasserstein(np.zeros((3, 2)), np.ones((3, 2)), projections=np.ones((3, 4)))
    with pytest.raises(ValueError, match="n_projections"):
        it.sliced_wasserstein(np.zeros((3, 2)), np.ones((3, 2)), n_projections=0)
    with pytest.raises(ValueError, match="not both"):
        it.sliced_wasserstein(np.zeros((3, 2)), np.ones((3, 2)), seed=0, generator=torch.Generator())
    with pytest.raises(ValueError, match="negative pixels"):
        it.image_sliced_wasserstein(-np.ones((3, 3)), np.ones((3, 3)))
    with pytest.raises(ValueError, match="zero total mass"):
        it.image_wasserstein_exact(np.zeros((3, 3)), np.ones((3, 3)))
    with pytest.raises(ValueError, match="shape mismatch"):
        it.image_sliced_wasserstein(np.ones((3, 3)), np.ones((3, 4)))
    with pytest.raises(ValueError, match="coords"):
        it.image_sliced_wasserstein(np.ones((3, 3)), np.ones((3, 3)), coords="mm")
