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
# # 10. Robust uncertainty estimation
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/robustkit/robustness-course/blob/main/chapters/10_uncertainty.ipynb)
#
# **Learning goals.** After this chapter you can
# - tell epistemic from aleatoric uncertainty and split a predictive entropy into both;
# - build and compare seven uncertainty estimators: a single network, the naive deep
#   ensemble, MC dropout, SGLD, stochastic variational inference, snapshot ensembles,
#   BatchEnsemble, and FastEnsemble (seed 003, Algorithm 10);
# - measure calibration (NLL, ECE with stated bins, reliability diagrams), out-of-distribution
#   detection (AUROC, partial AUC at FPR $\le 0.2$) and per-pixel uncertainty rankings
#   (Precision@k, Recall@k);
# - rebuild the benchmarks of seed 003 chapter 5 on MNIST / Fashion-MNIST and weigh each
#   method's quality against its training and test cost.
#
# **Prerequisites.** [Getting started](00_getting_started) (training loops, budgets),
# [Information theory](01_information_theory) (entropy, mutual information, KL divergence).
#
# **Sources.** Seed 003 chapter 5 {cite}`liu2021trustworthy` (the uncertainty benchmark and
# FastEnsemble) and §2.2 (Bayesian layers); the methods' original papers
# {cite}`lakshminarayanan2017simple` {cite}`gal2016dropout` {cite}`welling2011bayesian`
# {cite}`blundell2015weight` {cite}`huang2017snapshot` {cite}`wen2020batchensemble`; calibration
# {cite}`naeini2015obtaining` {cite}`guo2017calibration`; the U-Net {cite}`ronneberger2015unet`.

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
N_TRAIN = budget.pick(smoke=600, cpu=3000, gpu=60_000)    # training images per dataset
N_TEST = budget.pick(smoke=200, cpu=1000, gpu=10_000)     # clean / OOD test images
N_CORRUPT = budget.pick(smoke=100, cpu=150, gpu=2000)     # images per corruption x severity
EPOCHS = budget.pick(smoke=1, cpu=3, gpu=20)              # epochs of one model
MEMBERS = budget.pick(smoke=2, cpu=4, gpu=6)              # ensemble members / posterior samples
MC_SAMPLES = budget.pick(smoke=3, cpu=8, gpu=30)          # MC-dropout and SVI forward passes
WIDTH, HIDDEN = budget.pick(smoke=(4, 16), cpu=(8, 32), gpu=(32, 128))
UNET_TRAIN = budget.pick(smoke=128, cpu=600, gpu=10_000)  # canvases for the U-Net
UNET_TEST = budget.pick(smoke=32, cpu=200, gpu=2000)
UNET_EPOCHS = budget.pick(smoke=1, cpu=4, gpu=30)
UNET_BASE = budget.pick(smoke=4, cpu=6, gpu=16)
FE_FRACTION = budget.pick(smoke=0.1, cpu=0.05, gpu=0.03)   # (k2 + k3) / k1 per FastEnsemble member
print(f"budget: {budget.name}, {N_TRAIN} training images, {EPOCHS} epochs, "
      f"{MEMBERS} members, {MC_SAMPLES} MC samples")

# %%
import math
import time

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F

from robustkit import uncertainty as U

rk.plot.set_style()
rk.seed_everything(SEED)
BATCH = 64        # classifiers; the U-Nets use batches of 32
METHODS = ["single", "naive", "mc_dropout", "sgld", "svi", "snapshot", "batch_ensemble", "fast_ensemble"]
LABELS = {"single": "Single", "naive": "Naive ensemble", "mc_dropout": "MC dropout", "sgld": "SGLD",
          "svi": "SVI", "snapshot": "Snapshot", "batch_ensemble": "BatchEnsemble",
          "fast_ensemble": "FastEnsemble"}
COLORS = dict(zip(METHODS, ["#999999", "#000000", "#E69F00", "#56B4E9", "#009E73", "#F0E442",
                            "#0072B2", "#D55E00"]))

# %% [markdown]
# ## 10.1 Two kinds of uncertainty
#
# A classifier's prediction can be uncertain for two reasons (seed 003 §5.3). **Aleatoric**
# uncertainty is the randomness of the data itself: a sloppy "4" that looks like a "9" stays
# ambiguous however much data we collect. **Epistemic** uncertainty is our ignorance of the
# model: far from the training data many different weights $w$ explain the data equally well
# and disagree. A Bayesian treats the weights as random with a posterior $p(w\mid\mathcal D)$
# and predicts with the *predictive distribution*
#
# $$
# p(y\mid x,\mathcal D) = \int p(y\mid x,w)\,p(w\mid\mathcal D)\,dw
#   \approx \frac1S\sum_{s=1}^S p(y\mid x,w_s).
# $$ (eq-10-predictive)
#
# Every method of this chapter is a way to get the draws $w_1,\dots,w_S$ (posterior samples or
# ensemble members) and averages their **probabilities**, never their logits. By the chain
# rule of chapter 1, the entropy of the predictive distribution splits into the average
# entropy of the members (aleatoric) and the mutual information between the label and the
# weights (epistemic), which is zero when all the members agree:
#
# $$
# \underbrace{H\big[\bar p(y\mid x)\big]}_{\text{total}}
#  = \underbrace{\mathbb E_{w}\,H\big[p(y\mid x,w)\big]}_{\text{aleatoric}}
#  + \underbrace{I(y;w\mid x,\mathcal D)}_{\text{epistemic}} .
# $$ (eq-10-decomposition)
#
# A 2-D toy problem shows the difference: three overlapping Gaussian classes, and an ensemble
# of five small networks trained from different initializations.

# %%
g = torch.Generator().manual_seed(SEED)
toy_y = torch.randint(0, 3, (600,), generator=g)
centers = torch.tensor([[0.0, 1.5], [1.3, -0.8], [-1.3, -0.8]])
toy_x = centers[toy_y] + 0.6 * torch.randn(600, 2, generator=g)


def toy_net(seed):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(2, 64), torch.nn.ReLU(), torch.nn.Linear(64, 64),
                               torch.nn.ReLU(), torch.nn.Linear(64, 3))


toy_ens = U.Ensemble([toy_net(s) for s in range(5)])
U.train_naive_ensemble(toy_ens, (toy_x, toy_y), epochs=budget.pick(smoke=10, cpu=40, gpu=40),
                       lr=1e-2, batch_size=100, seed=SEED)
grid = torch.stack(torch.meshgrid(torch.linspace(-6, 6, 150), torch.linspace(-6, 6, 150),
                                  indexing="xy"), -1).reshape(-1, 2)
