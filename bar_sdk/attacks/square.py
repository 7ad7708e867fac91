"""Square Attack (Andriushchenko, Croce, Flammarion, Hein, ECCV 2020)."""

from __future__ import annotations

from typing import Any, Generator

import numpy as np

from bar_sdk.attacks.base import Attack
from bar_sdk.attacks.driver import RunContext, Sample
from bar_sdk.attacks.geometry import clip01
from bar_sdk.attacks.objectives import LOSSES, objective
from bar_sdk.contract import check_choice, check_float
from bar_sdk.errors import InvalidInputError

__all__ = ["SquareAttack"]


def p_selection(p_init: float, it: int, n_iters: int) -> float:
    """The official piece-wise constant schedule of the fraction of pixels changed."""
    it = int(it / n_iters * 10000)
    for upper, div in (
        (10, 1),
        (50, 2),
        (200, 4),
        (500, 8),
        (1000, 16),
        (2000, 32),
        (4000, 64),
        (6000, 128),
        (8000, 256),
        (10000, 512),
    ):
        if it <= upper:
            return p_init / div
    return p_init


def _signs(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Random +-1 (faster than ``rng.choice`` on tiny arrays)."""
    return np.where(rng.random(shape) < 0.5, -1.0, 1.0)


def _pseudo_gaussian_rectangle(x: int, y: int) -> np.ndarray:
    delta = np.zeros((x, y))
    x_c, y_c = x // 2 + 1, y // 2 + 1
    c0, c1 = x_c - 1, y_c - 1
    for counter in range(max(x_c, y_c)):
        delta[max(c0, 0) : min(c0 + (2 * counter + 1), x), max(0, c1) : min(c1 + (2 * counter + 1), y)] += (
            1.0 / (counter + 1) ** 2
        )
        c0 -= 1
        c1 -= 1
    norm = np.sqrt(np.sum(delta**2))
    return delta / norm if norm > 0 else delta


def _meta_pseudo_gaussian(s: int, rng: np.random.Generator) -> np.ndarray:
    """Two opposite pseudo-Gaussian bumps on an ``s x s`` square (official L2 update)."""
    delta = np.zeros((s, s))
    delta[: s // 2] = _pseudo_gaussian_rectangle(s // 2, s)
    delta[s // 2 :] = -_pseudo_gaussian_rectangle(s - s // 2, s)
    delta /= np.sqrt(np.sum(delta**2))
    if rng.random() > 0.5:
        delta = delta.T
    return delta


class SquareAttack(Attack):
    """Score-based random search with square-shaped updates.

    Each iteration changes one random square of the current perturbation
    (to a vertex of the Linf ball, or by moving L2 mass between two
    squares) and keeps it if the loss improved: **one query per iteration
    per unfinished image**, as in the official code, and no other query;
    success is read from the scores of that same query. The square size
    follows the official schedule of ``p`` rescaled to ``max_queries``.

    Parameters
    ----------
    model : black box
        Anything with ``predict_proba``, ``n_classes`` and ``input_shape``.
    norm : {"linf", "l2"}
    eps : float
        Radius of the threat model (a constraint).
    max_queries : int
        Budget per image, its clean query included (official ``n_iters``).
    p_init : float
        Initial fraction of pixels changed per iteration (official default
        0.05 for Linf; 0.1 is used for L2 in the paper).
    loss : {"margin", "ce"} or None
        Objective minimised; ``None`` follows the official code (margin
        when untargeted, cross-entropy when targeted).
    max_total_queries : int, optional
        Cap on the whole run.
    quantize : bool
        Round every query to ``k/255`` so the adversarial image survives PNG.
    batch_size : int, optional
        Largest number of images per model call.
    random_state : int, numpy Generator or None
    verbose : bool
        Progress bar.

    Examples
    --------
    >>> result = SquareAttack(model, norm="linf", eps=0.05, max_queries=1000,
    ...                       random_state=0).run(x, y)            # doctest: +SKIP
    >>> result.success_rate, result.median_queries                 # doctest: +SKIP
    """

    access = "score"
    mode = "bounded"

    def __init__(
        self,
        model: Any,
        norm: str = "linf",
        eps: float = 0.05,
        max_queries: int = 1000,
        p_init: float = 0.05,
        loss: str | None = None,
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
        self.p_init = p_init
        self.loss = loss
        self.max_total_queries = max_total_queries
        self.quantize = quantize
        self.batch_size = batch_size
        self.random_state = random_state
        self.verbose = verbose

    def _check_params(self, n: int, n_classes: int, input_shape: tuple[int, int, int]) -> None:
        super()._check_params(n, n_classes, input_shape)
        check_float(self.p_init, "p_init", low=0.0, high=1.0, low_open=True)
        if self.loss is not None:
            check_choice(self.loss, "loss", tuple(LOSSES))
        if min(input_shape[1:]) < 2:
            raise InvalidInputError(f"model.input_shape={input_shape}; SquareAttack needs images of at least 2x2")

    def _attack_sample(self, s: Sample, ctx: RunContext) -> Generator[Any, Any, Any]:
        loss_name = self.loss or ("ce" if s.target is not None else "margin")
        threat = ctx.threat
        x0, rng, eps = s.x0, s.rng, self._bound()
        c, h, w = ctx.input_shape
        n_iters = self._query_cap()
        step = self._linf_step if self.norm == "linf" else self._l2_step

        x_best = threat.candidate(self._init(x0, rng, eps, c, h, w), x0)
        scores = yield x_best[None]
        loss_min = objective(loss_name, scores, s.label, s.target)[0]
        s.current = x_best
        i_iter = 0
        while True:
            p = p_selection(self.p_init, i_iter, n_iters)
            x_new = threat.candidate(step(x0, x_best, p, rng, eps, c, h, w), x0)
            scores = yield x_new[None]
            loss = objective(loss_name, scores, s.label, s.target)[0]
            if loss < loss_min:
                x_best, loss_min = x_new, loss
                s.current = x_best
            i_iter += 1

    def _init(self, x0: np.ndarray, rng: np.random.Generator, eps: float, c: int, h: int, w: int) -> np.ndarray:
        if self.norm == "linf":
            # vertical stripes work best for untargeted attacks (official)
            return x0 + eps * _signs(rng, (c, 1, w))
        delta = np.zeros((c, h, w))
        s = max(h // 5, 1)
        sp_init = (h - s * 5) // 2
        ch = sp_init
        for _ in range(h // s):
            cw = sp_init
            for _ in range(w // s):
                bump = _meta_pseudo_gaussian(s, rng)
                hh, ww = delta[:, ch : ch + s, cw : cw + s].shape[1:]
                delta[:, ch : ch + s, cw : cw + s] += bump[:hh, :ww] * _signs(rng, (c, 1, 1))
                cw += s
            ch += s
        candidate: np.ndarray = x0 + delta / max(np.sqrt(np.sum(delta**2)), 1e-12) * eps
        return candidate

    @staticmethod
    def _linf_step(
        x0: np.ndarray, x_best: np.ndarray, p: float, rng: np.random.Generator, eps: float, c: int, h: int, w: int
    ) -> np.ndarray:
        size = int(round(np.sqrt(p * x0.size / c)))
        size = min(max(size, 1), h - 1, w - 1)
        ch, cw = rng.integers(0, (h - size, w - size))
        delta = (x_best - x0).astype(np.float64)
        x_win = x0[:, ch : ch + size, cw : cw + size]
        best_win = x_best[:, ch : ch + size, cw : cw + size]
        # redraw until the window changes the image (official: skip no-op trials)
        for _ in range(100):
            if not np.all(np.abs(clip01(x_win + delta[:, ch : ch + size, cw : cw + size]) - best_win) < 1e-7):
                break
            delta[:, ch : ch + size, cw : cw + size] = _signs(rng, (c, 1, 1)) * eps
        return clip01(x0 + delta)

    @staticmethod
    def _l2_step(
        x0: np.ndarray, x_best: np.ndarray, p: float, rng: np.random.Generator, eps: float, c: int, h: int, w: int
    ) -> np.ndarray:
        size = max(int(round(np.sqrt(p * x0.size / c))), 3)
        if size % 2 == 0:
            size += 1
        size = max(min(size, h - 1, w - 1), 1)
        delta = (x_best - x0).astype(np.float64)
        ch, cw, ch2, cw2 = rng.integers(0, (h - size, w - size, h - size, w - size))
        mask1 = np.zeros((1, h, w))
        mask1[:, ch : ch + size, cw : cw + size] = 1.0
        mask2 = np.zeros((1, h, w))
        mask2[:, ch2 : ch2 + size, cw2 : cw2 + size] = 1.0
        norm_win1 = np.sqrt(np.sum((delta * mask1) ** 2, axis=(1, 2), keepdims=True))
        norm_img = np.sqrt(np.sum(delta**2))
        norms_windows = np.sqrt(np.sum((delta * np.maximum(mask1, mask2)) ** 2, axis=(1, 2), keepdims=True))
        new = _meta_pseudo_gaussian(size, rng)[None] * _signs(rng, (c, 1, 1))
        new = new + delta[:, ch : ch + size, cw : cw + size] / (1e-10 + norm_win1)
        new = (
            new
            / np.sqrt(np.sum(new**2, axis=(1, 2), keepdims=True))
            * np.sqrt(np.maximum(eps**2 - norm_img**2, 0.0) / c + norms_windows**2)
        )
        delta[:, ch2 : ch2 + size, cw2 : cw2 + size] = 0.0
        delta[:, ch : ch + size, cw : cw + size] = new
        return clip01(x0 + delta / max(np.sqrt(np.sum(delta**2)), 1e-12) * eps)
