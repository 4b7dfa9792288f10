"""Tests of robustkit.defenses.neural_sde against independent oracles.

- Euler-Maruyama: strong order 1/2 on geometric Brownian motion (closed-form solution on
  the same Brownian path); identical to torchsde's ``euler`` on the same Brownian interval;
  order 1 for the ODE (no diffusion) against torchdiffeq's dopri5;
- jumps: Poisson counts (mean, variance, chi-square goodness of fit) and directions;
- modes: noise iff ``stochastic``, whatever ``training`` says;
- EOT: robust accuracy under EOT-PGD is not above the single-draw PGD's on a noisy model;
- test-time-noise ensembles average probabilities; bad inputs raise clear errors.
"""
import math

import numpy as np
import pytest
import torch
import torch.nn as nn
from scipy import stats

from robustkit.attacks import PGD, ExpectedModel, robust_accuracy
from robustkit.defenses import neural_sde as ns
from robustkit.modes import set_stochastic, stochastic


def _block(shape_c=3, diffusion="none", sigma=0.0, steps=8, dtype=torch.float64, seed=0, **kw):
    torch.manual_seed(seed)
    return ns.SDEBlock(shape_c, diffusion=diffusion, sigma=sigma, steps=steps, **kw).to(dtype)


# --------------------------------------------------------------------------- solver order
def test_euler_maruyama_strong_order_half_on_gbm():
    mu, sigma, T, x0 = 0.5, 1.0, 1.0, 1.0
    paths, fine = 4000, 2 ** 10
    g = torch.Generator().manual_seed(1)
    ts_fine = ns.time_grid(T, fine, dtype=torch.float64)
    dB = ns.brownian_increments((paths,), ts_fine, generator=g)           # (fine, paths)
    exact = ns.gbm_solution(x0, mu, sigma, ts_fine[[0, -1]], torch.stack([torch.zeros(paths), dB.sum(0)]))[-1]
    levels = [2 ** k for k in range(3, 9)]
    errors = []
    for n in levels:
        coarse = dB.view(n, fine // n, paths).sum(1)                     # same path, coarser grid
        yT = ns.euler_maruyama(lambda t, y: mu * y, torch.full((paths,), x0, dtype=torch.float64),
                               ns.time_grid(T, n, dtype=torch.float64), lambda t, y: sigma * y,
                               brownian=coarse)
        errors.append((yT - exact).abs().mean().item())
    slope = np.polyfit(np.log([T / n for n in levels]), np.log(errors), 1)[0]
    assert 0.38 < slope < 0.65, f"strong order should be 1/2, got {slope:.3f} (errors {errors})"
    # the block with a linear drift and multiplicative noise is the same scheme
    blk = ns.SDEBlock(drift=ns.LinearDrift(1, a=mu), diffusion="multiplicative", sigma=sigma,
                      steps=16).double()
    coarse = dB.view(16, fine // 16, paths).sum(1)[..., None]
    y_blk = blk(torch.full((paths, 1), x0, dtype=torch.float64), brownian=coarse)[:, 0]
    y_ref = ns.euler_maruyama(lambda t, y: mu * y, torch.full((paths,), x0, dtype=torch.float64),
                              ns.time_grid(T, 16, dtype=torch.float64), lambda t, y: sigma * y,
                              brownian=coarse[..., 0])
    torch.testing.assert_close(y_blk, y_ref, rtol=1e-12, atol=1e-12)


class _TanhDrift(nn.Module):
    """A small nonlinear, time-dependent drift on vectors: tanh(h W1 + t b) W2."""

    def __init__(self, dim=6, hidden=16, seed=3):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.w1 = nn.Parameter(torch.randn(dim, hidden, generator=g, dtype=torch.float64))
        self.b = nn.Parameter(torch.randn(hidden, generator=g, dtype=torch.float64))
        self.w2 = nn.Parameter(torch.randn(hidden, dim, generator=g, dtype=torch.float64) / 2)

    def forward(self, t, h):
        return torch.tanh(h @ self.w1 + t * self.b) @ self.w2


def test_ode_case_converges_at_order_one_to_dopri5():
    torchdiffeq = pytest.importorskip("torchdiffeq")
    blk = ns.SDEBlock(drift=_TanhDrift(), diffusion="none", steps=4)
    h0 = torch.randn(5, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ref = torchdiffeq.odeint(blk.drift, h0, torch.tensor([0.0, 1.0], dtype=torch.float64),
                                 method="dopri5", rtol=1e-11, atol=1e-11)[-1]
        errors = []
        levels = [8, 16, 32, 64, 128]
        for n in levels:
            blk.steps = n
            errors.append(((blk(h0) - ref).norm() / ref.norm()).item())
    slope = np.polyfit(np.log([1 / n for n in levels]), np.log(errors), 1)[0]
    assert 0.9 < slope < 1.1, f"Euler on an ODE is first order, got slope {slope:.3f} ({errors})"
    assert errors[-1] < 1e-2
    # the conv drift of the classifier goes through the same solver: one step is one Euler step
    conv = _block(3, "none", steps=1, seed=1)
    h = torch.randn(2, 3, 4, 4, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(conv(h), h + conv.drift(torch.tensor(0.0, dtype=torch.float64), h))


# --------------------------------------------------------------------------- torchsde oracle
class _TorchsdeWrapper(nn.Module):
    noise_type, sde_type = "diagonal", "ito"

    def __init__(self, block, shape):
        super().__init__()
        self.block, self.shape = block, shape

    def f(self, t, y):
        return self.block.drift(t, y.view(self.shape)).flatten(1)

    def g(self, t, y):
        h = y.view(self.shape)
        s = self.block.sigma
        if self.block.diffusion == "additive":
            return torch.full_like(y, s)
        if self.block.diffusion == "multiplicative":
            return s * y
        return (s * self.block.drift(t, h)).flatten(1)


@pytest.mark.parametrize("diffusion", ["additive", "multiplicative", "dropout"])
def test_matches_torchsde_euler_on_the_same_brownian_path(diffusion):
    torchsde = pytest.importorskip("torchsde")
    blk = _block(3, diffusion, sigma=0.7, steps=8, seed=5)
    shape = (4, 3, 5, 5)
    h0 = torch.rand(shape, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    bm = torchsde.BrownianInterval(t0=0.0, t1=1.0, size=(4, 75), dtype=torch.float64, entropy=11)
    with torch.no_grad():
        ref = torchsde.sdeint(_TorchsdeWrapper(blk, shape), h0.flatten(1), torch.tensor([0.0, 1.0], dtype=torch.float64),
                              bm=bm, method="euler", dt=1 / 8)[-1].view(shape)
        ours = blk(h0, brownian=lambda a, b: bm(a, b).view(shape))
    torch.testing.assert_close(ours, ref, rtol=1e-10, atol=1e-10)
    assert (ours - blk(h0.clone(), brownian=lambda a, b: torch.zeros(shape, dtype=torch.float64))).abs().max() > 1e-3, \
        "the Brownian path must matter"


# --------------------------------------------------------------------------- jumps
def test_jump_counts_are_poisson_with_the_right_rate():
    lam, T, M = 1.5, 2.0, 20000
    torch.manual_seed(0)
    blk = ns.SDEBlock(drift=ns.LinearDrift(1, a=0.0), t1=T, steps=40, jump_rate=lam, jump_p=1.0,
                      jump_size="constant", jump_scale=1.0, jump_kind="depth").double()
    counts = blk(torch.zeros(M, 1, dtype=torch.float64), generator=torch.Generator().manual_seed(7))[:, 0]
    assert torch.allclose(counts, counts.round()), "with unit jumps of sign +1, h_T counts the jumps"
    m = lam * T
    se = math.sqrt(m / M)
    assert abs(counts.mean().item() - m) < 5 * se, "mean of N_T is lambda T (5 standard errors)"
    assert abs(counts.var().item() - m) < 5 * m * math.sqrt(2 / M) + 5 * se, "variance of N_T is lambda T"
    assert abs((counts == 0).double().mean().item() - math.exp(-m)) < 5 * math.sqrt(math.exp(-m) / M)
    k = np.arange(8)
    observed = np.array([(counts == i).sum().item() for i in k] + [(counts >= 8).sum().item()])
    expected = np.append(stats.poisson.pmf(k, m), stats.poisson.sf(7, m)) * M
    assert stats.chisquare(observed, expected).pvalue > 1e-3, "counts should follow Poisson(lambda T)"


def test_jump_directions_have_probability_p():
    counts, sums = ns.bernoulli_jumps((4000, 50), dt=0.5, rate=2.0, p=0.3,
                                      generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    n = counts.sum().item() * 50                                         # jumps x features
    assert abs(sums.sum().item() / n - (2 * 0.3 - 1)) < 5 * 2 * math.sqrt(0.21 / n)
    assert ((sums.abs() <= counts[:, None]) & ((sums + counts[:, None]) % 2 == 0)).all(), \
        "a sum of n signs lies in {-n, -n+2, ..., n}"
    counts_d, sums_d = ns.bernoulli_jumps((10, 3, 2, 2), dt=1.0, rate=3.0, kind="depth",
                                          generator=torch.Generator().manual_seed(0))
    assert sums_d.shape == (10, 1, 1, 1), "stochastic depth: one direction per sample"


# --------------------------------------------------------------------------- modes
def test_noise_follows_the_stochastic_switch_not_training():
    blk = _block(3, "additive", sigma=0.5, steps=4, dtype=torch.float32)
    ode = ns.SDEBlock(drift=blk.drift, diffusion="none", steps=4)
    h = torch.rand(2, 3, 4, 4)
    blk.train()
    blk.stochastic = False
    with torch.no_grad():
        a, b = blk(h), blk(h)
        torch.testing.assert_close(a, b)
        torch.testing.assert_close(a, ode(h))
        blk.eval()
        blk.stochastic = True
        assert (blk(h) - blk(h)).abs().max() > 1e-3, "noise must stay on in eval mode"
    # through the classifier and robustkit.modes
    model = ns.NeuralSDEClassifier(diffusion="dropout", sigma=1.0, jump_rate=2.0, jump_scale=0.5)
    model.train()
    x = torch.rand(3, 1, 12, 12)
    with torch.no_grad(), stochastic(model, False):
        torch.testing.assert_close(model(x), model(x))
    model.eval()
    with torch.no_grad():
        assert (model(x) - model(x)).abs().max() > 1e-4
    assert set_stochastic(model, True) == {"block": True}


def test_deterministic_twin_replaces_jumps_by_their_mean():
    blk = ns.SDEBlock(drift=ns.LinearDrift(2, a=0.0), t1=2.0, steps=5, jump_rate=1.5, jump_p=0.8,
                      jump_size="constant", jump_scale=1.0, stochastic=False)
    out = blk(torch.zeros(3, 2))
    torch.testing.assert_close(out, torch.full((3, 2), 1.5 * 2.0 * (2 * 0.8 - 1)))


def test_shared_generator_gives_the_same_noise():
    model = ns.NeuralSDEClassifier(diffusion="multiplicative", sigma=0.5, steps=3, jump_rate=1.0, jump_scale=0.5)
    x = torch.rand(2, 1, 10, 10)
    with torch.no_grad():
        p1 = model.hidden_path(x, generator=torch.Generator().manual_seed(4))
        p2 = model.hidden_path(x, generator=torch.Generator().manual_seed(4))
    assert p1.shape == (4, 2, 16, 5, 5)
    torch.testing.assert_close(p1, p2)


def test_gradients_flow_through_the_solver():
    model = ns.NeuralSDEClassifier(diffusion="dropout", sigma=0.5, steps=2)
    x, y = torch.rand(4, 1, 8, 8), torch.tensor([0, 1, 2, 3])
    nn.functional.cross_entropy(model(x), y).backward()
    g = model.block.drift.conv1.weight.grad
    assert g is not None and torch.isfinite(g).all() and g.abs().sum() > 0


# --------------------------------------------------------------------------- EOT and ensembles
def test_eot_accuracy_not_above_single_draw_accuracy():
    # Gaussian-dropout noise makes single-draw input gradients point in random directions;
    # the deployed model (softmax averaged over 64 draws) is attacked with L2 PGD whose
    # gradient averages 1 (naive) or 20 (EOT) draws.
    torch.manual_seed(0)
    d, k = 10, 3
    model = nn.Sequential(
        nn.Linear(d, 32),
        ns.SDEBlock(drift=ns.LinearDrift(32), diffusion="dropout", sigma=3.0, steps=1),
        nn.Linear(32, k))
    x = torch.rand(400, d)
    deployed = ExpectedModel(model, samples=64)
    with torch.no_grad():
        y = deployed(x).argmax(1)
    results = {}
    for eot in (1, 20):
        torch.manual_seed(1)
        attack = PGD(model, 0.6, norm="l2", steps=5, eot_samples=eot)
        results[eot] = robust_accuracy(deployed, attack, (x, y))
    assert results[20] <= results[1], f"EOT must not help the model: {results}"
    assert results[20] < results[1] - 0.04, f"with this much noise EOT should clearly win: {results}"


def test_ttn_predict_averages_probabilities():
    model = ns.NeuralSDEClassifier(diffusion="additive", sigma=1.0, steps=2, width=8)
    x = torch.rand(5, 1, 8, 8)
    torch.manual_seed(3)
    probs = ns.ttn_predict(model, x, samples=7)
    torch.manual_seed(3)
    with torch.no_grad():
        manual = torch.stack([model(x).softmax(1) for _ in range(7)]).mean(0)
    torch.testing.assert_close(probs, manual, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(probs.sum(1), torch.ones(5))
    with stochastic(model, False):
        torch.testing.assert_close(ns.ttn_predict(model, x, samples=3),
                                   model.eval()(x).softmax(1).detach(), rtol=1e-5, atol=1e-6)
    assert ns.ttn_accuracy(model, x, probs.argmax(1), samples=1) >= 0.0


# --------------------------------------------------------------------------- bad inputs
def test_bad_inputs():
    with pytest.raises(ValueError, match="diffusion"):
        ns.SDEBlock(4, diffusion="brownian")
    with pytest.raises(ValueError, match="sigma"):
        ns.SDEBlock(4, diffusion="additive", sigma=-1.0)
    with pytest.raises(ValueError, match="steps"):
        ns.SDEBlock(4, steps=0)
    with pytest.raises(ValueError, match="jump_p"):
        ns.SDEBlock(4, jump_rate=1.0, jump_p=1.5)
    with pytest.raises(ValueError, match="channels"):
        ns.SDEBlock()
    with pytest.raises(TypeError, match="drift"):
        ns.SDEBlock(drift=lambda t, h: h)
    with pytest.raises(ValueError, match="p_drop"):
        ns.dropout_sigma(1.0)
    with pytest.raises(ValueError, match="increasing"):
        ns.euler_maruyama(lambda t, y: y, torch.zeros(2), torch.tensor([0.0, 1.0, 0.5]))
    with pytest.raises(ValueError, match="shape"):
        ns.euler_maruyama(lambda t, y: y, torch.zeros(2), torch.tensor([0.0, 1.0]),
                          lambda t, y: y, brownian=torch.zeros(3, 2))
    with pytest.raises(TypeError, match="drift"):
        ns.euler_maruyama(None, torch.zeros(2), torch.tensor([0.0, 1.0]))
    with pytest.raises(TypeError, match="floating"):
        ns.euler_maruyama(lambda t, y: y, torch.zeros(2, dtype=torch.long), torch.tensor([0.0, 1.0]))
    model = ns.NeuralSDEClassifier(in_channels=1)
    with pytest.raises(ValueError, match="shape"):
        model(torch.rand(2, 3, 8, 8))
    with pytest.raises(TypeError):
        model(torch.zeros(2, 1, 8, 8, dtype=torch.uint8))
    with pytest.raises(ValueError, match="samples"):
        ns.ttn_predict(model, torch.rand(2, 1, 8, 8), samples=0)
    with pytest.raises(ValueError, match="rate"):
        ns.bernoulli_jumps((2, 3), dt=0.1, rate=-1.0)
    with pytest.raises(ValueError, match="jump kind"):
        ns.bernoulli_jumps((2, 3), dt=0.1, rate=1.0, kind="zigzag")
