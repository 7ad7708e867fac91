"""The optimizer of L2 attacks: steps of fixed length along the estimated descent direction.

(An attack's optimizer beside the core's in :mod:`bar_sdk.zo.optimizers`, built by default for ``norm="l2"``
in :func:`bar_sdk.attacks.zo_settings.build_optimizer`.)
"""

from __future__ import annotations

import numpy as np

from bar_sdk.zo import Optimizer

__all__ = ["NormalizedSGD"]


class NormalizedSGD(Optimizer):
    """Steps of length ``lr`` along the estimated descent direction (L2 PGD)."""

    def _update(self, theta: np.ndarray, grad: np.ndarray, progress: float) -> np.ndarray:
        norm = float(np.linalg.norm(grad))
        return theta if norm == 0.0 else theta - self.learning_rate(progress) * grad / norm
