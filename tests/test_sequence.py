"""Tests of robustkit.sequence (seed 003 §4.1, FLOATER; chapter 9).

Oracles: the closed forms of eq. (4.6)/(4.7) evaluated element by element, the exact
solution ``expm(tA) y0`` of a linear ODE (scipy), torchdiffeq's adaptive dopri5 solver
(test-only dependency), ``torch.nn.TransformerEncoderLayer``, parameter counts by hand,
brute-force loops for the task generator, and invariants (permutation equivariance).
"""
import math

import numpy as np
import pytest
import scipy.linalg
import torch
import torch.nn as nn

from robustkit.sequence import (IGNORE, FloaterBiasEncoder, FloaterDynamics, FloaterEncoder,
                                LearnedEncoder, RecurrentEncoder, SequenceTransformer,
                                SinusoidalEncoder, TransformerBlock, build_encoder, lag_copy,
                                pad_front, pad_rows, rk4_solve, sinusoidal_encoding,
                                sinusoidal_velocity, token_accuracy, token_cross_entropy, warm_start)

torchdiffeq = pytest.importorskip("torchdiffeq")


def n_params(module):
    return sum(p.numel() for p in module.parameters())


# ----------------------------------------------------------------------------- sinusoidal
def test_sinusoidal_matches_eq_4_6_elementwise():
    d, L, c = 10, 7, 1e-4
    got = sinusoidal_encoding(L, d, dtype=torch.float64)
    want = np.zeros((L, d))
    for i in range(1, L + 1):
        for j in range(d):
            want[i - 1, j] = math.sin(i * c ** (j / d)) if j % 2 == 0 else math.cos(i * c ** ((j - 1) / d))
    np.testing.assert_allclose(got.numpy(), want, atol=1e-12)


def test_per_block_sinusoidal_matches_eq_4_7_and_offset():
    d, L, N = 8, 5, 3
    enc = SinusoidalEncoder(d, n_blocks=N).double()
    got = enc(L, offset=4)
    assert got.shape == (N, L, d)
    s = lambda x: sinusoidal_encoding(torch.tensor([float(x)]), d, dtype=torch.float64)[0]
    for n in range(1, N + 1):
        for i in range(1, L + 1):
            torch.testing.assert_close(got[n - 1, i - 1], s(i + 4) + s(n))
    # input-only encoder is eq. (4.6) itself
    torch.testing.assert_close(SinusoidalEncoder(d).double()(L)[0], sinusoidal_encoding(L, d, dtype=torch.float64))


def test_eq_4_9_fixed_h_reproduces_sinusoidal():
    """A fixed dynamics h(t) (eq. 4.9) integrated from p(0) = s(0) gives the sinusoidal encoding."""
    d, L = 16, 40
    t = torch.arange(0, L + 1, dtype=torch.float64)
    p0 = sinusoidal_encoding(torch.zeros(1, dtype=torch.float64), d, dtype=torch.float64)[0]
    traj = rk4_solve(lambda tt, p: sinusoidal_velocity(tt, d), p0, t, substeps=8)
    err = (traj[1:] - sinusoidal_encoding(L, d, dtype=torch.float64)).abs().max()
    assert err < 1e-6
    # the same through FloaterEncoder's machinery (dt = 1, one block, h replaced by eq. 4.9)
    enc = FloaterEncoder(d, 1, dt=1.0, substeps=8).double()
    enc.dynamics = _FixedVelocity(d)
    with torch.no_grad():
        enc.initial.copy_(p0[None])
    enc.eval()
    torch.testing.assert_close(enc(L)[0], sinusoidal_encoding(L, d, dtype=torch.float64), atol=1e-6, rtol=0)
    # and h = 0 keeps p constant
    zero = FloaterEncoder(d, 2, zero_init=True).double().eval()
    zero.dynamics.lin2.bias.data.zero_()
    out = zero(12)
    torch.testing.assert_close(out, zero.initial[:, None, :].expand(-1, 12, -1))


