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
# # 3. Adversarial training and robust objectives
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/robustkit/robustness-course/blob/main/chapters/03_adversarial_training.ipynb)
#
# **Learning goals.** After this chapter you can
# - write adversarial training as a min-max problem and train a network on PGD adversaries
#   (Madry et al.) or, ten times cheaper, on single FGSM steps from a random start
#   (Wong et al.);
# - explain why adversarial training is, to first order, a penalty on the input gradient
#   of the loss (a local Lipschitz constant), and train that penalty directly by double
#   backpropagation;
# - measure how the size of the training ball trades clean accuracy for robustness, with
#   error bars over seeds;
# - derive the HR loss of Picot et al. from a bound on the error probability, estimate it
#   on a minibatch and reproduce their MNIST table;
# - train a variational information bottleneck (VIB) classifier, read its 2-D embedding and
#   measure its robustness to FGS and targeted $L_2$ attacks against a deterministic model.
#
# **Prerequisites.** [Information theory](01_information_theory) (entropy, Rényi
# divergence, the VIB bound) and [Adversarial attacks](02_adversarial_attacks) (FGSM, PGD,
# Carlini-Wagner, robust accuracy).
#
# **Sources.** Adversarial training and Lipschitz regularization in seed 000 §6
# {cite}`darrin2020notion` and seed 003 §2 {cite}`liu2021trustworthy`; the HR loss of seed 001
# {cite}`picot2021uncertainty`; the deep VIB of seed 002 {cite}`vibslides`
# {cite}`alemi2017deep`; PGD training {cite}`madry2018towards`, fast FGSM training
# {cite}`wong2020fast`, double backpropagation {cite}`drucker1992improving`.

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
N_TRAIN = budget.pick(smoke=1_000, cpu=5_000, gpu=60_000)   # MNIST training images
N_TEST = budget.pick(smoke=200, cpu=1_000, gpu=10_000)      # test images for evaluation
N_ROBUST = budget.pick(smoke=100, cpu=500, gpu=10_000)      # test images attacked by PGD
EPOCHS = budget.pick(smoke=1, cpu=3, gpu=20)
BATCH = 100                                                  # seeds 001 and 002 use 100
TRAIN_STEPS = budget.pick(smoke=2, cpu=5, gpu=40)           # PGD steps inside training
EVAL_STEPS = budget.attack_steps                             # PGD steps for evaluation
EPS_TRAIN = budget.pick(smoke=0.2, cpu=0.2, gpu=0.3)        # Linf training ball (pixels)
SWEEP_EPS = budget.pick(smoke=[0.0, 0.1], cpu=[0.0, 0.05, 0.1, 0.2, 0.3],
                        gpu=[0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4])
SWEEP_N = budget.pick(smoke=500, cpu=3_000, gpu=60_000)
SWEEP_EPOCHS = budget.pick(smoke=1, cpu=3, gpu=10)
SWEEP_STEPS = budget.pick(smoke=2, cpu=3, gpu=10)          # PGD steps inside sweep training
SWEEP_LR = 2e-3
SWEEP_EVAL = budget.pick(smoke=100, cpu=200, gpu=2_000)     # test images attacked per model
SWEEP_EVAL_STEPS = budget.pick(smoke=5, cpu=10, gpu=40)
N_SEEDS = budget.n_seeds
VIB_BETAS = budget.pick(smoke=[1e-3, 1.0], cpu=[1e-6, 1e-4, 1e-3, 1e-2, 1e-1, 1.0],
                        gpu=[1e-9, 1e-8, 1e-7, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0])
VIB2_BETAS = budget.pick(smoke=[1e-3], cpu=[1e-3, 1e-1, 1.0], gpu=[1e-3, 1e-1, 1.0])
VIB_EPOCHS = budget.pick(smoke=1, cpu=3, gpu=50)
VIB2_EPOCHS = budget.pick(smoke=1, cpu=5, gpu=100)
N_CW = budget.pick(smoke=10, cpu=100, gpu=1_000)             # images for the L2 attack
CW_STEPS = budget.pick(smoke=10, cpu=100, gpu=1_000)
CW_SEARCH = budget.pick(smoke=2, cpu=4, gpu=9)
CW_LR = budget.pick(smoke=0.1, cpu=0.05, gpu=0.01)          # Adam step in tanh space
print(f"budget {budget.name}: {N_TRAIN} training / {N_TEST} test images, {EPOCHS} epochs, "
      f"PGD-{TRAIN_STEPS} training, PGD-{EVAL_STEPS} evaluation, {N_SEEDS} seed(s)")

# %%
import math
import time

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from matplotlib.patches import Ellipse

from robustkit import attacks, defenses

rk.plot.set_style()
device = rk.get_device()
train = rk.load_dataset("mnist", "train", n=N_TRAIN, seed=SEED)
test = rk.load_dataset("mnist", "test", n=N_TEST, seed=SEED)
x_test, y_test = test.images.to(device), test.labels.to(device)
x_rob, y_rob = x_test[:N_ROBUST], y_test[:N_ROBUST]
print(f"train {tuple(train.images.shape)}, test {tuple(test.images.shape)}, device {device}")


def train_model(name, build, objective=None, *, n=N_TRAIN, epochs=EPOCHS, seed=SEED, lr=1e-3,
                objective_key="ce", **extra_key):
    """Train (or reload) a model with ``objective`` on the first ``n`` training images."""
    data = train if n == N_TRAIN else rk.load_dataset("mnist", "train", n=n, seed=SEED)
    loader = rk.make_loader(data.images, data.labels, batch_size=BATCH, seed=seed)

    def build_fn():
        rk.seed_everything(seed)
        return build().to(device)

    def train_fn(model):
        return rk.fit(model, loader, epochs=epochs, lr=lr, loss_fn=objective)

    key = dict(name=name, data="mnist", n=n, data_seed=SEED, seed=seed, epochs=epochs, lr=lr,
               batch=BATCH, objective=objective_key, **extra_key)
    model, history, cached = rk.cached_fit(build_fn, train_fn, key=key)
    return model


def robust_acc(model, attack, x=x_rob, y=y_rob):
    """Robust accuracy (clean errors count as non-robust); ``attack=None``: clean accuracy."""
    return attacks.robust_accuracy(model, attack, (x, y), batch_size=BATCH)


