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
# # 2. Adversarial examples and attacks
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/robustkit/robustness-course/blob/main/chapters/02_adversarial_attacks.ipynb)
#
# **Learning goals.** After this chapter you can
# - explain why high-dimensional, nearly linear classifiers have adversarial examples, and
#   state a threat model (norm ball, box, targeted or not, white box);
# - derive and run FGSM, PGD for the $L_\infty$, $L_2$ and $L_1$ balls (with the exact
#   projection onto the $L_1$ ball intersected with the pixel box), Carlini-Wagner $L_2$ and
#   DeepFool, and attack randomized models with expectation over transformation (EOT);
# - draw accuracy-vs-$\varepsilon$ curves and distributions of minimal perturbations;
# - evaluate robustness without fooling yourself: spot gradient masking on a model that
#   only *looks* robust.
#
# **Prerequisites.** [Getting started](00_getting_started) (data, training, the MNIST
# convnet); gradients and norms; the projection onto a convex set.
#
# **Sources.** Seed 000 §6.1 (projected gradient descent, targeted and untargeted attacks,
# figures 14-16) {cite}`darrin2020notion`; seed 001 (FGSM evaluation)
# {cite}`picot2021uncertainty`; seed 003 §2.1.1 (FGSM, C&W and PGD, eq. 2.1-2.5)
# {cite}`liu2021trustworthy`; seed 004 (FGS and DeepFool, Alg. 1-2)
# {cite}`akhannouss2021generative`; and the original papers {cite}`szegedy2014intriguing`
# {cite}`goodfellow2015explaining` {cite}`madry2018towards` {cite}`carlini2017towards`
# {cite}`moosavi2016deepfool` {cite}`athalye2018obfuscated`.

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
N_TRAIN = budget.pick(smoke=2_000, cpu=60_000, gpu=60_000)  # as in chapter 0: same cache
EPOCHS = budget.pick(smoke=1, cpu=3, gpu=10)
N_EVAL = budget.pick(smoke=32, cpu=300, gpu=2_000)          # test images attacked
N_MIN = budget.pick(smoke=16, cpu=100, gpu=1_000)           # minimal-perturbation studies
STEPS = budget.pick(smoke=5, cpu=10, gpu=budget.attack_steps)  # PGD iterations
CW_STEPS = budget.pick(smoke=20, cpu=100, gpu=1_000)        # Adam steps per value of c
CW_SEARCH = budget.pick(smoke=2, cpu=4, gpu=9)              # binary-search steps over c
EOT_SAMPLES = budget.pick(smoke=4, cpu=20, gpu=40)
print(f"budget: {budget.name}, {N_TRAIN} training images, {N_EVAL} attacked, "
      f"{STEPS} PGD steps")

# %%
import time

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn as nn

from robustkit import attacks as A

rk.plot.set_style()
rk.seed_everything(SEED)
device = rk.get_device()

# %% [markdown]
# We attack the MNIST convnet of chapter 0 (seed 000, figure 18), trained with the same
# data, hyperparameters and seed: `rk.cached_fit` reloads the checkpoint if chapter 0 (or a
# previous run of this chapter) already trained it.

# %%
train = rk.load_dataset("mnist", "train", n=N_TRAIN, seed=SEED)
test = rk.load_dataset("mnist", "test", n=N_EVAL, seed=SEED)
train_loader = rk.make_loader(train.images, train.labels, batch_size=128, shuffle=True,
                              seed=SEED)


def train_conv(m):
    return rk.fit(m, train_loader, epochs=EPOCHS, lr=1e-3, device=device)


key = {"data": "mnist", "n_train": N_TRAIN, "epochs": EPOCHS, "lr": 1e-3, "seed": SEED}
rk.seed_everything(SEED)
model, history, from_cache = rk.cached_fit(rk.MnistConvNet, train_conv, key=key,
                                           device=device)
x_test, y_test = test.images.to(device), test.labels.to(device)
clean_acc = A.robust_accuracy(model, None, (x_test, y_test))
print(f"{'loaded' if from_cache else 'trained'}; clean accuracy on {N_EVAL} test images: "
      f"{clean_acc:.3f}")

