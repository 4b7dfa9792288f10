# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 7. Neural SDE: noise as a defense
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/robustkit/robustness-course/blob/main/chapters/07_neural_sde.ipynb)
#
# **Learning goals.** After this chapter you can
# - write a residual network as a Neural ODE and add the diffusion and jump terms that model
#   Gaussian noise and dropout in continuous depth (a *Neural SDE*);
# - solve such an equation with the Euler-Maruyama scheme, state its strong order, and check
#   it against a closed-form solution and against `torchsde`;
# - explain with the perturbation equation and Corollary 2.1 why multiplicative noise can make
#   a network's response to small input perturbations *decay* with depth;
# - train ODE and SDE classifiers, predict with a test-time-noise ensemble, and evaluate them on
#   corrupted images and under L2 PGD with expectation over transformation (EOT), knowing how
#   much a naive single-draw attack overstates robustness.
#
# **Prerequisites.** [Adversarial attacks](02_adversarial_attacks) (PGD, robust accuracy,
# gradient-masking checks), [Randomized defenses](06_randomized_defenses) (noise layers, EOT);
# Brownian motion at the level of "increments are independent $\mathcal N(0,\Delta t)$".
#
# **Sources.** Seed 003 §2.3 {cite}`liu2021trustworthy`, i.e. the Neural SDE paper
# {cite}`liu2020how`; Neural ODEs {cite}`chen2018neural`; numerical SDEs
# {cite}`kloeden1992numerical`; the peer solver `torchsde` {cite}`li2020scalable`.

# %% tags=["remove-cell"]
# Install what is missing (Colab already has torch, numpy and matplotlib).
import importlib.util, subprocess, sys
if importlib.util.find_spec("robustkit") is None:
    url = "git+https://github.com/robustkit/robustness-course"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", f"robustkit @ {url}"],
                   check=True)

# %% tags=["parameters"]
# Parameters: the budget decides the sizes (ROBUSTKIT_BUDGET=smoke|cpu|gpu).
import robustkit as rk

budget = rk.get_budget()
SEED = 0
DATASET = budget.pick(smoke="mnist", cpu="fashion-mnist", gpu="cifar10")  # falls back below
N_TRAIN = budget.pick(smoke=1_000, cpu=5_000, gpu=None)   # None: the whole training set
N_TEST = budget.pick(smoke=200, cpu=1_000, gpu=10_000)
EPOCHS = budget.pick(smoke=1, cpu=3, gpu=20)
LR = 3e-3
WIDTH = budget.pick(smoke=8, cpu=16, gpu=64)              # channels of the hidden state
STEPS = budget.pick(smoke=2, cpu=4, gpu=8)                # Euler-Maruyama steps on [0, 1]
TTN_SAMPLES = budget.pick(smoke=2, cpu=8, gpu=20)         # draws of the test-time-noise ensemble
N_CORRUPT = budget.pick(smoke=64, cpu=150, gpu=2_000)     # test images per corruption and level
N_ATTACK = budget.pick(smoke=32, cpu=100, gpu=1_000)      # test images attacked
ATTACK_STEPS = budget.pick(smoke=3, cpu=10, gpu=20)       # L2 PGD steps (seed: 20)
EOT_SAMPLES = budget.eot_samples                          # gradient draws of the EOT attack
print(f"budget: {budget.name}, {DATASET}, {N_TRAIN or 'all'} training images, {EPOCHS} epochs, "
      f"{STEPS} solver steps, TTN {TTN_SAMPLES} draws, EOT {EOT_SAMPLES} draws")

# %%
import math
import time

import ipywidgets as widgets
import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F

from robustkit.attacks import PGD, ExpectedModel, accuracy_vs_eps, gradient_masking_report
from robustkit.defenses import neural_sde as nsde
from robustkit.modes import stochastic
from robustkit.uncertainty.corruptions import CORRUPTIONS, corrupt

rk.plot.set_style()
_ = rk.seed_everything(SEED)

# %% [markdown]
# ## 7.1 From residual networks to Neural ODEs
#
# A residual block updates a hidden state by a learned increment,
# $\mathbf h_{n+1}=\mathbf h_n+\mathbf f(\mathbf h_n;\mathbf w_n)$. Read $n$ as a time and the
# increment as one step of length 1: in the continuous limit the network becomes an ordinary
# differential equation, the *Neural ODE* {cite}`chen2018neural` (seed 003, eq. 2.28-2.29),
#
# $$
# \mathbf h_{n+1}=\mathbf h_n+\mathbf f(\mathbf h_n;\mathbf w_n)
# \quad\longrightarrow\quad
# \mathbf h_t=\mathbf h_s+\int_s^t \mathbf f(\mathbf h_\tau,\tau;\mathbf w)\,d\tau ,
# $$ (eq-07-node)
#
# where the depth $t$ is continuous and $\mathbf f$ (here a small convolutional block with the
# time as an extra input channel) is shared across depth. A solver with step $\Delta t$ turns
# it back into a network of depth $T/\Delta t$. What a discrete network can do and a Neural
# ODE cannot is to be *random*: dropout and Gaussian noise layers have no place in
# {eq}`eq-07-node`.
#
# ## 7.2 Neural SDE: drift, diffusion and jumps
#
# Seed 003 adds two stochastic terms (eq. 2.30): a diffusion driven by a Brownian motion
# $\mathbf B_t$ for Gaussian noise, and a jump term driven by a Poisson process $N_t$ for
# Bernoulli (dropout) noise,
#
# $$
# \mathbf h_t=\mathbf h_s
# +\underbrace{\int_s^t \mathbf f(\mathbf h_\tau,\tau;\mathbf w)\,d\tau}_{\text{drift}}
# +\underbrace{\int_s^t \mathbf G(\mathbf h_\tau,\tau)\,d\mathbf B_\tau}_{\text{diffusion}}
# +\underbrace{\int_s^t \mathbf J(\mathbf h_\tau,\tau)\odot\mathbf Z_{N_\tau}\,dN_\tau}_{\text{jump}} .
# $$ (eq-07-jump-diffusion)
#
# The increments $d\mathbf B_t$ are independent $\mathcal N(0,dt)$; the number of jumps in
# $[s,t]$ is Poisson,
#
# $$
# P(N_{s\to t}=n)=\frac{[\lambda(t-s)]^n}{n!}e^{-\lambda(t-s)},\qquad n=0,1,2,\dots,
# $$ (eq-07-poisson)
#
# and each jump has direction $Z=\pm1$ with $P(Z=+1)=p$. A jump is a dropout layer placed at a
# random depth. Take dropout after the block, $\mathbf h_{n+1}=\mathbf h_n+\mathbf f\odot\gamma$
# with $\gamma_i\in\{0,1\}$. Writing $\gamma=(1+Z)/2$ gives (eq. 2.31)
#
# $$
# \mathbf h_{n+1}=\mathbf h_n+\tfrac12\mathbf f(\mathbf h_n)+\tfrac12\mathbf f(\mathbf h_n)\odot\mathbf Z ,
# $$ (eq-07-dropout-jump)
#
# a drift $\tfrac12\mathbf f$ plus a jump of size $\mathbf J=\tfrac12\mathbf f$. (The seed writes
# $2\mathbf f\odot\mathbf Z$ with $\mathbf Z=(\gamma-\tfrac12)/2=\pm\tfrac14$; it is the same jump.)
# With one direction per sample instead of per feature, the same term models stochastic depth
# (eq. 2.32). Replace the two-point variable of rescaled dropout by a Gaussian with the same
# mean and variance and you get *Gaussian dropout* (eq. 2.33-2.34):
#
# $$
# \mathbf h_{n+1}=\mathbf h_n+\mathbf f(\mathbf h_n)+\sqrt{\tfrac{p_{\rm drop}}{1-p_{\rm drop}}}\;
# \mathbf f(\mathbf h_n)\odot\mathbf z_n,\qquad \mathbf z_n\sim\mathcal N(0,\mathbf I) .
# $$ (eq-07-gaussian-dropout)
#
# Gaussian noise added to each block (eq. 2.35) and noise proportional to the features (eq. 2.36)
# give the other diagonal diffusions. The four models compared in the seed's experiments (§2.3.4)
# are
#
# $$
# \mathbf G(\mathbf h,t)=
# \begin{cases}
# \mathbf 0 & \text{Neural ODE},\\
# \sigma\,\mathbf I & \text{additive noise (eq. 2.35)},\\
# \sigma\,\operatorname{diag}(\mathbf h) & \text{multiplicative noise (eq. 2.36-2.37)},\\
# \sigma\,\operatorname{diag}\,\mathbf f(\mathbf h,t;\mathbf w) & \text{Gaussian dropout, } \sigma=\sqrt{p_{\rm drop}/(1-p_{\rm drop})}.
# \end{cases}
# $$ (eq-07-diffusions)
#
# (Eq. 2.36 multiplies $\mathbf f$ by the noise, which is the Gaussian-dropout form; the
# experiments define the multiplicative model by $\mathbf G=\sigma\mathbf h$, as in the toy
# example below. We follow the experiments.)
#
# In `robustkit` the equation is an `SDEBlock`, a `StochasticModule`: it draws noise iff its
# switch `stochastic` is on, whatever `training` says, so an attack that calls `model.eval()`
# still faces the noisy model (chapter 6). With `stochastic=False` the diffusion is dropped and
# each jump is replaced by its mean, $\lambda(2p-1)\mathbf J\,dt$.

