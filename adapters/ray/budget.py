"""One remote budget for every worker: a RemoteLedger held by a named, detached Ray actor."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any

from bar_sdk.adapters.remote.ledger import RemoteLedger
from bar_sdk.contract import check_float, check_int
from bar_sdk.distributed.actors import DEFAULT_NAMESPACE, ServiceClient
from bar_sdk.errors import InvalidInputError

__all__ = ["SharedRemoteLedger"]


def holder_id() -> str:
    """This process, as the service knows it: ``host:pid`` (read at call time, so a fork gets its own)."""
    return f"{socket.gethostname()}:{os.getpid()}"


class _TrackedLedger:
    """The actor body: a RemoteLedger, plus which process holds which in-flight images.

    The rules (reserve, check_retry, billing) are RemoteLedger's own; this
    class only remembers who reserved what, so that the images a dead worker
    had in flight can be moved to ``unconfirmed`` (they may have reached the
    API and been billed) instead of staying "in flight" for ever.
    """

    def __init__(self, max_queries: int | None, price_per_query: float, state_dir: str | None):
        store = None
        if state_dir is not None:
            from bar_sdk.adapters.remote.cache import AnswerCache

            Path(state_dir).mkdir(parents=True, exist_ok=True)
            store = AnswerCache(Path(state_dir) / "shared_ledger.sqlite")
        self.ledger = RemoteLedger(max_queries, price_per_query, store)
        self.held: dict[str, int] = {}

    def _hold(self, holder: str, n: int) -> None:
        left = self.held.get(holder, 0) + n
        if left:
            self.held[holder] = left
        else:
            self.held.pop(holder, None)

    def reserve(self, n: int, holder: str) -> None:
        self.ledger.reserve(n)
        self._hold(holder, n)

    def release(self, n: int, holder: str) -> None:
        self.ledger.release(n)
        self._hold(holder, -n)

    def record_billed(self, n: int, holder: str) -> None:
        self.ledger.record_billed(n)
        self._hold(holder, -n)

    def check_retry(self, n: int) -> None:
        self.ledger.check_retry(n)

    def record_attempt(self, n_images: int, retry: bool) -> None:
        self.ledger.record_attempt(n_images, retry=retry)

    def record_cache_hits(self, n: int) -> None:
        self.ledger.record_cache_hits(n)

    def record_failure(self, throttled: bool, unconfirmed: int) -> None:
        self.ledger.record_failure(throttled=throttled, unconfirmed=unconfirmed)

    def reclaim(self, holder: str) -> int:
        """The images ``holder`` (a dead process) had in flight become unconfirmed; return how many."""
        n = self.held.pop(holder, 0)
        if n:
            with self.ledger._lock:
                self.ledger.in_flight -= n
                self.ledger.unconfirmed += n
            self.ledger._save()
        return n

    def reclaim_dead(self) -> int:
        """Reclaim the holders on this host whose process has ended."""
        here = socket.gethostname()
        total = 0
        for holder in list(self.held):
            host, _, pid = holder.rpartition(":")
            if host == here and not _alive(int(pid)):
                total += self.reclaim(holder)
        return total

    def snapshot(self) -> dict[str, Any]:
        state = self.ledger.state_dict()
        state.update(in_flight=self.ledger.in_flight, remaining=self.ledger.remaining, holders=dict(self.held))
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.ledger.load_state_dict(state)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class SharedRemoteLedger(ServiceClient):
    """A :class:`~bar_sdk.adapters.remote.RemoteLedger` shared by every worker of a Ray cluster.

    Pass it as ``RemoteModel(..., ledger=shared)`` in each worker: every
    request reserves its images in the one actor before it leaves, with the
    single-process rules (a call whose uncached images do not fit is refused
    whole; ``billed + unconfirmed + in flight <= max_queries``; a retry goes
    out only while what the vendor may have billed still fits). The counts
    live in the actor, so a worker that dies loses none of them, and the
    actor is detached, so it outlives the driver: a second job attaches with
    ``SharedRemoteLedger(name)``.

    Images a dead worker had in flight stay counted against the cap (they may
    have been billed); :meth:`reclaim_dead` (or :meth:`reclaim` for a worker on
    another host) moves them to ``unconfirmed``, which says so.

    Parameters
    ----------
    name : str
        Name of an existing shared ledger (attach). Use :meth:`create` to make one.
    namespace : str
        Its Ray namespace (``"bar_sdk"`` by default).

    Attributes
    ----------
    billed, unconfirmed, in_flight, attempts, requests, cache_hits, retries, throttled, failures, cost, remaining
        Read from the actor (one round trip each); :meth:`snapshot` reads all at once.
    """

    service_class = _TrackedLedger
    kind = "shared remote ledger"
    store = None  # RemoteModel saves no ledger state of its own: the actor holds (and may persist) the counts

    @classmethod
    def create(
        cls,
        name: str,
        max_queries: int | None = None,
        *,
        price_per_query: float = 0.0,
        state_dir: str | os.PathLike[str] | None = None,
        namespace: str = DEFAULT_NAMESPACE,
        address: str | None = None,
    ) -> SharedRemoteLedger:
        """Create the named ledger, or attach to it when it exists with the same settings.

        Parameters
        ----------
        max_queries : int, optional
            Cap on what the vendor may bill all workers together.
        price_per_query : float
        state_dir : path, optional
            Folder (on the actor's node) where the actor saves its counts after
            every billed or failed request; a new actor made with the same
            folder (after the cluster restarted) starts from them.
        address : str, optional
            Cluster to join if Ray is not started (``"auto"`` for ``ray start``).
        """
        check_int(max_queries, "max_queries", low=1, allow_none=True)
        check_float(price_per_query, "price_per_query", low=0.0)
        if state_dir is not None and not isinstance(state_dir, (str, os.PathLike)):
            raise InvalidInputError(f"state_dir={state_dir!r}; expected a folder path or None")
        settings = {
            "max_queries": max_queries,
            "price_per_query": float(price_per_query),
            "state_dir": None if state_dir is None else str(Path(state_dir).resolve()),
        }
        return cls._create(name, namespace, address, settings)

    # -- what RemoteModel calls ----------------------------------------------------------------

    def reserve(self, n: int) -> None:
        self._call("reserve", n, holder_id())

    def release(self, n: int) -> None:
        self._call("release", n, holder_id())

    def check_retry(self, n: int) -> None:
        self._call("check_retry", n)

    def record_attempt(self, n_images: int, *, retry: bool) -> None:
        self._call("record_attempt", n_images, retry)

    def record_billed(self, n: int, *, save: bool = True) -> None:
        self._call("record_billed", n, holder_id())

    def record_cache_hits(self, n: int) -> None:
        if n:
            self._call("record_cache_hits", n)

    def record_failure(self, *, throttled: bool, unconfirmed: int = 0) -> None:
        self._call("record_failure", throttled, unconfirmed)

    def state_dict(self) -> dict[str, Any]:
        """The counts, like ``RemoteLedger.state_dict`` (for checkpoints and reports)."""
        state = self.snapshot()
        for k in ("in_flight", "remaining", "holders"):
            state.pop(k)
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._call("load_state_dict", state)

    # -- for people ------------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """Every count at one instant, plus ``in_flight``, ``remaining`` and ``holders`` (``host:pid`` -> images)."""
        value: dict[str, Any] = self._call("snapshot")  # what the actor returned (Ray is untyped)
        return value

    def reclaim(self, holder: str) -> int:
        """Move the in-flight images of ``holder`` (``host:pid`` of a dead worker) to ``unconfirmed``."""
        value: int = self._call("reclaim", holder)  # what the actor returned (Ray is untyped)
        return value

    def reclaim_dead(self) -> int:
        """:meth:`reclaim` every holder on the actor's host whose process has ended; return the images moved."""
        value: int = self._call("reclaim_dead")  # what the actor returned (Ray is untyped)
        return value

    def __getattr__(self, name: str) -> Any:
        if name in (
            "billed",
            "unconfirmed",
            "in_flight",
            "attempts",
            "requests",
            "cache_hits",
            "retries",
            "throttled",
            "failures",
            "cost",
            "remaining",
            "max_queries",
            "price_per_query",
        ):
            return self.snapshot()[name]
        raise AttributeError(name)
