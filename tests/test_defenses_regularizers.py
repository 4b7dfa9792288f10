"""Gradient-norm (local Lipschitz) regularizer, seed 003 eq. (2.25): oracles by autograd.functional,
finite differences and brute force over the vertices of the ball."""
import itertools

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from robustkit.defenses import dual_norm, gradient_norm_objective, input_gradient_norms


def _smooth_net(d=6, classes=3, seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(d, 8), nn.Softplus(), nn.Linear(8, classes)).double()


def _batch(n=5, d=6, classes=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = 0.2 + 0.6 * torch.rand(n, 1, d, generator=g, dtype=torch.float64)
    return x, torch.randint(0, classes, (n,), generator=g)


def test_dual_norm_is_the_support_function_of_the_ball():
    # max_{||xi|| <= 1} xi . g by brute force over the ball's extreme points (d = 4)
    g = torch.randn(6, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    signs = torch.tensor(list(itertools.product([-1.0, 1.0], repeat=4)), dtype=torch.float64)
    axes = torch.cat([torch.eye(4), -torch.eye(4)]).double()
    assert torch.allclose(dual_norm(g, "linf"), (g @ signs.T).amax(1))
    assert torch.allclose(dual_norm(g, "l1"), (g @ axes.T).amax(1))
    unit = g / g.norm(dim=1, keepdim=True)
    assert torch.allclose(dual_norm(g, "l2"), (g * unit).sum(1))
    assert torch.allclose(dual_norm(g.reshape(6, 1, 2, 2), "linf"), dual_norm(g, "linf"))


@pytest.mark.parametrize("norm", ["linf", "l2", "l1"])
def test_input_gradient_norms_match_autograd_functional(norm):
    model = _smooth_net().eval()
    x, y = _batch()
    got = input_gradient_norms(model, x, y, norm=norm)
    for i in range(x.shape[0]):
        f = lambda xi: F.cross_entropy(model(xi[None]), y[i:i + 1])  # noqa: E731
        g = torch.autograd.functional.jacobian(f, x[i])
        assert got[i].item() == pytest.approx(dual_norm(g[None], norm).item(), rel=1e-10)


def test_input_gradient_matches_finite_differences():
    model = _smooth_net(seed=1).eval()
    x, y = _batch(n=3, seed=1)
    got = input_gradient_norms(model, x, y, norm="linf")
    h = 1e-6
    for i in range(3):
        fd = torch.zeros(6, dtype=torch.float64)
        for k in range(6):
            e = torch.zeros_like(x[i:i + 1])
            e[0, 0, k] = h
            fd[k] = (F.cross_entropy(model(x[i:i + 1] + e), y[i:i + 1])
                     - F.cross_entropy(model(x[i:i + 1] - e), y[i:i + 1])) / (2 * h)
        assert got[i].item() == pytest.approx(fd.abs().sum().item(), rel=1e-6)


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_double_backprop_parameter_gradient_matches_finite_differences(norm):
    model = _smooth_net(seed=2).eval()
    x, y = _batch(n=4, seed=2)
    objective = gradient_norm_objective(0.7, norm=norm)
    loss, _ = objective(model, x, y)
    loss.backward()
    W = model[1].weight
    analytic = W.grad.clone()
    h = 1e-6
    for (r, c) in [(0, 0), (3, 2), (7, 5), (5, 1)]:
        with torch.no_grad():
            W[r, c] += h
            up = objective(model, x, y)[0].item()
            W[r, c] -= 2 * h
            down = objective(model, x, y)[0].item()
            W[r, c] += h
        assert analytic[r, c].item() == pytest.approx((up - down) / (2 * h), rel=1e-5, abs=1e-8)
    # the regularizer really contributes (the gradient differs from plain cross-entropy's)
    model.zero_grad()
    F.cross_entropy(model(x), y).backward()
    assert not torch.allclose(W.grad, analytic)


def test_first_order_equivalence_with_worst_case_loss():
    # seed 003 eq. (2.24)-(2.25): for a small ball, max_{||xi||_inf <= g} l(x + xi) = l + g ||grad||_1 + O(g^2).
    torch.manual_seed(3)
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 3)).double().eval()   # CE convex in x: max at a vertex
    x, y = _batch(n=6, d=4, seed=3)
    signs = torch.tensor(list(itertools.product([-1.0, 1.0], repeat=4)), dtype=torch.float64)
    for gamma in (1e-2, 1e-3):
        norms, losses, _ = input_gradient_norms(model, x, y, norm="linf", return_loss=True)
        first_order = losses + gamma * norms
        pts = x[:, None, 0, :] + gamma * signs[None]                      # (N, 16, 4)
        worst = F.cross_entropy(model(pts.reshape(-1, 1, 4)), y.repeat_interleave(16),
                                reduction="none").reshape(6, 16).amax(1)
        err = (worst - first_order).abs().max().item()
        assert err < 5 * gamma ** 2 * (1 + norms.max().item()) ** 2
        assert (worst >= first_order - 1e-12).all()                       # convexity: tangent below


