"""Benchmark robustkit.knn: the greedy dual solver against generic QP solvers (cvxpy with
OSQP and Clarabel) on the same subproblems, and the runtime per test point on MNIST.

Seed 003 Figure 3.5 compares greedy coordinate ascent with SCS / CVXOPT / ECOS "with the same
screening rule and sorting technique" on 1/10 of MNIST; we do the same: QP-exact is run
twice on the same test points, once with robustkit's solver and once with cvxpy plugged in
place of it (same sorting, same screening, same constraint generation), and we print the
largest difference of the answers and the time ratio (peer / robustkit: > 1 means
robustkit is faster). A second table solves single subproblems with all their constraints
(no screening). Finally the runtime per test point of QP-exact and QP-verify on the full
MNIST training set (60,000 points; seed 003 Table 3.3 reports about 0.05 s and 0.04 s)::

    python benchmarks/bench_knn.py [--points 10] [--full-points 5] [--data-root DIR]
"""
from __future__ import annotations

import argparse
import math
import time

import cvxpy as cp
import numpy as np
import torch

import robustkit as rk
import robustkit.knn.exact as exact_mod
from robustkit import knn
from robustkit.knn.qp import QPSolution


def cvxpy_qp(solver):
    """A drop-in replacement of dual_greedy_qp solving the primal QP with cvxpy."""
    def solve(A, b, lo=None, hi=None, lam0=None, stop_value=None, **_):
        An, bn = A.numpy(), b.numpy()
        delta = cp.Variable(An.shape[1])
        cons = [An @ delta + bn >= 0]
        if lo is not None:
            cons += [delta >= lo.numpy(), delta <= hi.numpy()]
        prob = cp.Problem(cp.Minimize(0.5 * cp.sum_squares(delta)), cons)
        kw = {"eps_abs": 1e-9, "eps_rel": 1e-9, "max_iter": 200_000, "polish": True} if solver == cp.OSQP else {}
        prob.solve(solver=solver, **kw)
        lam = torch.from_numpy(np.maximum(np.asarray(cons[0].dual_value, dtype=np.float64), 0))
        d = torch.from_numpy(np.asarray(delta.value, dtype=np.float64))
        viol = float(np.max(-(An @ delta.value + bn) / np.linalg.norm(An, axis=1)))
        return QPSolution(d, lam, float(prob.value), float(prob.value), viol, 0, "optimal")
    return solve


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--points", type=int, default=10)
    parser.add_argument("--full-points", type=int, default=5)
    parser.add_argument("--data-root", default=None)
    args = parser.parse_args()
    root = args.data_root
    tr = rk.load_dataset("mnist", "train", root=root, n=6_000, seed=0, progress=False)
    te = rk.load_dataset("mnist", "test", root=root, n=500, seed=0, progress=False)
    X, y = tr.images.flatten(1).double(), tr.labels
    Z, yz = te.images.flatten(1).double(), te.labels
    ok = (knn.knn_predict(X, y, Z) == yz).nonzero().flatten()[:args.points]
    Z, yz = Z[ok], yz[ok]

    print(f"QP-exact on 1/10 MNIST (6,000 points), {len(Z)} test points, same sorting/screening:")
    print(f"{'solver':22s}{'s / point':>11s}{'ratio':>9s}{'max |eps diff|':>16s}")
    t_ours, ours = timed(lambda: knn.exact_1nn(X, y, Z, yz))
    print(f"{'robustkit greedy dual':22s}{t_ours / len(Z):11.3f}{1.0:9.2f}{0.0:16.2e}")
    original = exact_mod.dual_greedy_qp
    for name, solver in [("cvxpy + OSQP", cp.OSQP), ("cvxpy + Clarabel", cp.CLARABEL)]:
        exact_mod.dual_greedy_qp = cvxpy_qp(solver)
        try:
            t_peer, peer = timed(lambda: knn.exact_1nn(X, y, Z, yz))
        finally:
            exact_mod.dual_greedy_qp = original
        diff = float((peer.eps - ours.eps).abs().max())
        print(f"{name:22s}{t_peer / len(Z):11.3f}{t_peer / t_ours:9.2f}{diff:16.2e}")

    print("\nsingle subproblems with all their constraints (no screening): the 3 nearest negatives")
    print(f"{'solver':22s}{'s / QP':>11s}{'ratio':>9s}{'max |eps diff|':>16s}")
    prep = exact_mod.Prepared(X, y)
    problems = []
    for z, c in zip(Z[:4], yz[:4].tolist()):
        dz = prep.dists(z[None])[0]
        pos, neg = (y == c).nonzero().flatten(), (y != c).nonzero().flatten()
        for j in neg[torch.argsort(dz[neg])[:3]].tolist():
            problems.append(exact_mod.subproblem(prep, z, dz, j, pos))
    t_ours, sols = timed(lambda: [knn.dual_greedy_qp(A, b) for A, b in problems])
    ref = np.array([math.sqrt(2 * s.primal) for s in sols])
    print(f"{'robustkit greedy dual':22s}{t_ours / len(problems):11.3f}{1.0:9.2f}{0.0:16.2e}")
    for name, solver in [("cvxpy + OSQP", cp.OSQP), ("cvxpy + Clarabel", cp.CLARABEL)]:
        t_peer, peer = timed(lambda: [cvxpy_qp(solver)(A, b) for A, b in problems])
        diff = float(np.max(np.abs(np.array([math.sqrt(2 * s.primal) for s in peer]) - ref)))
        print(f"{name:22s}{t_peer / len(problems):11.3f}{t_peer / t_ours:9.2f}{diff:16.2e}")

    full = rk.load_dataset("mnist", "train", root=root, progress=False)
    Xf, yf = full.images.flatten(1).double(), full.labels
    okf = (knn.knn_predict(Xf, yf, te.images.flatten(1).double()[:50]) == te.labels[:50]).nonzero().flatten()
    Zf, yzf = te.images.flatten(1).double()[okf[:args.full_points]], te.labels[okf[:args.full_points]]
    print(f"\nfull MNIST (60,000 points), {len(Zf)} correctly classified test points:")
    t_e, res_e = timed(lambda: knn.exact_1nn(Xf, yf, Zf, yzf))
    t_v, res_v = timed(lambda: knn.verify_knn(Xf, yf, Zf, yzf))
    print(f"QP-exact : {t_e / len(Zf):.2f} s / point, mean eps* {res_e.mean_eps():.3f}, "
          f"QPs solved {res_e.n_solved.double().mean():.2f} of ~54,000")
    print(f"QP-verify: {t_v / len(Zf):.2f} s / point, mean bound {res_v.mean_eps():.3f}")


if __name__ == "__main__":
    main()
