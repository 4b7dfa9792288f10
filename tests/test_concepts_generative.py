"""Tests of the seed-004 latent-variable classifiers and logit-based detection."""
import math

import numpy as np
import pytest
import torch

import robustkit as rk
from robustkit.concepts import (LatentVariableClassifier, detect_adversarial, elbo_objective,
                                logit_thresholds, relative_perturbation)


def _tiny(structure, seed=0):
    torch.manual_seed(seed)
    m = LatentVariableClassifier(structure, num_classes=3, image_shape=(1, 2, 3), latent_dim=2,
                                 hidden=8, n_samples=5).double()
    return m


@pytest.mark.parametrize("structure", ["DFZ", "GFZ"])
def test_elbo_matches_monte_carlo_of_log_weights(structure):
    m = _tiny(structure)
    x = torch.rand(4, 1, 2, 3, dtype=torch.float64)
    y = torch.tensor([0, 2, 1, 2])
    g = torch.Generator().manual_seed(0)
    lw = m.log_weights(x, y, 20_000, generator=g).detach()         # log p(x,y,z) - log q(z)
    mc = lw.mean(0)
    stderr = lw.std(0) / math.sqrt(lw.shape[0])
    reps = 4000                                                    # analytic KL, sampled recon
    e = m.elbo(x.repeat(reps, 1, 1, 1), y.repeat(reps),
               generator=torch.Generator().manual_seed(1)).detach().view(reps, 4)
    elbo, se_elbo = e.mean(0), e.std(0) / math.sqrt(reps)
    assert torch.all((elbo - mc).abs() < 5 * torch.sqrt(stderr ** 2 + se_elbo ** 2))
    # importance-weighted bound is above the ELBO (Jensen)
    iw = torch.logsumexp(lw[:1000], 0) - math.log(1000)
    assert torch.all(iw >= mc - 5 * stderr)


def test_elbo_log_joint_by_hand_for_gfz():
    m = _tiny("GFZ")
    x = torch.rand(2, 1, 2, 3, dtype=torch.float64)
    y = torch.tensor([1, 0])
    onehot = torch.nn.functional.one_hot(y, 3).double()
    mu, logvar = m.posterior(x.flatten(1), onehot)
    z = mu
    xl = m.decoder(torch.cat([z, onehot], 1))
    px = torch.sigmoid(xl)
    log_px = (x.flatten(1) * px.log() + (1 - x.flatten(1)) * (1 - px).log()).sum(1)
    log_py = torch.log_softmax(m.prior_y(z), 1)[torch.arange(2), y]
    kl = torch.distributions.kl_divergence(
        torch.distributions.Normal(mu, (0.5 * logvar).exp()), torch.distributions.Normal(0.0, 1.0)).sum(1)
    assert torch.allclose(m.elbo(x, y, sample=False), log_px + log_py - kl, atol=1e-8)


def test_forward_logits_are_per_class_bounds_and_stochastic_switch():
    m = _tiny("DFZ")
    x = torch.rand(3, 1, 2, 3, dtype=torch.float64)
    logits = m(x)
    assert logits.shape == (3, 3)
    for c in range(3):
        assert torch.allclose(logits[:, c], m.elbo(x, torch.full((3,), c), sample=False))
    assert torch.equal(m(x), logits)                            # deterministic by default
    rk.set_stochastic(m, True)
    torch.manual_seed(1)
    a = m(x)
    torch.manual_seed(2)
    assert not torch.equal(a, m(x))


def test_training_improves_the_elbo():
    torch.manual_seed(0)
    x = (torch.rand(64, 1, 2, 3) > 0.5).float()
    y = (x.flatten(1)[:, 0] > 0.5).long() + (x.flatten(1)[:, 1] > 0.5).long()
    m = LatentVariableClassifier("GFZ", num_classes=3, image_shape=(1, 2, 3), latent_dim=2,
                                 hidden=16)
    loader = rk.make_loader(x, y, batch_size=16, seed=0)
    before = float(m.loss(x, y).detach())
    rk.fit(m, loader, epochs=30, lr=1e-2, loss_fn=elbo_objective, progress=False)
    assert float(m.loss(x, y).detach()) < before - 1.0
    assert (m(x).argmax(1) == y).float().mean() > 0.8


def test_logit_thresholds_as_specified_and_detection():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(200, 3, generator=g) * 2
    labels = torch.randint(0, 3, (200,), generator=g)
    th = logit_thresholds(logits, labels, alpha=-1.5)
    L, Y = logits.numpy(), labels.numpy()
    for c in range(3):
        ok = (Y == c) & (L.argmax(1) == c)
        v = L[ok].max(1)
        assert math.isclose(float(th[c]), v.mean() - 1.5 * v.std(ddof=1), rel_tol=1e-5)
    flags = detect_adversarial(logits, th)
    pred = L.argmax(1)
    assert np.array_equal(flags.numpy(), L.max(1) < th.numpy()[pred])
    # alpha -> +inf rejects everything, -inf nothing
    assert detect_adversarial(logits, logit_thresholds(logits, labels, 1e6)).all()
    assert not detect_adversarial(logits, logit_thresholds(logits, labels, -1e6)).any()


def test_relative_perturbation_and_bad_inputs():
    x = torch.full((2, 1, 2, 2), 0.5)
    assert math.isclose(relative_perturbation(x, x * 1.1), 0.1, rel_tol=1e-5)
    with pytest.raises(ValueError):
        LatentVariableClassifier("GBZ")
    m = LatentVariableClassifier("GFZ", num_classes=3, image_shape=(1, 2, 3), latent_dim=2, hidden=8)
    with pytest.raises(ValueError):
        m(torch.rand(2, 1, 3, 3))
    with pytest.raises(ValueError):
        m(torch.rand(2, 1, 2, 3) + 1)
    with pytest.raises(ValueError):
        m.elbo(torch.rand(2, 1, 2, 3), torch.tensor([0, 5]))
    with pytest.raises(ValueError):
        logit_thresholds(torch.zeros(3, 2), torch.tensor([0, 1, 0]), float("nan"))
    with pytest.raises(ValueError):
        relative_perturbation(x, x[:1])
