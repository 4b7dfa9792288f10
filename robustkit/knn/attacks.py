"""Attacks on K-NN classifiers: upper bounds of the minimal adversarial perturbation.

Seed 003 §3.1.3 and §3.1.5: QP-greedy for K-NN (Algorithm 6, QP eq. 3.17), and the
baselines Naive-1 / Naive-10 (move towards a nearby training point of another class, or
towards the mean of a same-class cluster of ``(K+1)/2`` such points for ``K > 1``), Mean
(move towards the nearest class mean) and Substitute (normalized gradient steps on a
differentiable soft nearest-neighbor substitute, Papernot et al. 2016). Every result is a
point whose K-NN prediction differs from the clean one (``success``), found by an exact
search along a segment (:func:`line_search_attack`), never a guess.

Used by chapter 8 (Tables 3.1-3.2).
"""
from __future__ import annotations

import math

import torch

from ._common import PerturbationResult, as_labels, check_k, single_thread, sq_dists, vote
from .exact import Prepared
from .qp import dual_greedy_qp

__all__ = ["line_search_attack", "naive_attack", "mean_attack", "substitute_attack", "qp_greedy"]


def _first_flip(alpha, beta, labels, n_classes: int, c: int, k: int, grid: int = 257, iters: int = 40):
    """Smallest t in [0, 1] such that the K-NN prediction at z + t (p - z) differs from c
    (grid then bisection); returns (t, success). Along a line ``d(z + t u, x_i) = alpha_i +
    2 t beta_i + t^2 ||u||^2`` (``alpha_i = d(z, x_i)``, ``beta_i = (z - x_i) . u`` in the
    metric): the last term is common to all points, so the neighbor ranking only depends
    on the lines ``alpha_i + 2 t beta_i``; points that are never among the K lowest lines
    on [0, 1] are dropped first."""
    f0, f1 = alpha, alpha + 2 * beta
    U = torch.topk(torch.maximum(f0, f1), k, largest=False).values[-1]
    keep = torch.minimum(f0, f1) <= U
    a, bt, lab = alpha[keep], beta[keep], labels[keep]

    def pred_at(ts):
        vals = a[None, :] + 2 * ts[:, None] * bt[None, :]
        idx = torch.topk(vals, k, dim=1, largest=False).indices
        return vote(lab[idx], n_classes)

    ts = torch.linspace(0, 1, grid, dtype=alpha.dtype, device=alpha.device)
    flipped = pred_at(ts) != c
    flipped[0] = False
    if not flipped.any():
        return math.inf, False
    g = int(flipped.nonzero()[0])
    lo, hi = float(ts[g - 1]), float(ts[g])
    for _ in range(iters):
        mid = 0.5 * (lo + hi)
        if bool(pred_at(torch.tensor([mid], dtype=alpha.dtype, device=alpha.device))[0] != c):
            hi = mid
        else:
            lo = mid
    return hi, True


def line_search_attack(train_x, train_y, x, targets, *, k: int = 1, G=None, y=None) -> PerturbationResult:
    """Move each test point ``x[b]`` towards ``targets[b]`` and stop at the first point of the
    segment where the K-NN prediction changes (exact up to 1e-15 of the segment). Used by
    the Naive / Mean / Substitute attacks (seed 003 §3.1.5) and chapter 8."""
    prep = Prepared(train_x, train_y, G)
    Z = prep.test_points(x)
    P = prep.test_points(targets)
    if P.shape[0] != Z.shape[0]:
        raise ValueError("targets must have one row per test point")
    return _segments(prep, Z, [P[b][None] for b in range(P.shape[0])], k, y, "line search")


