"""Tests of robustkit.explain (chapter 11) against closed forms, captum, brute force and numpy."""
import itertools
import math

import numpy as np
import pytest
import torch
from torch import nn

from robustkit import explain as ex


def linear_binary(w: torch.Tensor, b: float, shape=(1, 4, 4)):
    """Two-class model with logits (0, w.x + b): class 1 iff w.x + b > 0."""
    d = int(np.prod(shape))
    lin = nn.Linear(d, 2)
    with torch.no_grad():
        lin.weight.zero_()
        lin.bias.zero_()
        lin.weight[1] = w
        lin.bias[1] = b
    return nn.Sequential(nn.Flatten(), lin)


def small_net(seed=0, shape=(1, 4, 4), classes=3, dtype=torch.float32):
    torch.manual_seed(seed)
    d = int(np.prod(shape))
    return nn.Sequential(nn.Flatten(), nn.Linear(d, 12), nn.Tanh(), nn.Linear(12, classes)).to(dtype)


def test_top_k_mask_and_pixels():
    s = torch.tensor([[0.1, 0.9, 0.5, 0.3], [4.0, 3.0, 2.0, 1.0]])
    m = ex.top_k_mask(s, 2)
    assert m.tolist() == [[False, True, True, False], [True, True, False, False]]
    assert ex.top_k_mask(s, torch.tensor([0, 4])).sum(1).tolist() == [0, 4]
    pix = ex.to_pixels(m.float(), (1, 4, 4), patch=2)
    assert pix.shape == (2, 1, 4, 4)
    assert pix[0, 0].tolist() == [[0, 0, 1, 1], [0, 0, 1, 1], [1, 1, 0, 0], [1, 1, 0, 0]]
    attr = torch.arange(32.).reshape(2, 1, 4, 4)
    pooled = ex.pool_scores(attr, 2)
    assert pooled[0].tolist() == [0 + 1 + 4 + 5, 2 + 3 + 6 + 7, 8 + 9 + 12 + 13, 10 + 11 + 14 + 15]


def test_restricted_pgd_stays_in_set_ball_and_box():
    torch.manual_seed(0)
    model = small_net()
    x = torch.rand(16, 1, 4, 4)
    y = model(x).argmax(1)
    mask = (torch.rand(16, 1, 4, 4) < 0.4).float()
    eps = torch.rand(16) * 2
    xa, ok = ex.restricted_pgd(model, x, y, mask, eps, steps=30)
    d = xa - x
    assert torch.all(d[mask == 0] == 0)
    assert torch.all(d.flatten(1).norm(dim=1) <= eps + 1e-5)
    assert xa.min() >= 0 and xa.max() <= 1
    assert torch.equal(ok, model(xa).argmax(1) != y)
    assert all(p.grad is None for p in model.parameters())


@pytest.mark.parametrize("seed", [0, 1])
def test_restricted_minimal_perturbation_linear_closed_form(seed):
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(16, generator=g)
    x = torch.full((6, 1, 4, 4), 0.5)
    b = -(w * 0.5).sum() + 0.3  # margin w.x+b = 0.3: class 1
    model = linear_binary(w, float(b))
    y = torch.ones(6, dtype=torch.long)
    masks = (torch.rand(6, 16, generator=g) < 0.6)
    masks[:, 0] = True
    pix = masks.float().reshape(6, 1, 4, 4)
    eps = ex.restricted_minimal_perturbation(model, x, y, pix, eps_max=3.0, steps=30, search_steps=14)
    exact = 0.3 / (w[None] * masks).norm(dim=1)
    assert torch.all(eps >= exact - 1e-4)
    assert torch.allclose(eps, exact, rtol=2e-3, atol=1e-3)