# %%
# NBVAL_CHECK_OUTPUT
for p_drop in (0.1, 0.2, 0.5):
    print(f"Gaussian dropout p = {p_drop}: sigma = {nsde.dropout_sigma(p_drop):.4f}")
print(f"P(no jump on [0, 1]) for lambda = 2: {math.exp(-2):.4f}")

# %% [markdown]
# A one-dimensional look at the three terms: the same drift $f(h)=-h$ with additive noise,
# with multiplicative noise, and with dropout-like jumps of size $J=\tfrac12 f$ (rate
# $\lambda=3$, one direction per jump). The jump counts over $[0,T]$ must follow
# {eq}`eq-07-poisson`; the right panel compares their histogram over many paths with the
# Poisson law (the tests check it with a chi-square test).

# %%
g = torch.Generator().manual_seed(SEED)
T_DEMO, STEPS_DEMO, PATHS = 3.0, 300, 4000
ts_demo = nsde.time_grid(T_DEMO, STEPS_DEMO, dtype=torch.float64)
h0_demo = torch.ones(PATHS, 1, dtype=torch.float64)
decay = nsde.LinearDrift(1, a=-1.0).double()
demo_blocks = {
    "additive, $\\sigma=0.3$": nsde.SDEBlock(drift=decay, diffusion="additive", sigma=0.3,
                                             t1=T_DEMO, steps=STEPS_DEMO),
    "multiplicative, $\\sigma=0.6$": nsde.SDEBlock(drift=decay, diffusion="multiplicative",
                                                   sigma=0.6, t1=T_DEMO, steps=STEPS_DEMO),
    "jumps, $\\lambda=3$, $J=f/2$": nsde.SDEBlock(drift=decay, t1=T_DEMO, steps=STEPS_DEMO,
                                                  jump_rate=3.0, jump_scale=0.5,
                                                  jump_kind="depth"),
}
fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(11, 3.6))
with torch.no_grad():
    for (name, blk), color in zip(demo_blocks.items(), ["C0", "C1", "C2"]):
        path = blk(h0_demo, generator=g, return_path=True)[:, :3, 0]
        ax0.plot(ts_demo, path, color=color, lw=0.9, label=[name, None, None])
    ax0.plot(ts_demo, torch.exp(-ts_demo), "k--", lw=1.2, label="ODE: $e^{-t}$")
    # jump counts: unit jumps of sign +1 with no drift count the jumps
    counter = nsde.SDEBlock(drift=nsde.LinearDrift(1, a=0.0).double(), t1=T_DEMO,
                            steps=STEPS_DEMO, jump_rate=3.0, jump_p=1.0, jump_size="constant",
                            jump_kind="depth")
    counts = counter(torch.zeros(PATHS, 1, dtype=torch.float64), generator=g)[:, 0]
ax0.set(xlabel="depth $t$", ylabel="$h_t$", title="three noise terms, same drift $f(h)=-h$")
ax0.legend(fontsize=7)
k = np.arange(0, int(counts.max()) + 1)
ax1.bar(k, [(counts == i).double().mean().item() for i in k], color="C2", alpha=0.6,
        label=f"{PATHS} simulated paths")
ax1.plot(k, [math.exp(-3 * T_DEMO) * (3 * T_DEMO) ** i / math.factorial(i) for i in k], "ko",
         label=r"Poisson($\lambda T$)")
ax1.set(xlabel=f"number of jumps on [0, {T_DEMO:g}]", ylabel="frequency",
        title=f"jump counts: mean {counts.mean():.2f}, var {counts.var():.2f} "
              f"($\\lambda T$ = {3 * T_DEMO:g})")
ax1.legend()
plt.show()

# %% [markdown]
# *Figure 7.1: left, three sample paths of each kind of noise around the ODE solution
# $e^{-t}$ (additive noise keeps the path jittering around 0, multiplicative noise shrinks with
# the state, jumps add or remove half a drift step at random depths); right, the number of jumps
# on $[0,3]$ follows the Poisson law {eq}`eq-07-poisson` with $\lambda T=9$.*
#
# ## 7.3 Solving the SDE: Euler-Maruyama
#
# Seed 003 trains the network by "calling a black-box SDE solver" and back-propagating through
# it (Algorithm 4). We use the simplest one, the Euler-Maruyama scheme
# {cite}`kloeden1992numerical`: on a grid $t_k=k\,\Delta t$,
#
# $$
# \mathbf h_{k+1}=\mathbf h_k+\mathbf f(\mathbf h_k,t_k)\,\Delta t
# +\mathbf G(\mathbf h_k,t_k)\,\Delta\mathbf B_k
# +\mathbf J(\mathbf h_k,t_k)\odot\textstyle\sum_{j=1}^{\Delta N_k}\mathbf Z_j ,
# \qquad \Delta\mathbf B_k\sim\mathcal N(0,\Delta t\,\mathbf I),\ \Delta N_k\sim\mathrm{Poisson}(\lambda\Delta t).
# $$ (eq-07-euler-maruyama)
#
# Without noise it is the explicit Euler scheme, and with $\Delta t=1$ it *is* a residual
# network with noise layers. Its **strong error** on a path, the error of one solution driven by
# one Brownian path, is
#
# $$
# \mathbb E\,\big\|\mathbf h_T-\hat{\mathbf h}_T^{\Delta t}\big\| \le C\,\Delta t^{\gamma},
# \qquad \gamma=\tfrac12 \text{ in general},\quad \gamma=1 \text{ for additive noise or an ODE}.
# $$ (eq-07-strong-order)
#
# `nsde.euler_maruyama(drift, h0, ts, diffusion, brownian=...)` accepts the Brownian path as
# increments or as a callable `bm(t0, t1)`, so one path can drive several solves. The tests
# check that it matches `torchsde`'s `euler` method on the same `BrownianInterval` (identical to
# float rounding) and that `benchmarks/bench_sde.py` runs at the same speed. Here we check the
# order on geometric Brownian motion, $dx=\mu x\,dt+\sigma x\,dB$, whose exact solution on the
# same path is known (it is also the toy model of §7.4):
#
# $$
# x_t=x_0\exp\!\Big(\big(\mu-\tfrac{\sigma^2}{2}\big)t+\sigma B_t\Big).
# $$ (eq-07-gbm)

