"""One rate limit for every worker: a TokenBucket held by a named, detached Ray actor."""

from __future__ import annotations

from bar_sdk.adapters.remote.ratelimit import TokenBucket
from bar_sdk.contract import check_float, check_int
from bar_sdk.distributed.actors import DEFAULT_NAMESPACE, ServiceClient

__all__ = ["SharedTokenBucket"]


class SharedTokenBucket(ServiceClient):
    """A :class:`~bar_sdk.adapters.remote.ratelimit.TokenBucket` shared by every worker.

    Pass it as ``RemoteModel(..., rate_limiter=bucket)`` in each worker: each
    request books its token in the one actor (on the actor's clock) and sleeps
    locally for the wait it is told, so four workers against a 20 req/s API
    send at most 20 req/s together (plus ``burst`` after a pause). A request
    the server throttles gives its token back, as with a local bucket.

    Build it with :meth:`create`; attach by name with ``SharedTokenBucket(name)``.
    """

    service_class = TokenBucket
    kind = "shared token bucket"

    @classmethod
    def create(
        cls, name: str, rate: float, burst: int = 1, *, namespace: str = DEFAULT_NAMESPACE, address: str | None = None
    ) -> SharedTokenBucket:
        """Create the named bucket (``rate`` requests per second, bursts of ``burst``), or attach to it."""
        rate = check_float(rate, "rate", low=0.0, low_open=True)
        burst = check_int(burst, "burst", low=1)
        return cls._create(name, namespace, address, {"rate": float(rate), "burst": burst})

    @property
    def rate(self) -> float:
        value: float = self._get("rate")  # what the actor returned (Ray is untyped)
        return value

    @property
    def burst(self) -> int:
        value: int = self._get("burst")  # what the actor returned (Ray is untyped)
        return value

    def reserve(self, n: int = 1) -> float:
        """Book ``n`` tokens; return the seconds to wait before sending."""
        value: float = self._call("reserve", n)  # what the actor returned (Ray is untyped)
        return value

    def try_take(self, n: int = 1) -> float:
        value: float = self._call("try_take", n)  # what the actor returned (Ray is untyped)
        return value

    def refund(self, n: int = 1) -> None:
        self._call("refund", n)
