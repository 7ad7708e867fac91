"""NES / random-gradient-free PGD (Ilyas et al., ICML 2018; Nesterov & Spokoiny 2017).

The gradient of the loss is estimated from queries by one of the core's
zeroth-order estimators (:mod:`bar_sdk.zo`) and followed by one of the
core's optimizers, projected onto the threat model after every step: the
same ask/tell objects that train reprogramming programs.
"""

from __future__ import annotations

from typing import Any, Generator

import numpy as np

from bar_sdk.attacks.base import Attack
from bar_sdk.attacks.driver import RunContext, Sample
from bar_sdk.attacks.geometry import project
from bar_sdk.attacks.objectives import LOSSES, objective
from bar_sdk.attacks.zo_settings import build_estimator, build_optimizer, check_zo_params
from bar_sdk.contract import check_choice
from bar_sdk.zo import zo_ask, zo_tell

__all__ = ["NESAttack"]


class NESAttack(Attack):
    """Projected gradient descent on a zeroth-order gradient estimate.

    Every iteration asks the estimator for its probe points around the
    current perturbation, sends them (plus the current image itself when the
    estimator does not already include it, or when quantising) in the
    round's single model call, turns the losses into a gradient, takes an
    optimizer step and projects it onto the ``eps``-ball and [0, 1].

    Parameters
    ----------
    model : black box
    norm : {"linf", "l2"}
    eps : float
    max_queries : int
        Per image, clean query included. An iteration costs the
        estimator's evaluations plus at most one; an image stops when what
        it has left cannot pay for a whole iteration.
    estimator : str or GradientEstimator
        A name of :data:`bar_sdk.zo.ESTIMATORS`: ``"antithetic"`` (NES,
        default), ``"one_sided"`` (random gradient-free), ``"spsa"``,
        ``"coordinate"``; or an instance (copied per image).
    n_directions : int
        Directions per estimate (antithetic: 2 queries each).
    smoothing : float
        Root-mean-square change per pixel of a probe (the NES ``sigma``).
    optimizer : str or Optimizer, optional
        A name of :data:`bar_sdk.zo.OPTIMIZERS` or an instance; default
        ``"sign"`` (signed PGD) for Linf and normalised steps for L2.
    lr : float, optional
        Step size; default ``eps / 5``.
    lr_decay : float
        The learning rate decays to ``lr * lr_decay`` over the budget.
    loss : {"margin", "ce"}
    max_total_queries, quantize, batch_size, random_state, verbose
        As in :class:`~bar_sdk.attacks.SquareAttack`.
    """

    access = "score"
    mode = "bounded"

    def __init__(
        self,
        model: Any,
        norm: str = "linf",
        eps: float = 0.05,
        max_queries: int = 10000,
        estimator: Any = "antithetic",
        n_directions: int = 20,
        smoothing: float = 0.01,
        optimizer: Any = None,
        lr: float | None = None,
        lr_decay: float = 1.0,
        loss: str = "margin",
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
        self.loss = loss
        self.max_total_queries = max_total_queries
        self.quantize = quantize
        self.batch_size = batch_size
        self.random_state = random_state
        self.verbose = verbose

    def _check_params(self, n: int, n_classes: int, input_shape: tuple[int, int, int]) -> None:
        super()._check_params(n, n_classes, input_shape)
        check_zo_params(self)
        check_choice(self.loss, "loss", tuple(LOSSES))

    def _attack_sample(self, s: Sample, ctx: RunContext) -> Generator[Any, Any, Any]:
        threat, x0, shape = ctx.threat, s.x0, ctx.input_shape
        d = ctx.dim
        est = build_estimator(self.estimator, self.n_directions, self.smoothing, d)
        lr = self.lr if self.lr is not None else self._bound() / 5
        opt = build_optimizer(self.optimizer, self.norm, lr, self.lr_decay)
        extra_center = self.quantize or not est.includes_center
        theta = np.zeros(d)
        budget = max(float(s.max_queries or 1), 1.0)
        cost = est.evaluations(d) + int(extra_center)
        while True:
            if cost > s.remaining:  # stop before drawing probes it could not send (n_directions=10**9 ...)
                s.exhausted = True
                return
            points = zo_ask(theta, est, opt, s.rng)  # the shared step, split: the probes leave by yield
            probes = np.clip(x0 + points.reshape((-1,) + shape), 0.0, 1.0).astype(np.float32)
            if extra_center:
                probes = np.concatenate([threat.candidate(x0 + theta.reshape(shape), x0)[None], probes])
            scores = yield probes
            losses = objective(self.loss, scores, s.label, s.target)
            theta, _ = zo_tell(theta, losses[1:] if extra_center else losses, est, opt, s.queries / budget)
            x = project(x0 + theta.reshape(shape), x0, self.norm, self._bound())
            theta = (x - x0).reshape(-1).astype(np.float64)
            s.current = x
