"""One zeroth-order step, written once for reprogramming and attacks."""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from bar_sdk.zo.estimators import GradientEstimator
from bar_sdk.zo.optimizers import Optimizer
from bar_sdk.zo.settings import Settings


def zo_step(
    theta: np.ndarray,
    objective: Callable[[np.ndarray], np.ndarray],
    estimator: GradientEstimator,
    optimizer: Optimizer,
    rng: np.random.Generator,
    progress: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Estimate the gradient of ``objective`` near ``theta`` and take one step.

    ``objective`` maps a ``(m, d)`` stack of parameter vectors to ``m``
    losses (in one batched model call, typically). Returns
    ``(new_theta, gradient, losses)``. The same step split in two, for a
    caller that sends the points elsewhere and gets the losses back later
    (an attack's generator): :func:`zo_ask`, then :func:`zo_tell`.
    """
    losses = np.asarray(objective(zo_ask(theta, estimator, optimizer, rng)), dtype=np.float64)
    new, grad = zo_tell(theta, losses, estimator, optimizer, progress)
    return new, grad, losses


def zo_ask(
    theta: np.ndarray, estimator: GradientEstimator, optimizer: Optimizer, rng: np.random.Generator
) -> np.ndarray:
    """The ``(m, d)`` points whose losses the step needs (around the optimizer's look-ahead point)."""
    return estimator.ask(optimizer.lookahead(theta), rng)


def zo_tell(
    theta: np.ndarray, losses: np.ndarray, estimator: GradientEstimator, optimizer: Optimizer, progress: float
) -> tuple[np.ndarray, np.ndarray]:
    """``(new_theta, gradient)`` from the losses of :func:`zo_ask`'s points."""
    grad = estimator.tell(losses)
    return optimizer.step(theta, grad, progress), grad


def validate_instances(*specs: Any) -> None:
    """Call ``validate()`` on every estimator or optimizer instance among ``specs`` (names and None pass).

    Consumers call it before their first query: an instance's settings may
    have been changed since it was built.
    """
    for spec in specs:
        if isinstance(spec, Settings):
            spec.validate()