# %% [markdown]
# ## 3.1 The robust risk and adversarial training
#
# Chapter 2 showed that an MNIST network with 99 % accuracy can be fooled by perturbations
# invisible to us: the loss has "very steep slopes or cliffs" next to the data (seed 000
# §6). Ordinary training minimizes the *empirical risk*, the average loss at the training
# points; it says nothing about their neighbourhoods. Adversarial training
# {cite}`goodfellow2015explaining` {cite}`madry2018towards` minimizes instead the **robust
# risk**, the average of the worst loss inside a ball $\mathcal B_\varepsilon=\{\delta:
# \|\delta\|\le\varepsilon\}$ around each point (seed 000 §6.2, seed 003 eq. (2.24)):
#
# $$
# \min_\theta\ \frac1N\sum_{n=1}^N\ \max_{\delta\in\mathcal B_\varepsilon,\ x_n+\delta\in[0,1]^d}
# \ \ell\big(f_\theta(x_n+\delta), y_n\big).
# $$ (eq-03-robust-risk)
#
# The inner maximization is the attack of chapter 2, solved approximately by PGD; the
# outer minimization is gradient descent. By Danskin's theorem, the gradient of the inner
# maximum with respect to $\theta$ is the gradient of the loss *at the maximizer*: we
# compute $x^{adv}_n$ with the current weights, then take an ordinary step on
# $\ell(f_\theta(x^{adv}_n), y_n)$. Mixing in the clean loss with weight $w$ gives the
# objective of {cite}`goodfellow2015explaining`, $(1-w)\,\ell(x^{adv})+w\,\ell(x)$.
#
# **Fast adversarial training.** PGD with $K$ steps makes each training step $K+1$ times
# more expensive. {cite}`wong2020fast` showed that one FGSM step suffices *if* it starts from
# a uniform random point of the ball and uses a step $\alpha=1.25\,\varepsilon$:
#
# $$
# \delta_0\sim\mathcal U[-\varepsilon,\varepsilon]^d,\qquad
# \delta=\Pi_{\|\cdot\|_\infty\le\varepsilon}\big(\delta_0+\alpha\,
# \operatorname{sign}\nabla_x\ell(f_\theta(x+\delta_0),y)\big),
# $$ (eq-03-fgsm-rs)
#
# followed by clipping $x+\delta$ to the box. Without the random start, or with a larger step,
# training collapses into "catastrophic overfitting": the model becomes robust to FGSM only,
# not to PGD.
#
# In `robustkit` an objective is a function `loss_fn(model, x, y)` passed to `rk.fit`:
# `defenses.pgd_training_objective(eps, steps=...)` and `defenses.fast_fgsm_objective(eps)`
# build them on top of `robustkit.attacks`. The attacks run the model in eval mode
# (dropout off) and give it back in training mode with untouched gradients.

# %%
objectives = {
    "standard": (None, "ce"),
    f"PGD-{TRAIN_STEPS} training": (defenses.pgd_training_objective(EPS_TRAIN, steps=TRAIN_STEPS),
                                    f"pgd-linf eps={EPS_TRAIN} steps={TRAIN_STEPS}"),
    "fast FGSM training": (defenses.fast_fgsm_objective(EPS_TRAIN),
                           f"fgsm-rs eps={EPS_TRAIN} alpha=1.25eps"),
}
models, train_time = {}, {}
for name, (objective, key) in objectives.items():
    start = time.perf_counter()
    models[name] = train_model(name, rk.MnistConvNet, objective, objective_key=key)
    train_time[name] = time.perf_counter() - start
    print(f"{name:>20}: clean test accuracy {robust_acc(models[name], None, x_test, y_test):.3f}"
          f"  ({train_time[name]:.1f} s, including loading from the cache)")

# %% [markdown]
# We evaluate every model with the same attacks (chapter 2's protocol): FGSM and PGD with
# `EVAL_STEPS` steps, random start, in $L_\infty$ balls of increasing radius. A correct
# evaluation gives curves that decrease with $\varepsilon$ (GUIDE §5).

# %%
EVAL_EPS = budget.pick(smoke=[0.0, 0.1, 0.2], cpu=[0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3],
                       gpu=[0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4])
curves = {}
for name, model in models.items():
    curves[name] = {
        "FGSM": [robust_acc(model, attacks.FGSM(model, e) if e else None) for e in EVAL_EPS],
        "PGD": [robust_acc(model, attacks.PGD(model, e, steps=EVAL_STEPS) if e else None)
                for e in EVAL_EPS],
    }
fig, axes = plt.subplots(1, 2, figsize=(11, 3.8), sharey=True)
for ax, kind in zip(axes, ["FGSM", "PGD"]):
    for name in models:
        ax.plot(EVAL_EPS, curves[name][kind], "o-", label=name)
    ax.axvline(EPS_TRAIN, color="gray", ls=":", lw=1)
    ax.set(xlabel=r"$\varepsilon$ ($L_\infty$, pixels)", title=f"{kind} attack",
           ylim=(-0.02, 1.02))
axes[0].set_ylabel("robust accuracy")
axes[1].legend(fontsize=8)
fig.tight_layout()
plt.show()

# %% [markdown]
# *Figure 3.1: robust accuracy of a standard and two adversarially trained MNIST convnets
# under FGSM (left) and PGD-`EVAL_STEPS` (right); the dotted line marks the training radius.*
#
# The standard model loses most of its accuracy between $\varepsilon=0.1$ and $0.2$. Both
# adversarially trained models keep a large part of it up to the training radius, at a cost
# in clean accuracy (larger here than at paper scale: our models see few images for few
# epochs), and FGSM training is about as good as PGD training for a fraction of the cost. Beyond the training radius, robustness falls quickly: training buys robustness for
# the threat model it was trained on.

# %% [markdown]
# ## 3.2 The Lipschitz view
#
# Why does training on adversarial points help? Seed 003 (§2.3.1) expands the loss around a
# training point:
#
# $$
# \ell(f(x+\xi), y) = \ell(f(x), y) + \xi^\top\nabla_x\ell(f(x), y) + O(\|\xi\|^2).
# $$ (eq-03-taylor)
#
# The maximum of the linear term over the ball $\|\xi\|\le\gamma$ is $\gamma$ times the
# *dual norm* of the gradient, $\max_{\|\xi\|_p\le\gamma}\xi^\top g=\gamma\|g\|_q$ with
# $1/p+1/q=1$ ($L_1$ for an $L_\infty$ ball, $L_2$ for an $L_2$ ball). Ignoring the
# second-order term, adversarial training becomes (seed 003 eq. (2.25))
#
# $$
# \min_\theta\ \frac1N\sum_n \ell\big(f_\theta(x_n), y_n\big)
# + \gamma\,\big\|\nabla_{x_n}\ell\big(f_\theta(x_n), y_n\big)\big\|_* ,
# $$ (eq-03-lipschitz)
#
# a penalty on the *local Lipschitz constant* of the loss at the training points, the
# "Lipschitz regularization" that seed 000 (§6.3) proposes and leaves for future work.
# Training on {eq}`eq-03-lipschitz` needs the derivative, with respect to $\theta$, of a
# derivative with respect to $x$: *double backpropagation* {cite}`drucker1992improving`,
# one `create_graph=True` away in PyTorch (`defenses.gradient_norm_objective`).
#
# We train such a model with $\gamma$ chosen so that the penalty matters, and compare the
# local Lipschitz estimates of all models on test images. Two of them: the loss gradient
# $\|\nabla_x\ell\|_1$ of {eq}`eq-03-lipschitz`, and the gradient of the *logit margin*
# $m(x)=z_y(x)-\max_{j\ne y}z_j(x)$, whose ratio $m/\|\nabla_x m\|_1$ is the first-order
# $L_\infty$ distance to the decision boundary (the linearized "certified" radius).

