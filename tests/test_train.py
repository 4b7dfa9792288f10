"""Tests of robustkit.train: fit / evaluate / predict, progress bars and the checkpoint cache."""
import hashlib
import json
import os
import warnings

import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

import robustkit.train as rt
from robustkit.models import DenseMLP
from robustkit.train import (CheckpointCache, History, cached_fit, checkpoint_dir,
                             cross_entropy_objective, evaluate, fit, predict, progress_bar)


def blobs(n=400, seed=0):
    """Two Gaussian blobs as 1x8x8 images in [0, 1]: class 1 is brighter on the left half."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 2, (n,), generator=g)
    x = 0.5 + 0.1 * torch.randn(n, 1, 8, 8, generator=g)
    x[:, :, :, :4] += (2 * y.float() - 1).view(-1, 1, 1, 1) * 0.05
    return x.clamp(0, 1), y


def loader(x, y, batch_size=50, shuffle=True, seed=0):
    return DataLoader(TensorDataset(x, y), batch_size=batch_size, shuffle=shuffle,
                      generator=torch.Generator().manual_seed(seed))


def small_model(hidden=(16,)):
    torch.manual_seed(0)
    return DenseMLP(in_shape=(1, 8, 8), hidden=hidden, num_classes=2, mean=0.5, std=0.2)


# --------------------------------------------------------------------------- fit
def test_fit_learns_separable_blobs():
    x, y = blobs(400, seed=0)
    xt, yt = blobs(400, seed=1)
    model = small_model()
    hist = fit(model, loader(x, y), epochs=5, lr=1e-2, val_loader=loader(xt, yt, shuffle=False),
               progress=False)
    assert isinstance(hist, History) and len(hist) == 5
    assert hist.train_loss[-1] < hist.train_loss[0]
    assert hist.val_accuracy[-1] > 0.95
    assert evaluate(model, loader(xt, yt, shuffle=False))["accuracy"] > 0.95
    assert not model.training  # fit leaves the model in eval mode
    d = hist.as_dict()
    assert set(d) == {"train_loss", "train_accuracy", "val_loss", "val_accuracy", "lr",
                      "epoch_time", "lines"}
    assert all(len(v) == 5 for v in d.values())
    assert History.from_dict(d) == hist
    json.dumps(d)  # plain python


def test_custom_objective_is_called_and_may_omit_logits():
    x, y = blobs(120)
    calls = []

    def objective(model, xb, yb):
        calls.append(xb.shape[0])
        return F.cross_entropy(model(xb), yb)  # loss only: no accuracy tracking

    hist = fit(small_model(), loader(x, y, batch_size=40), epochs=2, loss_fn=objective, progress=False)
    assert calls == [40, 40, 40] * 2
    assert all(v != v for v in hist.train_accuracy)  # nan


def test_objective_logits_drive_training_accuracy():
    x, y = blobs(100)
    # an objective reporting constant class-0 logits: accuracy = fraction of class 0
    def objective(model, xb, yb):
        logits = model(xb)
        fake = torch.zeros_like(logits)
        fake[:, 0] = 1
        return F.cross_entropy(logits, yb), fake

    hist = fit(small_model(), loader(x, y), epochs=1, loss_fn=objective, progress=False)
    assert hist.train_accuracy[0] == pytest.approx((y == 0).float().mean().item())


def test_fit_verbose_prints_one_line_per_epoch(capsys):
    x, y = blobs(60)
    hist = fit(small_model(), loader(x, y), epochs=3, progress=False, verbose=True, desc="toy")
    out = capsys.readouterr()
    lines = out.out.strip().splitlines()
    assert lines == hist.lines and len(lines) == 3
    assert lines[0].startswith("toy epoch 1/3: loss")
    assert out.err == ""  # no progress bar output
    fit(small_model(), loader(x, y), epochs=1, progress=False)
    assert capsys.readouterr().out == ""  # quiet by default


def test_scheduler_factory_and_custom_optimizer():
    x, y = blobs(60)
    model = small_model()
    hist = fit(model, loader(x, y), epochs=3, lr=0.1, progress=False,
               scheduler=lambda opt: torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5))
    assert hist.lr == pytest.approx([0.1, 0.05, 0.025])
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.1)
    hist = fit(model, loader(x, y), epochs=2, optimizer=opt, scheduler=sched, progress=False)
    assert hist.lr == pytest.approx([0.01, 0.001])


def test_fit_bad_inputs():
    x, y = blobs(40)
    with pytest.raises(ValueError, match="epochs"):
        fit(small_model(), loader(x, y), epochs=-1)
    with pytest.raises(ValueError, match="no batches"):
        fit(small_model(), [], epochs=1, progress=False)
    with pytest.raises(ValueError, match="scalar"):
        fit(small_model(), loader(x, y), epochs=1, progress=False,
            loss_fn=lambda m, xb, yb: F.cross_entropy(m(xb), yb, reduction="none"))
    with pytest.raises(ValueError, match="pairs"):
        fit(small_model(), [x], epochs=1, progress=False)
    with pytest.raises(ValueError, match="lr"):
        fit(small_model(), loader(x, y), epochs=1, lr=-1.0)
    with pytest.raises(TypeError, match="Module"):
        fit("model", loader(x, y), epochs=1)
    with pytest.raises(FloatingPointError):
        fit(small_model(), loader(x, y), epochs=1, progress=False,
            loss_fn=lambda m, xb, yb: m(xb).sum() * float("nan"))


def test_fit_zero_epochs_returns_empty_history():
    x, y = blobs(20)
    hist = fit(small_model(), loader(x, y), epochs=0, progress=False)
    assert len(hist) == 0


# --------------------------------------------------------------------------- evaluate / predict
def test_evaluate_matches_manual_accuracy_and_loss():
    x, y = blobs(130)
    model = small_model()
    res = evaluate(model, loader(x, y, batch_size=32, shuffle=False))
    with torch.no_grad():
        logits = model.eval()(x)
    assert res["n"] == 130
    assert res["accuracy"] == pytest.approx((logits.argmax(1) == y).float().mean().item())
    assert res["loss"] == pytest.approx(F.cross_entropy(logits, y).item(), rel=1e-5)


def test_evaluate_custom_objective_with_gradients_and_mode_restored():
    x, y = blobs(64)
    model = small_model().train()

    def objective(m, xb, yb):  # needs input gradients (like an attack inside the objective)
        xb = xb.clone().requires_grad_(True)
        loss = F.cross_entropy(m(xb), yb)
        (g,) = torch.autograd.grad(loss, xb)
        assert not m.training
        return F.cross_entropy(m((xb + 0.0 * g).detach()), yb)

    res = evaluate(model, loader(x, y, shuffle=False), loss_fn=objective)
    assert model.training
    assert 0 <= res["accuracy"] <= 1 and res["n"] == 64
    with pytest.raises(ValueError, match="no batches"):
        evaluate(model, [])


@pytest.mark.parametrize("mode", [True, False])
def test_predict_restores_mode_and_matches_eval_forward(mode):
    model = DenseMLP(in_shape=(1, 8, 8), hidden=(16,), num_classes=3, dropout=0.5, mean=0.5, std=0.2)
    model.train(mode)
    x = torch.rand(37, 1, 8, 8)
    logits = predict(model, x, batch_size=10)
    assert model.training is mode
    with torch.no_grad():
        ref = model.eval()(x)
    torch.testing.assert_close(logits, ref)
    assert logits.device == x.device and not logits.requires_grad
    torch.testing.assert_close(predict(model, x.numpy(), batch_size=100), ref)  # arrays accepted
    with pytest.raises(ValueError, match="non-empty"):
        predict(model, torch.rand(0, 1, 8, 8))
    with pytest.raises(ValueError, match="batch_size"):
        predict(model, x, batch_size=0)


# --------------------------------------------------------------------------- progress bars
def test_progress_modes(monkeypatch):
    items = [1, 2, 3]
    monkeypatch.delenv(rt.PROGRESS_ENV, raising=False)
    assert progress_bar(items, progress=False) is items
    # under pytest stderr is captured (not a terminal) and there is no notebook front end
    assert rt._progress_mode("auto") == "off"
    assert progress_bar(items, progress="auto") is items
    bar = progress_bar(items, progress=True)
    from tqdm.std import tqdm
    assert isinstance(bar, tqdm) and list(bar) == items
    monkeypatch.setenv(rt.PROGRESS_ENV, "text")
    assert rt._progress_mode("auto") == "text"
    monkeypatch.setenv(rt.PROGRESS_ENV, "off")
    assert rt._progress_mode("auto") == "off"
    assert rt._progress_mode(True) == "text"  # explicit True beats the variable
    monkeypatch.setenv(rt.PROGRESS_ENV, "sparkles")
    with pytest.raises(ValueError, match="progress"):
        rt._progress_mode("auto")
    with pytest.raises(TypeError):
        rt._progress_mode(3)


def test_fit_with_text_progress_bar_leaves_no_bar(capsys):
    x, y = blobs(60)
    fit(small_model(), loader(x, y), epochs=1, progress="text")
    err = capsys.readouterr().err
    assert "epoch 1/1" in err  # the bar was drawn to stderr (and cleared: leave=False)


# --------------------------------------------------------------------------- checkpoint cache
class Counter:
    def __init__(self, x, y, epochs=2):
        self.calls, self.x, self.y, self.epochs = 0, x, y, epochs

    def __call__(self, model):
        self.calls += 1
        return fit(model, loader(self.x, self.y), epochs=self.epochs, lr=1e-2, progress=False)


KEY = {"name": "toy mlp", "data": {"name": "blobs", "split": "train", "n": 80, "seed": 0},
       "epochs": 2, "lr": 1e-2, "seed": 0}


def test_cache_second_call_loads_without_training(tmp_path):
    x, y = blobs(80)
    train = Counter(x, y)
    m1, h1, loaded1 = cached_fit(small_model, train, key=KEY, cache_dir=tmp_path)
    assert (train.calls, loaded1) == (1, False)
    files = os.listdir(tmp_path)
    assert len(files) == 1 and files[0].startswith("toy_mlp-") and files[0].endswith(".pt")
    m2, h2, loaded2 = cached_fit(lambda: small_model(), train, key=dict(reversed(list(KEY.items()))),
                                 cache_dir=tmp_path)
    assert (train.calls, loaded2) == (1, True)
    assert h2 == h1 and not m2.training
    for (k, a), (_, b) in zip(m1.state_dict().items(), m2.state_dict().items()):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=k)
    # the fresh model had different (initial) weights: loading really replaced them
    assert not torch.equal(small_model().state_dict()["net.1.weight"], m2.state_dict()["net.1.weight"])


def test_cache_key_changes_with_hyperparameters_data_and_architecture(tmp_path):
    cache = CheckpointCache(tmp_path)
    model = small_model()
    base, _ = cache.key_for(model, KEY)
    assert cache.key_for(small_model(), dict(KEY))[0] == base  # stable
    assert cache.key_for(model, {**KEY, "lr": 2e-2})[0] != base
    assert cache.key_for(model, {**KEY, "data": {**KEY["data"], "n": 81}})[0] != base
    assert cache.key_for(small_model(hidden=(17,)), KEY)[0] != base
    assert cache.key_for(DenseMLP(in_shape=(1, 8, 8), hidden=(16,), num_classes=2, mean=0.4, std=0.2),
                         KEY)[0] != base  # normalization constants are part of the architecture
    digest, full = cache.key_for(model, KEY)
    canonical = json.dumps(full, sort_keys=True, separators=(",", ":"))
    assert digest == hashlib.sha256(canonical.encode()).hexdigest()
    assert cache.path_for(model, KEY) != cache.path_for(model, {**KEY, "lr": 2e-2})


def test_cache_retrain_flag_and_environment(tmp_path, monkeypatch):
    monkeypatch.delenv(rt.RETRAIN_ENV, raising=False)
    x, y = blobs(80)
    train = Counter(x, y, epochs=1)
    cached_fit(small_model, train, key=KEY, cache_dir=tmp_path)
    _, _, loaded = cached_fit(small_model, train, key=KEY, cache_dir=tmp_path, retrain=True)
    assert train.calls == 2 and not loaded
    monkeypatch.setenv(rt.RETRAIN_ENV, "1")
    _, _, loaded = cached_fit(small_model, train, key=KEY, cache_dir=tmp_path)
    assert train.calls == 3 and not loaded
    monkeypatch.setenv(rt.RETRAIN_ENV, "0")
    _, _, loaded = cached_fit(small_model, train, key=KEY, cache_dir=tmp_path)
    assert train.calls == 3 and loaded


def test_cache_corrupt_file_is_retrained(tmp_path):
    x, y = blobs(80)
    train = Counter(x, y, epochs=1)
    cached_fit(small_model, train, key=KEY, cache_dir=tmp_path)
    path = CheckpointCache(tmp_path).path_for(small_model(), KEY)
    path.write_bytes(path.read_bytes()[:100])  # truncated download / interrupted copy
    with pytest.warns(RuntimeWarning, match="unreadable checkpoint"):
        _, _, loaded = cached_fit(small_model, train, key=KEY, cache_dir=tmp_path)
    assert train.calls == 2 and not loaded
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _, _, loaded = cached_fit(small_model, train, key=KEY, cache_dir=tmp_path)
    assert loaded and train.calls == 2


def test_cache_uses_weights_only_and_atomic_writes(tmp_path, monkeypatch):
    x, y = blobs(80)
    train = Counter(x, y, epochs=1)
    cached_fit(small_model, train, key=KEY, cache_dir=tmp_path)
    path = CheckpointCache(tmp_path).path_for(small_model(), KEY)
    payload = torch.load(path, weights_only=True)  # loadable without unpickling code
    assert set(payload) == {"format", "key", "key_hash", "state_dict", "history"}
    assert payload["key"]["key"]["data"]["name"] == "blobs"

    seen = {}
    real_load = torch.load

    def spy_load(*args, **kwargs):
        seen.update(kwargs)
        return real_load(*args, **kwargs)

    monkeypatch.setattr(torch, "load", spy_load)
    cached_fit(small_model, train, key=KEY, cache_dir=tmp_path)
    assert seen.get("weights_only") is True

    # a crash while writing leaves neither a temporary file nor a half-written checkpoint
    def broken_save(obj, f, *a, **k):
        f.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        cached_fit(small_model, train, key={**KEY, "lr": 0.5}, cache_dir=tmp_path)
    assert os.listdir(tmp_path) == [path.name]


def test_cache_directory_from_environment(tmp_path, monkeypatch):
    monkeypatch.setenv(rt.CACHE_ENV, str(tmp_path / "root"))
    assert checkpoint_dir() == tmp_path / "root" / "checkpoints"
    monkeypatch.delenv(rt.CACHE_ENV)
    assert checkpoint_dir().parts[-3:] == (".cache", "robustkit", "checkpoints")
    assert checkpoint_dir(tmp_path) == tmp_path


def test_cache_bad_inputs_fail_before_training(tmp_path):
    x, y = blobs(40)
    train = Counter(x, y, epochs=1)
    with pytest.raises(TypeError, match="JSON-like"):
        cached_fit(small_model, train, key={"transform": object()}, cache_dir=tmp_path)
    with pytest.raises(TypeError, match="dict"):
        cached_fit(small_model, train, key="mlp", cache_dir=tmp_path)
    with pytest.raises(TypeError, match="nn.Module"):
        cached_fit(lambda: "model", train, key=KEY, cache_dir=tmp_path)
    assert train.calls == 0
    with pytest.raises(TypeError, match="History"):
        cached_fit(small_model, lambda m: 42, key=KEY, cache_dir=tmp_path)


def test_cache_train_fn_may_return_none(tmp_path):
    model, hist, loaded = cached_fit(small_model, lambda m: None, key=KEY, cache_dir=tmp_path)
    assert len(hist) == 0 and not loaded
    _, hist2, loaded2 = cached_fit(small_model, lambda m: None, key=KEY, cache_dir=tmp_path)
    assert loaded2 and len(hist2) == 0


def test_cross_entropy_objective_returns_loss_and_logits():
    model = small_model()
    x, y = blobs(10)
    loss, logits = cross_entropy_objective(model, x, y)
    torch.testing.assert_close(loss, F.cross_entropy(model(x), y))
    assert logits.shape == (10, 2)


def test_device_argument_moves_model_and_batches_follow():
    x, y = blobs(40)
    model = small_model()
    fit(model, loader(x, y), epochs=1, device="cpu", progress=False)
    assert next(model.parameters()).device.type == "cpu"
    if torch.cuda.is_available():  # pragma: no cover - exercised on GPU machines
        fit(model, loader(x, y), epochs=1, device="cuda", progress=False)
        assert next(model.parameters()).is_cuda
        assert predict(model, x).device == x.device
