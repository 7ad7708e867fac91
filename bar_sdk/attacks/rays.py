"""RayS: a ray-searching hard-label attack (Chen & Gu, KDD 2020)."""

from __future__ import annotations

from typing import Any, Generator

import numpy as np

from bar_sdk.attacks.base import Attack
from bar_sdk.attacks.driver import RunContext, Sample
from bar_sdk.contract import check_float

__all__ = ["RayS"]


class RayS(Attack):
    """Linf decision-based attack that searches sign directions, hierarchically.

    The perturbation is ``d * sign_vector``; RayS looks for the sign vector
    whose decision boundary is nearest. It flips blocks of signs, first the
    whole vector, then halves, quarters, ... and keeps a flip when the
    boundary along the new ray is nearer: one query checks the new ray at
    the current best distance, and only rays that pass are refined by binary
    search (tolerance ``tol``). Only the top class of each answer is used.

    Parameters
    ----------
    model : black box (label-only allowed)
    eps : float, optional
        Linf distortion under which a sample counts as a success (and stops);
        ``None``: keep shrinking until the budget ends.
    max_queries : int
        Per image, clean query included.
    norm : {"linf"}
    tol : float, optional
        Binary-search tolerance in Linf units; default ``1e-3 / sqrt(d)``
        (the official ``1e-3`` along a unit-L2 ray).
    max_total_queries, quantize, batch_size, random_state, verbose
        As in :class:`~bar_sdk.attacks.SquareAttack`.
    """

    access = "decision"
    mode = "minimal"
    norms = ("linf",)

    def __init__(
        self,
        model: Any,
        eps: float | None = None,
        max_queries: int = 5000,
        norm: str = "linf",
        tol: float | None = None,
        max_total_queries: int | None = None,
        quantize: bool = False,
        batch_size: int | None = None,
        random_state: Any = None,
        verbose: bool = False,
    ) -> None:
        self.model = model
        self.eps = eps
        self.max_queries = max_queries
        self.norm = norm
        self.tol = tol
        self.max_total_queries = max_total_queries
        self.quantize = quantize
        self.batch_size = batch_size
        self.random_state = random_state
        self.verbose = verbose

    def _check_params(self, n: int, n_classes: int, input_shape: tuple[int, int, int]) -> None:
        super()._check_params(n, n_classes, input_shape)
        check_float(self.tol, "tol", low=0.0, low_open=True, allow_none=True)

    def _attack_sample(self, s: Sample, ctx: RunContext) -> Generator[Any, Any, Any]:
        threat, x0, shape = ctx.threat, s.x0, ctx.input_shape
        dim = ctx.dim
        tol = self.tol if self.tol is not None else 1e-3 / np.sqrt(dim)

        def ray(sign: np.ndarray, d: float) -> np.ndarray:
            return threat.candidate(x0 + d * sign.reshape(shape), x0)

        def adversarial(image: np.ndarray) -> Generator[Any, Any, bool]:
            fooled: bool = s.is_adversarial((yield image[None]).argmax(axis=1))[0]
            return fooled

        sgn = np.ones(dim, dtype=np.float32)
        d_t = np.inf
        level, block = 0, 0
        while True:
            size = int(np.ceil(dim / 2**level))
            start, end = block * size, min(dim, (block + 1) * size)
            attempt = sgn.copy()
            attempt[start:end] *= -1.0
            # d = 1 already reaches a corner of the [0, 1] box: larger d changes nothing
            d_end = min(d_t, 1.0)
            if (yield from adversarial(ray(attempt, d_end))):
                d_start = 0.0
                while d_end - d_start > tol:
                    mid = (d_start + d_end) / 2
                    if (yield from adversarial(ray(attempt, mid))):
                        d_end = mid
                    else:
                        d_start = mid
                if d_end < d_t:
                    d_t, sgn = d_end, attempt
                    s.current = ray(sgn, d_t)
            block += 1
            if block == 2**level or end == dim:
                level += 1
                block = 0