# %% [markdown]
# ## 2.1 Why adversarial examples exist
#
# Szegedy et al. {cite}`szegedy2014intriguing` found that imperceptible perturbations flip
# the decisions of accurate networks. Goodfellow et al. {cite}`goodfellow2015explaining`
# explained it with *linearity*: for a linear score $w^\top x$ and a perturbation $\eta$
# with $\|\eta\|_\infty\le\varepsilon$, the largest change is reached at
# $\eta=\varepsilon\,\mathrm{sign}(w)$,
#
# $$
# \max_{\|\eta\|_\infty\le\varepsilon} w^\top(x+\eta)-w^\top x
#   = \varepsilon\|w\|_1 \approx \varepsilon\, m\, d ,
# $$ (eq-02-linear)
#
# where $m$ is the mean $|w_i|$ and $d$ the dimension. Each pixel moves by at most
# $\varepsilon$, but the score moves by an amount that *grows with the dimension*: many small
# coordinated changes add up. Networks built from ReLUs and max-pools are piecewise linear,
# so the same argument holds locally. On $28\times28$ images, $d=784$.
#
# ## 2.2 Threat models
#
# An attack is defined by a *threat model*: what the attacker knows (here everything: the
# *white-box* setting, weights and gradients, seed 003 §2.1.1) and what they may change.
# We use the classic norm balls around a correctly classified image $x$ with label $y$,
# intersected with the pixel box,
#
# $$
# \mathcal{S}_p(x,\varepsilon) = \{x' : \|x'-x\|_p\le\varepsilon\}\cap[0,1]^d,
# \qquad p\in\{1,2,\infty\},
# $$ (eq-02-threat-model)
#
# and the attacker solves (seed 003 eq. 2.4)
#
# $$
# \max_{x'\in\mathcal{S}_p(x,\varepsilon)} \ell\big(f(x'),y\big) .
# $$ (eq-02-max-loss)
#
# An *untargeted* attack succeeds if $\arg\max_k f_k(x')\ne y$; a *targeted* attack must
# reach a chosen class $t$, and minimizes $\ell(f(x'),t)$ instead (seed 000 §6.1.2).
# $L_\infty$ bounds every pixel (small, spread-out noise), $L_2$ the energy, and $L_1$ the
# total amount of ink moved, which favours sparse changes. *Minimal-perturbation* attacks
# (C&W, DeepFool) drop the radius and look for the closest adversarial point instead.
#
# ## 2.3 The fast gradient sign method
#
# Linearizing the loss around $x$ and maximizing over the $L_\infty$ ball gives, by
# {eq}`eq-02-linear`, one step along the sign of the gradient (seed 003 eq. 2.1, seed 004
# Alg. 1, {cite}`goodfellow2015explaining`):
#
# $$
# x' = \Pi_{[0,1]^d}\Big(x+\varepsilon\,\mathrm{sign}\big(\nabla_x\ell(f(x),y)\big)\Big).
# $$ (eq-02-fgsm)
#
# A random start in the ball followed by a step $\alpha=1.25\varepsilon$ is the FGSM-RS
# of fast adversarial training {cite}`wong2020fast` (chapter 3). In robustkit an attack is
# built once and called on a batch; it returns images in $[0,1]$ inside the ball.

# %%
fgsm = A.FGSM(model, eps=0.2)
x_adv = fgsm(x_test, y_test)
print(f"FGSM eps = 0.2: robust accuracy {A.robust_accuracy(model, fgsm, (x_test, y_test)):.3f} "
      f"(clean {clean_acc:.3f}); max |x_adv - x| = {(x_adv - x_test).abs().max():.3f}")

# %% [markdown]
# ## 2.4 Projected gradient descent in $L_\infty$, $L_2$ and $L_1$
#
# PGD iterates the fixed point of projected gradient ascent derived in seed 000 §6.1.1:
# from a random point of the ball (uniform in the ball, clamped to the box),
#
# $$
# x^{k+1} = \Pi_{\mathcal{S}_p(x,\varepsilon)}\big(x^k+\alpha\, s_p(\nabla_x\ell(f(x^k),y))\big),
# $$ (eq-02-pgd)
#
# where $s_p(g)=\arg\max_{\|s\|_p\le1}\langle s,g\rangle$ is the *steepest ascent
# direction* of the norm (seed 003 eq. 2.5 is the $L_\infty$ case):
#
# $$
# s_\infty(g)=\mathrm{sign}(g),\qquad s_2(g)=\frac{g}{\|g\|_2},\qquad
# s_1(g)=\frac{1}{|Q|}\sum_{i\in Q}\mathrm{sign}(g_i)\,e_i .
# $$ (eq-02-steepest)
#
# The exact $L_1$ steepest direction moves a single pixel; the *sparse* direction of SLIDE
# {cite}`tramer2019adversarial` spreads the step over the set $Q$ of the top 5% coordinates of
# $|g|$ (skipping pixels already at a face of the box and pushed outwards
# {cite}`croce2021mind`). The order matters: step, project onto the ball, clamp to the box.
# For $L_\infty$ and $L_2$, clamping after the ball projection stays in the ball (clamping
# only moves coordinates towards $x$). For $L_1$ we use the **exact** projection onto the
# intersection: by the KKT conditions it is a soft threshold capped by the room left in the
# box,
#
# $$
# \Pi(z)_i=\mathrm{sign}(z_i)\min\big(\max(|z_i|-\lambda,0),\,u_i\big),\qquad
# u_i=\begin{cases}1-x_i & z_i>0\\ x_i & z_i\le 0\end{cases},
# $$ (eq-02-l1-box-projection)
#
# with $\lambda\ge0$ the root of the piecewise-linear equation $\sum_i|\Pi(z)_i|=\varepsilon$,
# found per image by sorting the $2d$ breakpoints (`rk.attacks.project_l1_box`, tested
# against the convex solver cvxpy). Rescaling $z$ by its $L_1$ norm is *not* the projection
# and gives a much weaker attack. With restarts, the worst case per image is kept.

