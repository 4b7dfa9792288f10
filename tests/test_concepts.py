"""Tests of robustkit.concepts (seed 000 §5): oracles are slogdet, Monte Carlo, scipy, infotheory."""
import math

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from scipy import stats

from robustkit import infotheory as it
from robustkit.concepts import (CategoricalConcept, CauchyFlow, ElementwiseAffineFlow,
                                FlowSequence, GaussianConcept, HouseholderFlow, LeakyReLUFlow,
                                TriangularFlow, cauchy_logdet, classify_by_concepts,
                                concept_objective, concept_summary, fit_concepts, fuzzy_loss,
                                gaussian_concept_metrics, gumbel_softmax_sample, ldl_covariance,
                                map_entropy, map_log_likelihood, pairwise_bhattacharyya,
                                pairwise_hellinger, pairwise_sliced_wasserstein, pixels_to_image,
                                sharp_loss)

torch.set_default_dtype(torch.float32)


# ---------------------------------------------------------------- Gumbel-softmax
def test_gumbel_softmax_low_temperature_frequencies_match_categorical():
    g = torch.Generator().manual_seed(0)
    p = torch.tensor([0.05, 0.1, 0.15, 0.3, 0.4])
    draws = gumbel_softmax_sample(p.log(), tau=0.01, n_draws=20000, generator=g)
    assert draws.shape == (20000, 5)
    assert torch.allclose(draws.sum(-1), torch.ones(20000), atol=1e-5)
    assert (draws.max(-1).values > 0.99).float().mean() > 0.95     # nearly one-hot
    counts = torch.bincount(draws.argmax(-1), minlength=5).numpy()
    chi2 = stats.chisquare(counts, 20000 * p.numpy())
    assert chi2.pvalue > 1e-3


def test_gumbel_softmax_high_temperature_is_near_uniform_and_differentiable():
    logits = torch.tensor([0.0, 2.0, -1.0], requires_grad=True)
    d = gumbel_softmax_sample(logits, tau=100.0, n_draws=50, generator=torch.Generator().manual_seed(1))
    assert torch.allclose(d, torch.full_like(d, 1 / 3), atol=0.05)
    d[:, 1].sum().backward()
    assert logits.grad is not None and logits.grad[1] > 0


def test_categorical_concept_images_and_sum_of_k_draws():
    torch.manual_seed(0)
    c = CategoricalConcept(num_classes=3, image_shape=(1, 4, 4), hidden=8, k=5, tau=0.01)
    y = torch.tensor([0, 1, 2, 1])
    x = c.sample(y, generator=torch.Generator().manual_seed(0))
    assert x.shape == (4, 1, 4, 4) and x.min() >= 0 and x.max() <= 1
    # at low temperature each image has at most k lit pixels and total mass <= k
    assert ((x > 0.5).flatten(1).sum(1) <= 5).all() and (x.flatten(1).sum(1) <= 5 + 1e-4).all()
    maps = c.maps()
    assert maps.shape == (3, 1, 4, 4)
    assert torch.allclose(maps.flatten(1).sum(1), torch.ones(3))
    # a single pixel drawn twice is clipped to 1
    draws = torch.zeros(1, 2, 4); draws[0, :, 2] = 1.0
    assert torch.equal(pixels_to_image(draws, (1, 2, 2)).flatten(), torch.tensor([0., 0., 1., 0.]))


def test_categorical_entropy_matches_infotheory():
    torch.manual_seed(0)
    c = CategoricalConcept(num_classes=4, image_shape=(1, 5, 5), hidden=6)
    with torch.no_grad():
        c.net[-1].weight.normal_()
    maps = c.maps().detach()
    assert torch.allclose(c.entropy(base=2).detach(), it.entropy(maps.flatten(1), base=2), atol=1e-5)
    assert torch.allclose(map_entropy(maps), it.entropy(maps.flatten(1), base=2), atol=1e-6)


# ---------------------------------------------------------------- Gaussian LDL^T
def test_ldl_covariance_spd_and_equals_explicit_product():
    torch.manual_seed(0)
    Ls, logd = torch.randn(6, 6, dtype=torch.float64), torch.randn(6, dtype=torch.float64)
    S = ldl_covariance(Ls, logd)
    L = torch.tril(Ls, -1) + torch.eye(6, dtype=torch.float64)
    assert torch.allclose(S, L @ torch.diag(logd.exp()) @ L.T)
    assert torch.allclose(S, S.T)
    assert torch.linalg.eigvalsh(S).min() > 0
    # det(L D L^T) = prod(d)
    assert torch.allclose(torch.linalg.slogdet(S)[1], logd.sum())


