"""The contract side of RemoteModel: what one call asks for, before and after any request.

Inputs are checked (shape), quantised to 8 bits and hashed (the cache key of
each image), answered from the cache or from a concurrent call's request in
flight, reserved in the ledger, and split into requests of the preset's batch
size; at the end the answers are mapped onto the labels. Nothing here talks to
the network: :mod:`bar_sdk.adapters.remote.client` sends the requests.

Large batches are quantised and hashed on a small thread pool (NumPy's
arithmetic and hashlib release the GIL); results are ordered as the input, and
equal to the serial path byte for byte.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, Sequence, TypeVar

import numpy as np

from bar_sdk.adapters.remote.cache import AnswerCache, image_keys
from bar_sdk.adapters.remote.encoding import quantize
from bar_sdk.adapters.remote.flight import Flight
from bar_sdk.adapters.remote.labels import LabelMapper
from bar_sdk.adapters.remote.presets.base import Answer
from bar_sdk.errors import InvalidInputError, QueryBudgetExceeded, RemoteError

__all__ = ["Chunk", "Plan", "Planner", "check_shape", "parallel_map", "PARALLEL_BYTES"]

T = TypeVar("T")
R = TypeVar("R")

PARALLEL_BYTES = 256 * 2**10
"""Below this many bytes of work a stage runs serially: a thread hand-off costs more than it saves."""


def parallel_map(pool: ThreadPoolExecutor | None, fn: Callable[[T], R], items: Sequence[T], nbytes: int) -> list[R]:
    """``[fn(item) for item in items]``, on ``pool`` when there is one and ``nbytes`` of work is worth it.

    Order is kept; the first exception of a worker is raised here, in the caller's thread.
    """
    if pool is None or len(items) < 2 or nbytes < PARALLEL_BYTES:
        return [fn(item) for item in items]
    return list(pool.map(fn, items))


def check_shape(shape: Any) -> tuple[int, int, int]:
    """``input_shape`` as a checked ``(C, H, W)`` with C in (1, 3)."""
    try:
        out = tuple(int(s) for s in shape)
    except (TypeError, ValueError):
        raise InvalidInputError(f"input_shape={shape!r}; expected (C, H, W)") from None
    if len(out) != 3 or out[0] not in (1, 3) or min(out) < 1:
        raise InvalidInputError(f"input_shape={shape!r}; expected (C, H, W) with C in (1, 3) and H, W >= 1")
    return out


@dataclass
class Chunk:
    """The images of one request."""

    keys: list[str]
    images: list[np.ndarray]
    reached: bool = False  # an attempt reached the API: it answered (any status), or it may have served it


@dataclass
class Plan:
    """One predict call: its images, their answers, what it sends and what it waits for.

    ``sent`` and ``billed`` count, in distinct images, what this call put on the
    wire (a request that reached the API, whatever it answered) and what of it
    was billed; a failed call reports them on its exception (see :meth:`Plan.settled`).
    """

    keys: list[str]  # one per row of x
    q: np.ndarray  # the 8-bit images
    first: dict[str, int]  # key -> its first row
    answers: dict[str, Answer] = field(default_factory=dict)
    chunks: list[Chunk] = field(default_factory=list)
    owned: dict[str, Flight] = field(default_factory=dict)  # flights this call registered, still to land
    waits: dict[str, Flight] = field(default_factory=dict)  # images a concurrent call is sending
    n_own: int = 0  # distinct images this call meant to send itself
    n_requests: int = 0
    sent: int = 0
    billed: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def count(self, chunk: Chunk, *, billed: bool) -> None:
        with self.lock:
            self.sent += len(chunk.keys) if billed or chunk.reached else 0
            self.billed += len(chunk.keys) if billed else 0

    def settled(self, exc: BaseException) -> BaseException:
        """``exc`` with what this call put on the wire: ``images_sent``, ``images_billed``, and a true message."""
        exc.images_sent = self.sent  # type: ignore[attr-defined]
        exc.images_billed = self.billed  # type: ignore[attr-defined]
        if (self.sent or self.n_requests > 1) and exc.args and isinstance(exc.args[0], str):
            text = exc.args[0].replace(" (nothing was sent)", "")
            exc.args = (
                f"{text}. This call sent {self.sent} of its {self.n_own} image(s) to send "
                f"({self.billed} billed, {self.sent - self.billed} without a usable answer); "
                f"the other {self.n_own - self.sent} were not sent",
                *exc.args[1:],
            )
        return exc


class Planner:
    """Cache planning and single flight for the calls of one RemoteModel.

    An image is always found in the cache or in flight once a call has started
    sending it: the lookup and the registration happen under one lock, and a
    flight lands only after its answer was cached.
    """

    def __init__(
        self,
        cache: AnswerCache,
        use_cache: bool,
        ledger: Any,
        preset: Any,
        identity: str,
        pool: Callable[[], ThreadPoolExecutor | None],
    ) -> None:
        self.cache, self.use_cache, self.ledger = cache, use_cache, ledger
        self.preset, self.identity, self._pool = preset, identity, pool
        self.flights: dict[str, Flight] = {}
        self.lock = threading.Lock()

    def plan(self, x: np.ndarray, *, asynchronous: bool) -> Plan:
        """Quantise and hash the checked images ``x`` and claim what they need."""
        plan = self.prepare(x)
        self.claim(plan, list(plan.first), asynchronous)
        return plan

    def prepare(self, x: np.ndarray) -> Plan:
        """The images ``x`` quantised and hashed, nothing claimed yet (CPU work only: any thread may do it)."""
        pool = self._pool()
        if pool is not None and len(x) > 1 and x.dtype != np.uint8 and x.nbytes >= PARALLEL_BYTES:
            q = np.concatenate(list(pool.map(quantize, np.array_split(x, min(len(x), pool._max_workers)))))
        else:
            q = quantize(x)
        if pool is not None and len(q) > 1 and q.nbytes >= PARALLEL_BYTES:
            parts = np.array_split(q, min(len(q), pool._max_workers))
            keys = [key for part in pool.map(lambda part: image_keys(part, self.identity), parts) for key in part]
        else:
            keys = image_keys(q, self.identity)
        first: dict[str, int] = {}
        for i, key in enumerate(keys):
            first.setdefault(key, i)
        return Plan(keys=keys, q=q, first=first)

    def claim(self, plan: Plan, keys: list[str], asynchronous: bool) -> None:
        """Answer ``keys`` from the cache, wait for those in flight, and reserve and chunk the rest."""
        me = threading.get_ident()
        with self.lock:
            cached = self.cache.get_many(keys) if self.use_cache else {}
            mine, waits = [], {}
            for k in keys:
                if k in cached:
                    continue
                flight = self.flights.get(k)
                # A blocking call cannot wait for a coroutine of its own thread's event loop: it sends itself.
                if flight is not None and (asynchronous or flight.owner != me):
                    waits[k] = flight
                else:
                    mine.append(k)
            # Reserve every image this call sends before the first request leaves: refused whole, nothing sent.
            self.ledger.reserve(len(mine))
            step = self.preset.max_batch
            parts = [mine[start : start + step] for start in range(0, len(mine), step)]
            for part in parts:  # one flight per request, under each of its images
                flight = Flight()
                for k in part:
                    if k not in self.flights:
                        self.flights[k] = plan.owned[k] = flight
        plan.answers.update(cached)
        plan.waits.update(waits)
        plan.n_own += len(mine)
        for part in parts:
            plan.chunks.append(Chunk(part, [plan.q[plan.first[k]] for k in part]))
        plan.n_requests += len(plan.chunks)

    def next_round(self, plan: Plan, errors: list[BaseException], *, asynchronous: bool) -> bool:
        """After the waits: take the answers of landed flights; claim again the images whose flight failed."""
        again = []
        for k, flight in plan.waits.items():
            if k in flight.answers:
                plan.answers[k] = flight.answers[k]
            elif k in flight.errors:
                errors.append(copied(flight.errors[k]))
            else:
                again.append(k)
        plan.waits.clear()
        if errors or not again:
            return False
        try:
            self.claim(plan, again, asynchronous)
        except QueryBudgetExceeded as exc:
            errors.append(exc)
            return False
        return True

    def land(
        self,
        plan: Plan,
        keys: Iterable[str],
        good: Mapping[str, Answer] | None = None,
        refused: Mapping[str, BaseException] | None = None,
    ) -> None:
        """Land this call's flights of ``keys`` (after their answers were cached) and wake their waiters.

        ``keys`` covers whole requests (a flight is one request), so each flight lands once, with
        ``good`` and ``refused`` for its waiters to read their own image from.
        """
        landed: set[Flight] = set()
        with self.lock:
            for k in keys:
                flight = plan.owned.pop(k, None)
                if flight is not None:
                    if self.flights.get(k) is flight:
                        del self.flights[k]
                    landed.add(flight)
        for flight in landed:
            flight.land(good, refused)

    def finish(self, plan: Plan, mapper: LabelMapper) -> np.ndarray:
        """The score rows, in the order of ``x``; the images this call did not send count as cache hits."""
        scores = mapper.to_matrix([plan.answers[k] for k in plan.keys])
        self.ledger.record_cache_hits(len(plan.keys) - plan.n_own)
        return scores


def copied(exc: BaseException) -> BaseException:
    """A copy of ``exc`` for another call to raise (one exception object is never raised by two threads)."""
    import copy

    try:
        return copy.copy(exc)
    except Exception:  # an exception type whose constructor does not take its own args back
        return RemoteError(str(exc))