# %%
EPS_GRID = {"linf": [0.05, 0.1, 0.2, 0.3], "l2": [0.5, 1.0, 2.0, 3.0],
            "l1": [2.5, 5.0, 10.0, 20.0]}  # as in seed 000: a few radii per norm
n_show = 4
xs, ys = x_test[:n_show], y_test[:n_show]
rows, titles = [], []
for norm, eps_list in EPS_GRID.items():
    for eps in eps_list:
        rk.seed_everything(SEED)
        adv = A.PGD(model, eps, norm=norm, steps=max(STEPS, 10))(xs, ys)
        rows.append(adv)
        titles.append(f"{norm} {eps:g}")
with torch.no_grad():
    preds = [model(r).argmax(1) for r in rows]
fig, axes = plt.subplots(n_show, len(rows) + 1, figsize=(1.05 * (len(rows) + 1), 1.25 * n_show))
for i in range(n_show):
    axes[i, 0].imshow(xs[i, 0].cpu(), cmap="gray", vmin=0, vmax=1)
    axes[i, 0].set_title(f"clean {int(ys[i])}", fontsize=8)
    for j, (r, p) in enumerate(zip(rows, preds)):
        ok = int(p[i]) == int(ys[i])
        axes[i, j + 1].imshow(r[i, 0].cpu(), cmap="gray", vmin=0, vmax=1)
        axes[i, j + 1].set_title(f"{titles[j]}\n-> {int(p[i])}", fontsize=7,
                                 color=rk.plot.CORRECT_COLOR if ok else rk.plot.WRONG_COLOR)
for ax in axes.flat:
    ax.set_axis_off()
fig.suptitle("Untargeted PGD for L1, L2 and Linf balls of growing size (seed 000, fig. 14-16)")
fig.tight_layout()
plt.show()

# %% [markdown]
# *Figure 2.1: each row is one test digit; columns are PGD adversarial examples in $L_1$,
# $L_2$ and $L_\infty$ balls of growing radius, titled with the new prediction (red: the
# attack succeeded). As in seed 000 (§6.1.2, figures 14-16), $L_\infty$ attacks add a grey
# haze over the whole image and quickly become macroscopic strokes, $L_2$ attacks are
# noisier and more local, and $L_1$ attacks change few pixels strongly.*
#
# The perturbation $x'-x$ itself shows where each norm spends its budget:

# %%
deltas = [rows[k] - xs for k in (3, 7, 11)]  # largest radius of each norm
fig, axes = plt.subplots(1, 3, figsize=(7.5, 2.6))
for ax, d, name in zip(axes, deltas, ["Linf, eps = 0.3", "L2, eps = 3", "L1, eps = 20"]):
    lim = float(d[0].abs().max())
    im = ax.imshow(d[0, 0].cpu(), cmap="RdBu_r", vmin=-lim, vmax=lim)
    nnz = int((d[0].abs() > 1e-3).sum())
    ax.set_title(f"{name}\n{nnz} pixels changed", fontsize=9)
    ax.set_axis_off()
    fig.colorbar(im, ax=ax, fraction=0.046)
fig.tight_layout()
plt.show()

# %% [markdown]
# *Figure 2.2: the perturbations $x'-x$ of the first digit at the largest radius of each
# norm (red: ink added, blue: ink removed). The $L_1$ attack is sparse.*
#
# ## 2.5 Accuracy against the size of the ball
#
# A single number hides the picture: robust accuracy is a *curve* in $\varepsilon$. It starts
# at the clean accuracy, must decrease, and must reach about zero once the ball is large
# enough to draw another digit (section 2.9 turns these facts into checks).

# %%
start = time.perf_counter()
curves = {}
eps_axes = budget.pick(
    smoke={"linf": [0, 0.1, 0.3], "l2": [0, 1, 3], "l1": [0, 5, 20]},
    cpu={"linf": [0, 0.05, 0.1, 0.2, 0.3], "l2": [0, 0.5, 1, 2, 3], "l1": [0, 2.5, 5, 10, 20]},
    gpu={"linf": [0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3], "l2": [0, 0.5, 1, 1.5, 2, 2.5, 3],
         "l1": [0, 2.5, 5, 7.5, 10, 15, 20]})
