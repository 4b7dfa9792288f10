"""Benchmark robustkit.infotheory against its peers (POT, scipy).

Prints, for each task, the median wall time of a few repeats for robustkit and the
peer, their ratio (peer / robustkit: > 1 means robustkit is faster) and the largest
difference between the two results (the same projections are used for sliced
Wasserstein, so both compute the same number). Runs in well under a minute on 2 CPU
cores::

    python benchmarks/bench_infotheory.py [--repeats 5]
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import ot
import scipy.stats
import torch

import robustkit.infotheory as it


def median_time(fn, repeats: int) -> tuple:
    out = fn()  # warm-up (and the value to compare)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    rows = []

    # 1. sliced Wasserstein between two 2000 x 784 point clouds, 500 projections
    X = rng.random((2000, 784))
    Y = rng.random((2000, 784)) ** 2
    theta = it.random_projections(784, 500, seed=0, dtype=torch.float64)
    Xt, Yt, th_np = torch.from_numpy(X), torch.from_numpy(Y), theta.numpy()
    t_rk, v_rk = median_time(lambda: it.sliced_wasserstein(Xt, Yt, projections=theta).item(), args.repeats)
    t_pot, v_pot = median_time(lambda: ot.sliced_wasserstein_distance(X, Y, projections=th_np), args.repeats)
    rows.append(("sliced_wasserstein 2000x784, 500 proj (POT)", t_rk, t_pot, abs(v_rk - v_pot)))

    # 2. weighted 1-D Wasserstein, a batch of 2000 problems of 200 vs 150 samples
    B = 2000
    u, v = rng.normal(size=(B, 200)), rng.normal(0.3, 1.2, size=(B, 150))
    uw, vw = rng.random((B, 200)), rng.random((B, 150))
    ut, vt, uwt, vwt = (torch.from_numpy(a) for a in (u, v, uw, vw))
    t_rk, v_rk = median_time(lambda: it.wasserstein_1d(ut, vt, uwt, vwt).numpy(), args.repeats)
    t_sp, v_sp = median_time(
        lambda: np.array([scipy.stats.wasserstein_distance(u[i], v[i], uw[i], vw[i]) for i in range(B)]),
        max(1, args.repeats // 2),
    )
    rows.append(("wasserstein_1d batch 2000x(200 vs 150) (scipy loop)", t_rk, t_sp, np.abs(v_rk - v_sp).max()))

    # 2b. the same batch against POT's vectorized ot.wasserstein_1d (columns = problems)
    uwn, vwn = uw / uw.sum(1, keepdims=True), vw / vw.sum(1, keepdims=True)
    t_pot, v_pot = median_time(lambda: ot.wasserstein_1d(u.T, v.T, uwn.T, vwn.T, p=1), args.repeats)
    rows.append(("wasserstein_1d batch 2000x(200 vs 150) (POT)", t_rk, t_pot, np.abs(v_rk - v_pot).max()))

    # 3. entropy of a (10000, 10) batch of probability vectors
    P = rng.dirichlet(np.ones(10), size=10000)
    Pt = torch.from_numpy(P)
    t_rk, v_rk = median_time(lambda: it.entropy(Pt).numpy(), args.repeats)
    t_sp, v_sp = median_time(lambda: scipy.stats.entropy(P, axis=1), args.repeats)
    rows.append(("entropy (10000, 10) (scipy)", t_rk, t_sp, np.abs(v_rk - v_sp).max()))

    # 4. KL divergence on the same batch
    Q = rng.dirichlet(np.ones(10), size=10000)
    Qt = torch.from_numpy(Q)
    t_rk, v_rk = median_time(lambda: it.kl_divergence(Pt, Qt).numpy(), args.repeats)
    t_sp, v_sp = median_time(lambda: scipy.stats.entropy(P, Q, axis=1), args.repeats)
    rows.append(("kl_divergence (10000, 10) (scipy)", t_rk, t_sp, np.abs(v_rk - v_sp).max()))

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; POT {ot.__version__}; median of {args.repeats}")
    w = max(len(r[0]) for r in rows)
    print(f"{'task (peer)':<{w}}  {'robustkit':>10}  {'peer':>10}  {'peer/rk':>8}  {'max |diff|':>10}")
    for name, t_rk, t_peer, diff in rows:
        print(f"{name:<{w}}  {t_rk * 1e3:8.2f}ms  {t_peer * 1e3:8.2f}ms  {t_peer / t_rk:8.2f}  {diff:10.2e}")


if __name__ == "__main__":
    main()
