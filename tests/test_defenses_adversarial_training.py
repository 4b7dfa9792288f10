"""Adversarial-training objectives: adversarial points inside the ball and the box, the loss is the
loss at those points (or the clean mix), model modes and gradients intact, wiring to fit."""
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import robustkit as rk
from robustkit.defenses import AdversarialObjective, fast_fgsm_objective, pgd_training_objective


class _Net(nn.Module):
    """Tiny convnet with dropout (a stochastic layer in train mode) for 1x8x8 images."""

    def __init__(self, p=0.0):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3)
        self.drop = nn.Dropout(p)
        self.fc = nn.Linear(4 * 6 * 6, 3)

    def forward(self, x):
        return self.fc(self.drop(F.relu(self.conv(x)).flatten(1)))


def _data(n=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 1, 8, 8, generator=g), torch.randint(0, 3, (n,), generator=g)


class _Spy:
    """Attack factory that records what it was given and returns a fixed shift."""

    def __init__(self, shift=0.05):
        self.shift, self.calls = shift, []

    def __call__(self, model):
        def attack(x, y):
            self.calls.append((model, x.clone(), y.clone()))
            return (x + self.shift).clamp(0, 1)
        return attack


def test_objective_is_the_loss_at_the_attack_points():
    torch.manual_seed(0)
    model, (x, y) = _Net().eval(), _data()
    spy = _Spy()
    loss, logits = AdversarialObjective(spy)(model, x, y)
    assert len(spy.calls) == 1 and spy.calls[0][0] is model and torch.equal(spy.calls[0][1], x)
    x_adv = (x + 0.05).clamp(0, 1)
    assert torch.allclose(logits, model(x_adv))
    assert loss.item() == pytest.approx(F.cross_entropy(model(x_adv), y).item(), rel=1e-6)
    # clean mix (Goodfellow et al.): (1 - w) CE(adv) + w CE(clean)
    loss_mix, logits_mix = AdversarialObjective(spy, clean_weight=0.3)(model, x, y)
    expect = 0.7 * F.cross_entropy(model(x_adv), y) + 0.3 * F.cross_entropy(model(x), y)
    assert loss_mix.item() == pytest.approx(expect.item(), rel=1e-6)
    assert torch.allclose(logits_mix, model(x_adv), atol=1e-6)
    # the gradient flows to the parameters through the model only (adversarial points detached)
    loss.backward()
    assert all(p.grad is not None for p in model.parameters())


@pytest.mark.parametrize("norm,eps", [("linf", 0.1), ("l2", 0.5)])
def test_pgd_objective_points_inside_ball_and_box_and_stronger_than_clean(norm, eps):
    torch.manual_seed(1)
    model, (x, y) = _Net(p=0.5), _data(seed=1)
    model.train()
    model.drop.eval()                     # nested mode must survive the attack
    objective = pgd_training_objective(eps, norm=norm, steps=10)
    x_adv = objective.perturb(model, x, y)
    delta = (x_adv - x).flatten(1)
    size = delta.abs().amax(1) if norm == "linf" else delta.norm(dim=1)
    assert (size <= eps + 1e-6).all() and (size > 0).any()
    assert x_adv.min() >= 0 and x_adv.max() <= 1
    assert model.training and not model.drop.training and model.conv.training
    assert all(p.grad is None for p in model.parameters())        # the attack leaves no gradients
    with torch.no_grad():
        model.eval()
        clean = F.cross_entropy(model(x), y).item()
        adv = F.cross_entropy(model(x_adv), y).item()
    assert adv > clean


def test_fast_fgsm_defaults_and_ball():
    torch.manual_seed(2)
    model, (x, y) = _Net(), _data(seed=2)
    objective = fast_fgsm_objective(0.1)
    assert "alpha=0.125" in objective.description               # 1.25 eps (Wong et al. 2020)
    x_adv = objective.perturb(model, x, y)
    assert (x_adv - x).abs().max() <= 0.1 + 1e-6 and x_adv.min() >= 0 and x_adv.max() <= 1
    # random start: two calls give different points
    assert not torch.equal(x_adv, objective.perturb(model, x, y))
    # with alpha = 0 the step is void: the points are the (clipped) random start
    start_only = fast_fgsm_objective(0.1, alpha=1e-12).perturb(model, x, y)
    assert (start_only - x).abs().max() <= 0.1 + 1e-6


def test_eps_zero_is_standard_training():
    torch.manual_seed(3)
    model, (x, y) = _Net().eval(), _data(seed=3)
    for objective in (pgd_training_objective(0.0), fast_fgsm_objective(0.0)):
        loss, logits = objective(model, x, y)
        assert torch.equal(logits, model(x))
        assert loss.item() == pytest.approx(F.cross_entropy(model(x), y).item())


def test_fit_with_adversarial_objective_leaves_eval_mode_and_improves_robust_loss():
    torch.manual_seed(4)
    x, y = _data(n=64, seed=4)
    loader = rk.make_loader(x, y, batch_size=16, seed=0)
    model = _Net()
    objective = pgd_training_objective(0.1, steps=3)
    before = F.cross_entropy(model(objective.perturb(model, x, y)), y).item()
    hist = rk.fit(model, loader, epochs=15, lr=1e-2, loss_fn=objective, progress=False)
    after = F.cross_entropy(model(objective.perturb(model, x, y)), y).item()
    assert not model.training and len(hist.train_loss) == 15
    assert after < before


def test_bad_inputs():
    with pytest.raises(ValueError):
        pgd_training_objective(-0.1)
    with pytest.raises(ValueError):
        pgd_training_objective(0.1, norm="l3")
    with pytest.raises(ValueError):
        pgd_training_objective(0.1, steps=0)
    with pytest.raises(ValueError):
        fast_fgsm_objective(0.1, alpha=-1.0)
    with pytest.raises(ValueError):
        AdversarialObjective(None, clean_weight=1.5)
    with pytest.raises(TypeError):
        AdversarialObjective("pgd")
    model, (x, y) = _Net(), _data()
    with pytest.raises(ValueError):
        pgd_training_objective(0.1)(model, x * 2, y)               # outside [0, 1]
    with pytest.raises(ValueError):
        pgd_training_objective(0.1)(model, x, y[:3])
    bad = AdversarialObjective(lambda m: (lambda xx, yy: xx[:2]))
    with pytest.raises(ValueError):
        bad(model, x, y)