# %%
GAMMA = 0.1
models["gradient-norm penalty"] = train_model(
    "gradient-norm penalty", rk.MnistConvNet, defenses.gradient_norm_objective(GAMMA),
    objective_key=f"gradnorm gamma={GAMMA} linf")
name = "gradient-norm penalty"
model = models[name]
curves[name] = {
    "FGSM": [robust_acc(model, attacks.FGSM(model, e) if e else None) for e in EVAL_EPS],
    "PGD": [robust_acc(model, attacks.PGD(model, e, steps=EVAL_STEPS) if e else None)
            for e in EVAL_EPS],
}
lipschitz, lip_margin, radius_1st = {}, {}, {}
for name, model in models.items():
    model.eval()
    lipschitz[name] = defenses.input_gradient_norms(model, x_rob, y_rob, norm="linf").detach().cpu()
    g_m, margin, _ = defenses.input_gradient_norms(model, x_rob, y_rob, norm="linf", of="margin",
                                                    return_loss=True)
    lip_margin[name] = g_m.detach().cpu()
    ok = margin > 0                      # correctly classified points
    radius_1st[name] = (margin[ok] / g_m[ok]).detach().cpu()

# %%
# NBVAL_IGNORE_OUTPUT
rows = []
for name in models:
    c = curves[name]
    i1, i2 = EVAL_EPS.index(0.1), EVAL_EPS.index(0.2)
    rows.append(f"| {name} | {c['PGD'][0]:.3f} | {c['FGSM'][i1]:.3f} | {c['PGD'][i1]:.3f} | "
                f"{c['PGD'][i2]:.3f} | {lipschitz[name].median():.3g} | "
                f"{lip_margin[name].median():.3g} | {radius_1st[name].median():.3f} |")
from IPython.display import Markdown, display
display(Markdown(
    "| model | clean | FGSM 0.1 | PGD 0.1 | PGD 0.2 | median $\\|\\nabla_x\\ell\\|_1$ "
    "| median $\\|\\nabla_x m\\|_1$ | median $m/\\|\\nabla_x m\\|_1$ |\n"
    "|---|---|---|---|---|---|---|---|\n" + "\n".join(rows)))

# %%
fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(11, 3.8))
for ax, values, bins, label, title in [
        (ax0, lipschitz, np.logspace(-5, 3, 50), r"$\|\nabla_x \ell(f(x), y)\|_1$", "loss"),
        (ax1, lip_margin, np.logspace(-1, 3, 50), r"$\|\nabla_x m(x)\|_1$", "logit margin")]:
    for name, v in values.items():
        ax.hist(v.clamp_min(bins[0]).numpy(), bins=bins, histtype="step", lw=1.8, label=name)
    ax.set(xscale="log", xlabel=label + " on test images", ylabel="images",
           title=f"Local Lipschitz estimates of the {title}")
ax1.legend(fontsize=8)
fig.tight_layout()
plt.show()

# %% [markdown]
# *Figure 3.2: distribution over test images of the input-gradient norms of the loss
# (left: the first-order worst-case loss increase per unit of $\varepsilon$ in an
# $L_\infty$ ball) and of the logit margin (right).*
#
# The two panels tell different stories, and the difference is instructive. The gradient
# of the cross-entropy is $(\mathrm{softmax}-\mathrm{onehot})^\top\nabla_x z$: it vanishes
# on points classified with high confidence, so the standard model, very confident on
# clean images, has the *smallest* loss gradients there, although a few pixels' worth of
# perturbation fools it. The loss gradient at the data is what the penalty
# {eq}`eq-03-lipschitz` and adversarial training control *during* training, on the
# training points; it is a poor measure of robustness after training. The margin does
# not saturate: its gradient is several times smaller for the adversarially trained and
# penalized models than for the standard one, and their first-order distance to the
# boundary (last column of the table) is larger. The penalized model gains robustness to
# small $\varepsilon$, where the linearization {eq}`eq-03-taylor` holds, but less than
# adversarial training at larger radii, where it does not (Exercise 3.2). A gradient is
# only a local certificate: a small gradient at $x$ says nothing about a cliff at distance
# $\varepsilon$, which is why the final verdict always comes from attacks.

# %% [markdown]
# ## 3.3 Robustness against the size of the training ball
#
# Seed 000 (§7) trains many MNIST classifiers with $L_\infty$ PGD adversarial training for a
# grid of ball sizes (its Figure 17: 0.1 to 1.6) and reports means and standard deviations
# over 100 runs per size. Its radii exceed the pixel range, so they are measured after the
# classic MNIST normalization $(x-0.1307)/0.3081$; in pixel units they are about
# $0.03$ to $0.49$. We sweep a smaller grid in pixel units, with `N_SEEDS` seeds per
# radius (PGD-`SWEEP_STEPS` training on `SWEEP_N` images), and measure clean accuracy, PGD
# robust accuracy and the median local Lipschitz estimate (the concept-based measures of
# seed 000 come in the next chapters).

# %%
sweep = {"clean": [], "pgd 0.1": [], "pgd 0.2": [], "lipschitz": []}
for eps in SWEEP_EPS:
    runs = {k: [] for k in sweep}
    for seed in range(N_SEEDS):
        model = train_model(f"sweep eps={eps} seed={seed}", rk.MnistConvNet,
                            defenses.pgd_training_objective(eps, steps=SWEEP_STEPS),
                            n=SWEEP_N, epochs=SWEEP_EPOCHS, seed=seed, lr=SWEEP_LR,
                            objective_key=f"pgd-linf eps={eps} steps={SWEEP_STEPS}")
        xs, ys = x_test[:SWEEP_EVAL], y_test[:SWEEP_EVAL]
        runs["clean"].append(robust_acc(model, None, x_test, y_test))
        for e in (0.1, 0.2):
            attack = attacks.PGD(model, e, steps=SWEEP_EVAL_STEPS)
            runs[f"pgd {e}"].append(robust_acc(model, attack, xs, ys))
        runs["lipschitz"].append(
            defenses.input_gradient_norms(model, xs, ys, of="margin").median().item())
    for k in sweep:
        sweep[k].append((np.mean(runs[k]), np.std(runs[k])))
    print(f"eps {eps:.2f}: " + ", ".join(f"{k} {np.mean(v):.3f} +- {np.std(v):.3f}"
                                         for k, v in runs.items()))

# %%
fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(11, 3.8))
for k, label in [("clean", "clean"), ("pgd 0.1", r"PGD $\varepsilon=0.1$"),
                 ("pgd 0.2", r"PGD $\varepsilon=0.2$")]:
    mean, std = np.array(sweep[k]).T
    ax0.errorbar(SWEEP_EPS, mean, yerr=std, marker="o", capsize=3, label=label)
ax0.set(xlabel=r"training ball radius $\varepsilon_{train}$ ($L_\infty$)", ylabel="test accuracy",
        title=f"mean $\\pm$ std over {N_SEEDS} seed(s)", ylim=(-0.02, 1.02))
