"""Tests of robustkit.defenses.bayesian: mean-field Gaussian layers and the KL of seed 003 eq. (2.15)."""
import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.distributions import Normal, kl_divergence as torch_kl

from robustkit.defenses.bayesian import (BayesConv2d, BayesLinear, bayesian_layers, elbo_objective,
                                         gaussian_kl_to_prior, kl_divergence)
from robustkit.modes import eval_mode, set_stochastic, stochastic


def _randomize(model, seed=0):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "log_sigma" in name:
                p.copy_(torch.empty(p.shape).uniform_(-3, 0, generator=g))
            else:
                p.copy_(torch.randn(p.shape, generator=g))


def _net(prior=0.5):
    return nn.Sequential(BayesConv2d(1, 3, 3, prior_sigma=prior), nn.ReLU(), nn.Flatten(),
                         BayesLinear(3 * 4 * 4, 5, prior_sigma=prior), nn.ReLU(),
                         BayesLinear(5, 2, bias=False, prior_sigma=prior))


def test_kl_matches_torch_distributions_summed_over_layers():
    net = _net(prior=0.5)
    _randomize(net)
    expected = 0.0
    for layer in bayesian_layers(net):
        for mu, ls in [(layer.weight_mu, layer.weight_log_sigma), (layer.bias_mu, layer.bias_log_sigma)]:
            if mu is None:
                continue
            expected += torch_kl(Normal(mu.double(), ls.double().exp()),
                                 Normal(torch.zeros_like(mu.double()), 0.5)).sum().item()
    assert len(bayesian_layers(net)) == 3
    assert kl_divergence(net).item() == pytest.approx(expected, rel=1e-5)


def test_kl_is_zero_at_the_prior_and_positive_elsewhere():
    mu = torch.zeros(7)
    assert gaussian_kl_to_prior(mu, torch.full((7,), math.log(0.3)), 0.3).abs().item() < 1e-6
    assert gaussian_kl_to_prior(mu + 0.1, torch.full((7,), math.log(0.3)), 0.3).item() > 0


def test_deterministic_mode_uses_the_means():
    lin = BayesLinear(4, 3, stochastic=False)
    conv = BayesConv2d(2, 3, 3, padding=1, stochastic=False)
    _randomize(lin), _randomize(conv, 1)
    x, xi = torch.randn(5, 4), torch.rand(2, 2, 6, 6)
    assert torch.equal(lin(x), F.linear(x, lin.weight_mu, lin.bias_mu))
    assert torch.allclose(conv(xi), F.conv2d(xi, conv.weight_mu, conv.bias_mu, padding=1))


def test_sampling_follows_stochastic_not_training():
    lin = BayesLinear(4, 3, init_log_sigma=-1.0)
    x = torch.randn(5, 4)
    lin.eval()                                   # eval() must NOT switch the randomness off
    assert not torch.equal(lin(x), lin(x))
    with stochastic(lin, False):
        assert torch.equal(lin(x), lin(x))
    assert lin.stochastic is True
    set_stochastic(lin, False)
    with eval_mode(lin):
        assert torch.equal(lin(x), lin(x))


def test_output_moments_match_reparameterization_monte_carlo():
    # y = x w + b with w_j ~ N(mu_j, sigma_j^2) independent: E y = x mu + b_mu, Var y = sum x_j^2 sigma_j^2 + sigma_b^2
    torch.manual_seed(0)
    lin = BayesLinear(3, 1)
    with torch.no_grad():
        lin.weight_mu.copy_(torch.tensor([[0.5, -1.0, 2.0]]))
        lin.weight_log_sigma.copy_(torch.log(torch.tensor([[0.3, 0.2, 0.1]])))
        lin.bias_mu.fill_(0.25)
        lin.bias_log_sigma.fill_(math.log(0.2))
    x = torch.tensor([[1.0, 2.0, -1.0]])
    ys = torch.cat([lin(x) for _ in range(20000)]).squeeze(1)
    mean = 0.5 - 2.0 - 2.0 + 0.25
    var = 0.09 + 4 * 0.04 + 0.01 + 0.04
    assert ys.mean().item() == pytest.approx(mean, abs=4 * math.sqrt(var / 20000))
    assert ys.var().item() == pytest.approx(var, rel=0.05)


def test_gradients_reach_mu_and_log_sigma():
    conv = BayesConv2d(1, 2, 3)
    out = conv(torch.rand(4, 1, 5, 5)).pow(2).sum()
    out.backward()
    assert conv.weight_log_sigma.grad.abs().sum() > 0 and conv.weight_mu.grad.abs().sum() > 0


def test_elbo_objective_value():
    net = _net()
    _randomize(net)
    set_stochastic(net, False)
    x, y = torch.rand(6, 1, 6, 6), torch.randint(0, 2, (6,))
    loss, logits = elbo_objective(n_train=100, alpha=0.5)(net, x, y)
    expected = F.cross_entropy(net(x), y) + 0.5 / 100 * kl_divergence(net)
    assert torch.allclose(loss, expected)
    assert logits.shape == (6, 2)


def test_bad_inputs():
    with pytest.raises(ValueError):
        BayesLinear(3, 2, prior_sigma=0.0)
    with pytest.raises(ValueError):
        BayesConv2d(3, 2, 3, init_log_sigma=float("nan"))
    with pytest.raises(ValueError):
        kl_divergence(nn.Linear(2, 2))         # no Bayesian layer: not a silent 0
    with pytest.raises(TypeError):
        bayesian_layers("model")
    with pytest.raises(ValueError):
        elbo_objective(0)
    with pytest.raises(ValueError):
        gaussian_kl_to_prior(torch.zeros(3), torch.zeros(4), 1.0)
    with pytest.raises(TypeError):
        BayesLinear(3, 2, stochastic="yes")
