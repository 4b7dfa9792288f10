"""Tests of robustkit.uncertainty.methods / corruptions / image2image (oracles: closed forms, manual math)."""
import math

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from robustkit.modes import set_stochastic
from robustkit.uncertainty import (SGLD, BatchEnsemble, Ensemble, MCDropout, MCDropoutPredictor,
                                   StochasticPredictor, UncertaintyConvNet, UNet, corrupt, CORRUPTIONS,
                                   cyclic_cosine_lr, fast_ensemble_loss, l1_distance, mc_dropout,
                                   paste_patches, make_canvases, predict_mean_var, predict_proba,
                                   train_fast_ensemble, train_sgld, train_snapshot, train_svi,
                                   train_batch_ensemble, train_model, accuracy)


def _mlp(seed, dropout=0.0):
    torch.manual_seed(seed)
    layers = [nn.Linear(2, 32), nn.ReLU()]
    if dropout:
        layers.append(MCDropout(dropout))
    return nn.Sequential(*layers, nn.Linear(32, 3))


def _blobs(n=300, seed=0):
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 3, (n,), generator=g)
    centers = torch.tensor([[0.0, 2.0], [2.0, -1.0], [-2.0, -1.0]])
    return centers[y] + 0.5 * torch.randn(n, 2, generator=g), y


# ----------------------------------------------------------------------------- ensembles
def test_ensemble_averages_probabilities_not_logits():
    m1, m2 = _mlp(0), _mlp(1)
    with torch.no_grad():
        m2[2].weight.mul_(8)                     # very different logit scales
    x = torch.randn(50, 2)
    p = predict_proba(Ensemble([m1, m2]), x)
    expected = (m1(x).softmax(1) + m2(x).softmax(1)) / 2
    assert torch.allclose(p, expected, atol=1e-6)
    assert not torch.allclose(p, ((m1(x) + m2(x)) / 2).softmax(1), atol=1e-3)
    assert torch.allclose(Ensemble([m1, m2])(x).exp(), expected, atol=1e-5)


def test_mc_dropout_keeps_batchnorm_in_eval_and_restores_modes():
    torch.manual_seed(0)
    net = UncertaintyConvNet(width=4, hidden=8, dropout=0.5)
    net.train()
    x = torch.rand(16, 1, 28, 28)
    net(x)                                              # populate BN running stats
    bn = net.features[1]
    stats = (bn.running_mean.clone(), bn.running_var.clone(), int(bn.num_batches_tracked))
    seen = []
    bn.register_forward_pre_hook(lambda m, inp: seen.append(m.training))
    samples = MCDropoutPredictor(net, n_samples=5).samples(x)
    assert samples.shape == (5, 16, 10)
    assert seen and not any(seen), "BatchNorm must run in eval mode during MC dropout"
    assert torch.equal(bn.running_mean, stats[0]) and torch.equal(bn.running_var, stats[1])
    assert int(bn.num_batches_tracked) == stats[2]
    assert not torch.allclose(samples[0], samples[1]), "dropout must be random"
    assert net.training and bn.training                 # caller's modes restored
    assert all(not m.stochastic for m in net.modules() if isinstance(m, MCDropout))
    net.eval()                                          # plain eval: deterministic
    assert torch.equal(net(x), net(x))


def test_mc_dropout_with_torch_dropout_and_without_dropout():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 20), nn.BatchNorm1d(20), nn.Dropout(0.5), nn.Linear(20, 2)).eval()
    x = torch.randn(8, 3)
    with mc_dropout(net):
        assert net[2].training and not net[1].training
        assert not torch.allclose(net(x), net(x))
    assert not net[2].training
    with pytest.raises(ValueError, match="dropout"):
        MCDropoutPredictor(nn.Linear(3, 2))


