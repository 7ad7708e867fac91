"""The client side of RemoteModel: build, send, retry, rate-limit and settle the requests of one call.

One request attempt is written once, as :meth:`RequestClient.attempt`: a
generator that yields what it needs done (a rate-limit wait, then the signed
request to send) and gets the answer back. The blocking and the asyncio paths
are thin drivers of it (:func:`drive` and :func:`adrive`) that differ only in
how they sleep and send; the retry loops around it differ only in ``for`` and
``async for``.

Settlement: an answered request is billed and its answers cached in one
transaction; a request that failed for good, or was never sent, gives its
reserved room back and counts only what reached the API. Every error raised
is redacted (the credential never appears in its message).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Generator, Mapping, Sequence, TypeVar, Union
from urllib.parse import urlsplit, urlunsplit

import numpy as np

from bar_sdk.adapters.remote.cache import AnswerCache
from bar_sdk.adapters.remote.encoding import encode_image
from bar_sdk.adapters.remote.flight import KeyedAnswers
from bar_sdk.adapters.remote.http import LOOPBACK_HOSTS, AsyncSender, HttpRequest, HttpResponse, SyncSender
from bar_sdk.adapters.remote.planning import Chunk, Plan, Planner, parallel_map
from bar_sdk.adapters.remote.presets import Preset
from bar_sdk.adapters.remote.presets.base import Answer, DenseAnswers
from bar_sdk.adapters.remote.retry import RetryPolicy
from bar_sdk.errors import InvalidInputError, RateLimitError, RemoteError, ResponseFormatError

__all__ = ["RequestClient", "check_base_url", "drive", "adrive"]

logger = logging.getLogger(__name__)

Results = Sequence[Union[Answer, RemoteError]]
"""One request's answers, one per image: an answer, or the error of an image the API refused."""

Steps = Generator[Union[float, HttpRequest], HttpResponse, Results]
"""An attempt's steps: yields a float (seconds to wait) or an HttpRequest (to send), is sent the
response; returns the answers."""

E = TypeVar("E", bound=BaseException)


@dataclass(frozen=True)
class _Done:
    results: Results


def _advance(steps: Steps, reply: HttpResponse | RemoteError | None) -> float | HttpRequest | _Done:
    """Hand ``reply`` (an answer, or the RemoteError a send raised) to the steps: their next step, or done."""
    try:
        if isinstance(reply, RemoteError):
            return steps.throw(reply)
        return next(steps) if reply is None else steps.send(reply)  # None: a start, or after a wait
    except StopIteration as done:
        return _Done(done.value)


def drive(steps: Steps, sleep: Callable[[float], Any], send: Callable[[HttpRequest], HttpResponse]) -> Results:
    """Run an attempt's steps, blocking."""
    step = _advance(steps, None)
    while not isinstance(step, _Done):
        reply: HttpResponse | RemoteError | None = None
        if isinstance(step, HttpRequest):
            try:
                reply = send(step)
            except RemoteError as exc:
                reply = exc
        else:
            sleep(step)
        step = _advance(steps, reply)
    return step.results


async def adrive(
    steps: Steps, sleep: Callable[[float], Any], send: Callable[[HttpRequest], Awaitable[HttpResponse]]
) -> Results:
    """Run an attempt's steps on the event loop (``sleep`` may return an awaitable)."""
    step = _advance(steps, None)
    while not isinstance(step, _Done):
        reply: HttpResponse | RemoteError | None = None
        if not isinstance(step, HttpRequest):
            slept = sleep(step)
            if inspect.isawaitable(slept):
                await slept
        else:
            try:
                reply = await send(step)
            except RemoteError as exc:
                reply = exc
        step = _advance(steps, reply)
    return step.results


