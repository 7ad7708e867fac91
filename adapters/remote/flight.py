"""Images in flight: a concurrent call asking for an image already being sent waits for its answer.

The answer cache is consulted before a request leaves, but an image whose
request has not come back yet is not in the cache: without this register, two
threads (or two coroutines) asking for the same image at once would both pay
for it. :class:`RemoteModel` registers every request it sends as a :class:`Flight`,
under each of its images, under the same lock as its cache lookup; a call that finds an image there
waits for that request (a ``threading.Event`` for threads, a future on its own
event loop for coroutines) instead of sending it again.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Iterator, Mapping, Sequence

from bar_sdk.adapters.remote.presets.base import Answer, DenseAnswers

__all__ = ["Flight", "KeyedAnswers"]


class KeyedAnswers(Mapping[str, Answer]):
    """A request's :class:`DenseAnswers` block under its images' keys (key ``i`` answers row ``i``).

    What a waiter reads its own image from, and what the cache stores: the per-key index and each
    image's dict are built only when someone asks, so a request nobody waits for costs none of it.
    """

    __slots__ = ("_keys", "block", "_index")

    def __init__(self, keys: Sequence[str], block: DenseAnswers) -> None:
        if len(keys) != len(block):
            raise ValueError(f"{len(keys)} keys for {len(block)} answers")
        self._keys, self.block = list(keys), block
        self._index: dict[str, int] | None = None

    def __getitem__(self, key: str) -> Answer:
        return self.block[self._positions()[key]]

    def __contains__(self, key: object) -> bool:
        return key in self._positions()  # without building the image's dict

    def _positions(self) -> dict[str, int]:
        if self._index is None:
            self._index = dict(zip(self._keys, range(len(self._keys)), strict=True))
        return self._index

    def __iter__(self) -> Iterator[str]:
        return iter(self._keys)

    def __len__(self) -> int:
        return len(self._keys)


class Flight:
    """The images of one request, being sent by one call.

    :meth:`land` is called once by the call that sends them, with the answers
    of those the API answered (the request was billed), the errors of those it
    refused inside a billed answer, and neither for the rest (the request failed
    or was never sent: a waiter then sends such an image itself, under its own
    budget). One flight covers every image of its request, so a batch of
    thousands costs one event, not thousands.
    """

    __slots__ = ("owner", "answers", "errors", "_done", "_lock", "_waiters")

    def __init__(self) -> None:
        self.owner = threading.get_ident()  # the thread of the call sending it
        self.answers: Mapping[str, Answer] = {}
        self.errors: Mapping[str, BaseException] = {}
        self._done = threading.Event()
        self._lock = threading.Lock()
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []

    @property
    def done(self) -> bool:
        return self._done.is_set()

    def land(
        self, answers: Mapping[str, Answer] | None = None, errors: Mapping[str, BaseException] | None = None
    ) -> None:
        with self._lock:
            self.answers, self.errors = answers or {}, errors or {}
            self._done.set()
            waiters, self._waiters = self._waiters, []
        for loop, future in waiters:
            try:
                loop.call_soon_threadsafe(_resolve, future)
            except RuntimeError:  # that event loop is closed: nobody is waiting there any more
                pass

    def wait(self) -> None:
        """Block this thread until the flight lands."""
        self._done.wait()

    async def wait_async(self) -> None:
        """Wait on the running event loop (the flight may be sent by a thread or another loop)."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        with self._lock:
            if self._done.is_set():
                return
            self._waiters.append((loop, future))
        await future


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