def test_targeted_minimal_perturbation_linear_closed_form():
    w = torch.zeros(3, 16)
    g = torch.Generator().manual_seed(3)
    w[0] = torch.randn(16, generator=g) * 0.5
    w[1] = torch.randn(16, generator=g) * 0.5
    lin = nn.Linear(16, 3)
    x = torch.full((4, 1, 4, 4), 0.5)
    with torch.no_grad():
        lin.weight.copy_(w)
        bias = -(w * 0.5).sum(1)
        bias[0] += 0.4  # class 0 wins by 0.4 over class 1
        bias[2] = -100.0  # class 2 never wins
        lin.bias.copy_(bias)
    model = nn.Sequential(nn.Flatten(), lin)
    y = torch.zeros(4, dtype=torch.long)
    t = torch.ones(4, dtype=torch.long)
    masks = torch.ones(4, 16, dtype=torch.bool)
    masks[1, 8:] = False
    masks[2, ::2] = False
    eps = ex.restricted_minimal_perturbation(model, x, y, masks.float().reshape(4, 1, 4, 4), eps_max=5.0,
                                             steps=30, search_steps=14, target=t)
    exact = 0.4 / ((w[1] - w[0])[None] * masks).norm(dim=1)
    assert torch.allclose(eps, exact, rtol=2e-3, atol=1e-3)
    with pytest.raises(ValueError, match="target must differ"):
        ex.restricted_minimal_perturbation(model, x, y, masks.float().reshape(4, 1, 4, 4), eps_max=1.0, target=y)


def test_minimal_perturbation_clean_error_and_failure():
    w = torch.ones(16)
    model = linear_binary(w, -8.0 + 0.5)  # margin 0.5 at x=0.5
    x = torch.full((3, 1, 4, 4), 0.5)
    y = torch.tensor([1, 0, 1])  # sample 1 is already misclassified
    pix = torch.ones_like(x)
    pix[2] = 0  # empty set: impossible
    eps = ex.restricted_minimal_perturbation(model, x, y, pix, eps_max=2.0, steps=20, search_steps=10)
    assert eps[1] == 0
    assert math.isinf(eps[2])
    assert abs(eps[0] - 0.5 / 4) < 2e-3


def test_robustness_curve_linear_and_auc():
    g = torch.Generator().manual_seed(5)
    w = torch.randn(16, generator=g)
    model = linear_binary(w, float(-(w * 0.5).sum() + 0.2))
    x = torch.full((2, 1, 4, 4), 0.5)
    y = torch.ones(2, dtype=torch.long)
    scores = torch.stack([w.abs(), torch.rand(16, generator=g)])
    sizes = [0, 4, 8, 12]
    comp = ex.robustness_curve(model, x, y, scores, sizes, criterion="complement", eps_max=4.0, steps=30,
                               search_steps=14)
    rel = ex.robustness_curve(model, x, y, scores, sizes, criterion="relevant", eps_max=4.0, steps=30,
                              search_steps=14)
    for j, k in enumerate(sizes):
        top = ex.top_k_mask(scores, k)
        ec = 0.2 / (w[None] * ~top).norm(dim=1)
        er = (0.2 / (w[None] * top).norm(dim=1)).clamp(max=4.0)
        assert torch.allclose(comp[j], ec.clamp(max=4.0), rtol=3e-3, atol=2e-3)
        assert torch.allclose(rel[j], er, rtol=3e-3, atol=2e-3)
    # the |w|-ranking is optimal for both criteria on a linear model
    a_c = ex.auc(sizes, comp)
    a_r = ex.auc(sizes, rel)
    assert a_c[0] > a_c[1] and a_r[0] < a_r[1]


def test_auc_matches_numpy_trapezoid():
    rng = np.random.default_rng(0)
    xs = np.sort(rng.random(9)) * 10
    ys = rng.random((9, 5))
    trap = getattr(np, "trapezoid", None) or np.trapz
    np.testing.assert_allclose(ex.auc(xs, ys).numpy(), trap(ys, xs, axis=0), rtol=1e-12)
    with pytest.raises(ValueError, match="increasing"):
        ex.auc([0, 2, 1], [1, 2, 3])
    with pytest.raises(ValueError, match="finite"):
        ex.auc([0, 1], [1, float("inf")])