ax0.legend(fontsize=8)
mean, std = np.array(sweep["lipschitz"]).T
ax1.errorbar(SWEEP_EPS, mean, yerr=std, marker="o", capsize=3, color="#D55E00")
ax1.set(yscale="log", xlabel=r"training ball radius $\varepsilon_{train}$",
        ylabel=r"median $\|\nabla_x m\|_1$", title="Local Lipschitz estimate of the margin")
fig.tight_layout()
plt.show()

# %% [markdown]
# *Figure 3.3: the seed 000 sweep at a smaller scale: accuracy (left) and local Lipschitz
# estimate (right) against the radius of the training ball, mean and standard deviation
# over seeds.*
#
# Up to a point, robust accuracy grows with the training radius while clean accuracy
# slowly decreases, and the margin becomes flatter around the test points: the training
# radius is a knob between accuracy and robustness, which is what seed 000 uses as the
# "ground truth" of robustness against which its concept distances are correlated. With
# our short training, the largest radii are too hard a task: the model no longer fits the
# data (clean accuracy collapses), and its robust accuracy falls with it; a longer
# training (the `gpu` budget) moves this point to larger radii.
#
# **Try it.** Pick a model and a radius and look at what PGD does to it (run the notebook
# for the sliders; the page shows their initial state):

# %%
import ipywidgets as widgets


def show_attack(model_name="standard", eps=0.15):
    model = models[model_name]
    x, y = x_test[:10], y_test[:10]
    x_adv = attacks.PGD(model, eps, steps=EVAL_STEPS)(x, y) if eps > 0 else x
    preds = rk.predict(model, x_adv).argmax(1)
    fig = rk.plot.image_grid(torch.cat([x, x_adv]).cpu(),
                             labels=torch.cat([y, y]).cpu(),
                             preds=torch.cat([rk.predict(model, x).argmax(1), preds]).cpu(),
                             ncols=10, ax_size=1.0,
                             title=f"{model_name}: clean (top), PGD eps={eps:.2f} (bottom); "
                                   f"robust accuracy {robust_acc(model, None, x_adv, y):.0%}")
    plt.show()


widgets.interact(show_attack, model_name=widgets.Dropdown(options=list(models), value="standard"),
                 eps=widgets.FloatSlider(value=0.15, min=0.0, max=0.4, step=0.05));

# %% [markdown]
# The same view, static, for the standard and the PGD-trained model at $\varepsilon=0.15$:

# %%
for name in ["standard", f"PGD-{TRAIN_STEPS} training"]:
    show_attack(name, 0.15)

# %% [markdown]
# ## 3.4 The HR loss: modelling the uncertainty of the classifier
#
# Seed 001 {cite}`picot2021uncertainty` changes the *loss* instead of the data. Let
# $p_{\hat Y|X}$ be the softmax of the network ("soft decision" $\hat Y$), $f(x)=\arg\max_y
# p_{\hat Y|X}(y|x)$ the hard decision and $P_e=\mathbb P(Y\ne f(X))$ the error
# probability. The logarithmic probability comparison bounds {cite}`atar2015robust`
# applied to the error event give (Proposition 1), for every $\alpha>1$,
#
# $$
# \log P_e \le \frac{\alpha-1}{\alpha}\log\big[1-e^{-H(\hat Y|X)}\big]
# + (\alpha-1)\,D_\alpha\big(p_{XY}\,\|\,p_{X\hat Y}\big),
# $$ (eq-03-hr-bound)
#
# with $p_{X\hat Y}=p_Xp_{\hat Y|X}$ and seed 001's normalization of the Rényi divergence
# $D_\alpha(\mu\|\nu)=\frac{1}{\alpha(\alpha-1)}\log\mathbb E_\mu[(d\nu/d\mu)^{1-\alpha}]$
# (chapter 1). The error is small when the classifier is *certain* (small conditional
# entropy $H(\hat Y|X)$) and *fits the data* (small divergence). The bound blows up as
# $H(\hat Y|X)\to0$; relaxing $\log[1-e^{-H}]\le H-1$ (appendix B) gives the **HR loss**
# (eq. (3); the paper prints $H(Y|X)$, but the entropy meant is that of the soft decision)
#
# $$
# \mathcal L_{HR}(\theta) = H(\hat Y|X) + \alpha\,D_\alpha\big(p_{XY}\,\|\,p_{X\hat Y}\big),
# \qquad \alpha = 1.6 .
# $$ (eq-03-hr-loss)
#
# **Estimating it on a minibatch.** Replace $p_{XY}$ by the empirical distribution of the
# batch, $\frac1N\sum_n\delta_{(x_n,y_n)}$; then $p_{X\hat Y}(x_n,y)=\frac1N p_\theta(y|x_n)$,
# the density ratio at the data points is $d\nu/d\mu(x_n,y_n)=p_\theta(y_n|x_n)$, and
#
# $$
# \mathcal L_{HR} \approx \frac1N\sum_{n=1}^N H\big(p_\theta(\cdot|x_n)\big)
# + \frac{1}{\alpha-1}\log\frac1N\sum_{n=1}^N p_\theta(y_n|x_n)^{1-\alpha}.
# $$ (eq-03-hr-batch)
#
# The Rényi term is a log-mean-exp over the *whole batch*. Computed sample by sample (a
# divergence between a one-hot label and a softmax), it would reduce to the cross-entropy
# $-\log p_\theta(y_n|x_n)$ for every $\alpha$. By Jensen's inequality it is at least the
# cross-entropy, equal to it as $\alpha\to1$, and for $\alpha>1$ it weighs the worst-fitted
# examples of the batch more, with weights $\propto p_\theta(y_n|x_n)^{1-\alpha}$.

# %%
# NBVAL_CHECK_OUTPUT
logits_demo = torch.tensor([[4.0, 0.0, 0.0], [0.0, 2.0, 0.0], [1.0, 0.0, 0.5]])
labels_demo = torch.tensor([0, 1, 2])
ce_demo = F.cross_entropy(logits_demo, labels_demo).item()
for alpha in (1.0, 1.6, 3.0):
    loss, h_term, r_term = defenses.hr_loss(logits_demo, labels_demo, alpha, return_terms=True)
    print(f"alpha {alpha}: H = {h_term:.4f}, alpha*D_alpha = {r_term:.4f} "
          f"(CE = {ce_demo:.4f}), HR = {loss:.4f}")

# %% [markdown]
# Seed 001 trains the same MNIST convnet (two convolution + max-pooling layers, two fully
# connected layers; here the convnet of seed 000) with the CE and the HR loss, and attacks
# each with FGSM, $x_{adv}=x+\varepsilon\operatorname{sgn}\nabla_x\mathcal L$, where
# $\mathcal L$ is either loss ("attack-based CE / HR"; `defenses.fgsm_with_loss`; like the
# HR training loss, the HR attack is computed on batches of 100). The paper trains with SGD
# ($\text{lr}=10^{-3}$) for 1,000 epochs and averages 5 runs; we use Adam for `EPOCHS`
# epochs and `N_SEEDS` runs.