parts = U.uncertainty_decomposition(toy_ens.samples(grid).softmax(-1))
fig, axes = plt.subplots(1, 3, figsize=(12, 3.7))
for ax, key in zip(axes, ["total", "aleatoric", "epistemic"]):
    im = ax.imshow(parts[key].reshape(150, 150), origin="lower", extent=(-6, 6, -6, 6),
                   cmap="viridis", vmin=0, vmax=math.log(3))
    ax.scatter(*toy_x[:150].T, c=toy_y[:150], cmap="Set1", s=5, edgecolor="none")
    ax.set(title=f"{key} uncertainty (nats)", xticks=[], yticks=[])
    ax.grid(False)
fig.colorbar(im, ax=axes, shrink=0.8)
plt.show()

# %% [markdown]
# *Figure 10.1: predictive entropy of an ensemble of five networks (left) and its split
# {eq}`eq-10-decomposition` into the members' average entropy (middle) and their
# disagreement (right). Aleatoric uncertainty lives where the classes overlap; epistemic
# uncertainty grows away from the data, where the members extrapolate differently.*
#
# ## 10.2 The methods
#
# We compare the estimators of seed 003 (§5.2 and §5.4) on one architecture: a small
# BatchNorm convnet with two dropout layers (`rk.uncertainty.UncertaintyConvNet`), trained
# with Adam (learning rate $2\cdot10^{-3}$, batches of 64) on a subset of MNIST and, separately, of
# Fashion-MNIST. Below $N$ is the number of training images, $M$ the number of members.
#
# **Single model.** One network; its softmax is the prediction.
#
# **Naive deep ensemble** {cite}`lakshminarayanan2017simple`. $M$ networks trained
# independently from different random initializations and data orders; the prediction is
# {eq}`eq-10-predictive` with $S=M$. It costs $M$ trainings and $M$ forward passes.
#
# **MC dropout** {cite}`gal2016dropout`. Dropout before the weight layers makes a network an
# approximate Bayesian model; keeping dropout *on at test time* samples from it. Only the
# dropout layers become random: BatchNorm must keep its running statistics (eval mode),
# which `rk.uncertainty.mc_dropout` guarantees (GUIDE trap 1). It costs one training and $S$
# forward passes.
#
# **SGLD** {cite}`welling2011bayesian`. Stochastic gradient Langevin dynamics adds Gaussian
# noise to SGD so that the iterates sample the posterior. With minibatch $B$ and step
# $\epsilon$,
#
# $$
# w \leftarrow w - \frac{\epsilon}{2}\Big(\nabla_w\big(-\log p(w)\big)
#   + \frac{N}{|B|}\sum_{i\in B}\nabla_w\big(-\log p(y_i\mid x_i,w)\big)\Big)
#   + \eta,\qquad \eta\sim\mathcal N(0,\epsilon I).
# $$ (eq-10-sgld)
#
# The noise has variance $\epsilon$, the step on the gradient is $\epsilon/2$. As in seed 003,
# the noise is off during a burn-in phase and on during the sampling phase, where we keep
# $M$ equally spaced samples. Prior $\mathcal N(0, I)$.
#
# **SVI** {cite}`blundell2015weight`. Each weight gets a Gaussian posterior
# $q(w_i)=\mathcal N(\mu_i, e^{2s_i})$, sampled by $w=\mu+e^{s}\odot\varepsilon$,
# $\varepsilon\sim\mathcal N(0,I)$ (seed 003 eq. 2.14, 2.20). The loss is the negative ELBO
# per example, with the closed-form KL to the prior $\mathcal N(0, s_0^2 I)$ summed over all
# layers (seed 003 eq. 2.15, 2.22):
#
# $$
# \mathcal L(\mu,s) = -\frac1{|B|}\sum_{i\in B}\log p(y_i\mid x_i,w) + \frac{\alpha}{N}\sum_{i}
#   \Big(\log\frac{s_0}{e^{s_i}} + \frac{e^{2s_i}+\mu_i^2}{2s_0^2}-\frac12\Big).
# $$ (eq-10-elbo)
#
# We take $\alpha=1$, $s_0=0.1$; it doubles the parameters and costs $S$ forward passes.
#
# **Snapshot ensemble** {cite}`huang2017snapshot`. One SGD run (momentum 0.9) whose learning
# rate follows $M$ cosine cycles over $T$ steps,
#
# $$
# \eta(t) = \frac{\eta_0}{2}\Big(\cos\Big(\frac{\pi\,(t \bmod \lceil T/M\rceil)}{\lceil T/M\rceil}\Big)+1\Big),
# $$ (eq-10-snapshot)
#
# with a snapshot of the weights at the end of each cycle. We give it twice the epochs of a
# single model, so each cycle is long enough to converge.
#
# **BatchEnsemble** {cite}`wen2020batchensemble`. Members share each weight matrix $W$ and own
# rank-1 factors: member $i$ uses $W_i = W\circ(s_i r_i^\top)$, i.e. it scales the inputs of
# every layer by $r_i$ and its outputs by $s_i$. The batch is tiled $M$ times, so training and
# prediction cost about $M$ forward passes but only a few extra parameters.
#
# **FastEnsemble** (seed 003 §5.4, Algorithm 10). Train a seed model $w_0$ for $k_1$
# iterations. Then, for $n=1,\dots,M-1$, start from $w_0$, run $k_2$ iterations on the loss
# plus an L1 *repulsion* from all the models $\mathcal M$ found so far, and $k_3$ iterations
# of plain fine-tuning:
#
# $$
# \ell^+(w) = \ell\big(f(x_i;w),y_i\big)-\frac{\lambda}{|\mathcal M|}\sum_{w_a\in\mathcal M}
#   \|w-w_a\|_1 .
# $$ (eq-10-fastensemble)
#
# The low-loss region around a minimum is connected (Fig. 5.5 of the seed), so the members
# walk away from each other along the "valley" while staying accurate; with
# $k_2+k_3\ll k_1$ each member costs a few percent of the seed's training. We take
# $k_2+k_3 = $ `FE_FRACTION` $\times k_1$ (split 2:1), $\lambda = 10^{-3}$ for the classifiers
# (members trained with twice the seed's learning rate) and $\lambda=10^{-4}$ for the U-Nets.
#
# All of them are in `rk.uncertainty`; every trained predictor exposes `samples(x)`, the
# $S$ outputs of shape `(S, N, classes)`. Training is cached by `rk.train.cached_fit`, whose
# checkpoint keeps the training time of each phase.

