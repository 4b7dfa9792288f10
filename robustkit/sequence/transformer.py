"""A small transformer encoder whose position encoders plug into every block or the input.

:class:`TransformerBlock` is a hand-written post-norm encoder layer with the parameter
names and the arithmetic of ``torch.nn.TransformerEncoderLayer`` (ReLU, ``batch_first``),
plus one extra input: position-dependent biases added to the queries, keys and values,
which the compatible FLOATER needs (seed 003 eq. 4.12). :class:`SequenceTransformer`
stacks ``N`` of them (eq. 4.1-4.5): an additive encoder ``p^(n)`` is added before block
``n`` (``Phi_n(x) = x + p^(n)``, eq. 4.5) for every block it covers (``n_blocks = N``:
every block, ``n_blocks = 1``: input block only, Table 4.2).

Used by: chapter 9, *Learning to encode position*.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .encoders import PositionEncoder

__all__ = ["TransformerBlock", "SequenceTransformer", "warm_start"]


def _check_int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


class _SelfAttention(nn.Module):
    """Multi-head self-attention with ``nn.MultiheadAttention``'s parameter names."""

    def __init__(self, d_model: int, n_heads: int) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.in_proj_weight = nn.Parameter(torch.empty(3 * d_model, d_model))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * d_model))
        self.out_proj = nn.Linear(d_model, d_model)
        nn.init.xavier_uniform_(self.in_proj_weight)
        nn.init.zeros_(self.out_proj.bias)

    def forward(self, x, qkv_bias=None, padding_mask=None):
        b, length, d = x.shape
        qkv = F.linear(x, self.in_proj_weight, self.in_proj_bias)       # (B, L, 3d), eq. 4.3
        if qkv_bias is not None:                                         # eq. 4.12: + b_{q,i}
            qkv = qkv + qkv_bias
        q, k, v = qkv.view(b, length, 3, self.n_heads, d // self.n_heads).permute(2, 0, 3, 1, 4)
        mask = None
        if padding_mask is not None:
            mask = (~padding_mask)[:, None, None, :]                     # True = attend
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self.out_proj(out.transpose(1, 2).reshape(b, length, d))


class TransformerBlock(nn.Module):
    """One post-norm transformer encoder block ``B_n = F_n o A_n`` (seed 003 eq. 4.2-4.4).

    Same parameters (names and shapes) and the same computation as
    ``nn.TransformerEncoderLayer(d_model, n_heads, d_ff, dropout, batch_first=True)``, so
    its ``state_dict`` loads into this block; ``forward(x, qkv_bias, padding_mask)`` also
    accepts query/key/value biases ``(L, 3d)`` or ``(B, L, 3d)`` (eq. 4.12) and a
    ``(B, L)`` boolean padding mask (True = padding). Chapter 9.
    """

    def __init__(self, d_model: int, n_heads: int, d_ff: int, dropout: float = 0.0) -> None:
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model ({d_model}) must be divisible by n_heads ({n_heads})")
        self.self_attn = _SelfAttention(d_model, n_heads)
        self.linear1 = nn.Linear(d_model, d_ff)
        self.linear2 = nn.Linear(d_ff, d_model)
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x, qkv_bias=None, padding_mask=None):
        x = self.norm1(x + self.dropout(self.self_attn(x, qkv_bias, padding_mask)))
        ff = self.linear2(self.dropout(F.relu(self.linear1(x))))
        return self.norm2(x + self.dropout(ff))