for norm, eps_list in eps_axes.items():
    rk.seed_everything(SEED)
    curves[f"PGD {norm}"] = A.accuracy_vs_eps(
        model, lambda e, norm=norm: A.PGD(model, e, norm=norm, steps=STEPS), eps_list,
        (x_test, y_test))
curves["FGSM linf"] = A.accuracy_vs_eps(model, lambda e: A.FGSM(model, e), eps_axes["linf"],
                                        (x_test, y_test))
fig, axes = plt.subplots(1, 3, figsize=(12, 3.4))
for ax, norm in zip(axes, eps_axes):
    sel = {k: (v["eps"], v["accuracy"]) for k, v in curves.items() if k.endswith(norm)}
    rk.plot.plot_curves(sel, xlabel=rf"$\varepsilon$ ({norm})", ylabel="robust accuracy",
                        ax=ax, title=f"{norm} threat model")
    ax.set_ylim(-0.02, 1.02)
fig.tight_layout()
plt.show()
print(f"{time.perf_counter() - start:.1f} s")

# %% [markdown]
# *Figure 2.3: robust accuracy of the undefended convnet on the attacked test images, for
# the three threat models. One step (FGSM) is weaker than PGD at the same radius, and every
# curve falls to 0.*
#
# ## 2.6 Targeted and untargeted attacks
#
# A targeted attack must reach a *given* class, which is harder than leaving the true one
# (seed 003 §2.1.1): at a fixed radius its success rate is lower. We ask PGD to turn each
# test digit into the class $y+1 \bmod 10$.

# %%
target = (y_test + 1) % 10
rows = []
for eps in [0.1, 0.2, 0.3]:
    rk.seed_everything(SEED)
    atk = A.PGD(model, eps, steps=STEPS)
    with torch.no_grad():
        untargeted = (model(atk(x_test, y_test)).argmax(1) != y_test).float().mean().item()
        targeted = (model(atk(x_test, y_test, target=target)).argmax(1) == target).float().mean().item()
    rows.append((eps, untargeted, targeted))
    print(f"Linf eps = {eps:.1f}: untargeted success {untargeted:.3f}, "
          f"targeted (y+1) success {targeted:.3f}")

# %%
digit = x_test[:1].expand(10, -1, -1, -1)
label = y_test[:1].expand(10)
goals = torch.arange(10, device=device)
keep = goals != label
rk.seed_everything(SEED)
reached = A.PGD(model, 0.3, steps=max(STEPS, 20))(digit[keep], label[keep], target=goals[keep])
with torch.no_grad():
    pred = model(reached).argmax(1)
fig = rk.plot.image_grid(reached.cpu(), labels=goals[keep].cpu(), preds=pred.cpu(), ncols=9,
                         title=f"one digit {int(label[0])} pushed to every other class (Linf 0.3)")
plt.show()

# %% [markdown]
# *Figure 2.4: targeted PGD from one test digit to each of the nine other classes; titles are
# the predictions (green: the target was reached).*
#
# ## 2.7 Minimal perturbations: Carlini-Wagner and DeepFool
#
# **Carlini-Wagner** {cite}`carlini2017towards` (seed 003 eq. 2.2-2.3) trades the size of
# the perturbation against a hinge on the logits $Z$:
#
# $$
# \min_{x'\in[0,1]^d}\ \|x'-x\|_2^2 + c\, g(x'),\qquad
# g(x') = \max\Big(Z(x')_y-\max_{i\ne y}Z(x')_i,\ -\kappa\Big).
# $$ (eq-02-cw)
#
# The box disappears with the change of variables $x'=\tfrac12(\tanh w+1)$, started at
# $w=\operatorname{atanh}\big((2x-1)(1-10^{-6})\big)$, and $w$ is optimized with Adam
# {cite}`kingma2015adam`. The constant $c$ is searched *per image*: multiplied by 10 until
# the attack succeeds, then bisected; the smallest successful perturbation is kept. Note
# that the best other logit is a max over $i\ne y$ computed by masking $Z_y$ with
# $-\infty$, and that C&W, DeepFool and margin losses use logits, never probabilities.
#
# **DeepFool** {cite}`moosavi2016deepfool` (seed 004 Alg. 2) linearizes the logits at the
# current point $x_i$ and jumps to the nearest boundary of the linearized classifier. With
# $w_k=\nabla Z_k(x_i)-\nabla Z_y(x_i)$, $f_k=Z_k(x_i)-Z_y(x_i)$ and $q$ the dual exponent
# of $p$ ($q=2$ for $L_2$, $q=1$ for $L_\infty$),
#
# $$
# l=\arg\min_{k\ne y}\frac{|f_k|}{\|w_k\|_q},\qquad
# r_i=\frac{|f_l|}{\|w_l\|_q^q}\,|w_l|^{q-1}\odot\mathrm{sign}(w_l),
# $$ (eq-02-deepfool)
#
# accumulated as $r=\sum_i r_i$, with $x_{i+1}=x+(1+\text{overshoot})\,r$ until the label
# changes. For an affine classifier one step is exact: the distance to the closest
# boundary is $\min_k |f_k|/\|w_k\|_q$ (seed 004 §III.1.2; a unit test checks it).

