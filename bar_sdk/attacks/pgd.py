"""Projected gradient descent (Madry et al., ICLR 2018), white-box."""

from __future__ import annotations

from typing import Any, Generator

import numpy as np

from bar_sdk.attacks.base import Attack
from bar_sdk.attacks.driver import GradientRequest, RunContext, Sample
from bar_sdk.attacks.geometry import project
from bar_sdk.attacks.objectives import LOSSES
from bar_sdk.contract import check_bool, check_choice, check_float, check_int

__all__ = ["PGD", "descent_direction"]


def descent_direction(grad: np.ndarray, norm: str) -> np.ndarray:
    """The steepest-descent unit step for ``norm``: ``-sign(g)`` (Linf) or ``-g / ||g||`` (L2)."""
    if norm == "linf":
        step: np.ndarray = -np.sign(grad)
        return step
    n = float(np.linalg.norm(grad))
    return -grad / n if n > 0 else np.zeros_like(grad)


class PGD(Attack):
    """Iterated gradient steps projected onto the ``eps``-ball, for local models.

    Needs a model with exact gradients (``log_proba_gradient``, e.g.
    ``bar_sdk.adapters.TorchModel``): an upper bound on what a black-box attack can
    do, or a surrogate for transfer attacks. Each step is one gradient call
    (counted as one query per image; its forward pass also checks success),
    and the final image is queried once.

    Parameters
    ----------
    model : model with ``log_proba_gradient``
    norm : {"linf", "l2"}
    eps : float
    steps : int
    step_size : float, optional
        Default ``2.5 * eps / steps``.
    random_start : bool
        Start from a uniform point of the ball.
    loss : {"ce", "margin"}
    max_queries : int, optional
        Per image (gradient calls + queries, clean query included).
    max_total_queries, quantize, batch_size, random_state, verbose
        As in :class:`~bar_sdk.attacks.SquareAttack`.
    """

    access = "gradient"
    mode = "bounded"

    def __init__(
        self,
        model: Any,
        norm: str = "linf",
        eps: float = 0.03,
        steps: int = 40,
        step_size: float | None = None,
        random_start: bool = True,
        loss: str = "ce",
        max_queries: int | None = None,
        max_total_queries: int | None = None,
        quantize: bool = False,
        batch_size: int | None = None,
        random_state: Any = None,
        verbose: bool = False,
    ) -> None:
        self.model = model
        self.norm = norm
        self.eps = eps
        self.steps = steps
        self.step_size = step_size
        self.random_start = random_start
        self.loss = loss
        self.max_queries = max_queries
        self.max_total_queries = max_total_queries
        self.quantize = quantize
        self.batch_size = batch_size
        self.random_state = random_state
        self.verbose = verbose

    def _check_params(self, n: int, n_classes: int, input_shape: tuple[int, int, int]) -> None:
        super()._check_params(n, n_classes, input_shape)
        check_int(self.steps, "steps", low=1)
        check_float(self.step_size, "step_size", low=0.0, low_open=True, allow_none=True)
        check_choice(self.loss, "loss", tuple(LOSSES))
        check_bool(self.random_start, "random_start")

    def _alpha(self, eps: float) -> float:
        return self.step_size if self.step_size is not None else 2.5 * eps / self.steps

    def _start(self, x0: np.ndarray, rng: np.random.Generator, eps: float) -> np.ndarray:
        if not self.random_start:
            start: np.ndarray = x0.copy()
            return start
        if self.norm == "linf":
            return project(x0 + rng.uniform(-eps, eps, size=x0.shape), x0, "linf", eps)
        u = rng.standard_normal(x0.shape)
        r = eps * rng.random() ** (1.0 / x0.size)
        return project(x0 + r * u / np.linalg.norm(u), x0, "l2", eps)

    def _attack_sample(self, s: Sample, ctx: RunContext) -> Generator[Any, Any, Any]:
        eps = self._bound()
        alpha = self._alpha(eps)
        loss_fn = LOSSES[self.loss]

        def loss(logp: np.ndarray) -> Any:
            return loss_fn(logp, s.label, s.target)

        x = self._start(s.x0, s.rng, eps)
        for _ in range(self.steps):
            _, grad = yield GradientRequest(x[None], loss)
            x = project(x + alpha * descent_direction(grad[0], self.norm), s.x0, self.norm, eps)
            s.current = x
        yield ctx.threat.candidate(x, s.x0)[None]
