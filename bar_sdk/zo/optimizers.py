"""First-order update rules fed with zeroth-order gradient estimates.

Each optimizer is a small stateful object: ``step(theta, grad, progress)``
returns the new parameters, where ``progress`` in [0, 1] is the fraction of
the run (budget) spent, used by the learning-rate schedule. ``lookahead``
says where the next gradient should be estimated (the current point, except
for momentum methods that correct the gradient at a look-ahead point).
Every optimizer takes an optional decoupled weight decay (AdamW's form,
Loshchilov & Hutter, 2019): after its own update it subtracts
``lr_t * weight_decay * theta``, pulling the program towards zero at no query
cost; for SGD this equals an L2 penalty ``weight_decay / 2 * |theta|^2``.
State round-trips through ``state_dict`` for checkpoints.

Settings are checked when an optimizer is built, and again by
:meth:`Optimizer.validate`, which every consumer calls before its first
query (an attribute may be changed after construction).
"""

from __future__ import annotations

from abc import ABC
from typing import Any

import numpy as np

from bar_sdk.contract import check_choice, check_float
from bar_sdk.errors import InvalidInputError
from bar_sdk.zo.settings import Settings

__all__ = ["Optimizer", "SGD", "Adam", "SignSGD", "SPSAGC", "make_optimizer"]


def check_weight_decay(
    weight_decay: Any, lr: float, name: str = "weight_decay", lr_name: str = "learning_rate"
) -> float:
    """``weight_decay`` >= 0 with ``lr * weight_decay < 1`` (larger pushes the parameters past zero each step)."""
    decay = check_float(weight_decay, name, low=0.0)
    if lr * decay >= 1.0:
        raise InvalidInputError(
            f"{name}={weight_decay!r} with {lr_name}={lr!r}; expected "
            f"{lr_name} * weight_decay < 1 (a larger decay overshoots zero every step)"
        )
    return decay


def check_below_one(value: Any, name: str) -> float:
    """A number in [0, 1): a momentum or moment decay (1 never forgets, and zeroes Adam's bias correction)."""
    checked = check_float(value, name, low=0.0, high=1.0)
    if checked >= 1.0:
        raise InvalidInputError(f"{name}={checked!r}; expected a number in [0, 1)")
    return checked


class Optimizer(Settings, ABC):
    """Base class. ``lr`` decays exponentially to ``lr * lr_decay`` over the run.

    Subclasses implement :meth:`_update`, and :meth:`step` adds the weight
    decay (a subclass that overrides ``step`` itself still works, without it).
    """

    weight_decay = 0.0  # also for instances pickled before the option existed

    def __init__(self, lr: float = 0.05, lr_decay: float = 1.0, weight_decay: float = 0.0) -> None:
        self.lr = lr
        self.lr_decay = lr_decay
        self.weight_decay = weight_decay
        Optimizer.validate(self)  # the shared settings now; a subclass checks its own in its __init__

    def validate(self) -> "Optimizer":
        """Raise :class:`~bar_sdk.errors.InvalidInputError` naming a setting that cannot work; return self."""
        check_float(self.lr, self._name("lr"), low=0.0, low_open=True)
        check_float(self.lr_decay, self._name("lr_decay"), low=0.0, high=1.0, low_open=True)
        check_weight_decay(self.weight_decay, self.lr, self._name("weight_decay"), "lr")
        return self

    def learning_rate(self, progress: float) -> float:
        check_float(self.lr, self._name("lr"), low=0.0, low_open=True)
        check_float(self.lr_decay, self._name("lr_decay"), low=0.0, high=1.0, low_open=True)
        return float(self.lr * self.lr_decay ** float(np.clip(progress, 0.0, 1.0)))

    def lookahead(self, theta: np.ndarray) -> np.ndarray:
        return theta

    def step(self, theta: np.ndarray, grad: np.ndarray, progress: float) -> np.ndarray:
        """Return the updated parameters: the rule's update, then the decoupled weight decay."""
        self.validate()
        lr = self.learning_rate(progress)
        new = self._update(theta, grad, progress)
        return new - lr * self.weight_decay * theta if self.weight_decay else new

    def _update(self, theta: np.ndarray, grad: np.ndarray, progress: float) -> np.ndarray:
        """The rule's own update of the parameters (no weight decay)."""
        raise NotImplementedError(f"{type(self).__name__} must implement _update (or override step)")

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass

    def __repr__(self) -> str:
        decay = f", weight_decay={self.weight_decay}" if self.weight_decay else ""
        return f"{type(self).__name__}(lr={self.lr}, lr_decay={self.lr_decay}{decay})"


