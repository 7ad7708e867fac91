"""A black-box universal adversarial perturbation, trained like a reprogramming program.

One perturbation ``delta`` fools the model on many images at once. It is
trained with the core's zeroth-order machinery: the training loop of
:mod:`bar_sdk.zo.loop` (budget checks before each step, stop reasons)
around :func:`bar_sdk.zo.zo_step` with an estimator and an optimizer of
:mod:`bar_sdk.zo`, as BARClassifier is. Each step
evaluates the estimator's probe perturbations on a minibatch of images in
one model call, exactly as BAR evaluates candidate programs.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Generator
from typing import Any

import numpy as np

from bar_sdk.attacks.base import Attack
from bar_sdk.attacks.driver import RunContext, Sample
from bar_sdk.attacks.objectives import LOSSES, log_scores
from bar_sdk.attacks.resize import Upsampler
from bar_sdk.attacks.result import AttackResult
from bar_sdk.attacks.zo_settings import build_estimator, build_optimizer, check_zo_params
from bar_sdk.contract import check_choice, check_float, check_int
from bar_sdk.errors import InvalidInputError
from bar_sdk.ledger import MeteredModel, QueryLedger
from bar_sdk.zo import zo_step
from bar_sdk.zo.loop import StepResult, TrainLoop

__all__ = ["UniversalPerturbation"]

logger = logging.getLogger(__name__)


class UniversalPerturbation(Attack):
    """Learn one perturbation for all images from scores only.

    ``fit(x, y)`` trains ``perturbation_`` within the ``eps``-ball on a
    budget of ``max_queries`` queries **in total** (not per image): each
    step costs ``estimator evaluations * batch_images`` queries. ``run(x,
    y)`` applies it (fitting first on the same images if not fitted yet) and
    checks each image with one query after its clean query: two queries per
    image, plus the training queries in ``total_queries``. When ``run``
    fits, it trains within ``max_total_queries`` less those two queries per
    image. ``check``, ``fit`` and ``run`` refuse before any query a budget
    that cannot pay for one training step (when they train) and, for
    ``run``, the evaluation.

    Parameters
    ----------
    model : black box
    norm : {"linf", "l2"}
    eps : float
    max_queries : int
        Training budget, in total.
    estimator : str or GradientEstimator
        From :data:`bar_sdk.zo.ESTIMATORS` (default ``"antithetic"``).
    n_directions : int
    smoothing : float
        Root-mean-square change per grid value of a probe.
    optimizer : str or Optimizer, optional
        From :data:`bar_sdk.zo.OPTIMIZERS`; default ``"sign"`` (Linf) or
        normalised steps (L2).
    lr : float, optional
        Default ``eps / 10``.
    lr_decay : float
    batch_images : int
        Images per training step.
    resolution : int, optional
        Side of the grid the perturbation is learned on, upsampled
        bilinearly (attack-space reduction); default full resolution.
    loss : {"margin", "ce"}
    confidence : float
        Margin below which an image stops contributing (``kappa``).
    max_total_queries, quantize, batch_size, random_state, verbose
        As in :class:`~bar_sdk.attacks.SquareAttack`.

    Attributes
    ----------
    perturbation_ : ndarray (C, H, W)
    fit_queries_ : int
    history_ : list of float
        Mean training loss at each step.

    Training stops early, keeping the last finite perturbation, if a step
    makes it NaN or infinite (nothing non-finite is sent).
    """

    access = "score"
    mode = "bounded"
    per_image_budget = False  # max_queries is the training budget, in total
    _fitting = False  # True while fit() validates: no evaluation to keep queries for

    def __init__(
        self,
        model: Any,
        norm: str = "linf",
        eps: float = 0.05,
        max_queries: int = 20000,
        estimator: Any = "antithetic",
        n_directions: int = 10,
        smoothing: float = 0.01,
        optimizer: Any = None,
        lr: float | None = None,
        lr_decay: float = 1.0,
        batch_images: int = 32,
        resolution: int | None = None,
        loss: str = "margin",
        confidence: float = 5.0,
        max_total_queries: int | None = None,
        quantize: bool = False,
        batch_size: int | None = None,
        random_state: Any = None,
        verbose: bool = False,
    ) -> None:
        self.model = model
        self.norm = norm
        self.eps = eps
        self.max_queries = max_queries
        self.estimator = estimator
        self.n_directions = n_directions
        self.smoothing = smoothing
        self.optimizer = optimizer
        self.lr = lr
        self.lr_decay = lr_decay
        self.batch_images = batch_images
        self.resolution = resolution
        self.loss = loss
        self.confidence = confidence
        self.max_total_queries = max_total_queries
        self.quantize = quantize
        self.batch_size = batch_size
        self.random_state = random_state
        self.verbose = verbose

    def _check_params(self, n: int, n_classes: int, input_shape: tuple[int, int, int]) -> None:
        super()._check_params(n, n_classes, input_shape)
        check_zo_params(self)
        check_int(self.batch_images, "batch_images", low=1)
        check_int(self.resolution, "resolution", low=1, high=min(input_shape[1:]), allow_none=True)
        check_choice(self.loss, "loss", tuple(LOSSES))
        check_float(self.confidence, "confidence", low=0.0)
        self._check_budget(n, input_shape)

    def _check_budget(self, n: int, input_shape: tuple[int, int, int]) -> None:
        """Refuse, before any query, a budget that cannot pay for what the call will spend.

        ``fit`` needs one training step within ``max_queries`` and
        ``max_total_queries``; ``run`` also keeps two queries per image for
        the evaluation (its clean query and one check), and trains only when
        not fitted yet.
        """
        train = self._fitting or not hasattr(self, "perturbation_")
        reserve = 0 if self._fitting else 2 * n
        per_step, why = 0, []
        if train:
            up, est, _ = self._parts(input_shape)
            evaluations, b = est.evaluations(up.size), min(int(self.batch_images), n)
            per_step = evaluations * b
            why.append(f"one training step costs {per_step} queries ({evaluations} evaluations x {b} images)")
        cap: int | None
        name, cap = "max_queries", (check_int(self.max_queries, "max_queries", low=1) if train else None)
        total = self.max_total_queries
        if total is not None and (cap is None or total - reserve < cap):
            name, cap = "max_total_queries", int(total) - reserve
            if reserve:
                why.append(f"the evaluation keeps {reserve} (two per image)")
        if cap is not None and per_step > cap:
            need = per_step + (reserve if name == "max_total_queries" else 0)
            lower = ", or lower batch_images/n_directions" if train else ""
            raise InvalidInputError(
                f"{name}={getattr(self, name)}; {' and '.join(why)}: expected at least {need}{lower}"
            )

    def _parts(self, shape: tuple[int, int, int]) -> tuple[Upsampler, Any, Any]:
        c, h, w = shape
        r = self.resolution or h
        grid = (c, r, max(1, min(w, round(w * r / h)))) if r < h else shape
        up = Upsampler(grid, shape)
        est = build_estimator(self.estimator, self.n_directions, self.smoothing, up.size)
        lr = self.lr if self.lr is not None else self._bound() / 10
        return up, est, build_optimizer(self.optimizer, self.norm, lr, self.lr_decay)

    def _constrain(self, theta: np.ndarray, up: Upsampler) -> np.ndarray:
        """Keep ``up(theta)`` inside the ball (bilinear weights are convex, so Linf clipping suffices)."""
        eps = self._bound()
        if self.norm == "linf":
            clipped: np.ndarray = np.clip(theta, -eps, eps)
            return clipped
        n = float(np.linalg.norm(up(theta)))
        return theta if n <= eps else theta * (eps / n)

    def fit(self, x: Any, y: Any, target: Any = None) -> "UniversalPerturbation":
        """Train ``perturbation_`` on ``x`` (true labels ``y``, optional ``target`` classes)."""
        self._fitting = True
        try:
            x, y, target, ctx = self._validate(x, y, target)
        finally:
            self._fitting = False
        self._fit(x, y, target, ctx)
        return self

    def _fit(self, x: np.ndarray, y: np.ndarray, target: np.ndarray | None, ctx: RunContext, reserve: int = 0) -> None:
        """Train within ``max_queries`` and ``max_total_queries`` less ``reserve`` (checked by ``_check_budget``)."""
        shape = ctx.input_shape
        up, est, opt = self._parts(shape)
        rng = np.random.default_rng(self.random_state)
        b = min(int(self.batch_images), len(x))
        per_step = est.evaluations(up.size) * b
        cap = check_int(self.max_queries, "max_queries", low=1)  # checked by _validate already
        if self.max_total_queries is not None:
            cap = min(cap, int(self.max_total_queries) - reserve)
        metered = MeteredModel(self.model, QueryLedger(cap), self.batch_size)
        loss_fn, kappa = LOSSES[self.loss], float(self.confidence)
        steps = int(metered.ledger.remaining // per_step)
        state = _State(np.zeros(up.size))

        def step(state: _State) -> StepResult:
            idx = rng.choice(len(x), size=b, replace=False)
            xb, yb = x[idx], y[idx]
            tb = None if target is None else target[idx]

            def objective(points: np.ndarray) -> np.ndarray:
                deltas = up(points)  # (m, C, H, W)
                images = np.clip(xb[None] + deltas[:, None], 0.0, 1.0).astype(np.float32)
                scores = metered.predict_proba(images.reshape((-1,) + shape), purpose="train")
                m = len(points)
                losses = loss_fn(log_scores(scores), np.tile(yb, m), None if tb is None else np.tile(tb, m), kappa)[0]
                mean_losses: np.ndarray = losses.reshape(m, b).mean(axis=1)
                return mean_losses

            new, _, losses = zo_step(state.theta, objective, est, opt, rng, state.step / max(steps, 1))
            new = self._constrain(new, up)
            if not np.all(np.isfinite(new)):  # never sent: training stops with the last finite perturbation
                logger.warning(
                    "UniversalPerturbation: the perturbation became NaN or infinite at step %d; "
                    "training stopped, the last finite one kept",
                    state.step + 1,
                )
                return StepResult(float(np.mean(losses)), stop="the perturbation became NaN or infinite")
            state.theta = new
            return StepResult(float(np.mean(losses)))

        TrainLoop(step, metered.ledger, step_cost=per_step, max_steps=steps).run(state)
        self.perturbation_ = up(state.theta).astype(np.float32)
        self.fit_queries_ = int(metered.ledger.queries)
        self.history_ = state.history["loss"]

    # no first_index: a universal perturbation is one run over the whole set, never a chunk of one
    def run(self, x: Any, y: Any, target: Any = None) -> AttackResult:  # type: ignore[override]
        """Apply ``perturbation_`` to every image (fitting it on ``x`` first when not fitted)."""
        start = time.perf_counter()
        x, y, target, ctx = self._validate(x, y, target)
        shared = 0
        if not hasattr(self, "perturbation_"):
            self._fit(x, y, target, ctx, reserve=2 * len(x))  # leave the evaluation its two queries per image
            shared = self.fit_queries_
        if self.perturbation_.shape != ctx.input_shape:
            raise InvalidInputError(
                f"perturbation_ has shape {self.perturbation_.shape}; expected "
                f"{ctx.input_shape} (it was fitted for another model)"
            )
        eval_cap = None if self.max_total_queries is None else self.max_total_queries - shared
        ctx = RunContext(ctx.threat, ctx.n_classes, ctx.input_shape, None)
        metered = MeteredModel(self.model, QueryLedger(eval_cap), self.batch_size)
        extra = {"perturbation": self.perturbation_, "fit_queries": self.fit_queries_, "history": list(self.history_)}
        return self._execute(metered, x, y, target, ctx, start, shared_queries=shared, extra=extra)

    def _attack_sample(self, s: Sample, ctx: RunContext) -> Generator[Any, Any, Any]:
        yield ctx.threat.candidate(s.x0 + self.perturbation_, s.x0)[None]


class _State:
    """The universal perturbation's training state for :class:`~bar_sdk.zo.loop.TrainLoop`."""

    def __init__(self, theta: np.ndarray) -> None:
        self.theta, self.step, self.done = theta, 0, False
        self.history: dict[str, list[Any]] = {"step": [], "queries": [], "loss": [], "accuracy": []}
