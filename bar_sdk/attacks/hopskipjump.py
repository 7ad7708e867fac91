"""HopSkipJump (Chen, Jordan, Wainwright, IEEE S&P 2020): decision-based, labels only."""

from __future__ import annotations

from typing import Any, Generator

import numpy as np

from bar_sdk.attacks.base import Attack
from bar_sdk.attacks.driver import RunContext, Sample
from bar_sdk.attacks.geometry import distance
from bar_sdk.contract import check_float, check_int

__all__ = ["HopSkipJump"]


class HopSkipJump(Attack):
    """Boundary walk guided by a gradient-direction estimate from top-1 labels.

    Follows the authors' implementation: start from a misclassified uniform
    noise image blended toward ``x`` by binary search; then repeat
    (1) binary search to the decision boundary, (2) estimate the boundary's
    normal from ``init_num_evals * sqrt(t)`` random probes (at most
    ``max_num_evals``) answered yes/no, (3) a geometric step search along
    it. Only the top class of each answer is used, so label-only APIs work.
    Probes are trimmed to what the per-image budget has left.

    Parameters
    ----------
    model : black box (label-only allowed)
    norm : {"l2", "linf"}
    eps : float, optional
        Distortion under which a sample counts as a success (and stops);
        ``None``: any adversarial image counts and the attack keeps
        shrinking the distortion until its budget ends.
    max_queries : int
        Per image, clean query included.
    gamma : float
        Sets the binary-search tolerance ``theta``.
    init_num_evals, max_num_evals : int
        Probes of the gradient-direction estimate.
    init_trials : int
        Random noise images tried to find a starting point.
    max_total_queries, quantize, batch_size, random_state, verbose
        As in :class:`~bar_sdk.attacks.SquareAttack`; with ``quantize``
        the binary-search and step-search images are rounded to ``k/255``.
    """

    access = "decision"
    mode = "minimal"

    def __init__(
        self,
        model: Any,
        norm: str = "l2",
        eps: float | None = None,
        max_queries: int = 5000,
        gamma: float = 1.0,
        init_num_evals: int = 100,
        max_num_evals: int = 10000,
        init_trials: int = 100,
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
        self.gamma = gamma
        self.init_num_evals = init_num_evals
        self.max_num_evals = max_num_evals
        self.init_trials = init_trials
        self.max_total_queries = max_total_queries
        self.quantize = quantize
        self.batch_size = batch_size
        self.random_state = random_state
        self.verbose = verbose

    def _check_params(self, n: int, n_classes: int, input_shape: tuple[int, int, int]) -> None:
        super()._check_params(n, n_classes, input_shape)
        check_float(self.gamma, "gamma", low=0.0, low_open=True)
        check_int(self.init_num_evals, "init_num_evals", low=1)
        check_int(self.max_num_evals, "max_num_evals", low=1)
        check_int(self.init_trials, "init_trials", low=1)

    def _attack_sample(self, s: Sample, ctx: RunContext) -> Generator[Any, Any, Any]:
        threat, x0, rng, shape = ctx.threat, s.x0, s.rng, ctx.input_shape
        d = ctx.dim
        l2 = self.norm == "l2"
        theta = self.gamma / (np.sqrt(d) * d) if l2 else self.gamma / d**2

        def decide(rows: np.ndarray) -> np.ndarray:
            return s.is_adversarial(rows.argmax(axis=1))

        # 1. a misclassified noise image, blended toward x0
        noise = None
        for _ in range(self.init_trials):
            cand = threat.candidate(rng.uniform(0.0, 1.0, size=shape), x0)
            if decide((yield cand[None]))[0]:
                noise = cand
                break
        if noise is None:
            return
        low, high = 0.0, 1.0
        while high - low > 0.001:
            mid = (high + low) / 2
            if decide((yield threat.candidate((1 - mid) * x0 + mid * noise, x0)[None]))[0]:
                high = mid
            else:
                low = mid
        perturbed = threat.candidate((1 - high) * x0 + high * noise, x0)

        def blend(image: np.ndarray, alpha: float) -> np.ndarray:
            if l2:
                return (1 - alpha) * x0 + alpha * image
            clipped: np.ndarray = np.clip(image, x0 - alpha, x0 + alpha)
            return clipped

        def binary_search(image: np.ndarray) -> Generator[Any, Any, Any]:
            dist_in = float(distance(image, x0, self.norm))
            if l2:
                hi, tol = 1.0, theta
            else:
                hi, tol = dist_in, min(dist_in * theta, theta)
            lo = 0.0
            while (hi - lo) / tol > 1:
                mid = (hi + lo) / 2
                if decide((yield threat.candidate(blend(image, mid), x0)[None]))[0]:
                    hi = mid
                else:
                    lo = mid
            return threat.candidate(blend(image, hi), x0), dist_in

        perturbed, dist_post = yield from binary_search(perturbed)
        dist = float(distance(perturbed, x0, self.norm))
        s.current = perturbed
        t = 0
        while True:
            t += 1
            delta = 0.1 if t == 1 else (np.sqrt(d) * theta * dist_post if l2 else d * theta * dist_post)
            num_evals = int(min(self.init_num_evals * np.sqrt(t), self.max_num_evals, s.remaining - 1))
            if num_evals < 1:
                return
            if l2:
                rv = rng.standard_normal((num_evals,) + shape)
            else:
                rv = rng.uniform(-1.0, 1.0, size=(num_evals,) + shape)
            rv /= np.sqrt((rv**2).sum(axis=(1, 2, 3), keepdims=True))
            probes = np.clip(perturbed + delta * rv, 0.0, 1.0).astype(np.float32)
            rv = (probes - perturbed) / delta
            fval = 2.0 * decide((yield probes)) - 1.0
            if fval.mean() == 1.0:
                grad = rv.mean(axis=0)
            elif fval.mean() == -1.0:
                grad = -rv.mean(axis=0)
            else:
                grad = ((fval - fval.mean())[:, None, None, None] * rv).mean(axis=0)
            grad /= max(np.linalg.norm(grad), 1e-12)
            update = grad if l2 else np.sign(grad)
            step = dist / np.sqrt(t)
            while True:
                cand = threat.candidate(perturbed + step * update, x0)
                if decide((yield cand[None]))[0]:
                    break
                step /= 2.0
                if step < 1e-12:
                    return
            perturbed, dist_post = yield from binary_search(cand)
            dist = float(distance(perturbed, x0, self.norm))
            s.current = perturbed
