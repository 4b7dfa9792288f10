"""Benchmark robustkit's Euler-Maruyama (neural SDE block) against torchsde's ``euler``.

For each diffusion of seed 003 §2.3 (additive, multiplicative, Gaussian dropout) the
same :class:`robustkit.defenses.neural_sde.SDEBlock` (conv drift, 16 channels on 14x14
feature maps, a batch of 64) is solved on ``[0, 1]`` with the same number of steps by

- robustkit: ``block(h0, brownian=...)`` (fixed-step Euler-Maruyama, drift computed once
  per step and reused by the dropout diffusion), and
- torchsde: ``sdeint(sde, y0, ts, bm=..., method="euler", dt=1/steps)`` on the same
  flattened model (``noise_type="diagonal"``, Itô),

both driven by the *same* Brownian path (a ``torchsde.BrownianInterval`` queried by both).
Prints the median wall time of a few repeats (forward only, and forward + backward), the
ratio torchsde / robustkit (> 1: robustkit faster) and the largest relative difference
between the two solutions (same path: float rounding only). Runs in well under a minute::

    python benchmarks/bench_sde.py [--repeats 5] [--steps 16] [--dtype float32]
"""
from __future__ import annotations

import argparse

import torch
import torch.nn as nn
import torchsde

from robustkit.defenses.neural_sde import SDEBlock
from _timing import median_time  # benchmarks/_timing.py


class TorchsdeWrapper(nn.Module):
    """The block's drift and diagonal diffusion on flattened states, in torchsde's interface."""

    noise_type, sde_type = "diagonal", "ito"

    def __init__(self, block: SDEBlock, shape):
        super().__init__()
        self.block, self.shape = block, tuple(shape)

    def f(self, t, y):
        return self.block.drift(t, y.view(self.shape)).flatten(1)

    def g(self, t, y):
        s = self.block.sigma
        if self.block.diffusion == "additive":
            return torch.full_like(y, s)
        if self.block.diffusion == "multiplicative":
            return s * y
        return (s * self.block.drift(t, y.view(self.shape))).flatten(1)

    def f_and_g(self, t, y):  # one drift evaluation per step, as in robustkit
        f = self.f(t, y)
        if self.block.diffusion == "dropout":
            return f, self.block.sigma * f
        return f, self.g(t, y)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--steps", type=int, default=16)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    args = parser.parse_args()
    dtype = getattr(torch, args.dtype)
    shape = (args.batch, 16, 14, 14)
    d = 16 * 14 * 14
    rows = []
    for diffusion in ("additive", "multiplicative", "dropout"):
        torch.manual_seed(0)
        block = SDEBlock(16, diffusion=diffusion, sigma=0.5, steps=args.steps).to(dtype)
        sde = TorchsdeWrapper(block, shape)
        h0 = torch.randn(shape, dtype=dtype)
        bm = torchsde.BrownianInterval(t0=0.0, t1=1.0, size=(args.batch, d), dtype=dtype, entropy=1)
        ts = torch.tensor([0.0, 1.0], dtype=dtype)
        path = lambda a, b: bm(a, b).view(shape)  # noqa: E731

        def ours():
            return block(h0, brownian=path)

        def theirs():
            return torchsde.sdeint(sde, h0.flatten(1), ts, bm=bm, method="euler", dt=1 / args.steps)[-1].view(shape)

        def backward(fn):
            def run():
                block.zero_grad(set_to_none=True)
                out = fn()
                out.square().mean().backward()
                return out.detach()
            return run

        with torch.no_grad():
            t_ours, y_ours = median_time(ours, args.repeats)
            t_theirs, y_theirs = median_time(theirs, args.repeats)
        diff = ((y_ours - y_theirs).norm() / y_theirs.norm()).item()
        rows.append((f"{diffusion:<14} forward", t_ours, t_theirs, diff))
        tb_ours, _ = median_time(backward(ours), args.repeats)
        tb_theirs, _ = median_time(backward(theirs), args.repeats)
        rows.append((f"{diffusion:<14} forward+backward", tb_ours, tb_theirs, float("nan")))

    print(f"Euler-Maruyama, SDE block 16x14x14, batch {args.batch}, {args.steps} steps, {args.dtype}, "
          f"torch threads {torch.get_num_threads()}")
    print(f"{'task':<34} {'robustkit (s)':>13} {'torchsde (s)':>13} {'ratio':>7} {'rel. diff':>10}")
    for name, a, b, dv in rows:
        print(f"{name:<34} {a:13.4f} {b:13.4f} {b / a:7.2f} {dv:10.1e}")


if __name__ == "__main__":
    main()