def _segments(prep, Z, cand_list, k, y, method):
    """Best (shortest) successful segment attack among candidate endpoints per test point."""
    B = Z.shape[0]
    k = check_k(k, prep.X.shape[0])
    pred = prep.predict(Z, k)
    if y is not None:
        y = as_labels(y, B, "y", device=Z.device)
    eps = torch.full((B,), math.inf, dtype=torch.float64, device=Z.device)
    delta = torch.zeros_like(Z)
    success = torch.zeros(B, dtype=torch.bool, device=Z.device)
    D = prep.dists(Z)
    for bi in range(B):
        z, c = Z[bi], int(pred[bi])
        if y is not None and int(y[bi]) != c:
            eps[bi], success[bi] = 0.0, True
            continue
        P = cand_list[bi]
        gz = z if prep.G is None else prep.G @ z
        U = P - z                                                     # (m, d) directions
        GU = U if prep.G is None else U @ prep.G.T
        alpha = D[bi]                                                 # d_M(z, x_i)
        betas = (gz @ GU.T)[None, :] - prep.GX @ GU.T                 # (n, m): (z - x_i) . u
        for m in range(P.shape[0]):
            with single_thread():
                t, ok = _first_flip(alpha, betas[:, m], prep.y, prep.n_classes, c, k)
            if not ok:
                continue
            # step just past the boundary so that the plain classifier sees the change
            tau = 1e-9
            while True:
                tt = min(1.0, t + tau)
                d = tt * U[m]
                if bool(prep.predict((z + d)[None], k)[0] != c) or tt >= 1.0:
                    break
                tau *= 10
            n = float(d.norm())
            if n < eps[bi]:
                eps[bi], delta[bi], success[bi] = n, d, True
    x_adv = Z + delta
    if success.any():     # report only what really changes the prediction
        really = prep.predict(x_adv, k) != pred
        bad = success & ~really & (eps > 0)
        eps[bad], success[bad] = math.inf, False
    return PerturbationResult(eps=eps, delta=delta, success=success, pred=pred, x_adv=x_adv,
                              info={"method": method})


def naive_attack(train_x, train_y, x, y=None, *, k: int = 1, n_tries: int = 1, G=None) -> PerturbationResult:
    """Naive-1 / Naive-10 (seed 003 §3.1.5, after Amsaleg et al. 2017 and Sitawarin & Wagner
    2019): move towards each of the ``n_tries`` training points of another class nearest to
    the test point (for ``k > 1``, towards the mean of the ``(k+1)/2`` points of that class
    nearest to it, itself included) and keep the shortest successful segment."""
    prep = Prepared(train_x, train_y, G)
    Z = prep.test_points(x)
    k = check_k(k, prep.X.shape[0])
    if isinstance(n_tries, bool) or not isinstance(n_tries, int) or n_tries < 1:
        raise ValueError(f"n_tries must be a positive integer, got {n_tries!r}")
    pred = prep.predict(Z, k)
    D = prep.dists(Z)
    s = (k + 1) // 2
    cands = []
    for bi in range(Z.shape[0]):
        neg = (prep.y != pred[bi]).nonzero().flatten()
        js = neg[torch.topk(D[bi, neg], min(n_tries, neg.numel()), largest=False).indices]
        if s == 1:
            cands.append(prep.X[js])
        else:
            ends = []
            for j in js.tolist():
                same = (prep.y == prep.y[j]).nonzero().flatten()
                dj = sq_dists(prep.GX[j][None], prep.GX[same])[0]
                cl = same[torch.topk(dj, min(s, same.numel()), largest=False).indices]
                ends.append(prep.X[cl].mean(0))
            cands.append(torch.stack(ends))
    res = _segments(prep, Z, cands, k, y, f"Naive-{n_tries}")
    return res


def mean_attack(train_x, train_y, x, y=None, *, k: int = 1, G=None) -> PerturbationResult:
    """Mean (seed 003 §3.1.5, Sitawarin & Wagner 2019): move towards the nearest mean of
    another class; fails (``eps = inf``) when the whole segment keeps the prediction."""
    prep = Prepared(train_x, train_y, G)
    Z = prep.test_points(x)
    k = check_k(k, prep.X.shape[0])
    pred = prep.predict(Z, k)
    means = torch.stack([prep.X[prep.y == c].mean(0) if (prep.y == c).any()
                         else torch.full_like(prep.X[0], float("nan")) for c in range(prep.n_classes)])
    dm = sq_dists(Z, torch.nan_to_num(means, nan=1e30))
    dm[torch.arange(Z.shape[0]), pred] = math.inf
    dm[:, torch.isnan(means[:, 0])] = math.inf
    cands = [means[dm[bi].argmin()][None] for bi in range(Z.shape[0])]
    return _segments(prep, Z, cands, k, y, "Mean")


