"""Before any query: a BARClassifier's settings checked and the parts of its fit built from them.

:func:`check_settings` refuses a parameter that cannot work, naming it;
:func:`plan_fit` builds the estimator and the optimizer (copies: fit never
changes an instance given as a parameter) and prices one step, the
label-mapping pass and the readout pass (:func:`fit_costs`, which
:func:`bar_sdk.plan.plan_bar` prices with too), refusing a ``max_queries``
that cannot pay for them; :func:`check_quantization` warns when the probes are
finer than the model's input quantisation. :func:`prepare_fit` checks the
data and builds all of a fit (:class:`FitRun`) from these parts.
"""

from __future__ import annotations

import copy
import numbers
import os
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from bar_sdk import losses as L
from bar_sdk.checkpoint import check_writable
from bar_sdk.contract import (
    as_input_array,
    check_bool,
    check_choice,
    check_float,
    check_int,
    check_model,
    encode_labels,
    has_gradients,
    is_label_only,
)
from bar_sdk.errors import InvalidInputError
from bar_sdk.layout import TargetLayout
from bar_sdk.ledger import MeteredModel, QueryLedger
from bar_sdk.mapping import check_mapping_size, check_readout_folds
from bar_sdk.reprogram_steps import BARStep
from bar_sdk.train_state import TrainState, data_record, load_checkpoint, save_checkpoint
from bar_sdk.views import MAX_VIEWS
from bar_sdk.zo import (
    ESTIMATORS,
    OPTIMIZERS,
    make_estimator,
    make_optimizer,
    validate_instances,
)
from bar_sdk.zo.estimators import GradientEstimator, GuidedEstimator
from bar_sdk.zo.optimizers import Optimizer, check_weight_decay

__all__ = [
    "check_settings",
    "initial_theta",
    "check_surrogate",
    "plan_fit",
    "FitPlan",
    "fit_estimator",
    "fit_costs",
    "FitCosts",
    "prepare_fit",
    "FitRun",
    "DEFAULT_EPOCHS",
    "PARAM_SCALE_MAX",
    "check_quantization",
    "QuantizationWarning",
]

#: epochs trained when neither max_queries nor max_epochs is given
DEFAULT_EPOCHS = 20

#: the largest init_scale, smoothing and learning_rate accepted: the program passes through tanh, which
#: saturates within a few units, and parameters past float32's range would turn the images to NaN
PARAM_SCALE_MAX = 100.0


class QuantizationWarning(UserWarning):
    """The smoothing step is too small to survive the model's input quantisation."""


