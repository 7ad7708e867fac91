"""Momentum iterative FGSM (Dong et al., CVPR 2018) with optional input diversity (Xie et al., CVPR 2019).

A white-box attack meant to *transfer*: crafted on a model you own, tried on
one you do not.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Callable, Generator

import numpy as np

from bar_sdk.attacks.base import Attack
from bar_sdk.attacks.driver import GradientRequest, RunContext, Sample, Threat
from bar_sdk.attacks.geometry import project
from bar_sdk.attacks.objectives import LOSSES
from bar_sdk.attacks.pgd import descent_direction
from bar_sdk.attacks.resize import bilinear_matrix
from bar_sdk.contract import check_bool, check_choice, check_float, check_int

__all__ = ["MIFGSM"]


class _FullSchedule(Threat):
    """The run's threat model, but a sample keeps going after its first success."""

    @property
    def stops_early(self) -> bool:
        return False


class MIFGSM(Attack):
    """Iterated signed gradient steps on an accumulated, L1-normalised gradient (momentum).

    Each step adds the gradient of the loss, divided by its L1 norm, to a
    running sum decayed by ``momentum``, and moves ``step_size`` along the
    sign of that sum (Linf) or its direction (L2), projected onto the
    ``eps``-ball. Momentum steadies the direction across steps, which is why
    the examples transfer to other models better than PGD's (Dong et al.,
    2018). With ``diversity_prob > 0`` each gradient is taken at a randomly
    shrunk and padded copy of the image (DI-2-FGSM), which keeps the attack
    from over-fitting the source model.

    Unlike :class:`~bar_sdk.attacks.PGD`, the attack runs its whole schedule
    by default (``early_stop=False``) and returns the final iterate, not the
    first image that crossed the source's decision boundary: an example far
    past the boundary is the one that transfers. Success is judged on that
    final image.

    Parameters
    ----------
    model : model with ``log_proba_gradient``
        The source (e.g. ``bar_sdk.adapters.TorchModel`` or
        :class:`bar_sdk.transfer.EnsembleModel`).
    norm : {"linf", "l2"}, default "linf"
    eps : float, default 8/255
    steps : int, default 10
    step_size : float, optional
        Default ``eps / steps`` (the paper's choice: the schedule just
        reaches the ball's boundary).
    momentum : float, default 1.0
        Decay of the accumulated gradient (0 gives plain iterative FGSM).
    diversity_prob : float, default 0.0
        Probability that a step's gradient is taken at a diversified input.
    diversity_scale : float, default 0.9
        Smallest side of the shrunk image, as a share of the input side;
        it is padded back, at a random place, with zeros.
    loss : {"ce", "margin"}, default "ce"
    early_stop : bool, default False
        Stop a sample at its first success on the source (like PGD) instead
        of running every step.
    max_queries : int, optional
        Per image (gradient calls + queries, the clean query included).
    max_total_queries, quantize, batch_size, random_state, verbose
        As in :class:`~bar_sdk.attacks.PGD`.

    Notes
    -----
    ``run(x, y)`` takes ``x`` shaped (n, C, H, W) or (n, H, W), uint8 or floats
    in [0, 1]. Each image costs ``steps + 2`` queries (clean, gradients, final
    check) without early stop.

    Examples
    --------
    >>> from bar_sdk.attacks.mifgsm import MIFGSM                                    # doctest: +SKIP
    >>> result = MIFGSM(source, eps=8 / 255, diversity_prob=0.5, random_state=0).run(x, y)   # doctest: +SKIP
    >>> target.predict_proba(result.x_adv).argmax(1) != y                        # doctest: +SKIP
    """

    access = "gradient"
    mode = "bounded"

    def __init__(
        self,
        model: Any,
        norm: str = "linf",
        eps: float = 8 / 255,
        steps: int = 10,
        step_size: float | None = None,
        momentum: float = 1.0,
        diversity_prob: float = 0.0,
        diversity_scale: float = 0.9,
        loss: str = "ce",
        early_stop: bool = False,
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
        self.momentum = momentum
        self.diversity_prob = diversity_prob
        self.diversity_scale = diversity_scale
        self.loss = loss
        self.early_stop = early_stop
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
        check_float(self.momentum, "momentum", low=0.0)
        check_float(self.diversity_prob, "diversity_prob", low=0.0, high=1.0)
        check_float(self.diversity_scale, "diversity_scale", low=0.0, high=1.0, low_open=True)
        check_choice(self.loss, "loss", tuple(LOSSES))
        check_bool(self.early_stop, "early_stop")

    def _validate(self, x: Any, y: Any, target: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, RunContext]:
        x, y, target, ctx = super()._validate(x, y, target)
        if not self.early_stop:
            t = ctx.threat
            ctx = replace(ctx, threat=_FullSchedule(t.norm, t.eps, t.bounded, t.quantize))
        return x, y, target, ctx

    def _diversify(
        self, x: np.ndarray, rng: np.random.Generator
    ) -> tuple[np.ndarray, Callable[[np.ndarray], np.ndarray]] | None:
        """A random shrink-and-pad of ``x`` and the adjoint that maps a gradient back, or None."""
        if self.diversity_prob == 0 or rng.random() >= self.diversity_prob:
            return None
        _, h, w = x.shape
        nh = int(rng.integers(max(1, int(self.diversity_scale * h)), h + 1))
        nw = int(round(nh * w / h))
        nw = min(max(nw, 1), w)
        top, left = int(rng.integers(0, h - nh + 1)), int(rng.integers(0, w - nw + 1))
        rows, cols = bilinear_matrix(nh, h), bilinear_matrix(nw, w)
        small = np.einsum("ih,chw,jw->cij", rows, x, cols, optimize=True)
        out = np.zeros_like(x)
        out[:, top : top + nh, left : left + nw] = np.clip(small, 0.0, 1.0)

        def back(grad: np.ndarray) -> np.ndarray:
            pooled: np.ndarray = np.einsum(
                "ih,cij,jw->chw", rows, grad[:, top : top + nh, left : left + nw], cols, optimize=True
            )
            return pooled

        return out, back

    def _attack_sample(self, s: Sample, ctx: RunContext) -> Generator[Any, Any, Any]:
        eps = self._bound()
        alpha = self.step_size if self.step_size is not None else eps / self.steps
        loss_fn = LOSSES[self.loss]

        def loss(logp: np.ndarray) -> Any:
            return loss_fn(logp, s.label, s.target)

        x = s.x0.copy()
        velocity = np.zeros(x.shape, dtype=np.float64)
        for _ in range(self.steps):
            view = self._diversify(x, s.rng)
            point = x if view is None else view[0]
            _, grad = yield GradientRequest(point[None].astype(np.float32), loss)
            g = np.asarray(grad[0], dtype=np.float64)
            if view is not None:
                g = view[1](g)
            velocity = self.momentum * velocity + g / max(float(np.abs(g).sum()), 1e-12)
            x = project(x + alpha * descent_direction(velocity, self.norm), s.x0, self.norm, eps)
            s.current = x
        if not self.early_stop:
            # the final iterate decides: forget any earlier image that only just crossed the boundary
            s.best, s.best_dist, s.best_label, s.success = None, np.inf, -1, False
        yield ctx.threat.candidate(x, s.x0)[None]
