"""Concepts of a classifier: its class-conditional generative distributions (seed 000 §5, §7).

- :mod:`.categorical`: probability maps over pixels sampled with Gumbel-softmax (§5.5);
- :mod:`.gaussian`: multivariate normals with an LDL^T covariance (§5.6, Prop. 7);
- :mod:`.objectives`: sharp and fuzzy objectives, entropy regularization, training (§5.2-5.3);
- :mod:`.metrics`: entropy, Bhattacharyya, Hellinger, sliced Wasserstein, classification (§5.5.2, §7);
- :mod:`.flows`: elementwise, triangular, Householder and Cauchy-matrix flows (§5.7);
- :mod:`.generative`: DFZ / GFZ latent-variable classifiers and logit-based detection (seed 004).

Chapter 4. Usage::

    concept = CategoricalConcept(k=500, tau=0.5)
    fit_concepts(concept, classifier, steps=100, kind="sharp", beta=0.0)
    summary = concept_summary(concept.maps().detach())
"""
from .categorical import (CategoricalConcept, gumbel_softmax_sample, pixels_to_image,
                          sample_gumbel)
from .flows import (CauchyFlow, ElementwiseAffineFlow, FlowLayer, FlowSequence, HouseholderFlow,
                    LeakyReLUFlow, TriangularFlow, cauchy_logdet)
from .generative import (LatentVariableClassifier, detect_adversarial, elbo_objective,
                         logit_thresholds, relative_perturbation)
from .gaussian import GaussianConcept, ldl_covariance
from .metrics import (classify_by_concepts, concept_summary, gaussian_concept_metrics,
                      map_entropy, map_log_likelihood, off_diagonal_summary,
                      pairwise_bhattacharyya, pairwise_hellinger, pairwise_sliced_wasserstein)
from .objectives import concept_objective, fit_concepts, fuzzy_loss, sharp_loss

__all__ = [
    "CategoricalConcept", "gumbel_softmax_sample", "pixels_to_image", "sample_gumbel",
    "GaussianConcept", "ldl_covariance",
    "sharp_loss", "fuzzy_loss", "concept_objective", "fit_concepts",
    "map_entropy", "pairwise_bhattacharyya", "pairwise_hellinger", "pairwise_sliced_wasserstein",
    "off_diagonal_summary", "concept_summary", "map_log_likelihood", "classify_by_concepts",
    "gaussian_concept_metrics",
    "FlowLayer", "ElementwiseAffineFlow", "LeakyReLUFlow", "TriangularFlow", "HouseholderFlow",
    "CauchyFlow", "FlowSequence", "cauchy_logdet",
    "LatentVariableClassifier", "elbo_objective", "logit_thresholds", "detect_adversarial",
    "relative_perturbation",
]
