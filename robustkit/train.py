"""Training and evaluation loops, progress bars and a checkpoint cache.

- :func:`fit` is one loop for every chapter: the *training objective* is a callable
  ``loss_fn(model, x, y)``, so adversarial training (seed 000 §5), noisy / Bayesian
  training (RSE, Adv-BNN) and robust losses plug in without a new loop.
- :func:`evaluate` and :func:`predict` run in eval mode and restore the caller's mode.
- :func:`progress_bar` decides how progress is shown (see its docstring).
- :class:`CheckpointCache` / :func:`cached_fit` train once and reload afterwards, keyed
  by a hash of the architecture, the data identity, the hyperparameters and the seed.

Used by: every chapter that trains a model (first defined in chapter 0, *Getting started*).
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import re
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, Iterable, Union

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = [
    "History",
    "fit",
    "evaluate",
    "predict",
    "cross_entropy_objective",
    "progress_bar",
    "CheckpointCache",
    "cached_fit",
    "checkpoint_dir",
    "PROGRESS_ENV",
    "CACHE_ENV",
    "RETRAIN_ENV",
]

PROGRESS_ENV = "ROBUSTKIT_PROGRESS"
CACHE_ENV = "ROBUSTKIT_CACHE"
RETRAIN_ENV = "ROBUSTKIT_RETRAIN"

Objective = Callable[[nn.Module, torch.Tensor, torch.Tensor],
                     Union[torch.Tensor, "tuple[torch.Tensor, torch.Tensor]"]]


# --------------------------------------------------------------------------- history
@dataclass
class History:
    """Per-epoch record of a :func:`fit` run.

    Lists have one entry per epoch. ``train_accuracy`` is ``nan`` when the objective
    returns no logits; ``val_*`` are empty without a validation loader. ``lines`` holds
    the one-line summary of each epoch (printed by :func:`fit` only if ``verbose``).
    """

    train_loss: list = field(default_factory=list)
    train_accuracy: list = field(default_factory=list)
    val_loss: list = field(default_factory=list)
    val_accuracy: list = field(default_factory=list)
    lr: list = field(default_factory=list)
    epoch_time: list = field(default_factory=list)
    lines: list = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.train_loss)

    @property
    def epochs(self) -> int:
        """Number of completed epochs."""
        return len(self.train_loss)

    @property
    def total_time(self) -> float:
        """Wall time of all epochs, in seconds."""
        return float(sum(self.epoch_time))

    def as_dict(self) -> dict:
        """Plain-python copy (lists of floats and strings): JSON- and ``weights_only``-safe."""
        return {f.name: list(getattr(self, f.name)) for f in fields(self)}

    @classmethod
    def from_dict(cls, d: dict) -> "History":
        """Inverse of :meth:`as_dict` (unknown keys are an error)."""
        if not isinstance(d, dict):
            raise TypeError(f"History.from_dict expects a dict, got {type(d).__name__}")
        names = {f.name for f in fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"unknown History fields: {sorted(unknown)}")
        return cls(**{k: list(v) for k, v in d.items()})


# --------------------------------------------------------------------------- progress
def _notebook_frontend() -> bool:
    """True when running in a Jupyter kernel that a live front end is displaying.

    A kernel started by a Jupyter server carries ``JPY_SESSION_NAME`` (jupyter_server
    >= 2); Colab and VS Code are recognised by their own markers. A kernel started by
    ``nbclient`` (``jupyter-book`` / ``jupyter nbconvert --execute``) has none of them.
    """
    ipython = sys.modules.get("IPython")
    if ipython is None:
        return False
    try:
        shell = ipython.get_ipython()
    except Exception:  # pragma: no cover - exotic IPython states
        return False
    if shell is None or not hasattr(shell, "kernel"):
        return False
    if "google.colab" in sys.modules:
        return True
    return any(os.environ.get(v) for v in ("JPY_SESSION_NAME", "VSCODE_PID"))


def _progress_mode(progress: bool | str) -> str:
    """Resolve ``progress`` to one of ``"off"``, ``"text"``, ``"widget"``."""
    if progress is False or progress is None:
        return "off"
    if progress is True:
        return "widget" if _notebook_frontend() else "text"
    if not isinstance(progress, str):
        raise TypeError(f"progress must be True, False or 'auto', got {progress!r}")
    mode = progress.strip().lower()
    if mode == "auto":
        mode = os.environ.get(PROGRESS_ENV, "auto").strip().lower() or "auto"
        if mode == "auto":
            if _notebook_frontend():
                return "widget"
            stream = sys.stderr
            return "text" if stream is not None and hasattr(stream, "isatty") and stream.isatty() else "off"
    aliases = {"off": "off", "none": "off", "0": "off", "false": "off", "text": "text",
               "1": "text", "true": "text", "widget": "widget", "notebook": "widget"}
    if mode not in aliases:
        raise ValueError(f"progress must be True, False, 'auto', 'text', 'widget' or 'off' "
                         f"(also via ${PROGRESS_ENV}), got {progress!r}")
    return aliases[mode]


def progress_bar(iterable: Iterable, *, progress: bool | str = "auto", desc: str | None = None,
                 total: int | None = None, leave: bool = False):
    """Wrap ``iterable`` in a tqdm bar suited to where the code runs.

    ``progress``:

    - ``"auto"`` (default): a widget bar (``tqdm.auto``) in a notebook displayed by a live
      front end (Jupyter server, Colab, VS Code); a text bar in a terminal; *no bar* when
      stderr is not a terminal (CI logs) or the notebook is executed headless by
      ``nbclient`` (jupyter-book, ``nbconvert --execute``), because both bar kinds
      leave junk in logs and in committed notebook outputs. ``$ROBUSTKIT_PROGRESS``
      (``off``, ``text``, ``widget``) overrides the automatic choice.
    - ``True``: always a bar (widget in a live notebook, text elsewhere);
    - ``False``: no bar; ``"text"`` / ``"widget"`` / ``"off"`` force a kind.

    Bars use ``leave=False`` by default: they vanish when done, and what remains is the
    result (e.g. :class:`History` lines). Returns the wrapped iterable (or ``iterable``
    itself when off). Used by :func:`fit`, :func:`evaluate` and the attack evaluators.
    """
    mode = _progress_mode(progress)
    if mode == "off":
        return iterable
    if mode == "widget":
        try:
            from tqdm.auto import tqdm as bar
        except ImportError:  # pragma: no cover - tqdm is a dependency
            return iterable
    else:
        from tqdm.std import tqdm as bar
    kwargs = dict(desc=desc, total=total, leave=leave, dynamic_ncols=True)
    if mode == "text":
        kwargs["mininterval"] = 0.5
    return bar(iterable, **kwargs)


# --------------------------------------------------------------------------- helpers
def _model_device(model: nn.Module) -> torch.device:
    for t in model.parameters():
        return t.device
    for t in model.buffers():
        return t.device
    return torch.device("cpu")


def _resolve_device(model: nn.Module, device) -> torch.device:
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if device is None:
        return _model_device(model)
    device = torch.device(device)
    model.to(device)
    return device


def _split_batch(batch) -> tuple[torch.Tensor, torch.Tensor]:
    if isinstance(batch, dict):
        try:
            return batch["images"], batch["labels"]
        except KeyError:
            raise ValueError("dict batches must have keys 'images' and 'labels', "
                             f"got {sorted(batch)}") from None
    if not isinstance(batch, (tuple, list)) or len(batch) < 2:
        raise ValueError("loaders must yield (images, labels) pairs, got "
                         f"{type(batch).__name__} of length {len(batch) if hasattr(batch, '__len__') else '?'}")
    return batch[0], batch[1]


def cross_entropy_objective(model: nn.Module, x: torch.Tensor, y: torch.Tensor):
    """The default training objective: mean cross-entropy of ``model(x)`` against ``y``.

    Returns ``(loss, logits)``. Any training objective has this signature
    ``loss_fn(model, x, y) -> loss`` or ``-> (loss, logits)``; the logits (of whatever
    inputs the objective used, e.g. adversarial ones) let :func:`fit` track accuracy.
    """
    logits = model(x)
    return F.cross_entropy(logits, y), logits


def _call_objective(loss_fn, model, x, y) -> tuple[torch.Tensor, torch.Tensor | None]:
    out = loss_fn(model, x, y)
    logits = None
    if isinstance(out, (tuple, list)):
        if len(out) != 2:
            raise ValueError(f"loss_fn must return loss or (loss, logits), got a "
                             f"{type(out).__name__} of length {len(out)}")
        out, logits = out
    if not isinstance(out, torch.Tensor) or out.numel() != 1:
        raise ValueError("loss_fn must return a scalar tensor loss (or (loss, logits)), got "
                         f"{type(out).__name__}{tuple(out.shape) if isinstance(out, torch.Tensor) else ''}")
    if logits is not None and (not isinstance(logits, torch.Tensor) or logits.ndim != 2
                               or logits.shape[0] != y.shape[0]):
        raise ValueError("the logits returned by loss_fn must have shape (batch, classes), got "
                         f"{tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__}")
    return out.reshape(()), logits


def _check_positive_int(value, name: str, allow_zero: bool = False) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < (0 if allow_zero else 1):
        raise ValueError(f"{name} must be a {'non-negative' if allow_zero else 'positive'} "
                         f"integer, got {value!r}")
    return int(value)


def _fmt(v: float) -> str:
    return "nan" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.4f}"


def _train_epoch(model, batches, objective, optimizer, dev, epoch) -> tuple[float, int, int, int]:
    """One pass over ``batches``: returns (sum of losses * batch sizes, n, correct, n scored)."""
    loss_sum = torch.zeros((), device=dev, dtype=torch.float64)
    correct = torch.zeros((), device=dev, dtype=torch.long)
    n_seen, n_scored = 0, 0
    for batch in batches:
        x, y = _split_batch(batch)
        x, y = x.to(dev, non_blocking=True), y.to(dev, non_blocking=True)
        optimizer.zero_grad(set_to_none=True)
        loss, logits = _call_objective(objective, model, x, y)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"non-finite training loss {loss.item()} at epoch {epoch} "
                                     "(learning rate too large?)")
        loss.backward()
        optimizer.step()
        bs = int(y.shape[0])
        loss_sum += loss.detach().double() * bs
        n_seen += bs
        if logits is not None:
            correct += (logits.detach().argmax(1) == y).sum()
            n_scored += bs
    if n_seen == 0:
        raise ValueError("train_loader yielded no batches (empty dataset?)")
    return float(loss_sum.item()), n_seen, int(correct.item()), n_scored


# --------------------------------------------------------------------------- fit
def fit(model: nn.Module, train_loader: Iterable, *, epochs: int, lr: float = 1e-3,
        optimizer: torch.optim.Optimizer | None = None, loss_fn: Objective | None = None,
        scheduler=None, device=None, val_loader: Iterable | None = None,
        progress: bool | str = "auto", desc: str | None = None, verbose: bool = False) -> History:
    """Train ``model`` by minibatch gradient descent on a training objective.

    Each step computes ``loss_fn(model, x, y)`` (default :func:`cross_entropy_objective`,
    i.e. empirical risk minimization with cross-entropy), back-propagates and steps the
    optimizer (default Adam with learning rate ``lr``). The objective may return
    ``(loss, logits)`` so training accuracy is tracked for free; adversarial training
    is ``loss_fn = lambda m, x, y: cross_entropy_objective(m, attack(m, x, y), y)``.

    ``scheduler`` is an LR scheduler bound to ``optimizer``, or a factory
    ``scheduler(optimizer) -> scheduler`` (handy when ``optimizer`` is the default);
    it is stepped once per epoch. The model is moved to ``device`` if given; batches
    follow the model's device. After each epoch ``val_loader`` (if any) is scored by
    :func:`evaluate`. The model is in train mode during fit and left in **eval mode**
    afterwards (training is over; stochastic defenses have their own switch).

    Returns a :class:`History`. ``progress`` as in :func:`progress_bar`; ``verbose``
    prints the one-line epoch summaries (also stored in ``History.lines``).

    Used by: every chapter that trains a classifier (seed 000 §7 for the MNIST convnet).
    """
    epochs = _check_positive_int(epochs, "epochs", allow_zero=True)
    dev = _resolve_device(model, device)
    if optimizer is None:
        if not (isinstance(lr, (int, float)) and lr > 0 and math.isfinite(lr)):
            raise ValueError(f"lr must be a positive number, got {lr!r}")
        params = [p for p in model.parameters() if p.requires_grad]
        if not params:
            raise ValueError("model has no trainable parameters")
        optimizer = torch.optim.Adam(params, lr=lr)
    elif not isinstance(optimizer, torch.optim.Optimizer):
        raise TypeError(f"optimizer must be a torch.optim.Optimizer, got {type(optimizer).__name__}")
    if scheduler is not None and not hasattr(scheduler, "step"):
        if not callable(scheduler):
            raise TypeError("scheduler must be an LR scheduler or a factory scheduler(optimizer)")
        scheduler = scheduler(optimizer)
    objective = loss_fn if loss_fn is not None else cross_entropy_objective
    if not callable(objective):
        raise TypeError(f"loss_fn must be callable(model, x, y), got {type(objective).__name__}")

    history = History()
    name = desc or type(model).__name__
    total = len(train_loader) if hasattr(train_loader, "__len__") else None
    for epoch in range(1, epochs + 1):
        model.train()
        start = time.perf_counter()
        batches = progress_bar(train_loader, progress=progress, total=total,
                               desc=f"{name} epoch {epoch}/{epochs}")
        try:
            loss_sum, n_seen, correct, n_scored = _train_epoch(model, batches, objective,
                                                               optimizer, dev, epoch)
        finally:
            if batches is not train_loader:  # close our bar, never the caller's iterable
                batches.close()
        history.lr.append(float(optimizer.param_groups[0]["lr"]))
        if scheduler is not None:
            scheduler.step()
        history.train_loss.append(loss_sum / n_seen)
        history.train_accuracy.append(correct / n_scored if n_scored else float("nan"))
        line = (f"{name} epoch {epoch}/{epochs}: loss {_fmt(history.train_loss[-1])}"
                f" acc {_fmt(history.train_accuracy[-1])}")
        if val_loader is not None:
            val = evaluate(model, val_loader, device=dev)
            history.val_loss.append(val["loss"])
            history.val_accuracy.append(val["accuracy"])
            line += f" | val loss {_fmt(val['loss'])} acc {_fmt(val['accuracy'])}"
        history.epoch_time.append(time.perf_counter() - start)
        line += f" | {history.epoch_time[-1]:.1f}s"
        history.lines.append(line)
        if verbose:
            print(line, flush=True)
    model.eval()
    return history


# --------------------------------------------------------------------------- evaluate / predict
def evaluate(model: nn.Module, loader: Iterable, device=None,
             loss_fn: Objective | None = None, progress: bool | str = False) -> dict:
    """Mean loss and accuracy of ``model`` over ``loader``: ``{"loss", "accuracy", "n"}``.

    Runs in eval mode and restores the caller's mode. With the default objective
    (cross-entropy) it runs without gradients. A custom ``loss_fn(model, x, y)`` (same
    signature as in :func:`fit`) runs with gradients enabled, so objectives that attack
    the input work; if it returns no logits, accuracy is scored on ``model(x)``. The loss
    is averaged with batch-size weights (objectives return batch means).

    Used by: every chapter reporting clean accuracy.
    """
    dev = _resolve_device(model, device)
    objective = loss_fn if loss_fn is not None else cross_entropy_objective
    was_training = model.training
    model.eval()
    loss_sum, correct, n = 0.0, 0, 0
    try:
        grad_ctx = torch.no_grad if loss_fn is None else torch.enable_grad
        with grad_ctx():
            for batch in progress_bar(loader, progress=progress, desc="evaluate"):
                x, y = _split_batch(batch)
                x, y = x.to(dev, non_blocking=True), y.to(dev, non_blocking=True)
                loss, logits = _call_objective(objective, model, x, y)
                if logits is None:
                    with torch.no_grad():
                        logits = model(x)
                loss_sum += float(loss.detach()) * y.shape[0]
                correct += int((logits.detach().argmax(1) == y).sum())
                n += int(y.shape[0])
    finally:
        model.train(was_training)
    if n == 0:
        raise ValueError("loader yielded no batches (empty dataset?)")
    return {"loss": loss_sum / n, "accuracy": correct / n, "n": n}


def predict(model: nn.Module, images, batch_size: int = 512, device=None) -> torch.Tensor:
    """Logits ``model(images)`` computed in batches, in eval mode and without gradients.

    ``images`` is a tensor (or array) ``(N, ...)``; the result ``(N, classes)`` is on the
    device of ``images``. The caller's train/eval mode is restored afterwards.

    Used by: every chapter (predictions for plots, confusion matrices, accuracies).
    """
    batch_size = _check_positive_int(batch_size, "batch_size")
    if not isinstance(images, torch.Tensor):
        try:
            images = torch.as_tensor(np.asarray(images), dtype=torch.float32)
        except Exception as exc:
            raise TypeError(f"images must be a tensor or array, got {type(images).__name__}") from exc
    if images.ndim < 2 or images.shape[0] == 0:
        raise ValueError(f"images must be a non-empty batch (N, ...), got shape {tuple(images.shape)}")
    dev = _resolve_device(model, device)
    was_training = model.training
    model.eval()
    outs = []
    try:
        with torch.no_grad():
            for start in range(0, images.shape[0], batch_size):
                xb = images[start:start + batch_size].to(dev, non_blocking=True)
                outs.append(model(xb).to(images.device))
    finally:
        model.train(was_training)
    return torch.cat(outs)


# --------------------------------------------------------------------------- checkpoint cache
def checkpoint_dir(cache_dir: str | os.PathLike | None = None) -> Path:
    """Folder of the checkpoint cache.

    ``cache_dir`` if given, else ``$ROBUSTKIT_CACHE/checkpoints``, else
    ``~/.cache/robustkit/checkpoints``. Not created here.
    """
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    root = os.environ.get(CACHE_ENV, "").strip()
    base = Path(root).expanduser() if root else Path.home() / ".cache" / "robustkit"
    return base / "checkpoints"


def _jsonable(obj):
    """Canonical JSON conversion for cache keys; refuse what has no stable text form."""
    if obj is None or isinstance(obj, (bool, int, str)):
        return obj
    if isinstance(obj, float):
        if not math.isfinite(obj):
            return repr(obj)
        return obj
    if isinstance(obj, np.generic):
        return _jsonable(obj.item())
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, dict):
        out = {}
        for k, v in obj.items():
            if not isinstance(k, str):
                raise TypeError(f"cache key dictionaries need string keys, got {k!r}")
            out[k] = _jsonable(v)
        return out
    if isinstance(obj, (torch.device, torch.dtype, Path)):
        return str(obj)
    raise TypeError(f"cache key values must be JSON-like (numbers, strings, lists, dicts), got "
                    f"{type(obj).__name__}: {obj!r}; pass a stable description instead")


def _truthy_env(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


class CheckpointCache:
    """Train once, reload afterwards: checkpoints keyed by a hash of the configuration.

    The key is the SHA-256 of the canonical JSON (sorted keys, no spaces) of

    - the architecture: the model's class, ``repr`` and the names, shapes and dtypes of
      its ``state_dict`` entries (so changing a layer or a width changes the key);
    - the caller's ``key`` dict: data identity (name, split, n, seed), hyperparameters
      (epochs, lr, batch size, objective ...) and the seed;
    - a format version.

    A checkpoint holds ``{"format", "key", "key_hash", "state_dict", "history"}``; it is
    written atomically (temporary file in the same folder, then ``os.replace``) and read
    with ``torch.load(..., weights_only=True)`` (no arbitrary code from pickles). A file
    that cannot be read or does not match its key is reported with a warning and
    retrained. Used by: every chapter that trains a model (through :func:`cached_fit`).
    """

    FORMAT = 1

    def __init__(self, cache_dir: str | os.PathLike | None = None) -> None:
        self.directory = checkpoint_dir(cache_dir)

    # -- keys
    def key_for(self, model: nn.Module, key: dict) -> tuple[str, dict]:
        """``(sha256 hex digest, full key dict)`` for ``model`` and the caller's ``key``."""
        if not isinstance(key, dict):
            raise TypeError(f"key must be a dict describing data, hyperparameters and seed, "
                            f"got {type(key).__name__}")
        if not isinstance(model, nn.Module):
            raise TypeError(f"expected an nn.Module, got {type(model).__name__}")
        arch = {
            "class": f"{type(model).__module__}.{type(model).__qualname__}",
            "repr": repr(model),
            "tensors": [[name, list(t.shape), str(t.dtype)] for name, t in model.state_dict().items()],
        }
        full = {"format": self.FORMAT, "model": arch, "key": _jsonable(key)}
        text = json.dumps(full, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
        return hashlib.sha256(text.encode("utf-8")).hexdigest(), full

    def path_for(self, model: nn.Module, key: dict) -> Path:
        """Checkpoint file of ``(model, key)``: ``<name>-<hash16>.pt`` in :attr:`directory`."""
        digest, _ = self.key_for(model, key)
        name = str(key.get("name") or type(model).__name__)
        slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._")[:60] or "model"
        return self.directory / f"{slug}-{digest[:16]}.pt"

    # -- load / save
    def load(self, model: nn.Module, key: dict) -> History | None:
        """Load the checkpoint of ``(model, key)`` into ``model``; its History, or ``None``.

        ``None`` when there is no checkpoint, or when it is unreadable or mismatched (a
        warning says so; the caller then retrains and overwrites it).
        """
        digest, _ = self.key_for(model, key)
        path = self.path_for(model, key)
        if not path.is_file():
            return None
        try:
            payload = torch.load(path, map_location="cpu", weights_only=True)
            if not isinstance(payload, dict) or payload.get("key_hash") != digest:
                raise ValueError("the file's key does not match (hash collision or foreign file)")
            if payload.get("format") != self.FORMAT:
                raise ValueError(f"unsupported checkpoint format {payload.get('format')!r}")
            history = History.from_dict(payload.get("history") or {})
            model.load_state_dict(payload["state_dict"], strict=True)
        except Exception as exc:  # any failure means: retrain
            warnings.warn(f"ignoring unreadable checkpoint {path} ({type(exc).__name__}: {exc}); "
                          "it will be retrained and overwritten", RuntimeWarning, stacklevel=2)
            return None
        return history

    def save(self, model: nn.Module, key: dict, history: History | dict | None = None) -> Path:
        """Write the checkpoint of ``(model, key)`` atomically; return its path."""
        digest, full = self.key_for(model, key)
        return self._save(model, digest, full, self.path_for(model, key), history)

    def _save(self, model: nn.Module, digest: str, full: dict, path: Path, history) -> Path:
        if isinstance(history, History):
            hist = history.as_dict()
        elif isinstance(history, dict):
            hist = History.from_dict(history).as_dict()
        elif history is None:
            hist = History().as_dict()
        else:
            raise TypeError(f"history must be a History, a dict or None, got {type(history).__name__}")
        state = {k: v.detach().to("cpu").clone() for k, v in model.state_dict().items()}
        payload = {"format": self.FORMAT, "key": full, "key_hash": digest,
                   "state_dict": state, "history": hist}
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as fh:
                torch.save(payload, fh)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
        return path

    # -- train or load
    def fit(self, build_model_fn: Callable[[], nn.Module], train_fn: Callable[[nn.Module], Any], *,
            key: dict, retrain: bool = False, device=None) -> tuple[nn.Module, History, bool]:
        """See :func:`cached_fit`."""
        if not callable(build_model_fn) or not callable(train_fn):
            raise TypeError("build_model_fn and train_fn must be callables")
        model = build_model_fn()
        if not isinstance(model, nn.Module):
            raise TypeError(f"build_model_fn must return an nn.Module, got {type(model).__name__}")
        if device is not None:
            model.to(torch.device(device))
        force = bool(retrain) or _truthy_env(RETRAIN_ENV)
        if not force:
            history = self.load(model, key)
            if history is not None:
                model.eval()
                return model, history, True
        # the key describes the fresh model (and a bad key fails before training)
        digest, full = self.key_for(model, key)
        path = self.path_for(model, key)
        result = train_fn(model)
        if isinstance(result, History):
            history = result
        elif isinstance(result, dict):
            history = History.from_dict(result)
        elif result is None:
            history = History()
        else:
            raise TypeError("train_fn must return a History, a History dict or None, "
                            f"got {type(result).__name__}")
        self._save(model, digest, full, path, history)
        model.eval()
        return model, history, False


def cached_fit(build_model_fn: Callable[[], nn.Module], train_fn: Callable[[nn.Module], Any], *,
               key: dict, cache_dir: str | os.PathLike | None = None, retrain: bool = False,
               device=None) -> tuple[nn.Module, History, bool]:
    """Build a model, then load its checkpoint if one matches, else train and save it.

    ``build_model_fn()`` returns a fresh model (seed inside it if initialization should
    be reproducible); ``train_fn(model)`` trains it in place and returns its
    :class:`History` (e.g. ``lambda m: fit(m, loader, epochs=3)``); ``key`` describes
    everything else that determines the weights: data identity (name, split, n, seed),
    hyperparameters and seed (JSON-like values only). The architecture is added to the
    key automatically (see :class:`CheckpointCache`). ``retrain=True`` or
    ``$ROBUSTKIT_RETRAIN=1`` forces training (and overwrites the checkpoint).

    Returns ``(model, history, loaded_from_cache)``; the model is in eval mode.
    Used by: every chapter that trains a model.
    """
    return CheckpointCache(cache_dir).fit(build_model_fn, train_fn, key=key,
                                          retrain=retrain, device=device)