# %%
hr_models = {"CE": [], "HR": []}
for seed in range(N_SEEDS):
    hr_models["CE"].append(train_model(f"seed001 CE seed={seed}", rk.MnistConvNet, None,
                                       seed=seed, objective_key="ce"))
    hr_models["HR"].append(train_model(f"seed001 HR seed={seed}", rk.MnistConvNet,
                                       defenses.hr_objective(1.6), seed=seed,
                                       objective_key="hr alpha=1.6"))


def fgsm_attack(model, eps, loss):
    return lambda x, y: defenses.fgsm_with_loss(model, x, y, eps, loss=loss.lower(), alpha=1.6)


TABLE_EPS = [0.0, 0.1, 0.25]
columns = {"CE": ("CE", "CE"), "HRCE": ("HR", "CE"), "HR": ("HR", "HR"), "CEHR": ("CE", "HR")}
table = {}
for col, (trained, attacked) in columns.items():
    for eps in TABLE_EPS:
        accs = [robust_acc(m, fgsm_attack(m, eps, attacked) if eps else None, x_test, y_test)
                for m in hr_models[trained]]
        table[col, eps] = (np.mean(accs), np.std(accs))
paper = {("CE", 0.0): 0.985, ("CE", 0.1): 0.907, ("CE", 0.25): 0.852,
         ("HRCE", 0.0): 0.986, ("HRCE", 0.1): 0.945, ("HRCE", 0.25): 0.861,
         ("HR", 0.0): 0.986, ("HR", 0.1): 0.977, ("HR", 0.25): 0.974,
         ("CEHR", 0.0): 0.985, ("CEHR", 0.1): 0.977, ("CEHR", 0.25): 0.972}

# %%
# NBVAL_IGNORE_OUTPUT
header = ("| $\\varepsilon$ | " + " | ".join(f"{c} (ours) | {c} (paper)" for c in columns)
          + " |\n" + "|---" * (1 + 2 * len(columns)) + "|\n")
body = "\n".join(
    f"| {eps} | " + " | ".join(f"{table[c, eps][0]:.3f} ± {table[c, eps][1]:.3f} | {paper[c, eps]:.3f}"
                               for c in columns) + " |"
    for eps in TABLE_EPS)
display(Markdown(header + body))

# %% [markdown]
# *Table 3.1: test accuracy on MNIST of CE- and HR-trained models under FGSM attacks built
# with the CE or the HR loss (seed 001, Table 1, MNIST column: "HRCE" is the HR model
# attacked with the CE loss, "CEHR" the CE model attacked with the HR loss). Ours: mean ±
# std over `N_SEEDS` runs, `EPOCHS` epochs on `N_TRAIN` images, `N_TEST` test images.*
#
# Read the table column by column. Clean accuracies of the two losses are close, as in the
# paper. The paper's main claim is that the HR-trained model resists the attacks better
# (HRCE > CE, HR > CEHR). At the `cpu` budget we do **not** reproduce it: the differences
# between the HR and CE models are of the order of the spread over seeds, and every
# accuracy under attack is far below the paper's, whose models were trained for 1,000
# epochs on the full training set (a better-trained MNIST convnet is much harder to fool
# with a single FGSM step). What does carry over is the paper's remark that on MNIST the
# CE-based attack is at least as strong as the HR-based one (compare HRCE with HR, and CE
# with CEHR). Run the `gpu` budget to get closer to the paper's setting.
#
# Seed 001 also compares the confusion matrices $C[\hat y, y]=\hat p(\hat Y=\hat y|Y=y)$ of
# the two models under the CE attack with $\varepsilon=0.1$, through $\|I_{10}-C\|_F$ (paper:
# 0.40 for CE, 0.23 for HR): the closer to the identity, the less uncertain the classifier
# under attack.

# %%
fig, axes = plt.subplots(1, 2, figsize=(11, 4.6))
frob = {}
for ax, trained in zip(axes, ["CE", "HR"]):
    model = hr_models[trained][0]
    x_adv = torch.cat([fgsm_attack(model, 0.1, "CE")(x_test[i:i + BATCH], y_test[i:i + BATCH])
                       for i in range(0, len(x_test), BATCH)])
    pred = rk.predict(model, x_adv).argmax(1)
    C = defenses.conditional_confusion(pred.cpu(), y_test.cpu(), 10)
    frob[trained] = torch.linalg.matrix_norm(torch.eye(10, dtype=C.dtype) - C).item()
    rk.plot.heatmap(C.numpy(), list(range(10)), list(range(10)), ax=ax, fmt=".2f", vmin=0, vmax=1,
                    xlabel="true class y", ylabel=r"decision $\hat y$", colorbar=False,
                    title=f"{trained} model, CE-FGSM 0.1: $\\|I-C\\|_F$ = {frob[trained]:.2f}")
fig.tight_layout()
plt.show()
print(f"||I - C||_F: CE {frob['CE']:.2f} (paper 0.40), HR {frob['HR']:.2f} (paper 0.23)")

# %% [markdown]
# *Figure 3.4: confusion matrices $p(\hat y|y)$ (columns sum to one) of the first CE and HR
# models under the CE-based FGSM attack with $\varepsilon=0.1$. Our norms are
# larger than the paper's because our models are much less accurate under this attack
# (Table 3.1); the comparison between the two losses is what matters.*

# %% [markdown]
# ## 3.5 The variational information bottleneck
#
# The information bottleneck {cite}`tishby2000information` looks for a representation $Z$
# of the input that keeps what is relevant for the label and forgets the rest:
# $\max\ I(Z;Y)-\beta I(Z;X)$. Chapter 1 derived its variational bound (seed 002): with a
# stochastic encoder $p(z|x)=\mathcal N(z\,|\,\mu(x),\operatorname{diag}\sigma(x)^2)$, a
# variational decoder $q(y|z)$ and a variational marginal $r(z)=\mathcal N(0,I)$,
#
# $$
# J_{IB}=\frac1N\sum_{n=1}^N\mathbb E_{\epsilon\sim\mathcal N(0,I)}
# \big[-\log q\big(y_n\,|\,\mu(x_n)+\sigma(x_n)\odot\epsilon\big)\big]
# +\beta\,\mathrm{KL}\big(p(Z|x_n)\,\|\,r(Z)\big),
# $$ (eq-03-vib)
#
# trained with one reparameterized sample {cite}`kingma2014auto` per example. The MNIST
# model of seed 002 {cite}`alemi2017deep`: encoder MLP 784-1024-1024-$2K$ (the last layer
# gives $K$ means and, through a softplus, $K$ standard deviations), decoder a logistic
# regression, $K=256$ or $K=2$. It is evaluated with one posterior sample ("1 shot") or by
# averaging the softmax over 12 samples ("avg"). `defenses.VIBClassifier` is that model;
# its `forward` returns the logarithm of the 12-sample average softmax, which is how it is
# deployed and therefore how it must be attacked (chapter 2). The deterministic baseline
# is the same MLP with a 10-way output layer. Deviations: Adam with learning rate
# $10^{-3}$ for `VIB_EPOCHS` epochs (the paper: 200 epochs at $10^{-4}$, with decay and
# weight averaging).