def test_insertion_deletion_endpoints():
    model = small_net(1)
    x = torch.rand(5, 1, 4, 4)
    y = model(x).argmax(1)
    scores = torch.rand(5, 4)
    ins, dele = ex.insertion_deletion(model, x, y, scores, [0, 2, 4], patch=2, baseline=0.0)
    p = torch.softmax(model(x), 1).gather(1, y[:, None])[:, 0]
    p0 = torch.softmax(model(torch.zeros_like(x)), 1).gather(1, y[:, None])[:, 0]
    assert torch.allclose(ins[0], p0, atol=1e-6) and torch.allclose(ins[-1], p, atol=1e-6)
    assert torch.allclose(dele[0], p, atol=1e-6) and torch.allclose(dele[-1], p0, atol=1e-6)
    # middle point by hand
    m = ex.to_pixels(ex.top_k_mask(scores, 2).float(), (1, 4, 4), 2)
    pm = torch.softmax(model(x * m), 1).gather(1, y[:, None])[:, 0]
    assert torch.allclose(ins[1], pm, atol=1e-6)


def test_vanilla_gradient_matches_finite_differences():
    model = small_net(2, dtype=torch.float64)
    x = torch.rand(3, 1, 4, 4, dtype=torch.float64) * 0.8 + 0.1
    t = torch.tensor([0, 1, 2])
    g = ex.vanilla_gradient(model, x, t)
    h = 1e-6
    fd = torch.zeros_like(x)
    for i in range(16):
        e = torch.zeros(16, dtype=torch.float64)
        e[i] = h
        e = e.reshape(1, 1, 4, 4)
        fp = model(x + e).gather(1, t[:, None])[:, 0]
        fm = model(x - e).gather(1, t[:, None])[:, 0]
        fd.view(3, -1)[:, i] = (fp - fm) / (2 * h)
    assert torch.allclose(g, fd, atol=1e-7)


def test_integrated_gradients_vs_captum_and_completeness():
    captum_attr = pytest.importorskip("captum.attr")
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.Softplus(), nn.Flatten(), nn.Linear(64, 3)).double()
    x = torch.rand(4, 1, 4, 4, dtype=torch.float64)
    t = torch.tensor([0, 1, 2, 1])
    ig = ex.integrated_gradients(model, x, t, n_steps=20)
    ref = captum_attr.IntegratedGradients(model).attribute(x, baselines=0.0, target=t, n_steps=20,
                                                          method="riemann_trapezoid")
    # captum's "riemann_trapezoid" uses step 1/n (halved at the ends), so its weights sum to
    # (n-1)/n; the trapezoid rule on n equally spaced points has step 1/(n-1): same nodes,
    # weights differing by the constant factor n/(n-1).
    assert torch.allclose(ig, ref * 20 / 19, atol=1e-10)
    # and both converge to captum's Gauss-Legendre value
    gl = captum_attr.IntegratedGradients(model).attribute(x, baselines=0.0, target=t, n_steps=64)
    assert torch.allclose(ex.integrated_gradients(model, x, t, n_steps=400), gl, atol=1e-5)
    ig2, delta = ex.integrated_gradients(model, x, t, n_steps=400, return_delta=True)
    with torch.no_grad():
        gap = (model(x).gather(1, t[:, None])[:, 0]
               - model(torch.zeros_like(x)).gather(1, t[:, None])[:, 0])
    assert torch.allclose(ig2.flatten(1).sum(1), gap, atol=1e-3 * (1 + float(gap.abs().max())))
    assert delta.abs().max() < 1e-3
    # non-zero baseline: IG is multiplied by (x - baseline)
    b = torch.full_like(x, 0.3)
    igb = ex.integrated_gradients(model, x, t, baseline=b, n_steps=20)
    refb = captum_attr.IntegratedGradients(model).attribute(x, baselines=b, target=t, n_steps=20,
                                                           method="riemann_trapezoid")
    assert torch.allclose(igb, refb * 20 / 19, atol=1e-10)


def test_expected_gradients_linear_exact():
    g = torch.Generator().manual_seed(0)
    w = torch.randn(16, generator=g)
    model = linear_binary(w, 0.1)
    x = torch.rand(3, 1, 4, 4, generator=g)
    ref = torch.rand(1, 1, 4, 4, generator=g)
    eg = ex.expected_gradients(model, x, torch.ones(3, dtype=torch.long), ref, n_samples=4)
    assert torch.allclose(eg, w.reshape(1, 1, 4, 4) * (x - ref), atol=1e-6)


