"""Adv-BNN (seed 003 §2.2): Bayesian networks built from the Bayesian layers, the KL of eq. (2.15)
summed over every layer (checked by Monte Carlo), the reparameterized gradients of eq. (2.20)
(finite differences and a closed-form expectation), the loss of eq. (2.22), Algorithm 3, the
posterior predictive of eq. (2.27) and the affinity of eq. (2.26)."""
import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.distributions import Normal, kl_divergence as torch_kl

from robustkit.defenses.adv_bnn import (adv_bnn_objective, bayes_predict, bayesian_network,
                                        bnn_objective, elbo_loss, to_bayesian, transfer_affinity)
from robustkit.defenses.bayesian import BayesConv2d, BayesLinear, bayesian_layers, kl_divergence
from robustkit.defenses.rse import small_convnet
from robustkit.modes import stochastic, training_states


def _random_posterior(model, seed=0):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for layer in bayesian_layers(model):
            for name in ("weight", "bias"):
                mu, ls = getattr(layer, f"{name}_mu"), getattr(layer, f"{name}_log_sigma")
                if mu is None:
                    continue
                mu.copy_(0.2 * torch.randn(mu.shape, generator=g))
                ls.copy_(math.log(0.05) + 0.5 * torch.randn(ls.shape, generator=g))
    return model


def _tiny_bnn(seed=0, prior_sigma=0.1):
    torch.manual_seed(seed)
    net = bayesian_network(width=2, hidden=4, image_size=8, prior_sigma=prior_sigma)
    return _random_posterior(net, seed).double()


# ----------------------------------------------------------------------------- builder
def test_every_conv_and_linear_becomes_bayesian():
    base = small_convnet()
    net = to_bayesian(base)
    kinds = [type(m) for m in net.modules() if isinstance(m, (BayesConv2d, BayesLinear))]
    assert kinds.count(BayesConv2d) == 3 and kinds.count(BayesLinear) == 2
    assert not any(type(m) in (nn.Conv2d, nn.Linear) for m in net.modules())
    assert any(type(m) in (nn.Conv2d, nn.Linear) for m in base.modules()), "base left unchanged"


def test_copied_means_reproduce_the_base_network_without_noise():
    torch.manual_seed(1)
    base = small_convnet()
    net = to_bayesian(base, copy_means=True)
    x = torch.rand(5, 1, 28, 28)
    with torch.no_grad():
        with stochastic(net, False):
            assert torch.allclose(net(x), base(x), atol=1e-6)
        assert not torch.equal(net(x), net(x)), "weights are resampled at every forward pass"


# ----------------------------------------------------------------------------- KL (eq. 2.15)
def test_kl_is_summed_over_every_layer_and_matches_torch():
    net = _tiny_bnn()
    layers = bayesian_layers(net)
    assert len(layers) == 5
    ref = 0.0
    for layer in layers:
        for name in ("weight", "bias"):
            mu, ls = getattr(layer, f"{name}_mu"), getattr(layer, f"{name}_log_sigma")
            ref += torch_kl(Normal(mu, ls.exp()), Normal(torch.zeros_like(mu), 0.1)).sum()
    assert torch.allclose(kl_divergence(net), ref, rtol=1e-10)


def test_kl_equals_a_monte_carlo_estimate():
    """KL(q || p) = E_q[log q(w) - log p(w)], estimated from weight samples of every layer."""
    net = _tiny_bnn(seed=2)
    torch.manual_seed(3)
    n = 4000
    total = torch.zeros(n, dtype=torch.float64)
    for layer in bayesian_layers(net):
        for name in ("weight", "bias"):
            mu, ls = getattr(layer, f"{name}_mu").detach(), getattr(layer, f"{name}_log_sigma").detach()
            q = Normal(mu, ls.exp())
            w = q.sample((n,))
            p = Normal(torch.zeros_like(mu), layer.prior_sigma)
            total += (q.log_prob(w) - p.log_prob(w)).flatten(1).sum(1)
    mc, se = total.mean(), total.std() / math.sqrt(n)
    closed = kl_divergence(net).detach()
    assert abs(mc - closed) < 4 * se, (float(mc), float(closed), float(se))
    assert se < 0.05 * closed


