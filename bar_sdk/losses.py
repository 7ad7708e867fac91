"""Losses on mapped target scores, with their exact derivatives.

Target scores (the mean of mapped source scores) are normalised over the
target classes, ``p = s / sum(s)``, then scored. The derivative with
respect to the model's log-probabilities is given for white-box training.
"""

from __future__ import annotations

import numpy as np

__all__ = ["normalise", "focal_loss", "cross_entropy", "balanced_weights", "LOSSES"]

EPS = 1e-12


def balanced_weights(y: np.ndarray, n_target: int) -> np.ndarray:
    """Class weights proportional to ``1 / n_j`` (BAR), scaled to mean one over the data."""
    counts = np.bincount(y, minlength=n_target).astype(np.float64)
    return len(y) / (n_target * np.maximum(counts, 1.0))


def normalise(target_scores: np.ndarray) -> np.ndarray:
    s = target_scores + EPS
    return s / s.sum(axis=-1, keepdims=True)


def focal_loss(p: np.ndarray, y: np.ndarray, weights: np.ndarray, gamma: float = 2.0):
    """Per-sample weighted focal loss ``-w_y (1 - p_y)^gamma log p_y`` and ``dloss/dp_y``.

    ``p`` may carry leading dimensions: ``(..., n, k)``; ``y`` is ``(n,)``.
    """
    py = np.take_along_axis(p, np.broadcast_to(y[:, None], p.shape[:-1] + (1,)), axis=-1)[..., 0]
    py = np.clip(py, EPS, 1.0)
    w = weights[y]
    one_minus = 1.0 - py
    log_py = np.log(py)
    loss = -w * one_minus**gamma * log_py
    if gamma == 0:
        dpy = -w / py
    else:
        dpy = -w * (-gamma * one_minus ** (gamma - 1) * log_py + one_minus**gamma / py)
    return loss, dpy


def cross_entropy(p: np.ndarray, y: np.ndarray, weights: np.ndarray, gamma: float = 0.0):
    """Weighted cross-entropy: focal loss with gamma = 0."""
    return focal_loss(p, y, weights, 0.0)


LOSSES = {"focal": focal_loss, "cross_entropy": cross_entropy}


def loss_and_logp_gradient(
    scores: np.ndarray, mapping_matrix: np.ndarray, y: np.ndarray, weights: np.ndarray, loss: str, gamma: float
):
    """Mean loss over a batch and its gradient with respect to log-scores (white-box).

    ``scores`` are the model's probabilities (n, K). Chain:
    ``p_y = s_y / S``, ``s = scores @ A``, ``dscores/dlogp = scores``.
    """
    n = len(y)
    s = scores @ mapping_matrix + EPS
    total = s.sum(axis=1, keepdims=True)
    p = s / total
    per, dpy = LOSSES[loss](p, y, weights, gamma)
    # dp_y/ds_t = (delta_ty - p_y) / S
    onehot = np.zeros_like(p)
    onehot[np.arange(n), y] = 1.0
    ds = (dpy[:, None] * (onehot - p[np.arange(n), y][:, None]) / total) / n
    dscores = ds @ mapping_matrix.T
    return float(per.mean()), dscores * scores


def readout_loss_and_logp_gradient(
    scores: np.ndarray,
    readout,
    y: np.ndarray,
    weights: np.ndarray,
    loss: str,
    gamma: float,
    rows: np.ndarray | None = None,
):
    """As :func:`loss_and_logp_gradient`, with the target read by a readout of every source score.

    ``readout`` is a :class:`~bar_sdk.mapping.LogisticReadout` or a
    :class:`~bar_sdk.mapping.CrossFittedReadout` (``rows``: the training rows of
    ``scores``, which pick each row's out-of-fold readout).
    ``p = softmax(log(max(scores, floor)) @ coef + intercept)``; below the floor
    the features are constant, so their gradient is zero there.
    """
    n = len(y)
    p = readout.proba(scores, rows)
    per, dpy = LOSSES[loss](p, y, weights, gamma)
    onehot = np.zeros_like(p)
    onehot[np.arange(n), y] = 1.0
    dz = (dpy * p[np.arange(n), y])[:, None] * (onehot - p) / n  # dp_y/dz_j = p_y (delta_yj - p_j)
    return float(per.mean()), readout.backward(dz, scores, rows)
