"""One query budget for every worker: a QueryLedger held by a named, detached Ray actor."""

from __future__ import annotations

from typing import Any

from bar_sdk.contract import check_int
from bar_sdk.distributed.actors import DEFAULT_NAMESPACE, ServiceClient
from bar_sdk.ledger import QueryLedger

__all__ = ["SharedQueryLedger"]


class SharedQueryLedger(ServiceClient):
    """A :class:`~bar_sdk.ledger.QueryLedger` shared by every worker of a Ray cluster.

    It has the ledger's interface (``reserve``, ``release``, ``can_afford``,
    ``queries``, ``remaining``, ...), so ``MeteredModel(model, ledger=shared)``
    counts through it unchanged. The ledger itself lives in one actor, which
    runs one call at a time: the single-process rule (a batch that does not
    fit is refused whole, before it leaves) holds across workers. Each
    ``reserve`` is one actor round trip (about 2 ms on one machine).

    Build it with :meth:`create` (or attach to an existing one by name with
    ``SharedQueryLedger(name)``); pickling it ships its name, so a worker's
    copy talks to the same actor.

    Examples
    --------
    >>> ledger = SharedQueryLedger.create("audit-budget", max_queries=10_000)   # doctest: +SKIP
    >>> MeteredModel(model, ledger).predict_proba(x)                             # doctest: +SKIP
    """

    service_class = QueryLedger
    kind = "shared query ledger"

    @classmethod
    def create(
        cls,
        name: str,
        max_queries: int | None = None,
        *,
        namespace: str = DEFAULT_NAMESPACE,
        address: str | None = None,
    ) -> SharedQueryLedger:
        """Create the named ledger, or attach to it if it exists with the same ``max_queries``.

        ``address`` is the cluster to join when Ray is not started yet
        (``"auto"`` for a running ``ray start`` cluster; a new local one otherwise).
        """
        check_int(max_queries, "max_queries", low=1, allow_none=True)
        return cls._create(name, namespace, address, {"max_queries": max_queries})

    # -- the QueryLedger interface -----------------------------------------------------------

    @property
    def max_queries(self) -> int | None:
        value: int | None = self._get("max_queries")  # what the actor returned (Ray is untyped)
        return value

    @property
    def queries(self) -> int:
        value: int = self._get("queries")  # what the actor returned (Ray is untyped)
        return value

    @property
    def remaining(self) -> int | None:
        value: int | None = self._get("remaining")  # what the actor returned (Ray is untyped)
        return value

    @property
    def by_purpose(self) -> dict[str, int]:
        value: dict[str, int] = self._get("by_purpose")  # what the actor returned (Ray is untyped)
        return value

    def can_afford(self, n: int) -> bool:
        value: bool = self._call("can_afford", n)  # what the actor returned (Ray is untyped)
        return value

    def reserve(self, n: int, purpose: str) -> None:
        self._call("reserve", n, purpose)

    def release(self, n: int, purpose: str) -> None:
        self._call("release", n, purpose)

    def mark_failed(self, n: int) -> None:
        self._call("mark_failed", n)

    def state_dict(self) -> dict[str, Any]:
        value: dict[str, Any] = self._call("state_dict")  # what the actor returned (Ray is untyped)
        return value