# ----------------------------------------------------------------------------- SGLD
def test_sgld_noise_scale_and_drift():
    lr, n_data, temp = 0.04, 10, 0.5
    w = nn.Parameter(torch.zeros(200_000))
    opt = SGLD([w], lr=lr, n_data=n_data, temperature=temp, generator=torch.Generator().manual_seed(0))
    w.grad = torch.zeros_like(w)
    opt.step()
    assert w.detach().std().item() == pytest.approx(math.sqrt(lr * temp), rel=0.01)
    assert abs(w.detach().mean().item()) < 5 * math.sqrt(lr * temp / 200_000)
    # noise off: w <- w - lr/2 * (N grad + prior_precision w)
    v = nn.Parameter(torch.ones(5))
    opt2 = SGLD([v], lr=lr, n_data=n_data, prior_precision=2.0, noise=False)
    v.grad = torch.full((5,), 0.3)
    opt2.step()
    assert torch.allclose(v.detach(), torch.full((5,), 1 - lr / 2 * (n_data * 0.3 + 2.0)))


def test_sgld_samples_bayesian_linear_regression_posterior():
    # y = X w + noise (sigma), prior w ~ N(0, 1/alpha): posterior N(mu, S), S = (alpha I + X^T X / sigma^2)^-1
    g = torch.Generator().manual_seed(0)
    n, d, sigma, alpha = 40, 2, 0.5, 1.0
    X = torch.randn(n, d, generator=g, dtype=torch.float64)
    y = X @ torch.tensor([1.0, -0.5], dtype=torch.float64) + sigma * torch.randn(n, generator=g, dtype=torch.float64)
    S = torch.linalg.inv(alpha * torch.eye(d, dtype=torch.float64) + X.T @ X / sigma ** 2)
    mu = S @ X.T @ y / sigma ** 2
    chains = 4000                                          # independent chains, one row each
    W = nn.Parameter(torch.zeros(chains, d, dtype=torch.float64))
    opt = SGLD([W], lr=1e-3, n_data=n, prior_precision=alpha, generator=torch.Generator().manual_seed(1))
    for _ in range(600):
        opt.zero_grad()
        # mean negative log-likelihood of each chain (summed over chains: gradients are per row)
        loss = (0.5 * (y[None] - W @ X.T) ** 2 / sigma ** 2).mean(1).sum()
        loss.backward()
        opt.step()
    samples = W.detach()
    emp_cov = torch.cov(samples.T)
    se = torch.sqrt(torch.diag(S) / chains)
    assert torch.all((samples.mean(0) - mu).abs() < 5 * se + 0.01 * S.diag().sqrt())
    assert torch.allclose(emp_cov, S, rtol=0.12, atol=0.1 * S.diag().min().item())


def test_train_sgld_burn_in_then_distinct_samples():
    x, y = _blobs()
    ens = Ensemble([_mlp(i) for i in range(3)])
    hist = train_sgld(ens, (x, y), burn_in_epochs=4, sample_epochs=2, lr=2e-3, prior_precision=1.0,
                      batch_size=50)
    assert len(hist.train_loss) == 6
    flat = [torch.cat([p.flatten() for p in m.parameters()]) for m in ens.members]
    assert not torch.equal(flat[0], flat[1]) and not torch.equal(flat[1], flat[2])
    assert accuracy(predict_proba(ens, x), y) > 0.85


# ----------------------------------------------------------------------------- snapshot, SVI, BatchEnsemble
def test_cyclic_cosine_lr_formula():
    T, M, a0 = 100, 4, 0.2
    lrs = [cyclic_cosine_lr(t, T, M, a0) for t in range(T)]
    assert lrs[0] == pytest.approx(a0) and lrs[25] == pytest.approx(a0) and lrs[50] == pytest.approx(a0)
    assert lrs[24] == pytest.approx(a0 / 2 * (math.cos(math.pi * 24 / 25) + 1))
    assert min(lrs) < 0.01 * a0 and max(lrs) <= a0
    with pytest.raises(ValueError):
        cyclic_cosine_lr(100, T, M, a0)


def test_train_snapshot_members_differ_and_are_accurate():
    x, y = _blobs()
    ens = Ensemble([_mlp(0) for _ in range(3)])
    train_snapshot(ens, (x, y), epochs=6, lr_max=0.1, batch_size=50)
    w = [m[0].weight.detach() for m in ens.members]
    assert not torch.equal(w[0], w[1]) and not torch.equal(w[1], w[2])
    assert all(accuracy(predict_proba(Ensemble([m]), x), y) > 0.85 for m in ens.members)