def shapley_brute_force(model, x, t, patch, F):
    vals = {}
    for z in itertools.product([0, 1], repeat=F):
        m = ex.to_pixels(torch.tensor([z], dtype=x.dtype), x.shape[1:], patch)
        vals[z] = model(x * m).gather(1, t[:, None])[:, 0]
    phi = torch.zeros(x.shape[0], F, dtype=x.dtype)
    for i in range(F):
        for z in vals:
            if z[i] == 1:
                continue
            s = sum(z)
            zi = list(z)
            zi[i] = 1
            wgt = math.factorial(s) * math.factorial(F - s - 1) / math.factorial(F)
            phi[:, i] += wgt * (vals[tuple(zi)] - vals[z])
    return phi


def test_kernel_shap_exact_enumeration_matches_brute_force_shapley():
    model = small_net(4, dtype=torch.float64)
    x = torch.rand(3, 1, 4, 4, dtype=torch.float64)
    t = torch.tensor([0, 2, 1])
    phi = ex.kernel_shap(model, x, t, patch=2, n_samples=10_000)
    ref = shapley_brute_force(model, x, t, 2, 4)
    assert torch.allclose(phi, ref, atol=1e-8)


def test_kernel_shap_linear_recovers_coefficients_times_x_minus_baseline():
    g = torch.Generator().manual_seed(1)
    w = torch.randn(16, generator=g)
    model = linear_binary(w, 0.2).double()
    x = torch.rand(2, 1, 4, 4, generator=g).double()
    phi = ex.kernel_shap(model, x, torch.ones(2, dtype=torch.long), patch=1, n_samples=300, baseline=0.25)
    assert torch.allclose(phi, (w.double()[None] * (x.flatten(1) - 0.25)), atol=1e-8)


def test_leave_one_out_linear():
    w = torch.randn(16)
    model = linear_binary(w, 0.0)
    x = torch.rand(2, 1, 4, 4)
    loo = ex.leave_one_out(model, x, torch.ones(2, dtype=torch.long))
    assert torch.allclose(loo, w[None] * x.flatten(1), atol=1e-5)


def test_banzhaf_regression_equals_exact_banzhaf():
    g = torch.Generator().manual_seed(0)
    n = 5
    table = torch.randn(2 ** n, generator=g, dtype=torch.float64)

    def v(B):
        idx = (B.long() * (2 ** torch.arange(n - 1, -1, -1))).sum(1)
        return table[idx]

    exact = ex.banzhaf_exact(v, n)
    B = torch.tensor(list(itertools.product([0.0, 1.0], repeat=n)), dtype=torch.float64)
    w, c = ex.banzhaf_regression(B, v(B))
    assert torch.allclose(w, exact, atol=1e-8)
    # brute force of the definition for one player
    i = 2
    diffs = [v(torch.tensor([z[:i] + (1.0,) + z[i:]]))[0] - v(torch.tensor([z[:i] + (0.0,) + z[i:]]))[0]
             for z in itertools.product([0.0, 1.0], repeat=n - 1)]
    assert abs(exact[i] - sum(diffs) / 2 ** (n - 1)) < 1e-12


def test_greedy_linear_picks_largest_weights():
    w = torch.tensor([0.1, -2.0, 0.3, 1.5, -0.2, 0.05, 1.0, -0.4])
    model = linear_binary(w, float(-(w * 0.5).sum() + 0.1), shape=(1, 2, 4))
    x = torch.full((1, 1, 2, 4), 0.5)
    y = torch.ones(1, dtype=torch.long)
    kw = dict(k_total=3, eps_max=5.0, steps=30, search_steps=12)
    for obj in ("relevant", "complement"):
        s = ex.greedy(model, x, y, objective=obj, **kw)
        assert s[0].topk(3).indices.tolist() == [1, 3, 6], obj
        assert int((s[0] > 0).sum()) == 3
    s = ex.greedy_as(model, x, y, objective="relevant", n_subsets=128, **kw)
    assert s[0].topk(3).indices.tolist() == [1, 3, 6]


