"""Carlini-Wagner L2 (IEEE S&P 2017), white-box."""

from __future__ import annotations

from typing import Any, Generator

import numpy as np

from bar_sdk.attacks.base import Attack
from bar_sdk.attacks.driver import GradientRequest, RunContext, Sample
from bar_sdk.attacks.objectives import margin
from bar_sdk.contract import check_float, check_int
from bar_sdk.zo import Adam

__all__ = ["CarliniWagner", "next_const"]


def next_const(found: bool, const: float, lower: float, upper: float) -> tuple[float, float, float]:
    """Carlini-Wagner binary search on ``c``: ``(const, lower, upper)`` for the next round."""
    if found:
        upper = min(upper, const)
        return (lower + upper) / 2, lower, upper
    lower = max(lower, const)
    return (const * 10 if upper >= 1e10 else (lower + upper) / 2), lower, upper


class CarliniWagner(Attack):
    """Minimise ``||x - x0||_2^2 + c * max(margin, -confidence)`` in tanh space, for local models.

    The margin on log-probabilities equals the logit margin of the paper.
    Adam (the core's :class:`bar_sdk.zo.Adam`) runs ``steps`` gradient
    calls per binary-search step on ``c``; every gradient call is counted
    as one query per image and its forward pass checks success.

    Parameters
    ----------
    model : model with ``log_proba_gradient``
    eps : float, optional
        L2 distortion under which a sample counts as a success (and stops);
        ``None``: keep minimising until the steps run out.
    norm : {"l2"}
    initial_const : float
    binary_search_steps : int
    steps : int
        Adam steps per binary-search step.
    lr : float
    confidence : float
    max_queries : int, optional
        Per image (clean query included).
    max_total_queries, quantize, batch_size, random_state, verbose
        As in :class:`~bar_sdk.attacks.SquareAttack`; with ``quantize`` the
        best image of each binary-search step is rounded and queried once.
    """

    access = "gradient"
    mode = "minimal"
    norms = ("l2",)

    def __init__(
        self,
        model: Any,
        eps: float | None = None,
        norm: str = "l2",
        initial_const: float = 1.0,
        binary_search_steps: int = 5,
        steps: int = 100,
        lr: float = 0.01,
        confidence: float = 0.0,
        max_queries: int | None = None,
        max_total_queries: int | None = None,
        quantize: bool = False,
        batch_size: int | None = None,
        random_state: Any = None,
        verbose: bool = False,
    ) -> None:
        self.model = model
        self.eps = eps
        self.norm = norm
        self.initial_const = initial_const
        self.binary_search_steps = binary_search_steps
        self.steps = steps
        self.lr = lr
        self.confidence = confidence
        self.max_queries = max_queries
        self.max_total_queries = max_total_queries
        self.quantize = quantize
        self.batch_size = batch_size
        self.random_state = random_state
        self.verbose = verbose

    def _check_params(self, n: int, n_classes: int, input_shape: tuple[int, int, int]) -> None:
        super()._check_params(n, n_classes, input_shape)
        check_float(self.initial_const, "initial_const", low=0.0, low_open=True)
        check_int(self.binary_search_steps, "binary_search_steps", low=1)
        check_int(self.steps, "steps", low=1)
        check_float(self.lr, "lr", low=0.0, low_open=True)
        check_float(self.confidence, "confidence", low=0.0)

    def _attack_sample(self, s: Sample, ctx: RunContext) -> Generator[Any, Any, Any]:
        x0 = s.x0.astype(np.float64)
        w0 = np.arctanh(np.clip(2.0 * x0 - 1.0, -1 + 1e-6, 1 - 1e-6))
        kappa = float(self.confidence)
        lower, upper, const = 0.0, 1e10, float(self.initial_const)
        for _ in range(self.binary_search_steps):
            w = w0.copy().reshape(-1)
            opt = Adam(lr=self.lr)
            found, best, best_d = False, None, np.inf
            c = const

            def loss(logp: np.ndarray, c: float = c) -> tuple[Any, Any]:
                value, g = margin(logp, s.label, s.target, kappa)
                return c * value, c * g

            for t in range(self.steps):
                x = np.clip((np.tanh(w) + 1.0) / 2.0, 0.0, 1.0).reshape(x0.shape)
                logp, grad_f = yield GradientRequest(x.astype(np.float32)[None], loss)
                if margin(logp, s.label, s.target)[0][0] < 0:
                    found = True
                    d = float(np.sum((x - x0) ** 2))
                    if d < best_d:
                        best, best_d = x.copy(), d
                grad_x = 2.0 * (x - x0) + grad_f[0]
                grad_w = grad_x.reshape(-1) * (1.0 - np.tanh(w) ** 2) / 2.0
                w = opt.step(w, grad_w, t / self.steps)
                s.current = np.clip((np.tanh(w) + 1.0) / 2.0, 0.0, 1.0).reshape(x0.shape).astype(np.float32)
            if self.quantize and best is not None:
                yield ctx.threat.candidate(best.astype(np.float32), s.x0)[None]
            const, lower, upper = next_const(found, const, lower, upper)
