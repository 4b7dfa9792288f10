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
# # 0. Getting started
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/robustkit/robustness-course/blob/main/chapters/00_getting_started.ipynb)
#
# **Learning goals.** After this chapter you can
# - say what the course covers and which source documents it follows;
# - run any chapter on Colab or on a laptop CPU, and choose its *budget*;
# - load MNIST with `robustkit`, train the small convolutional network of
#   {cite}`darrin2020notion` in well under a minute on a CPU, and look at its predictions;
# - take a first, non-adversarial look at robustness: accuracy under random noise.
#
# **Prerequisites.** Python, NumPy and a first contact with PyTorch (tensors, `nn.Module`).
#
# **Sources.** The course is built from five documents: an internship report on concepts
# and robustness {cite}`darrin2020notion`, a paper on an uncertainty-aware loss
# {cite}`picot2021uncertainty`, slides on the variational information bottleneck
# {cite}`vibslides` {cite}`alemi2017deep`, a PhD dissertation on trustworthy machine learning
# {cite}`liu2021trustworthy` and a project on generative classifiers
# {cite}`akhannouss2021generative`.

# %% tags=["remove-cell"]
# Install what is missing (Colab already has torch, numpy and matplotlib).
import importlib.util, subprocess, sys
if importlib.util.find_spec("robustkit") is None:
    subprocess.run([sys.executable, "-m", "pip", "install", "-q",
                    "robustkit @ git+https://github.com/robustkit/robustness-course"], check=True)

# %% tags=["parameters"]
# Parameters: the budget decides the sizes (ROBUSTKIT_BUDGET=smoke|cpu|gpu).
import robustkit as rk

budget = rk.get_budget()
SEED = 0
N_TRAIN = budget.pick(smoke=2_000, cpu=60_000, gpu=60_000)
N_TEST = budget.pick(smoke=500, cpu=10_000, gpu=10_000)
EPOCHS = budget.pick(smoke=1, cpu=3, gpu=10)
print(f"budget {budget.name}: {N_TRAIN} training images, {N_TEST} test images, "
      f"{EPOCHS} epoch(s)")

# %% [markdown]
# ## 0.1 What this course is about
#
# A classifier $f_\theta$ that is 99% accurate on its test set can still be fooled by a
# perturbation $\delta$ too small for a human to see: $f_\theta(x+\delta)\neq f_\theta(x)$
# with $\lVert\delta\rVert$ tiny {cite}`szegedy2014intriguing` {cite}`goodfellow2015explaining`.
# *Robustness* is the study of how predictions change when inputs move, and of models whose
# predictions do not change too easily. The course goes in this order:
#
# 1. **Information theory** (chapter 1): entropy, divergences and distances between
#    distributions, the vocabulary of everything that follows.
# 2. **Attacks and defenses**: adversarial examples and adversarial training
#    {cite}`madry2018towards`, losses that model uncertainty {cite}`picot2021uncertainty`,
#    the information bottleneck {cite}`alemi2017deep`.
# 3. **What a classifier has learned**: the *concepts* (class-conditional generative
#    distributions) of a trained classifier and how adversarial training changes them
#    {cite}`darrin2020notion`; generative classifiers {cite}`akhannouss2021generative`.
# 4. **Randomized defenses, certified robustness, sequences, uncertainty, explanations and
#    data poisoning** {cite}`liu2021trustworthy`.
#
# Every chapter runs; every number in it comes from the code you see.
#
# ## 0.2 How to run a chapter
#
# - **Read** it here: the outputs are those of a real run.
# - **Colab**: the rocket icon at the top of the page (or the badge above) opens the
#   notebook; its first cell installs `robustkit`. Choose *Runtime > Change runtime type >
#   GPU* for the paper-scale budget.
# - **Your laptop**: clone the repository and run `bash scripts/test.sh` once; it creates
#   the virtual environment `.venv` with everything installed. Then
#   `.venv/bin/pip install jupyterlab` and `.venv/bin/jupyter lab chapters/`.
#
# Each chapter adapts its size to a **budget**, read once from the environment variable
# `ROBUSTKIT_BUDGET`: `smoke` (seconds, for automated tests), `cpu` (a few minutes on a
# laptop, the default without a GPU) and `gpu` (paper scale, the default with CUDA). The
# budget is a small immutable object:

# %%
budget.as_dict()

# %% [markdown]
# Chapters read generic knobs from it (`budget.epochs`, `budget.attack_steps`, ...) or
# pick their own values with `budget.pick(smoke=..., cpu=..., gpu=...)`, as the parameters
# cell above does: this chapter is cheap enough to use the full MNIST training set with
# the `cpu` budget, more than the generic `train_size`. Randomness is controlled by one call, which seeds Python, NumPy and
# PyTorch and makes cuDNN deterministic:

