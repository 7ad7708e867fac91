"""Zeroth-order gradient estimators as ask/tell strategy objects.

An estimator proposes the parameter vectors at which the objective must be
evaluated (:meth:`GradientEstimator.ask`), and turns the losses measured there
into a gradient estimate (:meth:`GradientEstimator.tell`). It never calls a
model: the caller batches the evaluations, so one step is one batched call.

Settings are checked when an estimator is built, and again by
:meth:`GradientEstimator.validate`, which every consumer calls before its
first query (an attribute may be changed after construction).

Evaluating one parameter vector on a minibatch of ``n`` images costs ``n``
queries, so a step costs ``n * evaluations(d)`` queries.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import numpy as np

from bar_sdk.contract import check_choice, check_float, check_int
from bar_sdk.zo.settings import Settings

__all__ = [
    "GradientEstimator",
    "RandomGradientEstimator",
    "AntitheticEstimator",
    "SPSAEstimator",
    "CoordinateEstimator",
    "GuidedEstimator",
    "HistoryEstimator",
    "make_estimator",
]


def unit_sphere(rng: np.random.Generator, q: int, d: int) -> np.ndarray:
    """``q`` directions drawn uniformly on the unit sphere in R^d."""
    u = rng.standard_normal((q, d))
    directions: np.ndarray = u / np.linalg.norm(u, axis=1, keepdims=True)
    return directions


class GradientEstimator(Settings, ABC):
    """Base class: ask for evaluation points, tell the losses, get a gradient."""

    #: whether the first point asked is the centre itself (its loss is then
    #: an unbiased reading of the objective, used for history and accuracy)
    includes_center = False

    def __init__(self, n_directions: int = 5, smoothing: float = 0.01) -> None:
        self.n_directions = n_directions
        self.smoothing = smoothing
        self._dirs: np.ndarray | None = None
        GradientEstimator.validate(self)  # the shared settings now; a subclass checks its own in its __init__

    def validate(self) -> "GradientEstimator":
        """Raise :class:`~bar_sdk.errors.InvalidInputError` naming a setting that cannot work; return self."""
        check_int(self.n_directions, self._name("n_directions"), low=1)
        check_float(self.smoothing, self._name("smoothing"), low=0.0, low_open=True)
        return self

    @abstractmethod
    def evaluations(self, d: int) -> int:
        """Points evaluated per step for a ``d``-dimensional parameter."""

    @abstractmethod
    def ask(self, theta: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Return the ``(evaluations(d), d)`` points at which to measure the loss."""

    @abstractmethod
    def tell(self, losses: np.ndarray) -> np.ndarray:
        """Turn the losses at the asked points into a gradient estimate ``(d,)``."""

    def state_dict(self) -> dict[str, Any]:
        """What the estimator carries from one step to the next (for checkpoints); none by default."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`'s output."""

    def _asked(self) -> np.ndarray:
        """The directions of the last :meth:`ask` (``tell`` follows ``ask``)."""
        assert self._dirs is not None, f"{type(self).__name__}.tell() before ask()"
        return self._dirs

    def __repr__(self) -> str:
        return f"{type(self).__name__}(n_directions={self.n_directions}, smoothing={self.smoothing})"