def test_train_svi_and_stochastic_predictor():
    from robustkit.defenses.bayesian import BayesLinear
    torch.manual_seed(0)
    net = nn.Sequential(BayesLinear(2, 16, prior_sigma=1.0, init_log_sigma=-3), nn.ReLU(),
                        BayesLinear(16, 3, prior_sigma=1.0, init_log_sigma=-3))
    x, y = _blobs()
    hist = train_svi(net, (x, y), epochs=15, lr=1e-2, batch_size=50)
    assert hist.train_loss[-1] < hist.train_loss[0]
    s = StochasticPredictor(net, n_samples=4).samples(x)
    assert s.shape == (4, 300, 3) and not torch.allclose(s[0], s[1])
    assert accuracy(s.softmax(-1).mean(0), y) > 0.85
    with pytest.raises(ValueError):
        train_svi(_mlp(0), (x, y))


def test_batch_ensemble_members_equal_rank1_weights():
    torch.manual_seed(0)
    base = nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(3 * 16, 4))
    be = BatchEnsemble(base, n_members=3, seed=1)
    with torch.no_grad():
        for m in be.modules():
            if hasattr(m, "r"):
                m.r.normal_(); m.s.normal_(); m.member_bias.normal_()
    x = torch.rand(5, 1, 4, 4)
    s = be.samples(x)
    assert s.shape == (3, 5, 4)
    conv, lin = be.net[0], be.net[3]
    for i in range(3):
        wc = conv.conv.weight * (conv.s[i][:, None, None, None] * conv.r[i][None, :, None, None])
        wl = lin.weight * (lin.s[i][:, None] * lin.r[i][None, :])
        h = F.relu(F.conv2d(x, wc, conv.member_bias[i], padding=1)).flatten(1)
        assert torch.allclose(s[i], F.linear(h, wl, lin.member_bias[i]), atol=1e-5)
    with pytest.raises(ValueError, match="multiple"):
        be.net(torch.rand(4, 1, 4, 4))
    with pytest.raises(ValueError):
        BatchEnsemble(nn.ReLU(), 2)


def test_train_batch_ensemble_learns():
    x, y = _blobs()
    be = BatchEnsemble(_mlp(0), n_members=3)
    train_batch_ensemble(be, (x, y), epochs=10, lr=1e-2, batch_size=50)
    assert accuracy(predict_proba(be, x), y) > 0.85


# ----------------------------------------------------------------------------- FastEnsemble
def test_fast_ensemble_loss_is_eq_5_2():
    m = _mlp(0)
    anchors = [{n: p.detach() + 0.1 * (i + 1) for n, p in m.named_parameters()} for i in range(2)]
    task = torch.tensor(0.7)
    n_params = sum(p.numel() for p in m.parameters())
    value = fast_ensemble_loss(task, m, anchors, lam=0.01)
    expected = 0.7 - 0.01 / 2 * (0.1 * n_params + 0.2 * n_params)
    assert value.item() == pytest.approx(expected, rel=1e-4)
    assert l1_distance(m, anchors[0]).item() == pytest.approx(0.1 * n_params, rel=1e-4)
    with pytest.raises(ValueError):
        fast_ensemble_loss(task, m, [], 0.1)


