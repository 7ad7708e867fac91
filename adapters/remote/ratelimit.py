"""A token bucket: at most ``rate`` requests per second, bursts of ``burst``."""

from __future__ import annotations

import threading
import time
from typing import Callable

from bar_sdk.contract import check_float, check_int

__all__ = ["TokenBucket"]


class TokenBucket:
    """Thread-safe token bucket with an injectable clock.

    The bucket holds up to ``burst`` tokens and refills at ``rate`` tokens per
    second. It never sleeps itself: :meth:`reserve` books a token (possibly in
    the future) and says how long to wait, so the same bucket serves threads
    (``time.sleep``) and coroutines (``asyncio.sleep``), and tests need no
    real time.

    Parameters
    ----------
    rate : float
        Tokens per second (> 0).
    burst : int
        Bucket size: requests that may leave back to back after a pause.
    clock : callable, optional
        Monotonic seconds; ``time.monotonic`` by default.

    Examples
    --------
    >>> t = [0.0]
    >>> bucket = TokenBucket(rate=2, burst=1, clock=lambda: t[0])
    >>> [bucket.reserve() for _ in range(3)]
    [0.0, 0.5, 1.0]
    """

    def __init__(self, rate: float, burst: int = 1, clock: Callable[[], float] | None = None) -> None:
        self.rate = check_float(rate, "rate", low=0.0, low_open=True)
        self.burst = check_int(burst, "burst", low=1)
        self._clock = clock or time.monotonic
        self._tokens = float(self.burst)
        self._last = self._clock()
        self._lock = threading.Lock()

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(float(self.burst), self._tokens + (now - self._last) * self.rate)
        self._last = now

    def reserve(self, n: int = 1) -> float:
        """Take ``n`` tokens now or in the future; return the seconds to wait first."""
        with self._lock:
            self._refill()
            self._tokens -= n
            return 0.0 if self._tokens >= 0 else -self._tokens / self.rate

    def try_take(self, n: int = 1) -> float:
        """Take ``n`` tokens if they are there (return 0.0); else take nothing and
        return the seconds until they would be."""
        with self._lock:
            self._refill()
            if self._tokens >= n:
                self._tokens -= n
                return 0.0
            return (n - self._tokens) / self.rate

    def defer(self) -> float:
        """Seconds a fresh request should wait before it books a token: how far the bookings already run
        past a short horizon (four tokens' time, at least 250 ms), else 0.0. Nothing is booked.

        A fresh request that books behind a long queue of others would make a retry that has just waited
        out a ``Retry-After`` queue behind it too; a fresh request that waits first leaves the retry only
        the horizon to wait. The horizon is long enough that a fresh request woken late (a busy thread or
        event loop) still books before the bucket runs empty.
        """
        with self._lock:
            self._refill()
            booked = max(0.0, -self._tokens) / self.rate
            return max(0.0, booked - max(4.0 / self.rate, 0.25))

    def refund(self, n: int = 1) -> None:
        """Give back ``n`` tokens of a request the server refused without serving."""
        with self._lock:
            self._refill()
            self._tokens = min(float(self.burst), self._tokens + n)

    def __repr__(self) -> str:
        return f"TokenBucket(rate={self.rate:g}, burst={self.burst})"