class RandomGradientEstimator(GradientEstimator):
    """BAR's one-sided random-direction estimator.

    ``g = (b / q) * sum_j (f(theta + beta u_j) - f(theta)) / beta * u_j`` with
    ``u_j`` uniform on the unit sphere and ``b = d`` (Tsai et al., 2020).

    Parameters
    ----------
    n_directions : int
        q, directions per step; a step evaluates q + 1 points.
    smoothing : float
        beta, the step along each direction.
    baseline : {"center", "mean"}
        What each difference is taken against: the loss at ``theta`` (BAR),
        or the mean of the q perturbed losses (a control variate that removes
        the shared offset; then the centre is still evaluated for the
        history but not used in the estimate).
    """

    includes_center = True

    def __init__(self, n_directions: int = 5, smoothing: float = 0.01, baseline: str = "center") -> None:
        super().__init__(n_directions, smoothing)
        self.baseline = baseline
        self.validate()

    def validate(self) -> "RandomGradientEstimator":
        super().validate()
        check_choice(self.baseline, self._name("baseline"), ("center", "mean"))
        return self

    def evaluations(self, d: int) -> int:
        return self.n_directions + 1

    def ask(self, theta: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        self.validate()
        self._dirs = unit_sphere(rng, self.n_directions, theta.size)
        return np.vstack([theta[None], theta[None] + self.smoothing * self._dirs])

    def tell(self, losses: np.ndarray) -> np.ndarray:
        losses = np.asarray(losses, dtype=np.float64)
        dirs = self._asked()
        d = dirs.shape[1]
        perturbed = losses[1:]
        ref = losses[0] if self.baseline == "center" else perturbed.mean()
        diffs = (perturbed - ref) / self.smoothing
        grad: np.ndarray = d / self.n_directions * diffs @ dirs
        return grad


class AntitheticEstimator(GradientEstimator):
    """Two-sided random-direction differences.

    ``g = (d / q) * sum_j (f(theta + beta u_j) - f(theta - beta u_j)) / (2 beta) * u_j``.
    Costs 2q points; the shared offset of one-sided differences cancels,
    which matters at kinks (e.g. ties in max-pooling).
    """

    def evaluations(self, d: int) -> int:
        return 2 * self.n_directions

    def ask(self, theta: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        self.validate()
        self._dirs = unit_sphere(rng, self.n_directions, theta.size)
        step = self.smoothing * self._dirs
        return np.vstack([theta[None] + step, theta[None] - step])

    def tell(self, losses: np.ndarray) -> np.ndarray:
        losses = np.asarray(losses, dtype=np.float64)
        dirs = self._asked()
        q, d = dirs.shape
        diffs = (losses[:q] - losses[q:]) / (2 * self.smoothing)
        grad: np.ndarray = d / q * diffs @ dirs
        return grad


class SPSAEstimator(GradientEstimator):
    """Simultaneous perturbation (Spall): Rademacher directions, two-sided.

    ``g_i = mean_j (f(theta + c D_j) - f(theta - c D_j)) / (2 c D_ji)``.
    """

    def evaluations(self, d: int) -> int:
        return 2 * self.n_directions

    def ask(self, theta: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        self.validate()
        self._dirs = rng.choice(np.array([-1.0, 1.0]), size=(self.n_directions, theta.size))
        step = self.smoothing * self._dirs
        return np.vstack([theta[None] + step, theta[None] - step])

    def tell(self, losses: np.ndarray) -> np.ndarray:
        losses = np.asarray(losses, dtype=np.float64)
        dirs = self._asked()
        q = dirs.shape[0]
        diffs = (losses[:q] - losses[q:]) / (2 * self.smoothing)
        grad: np.ndarray = (diffs[:, None] / dirs).mean(axis=0)
        return grad


class CoordinateEstimator(GradientEstimator):
    """Coordinate-wise symmetric differences (ZOO, Chen et al., 2017).

    Each step picks ``n_directions`` coordinates at random (without
    replacement) and estimates those partial derivatives exactly up to
    O(h^2); the others are zero in this step's estimate.
    """

    def evaluations(self, d: int) -> int:
        return 2 * min(self.n_directions, d)

    def ask(self, theta: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        self.validate()
        k = min(self.n_directions, theta.size)
        self._coords = rng.choice(theta.size, size=k, replace=False)
        self._d = theta.size
        basis = np.zeros((k, theta.size))
        basis[np.arange(k), self._coords] = self.smoothing
        return np.vstack([theta[None] + basis, theta[None] - basis])

    def tell(self, losses: np.ndarray) -> np.ndarray:
        losses = np.asarray(losses, dtype=np.float64)
        k = self._coords.size
        g = np.zeros(self._d)
        g[self._coords] = (losses[:k] - losses[k:]) / (2 * self.smoothing)
        return g


class GuidedEstimator(GradientEstimator):
    """Two-sided differences along directions biased toward a prior (Guided ES).

    Directions are drawn as ``eps = sqrt(a) xi + sqrt((1 - a) d) zeta u`` with
    ``xi ~ N(0, I_d)``, ``zeta ~ N(0, 1)`` and ``u`` the unit prior (for
    example a local surrogate's gradient), so their covariance
    ``a I + (1 - a) d u u^T`` has the isotropic trace d; ``a = 1`` is the plain
    Gaussian antithetic estimator (Maheswaranathan et al., ICML 2019). The
    prior is set before each step with :meth:`set_prior`; without one the
    estimator is isotropic.

    Parameters
    ----------
    prior_weight : float in [0, 1)
        ``1 - a``: the share of the search energy spent along the prior.
    """

    def __init__(self, n_directions: int = 5, smoothing: float = 0.01, prior_weight: float = 0.5) -> None:
        super().__init__(n_directions, smoothing)
        self.prior_weight = prior_weight
        self._prior: np.ndarray | None = None
        self.validate()

    def validate(self) -> "GuidedEstimator":
        super().validate()
        check_float(self.prior_weight, self._name("prior_weight"), low=0.0, high=1.0)
        return self

    def set_prior(self, prior: np.ndarray | None) -> None:
        norm = None if prior is None else np.linalg.norm(prior)
        self._prior = None if prior is None or not norm else np.asarray(prior, dtype=np.float64) / norm

    def evaluations(self, d: int) -> int:
        return 2 * self.n_directions

    def ask(self, theta: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        self.validate()
        d = theta.size
        xi = rng.standard_normal((self.n_directions, d))
        zeta = rng.standard_normal((self.n_directions, 1))
        if self._prior is None:
            self._dirs = xi
        else:
            a = 1.0 - self.prior_weight
            self._dirs = np.sqrt(a) * xi + np.sqrt((1.0 - a) * d) * zeta * self._prior[None]
        step = self.smoothing * self._dirs / np.sqrt(d)  # the same step length as unit-sphere directions
        return np.vstack([theta[None] + step, theta[None] - step])

    def tell(self, losses: np.ndarray) -> np.ndarray:
        losses = np.asarray(losses, dtype=np.float64)
        dirs = self._asked()
        q, d = dirs.shape
        diffs = (losses[:q] - losses[q:]) / (2 * self.smoothing / np.sqrt(d))
        grad: np.ndarray = diffs @ dirs / q
        return grad


class HistoryEstimator(GradientEstimator):
    """One-sided differences along the running mean of past estimates plus random directions.

    A time prior (Ilyas et al., ICLR 2019; the prior-guided RGF of Cheng et
    al., NeurIPS 2019): successive minibatch gradients of one universal
    program share a large common part, which the running mean ``v`` of the
    past estimates tracks. Each step measures the directional derivative
    along the unit ``v`` (a one-sided difference) and spends the other ``q - 1`` directions,
    uniform on the unit sphere of ``v``'s orthogonal complement, on what
    the prior misses:

    ``g = D_v v + explore ((d - 1) / (q - 1)) sum_j D_{u_j} u_j``, with
    ``D_u = (f(theta + beta u) - f(theta)) / beta``.

    With ``explore = 1`` its mean is the gradient whatever the prior (the
    prior direction is measured, never assumed), up to the one-sided
    difference's curvature term ``beta / 2 v^T H v`` along ``v`` (BAR's
    estimator averages that term away over the sphere); a smaller
    ``explore`` trades unbiasedness for less variance, trusting the measured
    prior part more than the random rest (the biased weighting of P-RGF). It
    costs q + 1 points like BAR's; before the first step, with ``q = 1``, or
    while the running mean is zero or not finite, it is BAR's. Estimates
    that are not finite are not folded into the mean. Its state (the running
    mean) is saved in checkpoints.

    Parameters
    ----------
    memory : float in [0, 1]
        Decay of the running mean: ``v <- memory * v + (1 - memory) * g``
        (0 keeps only the last estimate; 1 never moves from zero, which is BAR's).
    explore : float in (0, 1]
        Weight of the random directions relative to the unbiased estimate.
    """

    includes_center = True

    def __init__(
        self, n_directions: int = 5, smoothing: float = 0.01, memory: float = 0.9, explore: float = 1.0
    ) -> None:
        super().__init__(n_directions, smoothing)
        self.memory = memory
        self.explore = explore
        self._mean: np.ndarray | None = None
        self._used_prior = False
        self.validate()

    def validate(self) -> "HistoryEstimator":
        super().validate()
        check_float(self.memory, self._name("memory"), low=0.0, high=1.0)
        check_float(self.explore, self._name("explore"), low=0.0, high=1.0, low_open=True)
        return self

    def evaluations(self, d: int) -> int:
        return self.n_directions + 1

    def ask(self, theta: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        self.validate()
        q, d = self.n_directions, theta.size
        u = rng.standard_normal((q, d))
        norm = 0.0 if self._mean is None else float(np.linalg.norm(self._mean))
        self._used_prior = q > 1 and d > 1 and bool(np.isfinite(norm)) and norm > 0.0
        if self._used_prior:
            assert self._mean is not None  # norm > 0 above
            v = self._mean / norm
            u = u[1:] - (u[1:] @ v)[:, None] * v[None]
            u = np.vstack([v[None], u / np.linalg.norm(u, axis=1, keepdims=True)])
        else:
            u = u / np.linalg.norm(u, axis=1, keepdims=True)
        self._dirs = u
        return np.vstack([theta[None], theta[None] + self.smoothing * self._dirs])

    def tell(self, losses: np.ndarray) -> np.ndarray:
        losses = np.asarray(losses, dtype=np.float64)
        dirs = self._asked()
        q, d = dirs.shape
        diffs = (losses[1:] - losses[0]) / self.smoothing
        grad: np.ndarray
        if self._used_prior:
            grad = diffs[0] * dirs[0] + self.explore * (d - 1) / (q - 1) * diffs[1:] @ dirs[1:]
        else:
            grad = d / q * diffs @ dirs
        if np.all(np.isfinite(grad)):
            self._mean = (
                (1.0 - self.memory) * grad
                if self._mean is None
                else (self.memory * self._mean + (1.0 - self.memory) * grad)
            )
        return grad

    def state_dict(self) -> dict[str, Any]:
        return {} if self._mean is None else {"mean": self._mean.copy()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._mean = None if state.get("mean") is None else np.asarray(state["mean"], dtype=np.float64).copy()

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(n_directions={self.n_directions}, smoothing={self.smoothing}, "
            f"memory={self.memory}, explore={self.explore})"
        )


ESTIMATORS: dict[str, type[GradientEstimator]] = {
    "one_sided": RandomGradientEstimator,
    "antithetic": AntitheticEstimator,
    "spsa": SPSAEstimator,
    "coordinate": CoordinateEstimator,
    "guided": GuidedEstimator,
    "history": HistoryEstimator,
}


def make_estimator(spec: str | GradientEstimator, n_directions: int, smoothing: float) -> GradientEstimator:
    """An estimator from a name in ``ESTIMATORS`` or an instance (used as is)."""
    if isinstance(spec, GradientEstimator):
        return spec
    cls = ESTIMATORS[check_choice(spec, "estimator", tuple(ESTIMATORS))]
    return cls(n_directions=n_directions, smoothing=smoothing)