# %%
def vib_model(K, beta, epochs=VIB_EPOCHS):
    return train_model(f"vib K={K} beta={beta:g}", lambda: defenses.VIBClassifier(K),
                       defenses.vib_objective(beta), epochs=epochs,
                       objective_key=f"vib beta={beta:g}", K=K)


baseline = train_model("deterministic 1024-1024", lambda: rk.DenseMLP(hidden=(1024, 1024)),
                       None, epochs=VIB_EPOCHS, objective_key="ce")
vib = {beta: vib_model(256, beta) for beta in VIB_BETAS}


def vib_errors(model, n_samples, x=x_test, y=y_test):
    torch.manual_seed(SEED)
    with torch.no_grad():
        probs = torch.cat([model.predict_proba(x[i:i + 500], n_samples)
                           for i in range(0, len(x), 500)])
    return (probs.argmax(1) != y).float().mean().item()


base_err = 1 - robust_acc(baseline, None, x_test, y_test)
err_1 = [vib_errors(vib[b], 1) for b in VIB_BETAS]
err_12 = [vib_errors(vib[b], 12) for b in VIB_BETAS]
fig, ax = plt.subplots(figsize=(6.5, 3.8))
ax.plot(VIB_BETAS, err_1, "o-", label="VIB, 1 shot eval")
ax.plot(VIB_BETAS, err_12, "s-", label="VIB, avg eval (12 samples)")
ax.axhline(base_err, color="k", ls="--", lw=1, label="deterministic baseline")
ax.set(xscale="log", yscale="log", xlabel=r"$\beta$", ylabel="test error",
       title=f"VIB, K = 256 ({N_TRAIN} training images, {VIB_EPOCHS} epochs)")
ax.legend(fontsize=8)
plt.show()

# %% [markdown]
# *Figure 3.5: test error of the VIB classifier ($K=256$) against $\beta$ (seed 002, Figure
# 1a), with one posterior sample or the average of 12.*
#
# As in seed 002, the error is flat over several decades of small $\beta$ and rises sharply
# once the compression term dominates (beyond about $10^{-2}$): the encoder is then pushed
# to the prior and forgets the input, and a single sample is then much worse than the
# 12-sample average. Seed 002's Table 1 (60,000 images, 200 epochs):

# %%
# NBVAL_IGNORE_OUTPUT
best = int(np.argmin(err_12))
display(Markdown(
    "| model | test error (ours) | test error (seed 002) |\n|---|---|---|\n"
    f"| deterministic baseline | {base_err:.2%} | 1.38% |\n"
    f"| VIB, $\\beta=10^{{-3}}$, avg eval | "
    f"{err_12[VIB_BETAS.index(1e-3)]:.2%} | 1.13% |\n"
    f"| VIB, best $\\beta$ here ({VIB_BETAS[best]:g}) | {err_12[best]:.2%} | |"))

# %% [markdown]
# **The 2-D embedding.** With $K=2$ we can look at the representation. For 500 test
# images, we draw the 95 % confidence ellipse of each $p(z|x)=\mathcal N(\mu,\operatorname{diag}
# \sigma^2)$ (semi-axes $\sqrt{\chi^2_2(0.95)}\,\sigma_k=2.45\,\sigma_k$), coloured by the
# true class, over the entropy of the decoder $q(y|z)$ in grey (seed 002, Figure 2).

# %%
vib2 = {beta: vib_model(2, beta, epochs=VIB2_EPOCHS) for beta in VIB2_BETAS}
radius = defenses.confidence_ellipse_radius(0.95)
n_show = min(500, len(x_test))
cmap = plt.get_cmap("tab10")
fig, axes = plt.subplots(1, len(vib2), figsize=(4.6 * len(vib2), 4.4), squeeze=False)
for ax, (beta, model) in zip(axes[0], vib2.items()):
    with torch.no_grad():
        mu, sigma = model.encode(x_test[:n_show])
    mu, sigma = mu.cpu().numpy(), sigma.cpu().numpy()
    lim = np.percentile(np.abs(mu), 99) + 3 * np.median(sigma) + 0.5
    grid = torch.linspace(-lim, lim, 150)
    gz = torch.stack(torch.meshgrid(grid, grid, indexing="xy"), -1).reshape(-1, 2).to(device)
    with torch.no_grad():
        probs = F.softmax(model.decode(gz), -1)
    entropy = -(probs * probs.clamp_min(1e-12).log()).sum(-1).reshape(150, 150).cpu()
    ax.imshow(entropy, extent=(-lim, lim, -lim, lim), origin="lower", cmap="Greys",
              vmin=0, vmax=math.log(10))
    for (m, s, label) in zip(mu, sigma, y_test[:n_show].cpu().numpy()):
        ax.add_patch(Ellipse(m, 2 * radius * s[0], 2 * radius * s[1], fill=False, lw=0.6,
                             color=cmap(label), alpha=0.6))
    ax.scatter(mu[:, 0], mu[:, 1], c=[cmap(v) for v in y_test[:n_show].cpu().numpy()], s=3)
    e1, e12 = vib_errors(model, 1), vib_errors(model, 12)
    ax.set(xlim=(-lim, lim), ylim=(-lim, lim), xticks=[], yticks=[],
           title=f"$\\beta$ = {beta:g}: err$_{{mc}}$ {e12:.1%}, err$_1$ {e1:.1%}")
    ax.grid(False)
fig.tight_layout()
plt.show()

# %% [markdown]
# *Figure 3.6: 2-D VIB embeddings of test images (95 % ellipses of $p(z|x)$, colours = true
# class; grey = entropy of $q(y|z)$, white = confident). Seed 002, Figure 2 (60,000 images,
# 100+ epochs): $\beta=10^{-3}$: err$_{mc}$ 3.18 %, err$_1$ 3.24 %; $\beta=10^{-1}$: 3.44 %,
# 4.32 %; $\beta=1$: 33.82 %, 62.81 %.*
#
# Small $\beta$: tight, well separated clusters, and a single sample suffices. As $\beta$
# grows, the ellipses swell towards the prior $\mathcal N(0,I)$ and overlap: the
# representation forgets the input, the single-sample error grows faster than the
# averaged one, and at $\beta=1$ whole classes become indistinguishable.

# %% [markdown]
# **Robustness to FGS.** Seed 002 (Figure 5) attacks VIB models, *never trained on
# adversarial examples*, with FGS and reports their accuracy divided by the deterministic
# baseline's: the ratio grows with $\beta$ and with $\varepsilon$. FGSM against the VIB
# model goes through its 12-sample averaged output (an expectation over its own
# randomness, as GUIDE §5 requires for randomized defenses).

# %%
FGS_EPS = [0.05, 0.1, 0.15, 0.2, 0.3]
fgs_base = [robust_acc(baseline, attacks.FGSM(baseline, e), x_test, y_test) for e in FGS_EPS]
torch.manual_seed(SEED)
fgs_vib = {b: [robust_acc(m, attacks.FGSM(m, e), x_test, y_test) for e in FGS_EPS]
           for b, m in vib.items()}
fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(11, 3.8))
for j, e in enumerate(FGS_EPS):
    if fgs_base[j] < 0.02:          # ratios of accuracies near 0 are noise
        continue
    rel = [fgs_vib[b][j] / fgs_base[j] for b in VIB_BETAS]
    ax0.plot(VIB_BETAS, rel, "o-", label=rf"$\varepsilon$ = {e}")
ax0.axhline(1.0, color="k", lw=1, ls="--")
ax0.set(xscale="log", xlabel=r"$\beta$",
        ylabel="VIB accuracy / baseline accuracy", title="FGS: relative accuracy")
ax0.legend(fontsize=8)
ax1.plot(FGS_EPS, fgs_base, "k--o", label="deterministic baseline")
for b in VIB_BETAS:
    ax1.plot(FGS_EPS, fgs_vib[b], "o-", label=rf"VIB $\beta$ = {b:g}")
ax1.set(xlabel=r"$\varepsilon$", ylabel="accuracy", title="FGS: accuracy", ylim=(-0.02, 1.02))
ax1.legend(fontsize=7)
fig.tight_layout()
plt.show()
print("baseline FGS accuracy: " + ", ".join(f"eps {e}: {a:.3f}" for e, a in zip(FGS_EPS, fgs_base))
      + "  (seed 002: about 5 % at 0.35, 1 % at 0.5)")

# %% [markdown]
# *Figure 3.7: FGS accuracy of VIB models relative to the deterministic baseline (left,
# seed 002 Figure 5a; radii where the baseline's accuracy is below 2 % are left out) and
# absolute (right).*
#
# At our scale the gains are modest but follow seed 002's trend: the VIB models' accuracy
# relative to the baseline grows with $\beta$ (up to $\beta\approx10^{-1}$) and with
# $\varepsilon$, although they never saw an adversarial example; at $\beta=1$ the model
# has lost its clean accuracy and with it everything else. Seed 002's models were trained
# 200 epochs on 60,000 images, and its attacks use larger radii (0.35 to 0.5) against
# which our short-trained baseline is already at 0 %.
#
# **Targeted $L_2$ attacks.** Seed 002 also runs the Carlini-Wagner $L_2$ attack
# {cite}`carlini2017towards` (chapter 2), targeted, and reports that the deterministic model
# is always fooled (0 % accuracy) while VIB models with large $\beta$ keep part of their
# accuracy and force larger perturbations. We target class $(y+1)\bmod 10$ on `N_CW` test
# images.

# %%
target_cw = (y_test[:N_CW] + 1) % 10
x_cw, y_cw = x_test[:N_CW], y_test[:N_CW]
cw_rows, cw_models = [], {"deterministic": baseline}
cw_models.update({f"VIB beta={b:g}": vib[b] for b in VIB_BETAS if b >= 1e-3})
for name, model in cw_models.items():
    torch.manual_seed(SEED)
    attack = attacks.CarliniWagnerL2(model, c=10.0, lr=CW_LR, steps=CW_STEPS,
                                     binary_search_steps=CW_SEARCH)
    x_adv = attack(x_cw, y_cw, target=target_cw)
    torch.manual_seed(SEED + 1)
    pred = rk.predict(model, x_adv).argmax(1)
    success = (pred == target_cw)
    l2 = (x_adv - x_cw).flatten(1).norm(dim=1)
    cw_rows.append((name, success.float().mean().item(), (pred == y_cw).float().mean().item(),
                    l2[success].mean().item() if success.any() else float("nan")))

# %%
# NBVAL_IGNORE_OUTPUT
display(Markdown(
    "| model | targeted success | accuracy | mean $L_2$ of successful attacks |\n"
    "|---|---|---|---|\n" + "\n".join(f"| {n} | {s:.0%} | {a:.0%} | {l:.2f} |"
                                      for n, s, a, l in cw_rows)))

# %% [markdown]
# *Table 3.2: targeted Carlini-Wagner $L_2$ attack. Seed 002 (Figure 6, MNIST): 0 %
# accuracy for the deterministic and dropout models, a VIB accuracy that grows with $\beta$
# (targeted attacks being the harder ones to resist); on ImageNet (Table 2): targeted
# success 1.0 for the deterministic model versus 0.567 for VIB($\beta=0.01$), with mean
# $L_2$ 6.45 versus 43.27.*
#
# Two cautions. First, a stochastic model makes gradient-based attacks noisy; part of the
# robustness of large-$\beta$ models under a fixed attack budget can be gradient
# obfuscation rather than robustness, and the check of chapter 2 applies: more steps, more
# samples in the expectation, and a transfer attack from the deterministic twin
# (`stochastic = False`) should not help the model. Second, large $\beta$ costs clean
# accuracy (Figure 3.5): robustness must always be read together with accuracy.

# %% [markdown]
# ## Exercises
#
# **Exercise 3.1 (the Rényi term by hand).** Write `renyi_term(logits, y, alpha)` that
# returns the batch estimate of $\alpha D_\alpha(p_{XY}\|p_{X\hat Y})$ of
# {eq}`eq-03-hr-batch` with `torch.logsumexp` (no loop, no `robustkit`). Check it against
# the third value returned by `defenses.hr_loss(..., return_terms=True)`, and show on
# random logits that it is always at least the cross-entropy.

# %%
def renyi_term(logits, y, alpha):
    """Your answer: (1 / (alpha - 1)) * log mean_n p(y_n | x_n)^(1 - alpha)."""
    return None


# %% tags=["solution", "hide-input"]
def renyi_term(logits, y, alpha):
    logp_y = F.log_softmax(logits, dim=1).gather(1, y[:, None]).squeeze(1)
    return (torch.logsumexp((1 - alpha) * logp_y, 0) - math.log(len(y))) / (alpha - 1)


g = torch.Generator().manual_seed(0)
demo_logits = 3 * torch.randn(64, 10, generator=g, dtype=torch.float64)
demo_y = torch.randint(0, 10, (64,), generator=g)
print(f"Renyi term {renyi_term(demo_logits, demo_y, 1.6):.4f} >= "
      f"CE {F.cross_entropy(demo_logits, demo_y):.4f}")

# %% tags=["exercise-check"]
# Check exercise 3.1
_g = torch.Generator().manual_seed(1)
_logits = 2 * torch.randn(32, 10, generator=_g, dtype=torch.float64)
_y = torch.randint(0, 10, (32,), generator=_g)
_mine = renyi_term(_logits, _y, 1.6)
assert _mine is not None, "renyi_term returns None"
assert abs(float(_mine) - float(defenses.hr_loss(_logits, _y, 1.6, return_terms=True)[2])) < 1e-9
assert float(renyi_term(_logits, _y, 2.5)) >= float(F.cross_entropy(_logits, _y)) - 1e-12

# %% tags=["exercise-check", "hidden", "remove-cell"]
# Check exercise 3.1
_g = torch.Generator().manual_seed(5)
_logits = 4 * torch.randn(17, 5, generator=_g, dtype=torch.float64)
_y = torch.randint(0, 5, (17,), generator=_g)
for _a in (1.3, 1.6, 4.0):  # explicit loop: 1/(a-1) log (1/N) sum_n p(y_n|x_n)^(1-a)
    _p = torch.softmax(_logits, 1)
    _s = sum(float(_p[n, _y[n]]) ** (1 - _a) for n in range(17)) / 17
    assert abs(float(renyi_term(_logits, _y, _a)) - math.log(_s) / (_a - 1)) < 1e-9