# %%
rk.seed_everything(SEED)
device = rk.get_device()
device

# %% [markdown]
# ## 0.3 The data
#
# The course mostly uses MNIST {cite}`lecun1998gradient` (handwritten digits) and
# Fashion-MNIST {cite}`xiao2017fashion` (clothes), both $28\times 28$ grey-level images in
# ten classes. `robustkit.data` finds the files in this order: an explicit `root=`, the
# folder named by `$ROBUSTKIT_DATA`, the system folder `/usr/share/datasets`, the user
# cache `~/.cache/robustkit/data`, and otherwise downloads them from the official mirrors,
# checks their checksum and writes them atomically. A truncated or corrupt file is detected
# and never used. Images come as float tensors in $[0,1]$ of shape $(N, C, H, W)$.

# %%
train = rk.load_dataset("mnist", "train", n=N_TRAIN, seed=SEED)
test = rk.load_dataset("mnist", "test", n=N_TEST, seed=SEED)
print("train:", tuple(train.images.shape), train.images.dtype,
      f"values in [{train.images.min():.0f}, {train.images.max():.0f}]")
print("test: ", tuple(test.images.shape), "classes:", train.classes)

# %% [markdown]
# The subsets are *stratified*: every class keeps its share of the full dataset. A look at
# the first images and at the class counts:

# %%
import matplotlib.pyplot as plt
import torch

rk.plot.set_style()
fig = rk.plot.image_grid(train.images[:16], labels=train.labels[:16],
                         class_names=train.classes, ncols=8,
                         title="MNIST training images")
plt.show()

# %%
counts = torch.bincount(train.labels, minlength=10)
fig, ax = plt.subplots(figsize=(6, 2.5))
ax.bar(range(10), counts.numpy())
ax.set(xticks=range(10), xlabel="digit", ylabel="images",
       title="Class counts in the training subset")
plt.show()

# %% [markdown]
# The pixel statistics match the values that the models use to normalize their inputs
# (mean 0.1307, standard deviation 0.3081 on the full training set):

# %%
print(f"mean {train.images.mean():.4f}, std {train.images.std():.4f}")
print(rk.data.dataset_stats("mnist"))

# %% [markdown]
# ## 0.4 A first model
#
# The classifier of {cite}`darrin2020notion` (its Figure 18) is the classic small MNIST
# convolutional network: two $5\times5$ convolutions with max-pooling and ReLU, dropout,
# then two dense layers. `robustkit` keeps its layers and, following the conventions of the
# course, puts the input normalization *inside* the model (attacks then work directly on
# images in $[0,1]$) and returns *logits* rather than log-probabilities.

# %%
# NBVAL_CHECK_OUTPUT
model = rk.MnistConvNet().to(device)
print(model)
print(f"{rk.count_parameters(model):,} parameters")

# %% [markdown]
# `rk.fit` trains with Adam {cite}`kingma2015adam` and the cross-entropy loss by default.
# Its `loss_fn` argument takes any *training objective* `loss_fn(model, x, y)`: later
# chapters plug adversarial, noisy and Bayesian training into the same loop.
# `rk.cached_fit` stores the weights under a key made of the model, the data, the
# hyperparameters and the seed, so re-running the chapter loads instead of retraining.

# %%
import time

train_loader = rk.make_loader(train.images, train.labels, batch_size=128,
                              shuffle=True, seed=SEED)
test_loader = rk.make_loader(test.images, test.labels, batch_size=512, shuffle=False)


def train_conv(m):
    return rk.fit(m, train_loader, epochs=EPOCHS, lr=1e-3, device=device)


key = {"data": "mnist", "n_train": N_TRAIN, "epochs": EPOCHS, "lr": 1e-3, "seed": SEED}
start = time.perf_counter()
rk.seed_everything(SEED)
model, history, from_cache = rk.cached_fit(rk.MnistConvNet, train_conv, key=key,
                                           device=device)
how = "loaded from the cache" if from_cache else "trained"
print(f"{how} in {time.perf_counter() - start:.1f} s")
print("\n".join(history.lines))

# %%
metrics = rk.evaluate(model, test_loader, device=device)
print(f"test accuracy: {metrics['accuracy']:.2%} on {metrics['n']} images")

# %% [markdown]
# The report of {cite}`darrin2020notion` quotes "around 95%" for this network; a few epochs
# of Adam on the full training set give about 98-99%. Which digits does it get wrong?
# Titles show the prediction, in red with the true label in parentheses when it is wrong.

# %%
logits = rk.predict(model, test.images, device=device)
pred = logits.argmax(1)
wrong = (pred != test.labels).nonzero().flatten()
show = torch.cat([torch.arange(8), wrong[:8]])
fig = rk.plot.image_grid(test.images[show], labels=test.labels[show], preds=pred[show],
                         class_names=test.classes, ncols=8,
                         title="Test predictions: first row correct, "
                               "second row mistakes")
