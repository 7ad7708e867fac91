"""Images in flight: a concurrent call asking for an image already being sent waits for its answer.

The answer cache is consulted before a request leaves, but an image whose
request has not come back yet is not in the cache: without this register, two
threads (or two coroutines) asking for the same image at once would both pay
for it. :class:`RemoteModel` registers every image it sends as a :class:`Flight`,
under the same lock as its cache lookup; a call that finds an image there
waits for that request (a ``threading.Event`` for threads, a future on its own
event loop for coroutines) instead of sending it again.
"""

from __future__ import annotations

import asyncio
import threading

from bar_sdk.adapters.remote.presets.base import Answer

__all__ = ["Flight"]


class Flight:
    """One image being sent by one call.

    :meth:`land` is called once by the call that sends it, with the answer
    (the request was billed and answered), with ``error`` (the API refused this
    image inside a billed answer) or with neither (the request failed or was
    never sent: a waiter then sends the image itself, under its own budget).
    """

    __slots__ = ("owner", "answer", "error", "_done", "_lock", "_waiters")

    def __init__(self) -> None:
        self.owner = threading.get_ident()  # the thread of the call sending it
        self.answer: Answer | None = None
        self.error: BaseException | None = None
        self._done = threading.Event()
        self._lock = threading.Lock()
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []

    @property
    def done(self) -> bool:
        return self._done.is_set()

    def land(self, answer: Answer | None = None, error: BaseException | None = None) -> None:
        with self._lock:
            self.answer, self.error = answer, error
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
