"""Zeroth-order machinery shared by reprogramming and attacks."""

from bar_sdk.zo.estimators import (
    ESTIMATORS,
    AntitheticEstimator,
    CoordinateEstimator,
    GradientEstimator,
    GuidedEstimator,
    HistoryEstimator,
    RandomGradientEstimator,
    SPSAEstimator,
    make_estimator,
)
from bar_sdk.zo.loop import Callback, EarlyStopping, ProgressBar, StepResult, TrainLoop
from bar_sdk.zo.optimizers import OPTIMIZERS, SGD, SPSAGC, Adam, Optimizer, SignSGD, make_optimizer
from bar_sdk.zo.step import validate_instances, zo_ask, zo_step, zo_tell

__all__ = [
    "ESTIMATORS",
    "OPTIMIZERS",
    "GradientEstimator",
    "RandomGradientEstimator",
    "AntitheticEstimator",
    "SPSAEstimator",
    "CoordinateEstimator",
    "GuidedEstimator",
    "HistoryEstimator",
    "Optimizer",
    "SGD",
    "Adam",
    "SignSGD",
    "SPSAGC",
    "make_estimator",
    "make_optimizer",
    "validate_instances",
    "zo_step",
    "zo_ask",
    "zo_tell",
    "TrainLoop",
    "StepResult",
    "Callback",
    "EarlyStopping",
    "ProgressBar",
]