# %% [markdown]
# **Exercise 3.2 (how far does the linearization go?).** For the standard model of §3.1 in
# eval mode and 200 test images, compute $g=\nabla_x\ell(f(x),y)$ and the ratio
# $\rho(\varepsilon)=\frac{\sum_n[\ell(x_n+\varepsilon\operatorname{sign}g_n)-\ell(x_n)]}
# {\varepsilon\sum_n\|g_n\|_1}$ (without clipping to the box) for
# $\varepsilon\in\{10^{-4},10^{-3},10^{-2},10^{-1}\}$; write
# `linearization_ratio(model, x, y, eps)`. By {eq}`eq-03-taylor` one expects $\rho\to1$ as
# $\varepsilon\to0$. Check it on the test images with a little Gaussian noise added
# (standard deviation 0.01, no clipping), then on the raw test images: why does $\rho$ not
# tend to 1 there? (Hint: the background of an MNIST digit is exactly 0; what does a max
# pooling do with equal inputs?) Where does the first-order view of {eq}`eq-03-lipschitz`
# stop being accurate?

# %%
def linearization_ratio(model, x, y, eps):
    """Your answer: the ratio rho(eps) defined above."""
    return None


# %% tags=["solution", "hide-input"]
def linearization_ratio(model, x, y, eps):
    model.eval()
    xr = x.clone().requires_grad_(True)
    losses = F.cross_entropy(model(xr), y, reduction="none")
    (g,) = torch.autograd.grad(losses.sum(), xr)
    with torch.no_grad():
        moved = F.cross_entropy(model(x + eps * g.sign()), y, reduction="none")
    return ((moved - losses.detach()).sum() / (eps * g.abs().sum())).item()


noise = 0.01 * torch.randn(x_test[:200].shape, generator=torch.Generator().manual_seed(0))
x_noisy = x_test[:200] + noise.to(device)
for eps in (1e-4, 1e-3, 1e-2, 1e-1):
    r_noisy = linearization_ratio(models["standard"], x_noisy, y_test[:200], eps)
    r_raw = linearization_ratio(models["standard"], x_test[:200], y_test[:200], eps)
    print(f"eps {eps:g}: rho = {r_noisy:.3f} (noisy images), {r_raw:.3f} (raw images)")
# Noisy images: rho -> 1, and the linearization degrades from eps ~ 1e-2 on, well below
# the radii of real attacks (~0.1): there the loss is far from linear (rho far from 1),
# which is why several PGD steps find much worse points than one FGSM step. Raw images: in the constant
# background, the four inputs of a max-pooling window are equal; the gradient picks one of
# them, but a move along sign(g) breaks the tie differently: the loss is not differentiable
# there, and the gradient is not the directional derivative (rho stays away from 1).

# %% tags=["exercise-check"]
# Check exercise 3.2
_noisy = x_test[:200] + 0.01 * torch.randn(x_test[:200].shape,
                                           generator=torch.Generator().manual_seed(1)).to(device)
_r = linearization_ratio(models["standard"], _noisy, y_test[:200], 1e-4)
assert _r is not None, "linearization_ratio returns None"
assert abs(_r - 1) < 0.03, _r
assert abs(linearization_ratio(models["standard"], _noisy, y_test[:200], 1e-1) - 1) > abs(_r - 1)

# %% tags=["exercise-check", "hidden", "remove-cell"]
# Check exercise 3.2
_m = models["standard"].eval()
_x = _noisy[:50].clone().requires_grad_(True)
_l = F.cross_entropy(_m(_x), y_test[:50], reduction="sum")
(_gx,) = torch.autograd.grad(_l, _x)
with torch.no_grad():
    _l2 = F.cross_entropy(_m(_noisy[:50] + 1e-2 * _gx.sign()), y_test[:50], reduction="sum")
_ref = float((_l2 - _l.detach()) / (1e-2 * _gx.abs().sum()))
assert abs(linearization_ratio(_m, _noisy[:50], y_test[:50], 1e-2) - _ref) < 1e-4

# %% [markdown]
# **Exercise 3.3 (catastrophic overfitting).** Train the fast FGSM objective with a step
# $\alpha=2.5\,\varepsilon$ instead of $1.25\,\varepsilon$ (argument `alpha` of
# `defenses.fast_fgsm_objective`) and compare its FGSM and PGD robust accuracies at
# $\varepsilon=0.2$ with the model of §3.1. What happens when the PGD accuracy is much lower
# than the FGSM accuracy? (Open question, no check: a gap between the two is the signature
# of a model that has learnt to mask the single-step attack, chapter 2.)

# %% [markdown]
# ## Summary
#
# - Adversarial training minimizes the robust risk {eq}`eq-03-robust-risk`: train on the
#   attack's points, recomputed at every step. PGD training is the reference; FGSM from a
#   random start with $\alpha=1.25\,\varepsilon$ gives most of its robustness at a fraction
#   of its cost.
# - To first order, adversarial training penalizes the dual norm of the input gradient of
#   the loss, a local Lipschitz constant {eq}`eq-03-lipschitz`; the penalty can be trained
#   directly by double backpropagation, and adversarially trained models have much flatter
#   losses around the data.
# - The training radius trades clean accuracy for robustness (the seed 000 sweep).
# - The HR loss {eq}`eq-03-hr-loss` adds the conditional entropy of the softmax to a Rényi
#   goodness-of-fit term estimated on the whole batch {eq}`eq-03-hr-batch`; seed 001 reports
#   more robustness to FGSM than with cross-entropy on MNIST, CIFAR-10 and SVHN.
# - The VIB {eq}`eq-03-vib` compresses the input through a stochastic bottleneck; its error
#   is flat for small $\beta$, its 2-D embeddings show the compression, and seed 002 reports
#   more robustness to FGS and $L_2$ attacks than a deterministic network, to be checked
#   with attacks that account for its randomness.
#
# ## References
#
# - seed 000 §6-§7 {cite}`darrin2020notion`: adversarial training, Lipschitz regularization,
#   the sweep over ball sizes.
# - seed 001 {cite}`picot2021uncertainty`: the bounds, the HR loss, Table 1 and the
#   confusion matrices; the LPCBs {cite}`atar2015robust`.
# - seed 002 {cite}`vibslides` and {cite}`alemi2017deep`: the deep variational information
#   bottleneck; the reparameterization trick {cite}`kingma2014auto`; the information
#   bottleneck {cite}`tishby2000information`.
# - seed 003 §2.3 {cite}`liu2021trustworthy`: adversarial training as local Lipschitz
#   regularization.
# - Adversarial training {cite}`goodfellow2015explaining` {cite}`madry2018towards`, fast
#   adversarial training {cite}`wong2020fast`, double backpropagation
#   {cite}`drucker1992improving`, the Carlini-Wagner attack {cite}`carlini2017towards`.
