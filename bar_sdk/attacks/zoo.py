"""ZOO: zeroth-order optimisation attack (Chen, Zhang, Sharma, Yi, Hsieh, AISec 2017)."""

from __future__ import annotations

from typing import Any, Generator

import numpy as np

from bar_sdk.attacks.base import Attack
from bar_sdk.attacks.carlini_wagner import next_const
from bar_sdk.attacks.driver import RunContext, Sample
from bar_sdk.attacks.objectives import log_scores, margin
from bar_sdk.attacks.resize import Upsampler
from bar_sdk.contract import check_bool, check_float, check_int
from bar_sdk.errors import InvalidInputError

__all__ = ["ZOOAttack"]


def _importance(theta: np.ndarray, grid: tuple[int, int, int]) -> np.ndarray:
    """ZOO's sampling probabilities: max-pooled ``|theta|`` over ``(size // 8)``-wide regions.

    A small floor (1% of the mean) keeps every coordinate reachable.
    """
    c, h, w = grid
    a = np.abs(theta.reshape(grid))
    k = max(1, h // 8)
    hp, wp = -(-h // k), -(-w // k)
    padded = np.zeros((c, hp * k, wp * k))
    padded[:, :h, :w] = a
    pooled = padded.reshape(c, hp, k, wp, k).max(axis=(2, 4))
    prob = np.repeat(np.repeat(pooled, k, axis=1), k, axis=2)[:, :h, :w].reshape(-1)
    if prob.sum() <= 0:
        return np.full(prob.size, 1.0 / prob.size)
    prob = prob + 0.01 * prob.mean()
    normalised: np.ndarray = prob / prob.sum()
    return normalised


class ZOOAttack(Attack):
    """Coordinate-wise ZOO-Adam on the Carlini-Wagner objective, from scores only.

    Minimises ``||x - x0||_2^2 + c * max(margin(log p), -confidence)``.
    Each iteration picks ``n_coords`` coordinates of the perturbation, and
    estimates their partial derivatives by symmetric differences
    (``2 * n_coords`` probes, step ``h``); the current image is queried in
    the same call (``2 * n_coords + 1`` per iteration, as in the official
    code). Each coordinate keeps its own Adam moments and time step.

    Attack-space reduction: with ``resize=r`` the perturbation lives on an
    ``r x r`` grid upsampled bilinearly to the image, and doubles at each
    iteration listed in ``hierarchy``; with ``importance_sampling`` the
    coordinates are then drawn in proportion to the max-pooled size of the
    perturbation, as in the paper. The constant ``c`` is tuned by
    ``binary_search_steps`` rounds of binary search (the budget is split
    evenly between them).

    Parameters
    ----------
    model : black box
    eps : float, optional
        L2 distortion under which a sample counts as a success (and stops);
        ``None``: any adversarial image counts and the attack keeps
        shrinking the distortion until its budget ends.
    max_queries : int
        Per image, clean query included.
    norm : {"l2"}
    initial_const : float
        Starting ``c``.
    binary_search_steps : int
    confidence : float
        The margin ``kappa``.
    lr : float
        Adam step size (per coordinate).
    n_coords : int
        Coordinates per iteration (the paper's batch of 128).
    h : float
        Finite-difference step.
    beta1, beta2 : float
        Adam moments.
    resize : int, optional
        Side of the initial attack-space grid (``None``: full resolution).
    hierarchy : tuple of int
        Iterations (within a binary-search step) at which the grid doubles.
    importance_sampling : bool
    early_abort : bool
        Leave a binary-search step when the loss stopped falling (checked
        every tenth of the step).
    max_total_queries, quantize, batch_size, random_state, verbose
        As in :class:`~bar_sdk.attacks.SquareAttack`.
    """

    access = "score"
    mode = "minimal"
    norms = ("l2",)

    def __init__(
        self,
        model: Any,
        eps: float | None = None,
        max_queries: int = 10000,
        norm: str = "l2",
        initial_const: float = 10.0,
        binary_search_steps: int = 1,
        confidence: float = 0.0,
        lr: float = 0.01,
        n_coords: int = 128,
        h: float = 1e-4,
        beta1: float = 0.9,
        beta2: float = 0.999,
        resize: int | None = None,
        hierarchy: tuple[int, ...] = (),
        importance_sampling: bool = True,
        early_abort: bool = True,
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
        self.initial_const = initial_const
        self.binary_search_steps = binary_search_steps
        self.confidence = confidence
        self.lr = lr
        self.n_coords = n_coords
        self.h = h
        self.beta1 = beta1
        self.beta2 = beta2
        self.resize = resize
        self.hierarchy = hierarchy
        self.importance_sampling = importance_sampling
        self.early_abort = early_abort
        self.max_total_queries = max_total_queries
        self.quantize = quantize
        self.batch_size = batch_size
        self.random_state = random_state
        self.verbose = verbose

    def _check_params(self, n: int, n_classes: int, input_shape: tuple[int, int, int]) -> None:
        super()._check_params(n, n_classes, input_shape)
        check_float(self.initial_const, "initial_const", low=0.0, low_open=True)
        check_int(self.binary_search_steps, "binary_search_steps", low=1)
        check_float(self.confidence, "confidence", low=0.0)
        check_float(self.lr, "lr", low=0.0, low_open=True)
        check_int(self.n_coords, "n_coords", low=1)
        check_float(self.h, "h", low=0.0, low_open=True)
        for name in ("beta1", "beta2"):  # 1 zeroes Adam's bias correction (beta1: a division by zero, NaN images)
            value = check_float(getattr(self, name), name, low=0.0, high=1.0)
            if value == 1.0:
                raise InvalidInputError(f"{name}={value!r}; expected a number in [0, 1)")
        check_int(self.resize, "resize", low=1, high=min(input_shape[1:]), allow_none=True)
        check_bool(self.importance_sampling, "importance_sampling")
        check_bool(self.early_abort, "early_abort")
        try:
            marks = [int(v) for v in self.hierarchy]
        except (TypeError, ValueError):
            raise InvalidInputError(f"hierarchy={self.hierarchy!r}; expected a tuple of iteration numbers") from None
        if any(v < 1 for v in marks):
            raise InvalidInputError(f"hierarchy={self.hierarchy!r}; expected iteration numbers >= 1")

    def _grid(self, image: tuple[int, int, int], side: int | None) -> tuple[int, int, int]:
        c, h, w = image
        if side is None or side >= h:
            return image
        return (c, side, max(1, min(w, round(w * side / h))))

    def _attack_sample(self, s: Sample, ctx: RunContext) -> Generator[Any, Any, Any]:
        shape, threat, x0, rng = ctx.input_shape, ctx.threat, s.x0, s.rng
        per_iter = 2 * self.n_coords + 1
        assert s.max_queries is not None  # a score attack's per-image cap (max_queries is required)
        iters = max(1, (int(s.max_queries) - 1) // per_iter // self.binary_search_steps)
        lower, upper, const = 0.0, 1e10, float(self.initial_const)
        kappa = float(self.confidence)
        for _ in range(self.binary_search_steps):
            up = Upsampler(self._grid(shape, self.resize), shape)
            theta = np.zeros(up.size)
            m, v, epoch = np.zeros(up.size), np.zeros(up.size), np.ones(up.size)
            prob = None
            found, prev = False, np.inf
            for it in range(iters):
                if it in self.hierarchy and up.grid != shape:
                    side = min(up.grid[1] * 2, shape[1])
                    new = Upsampler(self._grid(shape, side), shape)
                    theta = Upsampler(up.grid, new.grid)(theta).reshape(-1)
                    up = new
                    m, v, epoch = np.zeros(up.size), np.zeros(up.size), np.ones(up.size)
                    prob = _importance(theta, up.grid) if self.importance_sampling else None
                k = int(min(self.n_coords, up.size, (s.remaining - 1) // 2))
                if k < 1:
                    return
                coords = rng.choice(up.size, size=k, replace=False, p=prob)
                center = x0 + up(theta)
                probes = self.h * up.basis(coords)
                rows = np.concatenate(
                    [
                        threat.candidate(center, x0)[None],
                        np.clip(center[None] + probes, 0.0, 1.0),
                        np.clip(center[None] - probes, 0.0, 1.0),
                    ]
                ).astype(np.float32)
                scores = yield rows
                dist2 = ((rows.astype(np.float64) - x0) ** 2).reshape(len(rows), -1).sum(axis=1)
                f = margin(log_scores(scores), s.label, s.target, kappa)[0]
                loss = dist2 + const * f
                found |= bool(f[0] <= 0.0)
                grad = (loss[1 : k + 1] - loss[k + 1 :]) / (2 * self.h)
                # coordinate-wise Adam, each coordinate with its own time step (official ZOO-ADAM); not the shared
                # zo Adam/zo_step, which update every coordinate under one time step from a full-vector estimate
                m[coords] = self.beta1 * m[coords] + (1 - self.beta1) * grad
                v[coords] = self.beta2 * v[coords] + (1 - self.beta2) * grad * grad
                t = epoch[coords]
                corr = np.sqrt(1 - self.beta2**t) / (1 - self.beta1**t)
                theta[coords] = np.clip(
                    theta[coords] - self.lr * corr * m[coords] / (np.sqrt(v[coords]) + 1e-8), -1.0, 1.0
                )
                epoch[coords] += 1
                s.current = np.clip(x0 + up(theta), 0.0, 1.0).astype(np.float32)
                if self.early_abort and it % max(1, iters // 10) == 0:
                    if loss[0] > prev * 0.9999:
                        break
                    prev = loss[0]
            const, lower, upper = next_const(found, const, lower, upper)
