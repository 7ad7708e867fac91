"""SimBA: Simple Black-box Attack (Guo, Gardner, You, Wilson, Weinberger, ICML 2019)."""

from __future__ import annotations

from typing import Any, Generator

import numpy as np

from bar_sdk.attacks.base import Attack
from bar_sdk.attacks.driver import RunContext, Sample
from bar_sdk.attacks.objectives import objective
from bar_sdk.contract import check_choice, check_float, check_int

__all__ = ["SimBA"]


def _dct_matrix(n: int) -> np.ndarray:
    """Columns are the orthonormal 1-D DCT-II basis vectors (inverse DCT of unit vectors)."""
    from scipy.fft import idct

    return idct(np.eye(n), norm="ortho", axis=0)


def _low_frequency_order(c: int, h: int, w: int, freq_dims: int, stride: int, rng: np.random.Generator) -> np.ndarray:
    """Flat indices ``(c, u, v)``: the ``freq_dims`` square first, then L-shaped bands of width ``stride``.

    Random order inside each band, like the official ``block_order``.
    """
    u, v = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    band = np.where((u < freq_dims) & (v < freq_dims), 0, 1 + (np.maximum(u, v) - freq_dims) // stride)
    band = np.broadcast_to(band, (c, h, w)).reshape(-1)
    return np.lexsort((rng.random(band.size), band))


class SimBA(Attack):
    """Greedy search along orthonormal directions (pixels or low-frequency DCT).

    Each iteration takes the next direction ``q`` of a random (DCT:
    low-frequency first) order and tries ``x - step * q``; if the loss
    drops the step is kept, otherwise ``x + step * q`` is tried. One or two queries per
    iteration; the score of the clean query starts the search. Steps are
    projected into the ``eps``-ball, and a trial that the projection leaves
    unchanged is skipped without a query.

    Parameters
    ----------
    model : black box
    basis : {"dct", "pixel"}
        SimBA-DCT or SimBA (pixel).
    norm : {"l2", "linf"}
    eps : float
        Radius of the threat model.
    max_queries : int
        Per image, clean query included.
    step : float
        Step along each direction (the paper's epsilon, 0.2).
    loss : {"margin", "prob"}
        ``"prob"``: the paper's probability of the true class (targeted:
        minus the target's). ``"margin"`` (default): the log-probability
        margin, which keeps ordering trials when a confident model's
        probability rounds to exactly 1.0 (where the paper's loss stalls).
    freq_dims : int, optional
        Side of the low-frequency square tried first (DCT); default ``H // 4``.
    stride : int, optional
        Width of each further frequency band (DCT); default ``max(1, H // 8)``.
    max_total_queries, quantize, batch_size, random_state, verbose
        As in :class:`~bar_sdk.attacks.SquareAttack`.
    """

    access = "score"
    mode = "bounded"

    def __init__(
        self,
        model: Any,
        basis: str = "dct",
        norm: str = "l2",
        eps: float = 2.0,
        max_queries: int = 1000,
        step: float = 0.2,
        loss: str = "margin",
        freq_dims: int | None = None,
        stride: int | None = None,
        max_total_queries: int | None = None,
        quantize: bool = False,
        batch_size: int | None = None,
        random_state: Any = None,
        verbose: bool = False,
    ) -> None:
        self.model = model
        self.basis = basis
        self.norm = norm
        self.eps = eps
        self.max_queries = max_queries
        self.step = step
        self.loss = loss
        self.freq_dims = freq_dims
        self.stride = stride
        self.max_total_queries = max_total_queries
        self.quantize = quantize
        self.batch_size = batch_size
        self.random_state = random_state
        self.verbose = verbose

    def _check_params(self, n: int, n_classes: int, input_shape: tuple[int, int, int]) -> None:
        super()._check_params(n, n_classes, input_shape)
        check_choice(self.basis, "basis", ("dct", "pixel"))
        check_float(self.step, "step", low=0.0, low_open=True)
        check_choice(self.loss, "loss", ("margin", "prob"))
        check_int(self.freq_dims, "freq_dims", low=1, allow_none=True)
        check_int(self.stride, "stride", low=1, allow_none=True)

    def _prepare(self, ctx: RunContext) -> None:
        _, h, w = ctx.input_shape
        if self.basis == "dct":
            ctx.cache["dct"] = (_dct_matrix(h), _dct_matrix(w))

    def _direction(self, k: int, ctx: RunContext) -> np.ndarray:
        c, h, w = ctx.input_shape
        ch, u, v = np.unravel_index(k, (c, h, w))
        q = np.zeros((c, h, w))
        if self.basis == "pixel":
            q[ch, u, v] = 1.0
        else:
            rows, cols = ctx.cache["dct"]
            q[ch] = np.outer(rows[:, u], cols[:, v])
        return q

    def _attack_sample(self, s: Sample, ctx: RunContext) -> Generator[Any, Any, Any]:
        c, h, w = ctx.input_shape
        threat, rng = ctx.threat, s.rng
        anchor = s.target if s.target is not None else s.label
        sign = 1.0 if s.target is None else -1.0

        def loss(scores: np.ndarray) -> Any:
            if self.loss == "prob":
                return sign * scores[0, anchor]
            return objective("margin", scores, s.label, s.target)[0]

        x = s.x0.copy()
        last = loss(s.clean_scores[None])
        while True:
            if self.basis == "pixel":
                order = rng.permutation(c * h * w)
            else:
                fd = self.freq_dims or max(1, h // 4)
                order = _low_frequency_order(c, h, w, min(fd, h, w), self.stride or max(1, h // 8), rng)
            asked = False
            for k in order:
                diff = self.step * self._direction(int(k), ctx)
                for trial in (x - diff, x + diff):
                    cand = threat.candidate(trial, s.x0)
                    if np.array_equal(cand, x):
                        continue
                    asked = True
                    scores = yield cand[None]
                    value = loss(scores)
                    if value < last:
                        x, last = cand, value
                        s.current = x
                        break
            if not asked:  # every trial is clipped away: nothing left to try
                return
