"""Adversarial attacks and robustness evaluation (chapter 2 and every later chapter).

One family per module on the shared base :class:`~robustkit.attacks.base.Attack`:

- :mod:`.fgsm`: FGSM and FGSM with random start (seed 001, seed 003 eq. 2.1, seed 004 Alg. 1);
- :mod:`.pgd`: PGD for Linf, L2 and L1 (seed 000 §6.1, seed 003 eq. 2.4-2.5);
- :mod:`.cw`: Carlini-Wagner L2 (seed 003 eq. 2.2-2.3);
- :mod:`.deepfool`: DeepFool for L2 and Linf (seed 004 Alg. 2);
- :mod:`.eot`: expectation over transformation for randomized models;
- :mod:`.minimal`: minimal perturbation by bisection over eps;
- :mod:`.evaluate`: robust accuracy, accuracy vs eps, minimal-perturbation
  distributions, gradient-masking checks;
- :mod:`.projections`: norms, projections (exact L1 ball ∩ box), uniform ball sampling.

Usage: ``x_adv = PGD(model, eps=0.3)(x, y)``; ``robust_accuracy(model, attack, (x, y))``.
"""
from .base import Attack, FixedEpsAttack, attack_loss, best_other_logit, is_adversarial, margin
from .cw import CarliniWagnerL2
from .deepfool import DeepFool
from .eot import EOT, ExpectedModel, expected_logits
from .evaluate import (accuracy_vs_eps, gradient_masking_report, minimal_perturbation_norms,
                       robust_accuracy)
from .fgsm import FGSM
from .minimal import minimal_perturbation
from .pgd import PGD
from .projections import (norms, project, project_l1, project_l1_box, project_l2, project_linf,
                          random_in_ball)

__all__ = [
    "Attack", "FixedEpsAttack", "FGSM", "PGD", "CarliniWagnerL2", "DeepFool",
    "EOT", "ExpectedModel", "expected_logits", "minimal_perturbation",
    "robust_accuracy", "accuracy_vs_eps", "minimal_perturbation_norms", "gradient_masking_report",
    "norms", "project", "project_linf", "project_l2", "project_l1", "project_l1_box",
    "random_in_ball", "margin", "best_other_logit", "attack_loss", "is_adversarial",
]