def test_fast_ensemble_members_distinct_yet_accurate():
    x, y = _blobs(600)
    ens = Ensemble([_mlp(i) for i in range(4)])
    hist = train_fast_ensemble(ens, (x, y), seed_epochs=8, k2=30, k3=10, lam=1e-3, lr=1e-2, batch_size=50)
    assert len(hist.epoch_time) == 4
    params = [torch.cat([p.detach().flatten() for p in m.parameters()]) for m in ens.members]
    seed_norm = params[0].abs().sum()
    for i in range(4):
        assert accuracy(predict_proba(Ensemble([ens.members[i]]), x), y) > 0.9
        for j in range(i):
            assert (params[i] - params[j]).abs().sum() > 0.02 * seed_norm, (i, j)
    # lam = 0 stays much closer to the seed than lam > 0 (the repulsion does the work)
    ens0 = Ensemble([_mlp(i) for i in range(2)])
    ens0.members[0].load_state_dict(ens.members[0].state_dict())
    train_fast_ensemble(ens0, (x, y), seed_epochs=1, k2=30, k3=10, lam=0.0, lr=1e-2, batch_size=50)
    d0 = (torch.cat([p.detach().flatten() for p in ens0.members[1].parameters()])
          - torch.cat([p.detach().flatten() for p in ens0.members[0].parameters()])).abs().sum()
    assert (params[1] - params[0]).abs().sum() > 1.5 * d0


def test_predict_mean_var_and_bad_inputs():
    torch.manual_seed(0)
    unets = Ensemble([UNet(base=2, depth=1), UNet(base=2, depth=1)])
    x = torch.rand(3, 1, 8, 8)
    mean, var = predict_mean_var(unets, x)
    s = unets.samples(x)
    assert torch.allclose(mean, s.mean(0)) and torch.allclose(var, ((s - s.mean(0)) ** 2).mean(0))
    with pytest.raises(ValueError):
        Ensemble([])
    with pytest.raises(TypeError):
        predict_proba(_mlp(0), torch.randn(2, 2))
    with pytest.raises(ValueError):
        UNet(depth=2)(torch.rand(1, 1, 6, 6))
    with pytest.raises(TypeError):
        train_model(_mlp(0), torch.randn(3, 2))
    with pytest.raises(ValueError):
        SGLD([nn.Parameter(torch.zeros(1))], lr=-1, n_data=3)


# ----------------------------------------------------------------------------- corruptions, image2image
def test_corruptions_range_and_severity():
    torch.manual_seed(0)
    x = torch.rand(20, 1, 28, 28) ** 3
    for name in CORRUPTIONS:
        assert torch.equal(corrupt(x, name, 0), x)
        diffs = []
        for sev in range(1, 6):
            out = corrupt(x, name, sev, seed=1)
            assert out.shape == x.shape and out.min() >= 0 and out.max() <= 1
            assert torch.equal(out, corrupt(x, name, sev, seed=1))       # deterministic
            diffs.append((out - x).abs().mean().item())
        assert diffs[-1] > diffs[0] > 0, name
    with pytest.raises(ValueError):
        corrupt(x, "fog", 1)
    with pytest.raises(ValueError):
        corrupt(x, "contrast", 6)
    with pytest.raises(ValueError):
        corrupt(x * 2, "contrast", 1)


def test_paste_patches_mask_and_canvases():
    torch.manual_seed(0)
    imgs = torch.zeros(6, 1, 20, 20)
    patches = torch.rand(4, 1, 28, 28) * 0.5 + 0.5
    out, boxes, mask = paste_patches(imgs, patches, n_boxes=2, box=5, seed=0)
    assert mask.shape == (6, 1, 20, 20) and boxes.shape == (6, 2, 4)
    assert torch.equal(out != 0, mask)                    # changed pixels are exactly the boxes
    for i in range(6):
        for t, l, h, w in boxes[i].tolist():
            assert mask[i, 0, t:t + h, l:l + w].all()
    c = make_canvases(torch.rand(10, 1, 28, 28), n=7, per_canvas=3, size=24, digit_size=12, seed=0)
    assert c.shape == (7, 1, 24, 24) and c.min() >= 0 and c.max() <= 1
    more = make_canvases(torch.rand(10, 1, 28, 28), n=50, per_canvas=4, size=24, digit_size=12, seed=0)
    fewer = make_canvases(torch.rand(10, 1, 28, 28), n=50, per_canvas=1, size=24, digit_size=12, seed=0)
    assert (more > 0).float().mean() > (fewer > 0).float().mean()
    with pytest.raises(ValueError):
        paste_patches(imgs, patches, box=30)
