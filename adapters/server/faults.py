"""Seeded fault injection for the local server."""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np

from bar_sdk.contract import check_float
from bar_sdk.errors import InvalidInputError

__all__ = ["Faults"]

KINDS = ("429", "500", "slow", "malformed")


@dataclass(frozen=True)
class Faults:
    """How often the server misbehaves, per request.

    Parameters
    ----------
    rate_429 : float
        Throttle answers (429 + ``Retry-After``, vendor throttle body) that the
        rate limit did not ask for. Like a real throttle they use no
        rate-limit token and are not billed.
    rate_500 : float
        Internal errors (500): the request used a rate-limit token, not billed.
    rate_slow : float
        Correct answers delayed by ``slow_seconds`` (billed).
    rate_malformed : float
        200 answers whose body is cut short or lacks the outputs field
        (not billed: the client cannot use them).
    slow_seconds : float
    retry_after : int
        Seconds in the ``Retry-After`` header of injected 429s.
    random_state : int
        Seed: the same requests in the same order meet the same faults.
    """

    rate_429: float = 0.0
    rate_500: float = 0.0
    rate_slow: float = 0.0
    rate_malformed: float = 0.0
    slow_seconds: float = 0.5
    retry_after: int = 1
    random_state: int = 0

    def __post_init__(self) -> None:
        rates = [check_float(getattr(self, f"rate_{k}"), f"rate_{k}", low=0.0, high=1.0) for k in KINDS]
        if sum(rates) > 1.0:
            raise InvalidInputError(f"fault rates sum to {sum(rates):g}; expected at most 1")
        check_float(self.slow_seconds, "slow_seconds", low=0.0)
        check_float(self.retry_after, "retry_after", low=0.0)

    def injector(self) -> FaultInjector:
        return FaultInjector(self)


class FaultInjector:
    """Draws the fault of each request from the seeded generator, one number per request.

    One draw decides everything about a request (its fault and, for a
    malformed answer, which kind), so concurrent requests cannot shift each
    other's draws: the n-th request to arrive always meets the n-th fault.
    """

    def __init__(self, faults: Faults) -> None:
        self.faults = faults
        self._edges = np.cumsum([getattr(faults, f"rate_{k}") for k in KINDS])
        self._rng = np.random.default_rng(faults.random_state)
        self._lock = threading.Lock()

    def draw(self) -> tuple[str | None, float]:
        """``(kind or None, where the draw fell inside that kind's share, in [0, 1))``."""
        with self._lock:
            u = float(self._rng.random())
        i = int(np.searchsorted(self._edges, u, side="right"))
        if i >= len(KINDS):
            return None, 0.0
        lo = self._edges[i - 1] if i else 0.0
        return KINDS[i], (u - lo) / (self._edges[i] - lo)
