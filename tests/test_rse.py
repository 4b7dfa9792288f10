"""Random Self-Ensemble (seed 003 §2.1): noise layers, the RSE builder, the ensemble of eq. (2.6),
EOT against an RSE model, and the defensive-distillation baseline."""
import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from robustkit.attacks import PGD, robust_accuracy
from robustkit.defenses.distillation import (distillation_objective, soft_labels,
                                             temperature_objective)
from robustkit.defenses.rse import (NoiseLayer, SelfEnsemble, ensemble_proba, insert_noise_layers,
                                    noise_layers, rse_network, set_noise_levels, small_convnet)
from robustkit.modes import eval_mode, stochastic


# ----------------------------------------------------------------------------- noise layer
@pytest.mark.parametrize("train", [True, False])
def test_noise_follows_the_stochastic_switch_not_the_training_flag(train):
    layer = NoiseLayer(0.5)
    layer.train(train)
    x = torch.zeros(4, 3, 5, 5)
    a, b = layer(x), layer(x)
    assert not torch.equal(a, x) and not torch.equal(a, b), "noise must be drawn when stochastic"
    layer.stochastic = False
    assert torch.equal(layer(x), x), "no noise when the stochastic switch is off"


def test_noise_off_in_training_mode_when_switched_off():
    net = rse_network(init_std=0.3, inner_std=0.2)
    net.train()
    x = torch.rand(3, 1, 28, 28)
    with stochastic(net, False):
        assert torch.equal(net(x), net(x))
    assert not torch.equal(net(x), net(x))            # switch restored: noisy again


def test_noise_stays_on_under_eval_mode_of_attacks():
    net = rse_network(init_std=0.3, inner_std=0.2)
    x = torch.rand(3, 1, 28, 28)
    with eval_mode(net):
        assert not torch.equal(net(x), net(x))


def test_gaussian_noise_moments():
    torch.manual_seed(0)
    layer = NoiseLayer(0.3)
    noise = layer(torch.zeros(400_000))
    assert abs(noise.mean().item()) < 3 * 0.3 / math.sqrt(4e5)
    assert abs(noise.std().item() - 0.3) < 0.003


def test_bernoulli_gaussian_noise_moments():
    torch.manual_seed(1)
    layer = NoiseLayer(0.5, kind="bernoulli-gaussian", p=0.2)
    noise = layer(torch.zeros(400_000))
    nonzero = noise != 0
    frac = nonzero.float().mean().item()
    assert abs(frac - 0.2) < 4 * math.sqrt(0.2 * 0.8 / 4e5)
    assert abs(noise[nonzero].std().item() - 0.5) < 0.006
    assert abs(noise.var().item() - 0.2 * 0.25) < 0.002        # Var = p sigma^2


def test_per_channel_std():
    torch.manual_seed(2)
    layer = NoiseLayer([0.1, 1.0])
    noise = layer(torch.zeros(20_000, 2, 3, 3))
    stds = noise.transpose(0, 1).reshape(2, -1).std(1)
    assert torch.allclose(stds, torch.tensor([0.1, 1.0]), rtol=0.02)
    with pytest.raises(ValueError, match="per-channel"):
        layer(torch.zeros(2, 3, 4, 4))


# ----------------------------------------------------------------------------- RSE builder
def test_insert_noise_before_every_convolution():
    base = small_convnet()
    net = insert_noise_layers(base, init_std=0.2, inner_std=0.1)
    assert not noise_layers(base), "the base model is copied, not modified"
    convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
    layers = noise_layers(net)
    assert len(layers) == len(convs) == 3
    # each conv is preceded by its noise layer inside a Sequential(noise, conv)
    pairs = [m for m in net.modules() if isinstance(m, nn.Sequential) and len(m) == 2
             and isinstance(m[0], NoiseLayer) and isinstance(m[1], nn.Conv2d)]
    assert len(pairs) == 3
    # init noise in pixel units: divided by the Normalize std (0.3081); inner noise as given
    assert layers[0].std == pytest.approx(0.2 / 0.3081, rel=1e-5)
    assert [l.std for l in layers[1:]] == [0.1, 0.1]


def test_noise_off_gives_the_base_model():
    torch.manual_seed(3)
    base = small_convnet()
    net = insert_noise_layers(base, 0.3, 0.2)
    x = torch.rand(5, 1, 28, 28)
    with torch.no_grad(), stochastic(net, False):
        assert torch.allclose(net(x), base(x))


