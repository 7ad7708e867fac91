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
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, Sequence, TypeVar

import numpy as np

from bar_sdk.adapters.remote.cache import AnswerCache, image_keys
from bar_sdk.adapters.remote.encoding import quantize
from bar_sdk.adapters.remote.flight import Flight
from bar_sdk.adapters.remote.labels import LabelMapper
from bar_sdk.adapters.remote.presets.base import Answer, DenseAnswers
from bar_sdk.errors import InvalidInputError, QueryBudgetExceeded, RemoteError

__all__ = ["Chunk", "Plan", "Planner", "check_shape", "parallel_map", "PARALLEL_BYTES", "PART_BYTES"]

T = TypeVar("T")
R = TypeVar("R")

PARALLEL_BYTES = 256 * 2**10
"""Below this many bytes of work a stage runs serially: a thread hand-off costs more than it saves."""

PART_BYTES = 64 * 2**20
"""A large call is prepared a part at a time, each part at least this many bytes of input (and at least
one request per concurrent slot), so that its first requests leave long before its last images are hashed."""


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
    """The images of one request: their keys, and the 8-bit images themselves as one ``(n, C, H, W)`` array."""

    keys: list[str]
    images: np.ndarray
    flight: Flight | None = None  # the flight this call registered for these images, until it lands
    settled: bool = False  # billed and stored, or given up: its reserved room is accounted for
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
    answers: dict[str, Answer] = field(default_factory=dict)  # answers read one image at a time
    blocks: list[tuple[list[str], DenseAnswers]] = field(default_factory=list)  # answers read as one block
    chunks: list[Chunk] = field(default_factory=list)
    owned: dict[Flight, list[str]] = field(default_factory=dict)  # flights this call registered, still to land
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

    def start(self, x: np.ndarray) -> Plan:
        """A plan for the checked images ``x`` with none of them prepared yet (see :meth:`prepare_part`)."""
        return Plan(keys=[], q=x if x.dtype == np.uint8 else np.empty(x.shape, np.uint8), first={})

    def prepare_part(self, plan: Plan, x: np.ndarray, start: int, stop: int) -> list[str]:
        """Quantise and hash rows ``start:stop`` of ``x`` into ``plan`` (parts in order, from row 0; CPU
        work only, any thread may do it).

        Returns the keys of the images seen for the first time in this call, in order.
        """
        if len(plan.keys) != start:
            raise ValueError(f"rows {start}:{stop} prepared after {len(plan.keys)} rows; expected the next part")
        q, pool = plan.q[start:stop], self._pool()
        workers = 1 if pool is None or len(q) < 2 or q.nbytes < PARALLEL_BYTES else min(len(q), pool._max_workers)
        bounds = np.linspace(0, len(q), workers + 1).astype(int)
        spans = list(zip(bounds[:-1], bounds[1:], strict=True))
        if x.dtype != np.uint8:
            parallel_map(
                pool, lambda ab: quantize(x[start + ab[0] : start + ab[1]], out=q[ab[0] : ab[1]]), spans, q.nbytes
            )
        hashed = parallel_map(pool, lambda ab: image_keys(q[ab[0] : ab[1]], self.identity), spans, q.nbytes)
        keys = [key for part in hashed for key in part]
        plan.keys.extend(keys)
        first = plan.first
        fresh = dict(zip(keys, range(start, stop), strict=True))
        if len(fresh) == len(keys) and first.keys().isdisjoint(fresh):  # no image repeats: one dict operation
            first.update(fresh)
            return keys
        new = []
        for i, key in enumerate(keys, start):
            if key not in first:
                first[key] = i
                new.append(key)
        return new

    def hold(self, n: int) -> bool:
        """Reserve room for ``n`` images in the ledger ahead of preparing them, or ``False`` (nothing held)."""
        try:
            self.ledger.reserve(n)
        except QueryBudgetExceeded:
            return False
        return True

    def claim(self, plan: Plan, keys: list[str], asynchronous: bool, *, reserved: bool = False) -> int:
        """Answer ``keys`` from the cache, wait for those in flight, and reserve and chunk the rest.

        Returns how many images this call is to send; ``reserved``: their room is already held
        (:meth:`hold`), so nothing is reserved here.
        """
        me = threading.get_ident()
        with self.lock:
            cached = self.cache.get_many(keys) if self.use_cache else {}
            flights = self.flights
            mine: list[str]
            waits: dict[str, Flight] = {}
            shadowed = False
            if not cached and flights.keys().isdisjoint(keys):  # the common case, without a lookup per image
                mine = keys
            else:
                mine = []
                for k in keys:
                    if k in cached:
                        continue
                    flight = flights.get(k)
                    # A blocking call cannot wait for a coroutine of its own thread's event loop: it sends itself.
                    if flight is not None and (asynchronous or flight.owner != me):
                        waits[k] = flight
                    else:
                        mine.append(k)
                        shadowed = shadowed or flight is not None
            # Reserve every image this call sends before the first request leaves: refused whole, nothing sent.
            if not reserved:
                self.ledger.reserve(len(mine))
            step = self.preset.max_batch
            parts = [mine[start : start + step] for start in range(0, len(mine), step)]
            chunks = []
            for part in parts:  # one flight per request, under each of its images not already in flight
                flight = Flight()
                mapped = [k for k in part if k not in flights] if shadowed else part
                flights.update(dict.fromkeys(mapped, flight))
                plan.owned[flight] = mapped
                chunks.append(Chunk(part, _take(plan.q, self._rows(plan, part)), flight))
        plan.answers.update(cached)
        plan.waits.update(waits)
        plan.n_own += len(mine)
        plan.chunks.extend(chunks)
        plan.n_requests += len(plan.chunks)
        return len(mine)

    @staticmethod
    def _rows(plan: Plan, keys: Sequence[str]) -> np.ndarray:
        """The first row of each of ``keys`` in ``plan``'s images."""
        return np.fromiter(map(plan.first.__getitem__, keys), np.intp, len(keys))

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
        flights: Iterable[Flight | None],
        good: Mapping[str, Answer] | None = None,
        refused: Mapping[str, BaseException] | None = None,
    ) -> None:
        """Land this call's ``flights`` (after their answers were cached) and wake their waiters.

        A flight is one request, so each lands once, with ``good`` and ``refused`` for its waiters to
        read their own image from; one this call already landed (or never registered) is skipped.
        """
        landed: list[Flight] = []
        with self.lock:
            for flight in flights:
                keys = plan.owned.pop(flight, None) if flight is not None else None
                if flight is not None and keys is not None:
                    deque(map(self.flights.__delitem__, keys), maxlen=0)  # registered by this call: still its own
                    landed.append(flight)
        for flight in landed:
            flight.land(good, refused)

    def finish(self, plan: Plan, mapper: LabelMapper) -> np.ndarray:
        """The score rows, in the order of ``x``; the images this call did not send count as cache hits."""
        if not plan.blocks:
            scores = mapper.to_matrix([plan.answers[k] for k in plan.keys])
        else:  # fill each image's first row from its block or its answer, then copy it to the rows repeating it
            scores = np.empty((len(plan.keys), len(mapper.labels)), dtype=np.float64)
            filled = 0
            for keys, block in plan.blocks:
                scores[self._rows(plan, keys)] = mapper.to_matrix(block)
                filled += len(keys)
            if plan.answers:
                keys = list(plan.answers)
                scores[self._rows(plan, keys)] = mapper.to_matrix([plan.answers[k] for k in keys])
                filled += len(keys)
            if filled != len(plan.first):
                raise RuntimeError(f"{len(plan.first) - filled} image(s) of this call have no answer")
            if len(plan.first) < len(plan.keys):
                scores = scores[self._rows(plan, plan.keys)]
        self.ledger.record_cache_hits(len(plan.keys) - plan.n_own)
        return scores


def _take(q: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """``q[rows]``: a view when the rows are consecutive (a batch of distinct new images), else a copy."""
    if len(rows) and rows[-1] - rows[0] == len(rows) - 1 and np.array_equal(rows, np.arange(rows[0], rows[-1] + 1)):
        view: np.ndarray = q[rows[0] : rows[-1] + 1]
        return view
    taken: np.ndarray = q[rows]
    return taken


def copied(exc: BaseException) -> BaseException:
    """A copy of ``exc`` for another call to raise (one exception object is never raised by two threads)."""
    import copy

    try:
        return copy.copy(exc)
    except Exception:  # an exception type whose constructor does not take its own args back
        return RemoteError(str(exc))
