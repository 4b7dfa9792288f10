"""robustkit: the PyTorch package behind the course *Robustness of machine learning models*.

The chapters explain and experiment; robustkit implements. One module per concern:

- :mod:`robustkit.runtime`: device, seeding, run budget (``ROBUSTKIT_BUDGET``);
- :mod:`robustkit.data`: MNIST, Fashion-MNIST, 8x8 digits, CIFAR-10, offline first;
- :mod:`robustkit.models`: the small networks of the chapters (normalization inside);
- :mod:`robustkit.train`: fit / evaluate loops and a checkpoint cache;
- :mod:`robustkit.infotheory`: entropies, divergences, Wasserstein distances;
- :mod:`robustkit.plot`: shared figures.
"""
from .runtime import Budget, get_budget, get_device, make_budget, seed_everything

__version__ = "0.1.0"

__all__ = ["Budget", "get_budget", "get_device", "make_budget", "seed_everything", "__version__"]
