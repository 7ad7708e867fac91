"""Teach a local surrogate to answer like the black box, on the images BAR will send.

A surrogate trained on other data (a digits classifier, say) knows nothing
of the black box's labels, so a program trained on it as it stands moves the
black box at random. :func:`distill_surrogate` spends a small, counted
number of queries on framed training images, each frame a random program of
the kind BAR trains, and fine-tunes a copy of the surrogate to match the
black box's scores on them (knowledge distillation: Kullback-Leibler
divergence from the black box's distribution). A program trained white-box
on the copy (free) is then a warm start for BAR on the black box; the
distillation's queries are part of what that warm start costs.

The surrogate must be a trainable torch model such as
:class:`bar_sdk.adapters.TorchModel`: its ``transfer_trainer()`` does the
training (torch lives in the adapters; this module is NumPy only).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from bar_sdk.contract import check_float, check_int, check_model
from bar_sdk.errors import InvalidInputError
from bar_sdk.ledger import MeteredModel, QueryLedger
from bar_sdk.reprogram import BARClassifier
from bar_sdk.transfer.local import trainer_of
from bar_sdk.transfer.preflight import StandIn, check_fit

__all__ = ["DistilledProgram", "DistilledSurrogate", "distill_surrogate", "distilled_program"]

#: BARClassifier parameters that decide the images BAR sends (the frames to distil on)
_PROGRAM_PARAMS = ("program", "parameterization", "grid_size", "rank", "target_size", "program_strength")
#: BARClassifier parameters that :func:`distilled_program` and :func:`warm_start_study` set themselves,
#: refused in ``bar_params`` before any query
_OWN = ("model", "max_queries", "max_epochs", "random_state", "initial_program", "surrogate", "estimator", "checkpoint")


@dataclass(frozen=True)
class DistilledSurrogate:
    """A surrogate fine-tuned on the black box's answers.

    Attributes
    ----------
    model : bar_sdk.adapters.TorchModel
        The fine-tuned copy (the surrogate given is left as it was), with the
        black box's ``n_classes`` and ``labels``.
    queries : int
        Images sent to the black box (every one counted, held-out ones too).
    n_train, n_holdout : int
        Images trained on, and held out to measure fidelity.
    agreement : float or None
        Share of held-out images on which the copy's top class is the black
        box's (None without a hold-out).
    agreement_before : float or None
        The same for the surrogate before fine-tuning (chance level when its
        head was replaced).
    kl : float or None
        Mean KL divergence, black box to copy, on the held-out images:
        ``KL(black box || copy)`` per image.
    seconds : float
        Wall time, queries and training together.
    kl_before : float or None
        ``kl`` for the surrogate before fine-tuning (with its new head, when
        the head was replaced).
    """

    model: Any
    queries: int
    n_train: int
    n_holdout: int
    agreement: float | None
    agreement_before: float | None
    kl: float | None
    seconds: float
    kl_before: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            k: getattr(self, k)
            for k in ("queries", "n_train", "n_holdout", "agreement", "agreement_before", "kl", "kl_before", "seconds")
        }


def distill_surrogate(
    model: Any,
    surrogate: Any,
    X: Any,
    *,
    max_queries: int = 4000,
    bar_params: Mapping[str, Any] | None = None,
    program_scale: float = 1.0,
    images_per_program: int = 10,
    epochs: int = 40,
    batch_size: int = 64,
    learning_rate: float = 1e-3,
    holdout: float = 0.1,
    center: Any = None,
    random_state: Any = None,
) -> DistilledSurrogate:
    """Fine-tune a copy of ``surrogate`` to match ``model``'s scores on framed images of ``X``.

    Parameters
    ----------
    model : black box
        The model you pay to query; exactly ``max_queries`` images are sent.
    surrogate : bar_sdk.adapters.TorchModel (or any model with a torch ``module`` and ``torch_log_proba``)
        Same ``input_shape`` as ``model``. When its number of classes differs
        from the black box's, its last ``torch.nn.Linear`` layer is replaced
        by a new one with the black box's.
    X : array
        The target task's training inputs, as for :meth:`BARClassifier.fit`
        (labels are not needed).
    max_queries : int, default 4000
        Images sent to ``model``.
    bar_params : mapping, optional
        The :class:`BARClassifier` program settings the warm start will use
        (``program``, ``parameterization``, ``grid_size``, ...), so the frames
        distilled on are the ones BAR sends.
    program_scale : float, default 1.0
        Standard deviation of the random program parameters (before tanh).
    center : array, optional
        Draw the random programs around these parameters (a program trained
        on an earlier copy, for a second round that teaches the copy the
        black box's answers where the program actually goes) instead of
        around zero.
    images_per_program : int, default 10
        Training images shown in each random frame.
    epochs, batch_size, learning_rate : training of the copy (Adam)
    holdout : float, default 0.1
        Share of the random programs (and their images) kept out of training
        to measure the copy's fidelity, in [0, 0.5].
    random_state : int, optional

    Returns
    -------
    DistilledSurrogate
    """
    n_classes, shape = check_model(model)
    _, s_shape = check_model(surrogate, "surrogate")
    trainer = trainer_of(surrogate)
    if trainer is None:
        raise InvalidInputError(
            f"surrogate={type(surrogate).__name__}; expected a trainable torch model with "
            "`transfer_trainer()` (e.g. bar_sdk.adapters.TorchModel)"
        )
    if s_shape != shape:
        raise InvalidInputError(f"surrogate has input_shape={s_shape}; expected {shape}, the model's")
    max_queries = check_int(max_queries, "max_queries", low=20)
    program_scale = check_float(program_scale, "program_scale", low=0.0, low_open=True)
    per = check_int(images_per_program, "images_per_program", low=1)
    epochs = check_int(epochs, "epochs", low=1)
    batch_size = check_int(batch_size, "batch_size", low=1)
    learning_rate = check_float(learning_rate, "learning_rate", low=0.0, low_open=True)
    holdout = check_float(holdout, "holdout", low=0.0, high=0.5)
    params = dict(bar_params or {})
    unknown = sorted(set(params) - set(BARClassifier(None).get_params()))
    if unknown:
        raise InvalidInputError(f"bar_params has {unknown}; expected BARClassifier parameters")

    started = time.perf_counter()
    rng = np.random.default_rng(random_state)
    shaper = BARClassifier(model, **{k: v for k, v in params.items() if k in _PROGRAM_PARAMS})
    shaper._validate_params()
    layout, program = shaper._layout_and_program(X, shape)
    embedded = program.embed(layout.transform(X))

    # random programs, each in front of a random handful of training images
    n_programs = -(-max_queries // per)
    thetas = rng.normal(0.0, program_scale, (n_programs, program.n_params))
    if center is not None:
        center = np.asarray(center, dtype=np.float64).ravel()
        if center.shape != (program.n_params,) or not np.all(np.isfinite(center)):
            raise InvalidInputError(
                f"center has shape {center.shape}; expected ({program.n_params},) finite "
                "program parameters for these bar_params"
            )
        thetas += center
    sizes = np.full(n_programs, per)
    sizes[-1] = max_queries - per * (n_programs - 1)
    images = np.concatenate(
        [
            program.apply(thetas[j : j + 1], embedded[rng.integers(0, len(embedded), sizes[j])])
            for j in range(n_programs)
        ]
    ).astype(np.float32, copy=False)
    owner = np.repeat(np.arange(n_programs), sizes)
    metered = MeteredModel(model, QueryLedger(max_queries), batch_size=500)
    scores = metered.predict_proba(images, purpose="distill")
    targets = scores / scores.sum(1, keepdims=True)

    n_hold = int(round(holdout * n_programs)) if n_programs > 1 else 0
    held = owner >= n_programs - n_hold
    student, fidelity = trainer.distil(
        images, targets, held, n_classes, epochs=epochs, batch_size=batch_size, learning_rate=learning_rate, rng=rng
    )
    student.labels = getattr(model, "labels", None)
    return DistilledSurrogate(
        model=student,
        queries=metered.ledger.queries,
        n_train=int((~held).sum()),
        n_holdout=int(held.sum()),
        seconds=time.perf_counter() - started,
        **fidelity,
    )


@dataclass(frozen=True)
class DistilledProgram:
    """A warm-start program for BAR from a surrogate taught the black box's answers.

    Attributes
    ----------
    theta : ndarray
        Program parameters: pass as ``BARClassifier(initial_program=theta)``
        with the same program settings.
    queries : int
        Black-box images spent (all rounds); part of what the warm start costs.
    surrogate : bar_sdk.adapters.TorchModel
        The last fine-tuned copy.
    classifier : BARClassifier
        The program on that copy, fitted white-box (predicts through the
        copy, free).
    rounds : tuple of DistilledSurrogate
        One per round, with its fidelity figures.
    gradient_calls : int
        Free calls to the copies while training the program.
    """

    theta: np.ndarray
    queries: int
    surrogate: Any
    classifier: Any
    rounds: tuple[Any, ...]
    gradient_calls: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "queries": self.queries,
            "gradient_calls": self.gradient_calls,
            "rounds": [r.to_dict() for r in self.rounds],
        }


def distilled_program(
    model: Any,
    surrogate: Any,
    X: Any,
    y: Any,
    *,
    max_queries: int = 4000,
    rounds: int = 2,
    local_scale: float = 0.5,
    surrogate_epochs: int = 10,
    bar_params: Mapping[str, Any] | None = None,
    distill_params: Mapping[str, Any] | None = None,
    random_state: Any = None,
) -> DistilledProgram:
    """Train a program on a copy of ``surrogate`` distilled from ``model``, in rounds.

    Round one distils on random programs around zero and trains a program
    white-box on the copy. A program so trained leaves the frames the copy
    was taught on (there the copy may agree with the black box on well under
    half the images), so each later round spends its share of the queries on
    programs drawn around the current one (``local_scale``), fine-tunes the
    copy further and trains on from the current program.

    Parameters
    ----------
    model : black box
        Receives exactly ``max_queries`` images, split evenly over the rounds.
    surrogate : bar_sdk.adapters.TorchModel
        As for :func:`distill_surrogate`; never modified.
    X, y : target training data
        As for :meth:`BARClassifier.fit`.
    max_queries : int, default 4000
    rounds : int, default 2
    local_scale : float, default 0.5
        Spread of the programs around the current one in rounds after the first.
    surrogate_epochs : int, default 10
        Epochs of white-box training on each copy.
    bar_params : mapping, optional
        The :class:`BARClassifier` settings the warm start will use.
    distill_params : mapping, optional
        Other :func:`distill_surrogate` arguments (``epochs``, ``program_scale``, ...).
    random_state : int, optional

    Returns
    -------
    DistilledProgram

    Every argument (``y`` and ``bar_params`` too) is checked before the
    first query.
    """
    max_queries = check_int(max_queries, "max_queries", low=20)
    rounds = check_int(rounds, "rounds", low=1)
    if max_queries // rounds < 20:
        raise InvalidInputError(
            f"max_queries={max_queries} over rounds={rounds} leaves under 20 images a round; "
            "expected at least 20 per round"
        )
    local_scale = check_float(local_scale, "local_scale", low=0.0, low_open=True)
    check_int(surrogate_epochs, "surrogate_epochs", low=1)
    params = dict(bar_params or {})
    extra = dict(distill_params or {})
    clash = sorted(set(extra) & {"max_queries", "bar_params", "center", "random_state"})
    if clash:
        raise InvalidInputError(f"distill_params sets {clash}; expected none of them (distilled_program sets them)")
    own = sorted(set(params) & set(_OWN))
    if own:
        raise InvalidInputError(
            f"bar_params sets {own}; expected none of {list(_OWN)} (program and mapping settings only)"
        )
    # the white-box fit on each copy (the black box's classes, the surrogate's input), with y and bar_params,
    # is checked now: not after a round of distillation has spent its share of the queries
    n_classes, _ = check_model(model)
    _, s_shape = check_model(surrogate, "surrogate")
    copy_contract = StandIn(n_classes, s_shape, getattr(model, "labels", None), gradients=True)
    check_fit(BARClassifier(copy_contract, estimator="exact", max_epochs=surrogate_epochs, **params), X, y)
    rng = np.random.default_rng(random_state)
    shares = [max_queries // rounds + (1 if r < max_queries % rounds else 0) for r in range(rounds)]
    copy_, theta, done, calls = surrogate, None, [], 0
    for share in shares:
        kw = dict(extra)
        if theta is not None:
            kw.update(center=theta, program_scale=local_scale)
        step = distill_surrogate(
            model, copy_, X, max_queries=share, bar_params=params, random_state=int(rng.integers(2**62)), **kw
        )
        local = BARClassifier(
            step.model,
            estimator="exact",
            max_epochs=surrogate_epochs,
            random_state=int(rng.integers(2**62)),
            initial_program=theta,
            **params,
        ).fit(X, y)
        theta, copy_ = local.theta_, step.model
        calls += local.queries_
        done.append(step)
    assert theta is not None  # rounds >= 1 (checked), and every round sets it
    return DistilledProgram(
        theta=theta,
        queries=sum(s.queries for s in done),
        surrogate=copy_,
        classifier=local,
        rounds=tuple(done),
        gradient_calls=calls,
    )
