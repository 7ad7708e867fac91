"""RemoteModel: a paid cloud classification API seen as a black box."""

from __future__ import annotations

import asyncio
import copy
import hashlib
import inspect
import json
import logging
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence
from urllib.parse import urlsplit, urlunsplit

import numpy as np

from bar_sdk.adapters.remote.cache import AnswerCache, image_key
from bar_sdk.adapters.remote.encoding import QUANTIZATION_STEP, encode_image, quantize, warn_if_lossy
from bar_sdk.adapters.remote.flight import Flight
from bar_sdk.adapters.remote.http import (LOOPBACK_HOSTS, MAX_RESPONSE_BYTES, AsyncSender, HttpRequest, HttpResponse,
                                  SyncSender)
from bar_sdk.adapters.remote.labels import LabelMapper
from bar_sdk.adapters.remote.ledger import RemoteLedger
from bar_sdk.adapters.remote.presets import Preset, make_preset
from bar_sdk.adapters.remote.ratelimit import TokenBucket
from bar_sdk.adapters.remote.retry import RetryPolicy
from bar_sdk.contract import check_bool, check_float, check_images, check_int
from bar_sdk.errors import (CheckpointError, InvalidInputError, QueryBudgetExceeded, RateLimitError, RemoteError,
                            ResponseFormatError)

__all__ = ["RemoteModel"]

logger = logging.getLogger(__name__)


@dataclass
class _Chunk:
    """The images of one request."""

    keys: list[str]
    images: list[np.ndarray]
    reached: bool = False  # an attempt reached the API: it answered (any status), or it may have served it


@dataclass
class _Plan:
    """One predict call: its images, their answers, what it sends and what it waits for.

    ``sent`` and ``billed`` count, in distinct images, what this call put on the
    wire (a request that reached the API, whatever it answered) and what of it
    was billed; a failed call reports them on its exception (see
    :meth:`RemoteModel._settled`).
    """

    keys: list[str]                      # one per row of x
    q: np.ndarray                        # the 8-bit images
    first: dict[str, int]                # key -> its first row
    answers: dict[str, dict] = field(default_factory=dict)
    chunks: list[_Chunk] = field(default_factory=list)
    owned: dict[str, Flight] = field(default_factory=dict)   # flights this call registered, still to land
    waits: dict[str, Flight] = field(default_factory=dict)   # images a concurrent call is sending
    n_own: int = 0                       # distinct images this call meant to send itself
    n_requests: int = 0
    sent: int = 0
    billed: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def count(self, chunk: _Chunk, *, billed: bool) -> None:
        with self.lock:
            self.sent += len(chunk.keys) if billed or chunk.reached else 0
            self.billed += len(chunk.keys) if billed else 0


