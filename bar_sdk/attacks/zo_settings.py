"""An attack's zeroth-order settings: checked, then built into the core's estimator and optimizer.

NES and the universal perturbation take the same ``estimator``,
``n_directions``, ``smoothing``, ``optimizer``, ``lr`` and ``lr_decay``
arguments; this module checks them and builds the :mod:`bar_sdk.zo`
objects, so both attacks use the very objects that train reprogramming.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np

from bar_sdk.attacks.normalized_sgd import NormalizedSGD
from bar_sdk.contract import check_choice, check_float, check_int
from bar_sdk.zo import (
    ESTIMATORS,
    OPTIMIZERS,
    GradientEstimator,
    Optimizer,
    make_estimator,
    make_optimizer,
    validate_instances,
)

__all__ = ["check_zo_params", "build_estimator", "build_optimizer"]


def check_zo_params(attack: Any) -> None:
    """Check ``estimator``, ``n_directions``, ``smoothing``, ``optimizer``, ``lr``, ``lr_decay``."""
    if not isinstance(attack.estimator, GradientEstimator):
        check_choice(attack.estimator, "estimator", tuple(ESTIMATORS))
    if attack.optimizer is not None and not isinstance(attack.optimizer, Optimizer):
        check_choice(attack.optimizer, "optimizer", tuple(OPTIMIZERS))
    check_int(attack.n_directions, "n_directions", low=1)
    check_float(attack.smoothing, "smoothing", low=0.0, low_open=True)
    check_float(attack.lr, "lr", low=0.0, low_open=True, allow_none=True)
    check_float(attack.lr_decay, "lr_decay", low=0.0, high=1.0, low_open=True)
    validate_instances(attack.estimator, attack.optimizer)  # an instance's settings, as they are now


def build_estimator(spec: Any, n_directions: int, smoothing: float, dim: int) -> GradientEstimator:
    """A fresh estimator; ``smoothing`` is the RMS change per coordinate (probe length ``smoothing * sqrt(dim)``)."""
    if isinstance(spec, GradientEstimator):
        return copy.deepcopy(spec)
    return make_estimator(spec, n_directions, smoothing * np.sqrt(dim))


def build_optimizer(spec: Any, norm: str, lr: float, lr_decay: float) -> Optimizer:
    """A fresh optimizer; by default signed steps for Linf and normalised steps for L2."""
    if isinstance(spec, Optimizer):
        return copy.deepcopy(spec)
    if spec is None and norm == "l2":
        return NormalizedSGD(lr, lr_decay)
    return make_optimizer(spec or "sign", lr, lr_decay)