@pytest.mark.parametrize("structure", ["ldl", "diag", "lowrank"])
def test_gaussian_sample_covariance_converges(structure):
    torch.manual_seed(0)
    g = GaussianConcept(num_classes=2, image_shape=(1, 2, 2), structure=structure, rank=2,
                        init_std=0.5)
    with torch.no_grad():
        g.mean.normal_()
        if structure == "ldl":
            g.L_strict.normal_()
        if structure == "lowrank":
            g.W.normal_()
    n = 100_000
    y = torch.ones(n, dtype=torch.long)
    x = g.sample(y, clamp=False, generator=torch.Generator().manual_seed(0)).reshape(n, -1)
    S = g.covariance(torch.tensor([1]))[0].detach()
    emp = torch.cov(x.T.detach())
    assert torch.allclose(emp, S, atol=0.05 * float(S.abs().max()) + 0.01)
    assert torch.allclose(x.mean(0).detach(), g.mean[1].detach(), atol=0.03)
    assert torch.linalg.eigvalsh(S.double()).min() > 0


@pytest.mark.parametrize("structure", ["ldl", "diag", "lowrank"])
def test_gaussian_log_prob_and_entropy_match_torch_distributions(structure):
    torch.manual_seed(1)
    g = GaussianConcept(num_classes=3, image_shape=(1, 2, 3), structure=structure, rank=2)
    with torch.no_grad():
        g.mean.normal_(); g.log_d.normal_(0, 0.3)
        if structure == "ldl":
            g.L_strict.normal_()
        if structure == "lowrank":
            g.W.normal_()
    y = torch.tensor([0, 2, 1, 2])
    x = torch.randn(4, 1, 2, 3)
    cov = g.covariance(y).detach().double()
    ref = torch.distributions.MultivariateNormal(g.mean[y].detach().double(), cov)
    assert torch.allclose(g.log_prob(x, y).detach().double(), ref.log_prob(x.reshape(4, -1).double()),
                          atol=1e-3)
    assert torch.allclose(g.entropy(y).detach().double(), it.gaussian_entropy(cov), atol=1e-3)


# ---------------------------------------------------------------- objectives
def test_sharp_and_fuzzy_losses_vs_direct_computation():
    logits = torch.tensor([[3.0, 0.0, 0.0], [0.0, 2.0, 0.0], [1.0, 1.5, -1.0], [0.0, 0.0, 4.0]])
    y = torch.tensor([0, 0, 1, 1])
    p = torch.softmax(logits, 1)
    ce = -torch.log(p[torch.arange(4), y])
    assert torch.allclose(sharp_loss(logits, y), ce.mean())
    # samples 0 and 2 are classified as their class: only 1 and 3 count, divided by N = 4
    assert torch.allclose(fuzzy_loss(logits, y), (ce[1] + ce[3]) / 4)
    assert fuzzy_loss(logits[[0, 2]], y[[0, 2]]) == 0