class RemoteModel:
    """A cloud image-classification API that satisfies the black-box contract.

    ``predict_proba(x)`` quantises every image to 8 bits, answers the images
    it has already paid for from a local cache, checks the budget, sends the
    rest in requests of up to the preset's batch size (concurrently, under a
    rate limit), retries what may be retried, and maps the answers onto
    ``labels``. ``BARClassifier(remote_model, ...)`` just works.

    Build one with :meth:`from_preset` (``"clarifai"``, ``"google_vision"``,
    ``"aws_rekognition"``, ``"azure_vision"``, ``"huggingface"``,
    ``"torchserve"``, ``"generic"`` or a name you registered).

    Parameters
    ----------
    preset : Preset or str
        The vendor format (see :mod:`bar_sdk.adapters.remote.presets`).
    labels : sequence of str
        The fixed label list; scores come back in this order. API names are
        matched ignoring case and ``_``; ``label_aliases`` maps others.
    input_shape : tuple (C, H, W)
        Shape of the images this model takes (C in 1, 3).
    base_url : str, optional
        API root, e.g. ``"https://api.clarifai.com"``; the preset's default
        when omitted. Credentials are sent to this host only; plain ``http``
        is refused for any host but loopback unless ``allow_insecure=True``,
        and so is a URL holding credentials (``https://user:pass@host``).
    api_key : str, optional
        The credential; ``None`` reads the preset's environment variable
        (``CLARIFAI_PAT``, ``HF_TOKEN``, ...) and then ``BAR_API_KEY``. It
        never appears in reprs, logs, exceptions or checkpoints.
    max_queries : int, optional
        Hard cap on billed images. A call whose uncached images do not fit
        raises :class:`~bar_sdk.errors.QueryBudgetExceeded` and sends nothing.
        A retry whose earlier attempt may have been billed goes out only while
        that still fits; otherwise the call stops with ``QueryBudgetExceeded``,
        its message and its ``images_sent`` / ``images_billed`` saying what
        it had already sent.
    price_per_query : float
        Price per billed image; ``ledger.cost`` is the running total.
    rate_limit : float, optional
        Client-side limit in requests per second (token bucket), e.g. 15 for
        Clarifai's default. A request the server throttles gives its token back.
    burst : int
        Token-bucket size: requests that may leave back to back.
    max_concurrency : int
        Requests in flight at once (threads for :meth:`predict_proba`,
        coroutines for :meth:`apredict_proba`). Calls may run concurrently
        (threads, ``asyncio.gather``): an image that one call is already
        sending is awaited by the others, never sent (or paid) twice.
    timeout : float
        Seconds per HTTP attempt.
    retry : RetryPolicy, optional
        Backoff and stop rules; ``RetryPolicy()`` by default (6 attempts,
        120 s at most per request).
    cache_dir : str or Path, optional
        Folder for ``answers.sqlite``: the answer cache and the ledger, saved
        after every request. With it, a process that crashed and restarts pays
        for nothing twice and keeps its budget; without it both live in
        memory. Use one folder per run (per budget).
    use_cache : bool
        Answer repeated 8-bit images from the cache (reported as
        ``ledger.cache_hits``, never billed).
    image_format : {"png", "jpeg"}
        PNG is lossless and the default; JPEG warns (see :mod:`bar_sdk.adapters.remote.encoding`).
    jpeg_quality : int
        JPEG quality when ``image_format="jpeg"``.
    label_only : bool
        The API answers with names only (or you want decisions only): scores
        become one-hot on the top returned label. Score-based attacks refuse
        such a model.
    label_aliases : mapping, optional
        ``{api name: label}`` for names that differ from ``labels``.
    missing_score : float
        Score of a label the API did not return (top-k or thresholded
        answers). 0 by default; see :class:`~bar_sdk.adapters.remote.labels.LabelMapper`.
    client : httpx.Client, optional
        Your own client (proxies, certificates, transport); not closed by
        :meth:`close`.
    async_client : httpx.AsyncClient, optional
        Your own client for :meth:`apredict_proba`; otherwise one is opened per call.
    session : requests.Session, optional
        Send through an existing ``requests`` session instead (e.g. with an auth
        plugin). Keep ``max_concurrency=1`` if your session is not thread-safe.
    allow_insecure : bool
        Allow plain ``http`` to a non-loopback host.
    max_response_bytes : int
        Largest answer read, in bytes (16 MiB by default). A larger one, declared
        by ``Content-Length`` or found while streaming, raises
        :class:`~bar_sdk.errors.ResponseFormatError` (not retried) without being
        read whole; its images count as ``ledger.unconfirmed``, like those of a
        2xx answer that cannot be read.
    sleep : callable, optional
        ``sleep(seconds)`` used for backoff and rate-limit waits (tests inject a
        recorder); it may return an awaitable for :meth:`apredict_proba`.
    clock : callable, optional
        Monotonic clock of the rate limiter.
    ledger : RemoteLedger-like, optional
        Count and cap through this object instead of a ledger of our own
        (then leave ``max_queries`` and ``price_per_query`` unset), e.g.
        :class:`bar_sdk.adapters.ray.SharedRemoteLedger`, one budget for every worker.
        It needs ``RemoteLedger``'s methods (``reserve``, ``check_retry``,
        ``release``, ``record_attempt``, ``record_billed``, ``record_cache_hits``,
        ``record_failure``, ``state_dict``, ``load_state_dict``) and a ``store``
        attribute (``None``: the object persists itself).
    rate_limiter : TokenBucket-like, optional
        Book each request's token here instead of a bucket of our own (then
        leave ``rate_limit`` unset), e.g. :class:`bar_sdk.adapters.ray.SharedTokenBucket`,
        one limit for every worker. It needs ``reserve() -> seconds to wait``
        and ``refund()``.

    Attributes
    ----------
    ledger : RemoteLedger
        ``billed``, ``attempts``, ``cache_hits`` (answered from the cache, within the
        batch, or by a concurrent call's request), ``retries``, ``throttled``,
        ``failures``, ``unconfirmed`` and ``cost``. After timeouts or unreadable
        2xx answers the vendor may have billed more than ``billed``, never more
        than ``billed + unconfirmed``.
    n_classes : int
    labels : tuple of str
    quantization_step : float
        ``1/255``: the API sees 8-bit images, so a smoothing (finite
        difference) step below this mostly measures rounding.
    label_only : bool

    Notes
    -----
    ``copy.deepcopy`` (and so ``sklearn.base.clone``) returns the same object:
    clones share one connection, cache and budget, which is what a paid API
    needs. Pickling is refused (a model holds a connection and a credential).

    Examples
    --------
    >>> model = RemoteModel.from_preset(                                  # doctest: +SKIP
    ...     "clarifai", base_url="https://api.clarifai.com", api_key=None,
    ...     model_id="my-xray-model", labels=["normal", "pneumonia"], input_shape=(1, 64, 64),
    ...     max_queries=20_000, price_per_query=0.0012, rate_limit=15, cache_dir="runs/xray")
    >>> model.predict_proba(x).shape, model.ledger.billed, model.ledger.cost   # doctest: +SKIP
    """

    quantization_step: float = QUANTIZATION_STEP

    def __init__(self, preset: Preset | str, *, labels: Sequence[str], input_shape: Sequence[int],
                 base_url: str | None = None, api_key: Any = None, max_queries: int | None = None,
                 price_per_query: float = 0.0, rate_limit: float | None = None, burst: int = 1,
                 max_concurrency: int = 4, timeout: float = 30.0, retry: RetryPolicy | None = None,
                 cache_dir: str | os.PathLike | None = None, use_cache: bool = True, image_format: str = "png",
                 jpeg_quality: int = 95, label_only: bool = False, label_aliases: Mapping[str, str] | None = None,
                 missing_score: float = 0.0, client: Any = None, async_client: Any = None, session: Any = None,
                 allow_insecure: bool = False, max_response_bytes: int = MAX_RESPONSE_BYTES,
                 sleep: Callable[[float], Any] | None = None, clock: Callable[[], float] | None = None,
                 ledger: Any = None, rate_limiter: Any = None):
        self.use_cache = check_bool(use_cache, "use_cache")
        allow_insecure = check_bool(allow_insecure, "allow_insecure")
        self.preset = make_preset(preset) if isinstance(preset, str) else preset
        if not isinstance(self.preset, Preset):
            raise InvalidInputError(f"preset={preset!r}; expected a Preset or a registered preset name")
        self._mapper = LabelMapper(labels, label_aliases, missing_score, label_only)  # checks label_only
        self.labels = self._mapper.labels
        self.label_only = self._mapper.label_only
        self.n_classes = len(self.labels)
        self.input_shape = _check_shape(input_shape)
        self.base_url = _check_base_url(base_url or self.preset.default_base_url, allow_insecure)
        self.max_concurrency = check_int(max_concurrency, "max_concurrency", low=1)
        self.timeout = check_float(timeout, "timeout", low=0.0, low_open=True)
        self.max_response_bytes = check_int(max_response_bytes, "max_response_bytes", low=1)
        check_float(rate_limit, "rate_limit", low=0.0, low_open=True, allow_none=True)  # by the name given
        self.retry = retry if retry is not None else RetryPolicy()
        if not isinstance(self.retry, RetryPolicy):
            raise InvalidInputError(f"retry={retry!r}; expected a RetryPolicy")
        warn_if_lossy(image_format, jpeg_quality)
        self.image_format = image_format
        self.jpeg_quality = jpeg_quality
        self.preset.check_labels(self.labels)
        self._credentials = self.preset.resolve_credentials(api_key)
        if cache_dir is not None and not isinstance(cache_dir, (str, os.PathLike)):
            raise InvalidInputError(f"cache_dir={cache_dir!r}; expected a folder path (str or os.PathLike) or None")
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self._cache = AnswerCache(self.cache_dir / "answers.sqlite" if self.cache_dir else None)
        self.ledger = _shared(ledger, "ledger", ("reserve", "check_retry", "release", "record_billed"),
                              max_queries=max_queries, price_per_query=price_per_query or None)
        if self.ledger is None:
            self.ledger = RemoteLedger(max_queries, price_per_query, self._cache if self.cache_dir else None)
        self._bucket = _shared(rate_limiter, "rate_limiter", ("reserve", "refund"), rate_limit=rate_limit)
        if self._bucket is None and rate_limit is not None:
            self._bucket = TokenBucket(rate_limit, burst, clock)
        self._sender = SyncSender(client, session, self.timeout, self.max_response_bytes)
        self._async_client = async_client
        self._sleep = sleep
        self._rng = np.random.default_rng(self.retry.random_state)
        self._rng_lock = threading.Lock()
        self._executor: ThreadPoolExecutor | None = None
        self._flights: dict[str, Flight] = {}
        self._flights_lock = threading.Lock()
        self._identity = json.dumps({"base_url": self.base_url, "preset": self.preset.identity(),
                                     "labels": self.labels, "image_format": image_format,
                                     "jpeg_quality": jpeg_quality if image_format == "jpeg" else None},
                                    sort_keys=True, default=str)

    @classmethod
    def from_preset(cls, name: str, *, labels: Sequence[str], input_shape: Sequence[int],
                    base_url: str | None = None, api_key: Any = None, **options: Any) -> RemoteModel:
        """Build from a registered preset name.

        ``options`` holds both the preset's own fields (``model_id=`` for
        Clarifai, ``region=`` for AWS, ``model=`` for Hugging Face and
        TorchServe, ...) and any :class:`RemoteModel` parameter
        (``max_queries=``, ``rate_limit=``, ``cache_dir=``, ...).
        """
        own = set(inspect.signature(cls.__init__).parameters) - {"self", "preset"}
        preset = make_preset(name, **{k: v for k, v in options.items() if k not in own})
        return cls(preset, labels=labels, input_shape=input_shape, base_url=base_url, api_key=api_key,
                   **{k: v for k, v in options.items() if k in own})

    # -- the black-box contract ------------------------------------------------------------------

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """Scores ``(n, n_classes)`` for images ``x`` (uint8 or floats in [0, 1], NCHW).

        Raises
        ------
        QueryBudgetExceeded
            The uncached images would cross ``max_queries`` (nothing was sent), or
            a retry was refused because it could bill past it (see ``max_queries``).
        AuthenticationError
            401/403 (never retried).
        RateLimitError, TransientError, ResponseFormatError
            The API kept failing after the retries allowed by ``retry``.

        Every error of a call that sent something carries ``images_sent`` (distinct
        images whose request reached the API) and ``images_billed`` (of those, the
        ones billed); :class:`~bar_sdk.ledger.MeteredModel` counts exactly these.
        Images answered by another call's request in flight are waited for.
        """
        plan = self._plan(x, asynchronous=False)
        errors: list[BaseException] = []
        try:
            while True:
                self._send_round(plan, errors)
                if not errors:
                    for flight in plan.waits.values():
                        flight.wait()
                if not self._next_round(plan, errors, asynchronous=False):
                    break
        finally:
            self._land(plan, list(plan.owned))  # a flight this call never landed fails: its waiters send it
        if errors:
            raise self._settled(errors[0], plan)
        return self._finish(plan)

    async def apredict_proba(self, x: np.ndarray) -> np.ndarray:
        """Like :meth:`predict_proba`, with up to ``max_concurrency`` requests in flight on
        one event loop (an ``httpx.AsyncClient``)."""
        plan = self._plan(x, asynchronous=True)
        errors: list[BaseException] = []
        try:
            if plan.chunks or plan.waits:
                if self._async_client is not None:
                    await self._run_async(plan, AsyncSender(self._async_client, self.timeout,
                                                            self.max_response_bytes), errors)
                else:
                    import httpx

                    limits = httpx.Limits(max_connections=self.max_concurrency)
                    async with httpx.AsyncClient(timeout=self.timeout, limits=limits) as client:
                        await self._run_async(plan, AsyncSender(client, self.timeout, self.max_response_bytes),
                                              errors)
        finally:
            self._land(plan, list(plan.owned))
        if errors:
            raise self._settled(errors[0], plan)
        return self._finish(plan)

    # -- one call -----------------------------------------------------------------------------

    def _plan(self, x: Any, *, asynchronous: bool) -> _Plan:
        x = check_images(x, "x", allow_nhwc=False)
        if x.shape[1:] != self.input_shape:
            raise InvalidInputError(f"x has shape {x.shape}; expected (n, {', '.join(map(str, self.input_shape))})")
        q = quantize(x)
        keys = [image_key(img, self._identity) for img in q]
        first: dict[str, int] = {}
        for i, key in enumerate(keys):
            first.setdefault(key, i)
        plan = _Plan(keys=keys, q=q, first=first)
        self._claim(plan, list(first), asynchronous)
        return plan

    def _claim(self, plan: _Plan, keys: list[str], asynchronous: bool) -> None:
        """Answer ``keys`` from the cache, wait for those in flight, and reserve and chunk the rest.

        Under one lock with the landing of flights (which follows the cache write), so an image
        is always found in the cache or in flight once a call has started sending it.
        """
        me = threading.get_ident()
        with self._flights_lock:
            cached = self._cache.get_many(keys) if self.use_cache else {}
            mine, waits = [], {}
            for k in keys:
                if k in cached:
                    continue
                flight = self._flights.get(k)
                # A blocking call cannot wait for a coroutine of its own thread's event loop: it sends itself.
                if flight is not None and (asynchronous or flight.owner != me):
                    waits[k] = flight
                else:
                    mine.append(k)
            # Reserve every image this call sends before the first request leaves: refused whole, nothing sent.
            self.ledger.reserve(len(mine))
            for k in mine:
                if k not in self._flights:
                    self._flights[k] = plan.owned[k] = Flight()
        plan.answers.update(cached)
        plan.waits.update(waits)
        plan.n_own += len(mine)
        step = self.preset.max_batch
        for start in range(0, len(mine), step):
            part = mine[start:start + step]
            plan.chunks.append(_Chunk(part, [plan.q[plan.first[k]] for k in part]))
        plan.n_requests += len(plan.chunks)

    def _next_round(self, plan: _Plan, errors: list[BaseException], *, asynchronous: bool) -> bool:
        """After the waits: take the answers of landed flights; claim again the images whose flight failed."""
        again = []
        for k, flight in plan.waits.items():
            if flight.answer is not None:
                plan.answers[k] = flight.answer
            elif flight.error is not None:
                errors.append(_copied(flight.error))
            else:
                again.append(k)
        plan.waits.clear()
        if errors or not again:
            return False
        try:
            self._claim(plan, again, asynchronous)
        except QueryBudgetExceeded as exc:
            errors.append(exc)
            return False
        return True

    def _land(self, plan: _Plan, keys: list[str], good: Mapping[str, dict] | None = None,
              refused: Mapping[str, BaseException] | None = None) -> None:
        """Land this call's flights of ``keys`` (after their answers were cached) and wake their waiters."""
        landed = []
        with self._flights_lock:
            for k in keys:
                flight = plan.owned.pop(k, None)
                if flight is not None:
                    if self._flights.get(k) is flight:
                        del self._flights[k]
                    landed.append((k, flight))
        for k, flight in landed:
            error = (refused or {}).get(k)
            flight.land((good or {}).get(k), _copied(error) if error is not None else None)

    def _settled(self, exc: BaseException, plan: _Plan) -> BaseException:
        """``exc`` with what this call put on the wire: ``images_sent``, ``images_billed``, and a true message."""
        exc.images_sent = plan.sent  # type: ignore[attr-defined]
        exc.images_billed = plan.billed  # type: ignore[attr-defined]
        if (plan.sent or plan.n_requests > 1) and exc.args and isinstance(exc.args[0], str):
            text = exc.args[0].replace(" (nothing was sent)", "")
            exc.args = (f"{text}. This call sent {plan.sent} of its {plan.n_own} image(s) to send "
                        f"({plan.billed} billed, {plan.sent - plan.billed} without a usable answer); "
                        f"the other {plan.n_own - plan.sent} were not sent", *exc.args[1:])
        return exc

    def _finish(self, plan: _Plan) -> np.ndarray:
        scores = np.stack([self._mapper.to_vector(plan.answers[k]) for k in plan.keys])
        self.ledger.record_cache_hits(len(plan.keys) - plan.n_own)
        return scores

    def _request_for(self, images: list[np.ndarray]) -> HttpRequest:
        self.preset.prepare(self.base_url, self._send_unbilled, self._sleep or time.sleep)
        encoded = images if self.preset.tensor_input else [
            encode_image(img, self.image_format, jpeg_quality=self.jpeg_quality) for img in images]
        request = self.preset.build_request(self.base_url, encoded, self.labels)
        if urlsplit(request.url)[:2] != urlsplit(self.base_url)[:2]:
            raise RemoteError(f"preset {self.preset.name!r} built a request for {request.host!r}; the credential is "
                              f"sent only to base_url's host {urlsplit(self.base_url).netloc!r}")
        return request

    def _send_round(self, plan: _Plan, errors: list[BaseException]) -> None:
        """Send the chunks claimed so far, on threads when there are several."""
        chunks, plan.chunks = plan.chunks, []
        if len(chunks) <= 1 or self.max_concurrency == 1:
            for chunk in chunks:
                self._run_chunk(chunk, plan, errors)
        else:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(self.max_concurrency, thread_name_prefix="bar-remote")
            list(self._executor.map(lambda c: self._run_chunk(c, plan, errors), chunks))

    def _send_unbilled(self, request: HttpRequest) -> HttpResponse:
        """A free request a preset needs (readiness, metadata): to base_url's host only, never billed."""
        if urlsplit(request.url)[:2] != urlsplit(self.base_url)[:2]:
            raise RemoteError(f"preset {self.preset.name!r} asked for {request.host!r}; only base_url's host is "
                              "contacted")
        return self._sender.send(self.preset.authorize(request, self._credentials))

    def _run_chunk(self, chunk: _Chunk, plan: _Plan, errors: list[BaseException]) -> None:
        if errors:  # an earlier request failed for good: send nothing more
            self._give_up(chunk, plan)
            return
        try:
            request = self._request_for(chunk.images)
            retrying = self.retry.retrying(rng=self._rng, lock=self._rng_lock, sleep=self._sleep or time.sleep,
                                           what=f"{self.preset.name} request of {len(chunk.keys)} image(s)")
            for attempt in retrying:
                with attempt:
                    results = self._attempt(request, chunk, attempt.retry_state.attempt_number)
        except BaseException as exc:
            self._give_up(chunk, plan)
            errors.append(self._redacted(exc))
            return
        self._store(chunk, results, plan, errors)

    async def _run_async(self, plan: _Plan, sender: AsyncSender, errors: list[BaseException]) -> None:
        gate = asyncio.Semaphore(self.max_concurrency)

        async def run(chunk: _Chunk) -> None:
            async with gate:
                if errors:
                    self._give_up(chunk, plan)
                    return
                try:
                    request = self._request_for(chunk.images)
                    retrying = self.retry.retrying(rng=self._rng, lock=self._rng_lock,
                                                   sleep=self._sleep or asyncio.sleep, asynchronous=True,
                                                   what=f"{self.preset.name} request of {len(chunk.keys)} image(s)")
                    async for attempt in retrying:
                        with attempt:
                            results = await self._aattempt(sender, request, chunk,
                                                           attempt.retry_state.attempt_number)
                except BaseException as exc:
                    self._give_up(chunk, plan)
                    errors.append(self._redacted(exc))
                    if not isinstance(exc, Exception):
                        raise
                    return
            self._store(chunk, results, plan, errors)

        while True:
            chunks, plan.chunks = plan.chunks, []
            await asyncio.gather(*(run(chunk) for chunk in chunks))
            if not errors:
                for flight in plan.waits.values():
                    await flight.wait_async()
            if not self._next_round(plan, errors, asynchronous=True):
                return

    def _give_up(self, chunk: _Chunk, plan: _Plan) -> None:
        """A request that failed for good, or was never sent: free its room, count what reached the API."""
        self.ledger.release(len(chunk.keys))
        plan.count(chunk, billed=False)
        self._land(plan, chunk.keys)

    def _store(self, chunk: _Chunk, results: list, plan: _Plan, errors: list[BaseException]) -> None:
        keys = chunk.keys
        good = {k: r for k, r in zip(keys, results) if not isinstance(r, RemoteError)}
        refused = {k: self._redacted(r) for k, r in zip(keys, results) if isinstance(r, RemoteError)}
        # The bill and the answers it bought are saved in one transaction: a crash keeps both or neither.
        self.ledger.record_billed(len(keys), save=False)
        persisted = self.ledger.store is not None
        if self.use_cache or persisted:
            self._cache.put_many(good if self.use_cache else {},
                                 {"ledger": self.ledger.state_dict} if persisted else None)
        with plan.lock:
            plan.answers.update(good)
        plan.count(chunk, billed=True)
        self._land(plan, keys, good, refused)
        if refused:
            errors.append(next(iter(refused.values())))

    # -- one attempt ----------------------------------------------------------------------------

    # One request attempt: wait for the rate limit, check and sign, send, then settle what came back.
    # The sync and async forms differ only in how they sleep and send.
    def _attempt(self, request: HttpRequest, chunk: _Chunk, number: int) -> list:
        wait = self._rate_wait()
        if wait > 0:
            (self._sleep or time.sleep)(wait)
        signed = self._before_send(request, len(chunk.keys), number)
        try:
            response = self._sender.send(signed)
        except RemoteError as exc:
            raise self._unanswered(exc, chunk, number) from None
        return self._answered(response, chunk, number)

    async def _aattempt(self, sender: AsyncSender, request: HttpRequest, chunk: _Chunk, number: int) -> list:
        wait = self._rate_wait()
        if wait > 0:
            slept = (self._sleep or asyncio.sleep)(wait)
            if inspect.isawaitable(slept):
                await slept
        signed = self._before_send(request, len(chunk.keys), number)
        try:
            response = await sender.send(signed)
        except RemoteError as exc:
            raise self._unanswered(exc, chunk, number) from None
        return self._answered(response, chunk, number)

    def _rate_wait(self) -> float:
        """Seconds to wait before the next request leaves (0 without a rate limit)."""
        return self._bucket.reserve() if self._bucket is not None else 0.0

    def _unanswered(self, exc: RemoteError, chunk: _Chunk, number: int) -> RemoteError:
        """The error to raise for a send that failed; the chunk remembers whether it may have reached the API."""
        chunk.reached = chunk.reached or exc.unconfirmed
        return self._failed(exc, len(chunk.keys), number)

    def _answered(self, response: HttpResponse, chunk: _Chunk, number: int) -> list:
        """Count an answered attempt and read it; an unreadable answer raises as failed."""
        n = len(chunk.keys)
        chunk.reached = True
        self.ledger.record_attempt(n, retry=number > 1)
        try:
            return self._read(response, n, number)
        except RemoteError as exc:
            raise self._failed(exc, n) from None

    def _before_send(self, request: HttpRequest, n: int, number: int) -> HttpRequest:
        if number > 1:
            self.ledger.check_retry(n)
        return self.preset.authorize(request, self._credentials)

    def _read(self, response: HttpResponse, n: int, number: int) -> list:
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
            err = ResponseFormatError(f"preset {self.preset.name!r} could not read the answer "
                                      f"({type(exc).__name__}: {exc})")
        else:
            return results
        # A 2xx answer was served, so the vendor may have billed it, though it could not be read.
        if response.ok:
            err.unconfirmed = True
        raise err

    def _failed(self, exc: RemoteError, n: int, number: int | None = None) -> RemoteError:
        """Count a failed attempt; ``number`` when the sender failed (its attempt is counted here, unless
        the request could not be put on the wire at all)."""
        if number is not None and not getattr(exc, "unsent", False):
            self.ledger.record_attempt(n, retry=number > 1)
        throttled = isinstance(exc, RateLimitError)
        if throttled and self._bucket is not None:
            self._bucket.refund()  # the server refused without serving: its quota was not used
        # Sent but unanswered (a read timeout, say) or answered 2xx unreadably: the vendor may have billed these n.
        self.ledger.record_failure(throttled=throttled, unconfirmed=n if exc.unconfirmed else 0)
        return self._redacted(exc)

    def _redacted(self, exc: BaseException) -> BaseException:
        if self._credentials is not None:
            exc.args = tuple(self._credentials.redact(a) if isinstance(a, str) else a for a in exc.args)
        return exc

    # -- checkpoints, lifetime, copies ------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """Ledger counts and a fingerprint of the endpoint (no credentials), for checkpoints."""
        return {"identity": hashlib.sha256(self._identity.encode()).hexdigest()[:16],
                "ledger": self.ledger.state_dict()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore ledger counts from :meth:`state_dict` (counts only grow, see :class:`RemoteLedger`)."""
        mine = self.state_dict()["identity"]
        if not isinstance(state, Mapping) or state.get("identity") != mine:
            raise CheckpointError("checkpoint belongs to another remote model (endpoint, preset options or labels "
                                  "differ); expected the state_dict of this RemoteModel")
        self.ledger.load_state_dict(state["ledger"])

    def close(self) -> None:
        """Close the connections and the cache this model opened (not an injected client)."""
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None
        self._sender.close()
        self._cache.close()

    def __enter__(self) -> RemoteModel:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __deepcopy__(self, memo: dict) -> RemoteModel:
        return self  # clones share one connection, cache and budget (see Notes)

    def __copy__(self) -> RemoteModel:
        return self

    def __getstate__(self) -> None:
        raise TypeError("RemoteModel cannot be pickled: it holds a connection and a credential. Build it in each "
                        "process (and use n_jobs=1 with a paid API), or checkpoint model.state_dict()")

    def __repr__(self) -> str:
        return (f"RemoteModel(preset={self.preset!r}, base_url={self.base_url!r}, n_classes={self.n_classes}, "
                f"input_shape={self.input_shape}, label_only={self.label_only}, ledger={self.ledger!r})")


def _copied(exc: BaseException) -> BaseException:
    """A copy of ``exc`` for another call to raise (one exception object is never raised by two threads)."""
    try:
        return copy.copy(exc)
    except Exception:  # an exception type whose constructor does not take its own args back
        return RemoteError(str(exc))


def _shared(obj: Any, name: str, methods: tuple[str, ...], **own: Any) -> Any:
    """``obj`` (a ledger or rate limiter given from outside) checked, or None when not given."""
    if obj is None:
        return None
    missing = [m for m in methods if not callable(getattr(obj, m, None))]
    if missing:
        raise InvalidInputError(f"{name}={type(obj).__name__}; expected an object with {', '.join(methods)} "
                                f"(it lacks {', '.join(missing)})")
    given = [k for k, v in own.items() if v is not None]
    if given:
        raise InvalidInputError(f"{given[0]}={own[given[0]]!r} together with {name}=; expected one of them: "
                                f"the {name} given holds its own settings")
    return obj


def _check_shape(shape: Any) -> tuple[int, int, int]:
    try:
        out = tuple(int(s) for s in shape)
    except (TypeError, ValueError):
        raise InvalidInputError(f"input_shape={shape!r}; expected (C, H, W)") from None
    if len(out) != 3 or out[0] not in (1, 3) or min(out) < 1:
        raise InvalidInputError(f"input_shape={shape!r}; expected (C, H, W) with C in (1, 3) and H, W >= 1")
    return out  # type: ignore[return-value]


def _check_base_url(url: Any, allow_insecure: bool) -> str:
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
        raise InvalidInputError(f"base_url={shown!r}; expected an http(s) URL without query, e.g. 'https://host/prefix'")
    if parts.scheme == "http" and parts.hostname not in LOOPBACK_HOSTS and not allow_insecure:
        raise InvalidInputError(f"base_url={shown!r} is plain http to a non-loopback host: the credential would "
                                "travel unencrypted. Use https, or pass allow_insecure=True if you must")
    if "@" in parts.netloc:
        raise InvalidInputError(f"base_url={shown!r} holds credentials (user info before '@'); expected a URL without "
                                "them: pass the credential as api_key= (or the preset's environment variable), "
                                "which is sent to base_url's host only")
    return url.rstrip("/")