def test_elbo_loss_scales_the_kl_by_alpha_over_n():
    net = _tiny_bnn()
    x = torch.rand(6, 1, 8, 8, dtype=torch.float64)
    y = torch.randint(0, 10, (6,))
    logits = net(x)
    loss = elbo_loss(net, logits, y, n_train=500, alpha=0.3)
    assert torch.allclose(loss, F.cross_entropy(logits, y) + 0.3 / 500 * kl_divergence(net))
    torch.manual_seed(4)
    loss2, logits2 = bnn_objective(500, alpha=0.3)(net, x, y)
    assert torch.allclose(loss2 - F.cross_entropy(logits2, y), 0.3 / 500 * kl_divergence(net))


# ----------------------------------------------------------------------------- gradients (eq. 2.20)
def _h(layer, x, seed):
    torch.manual_seed(seed)                 # same eps for every call: common random numbers
    return torch.tanh(layer(x)).pow(2).sum()


def test_reparameterized_gradients_match_finite_differences():
    torch.manual_seed(5)
    layer = BayesLinear(3, 2, prior_sigma=1.0, init_log_sigma=-1.0).double()
    with torch.no_grad():
        layer.weight_log_sigma.add_(0.3 * torch.randn_like(layer.weight_log_sigma))
    x = torch.randn(4, 3, dtype=torch.float64)
    value = _h(layer, x, seed=123)
    g_mu, g_s = torch.autograd.grad(value, [layer.weight_mu, layer.weight_log_sigma])
    h = 1e-6
    for param, grad in ((layer.weight_mu, g_mu), (layer.weight_log_sigma, g_s)):
        fd = torch.zeros_like(param)
        for idx in range(param.numel()):
            with torch.no_grad():
                flat = param.view(-1)
                flat[idx] += h
                up = _h(layer, x, 123)
                flat[idx] -= 2 * h
                down = _h(layer, x, 123)
                flat[idx] += h
            fd.view(-1)[idx] = (up - down) / (2 * h)
        assert torch.allclose(grad, fd, rtol=1e-5, atol=1e-8)


def test_reparameterized_gradient_is_unbiased_for_a_closed_form_expectation():
    """h(w) = (w . x)^2: E h = (mu . x)^2 + sum_i sigma_i^2 x_i^2, so dE/dmu = 2 (mu . x) x and
    dE/ds_i = 2 sigma_i^2 x_i^2 (s = log sigma); eq. (2.20) averages per-sample gradients."""
    torch.manual_seed(6)
    layer = BayesLinear(3, 1, bias=False, prior_sigma=1.0, init_log_sigma=math.log(0.5)).double()
    x = torch.tensor([[1.0, -2.0, 0.5]], dtype=torch.float64)
    n = 4000
    g_mu, g_s = [], []
    for _ in range(n):
        out = layer(x).pow(2).sum()
        a, b = torch.autograd.grad(out, [layer.weight_mu, layer.weight_log_sigma])
        g_mu.append(a)
        g_s.append(b)
    g_mu, g_s = torch.stack(g_mu), torch.stack(g_s)
    mu, sigma = layer.weight_mu.detach(), layer.weight_log_sigma.detach().exp()
    exact_mu = 2 * (mu @ x.T) * x
    exact_s = 2 * sigma ** 2 * x ** 2
    for samples, exact in ((g_mu, exact_mu), (g_s, exact_s)):
        se = samples.std(0) / math.sqrt(n)
        assert ((samples.mean(0) - exact).abs() <= 4 * se + 1e-12).all(), (samples.mean(0), exact, se)
        assert (se < 0.1 * exact.abs().clamp_min(0.2)).all(), "enough samples to be informative"


# ----------------------------------------------------------------------------- Algorithm 3
def test_adv_bnn_objective_trains_on_pgd_points_with_the_scaled_kl():
    torch.manual_seed(7)
    net = bayesian_network(width=2, hidden=8, image_size=8)
    x = torch.rand(10, 1, 8, 8)
    y = torch.randint(0, 10, (10,))
    objective = adv_bnn_objective(0.1, n_train=1000, alpha=0.5, steps=3)
    net.train()
    before = training_states(net)
    torch.manual_seed(8)
    x_adv = objective.perturb(net, x, y)
    assert (x_adv - x).abs().max() <= 0.1 + 1e-6 and x_adv.min() >= 0 and x_adv.max() <= 1
    assert (x_adv - x).abs().max() > 0.05, "PGD must move the points"
    loss, logits = objective(net, x, y)
    assert torch.allclose(loss - F.cross_entropy(logits, y), 0.5 / 1000 * kl_divergence(net))
    assert training_states(net) == before, "the attack restores the caller's modes"
    assert all(p.grad is None for p in net.parameters()), "the attack leaves no gradient"
    loss.backward()
    assert all(p.grad is not None for p in net.parameters())


