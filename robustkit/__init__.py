"""robustkit: the PyTorch package behind the course *Robustness of machine learning models*.

The chapters explain and experiment; robustkit implements. One module per concern:

- :mod:`robustkit.runtime`: device, seeding, run budget (``ROBUSTKIT_BUDGET``);
- :mod:`robustkit.data`: MNIST, Fashion-MNIST, 8x8 digits, CIFAR-10, offline first;
- :mod:`robustkit.models`: the small networks of the chapters (normalization inside);
- :mod:`robustkit.train`: fit / evaluate loops and a checkpoint cache;
- :mod:`robustkit.infotheory`: entropies, divergences, Wasserstein distances;
- :mod:`robustkit.plot`: shared figures;
- :mod:`robustkit.sequence`: position encoders (sinusoidal, learned, FLOATER) and a small
  transformer;
- :mod:`robustkit.assign`: student versions and an autograder for the exercises.

A chapter needs one import line: ``import robustkit as rk``.
"""
from . import data, infotheory, models, plot, runtime, sequence, train
from .data import load_dataset, make_loader, stratified_subset
from .models import DenseMLP, MnistConvNet, SmallCifarNet, build_model, count_parameters
from .runtime import Budget, get_budget, get_device, make_budget, seed_everything
from .train import cached_fit, evaluate, fit, predict

__version__ = "0.1.0"

__all__ = [
    "data", "infotheory", "models", "plot", "runtime", "sequence", "train",
    "Budget", "get_budget", "get_device", "make_budget", "seed_everything",
    "load_dataset", "make_loader", "stratified_subset",
    "DenseMLP", "MnistConvNet", "SmallCifarNet", "build_model", "count_parameters",
    "cached_fit", "evaluate", "fit", "predict",
    "__version__",
]