def test_objective_mean_and_gamma_zero():
    model = _smooth_net(seed=4).eval()
    x, y = _batch(seed=4)
    loss0, logits0 = gradient_norm_objective(0.0)(model, x, y)
    assert loss0.item() == pytest.approx(F.cross_entropy(model(x), y).item())
    assert torch.equal(logits0, model(x))
    loss, _ = gradient_norm_objective(0.3, norm="l2")(model, x, y)
    norms, losses, _ = input_gradient_norms(model, x, y, norm="l2", return_loss=True)
    assert loss.item() == pytest.approx((losses + 0.3 * norms).mean().item(), rel=1e-8)
    assert x.grad is None and not x.requires_grad                 # the caller's input untouched


def test_bad_inputs():
    model = _smooth_net()
    x, y = _batch()
    with pytest.raises(ValueError):
        gradient_norm_objective(-1.0)
    with pytest.raises(ValueError):
        gradient_norm_objective(0.1, norm="l3")
    with pytest.raises(ValueError):
        input_gradient_norms(model, x + 2, y)
    with pytest.raises(ValueError):
        input_gradient_norms(model, x, y[:2])
    with pytest.raises(TypeError):
        input_gradient_norms("model", x, y)
    with pytest.raises(ValueError):
        dual_norm(torch.ones(3, 2), "lp")


def test_margin_gradient_matches_autograd_functional_and_masks_true_class():
    model = _smooth_net(seed=5).eval()
    x, y = _batch(seed=5)
    norms, margins, logits = input_gradient_norms(model, x, y, norm="l2", of="margin",
                                                  return_loss=True)
    for i in range(x.shape[0]):
        def m(xi, i=i):
            z = model(xi[None])[0]
            others = torch.cat([z[:y[i]], z[y[i] + 1:]])
            return z[y[i]] - others.max()
        assert margins[i].item() == pytest.approx(m(x[i]).item(), rel=1e-12)
        g = torch.autograd.functional.jacobian(m, x[i])
        assert norms[i].item() == pytest.approx(g.norm().item(), rel=1e-10)
    # all-negative logits: the margin is not computed with (1 - onehot) * logits
    neg = nn.Sequential(nn.Flatten(), nn.Linear(6, 3)).double().eval()
    with torch.no_grad():
        neg[1].weight.zero_()
        neg[1].bias.copy_(torch.tensor([-5.0, -1.0, -3.0], dtype=torch.float64))
    _, mg, _ = input_gradient_norms(neg, x[:1], torch.tensor([0]), of="margin", return_loss=True)
    assert mg.item() == pytest.approx(-4.0)
    with pytest.raises(ValueError):
        input_gradient_norms(model, x, y, of="logits")