# %%
xm, ym = x_test[:N_MIN], y_test[:N_MIN]
start = time.perf_counter()
rk.seed_everything(SEED)
d_deepfool = A.minimal_perturbation_norms(model, (xm, ym), A.DeepFool(model), norm="l2")
t_df = time.perf_counter() - start
d_cw = A.minimal_perturbation_norms(
    model, (xm, ym), A.CarliniWagnerL2(model, steps=CW_STEPS, binary_search_steps=CW_SEARCH,
                                       lr=0.05), norm="l2")
t_cw = time.perf_counter() - start - t_df
d_pgd = A.minimal_perturbation_norms(
    model, (xm, ym), lambda e: A.PGD(model, e, norm="l2", steps=STEPS), norm="l2",
    eps_max=6.0, tol=budget.pick(smoke=0.2, cpu=0.1, gpu=0.02))
ok = (d_deepfool > 0) & torch.isfinite(d_deepfool) & torch.isfinite(d_cw) & (d_cw > 0)
print(f"{int(ok.sum())} images fooled by both; median L2: DeepFool "
      f"{d_deepfool[ok].median():.3f} ({t_df:.1f} s), C&W {d_cw[ok].median():.3f} "
      f"({t_cw:.1f} s), PGD bisection {d_pgd[ok].median():.3f}")
print(f"C&W <= DeepFool on {(d_cw[ok] <= d_deepfool[ok]).float().mean():.0%} of them")

# %%
fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(10, 3.4))
bins = np.linspace(0, float(torch.cat([d_deepfool[ok], d_cw[ok]]).max()) * 1.05, 25)
for d, name in ((d_deepfool, "DeepFool"), (d_cw, "C&W"), (d_pgd, "PGD + bisection")):
    v = d[ok & torch.isfinite(d)].cpu().numpy()
    ax0.hist(v, bins=bins, histtype="step", lw=2, label=name)
ax0.set(xlabel=r"minimal $L_2$ perturbation", ylabel="images", title="distributions")
ax0.legend()
ax1.scatter(d_deepfool[ok].cpu(), d_cw[ok].cpu(), s=10)
lim = float(bins[-1])
ax1.plot([0, lim], [0, lim], "k--", lw=1)
ax1.set(xlabel="DeepFool", ylabel="C&W", title=r"per image $L_2$ (below the line: C&W smaller)")
fig.tight_layout()
plt.show()

# %% [markdown]
# *Figure 2.5: minimal $L_2$ perturbations found by DeepFool, C&W and a bisection over the
# radius of PGD. DeepFool is fast but overshoots; C&W is slower and usually smaller.* One
# weakness of the tanh change of variables is visible on MNIST: a pixel at exactly 0 (most
# of the background) has $\tanh'(w)\approx 4\cdot10^{-6}$ at the start, so Adam needs many
# steps to move it; with few steps C&W cannot add ink on the background, which DeepFool
# does freely. The paper runs up to $10^4$ iterations.
#
# ## 2.8 Randomized models need expectation over transformation
#
# A model with intended randomness (noise layers, Bayesian weights: later chapters) computes
# a random function $f(x;\omega)$. Its deployed prediction averages the softmax over draws,
# and the useful gradient for the attacker is that of the *expected* loss,
#
# $$
# \nabla_x\,\mathbb{E}_\omega\,\ell\big(f(x;\omega),y\big)
#   \approx\frac1S\sum_{s=1}^{S}\nabla_x\ell\big(f(x;\omega_s),y\big),
# $$ (eq-02-eot)
#
# expectation over transformation (EOT) {cite}`athalye2018synthesizing`
# {cite}`athalye2018obfuscated`. One draw gives a noisy gradient and a model that only
# *looks* robust. In robustkit the noise of a `StochasticModule` follows its own switch
# `stochastic`, not `model.eval()`, so attacks keep it on.

# %%
class InputNoise(rk.modes.StochasticModule):
    """Gaussian noise on the input, drawn iff ``self.stochastic`` (even in eval mode)."""

    def __init__(self, sigma):
        super().__init__()
        self.sigma = sigma

    def forward(self, x):
        return x + self.sigma * torch.randn_like(x) if self.stochastic else x


