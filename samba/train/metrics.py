"""Classification metrics for fine-tuning and evaluation.

Balanced accuracy is the headline number (EEG tasks are often imbalanced, e.g. P300 target vs
non-target); AUROC is threshold-free. All functions take plain numpy arrays so they can be checked
against scikit-learn on hand-made cases.
"""

from __future__ import annotations

import numpy as np
from sklearn import metrics as skm


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def auroc(y_true: np.ndarray, proba: np.ndarray, n_classes: int | None = None) -> float:
    """AUROC: binary uses the positive-class probability; >2 classes use macro one-vs-rest.

    Returns NaN when undefined (only one class present in `y_true`), never raises.
    """
    y_true = np.asarray(y_true)
    proba = np.asarray(proba, dtype=np.float64)
    n_classes = n_classes or proba.shape[1]
    present = np.unique(y_true)
    if len(present) < 2:
        return float("nan")
    if n_classes == 2:
        return float(skm.roc_auc_score(y_true, proba[:, 1]))
    # macro one-vs-rest over the classes present in y_true (absent classes have no positives)
    scores = []
    for k in present:
        scores.append(skm.roc_auc_score((y_true == k).astype(int), proba[:, k]))
    return float(np.mean(scores))


def classification_metrics(y_true, logits_or_proba, n_classes: int | None = None,
                           from_logits: bool = True) -> dict:
    """balanced_accuracy, auroc, kappa (Cohen), f1 (macro) from labels and scores (N, K)."""
    y_true = np.asarray(y_true).astype(np.int64)
    scores = np.asarray(logits_or_proba, dtype=np.float64)
    proba = _softmax(scores) if from_logits else scores
    n_classes = n_classes or proba.shape[1]
    y_pred = proba.argmax(axis=1)
    labels = np.arange(n_classes)
    with np.errstate(all="ignore"):
        ba = skm.balanced_accuracy_score(y_true, y_pred) if len(y_true) else float("nan")
        kappa = skm.cohen_kappa_score(y_true, y_pred, labels=labels) if len(y_true) else float("nan")
        f1 = skm.f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0)
    return {
        "balanced_accuracy": float(ba),
        "auroc": auroc(y_true, proba, n_classes),
        "kappa": float(np.nan_to_num(kappa, nan=0.0)),
        "f1": float(f1),
    }