def check_settings(clf) -> None:
    """Refuse, naming the parameter, any BARClassifier setting that cannot work (before any query)."""
    check_int(clf.max_queries, "max_queries", low=1, allow_none=True)
    check_int(clf.max_epochs, "max_epochs", low=1, allow_none=True)
    check_int(clf.batch_size, "batch_size", low=1)
    check_choice(clf.program, "program", ("pad", "full"))
    check_choice(clf.parameterization, "parameterization", ("grid", "full", "lowrank"))
    check_int(clf.grid_size, "grid_size", low=1)
    check_int(clf.rank, "rank", low=1)
    check_float(clf.program_strength, "program_strength", low=0.0, high=1.0, low_open=True)
    check_choice(clf.mapping, "mapping", ("frequency", "iterative", "random", "logistic"))
    check_int(clf.labels_per_class, "labels_per_class", low=1, allow_none=True)
    check_choice(clf.readout, "readout", ("mapping", "logistic"))
    check_int(clf.views, "views", low=1, high=MAX_VIEWS)
    check_bool(clf.augment, "augment")
    check_choice(clf.loss, "loss", tuple(L.LOSSES))
    check_float(clf.gamma, "gamma", low=0.0)
    if not isinstance(clf.estimator, GradientEstimator):
        check_choice(clf.estimator, "estimator", tuple(ESTIMATORS) + ("exact",))
    if clf.estimator == "exact" and clf.surrogate is not None:
        raise InvalidInputError("estimator='exact' with a surrogate; expected one or the other")
    if not isinstance(clf.optimizer, Optimizer):
        check_choice(clf.optimizer, "optimizer", tuple(OPTIMIZERS))
    validate_instances(clf.estimator, clf.optimizer)  # an instance's settings, as they are now
    check_int(clf.n_directions, "n_directions", low=1)
    check_float(clf.smoothing, "smoothing", low=0.0, low_open=True)
    check_float(clf.learning_rate, "learning_rate", low=0.0, low_open=True)
    for name in ("smoothing", "learning_rate", "init_scale"):
        if isinstance(getattr(clf, name), numbers.Real) and getattr(clf, name) > PARAM_SCALE_MAX:
            raise InvalidInputError(
                f"{name}={getattr(clf, name)!r}; expected a number <= {PARAM_SCALE_MAX:g}: the program passes "
                "through tanh, which saturates within a few units, and parameters past float32's range "
                "would make the images NaN"
            )
    check_float(clf.lr_decay, "lr_decay", low=0.0, high=1.0, low_open=True)
    if isinstance(clf.optimizer, Optimizer):
        if clf.weight_decay != 0.0:  # never silently ignored
            raise InvalidInputError(
                f"weight_decay={clf.weight_decay!r} with an optimizer instance; expected "
                "0.0 here and the decay on the instance (its weight_decay)"
            )
    else:
        check_weight_decay(clf.weight_decay, clf.learning_rate)
    check_float(clf.init_scale, "init_scale", low=0.0)
    if clf.random_state is not None:
        check_int(clf.random_state, "random_state", low=0)
    if clf.checkpoint is not None and not isinstance(clf.checkpoint, (str, os.PathLike)):
        raise InvalidInputError(f"checkpoint={clf.checkpoint!r}; expected a file path or None")
    check_float(clf.prior_weight, "prior_weight", low=0.0, high=1.0)
    check_bool(clf.verbose, "verbose")


def initial_theta(clf, program, rng) -> np.ndarray:
    """The starting parameters: drawn from ``rng``, or the warm start ``clf.initial_program`` (checked)."""
    theta = program.param.init(rng, clf.init_scale)  # drawn even when replaced: same stream either way
    if clf.initial_program is None:
        return theta
    start = getattr(clf.initial_program, "theta_", clf.initial_program)
    try:
        start = np.asarray(start, dtype=np.float64)
    except (TypeError, ValueError):
        raise InvalidInputError(
            f"initial_program={type(clf.initial_program).__name__}; expected a parameter vector "
            f"({program.n_params},) or a fitted BARClassifier"
        ) from None
    if start.shape != (program.n_params,) or not np.all(np.isfinite(start)):
        raise InvalidInputError(
            f"initial_program has shape {start.shape}; expected ({program.n_params},) finite parameters "
            "from a program with the same input shape, program and parameterization"
        )
    with np.errstate(over="ignore", invalid="ignore"):
        finite = np.all(np.isfinite(program.frame(start[None])))
    if not finite:
        raise InvalidInputError(
            f"initial_program has parameters up to {np.abs(start).max():.3g}, which make the program NaN or "
            "infinite (float32 overflow); expected parameters of a trained program (a few units at most)"
        )
    return start.copy()


def check_surrogate(surrogate, input_shape):
    """``surrogate`` behind its own (uncapped) ledger, checked to match the model; None without one."""
    if surrogate is None:
        return None
    _, shape = check_model(surrogate, "surrogate")
    if shape != tuple(input_shape) or not has_gradients(surrogate):
        raise InvalidInputError(
            f"surrogate has input_shape={shape} and gradients={has_gradients(surrogate)}; expected "
            f"input_shape={tuple(input_shape)} and a log_proba_gradient method (e.g. bar_sdk.adapters.TorchModel)"
        )
    return MeteredModel(surrogate, QueryLedger())


