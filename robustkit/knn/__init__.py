"""Provable robustness of nearest-neighbor classifiers (seed 003, chapter 3; course chapter 8).

- :mod:`.qp`: greedy coordinate ascent on the dual QP (Algorithm 9, eq. 3.13-3.14);
- :mod:`.exact`: QP-exact / QP-top-k for (Mahalanobis) 1-NN (Algorithms 5 and 8);
- :mod:`.verify`: QP-verify lower bounds for 1-NN and K-NN (eq. 3.12, Lemma 3, Theorem 3);
- :mod:`.attacks`: QP-greedy (Algorithm 6), Naive-1/10, Mean, Substitute;
- :mod:`.lp`: minimal Linf / L1 perturbations of 1-NN by linear programs (eq. 3.20-3.21);
- :mod:`.metric`: adversarially robust metric learning, ARML (eq. 3.44-3.48, Algorithm 7);
- :mod:`.smoothing`: Gaussian randomized smoothing certificates (Cohen et al. 2019).
"""
from ._common import PerturbationResult, knn_predict
from .qp import QPSolution, dual_greedy_qp
from .exact import exact_1nn, qp_top_k
from .verify import certified_error, pair_bounds, verify_knn
from .attacks import mean_attack, naive_attack, qp_greedy, substitute_attack, line_search_attack
from .lp import exact_1nn_lp
from .metric import arml_fit, triplet_bound, nca_metric
from .smoothing import (clopper_pearson_lower, smoothing_certify, smoothing_predict,
                        train_noisy_convnet)

__all__ = [
    "PerturbationResult", "knn_predict", "QPSolution", "dual_greedy_qp", "exact_1nn", "qp_top_k",
    "certified_error", "pair_bounds", "verify_knn", "mean_attack", "naive_attack", "qp_greedy",
    "substitute_attack", "line_search_attack", "exact_1nn_lp", "arml_fit", "triplet_bound",
    "nca_metric", "clopper_pearson_lower", "smoothing_certify", "smoothing_predict",
    "train_noisy_convnet",
]
