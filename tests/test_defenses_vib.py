"""Variational information bottleneck (seed 002): sampling statistics, Monte-Carlo evaluation,
the bound against direct computations (closed-form KL, torch.distributions, Monte-Carlo MI)."""
import math

import pytest
import torch
import torch.nn.functional as F
from scipy.stats import chi2

from robustkit.defenses import VIBClassifier, confidence_ellipse_radius, vib_objective
from robustkit.modes import eval_mode, stochastic


def _small(K=3, **kw):
    torch.manual_seed(0)
    return VIBClassifier(K, in_shape=(1, 4, 4), hidden=(16,), num_classes=5, **kw).double()


def _x(n=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 1, 4, 4, generator=g, dtype=torch.float64), torch.randint(0, 5, (n,), generator=g)


def test_architecture_of_seed_002():
    model = VIBClassifier(256)
    widths = [(m.in_features, m.out_features) for m in model.encoder if isinstance(m, torch.nn.Linear)]
    assert widths == [(784, 1024), (1024, 1024), (1024, 512)]
    assert (model.decoder.in_features, model.decoder.out_features) == (256, 10)
    assert VIBClassifier(2).encoder[-1].out_features == 4 and model.mc_samples == 12


def test_encoder_heads_softplus_std():
    model = _small(std_offset=1.5)
    x, _ = _x()
    mu, sigma = model.encode(x)
    h = model.encoder(model.normalize(x).flatten(1))
    assert torch.equal(mu, h[:, :3])
    assert torch.allclose(sigma, torch.log1p(torch.exp(h[:, 3:] - 1.5)) + model.min_std)
    assert (sigma > 0).all()


