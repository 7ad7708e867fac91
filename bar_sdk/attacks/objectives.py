"""Attack objectives on log-probabilities, each with its gradient.

Every objective is *minimised* by the attacks and works row-wise on
``logp`` ``(m, n_classes)``. The margin on log-probabilities equals the
logit margin of a softmax model, so it is the Carlini-Wagner objective;
it is negative exactly when the top class is wrong (untargeted) or is the
target (targeted). Scores from an API are turned into log-probabilities
with a floor, because a top-k API answers 0 for most classes.
"""

from __future__ import annotations

from typing import Protocol, Union

import numpy as np

__all__ = ["log_scores", "margin", "cross_entropy", "objective", "LOSSES"]

_FLOOR = 1e-300


#: a class per row, or one class for every row
Labels = Union[np.ndarray, int]


class Loss(Protocol):
    """``loss(logp, label, target, kappa) -> (loss (m,), dloss/dlogp (m, n_classes))``."""

    def __call__(
        self, logp: np.ndarray, label: Labels, target: Labels | None, kappa: float = ...
    ) -> tuple[np.ndarray, np.ndarray]: ...


def log_scores(scores: np.ndarray) -> np.ndarray:
    """``log(max(scores, 1e-300))`` as float64 (a top-k API answers 0 for most classes)."""
    return np.log(np.maximum(np.asarray(scores, dtype=np.float64), _FLOOR))


def _anchor(logp: np.ndarray, anchor: Labels) -> tuple[np.ndarray, np.ndarray]:
    """Row indices and the class each row is measured against (a scalar is repeated)."""
    rows = np.arange(logp.shape[0])
    anchor = np.asarray(anchor, dtype=np.int64).reshape(-1)
    return rows, (np.repeat(anchor, len(rows)) if anchor.size == 1 else anchor)


def margin(
    logp: np.ndarray, label: Labels, target: Labels | None, kappa: float = np.inf
) -> tuple[np.ndarray, np.ndarray]:
    """``max(logp[y] - max_{j != y} logp[j], -kappa)`` (targeted: ``max_{j != t} logp[j] - logp[t]``).

    Returns ``(loss (m,), dloss/dlogp (m, n_classes))``.
    """
    logp = np.asarray(logp, dtype=np.float64)
    rows, anchor = _anchor(logp, label if target is None else target)
    others = logp.copy()
    others[rows, anchor] = -np.inf
    best = others.argmax(axis=1)
    if target is None:
        loss = logp[rows, anchor] - others[rows, best]
        sign = 1.0
    else:
        loss = others[rows, best] - logp[rows, anchor]
        sign = -1.0
    grad = np.zeros_like(logp)
    active = loss > -kappa
    grad[rows[active], anchor[active]] = sign
    grad[rows[active], best[active]] = -sign
    clipped: np.ndarray = np.maximum(loss, -kappa)
    return clipped, grad


def cross_entropy(
    logp: np.ndarray, label: Labels, target: Labels | None, kappa: float = np.inf
) -> tuple[np.ndarray, np.ndarray]:
    """``logp[y]`` (untargeted: push the true class down) or ``-logp[t]`` (targeted).

    Returns ``(loss (m,), dloss/dlogp (m, n_classes))``; ``kappa`` is unused.
    """
    logp = np.asarray(logp, dtype=np.float64)
    rows, anchor = _anchor(logp, label if target is None else target)
    sign = 1.0 if target is None else -1.0
    grad = np.zeros_like(logp)
    grad[rows, anchor] = sign
    return sign * logp[rows, anchor], grad


LOSSES: dict[str, Loss] = {"margin": margin, "ce": cross_entropy}


def objective(name: str, scores: np.ndarray, label: Labels, target: Labels | None) -> np.ndarray:
    """Loss per row of black-box ``scores`` (no gradient)."""
    return LOSSES[name](log_scores(scores), label, target)[0]