def test_init_noise_in_pixel_units_matches_noisy_input():
    """Init noise after Normalize == pixel noise before it (same random numbers)."""
    base = small_convnet()
    net = insert_noise_layers(base, 0.25, 0.0)
    x = torch.rand(4, 1, 28, 28)
    torch.manual_seed(4)
    out = net(x)
    torch.manual_seed(4)
    eps = torch.randn_like(x) * 0.25
    assert torch.allclose(out, base(x + eps), atol=1e-5)


def test_set_noise_levels():
    net = rse_network(init_std=0.0, inner_std=0.0)
    set_noise_levels(net, 0.2, 0.05)
    layers = noise_layers(net)
    assert layers[0].std == pytest.approx(0.2 / 0.3081, rel=1e-5) and layers[2].std == 0.05


def test_builder_bad_inputs():
    with pytest.raises(ValueError, match="no nn.Conv2d"):
        insert_noise_layers(nn.Sequential(nn.Flatten(), nn.Linear(4, 2)))
    with pytest.raises(ValueError):
        NoiseLayer(-0.1)
    with pytest.raises(ValueError):
        NoiseLayer(float("nan"))
    with pytest.raises(ValueError, match="unknown noise kind"):
        NoiseLayer(0.1, kind="laplace")
    with pytest.raises(ValueError, match="probability"):
        NoiseLayer(0.1, kind="bernoulli-gaussian", p=0.0)
    with pytest.raises(TypeError):
        NoiseLayer(0.1, stochastic=1)
    with pytest.raises(ValueError, match="already has noise"):
        insert_noise_layers(rse_network())
    with pytest.raises(TypeError):
        insert_noise_layers("model")
    with pytest.raises(ValueError):
        set_noise_levels(small_convnet(), 0.1, 0.1)
    with pytest.raises(ValueError):
        small_convnet(width=0)


# ----------------------------------------------------------------------------- ensemble (eq. 2.6)
class _Recorder(nn.Module):
    """Wraps a model, scales its logits (confident, varied draws) and records every batch."""

    def __init__(self, model, scale=1.0):
        super().__init__()
        self.model, self.scale, self.outputs = model, scale, []

    def forward(self, x):
        out = self.scale * self.model(x)
        self.outputs.append(out.detach())
        return out


@pytest.mark.parametrize("vectorize", [True, False])
def test_ensemble_averages_probabilities_not_logits(vectorize):
    torch.manual_seed(5)
    rec = _Recorder(rse_network(init_std=0.5, inner_std=0.5), scale=50.0)
    x = torch.rand(6, 1, 28, 28)
    n = 7
    with torch.no_grad():
        p = ensemble_proba(rec, x, n, vectorize=vectorize, chunk=3)
    logits = torch.cat(rec.outputs).view(n, 6, 10)           # every draw, in order
    assert not torch.allclose(logits[0], logits[1]), "the draws must differ"
    expected = torch.softmax(logits, dim=2).mean(0)
    assert torch.allclose(p, expected, atol=1e-6)
    assert torch.allclose(p.sum(1), torch.ones(6), atol=1e-6)
    from_mean_logits = torch.softmax(logits.mean(0), dim=1)
    assert not torch.allclose(p, from_mean_logits, atol=1e-3)


def test_self_ensemble_returns_log_of_mean_probability():
    torch.manual_seed(6)
    rec = _Recorder(rse_network(init_std=0.5, inner_std=0.5))
    x = torch.rand(4, 1, 28, 28)
    with torch.no_grad():
        out = SelfEnsemble(rec, 5)(x)
    logits = torch.cat(rec.outputs).view(5, 4, 10)
    assert torch.allclose(out.exp(), torch.softmax(logits, 2).mean(0), atol=1e-6)


def test_vectorized_draws_are_independent_and_converge():
    """Two independent ensembles of 400 draws agree; single draws do not."""
    torch.manual_seed(7)
    net = rse_network(init_std=0.4, inner_std=0.3)
    x = torch.rand(3, 1, 28, 28)
    with torch.no_grad():
        a, b = ensemble_proba(net, x, 400), ensemble_proba(net, x, 400)
        c, d = ensemble_proba(net, x, 1), ensemble_proba(net, x, 1)
    assert (a - b).abs().max() < 0.25 * (c - d).abs().max()


