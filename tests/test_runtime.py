"""robustkit.runtime: budgets read once from the environment, seeding, device choice."""
import random

import numpy as np
import pytest
import torch

from robustkit import runtime


@pytest.fixture
def fresh_budget():
    runtime.get_budget.cache_clear()
    yield runtime.get_budget
    runtime.get_budget.cache_clear()


@pytest.mark.parametrize("name", ["smoke", "cpu", "gpu", " CPU "])
def test_budget_from_environment(monkeypatch, fresh_budget, name):
    monkeypatch.setenv("ROBUSTKIT_BUDGET", name)
    assert fresh_budget().name == name.strip().lower()


def test_budget_is_read_once(monkeypatch, fresh_budget):
    monkeypatch.setenv("ROBUSTKIT_BUDGET", "smoke")
    first = fresh_budget()
    monkeypatch.setenv("ROBUSTKIT_BUDGET", "gpu")
    assert fresh_budget() is first


def test_default_budget_follows_cuda(monkeypatch, fresh_budget):
    monkeypatch.delenv("ROBUSTKIT_BUDGET", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert fresh_budget().name == "cpu"
    fresh_budget.cache_clear()
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert fresh_budget().name == "gpu"


def test_unknown_budget_is_a_clear_error(monkeypatch, fresh_budget):
    monkeypatch.setenv("ROBUSTKIT_BUDGET", "huge")
    with pytest.raises(ValueError, match="smoke, cpu, gpu"):
        fresh_budget()


def test_budgets_grow_from_smoke_to_gpu():
    smoke, cpu, gpu = (runtime.make_budget(n) for n in ("smoke", "cpu", "gpu"))
    for field in ("epochs", "attack_steps", "eot_samples", "ensemble_size", "n_projections", "n_seeds"):
        assert getattr(smoke, field) <= getattr(cpu, field) <= getattr(gpu, field), field
    assert smoke.subset(60_000) < cpu.subset(60_000) <= gpu.subset(60_000) == 60_000


def test_pick_subset_and_overrides():
    b = runtime.make_budget("cpu", epochs=7)
    assert b.epochs == 7 and b.pick(smoke=1, cpu=2, gpu=3) == 2
    assert b.subset(100, "test") == 100
    with pytest.raises(ValueError):
        b.subset(100, "validation")
    with pytest.raises(TypeError):
        runtime.make_budget("cpu", not_a_field=1)
    assert b.as_dict()["epochs"] == 7


def test_seed_everything_reproduces_all_generators():
    def draw():
        return random.random(), np.random.rand(), torch.rand(3)

    runtime.seed_everything(123)
    a = draw()
    runtime.seed_everything(123)
    b = draw()
    assert a[0] == b[0] and a[1] == b[1] and torch.equal(a[2], b[2])
    g = runtime.seed_everything(5)
    assert torch.equal(torch.rand(2, generator=g), torch.rand(2, generator=torch.Generator().manual_seed(5)))
    assert torch.backends.cudnn.deterministic


@pytest.mark.parametrize("bad", [-1, 1.5, "3"])
def test_seed_rejects_bad_values(bad):
    with pytest.raises(ValueError):
        runtime.seed_everything(bad)


def test_device_choice(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert runtime.get_device().type in ("cpu", "mps")
    assert runtime.get_device("cpu") == torch.device("cpu")
    with pytest.raises(RuntimeError, match="CUDA"):
        runtime.get_device("cuda")
