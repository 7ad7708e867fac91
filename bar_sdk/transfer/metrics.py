"""The three numbers every table in this package reports for a classifier."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import accuracy_score, balanced_accuracy_score, roc_auc_score

__all__ = ["classification_metrics"]


def classification_metrics(y: np.ndarray, proba: np.ndarray) -> dict[str, float]:
    """Accuracy, balanced accuracy and ROC AUC of class probabilities.

    Balanced accuracy and AUC sit beside accuracy because a skewed test set
    (BreastMNIST: 73% one class) lets a constant answer look good. AUC is
    one-vs-rest, macro-averaged, for more than two classes; ``nan`` when
    ``y`` holds a single class.

    Parameters
    ----------
    y : ndarray (n,) int
    proba : ndarray (n, k)

    Returns
    -------
    dict with ``accuracy``, ``balanced_accuracy``, ``auc``
    """
    y = np.asarray(y)
    proba = np.asarray(proba, dtype=np.float64)
    pred = proba.argmax(axis=1)
    out = {"accuracy": float(accuracy_score(y, pred)), "balanced_accuracy": float(balanced_accuracy_score(y, pred))}
    present = np.unique(y)
    if present.size < 2:
        out["auc"] = float("nan")
    elif proba.shape[1] == 2:
        out["auc"] = float(roc_auc_score(y, proba[:, 1]))
    else:
        rows = proba / np.maximum(proba.sum(axis=1, keepdims=True), 1e-300)
        out["auc"] = float(roc_auc_score(y, rows, multi_class="ovr", labels=np.arange(proba.shape[1])))
    return out