# %%
def strong_errors(mu, sigma, levels, fine=2 ** 10, paths=2_000, seed=SEED):
    """Mean |Euler-Maruyama - exact| at T = 1 for GBM, each level on the same Brownian path."""
    gen = torch.Generator().manual_seed(seed)
    ts_fine = nsde.time_grid(1.0, fine, dtype=torch.float64)
    dB = nsde.brownian_increments((paths,), ts_fine, generator=gen)
    B_T = dB.sum(0)
    exact = nsde.gbm_solution(1.0, mu, sigma, ts_fine[[0, -1]], torch.stack([0 * B_T, B_T]))[-1]
    errors = []
    for n in levels:
        coarse = dB.view(n, fine // n, paths).sum(1)          # the same path on a coarser grid
        x_T = nsde.euler_maruyama(lambda t, x: mu * x, torch.ones(paths, dtype=torch.float64),
                                  nsde.time_grid(1.0, n, dtype=torch.float64),
                                  lambda t, x: sigma * x, brownian=coarse)
        errors.append((x_T - exact).abs().mean().item())
    return np.array(errors)


levels = [2 ** k for k in range(2, 9)]
dts = 1 / np.array(levels)
gbm_errors = strong_errors(1.0, 1.0, levels)
slope_gbm = np.polyfit(np.log(dts), np.log(gbm_errors), 1)[0]
print(f"GBM (mu = 1, sigma = 1): fitted strong order {slope_gbm:.2f} (theory 0.5)")

# %% [markdown]
# The same measurement on a network: the relative error of the hidden state at $T=1$,
# $\varepsilon=\|\mathbf h_T-\hat{\mathbf h}_T\|/\|\mathbf h_T\|$, with the ground truth
# $\mathbf h_T$ computed on a fine grid of `FINE` steps ($2^{10}$ at the cpu budget; seed 003,
# Fig. 2.13 right). We use an
# untrained SDE block on the stem features of a few images (the trained ones follow in §7.6),
# one Brownian path per image shared by all step sizes. The left panel times a forward and
# backward pass against the depth $T/\Delta t$ (Fig. 2.13 left).

# %%
FINE = budget.pick(smoke=2 ** 6, cpu=2 ** 10, gpu=2 ** 12)   # steps of the reference solution


def solver_errors(block, h0, levels, fine=FINE, seed=SEED):
    """Relative error of h_T for each number of steps, against a fine solve on the same path."""
    gen = torch.Generator().manual_seed(seed)
    steps_saved = block.steps
    dB = nsde.brownian_increments(h0.shape, nsde.time_grid(block.t1, fine, dtype=h0.dtype),
                                  generator=gen)
    errs = []
    with torch.no_grad():
        block.steps = fine
        ref = block(h0, brownian=dB)
        for n in levels:
            block.steps = n
            coarse = dB.view(n, fine // n, *h0.shape).sum(1)
            errs.append(((block(h0, brownian=coarse) - ref).flatten(1).norm(dim=1)
                         / ref.flatten(1).norm(dim=1)).mean().item())
    block.steps = steps_saved
    return np.array(errs)


probe = rk.load_dataset("mnist", "test", n=8, seed=SEED).images
torch.manual_seed(SEED)
net = nsde.NeuralSDEClassifier(1, 10, 16, diffusion="none")
with torch.no_grad():
    h0_probe = net.initial_state(probe).double()
net_levels = [2 ** k for k in range(1, int(math.log2(FINE)) - 2)]
block_errors = {}
for name, cfg in {"ODE": dict(diffusion="none"),
                  "additive": dict(diffusion="additive", sigma=0.5),
                  "multiplicative": dict(diffusion="multiplicative", sigma=0.5),
                  "dropout": dict(diffusion="dropout", sigma=0.5)}.items():
    blk = nsde.SDEBlock(drift=net.block.drift, **cfg).double()
    block_errors[name] = solver_errors(blk, h0_probe, net_levels)

depths = budget.pick(smoke=[1, 2, 4], cpu=[1, 2, 4, 8, 16], gpu=[1, 2, 4, 8, 16, 32])
x_time, y_time = probe.repeat(16, 1, 1, 1), torch.arange(128) % 10
timings = {}
for name, cfg in {"ODE": dict(diffusion="none"), "SDE (dropout)": dict(diffusion="dropout", sigma=0.5)}.items():
    torch.manual_seed(SEED)
    m = nsde.NeuralSDEClassifier(1, 10, 16, **cfg)
    timings[name] = []
    for n in depths:
        m.block.steps = n
        start = time.perf_counter()
        F.cross_entropy(m(x_time), y_time).backward()
        timings[name].append(time.perf_counter() - start)

fig, (a0, a1, a2) = plt.subplots(1, 3, figsize=(14, 3.6))
for name, t in timings.items():
    a0.plot(depths, t, "o-", label=name)
a0.set(xlabel="number of steps $T/\\Delta t$ (depth)", ylabel="seconds per batch of 128",
       title="forward + backward time")
a0.legend()
a1.loglog(dts, gbm_errors, "o-", label=f"Euler-Maruyama (slope {slope_gbm:.2f})")
a1.loglog(dts, gbm_errors[0] * (dts / dts[0]) ** 0.5, "k--", label=r"$\Delta t^{1/2}$")
a1.set(xlabel=r"$\Delta t$", ylabel="mean |error| at T = 1", title="GBM: strong error")
a1.legend()
for name, e in block_errors.items():
    s = np.polyfit(np.log(1 / np.array(net_levels)), np.log(e), 1)[0]
    a2.loglog(1 / np.array(net_levels), e, "o-", label=f"{name} (slope {s:.2f})")
a2.set(xlabel=r"$\Delta t$", ylabel=r"$\|h_T-\hat h_T\|/\|h_T\|$", title="SDE block: relative error")
a2.legend(fontsize=8)
plt.show()

# %% [markdown]
# *Figure 7.2 (seed 003 Fig. 2.13): left, the cost grows linearly with the number of steps and
# the noise adds little to it; middle, Euler-Maruyama converges at strong order 1/2 on geometric
# Brownian motion; right, on the network block the ODE and additive noise converge at order 1;
# with the state-dependent diffusions (multiplicative, dropout) the fitted slope lies between 1/2
# and 1: at coarse steps the first-order drift error dominates, and the order-1/2 noise error
# takes over as $\Delta t\to0$. The errors at a few steps are small compared with the size of the
# hidden state, as the seed observes: a coarse grid is enough for the task.*
#
# ## 7.4 A toy example: noise that stabilizes
#
# Why would noise make a network *more* stable? Seed 003 (eq. 2.38) starts from
#
# $$
# dx_t=x_t\,dt+\sigma x_t\,dB_t .
# $$ (eq-07-toy)
#
# With $\sigma=0$ it is the ODE $x_t=x_0e^t$: any perturbation $x_0=\epsilon$ of the equilibrium
# $0$ is amplified exponentially. With $\sigma\neq0$ it is the geometric Brownian motion
# {eq}`eq-07-gbm` with $\mu=1$, and since $B_t/t\to0$,
# $\frac1t\log|x_t|\to1-\frac{\sigma^2}{2}$ almost surely: for $\sigma>\sqrt2$ almost every
# path decays to $0$. Beware the averages, though: $\mathbb E[x_t]=x_0e^t$ for *every* $\sigma$
# (a few huge paths carry the mean). It is the typical path, measured by $\log|x_t|$ (or the
# median), that the noise tames.

# %%
def toy_paths(sigma, x0=0.1, T=4.0, steps=4_000, paths=200, seed=SEED):
    """Euler-Maruyama paths of eq. (2.38) and the exact solution on the same Brownian paths."""
    gen = torch.Generator().manual_seed(seed)
    ts = nsde.time_grid(T, steps, dtype=torch.float64)
    dB = nsde.brownian_increments((paths,), ts, generator=gen)
    em = nsde.euler_maruyama(lambda t, x: x, torch.full((paths,), x0, dtype=torch.float64), ts,
                             lambda t, x: sigma * x, brownian=dB, return_path=True)
    B = torch.cat([torch.zeros(1, paths, dtype=torch.float64), dB.cumsum(0)])
    return ts, em, nsde.gbm_solution(x0, 1.0, sigma, ts, B)


fig, axes = plt.subplots(1, 2, figsize=(11, 3.6), sharey=True)
for ax, sigma in zip(axes, (0.0, 2.8)):
    ts_toy, em, exact = toy_paths(sigma)
    ax.semilogy(ts_toy, exact[:, :20].abs(), color="C0", lw=0.6, alpha=0.6)
    ax.semilogy(ts_toy, em.abs().median(1).values, "C3", lw=2, label="median of 200 paths (Euler-Maruyama)")
    ax.semilogy(ts_toy, 0.1 * torch.exp((1 - sigma ** 2 / 2) * ts_toy), "k--",
                label=r"$x_0\,e^{(1-\sigma^2/2)t}$")
    ax.set(xlabel="t", title=rf"$\sigma={sigma}$", ylim=(1e-8, 1e3))
    ax.legend(fontsize=8, loc="lower left")
axes[0].set_ylabel(r"$|x_t|$, $x_0 = 0.1$")
plt.show()
print(f"Euler-Maruyama vs exact on the same paths at sigma = 2.8 (dt = 1e-3): median relative gap "
      f"{((em - exact).abs() / exact.abs()).median():.3f} over paths and times")

# %% [markdown]
# *Figure 7.3 (seed 003 Fig. 2.14): without noise a perturbation $x_0=0.1$ grows like $e^t$;
# with multiplicative noise $\sigma=2.8>\sqrt2$ the paths (thin lines: exact solutions, 20 of
# 200) and their median decay like $e^{(1-\sigma^2/2)t}$.*
#
# Move $\sigma$ yourself (run the notebook to use the slider; the figure above is its static
# view at $\sigma=0$ and $\sigma=2.8$): where does the median turn from growth to decay?

# %%
def show_toy(sigma=1.0):
    ts_toy, _, exact = toy_paths(sigma, paths=200)
    fig, ax = plt.subplots(figsize=(6.5, 3.6))
    ax.semilogy(ts_toy, exact[:, :20].abs(), color="C0", lw=0.6, alpha=0.6)
    ax.semilogy(ts_toy, exact.abs().median(1).values, "C3", lw=2, label="median")
    ax.semilogy(ts_toy, exact.mean(1).abs(), "C2", lw=1.5, label="mean (sample)")
    ax.semilogy(ts_toy, 0.1 * torch.exp((1 - sigma ** 2 / 2) * ts_toy), "k--",
                label=rf"rate $1-\sigma^2/2 = {1 - sigma ** 2 / 2:.2f}$")
    ax.set(xlabel="t", ylabel=r"$|x_t|$", ylim=(1e-8, 1e4), title=rf"$dx = x\,dt + {sigma:.2f}\,x\,dB$")
    ax.legend(fontsize=8, loc="lower left")
    plt.show()


widgets.interact(show_toy, sigma=widgets.FloatSlider(value=1.0, min=0.0, max=3.5, step=0.1));

# %% [markdown]
# ## 7.5 Why noise helps: the perturbation equation and Corollary 2.1
#
# Start the network at a clean input $\mathbf h_0$ and at a perturbed one
# $\mathbf h_0^e=\mathbf h_0+\boldsymbol\varepsilon_0$, and drive both with the *same* Brownian
# path. The difference $\boldsymbol\varepsilon_t=\mathbf h_t^e-\mathbf h_t$ solves (eq. 2.40)
#
# $$
# d\boldsymbol\varepsilon_t=\underbrace{\big[\mathbf f(\mathbf h_t+\boldsymbol\varepsilon_t,t)-\mathbf f(\mathbf h_t,t)\big]}_{\mathbf f_\Delta(\boldsymbol\varepsilon_t,t)}dt
# +\underbrace{\big[\mathbf G(\mathbf h_t+\boldsymbol\varepsilon_t,t)-\mathbf G(\mathbf h_t,t)\big]}_{\mathbf G_\Delta(\boldsymbol\varepsilon_t,t)}d\mathbf B_t ,
# $$ (eq-07-perturbation)
#
# which has the equilibrium $\boldsymbol\varepsilon_t\equiv\mathbf 0$ (no input change, no output
# change). The question is whether this equilibrium is *stable*. For multiplicative noise
# $\mathbf G(\mathbf h)=\sigma\mathbf h$ and a scalar Brownian motion, $\mathbf G_\Delta=\sigma\boldsymbol\varepsilon_t$
# (eq. 2.43), and Corollary 2.1 states: if $\mathbf f$ is $L$-Lipschitz in $\mathbf h$, then almost surely
#
# $$
# \limsup_{t\to\infty}\frac1t\log\|\boldsymbol\varepsilon_t\|\le-\Big(\frac{\sigma^2}{2}-L\Big),
# $$ (eq-07-corollary)
#
# so for $\sigma^2>2L$ every perturbation decays exponentially. For a linear drift
# $\mathbf f(\mathbf h)=L\mathbf h$ the bound is an equality (it is the toy example). We check
# the corollary numerically with a nonlinear drift $\mathbf f(\mathbf h)=A\tanh(\mathbf h)$,
# $\|A\|_2=L=1$ (so $\mathbf f$ is 1-Lipschitz), in dimension 8: we solve for $\mathbf h$ and
# $\mathbf h^e$ together on shared paths and estimate the growth rate
# $\frac1T\log(\|\boldsymbol\varepsilon_T\|/\|\boldsymbol\varepsilon_0\|)$ at $T=10$. Itô's
# formula makes the check sharper: with a scalar Brownian motion,
# $d\log\|\boldsymbol\varepsilon_t\|=\big(\langle\boldsymbol\varepsilon_t,\mathbf f_\Delta\rangle/\|\boldsymbol\varepsilon_t\|^2-\tfrac{\sigma^2}{2}\big)dt+\sigma\,dB_t$
# and $\langle\boldsymbol\varepsilon,\mathbf f_\Delta\rangle\le L\|\boldsymbol\varepsilon\|^2$, so the
# *drift part* $\frac1T\big(\log\frac{\|\boldsymbol\varepsilon_T\|}{\|\boldsymbol\varepsilon_0\|}-\sigma B_T\big)$
# is below $L-\sigma^2/2$ on **every** path, while $\sigma B_T/T\to0$ gives the corollary.

# %%
LYAP_STEPS = budget.pick(smoke=1_000, cpu=5_000, gpu=20_000)


def lyapunov_exponents(sigmas, L=1.0, dim=8, T=10.0, steps=LYAP_STEPS, paths=64, seed=SEED):
    """Per path: (1/T) log(|eps_T| / |eps_0|) and its drift part (minus sigma B_T / T), eq. (2.43).

    h and h + eps are solved together, driven by one shared scalar Brownian motion per path.
    Returns two arrays of shape (len(sigmas), paths).
    """
    gen = torch.Generator().manual_seed(seed)
    A = torch.randn(dim, dim, generator=gen, dtype=torch.float64)
    A = L * A / torch.linalg.matrix_norm(A, ord=2)          # spectral norm L: f is L-Lipschitz
    s = torch.tensor(sigmas, dtype=torch.float64).repeat_interleave(paths)
    n = s.numel()
    h0 = torch.randn(n, dim, generator=gen, dtype=torch.float64)
    eps0 = 1e-3 * torch.randn(n, dim, generator=gen, dtype=torch.float64)
    ts = nsde.time_grid(T, steps, dtype=torch.float64)
    dB = nsde.brownian_increments((1, n, 1), ts, generator=gen)          # one scalar path each
    drift = lambda t, y: torch.tanh(y) @ A.T  # noqa: E731
    y = nsde.euler_maruyama(drift, torch.stack([h0, h0 + eps0]), ts,
                            lambda t, y: s.view(1, -1, 1) * y, brownian=dB.expand(steps, 2, n, dim))
    rate = ((y[1] - y[0]).norm(dim=1) / eps0.norm(dim=1)).log() / T
    drift_part = rate - s * dB.sum(0).view(-1) / T
    return rate.view(len(sigmas), paths).numpy(), drift_part.view(len(sigmas), paths).numpy()


sigmas = np.linspace(0, 2.5, 11)
rate_tanh, drift_tanh = lyapunov_exponents(sigmas)
bound = 1.0 - sigmas ** 2 / 2
fig, ax = plt.subplots(figsize=(6.8, 4))
ax.plot(sigmas, bound, "k--", label=r"bound $L-\sigma^2/2$ (Corollary 2.1; equality for $f=Lh$)")
ax.plot(sigmas, rate_tanh.mean(1), "s", label=r"$f=A\tanh(h)$: mean over paths")
ax.plot(sigmas, drift_tanh.max(1), "v", mfc="none", label=r"$f=A\tanh(h)$: largest drift part")
ax.axhline(0, color="gray", lw=0.8)
ax.axvline(math.sqrt(2), color="gray", lw=0.8, ls=":")
ax.set(xlabel=r"$\sigma$", ylabel=r"$\frac{1}{T}\log\|\varepsilon_T\|/\|\varepsilon_0\|$",
       title="growth rate of the perturbation, T = 10")
ax.legend(fontsize=8)
plt.show()
print(f"largest drift part minus bound, tanh drift (every path, every sigma): "
      f"{(drift_tanh - bound[:, None]).max():+.3f}")

# %% [markdown]
# *Figure 7.4: the perturbation's growth rate against the noise level, for a 1-Lipschitz
# nonlinear drift. The mean over 64 paths (squares) fluctuates by about $\sigma/\sqrt{64T}$; the
# largest drift part over all paths (triangles) stays below the bound $L-\sigma^2/2$, which a
# linear drift $f=Lh$ would attain (it is the toy example). Past $\sigma=\sqrt{2L}$ (dotted line)
# every perturbation decays. Euler-Maruyama adds a small bias of order $\sigma^4\Delta t$ (here
# $\Delta t=T/$`LYAP_STEPS`).*
#
# The catch, which the seed's experiments face, is that a network cannot use $\sigma^2>2L$: the
# noise would also wash out the signal. What moderate noise buys in practice is measured next.
#
# ## 7.6 Neural ODE vs Neural SDE classifiers
#
# The classifier is `NeuralSDEClassifier`: normalization, a convolutional stem that halves the
# resolution, an `SDEBlock` with a convolutional drift on $[0,1]$ (`STEPS` Euler-Maruyama steps),
# and a pooled linear head. The four models of {eq}`eq-07-diffusions` share the architecture
# and training (Adam, cross-entropy, noise on during training), as in seed 003 (§2.3.4); the
# noise levels are fixed by hand here (the seed tunes $\sigma$ per model). Every trained model is
# cached by `rk.cached_fit`.

# %%
try:
    train = rk.load_dataset(DATASET, "train", n=N_TRAIN, seed=SEED)
    test = rk.load_dataset(DATASET, "test", n=N_TEST, seed=SEED)
except rk.data.DataError:                       # e.g. CIFAR-10 not available offline
    DATASET = "fashion-mnist"
    train = rk.load_dataset(DATASET, "train", n=N_TRAIN, seed=SEED)
    test = rk.load_dataset(DATASET, "test", n=N_TEST, seed=SEED)
stats = rk.data.dataset_stats(DATASET)
channels = train.images.shape[1]
EPS_L2 = [0.0, 0.5, 1.0, 1.5] if channels == 1 else [0.0, 0.1, 0.2, 0.3, 0.5]
EPS_L2 = budget.pick(smoke=EPS_L2[:2], cpu=EPS_L2, gpu=EPS_L2)
device = rk.get_device()

MODELS = {
    "ODE": dict(diffusion="none"),
    "additive": dict(diffusion="additive", sigma=1.0),
    "multiplicative": dict(diffusion="multiplicative", sigma=1.0),
    "dropout": dict(diffusion="dropout", sigma=nsde.dropout_sigma(0.5)),
}
if budget.name == "gpu":   # the jump term of eq. (2.31): dropout layers at Poisson depths
    MODELS["dropout jumps"] = dict(diffusion="none", jump_rate=2.0, jump_scale=0.5)


def build(cfg):
    def make():
        torch.manual_seed(SEED)
        return nsde.NeuralSDEClassifier(channels, len(train.classes), WIDTH, mean=stats.mean,
                                        std=stats.std, steps=STEPS, **cfg)
    return make


loader = rk.make_loader(train.images, train.labels, batch_size=budget.batch_size, seed=SEED)
models, histories = {}, {}
for name, cfg in MODELS.items():
    key = {"name": f"ch07-{DATASET}-{name}", "dataset": DATASET, "n_train": N_TRAIN,
           "epochs": EPOCHS, "lr": LR, "batch_size": budget.batch_size, "seed": SEED, **cfg}
    models[name], histories[name], cached = rk.cached_fit(
        build(cfg), lambda m: rk.fit(m, loader, epochs=EPOCHS, lr=LR, desc=name), key=key,
        device=device)
    print(f"{name:>15}: {'loaded from cache' if cached else 'trained'}, "
          f"final training loss {histories[name].train_loss[-1]:.3f}")

# %% [markdown]
# Each model is evaluated without test-time noise (TTN: `stochastic` off, the deterministic
# twin) and with it: the softmax averaged over `TTN_SAMPLES` noisy passes (`nsde.ttn_predict`,
# probabilities averaged, not logits). Seed 003 (Table 2.5) reports, on CIFAR-10, ODE 87.95,
# additive 88.69, multiplicative 89.06, dropout 88.23 without TTN and 88.73 / 89.77 / 88.44
# with it.

# %%
x_test, y_test = test.images.to(device), test.labels.to(device)
PAPER_T25 = {"ODE": (87.95, None), "additive": (88.69, 88.73),
             "multiplicative": (89.06, 89.77), "dropout": (88.23, 88.44)}
clean = {}
for name, model in models.items():
    with stochastic(model, False):
        no_ttn = nsde.ttn_accuracy(model, x_test, y_test, samples=1)
    noisy = name != "ODE"
    ttn = nsde.ttn_accuracy(model, x_test, y_test, samples=TTN_SAMPLES) if noisy else None
    one = nsde.ttn_accuracy(model, x_test, y_test, samples=1) if noisy else None
    clean[name] = (no_ttn, ttn, one)

fmt = lambda v: "   -  " if v is None else f"{100 * v:6.2f}"  # noqa: E731
print(f"{DATASET}, {len(y_test)} test images, accuracy (%)")
print(f"{'model':>15} | {'w/o TTN':>7} {'w/ TTN':>7} {'1 draw':>7} | paper CIFAR-10: w/o  w/ TTN")
for name, (a, b, c) in clean.items():
    paper = PAPER_T25.get(name, (None, None))
    print(f"{name:>15} | {fmt(a):>7} {fmt(b):>7} {fmt(c):>7} | "
          f"{'' if paper[0] is None else f'{paper[0]:.2f}':>19} {fmt(paper[1] and paper[1] / 100):>7}")

# %% [markdown]
# *Table 7.1 (seed 003 Table 2.5 style).* The differences in the seed are below one point on
# CIFAR-10 with long training; with a few thousand images and a few epochs ours are of the same
# size as the sampling error of the test set ($\pm\sqrt{a(1-a)/n}\approx1.4$ points for
# $n=1000$), so read this table as "the noise costs little accuracy", not as a ranking. Within a
# noisy model the TTN ensemble is the deployed predictor; a single draw is noisier.
#
# ## 7.7 Corrupted images
#
# Seed 003 (Table 2.6) evaluates on CIFAR10-C {cite}`hendrycks2019benchmarking`: models trained on
# clean images, tested on 15 corruptions at 5 severities, mean accuracy per severity. Offline we
# use the eight synthetic corruptions of `robustkit.uncertainty.corruptions` (noise, blur,
# contrast, brightness, rotation, pixelation) at five severities, on `N_CORRUPT` test images,
# for the ODE, the dropout model without TTN and the dropout model with TTN.

# %%
x_c, y_c = x_test[:N_CORRUPT].cpu(), y_test[:N_CORRUPT].cpu()
names_c = list(CORRUPTIONS) if budget.name != "smoke" else list(CORRUPTIONS)[:2]
rows_c = {"ODE": [], "dropout": [], "dropout + TTN": []}
for level in range(1, 6):
    acc = {k: [] for k in rows_c}
    for cname in names_c:
        xc = corrupt(x_c, cname, level, seed=SEED).to(device)
        acc["ODE"].append(nsde.ttn_accuracy(models["ODE"], xc, y_c.to(device), samples=1))
        with stochastic(models["dropout"], False):
            acc["dropout"].append(nsde.ttn_accuracy(models["dropout"], xc, y_c.to(device), samples=1))
        acc["dropout + TTN"].append(nsde.ttn_accuracy(models["dropout"], xc, y_c.to(device),
                                                      samples=TTN_SAMPLES))
    for k in rows_c:
        rows_c[k].append(float(np.mean(acc[k])))

PAPER_T26 = {"ODE": [75.89, 70.59, 66.52, 60.91, 53.02], "dropout": [77.02, 71.58, 67.21, 61.61, 53.81],
             "dropout + TTN": [79.07, 73.98, 69.74, 64.19, 55.99]}
print(f"mean accuracy (%) over {len(names_c)} corruptions, {len(y_c)} images; "
      f"paper: CIFAR10-C")
print(f"{'model':>14} | " + " ".join(f"{'level ' + str(s):>8}" for s in range(1, 6)) + " |  paper levels 1-5")
for k, v in rows_c.items():
    print(f"{k:>14} | " + " ".join(f"{100 * a:8.2f}" for a in v) + " | "
          + " ".join(f"{p:.1f}" for p in PAPER_T26[k]))

# %% [markdown]
# *Table 7.2 (seed 003 Table 2.6 style): mean accuracy over the corruptions at each severity.*
# Accuracy falls with the severity for every model, as in the seed. Whether the dropout model
# stays ahead of the ODE depends on the corruption family; per-corruption numbers are one
# `print(acc)` away. Keep in mind the sampling error of a few points with `N_CORRUPT` images per
# cell (150 at the cpu budget). In the run shown (cpu budget), the dropout model is ahead of the
# ODE at every severity, by two to five points (the seed: ahead in 8 of its 10 cases, by about
# one point on CIFAR10-C); the TTN ensemble adds nothing on top of it here, where the seed gains
# about two more points.
#
# ## 7.8 Adversarial robustness, evaluated right
#
# Seed 003 (Fig. 2.16) attacks the models with L2 PGD (20 steps) and finds the SDE models with
# multiplicative or dropout noise more robust than the ODE, dropout noise best. A randomized
# model must be attacked as deployed (chapter 6, GUIDE trap 4): the *deployed* classifier is the
# TTN ensemble (`ExpectedModel`, the log of the averaged softmax), and the attacker's gradient
# should estimate $\nabla_x\,\mathbb E_\omega[\ell(f(x;\omega),y)]$ by averaging `EOT_SAMPLES`
# noisy passes (EOT). We compare with the *naive* evaluation, which follows one noisy gradient
# per step. Robust accuracy counts clean errors as failures.

# %%
x_a, y_a = x_test[:N_ATTACK], y_test[:N_ATTACK]
curves = {}
for name in ("ODE", "multiplicative", "dropout"):
    model = models[name]
    deployed = ExpectedModel(model, samples=TTN_SAMPLES)
    draws = {"naive (1 draw)": 1, f"EOT ({EOT_SAMPLES} draws)": EOT_SAMPLES} if name != "ODE" \
        else {"": 1}
    for label, k in draws.items():
        torch.manual_seed(SEED)
        res = accuracy_vs_eps(
            deployed, lambda e, k=k, m=model: PGD(m, e, norm="l2", steps=ATTACK_STEPS, eot_samples=k),
            EPS_L2, (x_a, y_a))
        curves[f"{name} {label}".strip()] = res["accuracy"]

fig, ax = plt.subplots(figsize=(6.8, 4))
styles = {"ODE": ("k", "o"), "multiplicative": ("C0", "s"), "dropout": ("C3", "^")}
for label, acc in curves.items():
    color, marker = styles[label.split()[0]]
    ax.plot(EPS_L2, acc, color=color, marker=marker, ls="--" if "naive" in label else "-", label=label)
ax.set(xlabel=r"L2 radius $\epsilon$", ylabel="robust accuracy",
       title=f"L2 PGD ({ATTACK_STEPS} steps), {DATASET}, {len(y_a)} images")
ax.legend(fontsize=8)
plt.show()
for label, acc in curves.items():
    print(f"{label:>32}: " + "  ".join(f"{a:.2f}" for a in acc))

# %% [markdown]
# *Figure 7.5 (seed 003 Fig. 2.16 style): robust accuracy of the deployed models under L2 PGD.
# Dashed: the naive attack following a single noisy gradient per step; solid: the EOT attack.
# The gap between the two curves of one model is how much a naive evaluation overstates its
# robustness.* The seed's figure (CIFAR-10, STL-10, Tiny-ImageNet) shows the SDE models ahead of
# the ODE, dropout noise best; its text does not say how the attack handled the randomness. In
# the run shown (cpu budget, Fashion-MNIST) both SDE models keep clearly more accuracy than the
# ODE from $\epsilon=0.5$ on (multiplicative noise best here), and the EOT attack is at most a
# couple of points stronger than the naive one: at these moderate noise levels a single noisy
# gradient already points almost where the averaged one does, so the advantage is not an
# artifact of noisy gradients. That is not a law: with stronger noise (the EOT test of
# `tests/test_neural_sde.py`, Gaussian dropout with $\sigma=3$) the naive attack overstates
# robustness by eight points. Always run both, and the checks below.
#
# The gradient-masking checks of chapter 2 on the deployed dropout model (PGD through the
# averaged softmax, so every gradient is itself an average over draws). A randomized deployed
# model answers slightly differently at each call, so we use a tolerance of 5 points.

# %%
masking_model = ExpectedModel(models["dropout"], samples=budget.pick(smoke=2, cpu=4, gpu=16))
torch.manual_seed(SEED)
report = gradient_masking_report(masking_model, (x_a, y_a), norm="l2", eps_list=EPS_L2,
                                 steps=budget.pick(smoke=2, cpu=5, gpu=20),
                                 restarts=1, noise_draws=5, tol=0.05,
                                 max_samples=budget.pick(smoke=16, cpu=64, gpu=500))
print("PGD accuracy vs eps:", [round(a, 3) for a in report["pgd_accuracy"]])
print(f"at eps = {report['eps_ref']:g}: PGD {report['pgd_ref_accuracy']:.3f}, "
      f"4x steps {report['strong_pgd_accuracy']:.3f}, margin loss {report['margin_pgd_accuracy']:.3f}, "
      f"one step {report['fgsm_accuracy']:.3f}, random noise {report['noise_accuracy']:.3f}")
print(f"at eps = {report['large_eps']:.1f} (whole box): {report['large_eps_accuracy']:.3f}; "
      f"zero-gradient inputs {100 * report['zero_grad_fraction']:.1f}%")
print("flags raised:", report["messages"] or "none")

# %% [markdown]
# ## 7.9 Perturbations of the hidden state over depth
#
# Finally the picture behind §7.5 on the trained networks (seed 003 Fig. 2.17): for test images
# $\mathbf x$ we craft L2 PGD perturbations (EOT for the SDE), run the clean and the adversarial
# image through the block with the *same* noise (same generator seed, as eq. 2.40 assumes) and
# plot $\|\boldsymbol\varepsilon_t\|/\|\boldsymbol\varepsilon_0\|$ along the depth, averaged over
# images and noise draws. For a smoother curve the block is solved with four times more steps
# than in training (a finer solution of the same equation).

# %%
N_PATH, DRAWS_PATH = budget.pick(smoke=4, cpu=16, gpu=64), budget.pick(smoke=2, cpu=8, gpu=16)
eps_path = EPS_L2[len(EPS_L2) // 2] if len(EPS_L2) > 2 else EPS_L2[-1]
x_p, y_p = x_test[:N_PATH], y_test[:N_PATH]
ratios = {}
for name in ("ODE", "multiplicative", "dropout"):
    model = models[name]
    k = 1 if name == "ODE" else EOT_SAMPLES
    torch.manual_seed(SEED)
    x_adv = PGD(model, eps_path, norm="l2", steps=ATTACK_STEPS, eot_samples=k)(x_p, y_p)
    steps_saved, model.block.steps = model.block.steps, 4 * STEPS
    r = []
    with torch.no_grad():
        for d in range(DRAWS_PATH if name != "ODE" else 1):
            h = model.hidden_path(x_p, generator=torch.Generator(device=x_p.device).manual_seed(d))
            h_e = model.hidden_path(x_adv, generator=torch.Generator(device=x_p.device).manual_seed(d))
            e = (h_e - h).flatten(2).norm(dim=2)                 # (steps + 1, N)
            r.append((e / e[0]).cpu())
    model.block.steps = steps_saved
    ratios[name] = torch.stack(r).mean(0)                       # (steps + 1, N)

ts_path = nsde.time_grid(1.0, 4 * STEPS)
fig, ax = plt.subplots(figsize=(6.5, 3.8))
for name, r in ratios.items():
    color = styles[name][0]
    ax.plot(ts_path, r.mean(1), color=color, marker=styles[name][1], label=name)
    ax.fill_between(ts_path, r.quantile(0.25, dim=1), r.quantile(0.75, dim=1), color=color, alpha=0.15)
ax.set(xlabel="depth t", ylabel=r"$\|\varepsilon_t\| / \|\varepsilon_0\|$",
       title=f"hidden-state perturbation, L2 PGD $\\epsilon$ = {eps_path:g}")
ax.legend()
plt.show()
for name, r in ratios.items():
    print(f"{name:>15}: ||eps_T|| / ||eps_0|| = {r[-1].mean():.3f} (mean over {N_PATH} images)")

# %% [markdown]
# *Figure 7.6 (seed 003 Fig. 2.17 style): growth of the perturbation of the hidden state through
# the continuous-depth block (mean and interquartile band over images).* The seed reports that
# the error "accumulates much slower" with dropout noise than in the ODE; in the run shown the
# dropout model indeed ends at about 2.5 times its initial perturbation against about 4 for
# the ODE, but the multiplicative model amplifies it *more* (about 7 times) while being the most
# robust in Figure 7.5: each model learned its own drift and head, and what matters for the
# prediction is the perturbation seen by the head, not its size in the hidden state alone.
# Remember also that the noise levels a network can tolerate are far below the $\sigma^2>2L$ of
# Corollary 2.1: the theory explains the direction of the effect, not its size.
#
# ## Exercises
#
# **Exercise 7.1 (Milstein's scheme).** Euler-Maruyama has strong order 1/2 because it ignores
# the term $\tfrac12 G\,\partial_x G\,\big((\Delta B)^2-\Delta t\big)$ of the Itô-Taylor expansion.
# For geometric Brownian motion $G(x)=\sigma x$, so Milstein's scheme is
# $x_{k+1}=x_k+\mu x_k\Delta t+\sigma x_k\Delta B_k+\tfrac12\sigma^2x_k(\Delta B_k^2-\Delta t)$.
# With $\mu=\sigma=1$, $x_0=1$, $T=1$ and 2,000 paths, compute the mean absolute error at $T$
# of both schemes against {eq}`eq-07-gbm` on the same Brownian paths, for $2^2,\dots,2^8$ steps,
# and fit the two strong orders.

# %%
# Your answer here: arrays `em_err` and `milstein_err` (one error per number of steps in
# `ex_levels`) and the fitted slopes `order_em`, `order_milstein`.
ex_levels = [2 ** k for k in range(2, 9)]
em_err, milstein_err, order_em, order_milstein = None, None, None, None

# %% tags=["solution", "hide-input"]
gen_ex = torch.Generator().manual_seed(SEED)
fine_ex, paths_ex = 2 ** 10, 2_000
ts_ex = nsde.time_grid(1.0, fine_ex, dtype=torch.float64)
dB_ex = nsde.brownian_increments((paths_ex,), ts_ex, generator=gen_ex)
exact_ex = torch.exp(0.5 + dB_ex.sum(0))                 # x_T = exp((1 - 1/2) T + B_T)
em_err, milstein_err = [], []
for n in ex_levels:
    inc = dB_ex.view(n, fine_ex // n, paths_ex).sum(1)
    dt = 1.0 / n
    x_em = torch.ones(paths_ex, dtype=torch.float64)
    x_mil = torch.ones(paths_ex, dtype=torch.float64)
    for k in range(n):
        x_em = x_em + x_em * dt + x_em * inc[k]
        x_mil = x_mil + x_mil * dt + x_mil * inc[k] + 0.5 * x_mil * (inc[k] ** 2 - dt)
    em_err.append((x_em - exact_ex).abs().mean().item())
    milstein_err.append((x_mil - exact_ex).abs().mean().item())
em_err, milstein_err = np.array(em_err), np.array(milstein_err)
log_dt = np.log(1 / np.array(ex_levels))
order_em = np.polyfit(log_dt, np.log(em_err), 1)[0]
order_milstein = np.polyfit(log_dt, np.log(milstein_err), 1)[0]
print(f"strong order: Euler-Maruyama {order_em:.2f}, Milstein {order_milstein:.2f}")

# %% tags=["exercise-check"]
# Check exercise 7.1
assert len(em_err) == len(milstein_err) == len(ex_levels)
assert 0.35 < order_em < 0.65, "Euler-Maruyama has strong order 1/2"
assert 0.85 < order_milstein < 1.15, "Milstein has strong order 1"
assert milstein_err[-1] < em_err[-1], "Milstein is more accurate at small steps"

# %% tags=["exercise-check", "hidden", "remove-cell"]
# Check exercise 7.1
_g = torch.Generator().manual_seed(123)
_dB = nsde.brownian_increments((2000,), nsde.time_grid(1.0, 256, dtype=torch.float64), generator=_g)
_ex = torch.exp(0.5 + _dB.sum(0))
_x = torch.ones(2000, dtype=torch.float64)
for _k in range(256):
    _x = _x * (1 + 1 / 256 + _dB[_k] + 0.5 * (_dB[_k] ** 2 - 1 / 256))
_err = (_x - _ex).abs().mean().item()
assert abs(milstein_err[-1] - _err) < 0.5 * _err, "the Milstein error at 256 steps is off"

# %% [markdown]
# **Exercise 7.2 (Gaussian dropout has the moments of dropout).** Rescaled dropout multiplies
# each feature of $\mathbf f$ by $\gamma/(1-p)$ with $\gamma\sim\mathrm{Bernoulli}(1-p)$. Show that
# $z=\sqrt{(1-p)/p}\,\big(\gamma/(1-p)-1\big)$ has mean 0 and variance 1, so that
# {eq}`eq-07-gaussian-dropout` matches the first two moments of dropout. Check it by Monte Carlo
# for $p=0.3$ (a million draws), and compare the variance of $\gamma/(1-p)$ with
# `nsde.dropout_sigma(0.3)**2`.

# %%
# Your answer here: `z_mean`, `z_var` (Monte-Carlo moments of z) and `scale_var`
# (Monte-Carlo variance of gamma / (1 - p)) for p = 0.3.
p_ex = 0.3
z_mean, z_var, scale_var = None, None, None

# %% tags=["solution", "hide-input"]
# E[gamma] = 1 - p and Var[gamma] = p (1 - p), so gamma / (1 - p) has mean 1 and variance
# p / (1 - p) = sigma^2; z is that variable standardized.
gamma = torch.bernoulli(torch.full((1_000_000,), 1 - p_ex, dtype=torch.float64),
                        generator=torch.Generator().manual_seed(SEED))
scaled = gamma / (1 - p_ex)
z = math.sqrt((1 - p_ex) / p_ex) * (scaled - 1)
z_mean, z_var, scale_var = z.mean().item(), z.var().item(), scaled.var().item()
print(f"E[z] = {z_mean:.4f}, Var[z] = {z_var:.4f}, Var[gamma/(1-p)] = {scale_var:.4f}, "
      f"sigma^2 = {nsde.dropout_sigma(p_ex) ** 2:.4f}")

# %% tags=["exercise-check"]
# Check exercise 7.2
assert abs(z_mean) < 0.01 and abs(z_var - 1) < 0.01, "z should be standardized"
assert abs(scale_var - nsde.dropout_sigma(p_ex) ** 2) < 0.01

# %% tags=["exercise-check", "hidden", "remove-cell"]
# Check exercise 7.2
assert abs(scale_var - p_ex / (1 - p_ex)) < 0.01, "Var[gamma / (1 - p)] = p / (1 - p)"
assert abs(z_var - scale_var * (1 - p_ex) / p_ex) < 1e-6, "z must be computed from the same draws"

# %% [markdown]
# **Exercise 7.3 (how many dropout layers?).** In the jump term of {eq}`eq-07-jump-diffusion` with
# rate $\lambda$ on $[0,T]$, how many dropout layers does a forward pass contain on average, and
# with which probability does it contain none? Compute both in closed form for $\lambda=2$,
# $T=1$, then estimate them with `nsde.bernoulli_jumps` (one step of length $T$, 100,000 samples).

# %%
# Your answer here: closed forms `mean_layers`, `p_none` and Monte-Carlo estimates
# `mc_mean_layers`, `mc_p_none`.
mean_layers, p_none, mc_mean_layers, mc_p_none = None, None, None, None

# %% tags=["solution", "hide-input"]
mean_layers, p_none = 2.0 * 1.0, math.exp(-2.0 * 1.0)    # E N_T = lambda T, P(N_T = 0) = e^{-lambda T}
n_jumps, _ = nsde.bernoulli_jumps((100_000, 1), dt=1.0, rate=2.0,
                                  generator=torch.Generator().manual_seed(SEED))
mc_mean_layers, mc_p_none = n_jumps.mean().item(), (n_jumps == 0).float().mean().item()
print(f"mean {mean_layers} (MC {mc_mean_layers:.3f}), P(none) {p_none:.4f} (MC {mc_p_none:.4f})")

# %% tags=["exercise-check"]
# Check exercise 7.3
assert abs(mean_layers - 2.0) < 1e-9 and abs(p_none - math.exp(-2)) < 1e-9
assert abs(mc_mean_layers - mean_layers) < 0.03 and abs(mc_p_none - p_none) < 0.01

# %% tags=["exercise-check", "hidden", "remove-cell"]
# Check exercise 7.3
from scipy import stats as _st
assert abs(p_none - _st.poisson.pmf(0, 2.0)) < 1e-12
assert abs(mc_p_none - _st.poisson.pmf(0, 2.0)) < 5 * math.sqrt(0.135 * 0.865 / 100_000)

# %% [markdown]
# ## Summary
#
# - A Neural ODE is the continuous-depth limit of a residual network; a Neural SDE adds a
#   diffusion term (Gaussian noise: additive, multiplicative or Gaussian dropout) and a jump term
#   (dropout layers at Poisson-distributed depths), {eq}`eq-07-jump-diffusion`.
# - Euler-Maruyama with back-propagation through its steps trains it; its strong order is 1/2
#   for state-dependent noise and 1 for additive noise and the ODE, and it agrees with `torchsde`
#   on the same Brownian path. Coarse grids are accurate enough for classification.
# - Multiplicative noise can stabilize the zero solution of the perturbation equation: the
#   growth rate of an input perturbation is at most $L-\sigma^2/2$ (Corollary 2.1), as the
#   geometric Brownian motion toy shows. Practical noise levels are much smaller than
#   $\sigma^2>2L$.
# - Randomized models are deployed as test-time-noise ensembles (averaged softmax) and must be
#   attacked through that ensemble with EOT gradients; a single-draw attack can overstate their
#   robustness (by little at the moderate noise of our models, by much more at high noise), and
#   the gradient-masking checks should stay quiet.
# - In the run shown, the SDE models match the ODE's clean accuracy, are more robust to L2 PGD
#   (with EOT), and the dropout model is slightly more robust to synthetic corruptions; the
#   hidden-state perturbation grows more slowly with dropout noise, as in the seed.
#
# ## References
#
# - Seed 003 §2.3 (Neural SDE, eq. 2.28-2.43, Corollary 2.1, Tables 2.5-2.6, Figs. 2.13-2.17):
#   {cite}`liu2021trustworthy`, {cite}`liu2020how`.
# - Neural ODEs: {cite}`chen2018neural`; numerical solution of SDEs (Euler-Maruyama, Milstein,
#   strong order): {cite}`kloeden1992numerical`; the `torchsde` library: {cite}`li2020scalable`.
# - Corruption benchmark: {cite}`hendrycks2019benchmarking`; EOT: {cite}`athalye2018obfuscated`.