plt.show()

# %% [markdown]
# The confusion matrix counts, for each true class (rows), the predicted classes (columns):

# %%
confusion = torch.zeros(10, 10, dtype=torch.long)
confusion.index_put_((test.labels, pred), torch.ones_like(pred), accumulate=True)
rk.plot.heatmap(confusion.numpy(), xticklabels=range(10), yticklabels=range(10),
                xlabel="predicted", ylabel="true", title="Confusion matrix (test)",
                cmap="Blues")
plt.show()

# %% [markdown]
# ## 0.5 A first look at robustness: random noise
#
# Before adversarial perturbations (chapter 2 onwards), a simpler question: how does the
# accuracy change when we add Gaussian noise $\delta\sim\mathcal{N}(0,\sigma^2 I)$ to the
# test images, clipped back to $[0,1]$? Random noise is a *weak* perturbation: in 784
# dimensions a random direction is almost orthogonal to the directions the classifier is
# sensitive to, which is why adversarial perturbations of the same size do far more harm.

# %%
def noisy(images, sigma, seed=0):
    """Add N(0, sigma^2) noise with a fixed seed and clip back to [0, 1]."""
    g = torch.Generator().manual_seed(seed)
    return (images + sigma * torch.randn(images.shape, generator=g)).clamp(0, 1)


def accuracy_under_noise(net, sigmas):
    """Test accuracy of `net` for each noise level in `sigmas`."""
    return [(rk.predict(net, noisy(test.images, s), device=device).argmax(1)
             == test.labels).float().mean().item() for s in sigmas]


sigmas = [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8, 1.0]
noise_acc = accuracy_under_noise(model, sigmas)
ax = rk.plot.plot_curves({"MnistConvNet": (sigmas, noise_acc)},
                         xlabel=r"noise level $\sigma$", ylabel="test accuracy",
                         title="Accuracy under Gaussian noise")
plt.show()

# %% [markdown]
# What does the network see? The same test digits at growing noise levels, with the
# predictions (red when wrong):