class RequestClient:
    """Sends the chunks of a :class:`~bar_sdk.adapters.remote.planning.Plan` and settles them.

    It owns the transport (``sender``), the retry policy and its jitter, the
    rate limiter, the credential, and the billing of answered requests into
    ``ledger`` and ``cache``; ``planner`` lands the flights of what it settles.
    """

    def __init__(
        self,
        preset: Preset,
        base_url: str,
        credentials: Any,
        *,
        labels: Sequence[str],
        ledger: Any,
        bucket: Any,
        retry: RetryPolicy,
        sender: SyncSender,
        cache: AnswerCache,
        use_cache: bool,
        planner: Planner,
        max_concurrency: int,
        image_format: str,
        jpeg_quality: int,
        png_level: int,
        sleep: Callable[[float], Any] | None,
        pool: Callable[[], ThreadPoolExecutor | None],
    ) -> None:
        self.preset, self.base_url, self.credentials, self.labels = preset, base_url, credentials, tuple(labels)
        self._origin = urlsplit(base_url)[:2]  # scheme and host: the only place the credential goes
        self.ledger, self.bucket, self.retry, self.sender = ledger, bucket, retry, sender
        self.cache, self.use_cache, self.planner = cache, use_cache, planner
        self.max_concurrency = max_concurrency
        self.image_format, self.jpeg_quality, self.png_level = image_format, jpeg_quality, png_level
        self.sleep, self._pool = sleep, pool
        self.rng = np.random.default_rng(retry.random_state)
        self.rng_lock = threading.Lock()
        self.executor: ThreadPoolExecutor | None = None

    # -- requests ---------------------------------------------------------------------------------

    def request_for(self, images: np.ndarray | list[np.ndarray]) -> HttpRequest:
        """The unsigned request for ``images`` (``(n, C, H, W)`` uint8, or a list of ``(C, H, W)``),
        encoded on the worker pool when it pays off."""
        self.preset.prepare(self.base_url, self.send_unbilled, self.sleep or time.sleep)
        if self.preset.tensor_input:
            encoded: Any = images
        else:
            nbytes = images.nbytes if isinstance(images, np.ndarray) else sum(img.nbytes for img in images)
            encoded = parallel_map(self._pool(), self._encode, list(images), nbytes)
        request = self.preset.build_request(self.base_url, encoded, self.labels)
        if urlsplit(request.url)[:2] != self._origin:
            raise RemoteError(
                f"preset {self.preset.name!r} built a request for {request.host!r}; the credential is "
                f"sent only to base_url's host {urlsplit(self.base_url).netloc!r}"
            )
        return request

    def _encode(self, img: np.ndarray) -> bytes:
        return encode_image(img, self.image_format, jpeg_quality=self.jpeg_quality, png_level=self.png_level)

    def send_unbilled(self, request: HttpRequest) -> HttpResponse:
        """A free request a preset needs (readiness, metadata): to base_url's host only, never billed."""
        if urlsplit(request.url)[:2] != self._origin:
            raise RemoteError(
                f"preset {self.preset.name!r} asked for {request.host!r}; only base_url's host is contacted"
            )
        return self.sender.send(self.preset.authorize(request, self.credentials))

    # -- the blocking path ------------------------------------------------------------------------

    def send_round(self, plan: Plan, errors: list[BaseException]) -> None:
        """Send the chunks claimed so far, on threads when there are several."""
        chunks, plan.chunks = plan.chunks, []
        if len(chunks) <= 1 or self.max_concurrency == 1:
            for chunk in chunks:
                self.run_chunk(chunk, plan, errors)
        else:
            if self.executor is None:
                self.executor = ThreadPoolExecutor(self.max_concurrency, thread_name_prefix="bar-remote")
            list(self.executor.map(lambda c: self.run_chunk(c, plan, errors), chunks))

    def submit_round(self, plan: Plan, errors: list[BaseException]) -> list[tuple[Chunk, Future[None]]]:
        """Start sending the chunks claimed so far on the request threads, and return at once."""
        chunks, plan.chunks = plan.chunks, []
        if self.executor is None:
            self.executor = ThreadPoolExecutor(self.max_concurrency, thread_name_prefix="bar-remote")
        return [(chunk, self.executor.submit(self.run_chunk, chunk, plan, errors)) for chunk in chunks]

    def run_chunk(self, chunk: Chunk, plan: Plan, errors: list[BaseException]) -> None:
        if errors:  # an earlier request failed for good: send nothing more
            self.give_up(chunk, plan)
            return
        sleep = self.sleep or time.sleep
        try:
            request = self.request_for(chunk.images)
            for attempt in self._retrying(chunk, sleep, asynchronous=False):
                with attempt:
                    results = drive(
                        self.attempt(request, chunk, attempt.retry_state.attempt_number), sleep, self.sender.send
                    )
        except BaseException as exc:
            self.give_up(chunk, plan)
            errors.append(self.redacted(exc))
            return
        self.store(chunk, results, plan, errors)

    # -- the asyncio path -------------------------------------------------------------------------

    def start_round(
        self, plan: Plan, sender: AsyncSender, errors: list[BaseException], gate: asyncio.Semaphore
    ) -> list[tuple[Chunk, asyncio.Task[None]]]:
        """Start sending the chunks claimed so far as tasks of the running loop, at most ``gate`` at once."""
        chunks, plan.chunks = plan.chunks, []
        return [(c, asyncio.ensure_future(self.arun_chunk(c, plan, sender, errors, gate))) for c in chunks]

    async def run_round(self, plan: Plan, sender: AsyncSender, errors: list[BaseException]) -> None:
        """Send the chunks claimed so far, up to ``max_concurrency`` at once on this event loop."""
        tasks = self.start_round(plan, sender, errors, asyncio.Semaphore(self.max_concurrency))
        try:
            await asyncio.gather(*(task for _, task in tasks))
        finally:
            self.settle_cancelled(tasks, plan)

    def settle_cancelled(self, tasks: list[tuple[Chunk, asyncio.Task[None]]], plan: Plan) -> None:
        """Give back the room of chunks whose task was cancelled before it ran (it could not do so itself)."""
        for chunk, task in tasks:
            if task.done():
                self.give_up(chunk, plan)  # a no-op for a chunk already stored or given up

    async def arun_chunk(
        self, chunk: Chunk, plan: Plan, sender: AsyncSender, errors: list[BaseException], gate: asyncio.Semaphore
    ) -> None:
        try:
            async with gate:
                if errors:
                    self.give_up(chunk, plan)
                    return
                sleep = self.sleep or asyncio.sleep
                try:
                    # encoding is CPU work (tens of ms for 32 large images): on a thread, so that the event loop
                    # keeps sending the other requests on time instead of letting them leave in bunches
                    request = await asyncio.to_thread(self.request_for, chunk.images)
                    async for attempt in self._retrying(chunk, sleep, asynchronous=True):
                        with attempt:
                            results = await adrive(
                                self.attempt(request, chunk, attempt.retry_state.attempt_number), sleep, sender.send
                            )
                except BaseException as exc:
                    self.give_up(chunk, plan)
                    errors.append(self.redacted(exc))
                    if not isinstance(exc, Exception):
                        raise
                    return
        except BaseException:  # cancelled while waiting for a slot: its room is given back (once)
            self.give_up(chunk, plan)
            raise
        self.store(chunk, results, plan, errors)

    def _retrying(self, chunk: Chunk, sleep: Callable[[float], Any], *, asynchronous: bool) -> Any:
        return self.retry.retrying(
            rng=self.rng,
            lock=self.rng_lock,
            sleep=sleep,
            asynchronous=asynchronous,
            what=f"{self.preset.name} request of {len(chunk.keys)} image(s)",
        )

    # -- one attempt ------------------------------------------------------------------------------

    def attempt(self, request: HttpRequest, chunk: Chunk, number: int) -> Steps:
        """One request attempt: wait for the rate limit, check the budget and sign, send, settle the answer."""
        n = len(chunk.keys)
        # A first attempt lets the queue of booked tokens shorten before it books its own (once; a limiter
        # given from outside may not say, and then books at once): a retry, which has waited already, books
        # right away and so goes out ahead of fresh requests instead of behind every one of them.
        defer = getattr(self.bucket, "defer", None) if number == 1 else None
        ahead = defer() if defer is not None else 0.0
        if ahead > 0:
            yield ahead
        wait = self.bucket.reserve() if self.bucket is not None else 0.0
        if wait > 0:
            yield wait
        if number > 1:
            self.ledger.check_retry(n)
        signed = self.preset.authorize(request, self.credentials)
        try:
            response = yield signed
        except RemoteError as exc:
            chunk.reached = chunk.reached or exc.unconfirmed  # it may have reached the API
            raise self.failed(exc, n, number) from None
        chunk.reached = True
        self.ledger.record_attempt(n, retry=number > 1)
        try:
            return self.read(response, n, number)
        except RemoteError as exc:
            raise self.failed(exc, n) from None

    def read(self, response: HttpResponse, n: int, number: int) -> Results:
        logger.debug("%s: %d image(s) -> HTTP %d (attempt %d)", self.preset.name, n, response.status_code, number)
        try:
            self.preset.check(response)
            results = self.preset.parse(response, n)
            if len(results) != n:
                raise ResponseFormatError(f"preset {self.preset.name!r} read {len(results)} answers for {n} images")
        except ResponseFormatError as exc:
            err = exc
        except RemoteError:
            raise
        except Exception as exc:  # a preset tripped on an odd value: still a format error, never a raw one
            err = ResponseFormatError(
                f"preset {self.preset.name!r} could not read the answer ({type(exc).__name__}: {exc})"
            )
        else:
            return results
        # A 2xx answer was served, so the vendor may have billed it, though it could not be read.
        if response.ok:
            err.unconfirmed = True
        raise err

    def failed(self, exc: RemoteError, n: int, number: int | None = None) -> RemoteError:
        """Count a failed attempt; ``number`` when the sender failed (its attempt is counted here, unless
        the request could not be put on the wire at all)."""
        if number is not None and not getattr(exc, "unsent", False):
            self.ledger.record_attempt(n, retry=number > 1)
        throttled = isinstance(exc, RateLimitError)
        if throttled and self.bucket is not None:
            self.bucket.refund()  # the server refused without serving: its quota was not used
        # Sent but unanswered (a read timeout, say) or answered 2xx unreadably: the vendor may have billed these n.
        self.ledger.record_failure(throttled=throttled, unconfirmed=n if exc.unconfirmed else 0)
        return self.redacted(exc)

    # -- settlement -------------------------------------------------------------------------------

    def give_up(self, chunk: Chunk, plan: Plan) -> None:
        """A request that failed for good, or was never sent: free its room, count what reached the API.

        Once per chunk: a chunk already settled (stored or given up) is left as it is."""
        if chunk.settled:
            return
        chunk.settled = True
        self.ledger.release(len(chunk.keys))
        plan.count(chunk, billed=False)
        self.planner.land(plan, [chunk.flight])

    def store(self, chunk: Chunk, results: Results, plan: Plan, errors: list[BaseException]) -> None:
        keys = chunk.keys
        good: Mapping[str, Answer]
        if isinstance(results, DenseAnswers):  # a score for every label of every image: kept as one block
            good, refused = KeyedAnswers(keys, results), {}
        else:
            good = {k: r for k, r in zip(keys, results, strict=False) if not isinstance(r, RemoteError)}
            refused = {k: self.redacted(r) for k, r in zip(keys, results, strict=False) if isinstance(r, RemoteError)}
        # The bill and the answers it bought are saved in one transaction: a crash keeps both or neither.
        chunk.settled = True
        self.ledger.record_billed(len(keys), save=False)
        persisted = self.ledger.store is not None
        if self.use_cache or persisted:
            self.cache.put_many(
                good if self.use_cache else {}, {"ledger": self.ledger.state_dict} if persisted else None
            )
        with plan.lock:
            if isinstance(results, DenseAnswers):
                plan.blocks.append((keys, results))
            else:
                plan.answers.update(good)
        plan.count(chunk, billed=True)
        self.planner.land(plan, [chunk.flight], good, refused)
        if refused:
            errors.append(next(iter(refused.values())))

    def redacted(self, exc: E) -> E:
        if self.credentials is not None:
            exc.args = tuple(self.credentials.redact(a) if isinstance(a, str) else a for a in exc.args)
        return exc

    def close(self) -> None:
        if self.executor is not None:
            self.executor.shutdown(wait=True)
            self.executor = None


