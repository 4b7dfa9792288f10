"""Benchmark robustkit.infotheory against its peers (POT, scipy).

Prints, for each task, the median wall time of a few repeats for robustkit and the
peer, their ratio (peer / robustkit: > 1 means robustkit is faster) and the largest
difference between the two results (the same projections are used for sliced
Wasserstein, so both compute the same number). The image tasks compare the 45 pairs of
MNIST class-mean images (28x28, ~500 pixels with mass each; synthetic blobs if MNIST
is not found): the batched sliced distance against a loop over pairs (robustkit's and
POT's), and the exact distance with POT's network simplex against SciPy's HiGHS LP
(a few pairs only: ~2 s each). Runs in about a minute on 2 CPU cores::

    python benchmarks/bench_infotheory.py [--repeats 5] [--data-root DIR]
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import ot
import scipy.stats
import torch

import robustkit as rk
import robustkit.infotheory as it
from _timing import median_time  # benchmarks/_timing.py


def class_mean_pairs(data_root) -> tuple:
    """The 45 pairs of MNIST class-mean images (float64), or synthetic blobs without MNIST."""
    roots = [data_root] if data_root else [None, Path(__file__).resolve().parents[2] / "shared" / "data"]
    for root in roots:
        try:
            train = rk.load_dataset("mnist", "train", root=root, download=False, n=6000, seed=0, progress=False)
        except rk.data.DataError:
            continue
        means = torch.stack([train.images[train.labels == c, 0].mean(0) for c in range(10)]).double()
        source = "MNIST class means"
        break
    else:
        g = torch.Generator().manual_seed(0)
        r, c = torch.meshgrid(torch.arange(28.0), torch.arange(28.0), indexing="ij")
        centers = 8 + 12 * torch.rand(10, 2, 1, 1, generator=g, dtype=torch.float64)
        means = torch.exp(-((r - centers[:, 0]) ** 2 + (c - centers[:, 1]) ** 2) / 30)
        means = means * (means > 0.05)  # ~500 pixels with mass, like MNIST means
        source = "synthetic blobs (MNIST not found)"
    i, j = torch.combinations(torch.arange(10), 2).T
    return means[i], means[j], source


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--data-root", default=None, help="folder holding mnist/ (default: the usual search)")
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

    # 5. sliced W2 between images: 45 pairs of 28x28 class means, 500 projections, one
    #    batched call vs a loop over pairs (robustkit's own, and POT's with the same
    #    projections on the pixel grid, pixel masses as weights)
    A, B, source = class_mean_pairs(args.data_root)
    theta = it.random_projections(2, 500, seed=0, dtype=torch.float64)
    grid = it._pixel_grid(28, 28, "pixel", torch.float64, torch.device("cpu")).numpy()
    An = (A / A.sum((-2, -1), keepdim=True)).reshape(len(A), -1).numpy()
    Bn = (B / B.sum((-2, -1), keepdim=True)).reshape(len(B), -1).numpy()
    slow = max(1, args.repeats // 2)
    t_rk, v_rk = median_time(lambda: it.image_sliced_wasserstein(A, B, projections=theta).numpy(), args.repeats)
    t_loop, v_loop = median_time(
        lambda: np.array([it.image_sliced_wasserstein(a, b, projections=theta).item() for a, b in zip(A, B)]), slow
    )
    t_pot, v_pot = median_time(
        lambda: np.array(
            [ot.sliced_wasserstein_distance(grid, grid, a, b, projections=theta.numpy()) for a, b in zip(An, Bn)]
        ),
        slow,
    )
    task = "image_sliced_wasserstein 45x(28x28), 500 proj, batched"
    rows.append((f"{task} (robustkit loop over pairs)", t_rk, t_loop, np.abs(v_rk - v_loop).max()))
    rows.append((f"{task} (POT loop over pairs)", t_rk, t_pot, np.abs(v_rk - v_pot).max()))

    # 6. exact W2 between the same images: POT's network simplex (solver="pot", the
    #    default when POT is installed) per pair vs SciPy's HiGHS LP on 2 pairs, and vs a
    #    bare ot.emd2 loop (robustkit's overhead: validation, cost matrix, optimality check)
    n_pairs = len(A)
    t_rk, v_rk = median_time(lambda: it.image_wasserstein_exact(A, B, solver="pot").numpy(), slow)
    start = time.perf_counter()
    v_hi = it.image_wasserstein_exact(A[:2], B[:2], solver="highs").numpy()
    t_hi = (time.perf_counter() - start) / 2 * n_pairs  # extrapolated to the 45 pairs

    def bare_emd2():
        out = []
        for a, b in zip(An, Bn):
            sa, sb = a > 0, b > 0
            out.append(ot.emd2(a[sa], b[sb], ot.dist(grid[sa], grid[sb]), numItermax=10_000_000) ** 0.5)
        return np.array(out)

    t_emd, v_emd = median_time(bare_emd2, slow)
    task = "image_wasserstein_exact 45x(28x28), POT solver"
    rows.append((f"{task} (HiGHS, 2 pairs x 22.5)", t_rk, t_hi, np.abs(v_rk[:2] - v_hi).max()))
    rows.append((f"{task} (bare ot.emd2 loop)", t_rk, t_emd, np.abs(v_rk - v_emd).max()))

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; POT {ot.__version__}; median of {args.repeats}")
    print(f"images: {source}")
    w = max(len(r[0]) for r in rows)
    print(f"{'task (peer)':<{w}}  {'robustkit':>10}  {'peer':>10}  {'peer/rk':>8}  {'max |diff|':>10}")
    for name, t_rk, t_peer, diff in rows:
        print(f"{name:<{w}}  {t_rk * 1e3:8.2f}ms  {t_peer * 1e3:8.2f}ms  {t_peer / t_rk:8.2f}  {diff:10.2e}")


if __name__ == "__main__":
    main()