class _FixedVelocity(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.d = d

    def forward(self, t, p):
        return sinusoidal_velocity(t, self.d).expand_as(p)


# ----------------------------------------------------------------------------- ODE solver
def test_rk4_matches_analytic_linear_ode_with_fourth_order_convergence():
    g = torch.Generator().manual_seed(0)
    A = torch.randn(5, 5, generator=g, dtype=torch.float64) * 0.5
    y0 = torch.randn(3, 5, generator=g, dtype=torch.float64)  # a batch of initial values
    t = torch.linspace(0, 2, 11, dtype=torch.float64)
    exact = torch.stack([y0 @ torch.from_numpy(scipy.linalg.expm(float(tt) * A.numpy())).T for tt in t])
    errs = []
    for sub in (1, 2, 4, 8):
        sol = rk4_solve(lambda tt, y: y @ A.T, y0, t, substeps=sub)
        assert sol.shape == (11, 3, 5)
        errs.append(float((sol - exact).abs().max()))
    assert errs[-1] < 5e-8
    # halving the step divides the error by about 2^4 = 16
    for a, b in zip(errs, errs[1:]):
        assert 10 < a / b < 22


def test_rk4_matches_torchdiffeq_dopri5_on_a_floater_flow():
    torch.manual_seed(0)
    h = FloaterDynamics(6, 12).double()
    y0 = torch.randn(2, 6, dtype=torch.float64)
    t = torch.arange(0, 31, dtype=torch.float64) * 0.1
    with torch.no_grad():
        ours = rk4_solve(h, y0, t, substeps=2)
        ref = torchdiffeq.odeint(h, y0, t, method="dopri5", rtol=1e-11, atol=1e-11)
        ref_rk4 = torchdiffeq.odeint(h, y0, t, method="rk4", options={"step_size": 0.05})
    assert float((ours - ref).abs().max()) < 1e-6
    # torchdiffeq's own fixed-grid rk4 (3/8 rule) agrees to the same order
    assert float((ours - ref_rk4).abs().max()) < 1e-6


def test_rk4_gradients_match_finite_differences():
    torch.manual_seed(0)
    w = torch.randn(3, 3, dtype=torch.float64, requires_grad=True)
    y0 = torch.randn(3, dtype=torch.float64, requires_grad=True)
    t = torch.tensor([0.0, 0.3, 0.7], dtype=torch.float64)
    f = lambda w_, y_: rk4_solve(lambda tt, y: torch.tanh(w_ @ y), y_, t).sum()
    assert torch.autograd.gradcheck(f, (w, y0))


def test_rk4_bad_input():
    f = lambda t, y: -y
    y0 = torch.ones(2)
    with pytest.raises(ValueError, match="strictly increasing"):
        rk4_solve(f, y0, torch.tensor([0.0, 1.0, 1.0]))
    with pytest.raises(ValueError, match="1-D"):
        rk4_solve(f, y0, torch.zeros(2, 2))
    with pytest.raises(ValueError, match="substeps"):
        rk4_solve(f, y0, torch.tensor([0.0, 1.0]), substeps=0)
    with pytest.raises(TypeError):
        rk4_solve(f, torch.ones(2, dtype=torch.long), torch.tensor([0.0, 1.0]))


# ----------------------------------------------------------------------------- encoders
INDUCTIVE = [
    lambda: SinusoidalEncoder(8, 2),
    lambda: FloaterEncoder(8, 2),
    lambda: FloaterBiasEncoder(8, 2),
    lambda: RecurrentEncoder(8, 2, cell="rnn"),
    lambda: RecurrentEncoder(8, 2, cell="gru", num_layers=2),
    lambda: RecurrentEncoder(8, 2, cell="lstm", inputs="vector", d_in=4),
]


@pytest.mark.parametrize("make", INDUCTIVE)
def test_inductive_encoders_accept_any_length(make):
    enc = make()
    for mode in (True, False):
        enc.train(mode)
        for L in (1, 7, 300):
            out = enc(L)
            assert out.shape == (2, L, enc.width) and torch.isfinite(out).all()
        # offset = a window of a longer sequence
        torch.testing.assert_close(enc(5, offset=3), enc(8)[:, 3:8])


def test_learned_embedding_raises_beyond_max_len():
    enc = LearnedEncoder(8, max_len=16, n_blocks=2)
    assert enc(16).shape == (2, 16, 8) and not enc.inductive
    with pytest.raises(ValueError, match="max_len"):
        enc(17)
    with pytest.raises(ValueError, match="not inductive"):
        enc(10, offset=7)
    model = SequenceTransformer(n_outputs=3, n_tokens=5, d_model=8, n_heads=2, position=enc)
    with pytest.raises(ValueError, match="max_len"):
        model(torch.zeros(1, 17, dtype=torch.long))


def test_parameter_counts_by_hand():
    d, H, N = 16, 24, 3
    assert n_params(SinusoidalEncoder(d, N)) == 0
    assert n_params(LearnedEncoder(d, 50, N)) == N * 50 * d
    floater = 2 * d * H + 2 * H + d                       # W1, b1, w_t, W2, b2
    assert n_params(FloaterEncoder(d, N, hidden=H)) == floater + N * d
    assert n_params(FloaterEncoder(d, N, hidden=H, time_input=False)) == floater - H + N * d
    assert n_params(FloaterBiasEncoder(d, N, hidden=H)) == floater + 3 * N * d
    # Table 4.6 of seed 003: FLOATER in Transformer-base (d = 512) has 526.3K parameters
    assert n_params(FloaterEncoder(512, 1)) == 526_336
    gates = {"rnn": 1, "gru": 3, "lstm": 4}
    for cell, g in gates.items():
        for layers, din in ((1, 1), (2, 1), (1, 8)):
            enc = RecurrentEncoder(d, N, cell=cell, num_layers=layers,
                                   inputs="scalar" if din == 1 else "vector", d_in=din if din > 1 else None)
            first = g * (d * din + d * d + 2 * d)
            rest = (layers - 1) * g * (d * d + d * d + 2 * d)
            assert n_params(enc) == first + rest + layers * N * d, (cell, layers, din)


def test_encoder_bad_input():
    with pytest.raises(ValueError, match="even"):
        SinusoidalEncoder(7)
    with pytest.raises(ValueError, match="length"):
        SinusoidalEncoder(8)(0)
    with pytest.raises(ValueError, match="offset"):
        FloaterEncoder(8)(3, offset=-1)
    with pytest.raises(ValueError, match="unknown encoder"):
        build_encoder("rope", 8)
    with pytest.raises(ValueError, match="cell"):
        RecurrentEncoder(8, cell="transformer")
    with pytest.raises(ValueError, match="dt"):
        FloaterEncoder(8, dt=0.0)


# ----------------------------------------------------------------------------- caching
def test_inference_cache_is_exact_and_invalidated_by_updates():
    torch.manual_seed(0)
    enc = FloaterEncoder(8, 2, dt=0.1)
    enc.eval()
    fresh = FloaterEncoder(8, 2, dt=0.1, cache=False)
    fresh.load_state_dict(enc.state_dict())
    fresh.eval()
    a = enc(10)
    b = enc(25)                   # extends the cached trajectory from position 10
    c = enc(25, offset=0)         # pure cache hit
    assert enc.n_solves == 2
    torch.testing.assert_close(b, fresh(25), rtol=0, atol=1e-6)
    assert torch.equal(a, b[:, :10]) and torch.equal(b, c)
    with torch.no_grad():         # a parameter update (in place, as an optimizer does)
        enc.dynamics.lin2.bias.add_(0.5)
    d = enc(25)
    assert enc.n_solves == 3 and not torch.allclose(d, c)
    fresh.load_state_dict(enc.state_dict())
    torch.testing.assert_close(d, fresh(25), rtol=0, atol=1e-6)


def test_training_refresh_reuses_detached_trajectory():
    enc = FloaterEncoder(8, 1, refresh_every=3)
    enc.train()
    outs = [enc(6) for _ in range(6)]
    assert enc.n_solves == 2
    assert [o.requires_grad for o in outs] == [True, False, False, True, False, False]
    enc_every = FloaterEncoder(8, 1)
    enc_every.train()
    for _ in range(4):
        assert enc_every(6).requires_grad
    assert enc_every.n_solves == 4


# ----------------------------------------------------------------------------- transformer
def test_block_matches_torch_transformer_encoder_layer():
    torch.manual_seed(0)
    layer = nn.TransformerEncoderLayer(16, 4, 32, dropout=0.0, batch_first=True).eval()
    block = TransformerBlock(16, 4, 32)
    block.load_state_dict(layer.state_dict())
    x = torch.randn(3, 9, 16)
    mask = torch.zeros(3, 9, dtype=torch.bool)
    mask[1, 6:] = True
    with torch.no_grad():
        torch.testing.assert_close(block(x), layer(x), atol=1e-5, rtol=1e-5)
        ref = layer(x, src_key_padding_mask=mask)
        got = block(x, padding_mask=mask)
    keep = ~mask
    torch.testing.assert_close(got[keep], ref[keep], atol=1e-5, rtol=1e-5)


def _reference_sinusoidal_transformer(model, x):
    """The same network written with PyTorch's own layers (the oracle)."""
    layers = []
    for block in model.blocks:
        layer = nn.TransformerEncoderLayer(model.d_model, 4, 32, dropout=0.0, batch_first=True).eval()
        layer.load_state_dict(block.state_dict())
        layers.append(layer)
    h = model.embed(x) + sinusoidal_encoding(x.shape[1], model.d_model)
    for layer in layers:
        h = layer(h)
    return model.head(h)


def test_floater_bias_with_h_zero_is_the_sinusoidal_transformer():
    """eq. (4.13): h = 0 and b(0) = 0 give exactly the transformer of eq. (4.11) (warm start)."""
    torch.manual_seed(0)
    kw = dict(n_outputs=5, n_tokens=7, d_model=16, n_heads=4, n_layers=3, d_ff=32)
    plain = SequenceTransformer(position=SinusoidalEncoder(16, 1), **kw).eval()
    floater = SequenceTransformer(position=FloaterBiasEncoder(16, 3), **kw).eval()
    copied = warm_start(floater, plain)
    assert "blocks.0.self_attn.in_proj_weight" in copied and "head.weight" in copied
    x = torch.randint(0, 7, (4, 23))
    with torch.no_grad():
        out_plain, out_floater = plain(x), floater(x)
        assert torch.equal(out_plain, out_floater)
        torch.testing.assert_close(out_plain, _reference_sinusoidal_transformer(plain, x), atol=1e-5, rtol=1e-5)
    # a non-zero dynamics changes the outputs, and the warm-started model still trains h
    floater.train()
    loss = floater(x).square().mean()
    loss.backward()
    assert floater.position.dynamics.lin2.weight.grad.abs().sum() > 0
    assert floater.position.initial.grad.abs().sum() > 0


def test_no_position_encoding_is_permutation_equivariant():
    """eq. (4.1)-(4.4): without positions, Pi Encode(x) = Encode(Pi x); with them, not."""
    torch.manual_seed(0)
    x = torch.randint(0, 7, (2, 12))
    perm = torch.randperm(12)
    for position, equivariant in ((None, True), (SinusoidalEncoder(16, 1), False)):
        model = SequenceTransformer(n_outputs=5, n_tokens=7, d_model=16, n_heads=4, position=position).eval()
        with torch.no_grad():
            same = torch.allclose(model(x)[:, perm], model(x[:, perm]), atol=1e-5)
        assert same == equivariant


def test_every_block_vs_input_only_and_bad_configurations():
    kw = dict(n_outputs=3, n_tokens=5, d_model=8, n_heads=2, n_layers=3)
    assert SequenceTransformer(position=FloaterEncoder(8, 3), **kw).inject == "all"
    assert SequenceTransformer(position=FloaterEncoder(8, 1), **kw).inject == "input"
    with pytest.raises(ValueError, match="blocks"):
        SequenceTransformer(position=FloaterEncoder(8, 2), **kw)
    with pytest.raises(ValueError, match="d_model"):
        SequenceTransformer(position=FloaterEncoder(6, 1), **kw)
    with pytest.raises(ValueError, match="exactly one"):
        SequenceTransformer(n_outputs=3, d_model=8, n_heads=2)
    model = SequenceTransformer(**kw)
    with pytest.raises(TypeError, match="token ids"):
        model(torch.zeros(2, 4))
    with pytest.raises(ValueError, match=r"\[0, 5\)"):
        model(torch.full((2, 4), 5))


def test_masked_front_padding_only_moves_positions():
    torch.manual_seed(0)
    tokens, targets = lag_copy(6, 5, 9, vocab=4, lag=2, seed=1)
    pt, py = pad_front(tokens, targets, 3, pad_id=4)
    assert pt.shape == (6, 12) and (pt[:, :3] == 4).all() and (py[:, :3] == IGNORE).all()
    kw = dict(n_outputs=4, n_tokens=5, d_model=8, n_heads=2, pad_id=4)
    for position, invariant in ((None, True), (SinusoidalEncoder(8), False)):
        model = SequenceTransformer(position=position, **kw).eval()
        with torch.no_grad():
            real = tokens != 4
            same = torch.allclose(model(tokens)[real], model(pt)[:, 3:][real], atol=1e-5)
        assert same == invariant
    # the offset argument is the same shift without padding tokens
    model = SequenceTransformer(position=SinusoidalEncoder(8), **kw).eval()
    with torch.no_grad():
        torch.testing.assert_close(model(pt)[:, 3:][real], model(tokens, offset=3)[real], atol=1e-5, rtol=1e-5)


# ----------------------------------------------------------------------------- tasks
def test_lag_copy_targets_by_brute_force():
    tokens, targets = lag_copy(20, 4, 11, vocab=5, lag=3, seed=2)
    lengths = (tokens != 5).sum(1)
    assert lengths.min() >= 4 and lengths.max() <= 11
    for s in range(20):
        for i in range(11):
            if i < lengths[s]:
                assert tokens[s, i] < 5
                want = tokens[s, i - 3] if i >= 3 else IGNORE
            else:
                assert tokens[s, i] == 5
                want = IGNORE
            assert targets[s, i] == want
    assert torch.equal(lag_copy(20, 4, 11, vocab=5, lag=3, seed=2)[0], tokens)
    with pytest.raises(ValueError, match="lag"):
        lag_copy(3, 2, 5, lag=2)


def test_token_accuracy_and_loss_of_an_oracle_model():
    class Oracle(nn.Module):           # predicts the target exactly (reads the lagged token)
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.zeros(()))

        def forward(self, x, offset=0):
            shifted = torch.cat([torch.zeros_like(x[:, :2]), x[:, :-2]], 1).clamp(max=3)
            return torch.nn.functional.one_hot(shifted, 4).float() * 50 + self.w

    tokens, targets = lag_copy(30, 3, 9, vocab=4, lag=2)
    assert token_accuracy(Oracle(), tokens, targets) == 1.0
    assert float(token_cross_entropy(Oracle(), tokens, targets).detach()) < 1e-6


def test_pad_rows_shapes():
    rows = torch.rand(2, 28, 28)
    out = pad_rows(rows, top=3, bottom=5)
    assert out.shape == (2, 36, 28) and torch.equal(out[:, 3:31], rows) and out[:, :3].abs().sum() == 0
    with pytest.raises(ValueError):
        pad_rows(rows, top=-1)