class SGD(Optimizer):
    """Plain gradient descent with exponential learning-rate decay (BAR)."""

    def _update(self, theta: np.ndarray, grad: np.ndarray, progress: float) -> np.ndarray:
        return theta - self.learning_rate(progress) * grad


class SignSGD(Optimizer):
    """Descent along the sign of the estimate (ZO-signSGD, Liu et al., 2019)."""

    def _update(self, theta: np.ndarray, grad: np.ndarray, progress: float) -> np.ndarray:
        new: np.ndarray = theta - self.learning_rate(progress) * np.sign(grad)
        return new


class Adam(Optimizer):
    """ZO-AdaMM (Chen et al., 2019): Adam with the AMSGrad max of second moments."""

    def __init__(
        self,
        lr: float = 0.05,
        lr_decay: float = 1.0,
        beta1: float = 0.9,
        beta2: float = 0.99,
        eps: float = 1e-8,
        weight_decay: float = 0.0,
    ) -> None:
        super().__init__(lr, lr_decay, weight_decay)
        self.beta1, self.beta2, self.eps = beta1, beta2, eps
        self.m: np.ndarray | None = None
        self.v: np.ndarray | None = None
        self.vmax: np.ndarray | None = None
        self.t = 0
        self.validate()

    def validate(self) -> "Adam":
        super().validate()
        check_below_one(self.beta1, self._name("beta1"))  # 1: the bias correction divides by zero (NaN)
        check_below_one(self.beta2, self._name("beta2"))
        check_float(self.eps, self._name("eps"), low=0.0, low_open=True)
        return self

    def _update(self, theta: np.ndarray, grad: np.ndarray, progress: float) -> np.ndarray:
        if self.m is None:
            self.m = np.zeros_like(theta)
            self.v = np.zeros_like(theta)
            self.vmax = np.zeros_like(theta)
        assert self.v is not None and self.vmax is not None  # set together with m, here and in load_state_dict
        self.t += 1
        self.m = self.beta1 * self.m + (1 - self.beta1) * grad
        self.v = self.beta2 * self.v + (1 - self.beta2) * grad * grad
        self.vmax = np.maximum(self.vmax, self.v)
        m_hat = self.m / (1 - self.beta1**self.t)
        v_hat = self.vmax / (1 - self.beta2**self.t)
        return theta - self.learning_rate(progress) * m_hat / (np.sqrt(v_hat) + self.eps)

    def state_dict(self) -> dict[str, Any]:
        return {"t": self.t, "m": self.m, "v": self.v, "vmax": self.vmax}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.t = int(state["t"])
        self.m, self.v, self.vmax = state["m"], state["v"], state["vmax"]


class SPSAGC(Optimizer):
    """SPSA with gradient correction (BlackVIP, Oh et al., 2023).

    Nesterov-style momentum: the gradient is estimated at the look-ahead
    point ``theta + momentum * m``; then ``m <- momentum * m - lr * g`` and
    ``theta <- theta + m``.
    """

    def __init__(
        self, lr: float = 0.05, lr_decay: float = 1.0, momentum: float = 0.9, weight_decay: float = 0.0
    ) -> None:
        super().__init__(lr, lr_decay, weight_decay)
        self.momentum = momentum
        self.m: np.ndarray | None = None
        self.validate()

    def validate(self) -> "SPSAGC":
        super().validate()
        check_below_one(self.momentum, self._name("momentum"))
        return self

    def lookahead(self, theta: np.ndarray) -> np.ndarray:
        return theta if self.m is None else theta + self.momentum * self.m

    def _update(self, theta: np.ndarray, grad: np.ndarray, progress: float) -> np.ndarray:
        if self.m is None:
            self.m = np.zeros_like(theta)
        self.m = self.momentum * self.m - self.learning_rate(progress) * grad
        return theta + self.m

    def state_dict(self) -> dict[str, Any]:
        return {"m": self.m}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.m = state["m"]


OPTIMIZERS: dict[str, type[Optimizer]] = {"sgd": SGD, "adam": Adam, "sign": SignSGD, "spsa_gc": SPSAGC}


def make_optimizer(spec: str | Optimizer, lr: float, lr_decay: float, weight_decay: float = 0.0) -> Optimizer:
    """An optimizer from a name in ``OPTIMIZERS`` or an instance (used as is)."""
    if isinstance(spec, Optimizer):
        return spec
    return OPTIMIZERS[check_choice(spec, "optimizer", tuple(OPTIMIZERS))](
        lr=lr, lr_decay=lr_decay, weight_decay=weight_decay
    )