class SequenceTransformer(nn.Module):
    """A small transformer encoder with a pluggable position encoder (seed 003 §4.1).

    Inputs are token ids ``(B, L)`` (give ``n_tokens``; ``pad_id`` tokens are masked out of
    the attention) or feature sequences ``(B, L, d_input)`` (give ``d_input``, e.g. the
    rows of an image). ``position`` is a :class:`~robustkit.sequence.encoders.PositionEncoder`
    or ``None`` (a permutation-equivariant model, §4.1.2). With ``n_blocks = 1`` the
    encoder acts at the input block only, with ``n_blocks = n_layers`` at every block.
    Additive encoders are added before each covered block (eq. 4.5); ``"qkv"`` encoders
    (compatible FLOATER) add their ``base`` sinusoidal encoding at the input and biases to
    the queries, keys and values of the covered blocks (eq. 4.12).

    ``output="token"`` gives per-position logits ``(B, L, n_outputs)``; ``"pool"`` a masked
    mean over positions then logits ``(B, n_outputs)``. ``forward(x, offset=0,
    padding_mask=None)``: ``offset`` shifts every position by a constant (a window of a
    longer sequence). Chapter 9.
    """

    def __init__(self, *, n_outputs: int, n_tokens: int | None = None, d_input: int | None = None,
                 d_model: int = 32, n_heads: int = 4, n_layers: int = 2, d_ff: int = 64,
                 position: PositionEncoder | None = None, output: str = "token",
                 pad_id: int | None = None, dropout: float = 0.0) -> None:
        super().__init__()
        if (n_tokens is None) == (d_input is None):
            raise ValueError("give exactly one of n_tokens (token ids) or d_input (feature sequences)")
        if output not in ("token", "pool"):
            raise ValueError(f"output must be 'token' or 'pool', got {output!r}")
        self.n_layers = _check_int(n_layers, "n_layers")
        self.d_model = _check_int(d_model, "d_model")
        _check_int(n_outputs, "n_outputs")
        if position is not None:
            if not isinstance(position, PositionEncoder):
                raise TypeError(f"position must be a PositionEncoder or None, got {type(position).__name__}")
            if position.d_model != d_model:
                raise ValueError(f"the encoder's d_model ({position.d_model}) differs from the model's ({d_model})")
            if position.n_blocks not in (1, n_layers):
                raise ValueError(f"the encoder covers {position.n_blocks} blocks: use 1 (input block only) "
                                 f"or n_layers = {n_layers} (every block)")
        if n_tokens is not None:
            n_tokens = _check_int(n_tokens, "n_tokens")
            if pad_id is not None and not (0 <= pad_id < n_tokens):
                raise ValueError(f"pad_id must be a token id in [0, {n_tokens}), got {pad_id!r}")
            self.embed = nn.Embedding(n_tokens, d_model)
        else:
            if pad_id is not None:
                raise ValueError("pad_id only applies to token inputs; pass padding_mask instead")
            self.embed = nn.Linear(_check_int(d_input, "d_input"), d_model)
        self.n_tokens, self.d_input, self.pad_id, self.output = n_tokens, d_input, pad_id, output
        self.position = position
        self.blocks = nn.ModuleList(TransformerBlock(d_model, n_heads, d_ff, dropout) for _ in range(n_layers))
        self.head = nn.Linear(d_model, n_outputs)

    @property
    def inject(self) -> str:
        """``"all"`` (every block), ``"input"`` (input block only) or ``"none"``."""
        if self.position is None:
            return "none"
        return "all" if self.position.n_blocks == self.n_layers and self.n_layers > 1 else "input"

    def _embed(self, x, padding_mask):
        if self.n_tokens is not None:
            if x.dtype not in (torch.int64, torch.int32) or x.ndim != 2:
                raise TypeError(f"expected token ids (B, L) of integer dtype, got {x.dtype} {tuple(x.shape)}")
            if x.numel() and (int(x.min()) < 0 or int(x.max()) >= self.n_tokens):
                raise ValueError(f"token ids must lie in [0, {self.n_tokens})")
            if padding_mask is None and self.pad_id is not None:
                padding_mask = x == self.pad_id
            return self.embed(x), padding_mask
        if not x.is_floating_point() or x.ndim != 3 or x.shape[-1] != self.d_input:
            raise ValueError(f"expected float sequences (B, L, {self.d_input}), got {x.dtype} {tuple(x.shape)}")
        return self.embed(x), padding_mask

    def features(self, x, offset: int = 0, padding_mask=None) -> torch.Tensor:
        """The last block's output ``(B, L, d_model)`` (eq. 4.1 with the encoders of eq. 4.5)."""
        h, padding_mask = self._embed(x, padding_mask)
        if padding_mask is not None:
            if padding_mask.shape != h.shape[:2] or padding_mask.dtype != torch.bool:
                raise ValueError(f"padding_mask must be a bool tensor of shape {tuple(h.shape[:2])}")
            if bool(padding_mask.all(dim=1).any()):
                raise ValueError("a sequence is padding only")
        length = h.shape[1]
        enc, add, qkv = self.position, None, None
        if enc is not None:
            if enc.injection == "qkv":
                h = h + enc.base(length, offset)[0]
                qkv = enc(length, offset)
            else:
                add = enc(length, offset)
        for n, block in enumerate(self.blocks):
            if add is not None and n < add.shape[0]:
                h = h + add[n]
            bias = qkv[n] if qkv is not None and n < qkv.shape[0] else None
            h = block(h, bias, padding_mask)
        return h

    def forward(self, x, offset: int = 0, padding_mask=None) -> torch.Tensor:
        if self.n_tokens is not None and padding_mask is None and self.pad_id is not None:
            padding_mask = x == self.pad_id
        h = self.features(x, offset, padding_mask)
        if self.output == "pool":
            if padding_mask is None:
                h = h.mean(1)
            else:
                keep = (~padding_mask).unsqueeze(-1).to(h.dtype)
                h = (h * keep).sum(1) / keep.sum(1)
        return self.head(h)


def warm_start(target: SequenceTransformer, source: SequenceTransformer) -> list[str]:
    """Copy every non-position parameter of ``source`` into ``target``; return their names.

    The compatible FLOATER (seed 003 §4.1.3, "warm-start training") starts from a trained
    sinusoidal transformer: attention and feed-forward weights are copied layer by layer,
    the dynamics keep their own initialization. Raises ``ValueError`` if a parameter of
    ``target`` outside its position encoder has no match of the same shape. Chapter 9.
    """
    if not isinstance(target, SequenceTransformer) or not isinstance(source, SequenceTransformer):
        raise TypeError("warm_start expects two SequenceTransformer models")
    src = {k: v for k, v in source.state_dict().items() if not k.startswith("position.")}
    tgt = {k: v for k, v in target.state_dict().items() if not k.startswith("position.")}
    missing = [k for k in tgt if k not in src or src[k].shape != tgt[k].shape]
    if missing:
        raise ValueError(f"the source model has no matching parameters for {missing}")
    with torch.no_grad():
        own = target.state_dict()
        for k in tgt:
            own[k].copy_(src[k])
    return sorted(tgt)