# %%
def train_methods(build, data, loss, key, *, epochs, lr, sgld_lr, sgld_temperature=1.0,
                  svi_build=None, lam=1e-3, fe_lr_factor=2.0, batch=BATCH):
    """Train the seven methods on `data`; returns {name: (predictor, train seconds)}."""
    x_train = data[0]
    steps = math.ceil(len(x_train) / batch) * epochs
    k23 = max(2, round(FE_FRACTION * steps))
    k2, k3 = max(1, round(2 * k23 / 3)), max(1, k23 - round(2 * k23 / 3))

    def cached(name, build_fn, train_fn, **extra):
        model, hist, _ = rk.train.cached_fit(build_fn, train_fn,
                                             key={**key, "method": name, "epochs": epochs, "lr": lr,
                                                  "members": MEMBERS, "batch": batch, **extra})
        return model, hist

    out = {}
    naive, h = cached("naive", lambda: U.Ensemble([build(SEED + i) for i in range(MEMBERS)]),
                      lambda e: U.train_naive_ensemble(e, data, loss, epochs=epochs, lr=lr,
                                                       batch_size=batch, seed=SEED))
    single_time = h.total_time / MEMBERS        # mean training time of one member
    out["single"] = (U.Ensemble([naive.members[0]]), single_time)
    out["naive"] = (naive, h.total_time)
    out["mc_dropout"] = (U.MCDropoutPredictor(naive.members[0], MC_SAMPLES), single_time)
    burn_in = max(1, epochs - 1) if epochs > 1 else 1
    sgld, h = cached("sgld", lambda: U.Ensemble([build(SEED) for _ in range(MEMBERS)]),
                     lambda e: U.train_sgld(e, data, loss, burn_in_epochs=burn_in, sample_epochs=1,
                                            lr=sgld_lr, prior_precision=1.0,
                                            temperature=sgld_temperature, batch_size=batch,
                                            seed=SEED), sgld_lr=sgld_lr, t=sgld_temperature)
    out["sgld"] = (sgld, h.total_time)
    svi, h = cached("svi", svi_build, lambda m: U.train_svi(m, data, loss, epochs=epochs, lr=lr,
                                                             alpha=1.0, batch_size=batch, seed=SEED))
    out["svi"] = (U.StochasticPredictor(svi, MC_SAMPLES), h.total_time)
    snap, h = cached("snapshot", lambda: U.Ensemble([build(SEED) for _ in range(MEMBERS)]),
                     lambda e: U.train_snapshot(e, data, loss, epochs=2 * epochs, lr_max=0.05,
                                                batch_size=batch, seed=SEED))
    out["snapshot"] = (snap, h.total_time)
    be, h = cached("batch_ensemble", lambda: U.BatchEnsemble(build(SEED), MEMBERS, seed=SEED),
                   lambda m: U.train_batch_ensemble(m, data, loss, epochs=epochs, lr=lr,
                                                    batch_size=batch, seed=SEED))
    out["batch_ensemble"] = (be, h.total_time)
    fast, h = cached("fast_ensemble", lambda: U.Ensemble([build(SEED) for _ in range(MEMBERS)]),
                     lambda e: U.train_fast_ensemble(e, data, loss, seed_epochs=epochs, k2=k2, k3=k3,
                                                     lam=lam, lr=lr, member_lr=fe_lr_factor * lr,
                                                     batch_size=batch, seed=SEED),
                     k2=k2, k3=k3, lam=lam, fe_lr=fe_lr_factor)
    out["fast_ensemble"] = (fast, h.total_time)
    out["fast_ensemble_phases"] = h.epoch_time
    out["fast_ensemble_steps"] = (steps, k2, k3)
    out["sgld_epochs"] = burn_in + 1
    return out


def classifier_builder(dataset, bayesian=False):
    stats = rk.data.dataset_stats(dataset)

    def build(seed=SEED):
        torch.manual_seed(seed)
        return U.UncertaintyConvNet(width=WIDTH, hidden=HIDDEN, dropout=0.25, bayesian=bayesian,
                                    prior_sigma=0.1, mean=stats.mean[0], std=stats.std[0])
    return build


DATASETS = ["mnist", "fashion-mnist"]
train_sets = {d: rk.load_dataset(d, "train", n=N_TRAIN, seed=SEED) for d in DATASETS}
test_sets = {d: rk.load_dataset(d, "test", n=N_TEST, seed=SEED) for d in DATASETS}
trained = {}
start = time.perf_counter()
for d in DATASETS:
    trained[d] = train_methods(
        classifier_builder(d), (train_sets[d].images, train_sets[d].labels), F.cross_entropy,
        {"task": "classify", "dataset": d, "n": N_TRAIN, "seed": SEED, "width": WIDTH},
        epochs=EPOCHS, lr=2e-3, sgld_lr=0.2 / N_TRAIN,
        svi_build=lambda d=d: classifier_builder(d, bayesian=True)(SEED))
print(f"classifiers ready in {time.perf_counter() - start:.0f} s (checkpoints reused if cached)")

# %% [markdown]
# ## 10.3 Calibration: accuracy, NLL and ECE
#
# A predictor is *calibrated* when its confidence matches its accuracy: among the inputs
# predicted with confidence 0.8, 80% should be right {cite}`guo2017calibration`. Seed 003
# (§5.5) measures it with the expected calibration error {cite}`naeini2015obtaining`,
#
# $$
# \mathrm{ECE} = \int_0^1 w(p)\,\big|\mathrm{Acc}(p)-p\big|\,dp
#   \approx \sum_{m=1}^{M}\frac{|B_m|}{n}\,\big|\mathrm{Acc}(B_m)-\mathrm{Conf}(B_m)\big|,
# $$ (eq-10-ece)
#
# where $p$ is the top softmax probability (the confidence) and $B_m$ the examples whose
# confidence falls in $\big(\frac{m-1}{M},\frac mM\big]$. The value depends on $M$: we always
# use **$M=15$ equal-width bins** (as {cite}`guo2017calibration`; `rk.uncertainty.ece` agrees
# with torchmetrics' `MulticlassCalibrationError`). With the accuracy and the negative
# log-likelihood (NLL, a proper scoring rule that rewards both accuracy and calibration) this
# gives the ACC / NLL / ECE triple of the seed's Table 5.2.

# %%
N_BINS = 15
probs, samples = {}, {}
for d in DATASETS:
    for m in METHODS:
        s = trained[d][m][0].samples(test_sets[d].images)
        samples[d, m] = s.softmax(-1)
        probs[d, m] = samples[d, m].mean(0)


