"""robustkit.modes: eval_mode restores nested training flags, stochastic switches stay separate."""
import pytest
import torch
import torch.nn as nn

from robustkit.modes import (StochasticModule, eval_mode, set_stochastic, stochastic, training_states)


class Noise(StochasticModule):
    def __init__(self, sigma=1.0):
        super().__init__()
        self.sigma = sigma

    def forward(self, x):
        return x + self.sigma * torch.randn_like(x) if self.stochastic else x


def nested():
    inner = nn.Sequential(nn.Linear(3, 3), nn.Dropout(0.5), Noise())
    return nn.Sequential(nn.Linear(3, 3), nn.BatchNorm1d(3), inner, Noise(), nn.Dropout(0.5))


def test_eval_mode_restores_nested_flags():
    m = nested()
    m.train()
    m[2].eval()           # the caller keeps one subtree in eval ...
    m[2][1].train()       # ... except one dropout layer (MC dropout)
    before = training_states(m)
    with eval_mode(m):
        assert not any(mod.training for mod in m.modules())
    assert training_states(m) == before
    assert m[2][1].training and not m[2].training and m.training


def test_eval_mode_restores_on_exception():
    m = nested()
    m.train()
    before = training_states(m)
    with pytest.raises(RuntimeError):
        with eval_mode(m):
            raise RuntimeError("boom")
    assert training_states(m) == before


def test_stochastic_is_independent_of_training():
    m = nested()
    x = torch.ones(4, 3)
    with eval_mode(m):   # eval() does not switch the noise off
        assert not torch.equal(m(x), m(x))
        with stochastic(m, False):
            assert torch.equal(m(x), m(x))
        assert not torch.equal(m(x), m(x))


def test_set_stochastic_returns_previous_states():
    m = nested()
    m[3].stochastic = False
    prev = set_stochastic(m, False)
    assert prev == {"2.2": True, "3": False}
    assert not m[2][2].stochastic and not m[3].stochastic
    with stochastic(m, True):
        assert m[2][2].stochastic and m[3].stochastic
    assert not m[2][2].stochastic


def test_bad_inputs():
    with pytest.raises(TypeError):
        set_stochastic("not a module", True)
    with pytest.raises(TypeError):
        set_stochastic(nested(), 1)
    with pytest.raises(TypeError):
        Noise().__class__.__init__(Noise(), stochastic="yes")
    with pytest.raises(TypeError):
        with eval_mode(3):
            pass
