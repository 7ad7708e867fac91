"""What a remote model cost: attempts, billed queries and cache hits, kept apart."""

from __future__ import annotations

import threading
from typing import Any, Protocol

from bar_sdk.contract import check_float, check_int
from bar_sdk.errors import CheckpointError, QueryBudgetExceeded

__all__ = ["RemoteLedger", "StateStore"]

_COUNTS = ("attempts", "requests", "billed", "cache_hits", "retries", "throttled", "failures", "unconfirmed")
_SINCE_LATER = ("unconfirmed",)  # counts a state saved by an older version may lack (read as 0)


class StateStore(Protocol):  # pragma: no cover - protocol
    """Where a ledger persists itself (``AnswerCache`` is one).

    ``save_state`` receives a function returning the state, and calls it
    under its own lock, so concurrent saves never store an older count last.
    """

    def load_state(self, name: str) -> dict[str, Any] | None: ...

    def save_state(self, name: str, state: Any) -> None: ...


class RemoteLedger:
    """Counts of a remote model, in images unless said otherwise.

    Parameters
    ----------
    max_queries : int or None
        Hard cap on what the vendor may have billed, :attr:`billed` plus
        :attr:`unconfirmed`. Images are reserved before a request leaves
        (``billed + unconfirmed + in flight <= max_queries`` always), so the
        cap holds under concurrency too, and a request whose earlier attempt
        may have been billed is sent again only while that still holds.
        ``None`` for no cap.
    price_per_query : float
        Price of one billed image; :attr:`cost` is ``billed * price_per_query``.
    store : StateStore, optional
        Where the counts are saved (one transaction) after every billed or
        failed request, and read back on construction: a process that crashed
        and restarts with the same store sees what was already paid, and the
        cap still holds. ``RemoteModel(cache_dir=...)`` uses its answer cache.

    Attributes
    ----------
    attempts : int
        Images sent over the wire, every retry included.
    requests : int
        HTTP requests sent (one request may carry several images).
    billed : int
        Images the API answered successfully: what the vendor bills.
    cache_hits : int
        Images answered from the local cache, repeated within one batch, or
        answered by a concurrent call's request that was already in flight:
        never sent again, never billed again.
    retries : int
        Requests sent again after a throttle, a 5xx, a timeout or a malformed answer.
    throttled : int
        Requests the API throttled (429 or a vendor throttle body).
    failures : int
        Requests that failed without an answer (5xx, timeout, connection error,
        malformed body).
    unconfirmed : int
        Images of failed requests that reached the API but whose answer never
        arrived or could not be used (a read timeout, a connection dropped after
        sending, an answer over ``max_response_bytes``, a 2xx answer that could
        not be read): the vendor may have billed them. Failures before anything
        was sent (connect errors) and error statuses (429, 5xx) are not counted. So
        ``billed <= what the vendor billed <= billed + unconfirmed``.

    Notes
    -----
    Counts only grow. :meth:`load_state_dict` keeps, for each count, the larger
    of the loaded and the current value: a checkpoint written before a crash
    cannot hide queries paid after it (which the store remembers).
    """

    def __init__(
        self, max_queries: int | None = None, price_per_query: float = 0.0, store: StateStore | None = None
    ) -> None:
        self.max_queries = check_int(max_queries, "max_queries", low=1, allow_none=True)
        self.price_per_query = check_float(price_per_query, "price_per_query", low=0.0)
        self.store = store
        self.attempts = self.requests = self.billed = self.cache_hits = 0
        self.retries = self.throttled = self.failures = self.unconfirmed = 0
        self.in_flight = 0
        self._lock = threading.Lock()
        saved = store.load_state("ledger") if store is not None else None
        if saved is not None:
            self.load_state_dict(saved)

    @property
    def cost(self) -> float:
        """Running cost: ``billed * price_per_query``."""
        return self.billed * self.price_per_query

    @property
    def remaining(self) -> int | None:
        """Images that may still be billed (in-flight and unconfirmed ones excluded), or ``None``."""
        if self.max_queries is None:
            return None
        return self.max_queries - self.billed - self.unconfirmed - self.in_flight

    def reserve(self, n: int) -> None:
        """Hold room for ``n`` images before they leave, or raise and send nothing."""
        with self._lock:
            held = self.billed + self.unconfirmed + self.in_flight
            if self.max_queries is not None and held + n > self.max_queries:
                raise QueryBudgetExceeded(n, held, self.max_queries)
            self.in_flight += n

    def check_retry(self, n: int) -> None:
        """Before sending ``n`` reserved images again: refuse when an earlier attempt may have used their room.

        A request that reached the API unanswered (a read timeout) moved its
        images to :attr:`unconfirmed` while their reservation still holds; a
        retry could then bill them twice over the cap.
        """
        with self._lock:
            held = self.billed + self.unconfirmed + self.in_flight
            if self.max_queries is not None and held > self.max_queries:
                err = QueryBudgetExceeded(n, held - n, self.max_queries)
                err.args = (
                    f"max_queries={self.max_queries} would be exceeded: the retry of a request of {n} "
                    "image(s) whose earlier attempt reached the API unanswered (and may have been "
                    f"billed) was not sent ({held - n} other image(s) billed, unconfirmed or in flight)",
                )
                raise err

    def release(self, n: int) -> None:
        """Give back room held by :meth:`reserve` for images that were not billed."""
        with self._lock:
            self.in_flight -= n

    def record_attempt(self, n_images: int, *, retry: bool) -> None:
        with self._lock:
            self.requests += 1
            self.attempts += n_images
            self.retries += int(retry)

    def record_billed(self, n: int, *, save: bool = True) -> None:
        """``n`` reserved images were answered: bill them and free their reservation.

        ``save=False`` when the caller saves the ledger itself, together with
        the answers (``AnswerCache.put_many(..., states={"ledger": ledger.state_dict})``).
        """
        with self._lock:
            self.in_flight -= n
            self.billed += n
        if save:
            self._save()

    def record_cache_hits(self, n: int) -> None:
        with self._lock:
            self.cache_hits += n

    def record_failure(self, *, throttled: bool, unconfirmed: int = 0) -> None:
        """A request failed; ``unconfirmed`` images it carried may have been billed all the same."""
        with self._lock:
            if throttled:
                self.throttled += 1
            else:
                self.failures += 1
            self.unconfirmed += unconfirmed
        self._save()

    def state_dict(self) -> dict[str, Any]:
        """Counts and settings as plain JSON-able values (no credentials)."""
        with self._lock:
            return self._state()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Merge counts from :meth:`state_dict` (each count keeps the larger value)."""
        try:
            loaded = {k: int(state[k] if k not in _SINCE_LATER else state.get(k, 0)) for k in _COUNTS}
        except (KeyError, TypeError, ValueError) as exc:
            raise CheckpointError(
                f"remote ledger state lacks or mangles {exc}; expected the keys {', '.join(_COUNTS)}"
            ) from None
        with self._lock:
            for k, v in loaded.items():
                setattr(self, k, max(getattr(self, k), v))

    def _state(self) -> dict[str, Any]:
        state: dict[str, Any] = {k: getattr(self, k) for k in _COUNTS}
        state.update(max_queries=self.max_queries, price_per_query=self.price_per_query, cost=self.cost)
        return state

    def _save(self) -> None:
        # Outside our lock: the store takes its own lock and then reads state_dict (ours), one order only.
        if self.store is not None:
            self.store.save_state("ledger", self.state_dict)

    def __repr__(self) -> str:
        cap = "no cap" if self.max_queries is None else f"max_queries={self.max_queries}"
        return (
            f"RemoteLedger(billed={self.billed}, unconfirmed={self.unconfirmed}, attempts={self.attempts}, "
            f"cache_hits={self.cache_hits}, cost={self.cost:.4g}, {cap})"
        )