def report_table(rows, columns, fmt="{:.3f}"):
    width = max(len(LABELS.get(r, r)) for r in rows) + 2
    lines = [" " * width + "".join(f"{c:>22s}" for c in columns)]
    for r in rows:
        lines.append(f"{LABELS.get(r, r):<{width}s}" + "".join(f"{v:>22s}" for v in rows[r]))
    print("\n".join(lines))


rows = {}
for m in METHODS:
    rows[m] = []
    for d in DATASETS:
        rep = U.classification_report(probs[d, m], test_sets[d].labels, N_BINS)
        rows[m].append(f"{100 * rep['accuracy']:.2f} / {rep['nll']:.3f} / {rep['ece']:.3f}")
print("clean test sets, ACC (%) / NLL / ECE (15 bins)")
report_table(rows, DATASETS)

# %% [markdown]
# For comparison, seed 003 Table 5.2 (CIFAR-10 + VGG16, ACC / NLL / ECE, mean of 3 runs):
# single 92.89 / 0.492 / 0.058, naive ensemble 94.64 / 0.306 / 0.041, BatchEnsemble
# 92.79 / 0.566 / 0.061, snapshot 93.62 / 0.375 / 0.049, FastEnsemble 93.24 / 0.308 / 0.047.
# Our networks are tiny and trained for a few epochs on a few thousand images, so the
# absolute numbers differ; what carries over is the ordering: averaging members improves the
# NLL much more than the accuracy.
#
# The **reliability diagram** draws the two terms of {eq}`eq-10-ece`: one bar per bin at the
# accuracy of the bin, the hatched part up to the bin's mean confidence (its width times the
# bin's weight is its share of the ECE).

# %%
fig, axes = plt.subplots(2, 4, figsize=(13, 6.6))
for ax, m in zip(axes.flat, METHODS):
    U.reliability_diagram(probs["fashion-mnist", m], test_sets["fashion-mnist"].labels, N_BINS,
                          ax=ax, title=LABELS[m], color=COLORS[m] if m != "naive" else "#444444")
    ax.label_outer()
fig.suptitle("Reliability diagrams, Fashion-MNIST test set")
fig.tight_layout()
plt.show()

# %% [markdown]
# *Figure 10.2: reliability diagrams of the eight predictors on the clean Fashion-MNIST test
# set (15 bins). Bars below the diagonal mean over-confidence.*
#
# ## 10.4 Calibration under distribution shift
#
# CIFAR10-C {cite}`hendrycks2019benchmarking`, the benchmark of seed 003 Fig. 5.6, applies 15
# corruptions at 5 severities to the test set. It is not available offline, so
# `rk.uncertainty.corrupt` rebuilds the protocol on 28x28 images with eight corruptions of
# the same families (noise, blur, digital, geometric), five severities each:

# %%
example = test_sets["fashion-mnist"].images[:1]
tiles = torch.cat([torch.cat([U.corrupt(example, c, s, seed=SEED) for s in range(6)])
                   for c in U.CORRUPTIONS])
fig = rk.plot.image_grid(tiles, ncols=6, title="corruptions (rows) at severity 0 to 5 (columns)")
plt.show()

# %% [markdown]
# *Figure 10.3: the eight corruptions, from severity 0 (clean) to 5, on one Fashion-MNIST
# test image: Gaussian, shot and impulse noise, Gaussian blur, contrast, brightness, rotation,
# pixelation.*

# %%
shift = {}   # (dataset, method, corruption, severity) -> probabilities
start = time.perf_counter()
for d in DATASETS:
    x_c, y_c = test_sets[d].images[:N_CORRUPT], test_sets[d].labels[:N_CORRUPT]
    for c_i, c in enumerate(U.CORRUPTIONS):
        for sev in range(1, 6):
            xc = U.corrupt(x_c, c, sev, seed=SEED + 10 * c_i + sev)
            for m in METHODS:
                shift[d, m, c, sev] = U.predict_proba(trained[d][m][0], xc)
print(f"{len(shift)} corrupted evaluations in {time.perf_counter() - start:.0f} s")


def shift_metric(d, m, sev, metric):
    y_c = test_sets[d].labels[:N_CORRUPT]
    fn = {"accuracy": U.accuracy, "ece": lambda p, y: U.ece(p, y, N_BINS), "nll": U.nll}[metric]
    return [fn(shift[d, m, c, sev], y_c) for c in U.CORRUPTIONS]


fig, axes = plt.subplots(2, 2, figsize=(13, 7), sharex=True)
width = 0.1
for row, d in enumerate(DATASETS):
    for col, metric in enumerate(["accuracy", "ece"]):
        ax = axes[row, col]
        for j, m in enumerate(METHODS):
            pos = np.arange(1, 6) + (j - 3.5) * width
            data = [shift_metric(d, m, sev, metric) for sev in range(1, 6)]
            bp = ax.boxplot(data, positions=pos, widths=width * 0.9, patch_artist=True,
                            showfliers=False, manage_ticks=False)
            for box in bp["boxes"]:
                box.set(facecolor=COLORS[m], edgecolor="k", lw=0.5)
            for med in bp["medians"]:
                med.set(color="k", lw=0.8)
        ax.set(title=f"{d}: {metric}", xticks=range(1, 6), xlabel="severity" if row else None)
handles = [plt.Rectangle((0, 0), 1, 1, facecolor=COLORS[m], edgecolor="k") for m in METHODS]
fig.legend(handles, [LABELS[m] for m in METHODS], loc="lower center", ncol=8, fontsize=8)
fig.tight_layout(rect=(0, 0.05, 1, 1))
plt.show()

# %% [markdown]
# *Figure 10.4: accuracy (left, higher is better) and ECE (right, lower is better) as the
# corruption severity grows, on MNIST (top) and Fashion-MNIST (bottom); each box aggregates
# the eight corruptions, as Fig. 5.6 of seed 003 aggregates the 15 of CIFAR10-C.*

# %%
rows = {}
for m in METHODS:
    rows[m] = []
    for d in DATASETS:
        acc = np.mean([shift_metric(d, m, s, "accuracy") for s in range(1, 6)])
        nll_ = np.mean([shift_metric(d, m, s, "nll") for s in range(1, 6)])
        ece_ = np.mean([shift_metric(d, m, s, "ece") for s in range(1, 6)])
        rows[m].append(f"{100 * acc:.2f} / {nll_:.3f} / {ece_:.3f}")
print("corrupted test sets (mean over 8 corruptions x 5 severities), ACC (%) / NLL / ECE")
report_table(rows, [f"{d}-C" for d in DATASETS])

