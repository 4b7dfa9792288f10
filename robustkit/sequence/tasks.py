"""Small sequence tasks where position matters, and their metrics.

- :func:`lag_copy` (synthetic): at each position ``i`` predict the token seen ``lag``
  positions earlier. A model without position information cannot tell where ``i - lag``
  is (it is permutation equivariant, seed 003 §4.1.2), so it stays near chance; lengths
  vary, so a model trained on short sequences can be tested on long ones (the "short to
  long" experiment of seed 003 Fig. 4.2).
- :func:`image_rows` / :func:`pad_rows` (real data): an image read as the sequence of its
  rows; blank rows added above or below change the sequence length and shift positions.
- :func:`pad_front`: insert masked padding before a token sequence (positions shift, the
  content does not): an unadversarial shift of the input.
- :func:`token_cross_entropy`, :func:`token_accuracy`, :func:`accuracy_by_length`.

Used by: chapter 9, *Learning to encode position*.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["IGNORE", "lag_copy", "pad_front", "token_cross_entropy", "token_accuracy",
           "accuracy_by_length", "image_rows", "pad_rows"]

IGNORE = -100  # target value of positions that are not scored (cross_entropy's ignore_index)


def _check_int(value, name: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def lag_copy(n: int, min_len: int, max_len: int, vocab: int = 8, lag: int = 2,
             seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` sequences of the lag-copy task: ``(tokens (n, max_len), targets (n, max_len))``.

    Lengths are uniform in ``[min_len, max_len]``; tokens are uniform in ``0..vocab-1`` and
    the padding id is ``vocab`` (so a model needs ``vocab + 1`` token ids). The target at
    position ``i`` (0-based) is ``tokens[i - lag]`` for ``lag <= i < length`` and
    :data:`IGNORE` elsewhere. Chance level is ``1 / vocab``. Seeded by ``seed``. Chapter 9.
    """
    n, vocab = _check_int(n, "n"), _check_int(vocab, "vocab", 2)
    lag = _check_int(lag, "lag")
    min_len, max_len = _check_int(min_len, "min_len"), _check_int(max_len, "max_len")
    if not lag < min_len <= max_len:
        raise ValueError(f"need lag < min_len <= max_len, got lag={lag}, min_len={min_len}, max_len={max_len}")
    g = torch.Generator().manual_seed(int(seed))
    lengths = torch.randint(min_len, max_len + 1, (n,), generator=g)
    tokens = torch.randint(0, vocab, (n, max_len), generator=g)
    pos = torch.arange(max_len)
    real = pos[None, :] < lengths[:, None]
    tokens = torch.where(real, tokens, torch.full_like(tokens, vocab))
    targets = torch.full_like(tokens, IGNORE)
    targets[:, lag:] = tokens[:, :-lag]
    targets = torch.where(real & (pos[None, :] >= lag), targets, torch.full_like(targets, IGNORE))
    return tokens, targets


def pad_front(tokens: torch.Tensor, targets: torch.Tensor, k: int, pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Insert ``k`` padding tokens before every sequence (their targets are ignored).

    With a padding mask the content the model may attend to is unchanged, only the
    positions move by ``k``: an *unadversarial* shift (seed 003 §4.1). Chapter 9.
    """
    k = _check_int(k, "k", 0)
    if tokens.shape != targets.shape or tokens.ndim != 2:
        raise ValueError("tokens and targets must both have shape (N, L)")
    pads = torch.full((tokens.shape[0], k), pad_id, dtype=tokens.dtype, device=tokens.device)
    ignore = torch.full((tokens.shape[0], k), IGNORE, dtype=targets.dtype, device=targets.device)
    return torch.cat([pads, tokens], 1), torch.cat([ignore, targets], 1)


def token_cross_entropy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy over scored positions (targets != :data:`IGNORE`).

    An objective for :func:`robustkit.train.fit` with per-position logits ``(B, L, C)``.
    Chapter 9.
    """
    logits = model(x)
    return F.cross_entropy(logits.flatten(0, 1), y.flatten(), ignore_index=IGNORE)


@torch.no_grad()
def token_accuracy(model: nn.Module, tokens: torch.Tensor, targets: torch.Tensor, offset: int = 0,
                   batch_size: int = 256) -> float:
    """Fraction of scored positions predicted right (eval mode, caller's mode restored). Chapter 9."""
    if tokens.shape != targets.shape:
        raise ValueError("tokens and targets must have the same shape")
    was = model.training
    model.eval()
    device = next(model.parameters()).device
    correct, total = 0, 0
    try:
        for s in range(0, tokens.shape[0], batch_size):
            x = tokens[s:s + batch_size].to(device)
            y = targets[s:s + batch_size].to(device)
            pred = model(x, offset=offset).argmax(-1)
            keep = y != IGNORE
            correct += int((pred[keep] == y[keep]).sum())
            total += int(keep.sum())
    finally:
        model.train(was)
    if total == 0:
        raise ValueError("no scored position")
    return correct / total


def accuracy_by_length(model: nn.Module, bins, n_per_bin: int, vocab: int, lag: int, seed: int = 0) -> list[float]:
    """Token accuracy of ``model`` on fresh lag-copy sequences for each length bin ``[lo, hi]``.

    The "short to long" evaluation of seed 003 Fig. 4.2 (there BLEU per source-length bin).
    Chapter 9.
    """
    out = []
    for b, (lo, hi) in enumerate(bins):
        tokens, targets = lag_copy(n_per_bin, lo, hi, vocab=vocab, lag=lag, seed=seed + 1000 * (b + 1))
        out.append(token_accuracy(model, tokens, targets))
    return out


def image_rows(images: torch.Tensor) -> torch.Tensor:
    """Read images ``(N, 1, H, W)`` in ``[0, 1]`` as sequences of ``H`` rows ``(N, H, W)``. Chapter 9."""
    if not isinstance(images, torch.Tensor) or images.ndim != 4 or images.shape[1] != 1:
        raise ValueError("images must be a tensor (N, 1, H, W) of gray-scale images")
    return images[:, 0]


def pad_rows(rows: torch.Tensor, top: int = 0, bottom: int = 0, value: float = 0.0) -> torch.Tensor:
    """Add ``top`` / ``bottom`` blank rows to row sequences ``(N, H, W)``: longer, shifted inputs. Chapter 9."""
    top, bottom = _check_int(top, "top", 0), _check_int(bottom, "bottom", 0)
    if rows.ndim != 3:
        raise ValueError(f"rows must have shape (N, H, W), got {tuple(rows.shape)}")
    return F.pad(rows, (0, 0, top, bottom), value=value)