def check_base_url(url: Any, allow_insecure: bool) -> str:
    """``base_url`` checked: http(s), no query, no user info, plain http only to loopback unless allowed."""
    if not isinstance(url, str) or not url:
        raise InvalidInputError(f"base_url={url!r}; this preset has no default, expected e.g. 'https://host'")
    try:
        parts = urlsplit(url)
    except ValueError as exc:  # e.g. an unclosed IPv6 bracket
        raise InvalidInputError(f"base_url={url!r} is not a URL ({exc}); expected e.g. 'https://host'") from None
    # Never echo user info (``user:password@``): show the URL with it masked.
    host = parts.netloc.rpartition("@")[2]
    shown = urlunsplit(parts._replace(netloc="***@" + host)) if "@" in parts.netloc else url
    if parts.scheme not in ("http", "https") or not host or parts.query or parts.fragment:
        raise InvalidInputError(
            f"base_url={shown!r}; expected an http(s) URL without query, e.g. 'https://host/prefix'"
        )
    if parts.scheme == "http" and parts.hostname not in LOOPBACK_HOSTS and not allow_insecure:
        raise InvalidInputError(
            f"base_url={shown!r} is plain http to a non-loopback host: the credential would "
            "travel unencrypted. Use https, or pass allow_insecure=True if you must"
        )
    if "@" in parts.netloc:
        raise InvalidInputError(
            f"base_url={shown!r} holds credentials (user info before '@'); expected a URL without "
            "them: pass the credential as api_key= (or the preset's environment variable), "
            "which is sent to base_url's host only"
        )
    return url.rstrip("/")
