"""The parts of a BARClassifier fit: the program factory, counted scoring, the training steps, the readout pass.

:func:`build_program` is public: the target layout and the program that a
set of BARClassifier settings builds on some data, for code that needs the
same program without fitting (transfer, distillation, planning). The rest is
what :meth:`BARClassifier.fit <bar_sdk.reprogram.BARClassifier.fit>` runs
inside :class:`bar_sdk.zo.loop.TrainLoop`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import numpy as np

from bar_sdk import losses as L
from bar_sdk.errors import NonFiniteProgramError, QueryBudgetExceeded
from bar_sdk.layout import TargetLayout
from bar_sdk.ledger import NonFiniteImagesError
from bar_sdk.mapping import CrossFittedReadout, LogisticReadout, frequency_mapping, random_mapping, source_frequencies
from bar_sdk.program import (
    FullFrameProgram,
    FullResolution,
    GridParameterization,
    LowRankParameterization,
    PadProgram,
    Parameterization,
)
from bar_sdk.train_state import TrainState, in_flight
from bar_sdk.views import combine_views, random_views, view_images
from bar_sdk.zo import zo_step
from bar_sdk.zo.loop import Callback, CheckpointEveryStep, ProgressBar, StepResult, TrainLoop

__all__ = [
    "build_program",
    "make_program",
    "score_programs",
    "score_views",
    "BARStep",
    "IterativeMapping",
    "readout_pass",
]

#: images per call when scoring (all programs of a call times the images of each)
SCORE_CHUNK = 4096


# ---------------------------------------------------------------------- the program
def make_program(
    input_shape,
    layout: TargetLayout,
    *,
    program: str = "pad",
    parameterization: str = "grid",
    grid_size: int = 16,
    rank: int = 2,
    program_strength: float = 0.5,
):
    """The program of these (already checked) settings on ``layout``."""
    param: Parameterization
    if parameterization == "grid":
        param = GridParameterization(grid_size)
    elif parameterization == "lowrank":
        param = LowRankParameterization(rank)
    else:
        param = FullResolution()
    if program == "full":
        return FullFrameProgram(input_shape, param, program_strength)
    return PadProgram(input_shape, layout.target_hw, param)


def build_program(
    X: Any,
    input_shape,
    *,
    program: str = "pad",
    parameterization: str = "grid",
    grid_size: int = 16,
    rank: int = 2,
    target_size: Any = None,
    program_strength: float = 0.5,
):
    """``(layout, program)``: the target layout fitted on ``X`` (checked) and the program built on it.

    The settings are :class:`~bar_sdk.reprogram.BARClassifier`'s of the same
    names (check them first, e.g. with ``BARClassifier(...).build_program(X)``,
    which does); a fitted classifier holds the same two objects as
    ``layout_`` and ``program_obj_``.
    """
    layout = TargetLayout.fit(X, input_shape, target_size, full_frame=program == "full")
    return layout, make_program(
        input_shape,
        layout,
        program=program,
        parameterization=parameterization,
        grid_size=grid_size,
        rank=rank,
        program_strength=program_strength,
    )


# ---------------------------------------------------------------------- counted scoring
@contextlib.contextmanager
def _program_images(thetas: np.ndarray) -> Iterator[None]:
    """Name a batch the ledger refused as non-finite for what it is: the program's images."""
    try:
        yield
    except NonFiniteImagesError:
        params = (
            f"parameters up to {np.abs(thetas).max():.3g}" if np.all(np.isfinite(thetas)) else "non-finite parameters"
        )
        raise NonFiniteProgramError(
            f"the program's images hold NaN or infinite values ({params}); nothing non-finite is sent to a model"
        ) from None