def fit_estimator(clf: Any, guided: bool) -> GradientEstimator | None:
    """The gradient estimator ``clf``'s fit trains with: None for ``estimator="exact"``, the guided one where a
    surrogate (``guided``) steers a named estimator, else a copy of the named or given one."""
    if clf.estimator == "exact":
        return None
    if guided and isinstance(clf.estimator, str):
        return GuidedEstimator(clf.n_directions, clf.smoothing, clf.prior_weight)
    # a copy: an instance given as a parameter is never changed by fit, so fits do not share state
    return copy.deepcopy(make_estimator(clf.estimator, clf.n_directions, clf.smoothing))


@dataclass(frozen=True)
class FitCosts:
    """The queries of one fit: a step of ``batch`` samples at ``evaluations`` images each (``step_cost``), the
    label-mapping and readout passes, and the steps ``max_epochs`` allows (None: ``max_queries`` decides)."""

    batch: int
    evaluations: int
    step_cost: int
    mapping_cost: int
    readout_cost: int
    epochs: int | None
    total_steps: int | None


def fit_costs(clf: Any, n: int, estimator: GradientEstimator | None, n_params: int) -> FitCosts:
    """Price ``clf``'s fit of ``n`` samples with ``estimator`` (None: exact gradients) on ``n_params`` program
    parameters; refuse a ``max_queries`` below the two passes and one step. Fit and :func:`bar_sdk.plan.plan_bar`
    price alike."""
    batch = min(clf.batch_size, n)
    evaluations = 1 if estimator is None else estimator.evaluations(n_params)  # None: exact
    step_cost = batch * evaluations
    mapping_cost = 0 if clf.mapping == "random" else n
    readout_cost = n * clf.views if clf.readout == "logistic" else 0
    if clf.max_queries is not None and clf.max_queries < mapping_cost + step_cost + readout_cost:
        raise InvalidInputError(
            f"max_queries={clf.max_queries} is too small for one step: the label-mapping pass costs "
            f"{mapping_cost}, one step {step_cost} (batch_size={batch} x {evaluations} "
            f"evaluations) and the readout pass {readout_cost} (readout={clf.readout!r}, views={clf.views}); expected "
            f"max_queries >= {mapping_cost + step_cost + readout_cost}"
        )
    epochs = clf.max_epochs if clf.max_epochs is not None else (None if clf.max_queries else DEFAULT_EPOCHS)
    total_steps = None if epochs is None else epochs * -(-n // batch)
    return FitCosts(batch, evaluations, step_cost, mapping_cost, readout_cost, epochs, total_steps)


@dataclass(frozen=True)
class FitPlan(FitCosts):
    """The parts and prices of one fit: the costs (:class:`FitCosts`), the estimator (None for ``"exact"``),
    the optimizer and the surrogate (metered, or None)."""

    exact: bool
    surrogate: Any
    estimator: GradientEstimator | None
    optimizer: Optimizer


def plan_fit(clf: Any, program: Any, n: int, input_shape: tuple[int, int, int]) -> FitPlan:
    """Build and price ``clf``'s fit of ``n`` samples with ``program``; refuse a ``max_queries`` below one step."""
    exact = clf.estimator == "exact"
    surrogate = check_surrogate(clf.surrogate, input_shape)
    estimator = fit_estimator(clf, guided=surrogate is not None)
    if surrogate is not None and not hasattr(estimator, "set_prior"):
        raise InvalidInputError(
            f"estimator={clf.estimator!r} cannot use a surrogate's prior; expected a name "
            "or an estimator with set_prior (GuidedEstimator)"
        )
    optimizer = copy.deepcopy(make_optimizer(clf.optimizer, clf.learning_rate, clf.lr_decay, clf.weight_decay))
    costs = fit_costs(clf, n, estimator, program.n_params)
    if exact and not has_gradients(clf.model):
        raise InvalidInputError(
            f"estimator='exact' needs a model with gradients; model={type(clf.model).__name__} has no "
            "log_proba_gradient (use a zeroth-order estimator for black boxes)"
        )
    if not exact:
        check_quantization(
            clf.model, program, estimator, np.random.default_rng(clf.random_state), clf.init_scale, clf.smoothing
        )
    return FitPlan(exact=exact, surrogate=surrogate, estimator=estimator, optimizer=optimizer, **asdict(costs))


@dataclass
class FitRun:
    """One fit, built before any query: the layout and program on ``X``, the encoded ``classes`` (``k`` of
    them, ``per_class`` source labels each), the plan, the metered model, the train state (resumed from the
    checkpoint when there is one), the training step and the checkpoint's ``save``."""

    layout: TargetLayout
    program: Any
    classes: np.ndarray
    k: int
    per_class: int
    plan: FitPlan
    metered: MeteredModel
    state: TrainState
    step: BARStep
    save: Callable[..., Any]


def prepare_fit(clf: Any, X: Any, y: Any) -> FitRun:
    """``clf``'s fit on ``(X, y)``, built and checked once (the model, ``X``, ``y``, the budget, the checkpoint
    path) before any query; a checkpoint of this fit is resumed."""
    n_source, input_shape = check_model(clf.model)
    if is_label_only(clf.model):
        raise InvalidInputError(
            f"model={type(clf.model).__name__} answers labels only (label_only=True); expected a model "
            "that returns scores (reprogramming estimates gradients from score differences)"
        )
    X = as_input_array(X, "X")
    layout, targets = TargetLayout.fit_transform(
        X, input_shape, clf.target_size, clf.program == "full", type(clf).__name__
    )  # X is checked once, here
    program = clf._build_program(input_shape, layout)
    y, classes = encode_labels(y, len(targets))
    k = len(classes)
    per_class = clf.labels_per_class or max(1, min(n_source // k, 10))
    check_mapping_size(n_source, k, per_class)
    if clf.mapping == "logistic":  # before any query: the cross-fitted readout needs every class in each fit
        check_readout_folds(y, k)
    plan = plan_fit(clf, program, len(y), input_shape)
    if clf.checkpoint is not None:  # a path that cannot be written fails now, not after the paid mapping pass
        check_writable(clf.checkpoint)
    metered = MeteredModel(clf.model, QueryLedger(clf.max_queries))
    embedded = program.embed(targets)
    weights = L.balanced_weights(y, k)
    rng = np.random.default_rng(clf.random_state)

    state = TrainState(initial_theta(clf, program, rng), n_source, k)
    print_ = {"digest": clf._fingerprint(X, y), "data": data_record(X, y, classes)}

    def save(flight: Any = None) -> Any:
        return save_checkpoint(clf.checkpoint, print_, metered, plan.optimizer, plan.estimator, rng, state, flight)

    if clf.checkpoint is not None and os.path.exists(clf.checkpoint):
        state = load_checkpoint(
            clf.checkpoint, print_, metered, plan.optimizer, plan.estimator, rng, program.n_params, n_source
        )
    state.y = y
    step = BARStep(
        clf,
        metered,
        program,
        plan.estimator,
        plan.optimizer,
        embedded,
        y,
        weights,
        rng,
        plan.batch,
        plan.total_steps,
        plan.evaluations,
        save,
    )
    return FitRun(layout, program, classes, k, per_class, plan, metered, state, step, save)


def check_quantization(model, program, estimator, rng, init_scale: float, smoothing: float) -> None:
    """Warn (:class:`QuantizationWarning`) when the probes' pixel changes are below the model's quantisation step."""
    step = getattr(model, "quantization_step", None)
    if not step:
        return
    theta = program.param.init(rng, init_scale)
    points = estimator.ask(theta, rng)
    frames = (program.frame(points) + 1) * 0.5  # pixel values of the frame
    change = np.abs(frames[1:] - frames[:1]).max(axis=(1, 2, 3))
    if np.median(change) < step:
        warnings.warn(
            f"smoothing={smoothing} moves frame pixels by at most {np.median(change):.2g} (median), "
            f"below the model's quantization_step={step:.3g}: most perturbations vanish when the image "
            "is quantised to 8 bits. Raise smoothing.",
            QuantizationWarning,
            stacklevel=3,
        )