noisy = nn.Sequential(InputNoise(0.5), model).eval()
deployed = A.ExpectedModel(noisy, samples=EOT_SAMPLES)        # averaged softmax
for s in (1, EOT_SAMPLES):
    rk.seed_everything(SEED)
    atk = A.PGD(noisy, 0.15, steps=STEPS, eot_samples=s)
    acc = A.robust_accuracy(deployed, atk, (xm, ym))
    print(f"PGD Linf 0.15 with {s:2d} gradient draw(s): robust accuracy of the noisy model {acc:.3f}")

# %% [markdown]
# ## 2.9 The evaluation protocol and its traps
#
# Robust accuracy counts an image as robust only if it is classified correctly *both* clean
# and attacked (clean errors are non-robust), always with the true labels. Many published
# defenses were later broken because their evaluation suffered from *gradient masking*
# {cite}`athalye2018obfuscated` {cite}`carlini2019evaluating` {cite}`tramer2020adaptive`:
# the gradients the attack uses are useless, not the model robust. Warning signs: accuracy
# that does not keep falling with $\varepsilon$ or stays above 0 at huge radii, a single
# step stronger than many, more steps or restarts that *help* the model, random noise better
# than the gradient, and zero gradients.
#
# We build a deliberately masked model: the same convnet with its logits multiplied by
# 1000. Its predictions are identical, so it is exactly as (non-)robust, but its softmax is
# exactly one-hot in float32, the cross-entropy gradient is exactly zero on correctly
# classified images and FGSM and PGD with cross-entropy do nothing (defensive distillation
# {cite}`papernot2016distillation` failed this way). The logit margin loss is unaffected by
# the scale.

# %%
class Saturated(nn.Module):
    """The convnet with logits x 1000: same decisions, vanishing cross-entropy gradients."""

    def __init__(self, m, scale=1000.0):
        super().__init__()
        self.m, self.scale = m, scale

    def forward(self, x):
        return self.scale * self.m(x)


masked = Saturated(model).eval()
rk.seed_everything(SEED)
for name, atk in [("FGSM (CE)", A.FGSM(masked, 0.2)),
                  ("PGD (CE)", A.PGD(masked, 0.2, steps=STEPS)),
                  ("PGD (margin loss)", A.PGD(masked, 0.2, steps=STEPS, loss="margin")),
                  ("PGD (CE) on the original logits: transfer",
                   A.PGD(model, 0.2, steps=STEPS))]:
    print(f"{name:44s} robust accuracy {A.robust_accuracy(masked, atk, (x_test, y_test)):.3f}")

# %%
report_kw = dict(eps_list=[0, 0.1, 0.2, 0.3], steps=STEPS, restarts=budget.pick(smoke=1, cpu=2, gpu=5),
                 noise_draws=5)
reports = {"original": A.gradient_masking_report(model, (xm, ym), **report_kw),
           "saturated x1000": A.gradient_masking_report(masked, (xm, ym), **report_kw)}
for name, rep in reports.items():
    print(f"{name}: PGD accuracy vs eps {np.round(rep['pgd_accuracy'], 3).tolist()}, "
          f"zero gradients {rep['zero_grad_fraction']:.0%}, suspicious: {rep['suspicious']}")
    for line in rep["messages"]:
        print("   -", line)

# %% [markdown]
# The report flags the saturated model (exactly zero gradients, a margin loss far stronger
# than cross-entropy) and passes the original one, whose decisions are the same. A checklist for every robustness claim in this course:
#
# 1. true labels, clean errors non-robust, the model in eval mode with its intended
#    randomness on, evaluated as deployed (averaged softmax);
# 2. accuracy-vs-$\varepsilon$ curves, not one point, reaching 0 at large radii;
# 3. strong attacks: PGD with restarts and a margin loss, EOT with $\ge 20$ draws for
#    randomized models, and a minimal-perturbation attack; more effort never helps the model;
# 4. an *adaptive* attack designed against the defense {cite}`tramer2020adaptive`.
#
# ## 2.10 Explore: the size of the ball
#
# Move the slider to change $\varepsilon$ and the norm; the figure shows the clean digit, the
# PGD adversarial example, the perturbation, and the predicted probabilities. A static
# version (three radii) is drawn below for readers of the rendered book.

# %%
import ipywidgets as widgets


