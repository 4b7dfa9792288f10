"""robustkit: the PyTorch package behind the course *Robustness of machine learning models*.

The chapters explain and experiment; robustkit implements. One module per concern:

- :mod:`robustkit.runtime`: device, seeding, run budget (``ROBUSTKIT_BUDGET``);
- :mod:`robustkit.data`: MNIST, Fashion-MNIST, 8x8 digits, CIFAR-10, offline first;
- :mod:`robustkit.models`: the small networks of the chapters (normalization inside);
- :mod:`robustkit.train`: fit / evaluate loops and a checkpoint cache;
- :mod:`robustkit.infotheory`: entropies, divergences, Wasserstein distances;
- :mod:`robustkit.plot`: shared figures;
- :mod:`robustkit.modes`: the `stochastic` switch of randomized layers, apart from `training`;
- :mod:`robustkit.attacks`: FGSM, PGD (Linf, L2, L1), C&W, DeepFool, EOT, robustness evaluation;
- :mod:`robustkit.defenses`: adversarial training, HR loss, VIB, RSE, Adv-BNN, Neural SDE;
- :mod:`robustkit.knn`: provable robustness of nearest neighbors, robust metric learning,
  randomized smoothing;
- :mod:`robustkit.concepts`: the generative distributions (concepts) of a trained classifier,
  flows, and the latent-variable classifiers of seed 004;
- :mod:`robustkit.explain`: explanations through robustness (Greedy, Greedy-AS), baselines,
  L2X and the VIB explainer;
- :mod:`robustkit.sequence`: position encoders (sinusoidal, learned, FLOATER) and a small
  transformer;
- :mod:`robustkit.poisoning`: label propagation and its poisoning attacks;
- :mod:`robustkit.uncertainty`: ensembles, Bayesian baselines, calibration and OOD metrics;
- :mod:`robustkit.assign`: student versions and an autograder for the exercises.

A chapter needs one import line: ``import robustkit as rk``.
"""
from . import (attacks, concepts, data, defenses, explain, infotheory, knn, models, modes,
               plot, poisoning, runtime, sequence, train, uncertainty)
from .data import load_dataset, make_loader, stratified_subset
from .modes import StochasticModule, eval_mode, set_stochastic, stochastic
from .models import DenseMLP, MnistConvNet, SmallCifarNet, build_model, count_parameters
from .runtime import Budget, get_budget, get_device, make_budget, seed_everything
from .train import cached_fit, evaluate, fit, predict

__version__ = "0.1.0"

__all__ = [
    "attacks", "concepts", "data", "defenses", "explain", "infotheory", "knn", "models", "modes", "plot", "poisoning",
    "runtime", "sequence", "train", "uncertainty",
    "StochasticModule", "eval_mode", "set_stochastic", "stochastic",
    "Budget", "get_budget", "get_device", "make_budget", "seed_everything",
    "load_dataset", "make_loader", "stratified_subset",
    "DenseMLP", "MnistConvNet", "SmallCifarNet", "build_model", "count_parameters",
    "cached_fit", "evaluate", "fit", "predict",
    "__version__",
]