def substitute_attack(train_x, train_y, x, y=None, *, k: int = 1, steps: int = 100,
                      step_size: float | None = None, temperature: float | None = None,
                      box=None) -> PerturbationResult:
    """Substitute (seed 003 §3.1.5, Papernot et al. 2016): normalized gradient descent on the
    margin of a soft nearest-neighbor model ``logit_c(x) = logsumexp_{i: y_i = c}
    (-||x - x_i||^2 / T)``, batched over test points; each trajectory stops when the true
    K-NN prediction changes, and the perturbation is then shortened by a line search along
    it. ``T`` defaults to 0.1 times the mean squared distance to the nearest training point
    (a sharp surrogate: with ``T`` of the order of that distance, the soft model averages
    many neighbors and its gradient points towards class means, a much weaker attack);
    ``step_size`` to 1/20 of the median distance to the nearest point of another class."""
    prep = Prepared(train_x, train_y)
    Z = prep.test_points(x)
    k = check_k(k, prep.X.shape[0])
    B = Z.shape[0]
    pred = prep.predict(Z, k)
    D = sq_dists(Z, prep.X)
    other = prep.y[None, :] != pred[:, None]
    if temperature is None:
        temperature = 0.1 * float(D.min(1).values.mean().clamp_min(1e-12))
    if step_size is None:
        step_size = float(torch.where(other, D, torch.full_like(D, math.inf)).min(1).values.sqrt().median()) / 20
    if not (temperature > 0 and step_size > 0):
        raise ValueError("temperature and step_size must be positive")
    onehot = torch.nn.functional.one_hot(prep.y, prep.n_classes).bool()   # (n, C)
    xcur = Z.clone()
    done = torch.zeros(B, dtype=torch.bool, device=Z.device)
    found = Z.clone()
    for _ in range(steps + 1):
        act = (~done).nonzero().flatten()
        if act.numel() == 0:
            break
        xv = xcur[act].clone().requires_grad_(True)
        dist = sq_dists(xv, prep.X)                                      # (b, n)
        with torch.no_grad():                                            # the true K-NN at xcur
            idx = torch.topk(dist, k, dim=1, largest=False).indices
            now = vote(prep.y[idx], prep.n_classes) != pred[act]
        found[act[now]] = xcur[act[now]]
        done[act[now]] = True
        logits_pt = -dist / temperature
        masked = logits_pt[:, :, None].masked_fill(~onehot[None], -math.inf)
        logits = torch.logsumexp(masked, dim=1)                          # (b, C)
        true = logits.gather(1, pred[act][:, None])[:, 0]
        others = logits.scatter(1, pred[act][:, None], -math.inf).amax(1)
        (grad,) = torch.autograd.grad((true - others).sum(), xv)
        gnorm = grad.norm(dim=1, keepdim=True).clamp_min(1e-30)
        step = torch.where(now[:, None], torch.zeros_like(grad), -step_size * grad / gnorm)
        new = xcur[act] + step.detach()
        if box is not None:
            new = new.clamp(float(box[0]), float(box[1]))
        xcur[act] = new
    cands = [found[bi][None] for bi in range(B)]
    res = _segments(prep, Z, cands, k, y, "Substitute")
    return res