def show_attack(index=0, norm="linf", eps=0.15, axes=None):
    x0, y0 = x_test[index:index + 1], y_test[index:index + 1]
    rk.seed_everything(SEED)
    adv = A.PGD(model, eps, norm=norm, steps=max(STEPS, 10))(x0, y0) if eps > 0 else x0
    with torch.no_grad():
        p_clean, p_adv = (torch.softmax(model(v), 1)[0].cpu() for v in (x0, adv))
    if axes is None:
        _, axes = plt.subplots(1, 4, figsize=(11, 2.6))
    d = (adv - x0)[0, 0].cpu()
    lim = max(float(d.abs().max()), 1e-3)
    axes[0].imshow(x0[0, 0].cpu(), cmap="gray", vmin=0, vmax=1)
    axes[0].set_title(f"clean: {int(p_clean.argmax())}")
    axes[1].imshow(adv[0, 0].cpu(), cmap="gray", vmin=0, vmax=1)
    axes[1].set_title(f"{norm}, eps={eps:g}: {int(p_adv.argmax())}")
    axes[2].imshow(d, cmap="RdBu_r", vmin=-lim, vmax=lim)
    axes[2].set_title(f"perturbation (|max| {lim:.2f})")
    for ax in axes[:3]:
        ax.set_axis_off()
    axes[3].bar(np.arange(10) - 0.2, p_clean, 0.4, label="clean")
    axes[3].bar(np.arange(10) + 0.2, p_adv, 0.4, label="adversarial")
    axes[3].set(xticks=range(10), ylim=(0, 1), title="probabilities")
    axes[3].legend(fontsize=8)
    return axes


def _interactive(index, norm, eps):
    show_attack(index, norm, eps)
    plt.show()


widgets.interact(_interactive, index=widgets.IntSlider(0, 0, N_EVAL - 1),
                 norm=widgets.Dropdown(options=["linf", "l2", "l1"], value="linf"),
                 eps=widgets.FloatLogSlider(value=0.15, base=10, min=-2, max=1.5, step=0.05));

# %%
fig, axes = plt.subplots(3, 4, figsize=(11, 7.4))
for row, (norm, eps) in zip(axes, [("linf", 0.1), ("linf", 0.25), ("l2", 2.0)]):
    show_attack(0, norm, eps, axes=row)
fig.tight_layout()
plt.show()

# %% [markdown]
# *Figure 2.6: the static twin of the slider for the first test digit: $L_\infty$ at 0.1 and
# 0.25, $L_2$ at 2.*
#
# ## Exercises
#
# **Exercise 2.1 (FGSM by hand).** Write `my_fgsm(model, x, y, eps)` implementing
# {eq}`eq-02-fgsm` with `torch.autograd.grad` (model in eval mode, result clamped to
# $[0,1]$), and check that it matches `rk.attacks.FGSM` on the test batch.

# %%
def my_fgsm(model, x, y, eps):
    """Your answer here: return the FGSM adversarial examples of eq. (eq-02-fgsm)."""
    return None

# %% tags=["solution", "hide-input"]
def my_fgsm(model, x, y, eps):
    model.eval()
    xr = x.detach().clone().requires_grad_(True)
    loss = torch.nn.functional.cross_entropy(model(xr), y, reduction="sum")
    (grad,) = torch.autograd.grad(loss, xr)
    return (x + eps * grad.sign()).clamp(0, 1).detach()

# %% tags=["exercise-check"]
# Check exercise 2.1
mine = my_fgsm(model, x_test[:32], y_test[:32], 0.1)
assert mine is not None and mine.shape == x_test[:32].shape
assert (mine - A.FGSM(model, 0.1)(x_test[:32], y_test[:32])).abs().max() < 1e-6
print("exercise 2.1: OK")

# %% tags=["exercise-check", "hidden", "remove-cell"]
# Check exercise 2.1
_x, _y = x_test[-16:], y_test[-16:]
_xr = _x.clone().requires_grad_(True)
model.eval()
(_g,) = torch.autograd.grad(torch.nn.functional.cross_entropy(model(_xr), _y), _xr)
_ref = (_x + 0.03 * _g.sign()).clamp(0, 1)
_mine = my_fgsm(model, _x, _y, 0.03)
assert (_mine - _ref).abs().max() < 1e-6, "not the FGSM step of eq. (eq-02-fgsm)"
assert _mine.min() >= 0 and _mine.max() <= 1

# %% [markdown]
# **Exercise 2.2 (the minimal perturbation of a linear classifier).** For an affine
# classifier $f(x)=Wx+b$ with $K$ classes, the smallest $L_2$ perturbation that changes the
# prediction of $x$ (ignoring the box) is $\min_{k\ne y}|f_k-f_y|/\|w_k-w_y\|_2$. Write
# `linear_min_l2(W, b, x)` returning it for a batch `x` of shape $(N,d)$ (with $y$ the
# predicted class), and compare with DeepFool (`overshoot=0`) on a random linear model:
# DeepFool should be exact up to its push of $10^{-4}$.

# %%
def linear_min_l2(W, b, x):
    """Your answer here: a tensor (N,) of minimal L2 distances to the decision boundary."""
    return None

