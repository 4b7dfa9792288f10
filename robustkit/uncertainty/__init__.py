"""Robust uncertainty estimation (seed 003 ch. 5): methods, metrics, benchmarks.

- :mod:`.methods`: predictors (ensembles, MC dropout, SGLD, SVI, snapshot ensembles,
  BatchEnsemble, FastEnsemble of seed 003 Algorithm 10) and their training loops;
- :mod:`.metrics`: accuracy, NLL, ECE (eq. 5.3), reliability bins, ROC / AUROC / partial
  AUC at FPR <= 0.2, Precision@k / Recall@k (eq. 5.1), Pearson correlations;
- :mod:`.corruptions`: eight synthetic corruptions x five severities (CIFAR10-C style);
- :mod:`.image2image`: the image-to-image benchmark of §5.3 rebuilt on MNIST (canvases of
  digits, denoising, pasted OOD patches);
- :mod:`.nets`: a BatchNorm convnet classifier and a small U-Net with MC-dropout layers.

Used by: chapter 10, *Robust uncertainty estimation*.
"""
from . import corruptions, image2image, methods, metrics, nets, plots
from .corruptions import CORRUPTIONS, SEVERITY_PARAMS, corrupt
from .image2image import boxes_to_mask, denoising_pair, make_canvases, paste_patches
from .methods import (SGLD, BatchEnsemble, BEConv2d, BELinear, Ensemble, MCDropoutPredictor, Predictor,
                      StochasticPredictor, cyclic_cosine_lr, fast_ensemble_loss, l1_distance, mc_dropout,
                      predict_mean_var, predict_proba, train_batch_ensemble, train_fast_ensemble, train_model,
                      train_naive_ensemble, train_sgld, train_snapshot, train_svi)
from .metrics import (accuracy, auroc, brier, classification_report, ece, member_correlation, nll,
                      partial_auc, pearson, precision_recall_at_k, predictive_entropy, reliability_bins,
                      roc_curve, uncertainty_decomposition)
from .nets import MCDropout, UNet, UncertaintyConvNet, dropout_modules
from .plots import draw_boxes, reliability_diagram

__all__ = [
    "corruptions", "image2image", "methods", "metrics", "nets", "plots",
    "CORRUPTIONS", "SEVERITY_PARAMS", "corrupt",
    "boxes_to_mask", "denoising_pair", "make_canvases", "paste_patches",
    "SGLD", "BatchEnsemble", "BEConv2d", "BELinear", "Ensemble", "MCDropoutPredictor", "Predictor",
    "StochasticPredictor", "cyclic_cosine_lr", "fast_ensemble_loss", "l1_distance", "mc_dropout",
    "predict_mean_var", "predict_proba", "train_batch_ensemble", "train_fast_ensemble", "train_model",
    "train_naive_ensemble", "train_sgld", "train_snapshot", "train_svi",
    "accuracy", "auroc", "brier", "classification_report", "ece", "member_correlation", "nll",
    "partial_auc", "pearson", "precision_recall_at_k", "predictive_entropy", "reliability_bins", "roc_curve",
    "uncertainty_decomposition",
    "MCDropout", "UNet", "UncertaintyConvNet", "dropout_modules", "draw_boxes", "reliability_diagram",
]