# %% [markdown]
# Seed 003 Table 5.2, CIFAR10-C + VGG16 (ACC / NLL / ECE): single 86.84 / 0.980 / 0.110,
# naive 89.21 / 0.671 / 0.084, BatchEnsemble 85.91 / 1.180 / 0.121, snapshot
# 87.00 / 0.810 / 0.102, FastEnsemble 87.38 / 0.623 / 0.089. Under shift every method loses
# accuracy *and* calibration, and the gap between a single network and an ensemble grows.
#
# **Explore** the shift yourself: pick a corruption and a severity and compare the reliability
# diagrams of three predictors (the static figure shows Gaussian noise at severity 3; run the
# notebook to move the controls).

# %%
def show_shift(corruption="gaussian_noise", severity=3, dataset="fashion-mnist"):
    y_c = test_sets[dataset].labels[:N_CORRUPT]
    x_show = U.corrupt(test_sets[dataset].images[:6], corruption, severity, seed=SEED)
    fig = plt.figure(figsize=(13, 3.6))
    gs = fig.add_gridspec(2, 6, width_ratios=[1.1, 1.1, 1.1, 0.35, 0.35, 0.35])
    for j, m in enumerate(["single", "naive", "fast_ensemble"]):
        ax = fig.add_subplot(gs[:, j])
        U.reliability_diagram(shift[dataset, m, corruption, severity], y_c, N_BINS, ax=ax,
                              title=f"{LABELS[m]}: acc "
                                    f"{U.accuracy(shift[dataset, m, corruption, severity], y_c):.2f}",
                              color=COLORS[m] if m != "naive" else "#444444")
    for k in range(6):
        ax = fig.add_subplot(gs[k // 3, 3 + k % 3])
        ax.imshow(x_show[k, 0], cmap="gray", vmin=0, vmax=1)
        ax.set(xticks=[], yticks=[])
        ax.grid(False)
    fig.suptitle(f"{dataset}, {corruption}, severity {severity}")
    fig.tight_layout()
    plt.show()


show_shift()

# %% [markdown]
# *Figure 10.5 (static): reliability diagrams under Gaussian noise of severity 3 on
# Fashion-MNIST, with six corrupted test images.*

# %%
import ipywidgets as widgets

widgets.interact(show_shift,
                 corruption=widgets.Dropdown(options=list(U.CORRUPTIONS), value="gaussian_noise"),
                 severity=widgets.IntSlider(value=3, min=1, max=5),
                 dataset=widgets.Dropdown(options=DATASETS, value="fashion-mnist"));

# %% [markdown]
# ## 10.5 Out-of-distribution detection
#
# A model trained on digits should be *uncertain* on clothes. We score every test image by
# the entropy of its predictive distribution and ask how well this score separates the
# in-distribution test set (negatives) from the other dataset (positives): the area under the
# ROC curve (AUROC; 0.5 = chance), and, as seed 003 does for pixels, the area under the ROC
# curve restricted to false-positive rates $\le 0.2$ (maximum 0.2, chance 0.02), the regime
# where a detector is usable.

# %%
ood = {}
for d_in, d_out in [("mnist", "fashion-mnist"), ("fashion-mnist", "mnist")]:
    for m in METHODS:
        p_out = U.predict_proba(trained[d_in][m][0], test_sets[d_out].images)
        score = torch.cat([U.predictive_entropy(probs[d_in, m]), U.predictive_entropy(p_out)])
        label = torch.cat([torch.zeros(N_TEST), torch.ones(N_TEST)])
        ood[d_in, m] = (U.auroc(score, label), U.partial_auc(score, label, 0.2),
                        U.roc_curve(score, label))
rows = {m: [f"{ood[d, m][0]:.3f} / {ood[d, m][1]:.3f}" for d in DATASETS] for m in METHODS}
print("OOD detection by predictive entropy, AUROC / AUC(FPR <= 0.2)")
report_table(rows, ["MNIST -> Fashion", "Fashion -> MNIST"])
fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
for ax, d in zip(axes, DATASETS):
    for m in METHODS:
        fpr, tpr, _ = ood[d, m][2]
        ax.plot(fpr, tpr, color=COLORS[m], label=f"{LABELS[m]} ({ood[d, m][0]:.3f})")
    ax.axvline(0.2, color="gray", ls=":", lw=1)
    ax.plot([0, 1], [0, 1], "k--", lw=0.8)
    ax.set(xlabel="false positive rate", ylabel="true positive rate",
           title=f"trained on {d}, OOD = {'fashion-mnist' if d == 'mnist' else 'mnist'}")
    ax.legend(fontsize=7, loc="lower right")
fig.tight_layout()
plt.show()

# %% [markdown]
# *Figure 10.6: ROC curves of OOD detection by predictive entropy (AUROC in the legend); the
# dotted line marks FPR = 0.2.*
#
# ## 10.6 The image-to-image benchmark
#
# Seed 003 (§5.3) builds the first benchmark of uncertainty for image-to-image translation: a
# U-Net {cite}`ronneberger2015unet` translates microscopy images, and out-of-distribution
# objects (LNCaP cells, impurities) appear *inside* otherwise normal images, in known boxes.
# A good per-pixel uncertainty is high inside the boxes and low outside. Treating the pixels
# inside the boxes as positives $\mathcal S_1$ and the $k$ most uncertain pixels as
# $\mathcal S_2$, the seed scores the ranking with
#
# $$
# \mathrm{TP@}k = |\mathcal S_1\cap\mathcal S_2|,\qquad
# \mathrm{Precision@}k = \frac{\mathrm{TP@}k}{k},\qquad
# \mathrm{Recall@}k = \frac{\mathrm{TP@}k}{|\mathcal S_1|},
# $$ (eq-10-precision-at-k)
#
# and, varying $k$, by the ROC curve and its area for FPR $\le 0.2$. The microscopy data are
# not public, so we rebuild the benchmark on MNIST (`rk.uncertainty.image2image`):
#
# - *cells* are digits shrunk to 12 pixels on a 24x24 canvas; the *density* is the number of
#   digits per canvas (1 = "very sparse" to 4 = "very dense");
# - the *translation task* is denoising: Gaussian noise ($\sigma=0.3$) in, clean canvas out;
# - *OOD objects* are shrunk Fashion-MNIST articles pasted in an 8x8 box.
#
# As in the seed's distribution-shift experiment, model A is trained on very sparse canvases
# and model B on very dense ones; the per-pixel uncertainty is the variance of the $S$
# predictions (MC-dropout passes, SVI draws, or members). Every method trains the same small
# U-Net (Adam, learning rate $3\cdot10^{-3}$, batches of 32) on the squared error; SGLD
# treats the per-image mean squared error as the negative log-likelihood and samples at
# temperature $10^{-3}$ (a "cold" posterior: with the true temperature its noise swamps the
# weak per-pixel-averaged likelihood of a few hundred images).

# %%
mnist_digits = train_sets["mnist"].images
fashion_items = test_sets["fashion-mnist"].images
DENSITIES = {"very sparse": 1, "sparse": 2, "dense": 3, "very dense": 4}
SIGMA = 0.3


def canvases(n, density, seed):
    clean = U.make_canvases(mnist_digits, n, density, size=24, digit_size=12, seed=seed)
    return U.denoising_pair(clean, sigma=SIGMA, seed=seed + 1)


def unet_builder(bayesian=False):
    def build(seed=SEED):
        torch.manual_seed(seed)
        return U.UNet(base=UNET_BASE, depth=2, dropout=0.1, bayesian=bayesian, prior_sigma=0.1,
                      mean=0.1, std=0.3)
    return build


unets = {}
start = time.perf_counter()
for name, density in [("A", 1), ("B", 4)]:
    data = canvases(UNET_TRAIN, density, seed=100 + density)
    unets[name] = train_methods(
        unet_builder(), data, F.mse_loss,
        {"task": "denoise", "density": density, "n": UNET_TRAIN, "seed": SEED, "base": UNET_BASE},
        epochs=UNET_EPOCHS, lr=3e-3, sgld_lr=0.2 / UNET_TRAIN, sgld_temperature=1e-3,
        svi_build=lambda: unet_builder(bayesian=True)(SEED), lam=1e-4, fe_lr_factor=1.0, batch=32)
print(f"U-Nets ready in {time.perf_counter() - start:.0f} s (checkpoints reused if cached)")

# %%
noisy, clean = canvases(UNET_TEST, 4, seed=999)
patched, boxes, mask = U.paste_patches(clean, fashion_items, n_boxes=1, box=8, seed=7)
patched_noisy, _ = U.denoising_pair(patched, sigma=SIGMA, seed=998)
pixel = {}
for m in METHODS:
    mean, var = U.predict_mean_var(unets["B"][m][0], patched_noisy)
    pixel[m] = (mean, var)

show = [0, 1, 2]
panels = [("input", lambda i: patched_noisy[i, 0], "gray")] + [
    (LABELS[m], (lambda m: lambda i: pixel[m][1][i, 0].sqrt())(m), "magma") for m in METHODS[1:]]
fig, axes = plt.subplots(len(show), len(panels), figsize=(14, 5.6))
for r, i in enumerate(show):
    for c, (title, get, cmap) in enumerate(panels):
        ax = axes[r, c]
        img = get(i)
        ax.imshow(img, cmap=cmap, vmin=0, vmax=1 if c == 0 else float(img.max()) + 1e-8)
        U.draw_boxes(ax, boxes[i], color="#00FF66" if c else "#FF3333")
        ax.set(xticks=[], yticks=[])
        ax.grid(False)
        if r == 0:
            ax.set_title(title, fontsize=9)
fig.tight_layout()
plt.show()

# %% [markdown]
# *Figure 10.7: inputs with a pasted OOD patch (red box, left) and the per-pixel predictive
# standard deviation of each method for model B (green box = ground truth, not seen by the
# models; each map scaled to its own maximum).*

# %%
flat_mask = mask.flatten()
ks = np.unique(np.linspace(1, 3 * int(flat_mask.sum()), 60).astype(int))
pix = {}
for m in METHODS[1:]:
    score = pixel[m][1].flatten()
    prec, rec = U.precision_recall_at_k(score, flat_mask, ks)
    pix[m] = (prec, rec, U.roc_curve(score, flat_mask), U.partial_auc(score, flat_mask, 0.2),
              U.auroc(score, flat_mask))
fig, axes = plt.subplots(1, 3, figsize=(14, 4))
for m in METHODS[1:]:
    axes[0].plot(ks, pix[m][0], color=COLORS[m], label=LABELS[m])
    axes[1].plot(ks, pix[m][1], color=COLORS[m])
    axes[2].plot(pix[m][2][0], pix[m][2][1], color=COLORS[m], label=f"{LABELS[m]} ({pix[m][3]:.3f})")
axes[0].set(xlabel="k (pixels)", ylabel="Precision@k", title="Precision@k")
axes[1].set(xlabel="k (pixels)", ylabel="Recall@k", title="Recall@k")
axes[2].set(xlabel="false positive rate", ylabel="true positive rate", xlim=(0, 0.4),
            title="ROC (AUC at FPR <= 0.2 in the legend)")
axes[2].axvline(0.2, color="gray", ls=":")
axes[0].legend(fontsize=7)
axes[2].legend(fontsize=7, loc="lower right")
fig.tight_layout()
plt.show()

# %% [markdown]
# *Figure 10.8: ranking the pixels of all test canvases by uncertainty (pooled), with the
# pixels inside the boxes as positives: Precision@k, Recall@k ({eq}`eq-10-precision-at-k`) and
# ROC (seed 003 Fig. 5.2).*
#
# **Global shift.** The second half of Table 5.1: each model predicts canvases of every
# density and we report the mean over images of the Pearson correlation between the
# predicted (mean) image and the clean target.

# %%
density_tests = {name: canvases(UNET_TEST, k, seed=500 + k) for name, k in DENSITIES.items()}
corr = {}
for model in ["A", "B"]:
    for m in METHODS[1:]:
        for name, (xin, target) in density_tests.items():
            mean, _ = U.predict_mean_var(unets[model][m][0], xin)
            corr[model, m, name] = U.pearson(mean.flatten(1), target.flatten(1), dim=1).mean().item()

paper = {  # seed 003 Table 5.1 (naive, MC dropout, SGLD, SVI, BatchEnsemble, snapshot, FastEnsemble)
    "AUC(FPR<=0.2) MSC-Impurities": [0.112, 0.074, 0.099, 0.050, 0.098, 0.002, 0.108],
    "AUC(FPR<=0.2) MSC-LNCaP": [0.082, 0.035, 0.021, 0.023, 0.059, 0.001, 0.090],
    "A very dense": [0.869, 0.803, 0.756, 0.762, 0.865, 0.853, 0.865],
    "A very sparse": [0.974, 0.933, 0.894, 0.887, 0.968, 0.960, 0.971],
    "B very dense": [0.956, 0.865, 0.861, 0.734, 0.953, 0.945, 0.952],
    "B very sparse": [0.971, 0.815, 0.924, 0.846, 0.969, 0.970, 0.972],
}
order = ["naive", "mc_dropout", "sgld", "svi", "batch_ensemble", "snapshot", "fast_ensemble"]
print(f"{'':32s}" + "".join(f"{LABELS[m][:13]:>14s}" for m in order))
print(f"{'ours: AUC(FPR<=0.2), OOD patches':32s}" + "".join(f"{pix[m][3]:14.3f}" for m in order))
print(f"{'ours: AUROC, OOD patches':32s}" + "".join(f"{pix[m][4]:14.3f}" for m in order))
for model in ["A", "B"]:
    for name in DENSITIES:
        print(f"{f'ours: model {model}, {name}':32s}"
              + "".join(f"{corr[model, m, name]:14.3f}" for m in order))
for name, values in paper.items():
    print(f"{'seed: ' + name:32s}" + "".join(f"{v:14.3f}" for v in values))

# %% [markdown]
# *Table 10.1: our rebuilt image-to-image benchmark (top: OOD-patch detection by model B and
# Pearson correlation per density for models A and B) beside seed 003 Table 5.1 (bottom; its
# microscopy data, a full-size U-Net). Random ranking gives AUC(FPR $\le$ 0.2) = 0.02.*
#
# ## 10.7 What each method costs
#
# The last question of seed 003 is the price. Training time is measured on this machine
# (wall clock, from the checkpoints); test cost is the number of forward passes per
# prediction; memory is the number of stored parameters relative to one network.

# %%
n_params = rk.count_parameters(classifier_builder("mnist")())
tr = trained["fashion-mnist"]
steps, k2, k3 = tr["fast_ensemble_steps"]
passes_train = {"single": 1, "naive": MEMBERS, "mc_dropout": 1, "sgld": tr["sgld_epochs"] / EPOCHS,
                "svi": 1, "snapshot": 2, "batch_ensemble": MEMBERS,   # tiled batch: M x the work
                "fast_ensemble": 1 + (MEMBERS - 1) * (k2 + k3) / steps}
cost_rows = {}
for m in METHODS:
    t, model = tr[m][1], tr[m][0]
    passes = {"single": 1, "mc_dropout": MC_SAMPLES, "svi": MC_SAMPLES}.get(m, MEMBERS)
    stored = rk.count_parameters(model) / n_params if m not in ("single", "mc_dropout") else 1.0
    cost_rows[m] = [f"{passes_train[m]:.2f}", f"{t:.1f}", f"{t / tr['single'][1]:.2f}", f"{passes}",
                    f"{stored:.2f}"]
print("Fashion-MNIST classifiers (wall times on a shared machine are noisy; the first column "
      "counts training examples processed)")
report_table(cost_rows, ["train work x single", "train time (s)", "time x single", "test passes",
                         "params x single"])
phases = trained["fashion-mnist"]["fast_ensemble_phases"]
overhead = sum(phases[1:]) / phases[0]
print(f"FastEnsemble: seed model {phases[0]:.1f} s, {len(phases) - 1} extra members "
      f"{sum(phases[1:]):.1f} s: +{100 * overhead:.0f}% over one model "
      f"(naive ensemble: +{100 * (MEMBERS - 1):.0f}%); (k2 + k3) / k1 = {FE_FRACTION:.2f} per member")
print(f"extrapolated to six members: +{100 * overhead / (len(phases) - 1) * 5:.0f}% "
      f"(seed 003: ~20% for six members, 3-8% per member)")

# %% [markdown]
# FastEnsemble's members are cheap because they start from the seed model; are they diverse?
# The Pearson correlation between the members' predicted probabilities (off-diagonal mean)
# says how much they agree; for a naive ensemble it is the baseline diversity of independent
# trainings.

# %%
fig, axes = plt.subplots(1, 4, figsize=(14, 3.4))
for ax, m in zip(axes, ["naive", "snapshot", "batch_ensemble", "fast_ensemble"]):
    C = U.member_correlation(samples["fashion-mnist", m]).numpy()
    off = C[~np.eye(len(C), dtype=bool)].mean()
    rk.plot.heatmap(C, ax=ax, fmt=".3f", vmin=0.9, vmax=1.0, cmap="viridis",
                    title=f"{LABELS[m]} (mean {off:.3f})")
fig.tight_layout()
plt.show()

# %% [markdown]
# *Figure 10.9: Pearson correlation between the members' predicted probabilities on the
# Fashion-MNIST test set (1.0 = identical predictions).*
#
# **Reading the results.** Seed 003 concludes that (i) the naive ensemble is the most
# reliable estimator, Bayesian approximations (MC dropout, SGLD, SVI) being clearly worse on the
# image-to-image tasks; (ii) the cheap ensembles (BatchEnsemble, snapshot) do not close the
# gap; (iii) FastEnsemble comes close to the naive ensemble at a fraction of its cost. In the
# cpu-budget run shown here (one seed, tiny networks, a few epochs):
#
# - *reproduced*: the naive ensemble has the best clean NLL on both datasets and the best
#   Pearson correlation for both U-Nets at every density (Table 10.1), with MC dropout and
#   FastEnsemble close behind and SGLD / SVI clearly worse, as in Table 5.1; FastEnsemble's
#   members are the least correlated of all the ensembles (Fig. 10.9) although they cost
#   about 5% of the seed's training each, and it ranks among the best at finding the OOD
#   patches;
# - *not reproduced*: under corruptions, snapshot and BatchEnsemble (which process two and
#   four times the training examples of one model) beat the naive ensemble in accuracy, and
#   FastEnsemble, whose seed model is still far from converged after 3 epochs, gains little
#   over a single network; SVI finds the OOD patches as well as any ensemble; the Pearson
#   correlation grows with the density here (more signal per canvas) where the seed's model
#   A degrades on denser images. Differences of a few thousandths are within the noise of
#   test sets of 150 to 1,000 images; the `gpu` budget trains longer on all the data.
#
# ## Exercises
#
# **Exercise 10.1 (epistemic uncertainty flags OOD inputs).** Using the member probabilities
# `samples["mnist", "naive"]` (in-distribution) and the naive MNIST ensemble's member
# probabilities on the Fashion-MNIST test images (OOD), compute the decomposition
# {eq}`eq-10-decomposition` for both sets. Compare the average epistemic part in and out of
# distribution, and the AUROC of OOD detection by the epistemic part alone versus by the total
# entropy.

# %%
# Your answer here: `epi_in`, `epi_out` (tensors (N,)) and `auroc_epistemic` (float).
epi_in, epi_out, auroc_epistemic = None, None, None

# %% tags=["solution", "hide-input"]
members_out = trained["mnist"]["naive"][0].samples(test_sets["fashion-mnist"].images).softmax(-1)
dec_in = U.uncertainty_decomposition(samples["mnist", "naive"])
dec_out = U.uncertainty_decomposition(members_out)
epi_in, epi_out = dec_in["epistemic"], dec_out["epistemic"]
ood_labels = torch.cat([torch.zeros(len(epi_in)), torch.ones(len(epi_out))])
auroc_epistemic = U.auroc(torch.cat([epi_in, epi_out]), ood_labels)
auroc_total = U.auroc(torch.cat([dec_in["total"], dec_out["total"]]), ood_labels)
print(f"mean epistemic: in {epi_in.mean():.4f} vs OOD {epi_out.mean():.4f} nats; "
      f"AUROC epistemic {auroc_epistemic:.3f}, total {auroc_total:.3f}")

# %% tags=["exercise-check"]
# Check exercise 10.1
assert epi_in.shape == (N_TEST,) and epi_out.shape == (N_TEST,)
assert (epi_in >= 0).all() and (epi_out >= 0).all(), "a mutual information is non-negative"
if budget.name != "smoke":   # the smoke-budget networks are barely trained
    assert epi_out.mean() > epi_in.mean(), "members disagree more on OOD images"
    assert 0.5 < auroc_epistemic <= 1.0

# %% tags=["exercise-check", "hidden", "remove-cell"]
# Check exercise 10.1
_m = trained["mnist"]["naive"][0].samples(test_sets["fashion-mnist"].images).softmax(-1).double()
_pbar = _m.mean(0)
_tot = -(_pbar * _pbar.clamp_min(1e-300).log()).sum(1)
_ale = -(_m * _m.clamp_min(1e-300).log()).sum(2).mean(0)
assert torch.allclose(epi_out.double(), (_tot - _ale).clamp_min(0), atol=1e-5)

# %% [markdown]
# **Exercise 10.2 (ECE depends on the bins).** Implement {eq}`eq-10-ece` yourself, with
# `n_bins` equal-width bins $\big(\frac{m-1}{M},\frac mM\big]$, vectorized (no loop over
# examples), and check it against `rk.uncertainty.ece` on the single model's Fashion-MNIST
# predictions under Gaussian noise of severity 3. Then compute it for $M\in\{5, 10, 15, 30,
# 100, 300\}$. Why does the ECE of a fixed set of predictions tend to grow with $M$?

# %%
# Your answer here: a function my_ece(probs, labels, n_bins) -> float and `eces` (list).
def my_ece(probs, labels, n_bins):
    raise NotImplementedError


eces = None

# %% tags=["solution", "hide-input"]
def my_ece(probs, labels, n_bins):
    conf, pred = probs.double().max(1)
    correct = (pred == labels).double()
    idx = (torch.ceil(conf * n_bins).long() - 1).clamp(0, n_bins - 1)   # (m-1)/M < conf <= m/M
    count = torch.bincount(idx, minlength=n_bins).double()
    gap = (torch.bincount(idx, correct, minlength=n_bins)
           - torch.bincount(idx, conf, minlength=n_bins)).abs()
    return float(gap.sum() / count.sum())      # sum_m |B_m|/n |acc_m - conf_m|


p5 = shift["fashion-mnist", "single", "gaussian_noise", 3]
y5 = test_sets["fashion-mnist"].labels[:N_CORRUPT]
eces = [my_ece(p5, y5, m) for m in (5, 10, 15, 30, 100, 300)]
print("ECE for M = 5, 10, 15, 30, 100, 300:", [round(e, 4) for e in eces])
# With many bins each holds few examples; |acc - conf| of a small bin is inflated by sampling
# noise (E|X| > |E X|), so the estimate is biased upward: state M with every ECE.

# %% tags=["exercise-check"]
# Check exercise 10.2
assert abs(my_ece(p5, y5, 15) - U.ece(p5, y5, 15)) < 1e-6
assert len(eces) == 6 and eces[-1] >= eces[0] - 1e-9

# %% tags=["exercise-check", "hidden", "remove-cell"]
# Check exercise 10.2
_p = torch.tensor([[0.6, 0.4], [0.7, 0.3], [0.9, 0.1], [0.95, 0.05]], dtype=torch.float64)
assert abs(my_ece(_p, torch.tensor([0, 1, 0, 0]), 5) - U.ece(_p, torch.tensor([0, 1, 0, 0]), 5)) < 1e-9

# %% [markdown]
# ## Summary
#
# - Epistemic uncertainty (disagreement between plausible models) is the part that grows off
#   the data; the predictive entropy splits into an aleatoric part and the mutual information
#   between label and weights.
# - Ensembles and Bayesian approximations differ only in how they draw the members; all
#   average probabilities, {eq}`eq-10-predictive`. MC dropout must keep BatchNorm in eval
#   mode; SGLD needs noise of variance $\epsilon$ for a step $\epsilon/2$; SVI adds the
#   closed-form KL, summed over layers and divided by $N$.
# - Calibration is measured with NLL and the ECE {eq}`eq-10-ece` (always state the bins) and
#   pictured by reliability diagrams; calibration degrades with distribution shift.
# - Seed 003's image-to-image benchmark ranks per-pixel uncertainty against boxes of OOD
#   objects (Precision@k, Recall@k, AUC at FPR $\le 0.2$) and measures global shift by
#   Pearson correlation.
# - FastEnsemble (Algorithm 10) trains one seed model and cheap members repelled by an L1
#   term {eq}`eq-10-fastensemble`; its cost is a fraction of the naive ensemble's.
#
# ## References
#
# - Seed 003, chapter 5 (benchmark, FastEnsemble, Tables 5.1-5.2, Fig. 5.6) and §2.2
#   (Bayesian layers): {cite}`liu2021trustworthy`.
# - Deep ensembles {cite}`lakshminarayanan2017simple`; MC dropout {cite}`gal2016dropout`;
#   SGLD {cite}`welling2011bayesian`; Bayes by Backprop {cite}`blundell2015weight`; snapshot
#   ensembles {cite}`huang2017snapshot`; BatchEnsemble {cite}`wen2020batchensemble`.
# - Calibration and ECE {cite}`naeini2015obtaining`, {cite}`guo2017calibration`; corruption
#   benchmark {cite}`hendrycks2019benchmarking`; U-Net {cite}`ronneberger2015unet`.