# %% tags=["solution", "hide-input"]
def linear_min_l2(W, b, x):
    z = x @ W.T + b
    y = z.argmax(1)
    wdiff = W[None, :, :] - W[y][:, None, :]                    # (N, K, d)
    dist = (z - z.gather(1, y[:, None])).abs() / wdiff.norm(dim=2)
    return dist.scatter(1, y[:, None], float("inf")).min(1).values

# %% tags=["exercise-check"]
# Check exercise 2.2
torch.manual_seed(0)
lin = nn.Linear(30, 4).double()
with torch.no_grad():
    lin.bias.copy_(-lin.weight.sum(1) * 0.5)                    # boundaries near the centre
xl = 0.4 + 0.2 * torch.rand(50, 30, dtype=torch.float64)
dist = linear_min_l2(lin.weight.detach(), lin.bias.detach(), xl)
assert dist is not None and dist.shape == (50,)
close = dist < 0.2                                            # the box is never reached
with torch.no_grad():
    yl = lin(xl).argmax(1)
adv_l = A.DeepFool(lin, overshoot=0.0)(xl[close], yl[close])
assert torch.allclose(A.norms(adv_l - xl[close], "l2"), dist[close] + 1e-4, atol=1e-6)
print(f"exercise 2.2: OK on {int(close.sum())} points")

# %% tags=["exercise-check", "hidden", "remove-cell"]
# Check exercise 2.2
_gen = torch.Generator().manual_seed(3)
_W = torch.randn(5, 7, generator=_gen, dtype=torch.float64)
_b = torch.randn(5, generator=_gen, dtype=torch.float64)
_x = torch.randn(20, 7, generator=_gen, dtype=torch.float64)
_got = linear_min_l2(_W, _b, _x)
for _n in range(20):  # brute force over the other classes
    _z = _W @ _x[_n] + _b
    _c = int(_z.argmax())
    _best = min(float((_z[_k] - _z[_c]).abs() / (_W[_k] - _W[_c]).norm())
                for _k in range(5) if _k != _c)
    assert abs(float(_got[_n]) - _best) < 1e-9, f"wrong distance for point {_n}"

# %% [markdown]
# **Exercise 2.3 (open).** Replace the saturated model of section 2.9 by an input
# *quantizer* $x\mapsto\mathrm{round}(4x)/4$ in front of the convnet. What does
# `gradient_masking_report` say? Attack it through the straight-through estimator (use the
# identity as the gradient of the rounding: BPDA {cite}`athalye2018obfuscated`) and compare.

# %% [markdown]
# ## Summary
#
# - Adversarial examples exist because nearly linear models in high dimension accumulate
#   many tiny coordinated changes {eq}`eq-02-linear`; a threat model fixes the ball
#   (norm, radius), the pixel box, the goal (untargeted or targeted) and the knowledge.
# - FGSM is one signed gradient step; PGD iterates step, projection onto the ball, clamp to
#   the box, from uniform random starts, with restarts; $L_1$ needs sparse steps and the exact
#   projection onto the $L_1$ ball intersected with the box.
# - C&W and DeepFool look for the *smallest* perturbation; DeepFool is exact on linear
#   models, C&W is usually smaller but slower and saturates on pixels at 0 or 1.
# - Robust accuracy is a curve in $\varepsilon$. Evaluate with true labels, count clean
#   errors as non-robust, keep intended randomness on and use EOT, and check for gradient
#   masking: a model whose gradients vanish only *looks* robust.
#
# ## References
#
# - Seed 000, §6.1 (projected gradient descent, targeted and untargeted attacks, figures
#   14-16): {cite}`darrin2020notion`.
# - Seed 001 (FGSM evaluation of the HR loss): {cite}`picot2021uncertainty`.
# - Seed 003, §2.1.1 (FGSM, C&W, PGD: eq. 2.1-2.5): {cite}`liu2021trustworthy`.
# - Seed 004 (FGS and DeepFool, Alg. 1-2): {cite}`akhannouss2021generative`.
# - Adversarial examples: {cite}`szegedy2014intriguing`, {cite}`goodfellow2015explaining`;
#   PGD {cite}`madry2018towards`; C&W {cite}`carlini2017towards`; DeepFool
#   {cite}`moosavi2016deepfool`; sparse $L_1$ steps {cite}`tramer2019adversarial`, $L_1$
#   ball and box {cite}`croce2021mind`; fast FGSM {cite}`wong2020fast`; Adam
#   {cite}`kingma2015adam`.
# - Evaluation and gradient masking: {cite}`athalye2018obfuscated`,
#   {cite}`athalye2018synthesizing`, {cite}`carlini2019evaluating`, {cite}`tramer2020adaptive`,
#   {cite}`papernot2016distillation`.