def test_gumbel_topk_and_vib_kl():
    logits = torch.randn(4, 10)
    z = ex.gumbel_topk_relaxed(logits, 3, 0.5, generator=torch.Generator().manual_seed(0))
    assert z.shape == (4, 10) and z.min() >= 0 and z.max() <= 1
    assert torch.all(z.sum(1) <= 3 + 1e-5)
    zc = ex.gumbel_topk_relaxed(logits, 3, 1e-3, generator=torch.Generator().manual_seed(0))
    assert torch.all((zc > 0.99).sum(1) >= 1) and torch.all((zc > 0.5).sum(1) <= 3)
    vib = ex.VIBExplainer((1, 4, 4), 2, k=2)
    x = torch.rand(8, 1, 4, 4)
    _, ce, kl = vib.loss(x, torch.zeros(8, dtype=torch.long))
    mu, lv = vib.stats(x)
    ref = torch.distributions.kl_divergence(torch.distributions.Normal(mu, (0.5 * lv).exp()),
                                            torch.distributions.Normal(vib.prior_mean, 1.0)).sum(1).mean()
    assert torch.allclose(kl, ref, atol=1e-5)


class OnePixel(nn.Module):
    """Black box whose class depends only on pixel (0, 0)."""

    def forward(self, x):
        z = 10 * (x[:, 0, 0, 0] - 0.5)
        return torch.stack([-z, z], 1)


@pytest.mark.parametrize("cls", ["L2X", "VIBExplainer"])
def test_information_explainers_find_the_relevant_pixel(cls):
    torch.manual_seed(0)
    x = torch.rand(384, 1, 4, 4)
    bb = OnePixel()
    Ex = getattr(ex, cls)
    e = Ex.fit(bb, x, k=2, epochs=10, batch_size=64, lr=3e-3, seed=0)
    with torch.no_grad():
        m = e.mask(x[:128])
    assert m.shape == (128, 16)
    assert float(m[:, 0].mean()) > 0.9
    assert e.approx_accuracy(bb, x[:128]) > 0.85


def test_meaningful_perturbation_and_random():
    bb = OnePixel()
    x = torch.rand(4, 1, 8, 8)
    x[:, 0, 0, 0] = 0.9
    att = ex.meaningful_perturbation(bb, x, torch.ones(4, dtype=torch.long), steps=100, mask_scale=2)
    assert att.shape == x.shape and att.min() >= 0 and att.max() <= 1
    # the deleted region covers the decisive pixel more than the average pixel
    assert torch.all(att[:, 0, 0, 0] > att[:, 0].flatten(1).mean(1))
    r = ex.random_attribution(x, patch=2, seed=1)
    assert r.shape == (4, 16) and torch.equal(r, ex.random_attribution(x, patch=2, seed=1))


def test_bad_inputs():
    model = small_net()
    x = torch.rand(2, 1, 4, 4)
    y = torch.zeros(2, dtype=torch.long)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        ex.vanilla_gradient(model, x + 2, y)
    with pytest.raises(ValueError, match="shape"):
        ex.vanilla_gradient(model, x[0], y)
    with pytest.raises(ValueError, match="target"):
        ex.integrated_gradients(model, x, torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match="eps"):
        ex.restricted_pgd(model, x, y, torch.ones_like(x), -1.0)
    with pytest.raises(ValueError, match="mask"):
        ex.restricted_pgd(model, x, y, torch.ones(2, 16), 1.0)
    with pytest.raises(ValueError, match="eps_max"):
        ex.restricted_minimal_perturbation(model, x, y, torch.ones_like(x), eps_max=float("inf"))
    with pytest.raises(ValueError, match="criterion"):
        ex.robustness_curve(model, x, y, torch.rand(2, 16), [0, 1], criterion="both")
    with pytest.raises(ValueError, match="increasing"):
        ex.robustness_curve(model, x, y, torch.rand(2, 16), [2, 1])
    with pytest.raises(ValueError, match="patch"):
        ex.kernel_shap(model, x, y, patch=3)
    with pytest.raises(ValueError, match="k must"):
        ex.top_k_mask(torch.rand(2, 4), 5)
    with pytest.raises(ValueError, match="objective"):
        ex.greedy(model, x, y, k_total=1, objective="max")
    with pytest.raises(ValueError, match="k_total"):
        ex.greedy_as(model, x, y, k_total=0)
    with pytest.raises(ValueError, match="B must"):
        ex.banzhaf_regression(torch.zeros(4, 3), torch.zeros(5))
    with pytest.raises(TypeError):
        ex.vanilla_gradient(model, x.numpy(), y)
