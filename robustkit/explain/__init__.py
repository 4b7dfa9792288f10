"""Explanations through robustness and information (chapter 11; seed 003 ch. 7, seed 000 §4).

- :mod:`.features`: superpixel features, top-k masks;
- :mod:`.criteria`: restricted minimal perturbation (eq. 7.1/7.2), Robustness-S_r curves and AUC,
  insertion / deletion;
- :mod:`.greedy`: Greedy (eq. 7.5), Greedy-AS with Banzhaf regression (eq. 7.6);
- :mod:`.baselines`: Grad, IG, EG, KernelSHAP, LOO, meaningful perturbation, random;
- :mod:`.infoexplainers`: L2X and the VIB explainer.
"""
from .baselines import (expected_gradients, integrated_gradients, kernel_shap, leave_one_out,
                        meaningful_perturbation, random_attribution, vanilla_gradient)
from .criteria import (auc, insertion_deletion, restricted_minimal_perturbation, restricted_pgd,
                       robustness_curve)
from .features import n_features, pool_scores, to_pixels, top_k_mask
from .greedy import banzhaf_exact, banzhaf_regression, greedy, greedy_as
from .infoexplainers import L2X, VIBExplainer, gumbel_topk_relaxed

__all__ = [
    "n_features", "pool_scores", "to_pixels", "top_k_mask",
    "restricted_pgd", "restricted_minimal_perturbation", "robustness_curve", "auc", "insertion_deletion",
    "greedy", "greedy_as", "banzhaf_regression", "banzhaf_exact",
    "vanilla_gradient", "integrated_gradients", "expected_gradients", "kernel_shap", "leave_one_out",
    "meaningful_perturbation", "random_attribution",
    "L2X", "VIBExplainer", "gumbel_topk_relaxed",
]
