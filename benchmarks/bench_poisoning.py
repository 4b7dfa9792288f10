"""Benchmark the trust-region solvers of robustkit.poisoning (seed 003, eq. 1.4, Algorithm 1).

For random indefinite problems ``min_{||z|| <= r} 1/2 z^T H z + g^T z`` of growing size and
for the true-label regression poisoning problem on scikit-learn's diabetes data, prints the
median wall time of

- ``trust_region_pgd`` (Algorithm 1: matrix-vector products only),
- ``trust_region_exact`` (eigendecomposition + secular equation),
- SciPy's ``IterativeSubproblem`` (Moré-Sorensen with Cholesky factorizations, the solver
  behind ``scipy.optimize.minimize(method="trust-exact")``; a private SciPy class, skipped
  if it moved),

the ratio peer / Algorithm 1 (> 1: Algorithm 1 is faster) and the objective gap to the
exact value (Algorithm 1 and SciPy should reach it up to ~1e-9 relative). Runs in about
half a minute on 2 CPU cores::

    python benchmarks/bench_poisoning.py [--repeats 3]
"""
from __future__ import annotations

import argparse

import numpy as np
import torch

import robustkit.poisoning as pois
from _timing import median_time  # benchmarks/_timing.py

try:  # private SciPy API, used as a peer only
    from scipy.optimize._trustregion_exact import IterativeSubproblem
except ImportError:  # pragma: no cover
    IterativeSubproblem = None


def random_problem(d, seed):
    gen = torch.Generator().manual_seed(seed)
    A = torch.randn(d, d, generator=gen, dtype=torch.float64)
    H = (A + A.T) / (2 * d ** 0.5)
    g = torch.randn(d, generator=gen, dtype=torch.float64)
    return H, g, 1.0


def diabetes_problem(n_l, d_max=0.5):
    from sklearn.datasets import load_diabetes
    data = load_diabetes()
    x = torch.tensor(data.data)
    x = (x - x.mean(0)) / x.std(0)
    y = torch.tensor(data.target)
    y = (y - y.min()) / (y.max() - y.min())
    xl, yl, xu, yu = pois.split_labeled(x, y, n_l, seed=0)
    gamma = pois.median_heuristic_gamma(x, 32.0)
    K = pois.propagation_matrix(pois.gaussian_kernel(torch.cat([xl, xu]), gamma=gamma), n_l)
    H, g = pois.regression_trust_region(K, yl, yu)
    return H, g, d_max


def scipy_solve(H, g, r):
    Hn, gn = H.numpy(), g.numpy()
    sub = IterativeSubproblem(np.zeros_like(gn), lambda x: 0.0, lambda x: gn, lambda x: Hn,
                              k_easy=1e-10, k_hard=1e-10)
    p, _ = sub.solve(r)
    return float(0.5 * p @ Hn @ p + gn @ p)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    problems = [(f"random indefinite d={d}", random_problem(d, d)) for d in (50, 200, 800)]
    problems += [(f"diabetes poisoning n_l={n}", diabetes_problem(n)) for n in (50, 200)]
    header = (f"{'problem':28s} {'Alg.1 s':>9s} {'iters':>6s} {'exact s':>9s} {'ratio':>6s} "
              f"{'scipy s':>9s} {'ratio':>6s} {'gap Alg.1':>10s} {'gap scipy':>10s}")
    print(header)
    print("-" * len(header))
    for name, (H, g, r) in problems:
        t_pgd, res = median_time(lambda: pois.trust_region_pgd(H, g, r), args.repeats)
        t_ex, ex = median_time(lambda: pois.trust_region_exact(H, g, r), args.repeats)
        scale = 1 + abs(ex.value)
        if IterativeSubproblem is not None:
            t_sp, v_sp = median_time(lambda: scipy_solve(H, g, r), args.repeats)
            sp = f"{t_sp:9.4f} {t_sp / t_pgd:6.2f}"
            gap_sp = f"{(v_sp - ex.value) / scale:10.1e}"
        else:
            sp, gap_sp = f"{'n/a':>9s} {'':>6s}", f"{'n/a':>10s}"
        print(f"{name:28s} {t_pgd:9.4f} {res.phase1_iters + res.phase2_iters:6d} {t_ex:9.4f} "
              f"{t_ex / t_pgd:6.2f} {sp} {(res.value - ex.value) / scale:10.1e} {gap_sp}")


if __name__ == "__main__":
    main()
