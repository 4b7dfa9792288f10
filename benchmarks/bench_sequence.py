"""Benchmark robustkit.sequence: the fixed-step RK4 solver against torchdiffeq, and the cost
of FLOATER position encoders in training and inference with and without trajectory caching.

1. *Solver.* The FLOATER flow ``h(t, p)`` (d = 64, H = 64, 6 blocks solved as one batch)
   integrated on the grid ``t_i = 0.1 i`` up to ``L`` positions: robustkit's ``rk4_solve``
   (one RK4 step per position) vs ``torchdiffeq.odeint`` with its fixed-step ``rk4`` (same
   grid) and its adaptive ``dopri5`` (rtol = atol = 1e-6), forward only and forward +
   backward (torchdiffeq's backward also with the adjoint method). The error column is
   the largest difference to a dopri5 reference with rtol = atol = 1e-10 (float64).
2. *Model.* One training step (forward + backward + Adam) of the chapter's small transformer
   (d_model = 32, 2 blocks, batch 64, length 32) with sinusoidal, learned, FLOATER (every
   block; refreshing its trajectory every step or every 10 steps, the paper's
   "cache the positional bias vectors for some iterations"), compatible FLOATER and GRU
   encoders; and inference (a batch of length 128) with and without the trajectory cache.
   Ratios are against the sinusoidal transformer (> 1: slower than it).

Runs in about a minute on 2 CPU cores::

    python benchmarks/bench_sequence.py [--repeats 5]
"""
from __future__ import annotations

import argparse

import torch
import torchdiffeq

from robustkit.sequence import (FloaterDynamics, SequenceTransformer, build_encoder, lag_copy,
                                rk4_solve, token_cross_entropy)
from _timing import median_time  # benchmarks/_timing.py


def bench_solver(repeats: int) -> None:
    torch.manual_seed(0)
    h = FloaterDynamics(64, 64).double()
    y0 = torch.randn(6, 64, dtype=torch.float64)
    print("1. FLOATER flow, d = H = 64, 6 blocks, grid t_i = 0.1 i (float64)")
    print(f"{'L':>5} {'solver':<28} {'forward s':>10} {'fwd+bwd s':>10} {'vs ours':>8} {'max error':>10}")
    for L in (64, 256):
        t = torch.arange(0, L + 1, dtype=torch.float64) * 0.1
        with torch.no_grad():
            ref = torchdiffeq.odeint(h, y0, t, method="dopri5", rtol=1e-10, atol=1e-10)

        def fwd_bwd(solve):
            def run():
                h.zero_grad()
                y = solve()
                y.square().mean().backward()
                return y.detach()
            return run

        solvers = {
            "robustkit rk4_solve": lambda: rk4_solve(h, y0, t),
            "torchdiffeq rk4 (same grid)": lambda: torchdiffeq.odeint(h, y0, t, method="rk4",
                                                                       options={"step_size": 0.1}),
            "torchdiffeq dopri5 1e-6": lambda: torchdiffeq.odeint(h, y0, t, method="dopri5",
                                                                   rtol=1e-6, atol=1e-6),
            "torchdiffeq dopri5 adjoint": lambda: torchdiffeq.odeint_adjoint(
                h, y0, t, method="dopri5", rtol=1e-6, atol=1e-6),
        }
        base = None
        for name, solve in solvers.items():
            with torch.no_grad():
                t_fwd, y = median_time(solve, repeats)
            t_fb, _ = median_time(fwd_bwd(solve), max(1, repeats // 2))
            base = base or t_fb
            err = float((y - ref).abs().max())
            print(f"{L:>5} {name:<28} {t_fwd:>10.4f} {t_fb:>10.4f} {t_fb / base:>8.2f} {err:>10.1e}")


def bench_model(repeats: int) -> None:
    torch.set_num_threads(1)
    V = 8
    x, y = lag_copy(64, 32, 32, vocab=V, lag=2, seed=0)
    xl, _ = lag_copy(256, 128, 128, vocab=V, lag=2, seed=1)
    configs = {
        "sinusoidal (input)": ("sinusoidal", 1, {}),
        "learned (every block)": ("learned", 2, {}),
        "GRU (every block)": ("gru", 2, {}),
        "FLOATER (every block)": ("floater", 2, {}),
        "FLOATER, refresh every 10": ("floater", 2, {"refresh_every": 10}),
        "FLOATER compatible (bias)": ("floater_bias", 2, {}),
        "FLOATER bias, refresh 10": ("floater_bias", 2, {"refresh_every": 10}),
    }
    print("\n2. one training step (batch 64, length 32) and inference (256 x length 128), 1 thread")
    print(f"{'encoder':<28} {'train step ms':>13} {'ratio':>6} {'infer ms cached':>16} "
          f"{'uncached':>9} {'ratio':>6}")
    base_train = base_inf = None
    for label, (name, nb, kw) in configs.items():
        torch.manual_seed(0)
        enc = build_encoder(name, 32, nb, max_len=128, **kw)
        model = SequenceTransformer(n_outputs=V, n_tokens=V + 1, d_model=32, n_heads=4, n_layers=2,
                                    d_ff=64, position=enc, pad_id=V)
        opt = torch.optim.Adam(model.parameters(), 1e-3)
        model.train()

        def step():
            opt.zero_grad()
            token_cross_entropy(model, x, y).backward()
            opt.step()

        steps = 10
        t_train, _ = median_time(lambda: [step() for _ in range(steps)], repeats)
        t_train /= steps
        model.eval()

        def infer():
            with torch.no_grad():
                return model(xl)

        t_inf, _ = median_time(infer, repeats)
        t_unc = float("nan")
        if hasattr(enc, "cache"):
            enc.cache = False
            t_unc, _ = median_time(infer, repeats)
            enc.cache = True
        base_train = base_train or t_train
        base_inf = base_inf or t_inf
        print(f"{label:<28} {1e3 * t_train:>13.2f} {t_train / base_train:>6.2f} {1e3 * t_inf:>16.2f} "
              f"{1e3 * t_unc:>9.2f} {t_inf / base_inf:>6.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    bench_solver(args.repeats)
    bench_model(args.repeats)


if __name__ == "__main__":
    main()