def qp_greedy(train_x, train_y, x, y=None, *, k: int = 15, t: int = 10, n_init: int = 64,
              margin: float = 1e-7, max_iter: int = 20_000) -> PerturbationResult:
    """QP-greedy attack on K-NN (seed 003 Algorithm 6, QP eq. 3.17); ``k = 1`` gives QP-top-t.

    For the negatives ``x_j`` in ascending distance to ``z``: ``J`` = the ``(k+1)/2`` points
    of class ``y_j`` nearest to ``x_j`` (itself included), ``S+`` = the points of the other
    classes, ``I`` = the ``(k-1)/2`` points of ``S+`` nearest to ``z``; solve
    ``min ||delta||`` s.t. every point of ``J`` is closer to ``z + delta`` than every point of
    ``S+ \\ I`` (then at least ``(k+1)/2`` of the K nearest neighbors have label ``y_j``), by
    the dual greedy solver with constraint generation (start from the ``n_init`` points of
    ``S+ \\ I`` nearest to ``z`` and to ``x_j``, add violated pairs until feasible). A small
    geometric ``margin`` makes the inequalities strict. Stops after ``t`` solved QPs."""
    prep = Prepared(train_x, train_y)
    Z = prep.test_points(x)
    k = check_k(k, prep.X.shape[0])
    B = Z.shape[0]
    if y is not None:
        y = as_labels(y, B, "y", device=Z.device)
    pred = prep.predict(Z, k)
    D = prep.dists(Z)
    s = (k + 1) // 2
    eps = torch.full((B,), math.inf, dtype=torch.float64, device=Z.device)
    delta = torch.zeros_like(Z)
    success = torch.zeros(B, dtype=torch.bool, device=Z.device)
    n_solved = torch.zeros(B, dtype=torch.int64, device=Z.device)
    for bi in range(B):
        z, c, dz = Z[bi], int(pred[bi]), D[bi]
        if y is not None and int(y[bi]) != c:
            eps[bi], success[bi] = 0.0, True
            continue
        neg = (prep.y != c).nonzero().flatten()
        order = neg[torch.argsort(dz[neg], stable=True)].tolist()
        best = math.inf
        for j in order:
            if n_solved[bi] >= t:
                break
            cj = int(prep.y[j])
            same = (prep.y == cj).nonzero().flatten()
            J = same[torch.topk(sq_dists(prep.X[j][None], prep.X[same])[0], s, largest=False).indices]
            splus = (prep.y != cj).nonzero().flatten()
            if s > 1:
                I = splus[torch.topk(dz[splus], s - 1, largest=False).indices]
                splus = splus[~torch.isin(splus, I)]
            dJ = sq_dists(prep.X[J].mean(0)[None], prep.X[splus])[0]
            init = torch.unique(torch.cat([
                torch.topk(dz[splus], min(n_init, splus.numel()), largest=False).indices,
                torch.topk(dJ, min(n_init, splus.numel()), largest=False).indices]))
            work = torch.zeros(splus.numel(), s, dtype=torch.bool, device=Z.device)
            work[init] = True
            n_solved[bi] += 1
            stop = 0.5 * best * best if math.isfinite(best) else None
            result = None
            for _ in range(100):
                ii, jj = work.nonzero(as_tuple=True)
                A = prep.X[J][jj] - prep.X[splus][ii]
                an = A.norm(dim=1)
                bvec = 0.5 * (dz[splus][ii] - dz[J][jj]) - margin * an
                try:
                    sol = dual_greedy_qp(A, bvec, stop_value=stop, max_iter=max_iter)
                except ValueError:
                    break
                if sol.status == "pruned" or sol.max_violation > 1e-6:
                    break
                p = z + sol.delta
                dp_plus = ((prep.X[splus] - p) ** 2).sum(1)
                dp_J = ((prep.X[J] - p) ** 2).sum(1)
                viol = dp_J[None, :] - dp_plus[:, None]          # > 0: violated pair
                bad = (viol > 0) & ~work
                if not bad.any():
                    result = sol.delta
                    break
                flat = torch.where(bad, viol, torch.full_like(viol, -math.inf)).flatten()
                top = torch.topk(flat, min(256, int(bad.sum())), largest=True).indices
                work.view(-1)[top] = True
            if result is not None:
                n = float(result.norm())
                if n < best:
                    best = n
                    eps[bi], delta[bi], success[bi] = n, result, True
    x_adv = Z + delta
    if success.any():     # double-check with the real classifier; failures are reported
        really = prep.predict(x_adv, k) != pred
        bad = success & ~really & (eps > 0)
        eps[bad], success[bad] = math.inf, False
    return PerturbationResult(eps=eps, delta=delta, success=success, pred=pred, x_adv=x_adv,
                              n_solved=n_solved, info={"method": "QP-greedy"})