def test_reparameterized_sample_statistics():
    mu = torch.tensor([[0.5, -2.0, 3.0]], dtype=torch.float64)
    sigma = torch.tensor([[0.1, 1.0, 2.5]], dtype=torch.float64)
    S = 40_000
    z = VIBClassifier.sample(mu, sigma, S, generator=torch.Generator().manual_seed(1))
    assert z.shape == (S, 1, 3)
    mean, var = z.mean(0), z.var(0)
    assert ((mean - mu).abs() < 5 * sigma / math.sqrt(S)).all()
    assert ((var - sigma ** 2).abs() < 5 * sigma ** 2 * math.sqrt(2 / (S - 1))).all()
    # pathwise gradients: dz/dmu = 1, dz/dsigma = eps = (z - mu) / sigma
    mu_r, s_r = mu.clone().requires_grad_(True), sigma.clone().requires_grad_(True)
    z = VIBClassifier.sample(mu_r, s_r, 5, generator=torch.Generator().manual_seed(2))
    z.sum().backward()
    eps = torch.randn((5, 1, 3), generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    assert torch.allclose(mu_r.grad, torch.full_like(mu, 5.0))
    assert torch.allclose(s_r.grad, eps.sum(0))


def test_monte_carlo_evaluation_averages_probabilities():
    model = _small()
    x, _ = _x()
    S = 12
    got = model.predict_proba(x, S, generator=torch.Generator().manual_seed(3))
    mu, sigma = model.encode(x)
    eps = torch.randn((S, *mu.shape), generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    probs = [F.softmax(model.decoder(mu + sigma * eps[s]), -1) for s in range(S)]
    expect = sum(probs) / S
    assert torch.allclose(got, expect)
    logits_avg = F.softmax(sum(model.decoder(mu + sigma * eps[s]) for s in range(S)) / S, -1)
    assert not torch.allclose(got, logits_avg, atol=1e-6)          # not the softmax of mean logits
    # forward = log of the averaged softmax over mc_samples draws (global RNG)
    torch.manual_seed(7)
    out = model(x)
    torch.manual_seed(7)
    p = model.predict_proba(x)
    assert torch.allclose(out.exp(), p) and torch.allclose(out.exp().sum(1), torch.ones(6, dtype=torch.float64))


def test_stochastic_switch_is_independent_of_training_mode():
    model = _small(std_offset=-2.0)                       # large noise
    x, _ = _x()
    with eval_mode(model):
        a, b = model(x), model(x)
        assert not torch.allclose(a, b)                    # still random in eval mode
        with stochastic(model, False):
            mu, _ = model.encode(x)
            assert torch.equal(model(x), model.decode(mu))   # mean embedding
            assert torch.equal(model.predict_proba(x), F.softmax(model.decode(mu), -1))
    assert model.training and model.stochastic


def test_vib_objective_against_direct_computation():
    model = _small(std_offset=0.0)
    x, y = _x(seed=4)
    beta = 0.37
    torch.manual_seed(11)
    loss, logits = vib_objective(beta)(model, x, y)
    mu, sigma = model.encode(x)
    torch.manual_seed(11)
    eps = torch.randn((1, *mu.shape), dtype=torch.float64)
    z = mu + sigma * eps[0]
    ce = -sum(F.log_softmax(model.decoder(z[n]), -1)[y[n]] for n in range(6)) / 6
    kl = torch.distributions.kl_divergence(torch.distributions.Normal(mu, sigma),
                                           torch.distributions.Normal(0.0, 1.0)).sum(1).mean()
    kl_loop = sum(0.5 * (m ** 2 + s ** 2 - 1 - math.log(s ** 2))
                  for m, s in zip(mu.flatten().tolist(), sigma.flatten().tolist())) / 6
    assert kl.item() == pytest.approx(kl_loop, rel=1e-10)
    assert loss.item() == pytest.approx((ce + beta * kl).item(), rel=1e-10)
    assert torch.allclose(logits, model.decoder(z))
    # S samples: average cross-entropy over the draws, same KL
    torch.manual_seed(12)
    loss3, _ = vib_objective(beta, n_samples=3)(model, x, y)
    torch.manual_seed(12)
    eps = torch.randn((3, *mu.shape), dtype=torch.float64)
    ce3 = sum(F.cross_entropy(model.decoder(mu + sigma * eps[s]), y) for s in range(3)) / 3
    assert loss3.item() == pytest.approx((ce3 + beta * kl).item(), rel=1e-10)


def test_rate_term_upper_bounds_mutual_information():
    # I(Z;X) <= E_x KL(p(z|x) || r(z)) for any r: Monte Carlo I(Z;X) of the batch's Gaussian mixture
    model = _small(K=2, std_offset=-1.0)
    x, _ = _x(n=8, seed=5)
    with torch.no_grad():
        mu, sigma = model.encode(x)
        z = model.sample(mu, sigma, 4000, generator=torch.Generator().manual_seed(6))   # (S, N, K)
        comp = torch.distributions.Normal(mu, sigma)                          # (N, K)
        logq = comp.log_prob(z[:, :, None, :]).sum(-1)                        # (S, N, M): log p(z_sn | x_m)
        own = logq.diagonal(dim1=1, dim2=2)                                   # (S, N)
        mi = (own - (torch.logsumexp(logq, 2) - math.log(8))).mean().item()
        rate = torch.distributions.kl_divergence(comp, torch.distributions.Normal(0.0, 1.0)).sum(1).mean().item()
    assert 0 < mi <= math.log(8) + 0.05
    assert mi < rate


def test_confidence_ellipse_radius():
    assert confidence_ellipse_radius(0.95) == pytest.approx(math.sqrt(chi2.ppf(0.95, 2)), rel=1e-10)
    assert confidence_ellipse_radius(0.9, dim=3) == pytest.approx(math.sqrt(chi2.ppf(0.9, 3)))
    r = confidence_ellipse_radius(0.95)
    w = torch.randn(100_000, 2, generator=torch.Generator().manual_seed(0))
    assert (w.norm(dim=1) <= r).double().mean().item() == pytest.approx(0.95, abs=0.004)


def test_bad_inputs():
    with pytest.raises(ValueError):
        VIBClassifier(0)
    with pytest.raises(ValueError):
        VIBClassifier(2, mc_samples=0)
    model = _small()
    with pytest.raises(ValueError):
        model(torch.rand(2, 1, 5, 5, dtype=torch.float64))
    with pytest.raises(TypeError):
        model.encode([[0.0]])
    with pytest.raises(ValueError):
        vib_objective(-1e-3)
    with pytest.raises(ValueError):
        vib_objective(1e-3, n_samples=0)
    with pytest.raises(TypeError):
        vib_objective(1e-3)(torch.nn.Linear(2, 2), torch.rand(2, 2), torch.tensor([0, 1]))
    x, y = _x()
    with pytest.raises(ValueError):
        vib_objective(1e-3)(model, x + 1.5, y)
    with pytest.raises(ValueError):
        VIBClassifier.sample(torch.zeros(2, 3), torch.ones(2, 2))
    with pytest.raises(ValueError):
        confidence_ellipse_radius(1.0)