def test_concept_objective_subtracts_beta_times_entropy():
    torch.manual_seed(0)
    clf = nn.Sequential(nn.Flatten(), nn.Linear(16, 3))
    c = CategoricalConcept(num_classes=3, image_shape=(1, 4, 4), hidden=0, k=3, tau=0.5)
    y = torch.tensor([0, 1, 2])
    l0, logits0 = concept_objective(clf, c, y, beta=0.0, generator=torch.Generator().manual_seed(0))
    l1, logits1 = concept_objective(clf, c, y, beta=0.7, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(logits0, logits1)
    assert torch.allclose(l1, l0 - 0.7 * math.log(16), atol=1e-5)   # uniform map: H = log 16
    with pytest.raises(ValueError):
        concept_objective(clf, c, y, kind="blurry")
    with pytest.raises(ValueError):
        concept_objective(clf, c, y, beta=-1.0)


def test_fit_concepts_learns_what_a_linear_classifier_wants_and_freezes_it():
    torch.manual_seed(0)
    clf = nn.Sequential(nn.Flatten(), nn.Linear(4, 2))
    with torch.no_grad():   # class 0 likes pixel 0, class 1 likes pixel 3
        clf[1].weight.copy_(torch.tensor([[5.0, 0, 0, -5.0], [-5.0, 0, 0, 5.0]]))
        clf[1].bias.zero_()
    w0 = clf[1].weight.clone()
    clf.train()
    c = CategoricalConcept(num_classes=2, image_shape=(1, 2, 2), hidden=0, k=2, tau=0.5)
    hist = fit_concepts(c, clf, steps=60, batch_size=20, lr=0.1)
    maps = c.maps().detach().flatten(1)
    assert maps[0].argmax() == 0 and maps[1].argmax() == 3
    assert hist["acc"][-1] == 1.0 and len(hist["loss"]) == 60
    assert torch.equal(clf[1].weight, w0) and clf.training            # untouched, mode restored
    assert all(p.requires_grad for p in clf.parameters())


# ---------------------------------------------------------------- metrics
def _random_maps(n=4, h=5, w=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.softmax(torch.randn(n, h * w, generator=g) * 2, 1).reshape(n, 1, h, w)


def test_pairwise_metrics_vs_infotheory_and_direct_formulas():
    maps = _random_maps()
    flat = maps.flatten(1)
    bc = pairwise_bhattacharyya(maps)
    hel = pairwise_hellinger(maps)
    for i in range(4):
        for j in range(4):
            assert torch.allclose(bc[i, j], torch.sqrt(flat[i] * flat[j]).sum(), atol=1e-6)
            assert torch.allclose(hel[i, j], torch.sqrt((1 - bc[i, j]).clamp(min=0)), atol=1e-3)
    assert torch.allclose(torch.diag(hel), torch.zeros(4), atol=1e-3)
    sw = pairwise_sliced_wasserstein(maps, n_projections=50, seed=0)
    assert torch.allclose(sw, sw.T) and torch.all(torch.diag(sw) == 0)
    ref = it.image_sliced_wasserstein(maps[0, 0], maps[2, 0], n_projections=50, seed=0)
    assert torch.allclose(sw[0, 2], ref)
    s = concept_summary(maps, n_projections=50)
    off = ~torch.eye(4, dtype=torch.bool)
    assert math.isclose(s["hellinger_min"], float(hel[off].min()), rel_tol=1e-6)
    assert math.isclose(s["entropy_max"], float(it.entropy(flat, base=2).max()), rel_tol=1e-6)


def test_sliced_wasserstein_of_shifted_point_masses():
    # two Dirac maps 3 pixels apart horizontally: SW2^2 = 9 E[cos^2] = 9/2 for uniform directions
    maps = torch.zeros(2, 1, 8, 8)
    maps[0, 0, 4, 1] = 1.0
    maps[1, 0, 4, 4] = 1.0
    sw = pairwise_sliced_wasserstein(maps, n_projections=4000, seed=0)
    assert abs(float(sw[0, 1]) - 3 / math.sqrt(2)) < 0.05


def test_classification_by_concept_maps():
    # class c's map puts its mass on row c; an image lit on row c is classified c
    maps = torch.full((3, 1, 3, 4), 1e-3)
    for c in range(3):
        maps[c, 0, c] = 1.0
    maps = maps / maps.flatten(1).sum(1).view(3, 1, 1, 1)
    imgs = torch.zeros(3, 1, 3, 4)
    for c in range(3):
        imgs[c, 0, c, 1:3] = 0.9
    assert torch.equal(classify_by_concepts(imgs, maps), torch.tensor([0, 1, 2]))
    ll = map_log_likelihood(imgs, maps, weighting="intensity")
    assert torch.allclose(ll[1, 2], 1.8 * torch.log(maps[2, 0, 1, 1]))
    with pytest.raises(ValueError):
        map_log_likelihood(imgs, maps, weighting="fuzzy")
    with pytest.raises(ValueError):
        map_log_likelihood(imgs * 2, maps)


def test_gaussian_concept_metrics_vs_infotheory():
    torch.manual_seed(0)
    g = GaussianConcept(num_classes=3, image_shape=(1, 1, 3), structure="ldl")
    with torch.no_grad():
        g.mean.normal_(); g.L_strict.normal_(); g.log_d.normal_(0, 0.2)
    covs, means = g.covariance().detach().double(), g.mean.detach().double()
    out = gaussian_concept_metrics(means, covs)
    assert torch.allclose(out["hellinger"][0, 2],
                          it.gaussian_hellinger(means[0], covs[0], means[2], covs[2]))
    assert torch.allclose(out["w2"][1, 0], it.gaussian_w2(means[1], covs[1], means[0], covs[0]))
    assert torch.allclose(out["bhattacharyya_distance"][2, 1],
                          it.gaussian_bhattacharyya_distance(means[2], covs[2], means[1], covs[1]))
    assert "w2" not in gaussian_concept_metrics(means, covs, w2=False)
    assert torch.allclose(out["entropy"], 0.5 * (3 * math.log(2 * math.pi * math.e)
                                                 + torch.linalg.slogdet(covs)[1]))


# ---------------------------------------------------------------- flows
def _jacobian_logdet(layer, z):
    J = torch.autograd.functional.jacobian(lambda v: layer(v.unsqueeze(0))[0][0], z)
    return torch.linalg.slogdet(J)[1]


@pytest.mark.parametrize("make", [
    lambda: ElementwiseAffineFlow(5), lambda: LeakyReLUFlow(5, 0.2), lambda: TriangularFlow(5),
    lambda: HouseholderFlow(5, 3), lambda: CauchyFlow(5)])
def test_flow_logdet_matches_slogdet_of_jacobian_and_inverse(make):
    torch.manual_seed(0)
    layer = make().double()
    with torch.no_grad():
        for p in layer.parameters():
            p.add_(0.3 * torch.randn_like(p))
    z = torch.randn(4, 5, dtype=torch.float64)
    x, ld = layer(z)
    for k in range(4):
        assert torch.allclose(ld[k], _jacobian_logdet(layer, z[k]), atol=1e-6)
    assert torch.allclose(layer.inverse(x), z, atol=1e-6)


def test_cauchy_determinant_formula_vs_slogdet():
    g = torch.Generator().manual_seed(0)
    for n in (1, 2, 5, 7):
        x = torch.randn(n, generator=g, dtype=torch.float64) * 3
        y = torch.randn(n, generator=g, dtype=torch.float64) * 3 + 10
        A = 1.0 / (x.unsqueeze(1) - y.unsqueeze(0))
        sign, logdet = cauchy_logdet(x, y)
        ref_sign, ref = torch.linalg.slogdet(A)
        assert torch.allclose(logdet, ref, atol=1e-6) and sign == ref_sign
    # Hilbert matrix 1/(i + j - 1): x_i = i, y_j = 1 - j; det H_3 = 1/2160
    s, ld = cauchy_logdet(torch.arange(1, 4.0, dtype=torch.float64),
                          1 - torch.arange(1, 4.0, dtype=torch.float64))
    assert s == 1 and math.isclose(math.exp(float(ld)), 1 / 2160, rel_tol=1e-9)
    with pytest.raises(ValueError):
        cauchy_logdet(torch.tensor([1.0, 1.0]), torch.tensor([0.0, -1.0]))


def test_flow_sequence_density_integrates_and_matches_gaussian():
    torch.manual_seed(0)
    # an affine flow of N(0, I) is N(b, A A^T): compare with the Gaussian log-density
    flow = FlowSequence(TriangularFlow(3), HouseholderFlow(3, 2), CauchyFlow(3)).double()
    x = flow.sample(5).detach()
    A = flow(torch.eye(3, dtype=torch.float64))[0] - flow(torch.zeros(3, 3, dtype=torch.float64))[0]
    b = flow(torch.zeros(1, 3, dtype=torch.float64))[0][0]
    ref = torch.distributions.MultivariateNormal(b.detach(), (A.T @ A).detach())
    assert torch.allclose(flow.log_prob(x).detach(), ref.log_prob(x), atol=1e-5)
    with pytest.raises(ValueError):
        FlowSequence(TriangularFlow(3), CauchyFlow(4))


# ---------------------------------------------------------------- bad inputs
def test_bad_inputs_raise_clear_errors():
    c = CategoricalConcept(num_classes=3, image_shape=(1, 4, 4), hidden=0)
    with pytest.raises(ValueError):
        c.sample(torch.tensor([0, 3]))                      # label out of range
    with pytest.raises(TypeError):
        c.sample([0, 1])
    with pytest.raises(ValueError):
        CategoricalConcept(tau=0.0)
    with pytest.raises(ValueError):
        CategoricalConcept(k=0)
    with pytest.raises(ValueError):
        GaussianConcept(structure="full")
    with pytest.raises(ValueError):
        gumbel_softmax_sample(torch.zeros(3), tau=-1.0)
    with pytest.raises(ValueError):
        map_entropy(torch.ones(2, 1, 2, 2))                 # maps do not sum to 1
    with pytest.raises(ValueError):
        TriangularFlow(3)(torch.zeros(2, 4))
    with pytest.raises(ValueError):
        sharp_loss(torch.zeros(3, 2), torch.zeros(2, dtype=torch.long))
    with pytest.raises(ValueError):
        fit_concepts(c, nn.Linear(16, 3), steps=0)