# %%
levels = [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
batch = torch.stack([noisy(test.images[i], s, seed=1) for i in range(3) for s in levels])
labels = test.labels[:3].repeat_interleave(len(levels))
preds = rk.predict(model, batch, device=device).argmax(1)
fig = rk.plot.image_grid(batch, labels=labels, preds=preds, ncols=len(levels),
                         title="columns: sigma = " + ", ".join(map(str, levels)))
plt.show()

# %% [markdown]
# Explore it yourself: slide $\sigma$ and the test image index to see the noisy input and
# the predicted probabilities (the slider needs a running notebook: open the chapter in
# Colab or Jupyter).

# %%
import ipywidgets as widgets


def show_noisy(index=0, sigma=0.3):
    x = noisy(test.images[index:index + 1], sigma, seed=index)
    probs = torch.softmax(rk.predict(model, x, device=device), 1)[0]
    fig, (a0, a1) = plt.subplots(1, 2, figsize=(6, 2.4))
    a0.imshow(x[0, 0], cmap="gray", vmin=0, vmax=1)
    a0.set_axis_off()
    a0.set_title(f"true {test.labels[index].item()}, sigma={sigma:.2f}")
    a1.bar(range(10), probs.numpy())
    a1.set(xticks=range(10), ylim=(0, 1), xlabel="class", ylabel="probability")
    plt.show()


widgets.interact(show_noisy, index=widgets.IntSlider(0, 0, len(test.images) - 1),
                 sigma=widgets.FloatSlider(value=0.3, min=0.0, max=1.0, step=0.05));

# %% [markdown]
# ## Summary
#
# - The course follows five source documents; every chapter runs and shows real results.
# - `ROBUSTKIT_BUDGET` (`smoke`, `cpu`, `gpu`) sizes every chapter; `rk.seed_everything`
#   makes runs reproducible.
# - `rk.load_dataset` finds MNIST offline or downloads it safely; images are in $[0,1]$.
# - `rk.MnistConvNet` (normalization inside, logits out), `rk.fit`, `rk.evaluate`,
#   `rk.predict` and the checkpoint cache `rk.cached_fit` are the building blocks that later
#   chapters reuse.
# - A network that is very accurate on clean images slowly loses accuracy under random
#   noise; chapter 2 shows that *adversarial* noise of a much smaller size breaks it.
#
# ## Exercises
#
# **Exercise 0.1 (dense vs convolutional).** Train the dense classifier `rk.DenseMLP()`
# (two hidden layers of 256 units) on the same data with the same budget. Compare its
# number of parameters and its test accuracy with the convolutional network.

# %%
# Your answer here: build, train and evaluate rk.DenseMLP(); keep its test accuracy.
dense, dense_acc = None, None

# %% tags=["solution", "hide-input"]
rk.seed_everything(SEED)
dense = rk.DenseMLP().to(device)
rk.fit(dense, train_loader, epochs=EPOCHS, lr=1e-3, device=device)
dense_acc = rk.evaluate(dense, test_loader, device=device)["accuracy"]
for name, net, acc in [("DenseMLP", dense, dense_acc),
                       ("MnistConvNet", model, metrics["accuracy"])]:
    n_params = rk.count_parameters(net)
    print(f"{name:>12}: {n_params:>8,} parameters, test accuracy {acc:.2%}")

# %% tags=["exercise-check"]
# Check exercise 0.1
assert isinstance(dense, rk.DenseMLP), "dense should be an rk.DenseMLP"
assert rk.count_parameters(dense) == 269_322, "use the default DenseMLP()"
assert 0.0 <= dense_acc <= 1.0, "dense_acc is an accuracy in [0, 1]"

# %% tags=["exercise-check", "hidden", "remove-cell"]
# Check exercise 0.1
_acc = rk.evaluate(dense, test_loader, device=device)["accuracy"]
assert abs(_acc - dense_acc) < 1e-6, "dense_acc is not the test accuracy of dense"
assert _acc > 0.3, "the dense network is not trained"

# %% [markdown]
# **Exercise 0.2 (which one is more robust to noise?).** {cite}`darrin2020notion` (§7.3.3)
# argues that dense networks are less robust than convolutional ones because they put
# weights on pixels that are always zero in the training data. Plot the accuracy under
# Gaussian noise of both networks on one figure. Does the experiment agree?

# %%
# Your answer here: reuse `accuracy_under_noise` and `sigmas` from section 0.5.
dense_noise_acc = None

# %% tags=["solution", "hide-input"]
dense_noise_acc = accuracy_under_noise(dense, sigmas)
rk.plot.plot_curves({"MnistConvNet": (sigmas, noise_acc),
                     "DenseMLP": (sigmas, dense_noise_acc)},
                    xlabel=r"noise level $\sigma$", ylabel="test accuracy",
                    title="Convolutional vs dense under Gaussian noise")
plt.show()

# %% tags=["exercise-check"]
# Check exercise 0.2
assert len(dense_noise_acc) == len(sigmas), "one accuracy per noise level"
assert all(0.0 <= a <= 1.0 for a in dense_noise_acc)

# %% tags=["exercise-check", "hidden", "remove-cell"]
# Check exercise 0.2
_expected = accuracy_under_noise(dense, sigmas)
assert all(abs(a - b) < 1e-6 for a, b in zip(dense_noise_acc, _expected)), \
    "dense_noise_acc should be the dense network's accuracy at each sigma"

# %% [markdown]
# **Exercise 0.3 (the most confused pair).** From the confusion matrix, find the pair of
# distinct digits $(i, j)$ most often confused in either direction, and show up to eight
# test images of that pair that the model gets wrong.

# %%
# Your answer here: the pair as a tuple `pair = (i, j)` with i < j.
pair = None

# %% tags=["solution", "hide-input"]
off = (confusion + confusion.T).fill_diagonal_(0)
i, j = divmod(int(off.argmax()), 10)
pair = (min(i, j), max(i, j))
print(f"most confused pair: {i} and {j} ({int(off[i, j])} test mistakes)")
mask = ((test.labels == i) & (pred == j)) | ((test.labels == j) & (pred == i))
idx = mask.nonzero().flatten()[:8]
if len(idx):
    rk.plot.image_grid(test.images[idx], labels=test.labels[idx], preds=pred[idx])
    plt.show()

# %% tags=["exercise-check"]
# Check exercise 0.3
assert isinstance(pair, tuple) and len(pair) == 2 and pair[0] < pair[1]

# %% tags=["exercise-check", "hidden", "remove-cell"]
# Check exercise 0.3
_mistakes = {}
for _t, _p in zip(test.labels.tolist(), pred.tolist()):
    if _t != _p:
        _key = (min(_t, _p), max(_t, _p))
        _mistakes[_key] = _mistakes.get(_key, 0) + 1
assert _mistakes.get(pair, 0) == max(_mistakes.values()), "not the most confused pair"

# %% [markdown]
# ## References
#
# - The source documents: {cite}`darrin2020notion`, {cite}`picot2021uncertainty`,
#   {cite}`vibslides`, {cite}`liu2021trustworthy`, {cite}`akhannouss2021generative`.
# - Datasets: MNIST {cite}`lecun1998gradient`, Fashion-MNIST {cite}`xiao2017fashion`.
# - Adversarial examples: {cite}`szegedy2014intriguing`, {cite}`goodfellow2015explaining`,
#   {cite}`madry2018towards`.
