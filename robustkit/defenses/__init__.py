"""Defenses: adversarial training, robust objectives and stochastic-representation models.

Every training objective here has the signature ``loss_fn(model, x, y) -> (loss, logits)``
of :func:`robustkit.train.fit`, so a defense is one argument of the common loop.

- :mod:`.adversarial_training`: PGD adversarial training (Madry et al.; seed 000 §6.2)
  and fast FGSM training with a random start (Wong et al. 2020);
- :mod:`.regularizers`: the gradient-norm (local Lipschitz) regularizer of seed 003
  eq. (2.25) / seed 000 §6.3, trained by double backpropagation;
- :mod:`.hr`: the HR loss of seed 001 (conditional entropy + alpha * Rényi), the
  FGSM-with-a-chosen-loss evaluation and the confusion matrix of that paper;
- :mod:`.vib`: the deep variational information bottleneck classifier of seed 002;
- :mod:`.bayesian`: Bayesian linear and convolution layers with the closed-form KL
  (seed 003 §2.2, eq. 2.15), shared by Adv-BNN and the uncertainty chapter;
- :mod:`.rse`: Random Self-Ensemble noise layers and ensembles (seed 003 §2.1);
- :mod:`.adv_bnn`: Bayes by backprop and Adv-BNN training (seed 003 §2.2, Algorithm 3);
- :mod:`.distillation`: the defensive-distillation baseline (Papernot et al. 2016);
- :mod:`.neural_sde`: Neural SDE blocks and an Euler-Maruyama solver (seed 003 §2.3).

Used by: chapters 3, 6, 7 and 10.
"""
from . import (adv_bnn, adversarial_training, bayesian, distillation, hr, neural_sde,
               regularizers, rse, vib)
from .adversarial_training import AdversarialObjective, fast_fgsm_objective, pgd_training_objective
from .hr import conditional_confusion, fgsm_with_loss, hr_loss, hr_objective
from .regularizers import dual_norm, gradient_norm_objective, input_gradient_norms
from .vib import VIBClassifier, confidence_ellipse_radius, vib_objective

from .adv_bnn import adv_bnn_objective, bayes_predict, bayesian_network, to_bayesian
from .bayesian import BayesConv2d, BayesLinear, kl_divergence
from .neural_sde import NeuralSDEClassifier, SDEBlock, euler_maruyama
from .rse import NoiseLayer, SelfEnsemble, ensemble_proba, rse_network

__all__ = [
    "adv_bnn", "adversarial_training", "bayesian", "distillation", "hr", "neural_sde",
    "regularizers", "rse", "vib",
    "adv_bnn_objective", "bayes_predict", "bayesian_network", "to_bayesian",
    "BayesConv2d", "BayesLinear", "kl_divergence",
    "NeuralSDEClassifier", "SDEBlock", "euler_maruyama",
    "NoiseLayer", "SelfEnsemble", "ensemble_proba", "rse_network",
    "AdversarialObjective", "pgd_training_objective", "fast_fgsm_objective",
    "dual_norm", "input_gradient_norms", "gradient_norm_objective",
    "hr_loss", "hr_objective", "fgsm_with_loss", "conditional_confusion",
    "VIBClassifier", "vib_objective", "confidence_ellipse_radius",
]