def test_ensemble_bad_inputs():
    net = rse_network()
    with pytest.raises(ValueError):
        ensemble_proba(net, torch.rand(2, 1, 28, 28), 0)
    with pytest.raises(ValueError):
        SelfEnsemble(net, n=2.5)
    with pytest.raises(TypeError):
        ensemble_proba("net", torch.rand(2, 1, 28, 28), 2)
    with pytest.raises(TypeError):
        ensemble_proba(net, [0.0], 2)


# ----------------------------------------------------------------------------- EOT vs single draw
class _WigglyNet(nn.Module):
    """Init noise, then a score whose expected gradient is ``w`` but whose single-draw gradient
    is dominated by ``A w cos(w (x + eps))`` with a random sign: the textbook case where one
    noisy gradient is useless and EOT recovers the direction (Athalye et al. 2018)."""

    def __init__(self, d=30, sigma=0.5, amp=0.6, freq=10.0):
        super().__init__()
        self.noise = NoiseLayer(sigma)
        self.d, self.amp, self.freq = d, amp, freq

    def forward(self, x):
        z = self.noise(x.flatten(1))
        score = (z - 0.5).sum(1) / math.sqrt(self.d) \
            + self.amp * torch.sin(self.freq * z).sum(1) / math.sqrt(self.d)
        return torch.stack([-score, score], dim=1)


def test_eot_accuracy_no_higher_than_single_draw_on_a_randomized_model():
    torch.manual_seed(8)
    net = _WigglyNet()
    d = net.d
    # points of class 1 with a positive margin: x = 0.5 + 0.06 in every coordinate
    x = torch.full((200, d), 0.56)
    y = torch.ones(200, dtype=torch.long)
    deployed = SelfEnsemble(net, 200)
    acc = {}
    for k in (1, 64):
        torch.manual_seed(9)
        attack = PGD(net, 0.1, steps=3, eot_samples=k)
        acc[k] = robust_accuracy(deployed, attack, (x, y))
    clean = robust_accuracy(deployed, None, (x, y))
    assert clean == 1.0
    assert acc[64] <= acc[1], acc
    assert acc[64] < acc[1] - 0.3, f"EOT should break the model that single draws cannot: {acc}"


def test_rse_eot_accuracy_not_above_single_draw():
    """On an RSE convnet, EOT-PGD finds at least as many adversarial examples as one-draw PGD."""
    torch.manual_seed(10)
    net = rse_network(init_std=0.3, inner_std=0.3, width=4, hidden=16)
    x = torch.rand(64, 1, 28, 28)
    with torch.no_grad():
        y = ensemble_proba(net, x, 50).argmax(1)        # the ensemble's own labels: clean acc ~1
    deployed = SelfEnsemble(net, 30)
    torch.manual_seed(11)
    single = robust_accuracy(deployed, PGD(net, 0.02, steps=2, eot_samples=1), (x, y))
    torch.manual_seed(11)
    eot = robust_accuracy(deployed, PGD(net, 0.02, steps=2, eot_samples=16), (x, y))
    assert eot <= single + 0.05, (eot, single)


# ----------------------------------------------------------------------------- distillation
def test_distillation_objectives_match_their_formulas():
    torch.manual_seed(12)
    teacher = nn.Sequential(nn.Flatten(), nn.Linear(16, 3))
    student = nn.Sequential(nn.Flatten(), nn.Linear(16, 3))
    x, y = torch.rand(8, 1, 4, 4), torch.randint(0, 3, (8,))
    T = 5.0
    loss, logits = temperature_objective(T)(teacher, x, y)
    assert torch.allclose(loss, F.cross_entropy(teacher(x) / T, y))
    q = soft_labels(teacher, x, T)
    assert torch.allclose(q, torch.softmax(teacher(x) / T, 1)) and not q.requires_grad
    loss, logits = distillation_objective(teacher, T)(student, x, y)
    ref = F.kl_div(torch.log_softmax(student(x) / T, 1), q, reduction="batchmean") \
        + (-(q * q.log()).sum(1).mean())                    # CE = KL + H(q)
    assert torch.allclose(loss, ref, atol=1e-6)
    assert torch.allclose(logits, student(x))
    # at T = 1 against one-hot "teachers", it is the ordinary cross-entropy
    with pytest.raises(ValueError):
        temperature_objective(0.0)
    with pytest.raises(ValueError):
        distillation_objective(teacher, -1.0)
    with pytest.raises(TypeError):
        distillation_objective("teacher")