def _apply(program, thetas: np.ndarray, embedded: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore", invalid="ignore"):  # what overflows is refused, once, by the ledger's scan
        return program.apply(thetas, embedded)


def score_programs(metered, program, thetas, embedded, purpose: str, chunk: int = SCORE_CHUNK) -> np.ndarray:
    """Scores ``(len(thetas) * n, n_source)`` of every program on every embedded target, counted by ``metered``.

    The images of a program that turned NaN or infinite are refused by the
    ledger's one scan before they are counted or sent
    (:class:`~bar_sdk.errors.NonFiniteProgramError`).
    """
    thetas = np.atleast_2d(thetas)
    per_program = max(1, chunk // max(len(thetas), 1))
    outs = []
    for start in range(0, len(embedded), per_program):
        part = embedded[start : start + per_program]
        with _program_images(thetas):
            scores = metered.predict_proba(_apply(program, thetas, part), purpose=purpose)
        outs.append(scores.reshape(len(thetas), len(part), -1))
    return np.concatenate(outs, axis=1).reshape(-1, outs[0].shape[-1])


def score_views(metered, program, theta, embedded, purpose: str, views: int, chunk: int = SCORE_CHUNK) -> np.ndarray:
    """One score row per embedded target under the program ``theta``, each read from ``views`` views
    (:mod:`bar_sdk.views`, one query each) and combined; with one view, :func:`score_programs`.

    A call sends ``chunk // views`` targets' views, so a call's size is as :func:`score_programs` makes it for
    ``views`` programs (which is how :func:`bar_sdk.plan.plan_bar` prices it)."""
    if views == 1:
        return score_programs(metered, program, theta, embedded, purpose, chunk)
    per = max(1, chunk // views)
    outs = []
    for start in range(0, len(embedded), per):
        part = view_images(program, embedded[start : start + per], views)
        outs.append(combine_views(score_programs(metered, program, theta, part, purpose, chunk=len(part)), views))
    return np.concatenate(outs)


def target_proba(state: TrainState, scores: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
    """Target probabilities the loss sees: the cross-fitted readouts with ``mapping="logistic"`` (``rows``:
    the training rows of ``scores``), else the mapping."""
    if state.train_readout is not None:
        return state.train_readout.proba(scores, rows)
    assert state.mapping is not None  # the mapping pass runs before the first step
    return L.normalise(state.mapping.target_scores(scores))


# ---------------------------------------------------------------------- one training step
class BARStep:
    """One step of BAR's fit on ``state``: journal, draw the batch, step (zeroth-order or exact), advance.

    ``fit`` is the estimator (its ``loss``, ``gamma``, ``mapping``, ``max_queries``,
    ``checkpoint``, ``optimizer`` settings); :meth:`label_mapping` also sets
    ``guide``, the surrogate and its mapping matrix (None without one).
    """

    def __init__(
        self,
        fit,
        metered,
        program,
        estimator,
        optimizer,
        embedded,
        y,
        weights,
        rng,
        batch,
        total_steps,
        evaluations,
        save,
    ):
        self.fit, self.metered, self.program = fit, metered, program
        self.estimator, self.optimizer = estimator, optimizer
        self.guide: tuple[Any, np.ndarray] | None = None
        self.embedded, self.y, self.weights, self.rng = embedded, y, weights, rng
        self.batch, self.total_steps, self.evaluations, self.save = batch, total_steps, evaluations, save

    def label_mapping(self, state: TrainState, k: int, per_class: int, plan, surrogate) -> None:
        """The label mapping, once (a resumed state has it), and the surrogate's own mapping for the guide.

        ``plan``: the fit's prices (``mapping_cost``, ``step_cost``, ``readout_cost``).
        """
        fit, metered, y = self.fit, self.metered, self.y
        mapped_now = state.mapping is None  # a fresh fit, or a crash inside the label-mapping pass
        if mapped_now and fit.mapping == "random":
            state.mapping = random_mapping(metered.n_classes, k, per_class, self.rng, metered.labels)
        elif mapped_now:
            need = plan.mapping_cost + plan.step_cost + plan.readout_cost
            if not metered.ledger.can_afford(need):
                raise QueryBudgetExceeded(  # only after a crash: its pass in flight is counted as spent
                    need,
                    metered.ledger.queries,
                    fit.max_queries,
                    f"max_queries (the label-mapping pass in flight at a crash counted as spent; delete "
                    f"{str(fit.checkpoint)!r} to start over)",
                )
            with in_flight(fit.checkpoint, self.save, metered, plan.mapping_cost, "mapping"):
                scores = score_programs(metered, self.program, state.theta, self.embedded, "mapping")
            state.mapping = frequency_mapping(source_frequencies(scores, y, k), per_class, metered.labels)
            if fit.mapping == "logistic":  # the loss reads each row through a readout fitted without its fold
                state.train_readout = CrossFittedReadout.fit(scores, y, k)
                state.train_scores = scores.astype(np.float32)
        if surrogate is not None:
            # the surrogate's own mapping, from its own (free) predictions on the training data
            s_scores = score_programs(surrogate, self.program, state.theta, self.embedded, "mapping")
            s_per_class = max(1, min(surrogate.n_classes // k, 10))
            self.guide = (surrogate, frequency_mapping(source_frequencies(s_scores, y, k), s_per_class).matrix)
        if fit.checkpoint is not None and mapped_now:  # the mapping pass is paid once
            self.save()

    def train(self, state: TrainState, k: int, per_class: int, plan, callbacks: list) -> str:
        """Train ``state`` in a :class:`~bar_sdk.zo.loop.TrainLoop` of this step; return the stop reason.

        Callbacks, in order: the iterative mapping (``mapping="iterative"``), the
        user's ``callbacks``, the progress bar (``verbose``), the checkpoint. The
        readout pass (``readout="logistic"``) is the loop's finish, its images
        reserved from the first step on.
        """
        fit = self.fit
        hooks: list[Any] = [IterativeMapping(k, per_class, self.metered.labels)] if fit.mapping == "iterative" else []
        if fit.mapping == "logistic":
            hooks.append(CrossFittedRefit(self.y))
        hooks += callbacks
        ran: list[bool] = []
        if fit.verbose:
            hooks.append(
                ProgressBar(
                    "BAR fit",
                    by_queries=bool(fit.max_queries),
                    postfix=lambda loop: {"readout": "fitted"} if ran else {},
                )
            )
        if fit.checkpoint is not None:
            hooks.append(CheckpointEveryStep(self.save))
        loop = TrainLoop(
            self,
            self.metered.ledger,
            step_cost=plan.step_cost,
            reserve=plan.readout_cost,
            max_steps=plan.total_steps,
            callbacks=hooks,
            max_steps_reason=f"max_epochs={plan.epochs} reached",
            budget_reason=f"max_queries={fit.max_queries}: no room for another step",
        )

        def finish():
            if fit.readout == "logistic" and state.readout is None:
                ran.append(True)
                if not readout_pass(
                    self.metered,
                    self.program,
                    state,
                    self.embedded,
                    self.y,
                    k,
                    self.save,
                    fit.checkpoint,
                    fit.READOUT_CHUNK,
                    fit.views,
                ):
                    loop.stop_reason += (
                        "; the readout pass did not fit in what a crash left of max_queries "
                        "(its images in flight counted as spent): predictions use the label mapping"
                    )

        return loop.run(state, finish)

    def __call__(self, state: TrainState) -> StepResult:
        fit, y, batch = self.fit, self.y, self.batch
        with in_flight(
            fit.checkpoint, self.save, self.metered, min(batch, len(y) - state.pos) * self.evaluations, "train"
        ):
            if state.pos == 0 or state.order is None:
                state.order = self.rng.permutation(len(y))
            idx = state.order[state.pos : state.pos + batch]
            # images lost to a crash do not move the schedule: a resumed run trains as an uninterrupted one
            progress = (
                (self.metered.ledger.queries - state.lost) / fit.max_queries
                if fit.max_queries
                else state.step / self.total_steps
            )
            before = state.theta.copy()
            emb = self.embedded[idx]
            if fit.augment:  # one random view of each image, the same for every point of this step
                emb = random_views(self.program, emb, self.rng)
            if self.estimator is None:
                loss, acc, probs = self._exact(state, emb, y[idx], progress, idx)
            else:
                if self.guide is not None:
                    self.estimator.set_prior(
                        self._surrogate_gradient(self.optimizer.lookahead(state.theta), emb, y[idx])
                    )
                loss, acc, probs = self._zo(state, emb, y[idx], progress, idx)
            if not np.all(np.isfinite(state.theta)):
                state.theta = before  # the last finite program is the one kept
                raise NonFiniteProgramError(
                    f"the program parameters became NaN or infinite at step {state.step + 1} "
                    f"(optimizer={fit.optimizer!r}); fit stopped before sending such an image and kept "
                    f"the program of step {state.step}"
                )
        state.pos += batch
        epoch_end = state.pos >= len(y)
        if epoch_end:
            state.pos = 0
            state.epoch += 1
        return StepResult(loss, acc, probs=probs, y=y[idx], rows=idx, epoch_end=epoch_end)

    def _loss(self, p, yb):
        return L.LOSSES[self.fit.loss](p, yb, self.weights, self.fit.gamma)

    def _zo(self, state, emb, yb, progress, rows):
        seen = {}

        def objective(points):
            probs = score_programs(self.metered, self.program, points, emb, "train").reshape(len(points), len(yb), -1)
            p = target_proba(state, probs.reshape(-1, probs.shape[-1]), np.tile(rows, len(points))).reshape(
                len(points), len(yb), -1
            )
            per, _ = self._loss(p, yb)
            seen["probs"], seen["p"], seen["per"] = probs, p, per
            return per.mean(axis=1)

        state.theta, _, _ = zo_step(state.theta, objective, self.estimator, self.optimizer, self.rng, progress)
        # the centre's own reading when the estimator measured it, else the mean over the points
        if self.estimator.includes_center:
            probs, p, per = seen["probs"][0], seen["p"][0], seen["per"][0]
        else:
            probs, p, per = seen["probs"].mean(0), seen["p"].mean(0), seen["per"].mean(0)
        return float(per.mean()), float((p.argmax(1) == yb).mean()), probs

    def _exact(self, state, emb, yb, progress, rows):
        fit = self.fit
        images = _apply(self.program, state.theta[None], emb)
        matrix = state.mapping.matrix
        seen = {}

        def loss_fn(logp):
            probs = np.exp(logp.astype(np.float64))
            seen["probs"] = probs
            if state.train_readout is not None:
                return L.readout_loss_and_logp_gradient(
                    probs, state.train_readout, yb, self.weights, fit.loss, fit.gamma, rows
                )
            return L.loss_and_logp_gradient(probs, matrix, yb, self.weights, fit.loss, fit.gamma)

        with _program_images(state.theta[None]):
            loss, grad_x = self.metered.log_proba_gradient(images, loss_fn, purpose="train")
        grad = self.program.gradient(state.theta, emb, np.asarray(grad_x, dtype=np.float64))
        state.theta = self.optimizer.step(state.theta, grad, progress)
        p = target_proba(state, seen["probs"], rows)
        return float(loss), float((p.argmax(1) == yb).mean()), seen["probs"]

    def _surrogate_gradient(self, theta, emb, yb):
        assert self.guide is not None  # called only when label_mapping set a guide
        surrogate, matrix = self.guide
        images = self.program.apply(theta[None], emb)

        def loss_fn(logp):
            return L.loss_and_logp_gradient(
                np.exp(logp.astype(np.float64)), matrix, yb, self.weights, self.fit.loss, self.fit.gamma
            )

        _, grad_x = surrogate.log_proba_gradient(images, loss_fn, purpose="surrogate")
        return self.program.gradient(theta, emb, np.asarray(grad_x, dtype=np.float64))


def evidence(probs: np.ndarray, y: np.ndarray, k: int) -> np.ndarray:
    """Per-batch counts behind the iterative mapping: top source label per target class."""
    ev = np.zeros((probs.shape[1], k))
    voted = probs.max(1) > 0  # a row with no score above zero votes for no label
    np.add.at(ev, (probs.argmax(1)[voted], y[voted]), 1.0)
    return ev


class IterativeMapping(Callback):
    """``mapping="iterative"``: count each step's top source labels, re-estimate the mapping every epoch.

    Reads the scores the step already paid for (no extra queries).
    """

    def __init__(self, k: int, per_class: int, labels):
        self.k, self.per_class, self.labels = k, per_class, labels

    def on_step_end(self, loop, result):
        state = loop.state
        state.freq_sum[:, :] += evidence(result.info["probs"], result.info["y"], self.k)
        if result.info["epoch_end"]:
            share = state.freq_sum / np.maximum(state.freq_sum.sum(axis=0), 1.0)
            state.mapping = frequency_mapping(share, self.per_class, self.labels)
            state.freq_sum[:] = 0.0


class CrossFittedRefit(Callback):
    """``mapping="logistic"``: keep each training row's latest paid scores, refit the fold readouts every epoch.

    Reads the scores the step already paid for (no extra queries).
    """

    def __init__(self, y: np.ndarray):
        self.y = y

    def on_step_end(self, loop, result):
        state = loop.state
        state.train_scores[result.info["rows"]] = result.info["probs"]
        if result.info["epoch_end"]:
            state.train_readout = state.train_readout.refit(state.train_scores, self.y)


# ---------------------------------------------------------------------- after training
def readout_pass(
    metered, program, state: TrainState, embedded, y, k, save, checkpoint, chunk: int, views: int = 1
) -> bool:
    """Score the training data with the trained program (resuming a pass cut short), fit the readout.

    ``chunk`` images a call (each read from ``views`` views, ``chunk * views``
    queries); with a ``checkpoint`` the state is saved after each, so a crash
    re-sends at most one. False when the pass no longer fits in
    ``max_queries`` (a crash counted a part of it twice).
    """
    for start in range(len(state.readout_scores), len(embedded), chunk):
        part = embedded[start : start + chunk]
        cost = len(part) * views  # one call: the part's images in every view
        if not metered.ledger.can_afford(cost):
            return False
        with in_flight(checkpoint, save, metered, cost, "readout"):
            scores = score_views(metered, program, state.theta, part, "readout", views, chunk=cost)
        state.readout_scores = np.concatenate([state.readout_scores, scores])
        if checkpoint is not None:
            save()
    # C chosen by cross-validation on these scores (CPU only), or the one chosen when training through readouts
    C = state.train_readout.C if state.train_readout is not None else "auto"
    state.readout = LogisticReadout.fit(state.readout_scores, y, k, C=C)
    state.readout_scores = state.readout_scores[:0]
    return True