def test_adv_bnn_objective_with_eps_zero_is_the_bnn_objective():
    net = bayesian_network(width=2, hidden=8, image_size=8)
    x, y = torch.rand(4, 1, 8, 8), torch.randint(0, 10, (4,))
    obj = adv_bnn_objective(0.0, n_train=10)
    assert torch.equal(obj.perturb(net, x, y), x)


def test_bayes_predict_averages_m_weight_samples():
    torch.manual_seed(9)
    net = bayesian_network(width=2, hidden=8, image_size=8, init_log_sigma=-1.0)
    x = torch.rand(3, 1, 8, 8)
    outs = []
    hook = net[-1].register_forward_hook(lambda m, i, o: outs.append(o.detach()))
    with torch.no_grad():
        p = bayes_predict(net, x, m=6)
    hook.remove()
    assert len(outs) == 6 and not torch.allclose(outs[0], outs[1])
    assert torch.allclose(p, torch.softmax(torch.stack(outs), 2).mean(0), atol=1e-6)
    with torch.no_grad(), stochastic(net, False):
        assert torch.allclose(bayes_predict(net, x, m=3), torch.softmax(net(x), 1))


# ----------------------------------------------------------------------------- affinity (eq. 2.26)
def test_transfer_affinity_by_hand():
    clean = [0.9, 0.8]
    cross = [[0.1, 0.6],      # row A = source: Acc[B | A]
             [0.5, 0.2]]
    rho = transfer_affinity(clean, cross)
    # rho[0, 1] = (0.8 - 0.6) / (0.8 - 0.2); rho[1, 0] = (0.9 - 0.5) / (0.9 - 0.1)
    expected = torch.tensor([[1.0, 0.2 / 0.6], [0.4 / 0.8, 1.0]], dtype=torch.float64)
    assert torch.allclose(rho, expected)
    nan = transfer_affinity([0.5, 0.8], [[0.5, 0.6], [0.4, 0.2]])
    assert torch.isnan(nan[:, 0]).all() and not torch.isnan(nan[:, 1]).any()


def test_bad_inputs():
    net = bayesian_network(width=2, hidden=8, image_size=8)
    x, y = torch.rand(4, 1, 8, 8), torch.randint(0, 10, (4,))
    with pytest.raises(ValueError):
        adv_bnn_objective(-0.1, n_train=10)
    with pytest.raises(ValueError):
        adv_bnn_objective(0.1, n_train=0)
    with pytest.raises(ValueError):
        adv_bnn_objective(0.1, n_train=10, alpha=1.5)
    with pytest.raises(ValueError):
        adv_bnn_objective(0.1, n_train=10, steps=0)
    with pytest.raises(ValueError, match="Bayesian"):
        adv_bnn_objective(0.1, n_train=10)(small_convnet(image_size=8), x, y)
    with pytest.raises(ValueError):
        adv_bnn_objective(0.1, n_train=10).perturb(net, x * 2, y)
    with pytest.raises(ValueError):
        bnn_objective(10, alpha=0.0)
    with pytest.raises(ValueError):
        elbo_loss(net, net(x), y, n_train=2.5)
    with pytest.raises(ValueError, match="no nn.Conv2d / nn.Linear"):
        to_bayesian(nn.Sequential(nn.ReLU()))
    with pytest.raises(ValueError):
        to_bayesian(small_convnet(), prior_sigma=0.0)
    with pytest.raises(ValueError):
        transfer_affinity([0.9, 0.8], [[0.1, 0.2]])
    with pytest.raises(ValueError):
        transfer_affinity([0.9, 1.8], [[0.1, 0.2], [0.3, 0.4]])
    with pytest.raises(ValueError):
        bayes_predict(net, x, m=0)
