"""One zeroth-order step, written once for reprogramming and attacks."""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from bar_sdk.zo.estimators import GradientEstimator
from bar_sdk.zo.optimizers import Optimizer
from bar_sdk.zo.settings import Settings


def zo_step(theta: np.ndarray, objective: Callable[[np.ndarray], np.ndarray],
            estimator: GradientEstimator, optimizer: Optimizer,
            rng: np.random.Generator, progress: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Estimate the gradient of ``objective`` near ``theta`` and take one step.

    ``objective`` maps a ``(m, d)`` stack of parameter vectors to ``m``
    losses (in one batched model call, typically). Returns
    ``(new_theta, gradient, losses)``.
    """
    points = estimator.ask(optimizer.lookahead(theta), rng)
    losses = np.asarray(objective(points), dtype=np.float64)
    grad = estimator.tell(losses)
    return optimizer.step(theta, grad, progress), grad, losses


def validate_instances(*specs: Any) -> None:
    """Call ``validate()`` on every estimator or optimizer instance among ``specs`` (names and None pass).

    Consumers call it before their first query: an instance's settings may
    have been changed since it was built.
    """
    for spec in specs:
        if isinstance(spec, Settings):
            spec.validate()
