"""RemoteModel: a paid cloud classification API seen as a black box."""

from __future__ import annotations

import asyncio
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

from adapters.remote.cache import AnswerCache, image_key
from adapters.remote.encoding import QUANTIZATION_STEP, encode_image, quantize, warn_if_lossy
from adapters.remote.http import (LOOPBACK_HOSTS, MAX_RESPONSE_BYTES, AsyncSender, HttpRequest, HttpResponse,
                                  SyncSender)
from adapters.remote.labels import LabelMapper
from adapters.remote.ledger import RemoteLedger
from adapters.remote.presets import Preset, make_preset
from adapters.remote.ratelimit import TokenBucket
from adapters.remote.retry import RetryPolicy
from bar_sdk.contract import check_bool, check_float, check_images, check_int
from bar_sdk.errors import CheckpointError, InvalidInputError, RateLimitError, RemoteError, ResponseFormatError

__all__ = ["RemoteModel"]

logger = logging.getLogger(__name__)


@dataclass
class _Plan:
    """One predict call: which images are answered from the cache, which are sent."""

    keys: list[str]
    answers: dict[str, dict]
    chunks: list[tuple[list[str], list[np.ndarray]]] = field(default_factory=list)
    n_hits: int = 0


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
        The vendor format (see :mod:`adapters.remote.presets`).
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
    price_per_query : float
        Price per billed image; ``ledger.cost`` is the running total.
    rate_limit : float, optional
        Client-side limit in requests per second (token bucket), e.g. 15 for
        Clarifai's default. A request the server throttles gives its token back.
    burst : int
        Token-bucket size: requests that may leave back to back.
    max_concurrency : int
        Requests in flight at once (threads for :meth:`predict_proba`,
        coroutines for :meth:`apredict_proba`).
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
        PNG is lossless and the default; JPEG warns (see :mod:`adapters.remote.encoding`).
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
        answers). 0 by default; see :class:`~adapters.remote.labels.LabelMapper`.
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

    Attributes
    ----------
    ledger : RemoteLedger
        ``billed``, ``attempts``, ``cache_hits``, ``retries``, ``throttled``,
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
                 sleep: Callable[[float], Any] | None = None, clock: Callable[[], float] | None = None):
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
        self.ledger = RemoteLedger(max_queries, price_per_query, self._cache if self.cache_dir else None)
        self._bucket = None if rate_limit is None else TokenBucket(rate_limit, burst, clock)
        self._sender = SyncSender(client, session, self.timeout, self.max_response_bytes)
        self._async_client = async_client
        self._sleep = sleep
        self._rng = np.random.default_rng(self.retry.random_state)
        self._rng_lock = threading.Lock()
        self._executor: ThreadPoolExecutor | None = None
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
            The uncached images would cross ``max_queries``; nothing was sent.
        AuthenticationError
            401/403 (never retried).
        RateLimitError, TransientError, ResponseFormatError
            The API kept failing after the retries allowed by ``retry``.
        """
        plan = self._plan(x)
        if plan.chunks:
            errors: list[BaseException] = []
            if len(plan.chunks) == 1 or self.max_concurrency == 1:
                for chunk in plan.chunks:
                    self._run_chunk(chunk, plan, errors)
            else:
                if self._executor is None:
                    self._executor = ThreadPoolExecutor(self.max_concurrency, thread_name_prefix="bar-remote")
                list(self._executor.map(lambda c: self._run_chunk(c, plan, errors), plan.chunks))
            if errors:
                raise errors[0]
        return self._finish(plan)

    async def apredict_proba(self, x: np.ndarray) -> np.ndarray:
        """Like :meth:`predict_proba`, with up to ``max_concurrency`` requests in flight on
        one event loop (an ``httpx.AsyncClient``)."""
        plan = self._plan(x)
        if plan.chunks:
            if self._async_client is not None:
                await self._run_async(plan, AsyncSender(self._async_client, self.timeout, self.max_response_bytes))
            else:
                import httpx

                limits = httpx.Limits(max_connections=self.max_concurrency)
                async with httpx.AsyncClient(timeout=self.timeout, limits=limits) as client:
                    await self._run_async(plan, AsyncSender(client, self.timeout, self.max_response_bytes))
        return self._finish(plan)

    # -- one call -----------------------------------------------------------------------------

    def _plan(self, x: Any) -> _Plan:
        x = check_images(x, "x", allow_nhwc=False)
        if x.shape[1:] != self.input_shape:
            raise InvalidInputError(f"x has shape {x.shape}; expected (n, {', '.join(map(str, self.input_shape))})")
        q = quantize(x)
        keys = [image_key(img, self._identity) for img in q]
        first = {}
        for i, key in enumerate(keys):
            first.setdefault(key, i)
        answers = self._cache.get_many(first) if self.use_cache else {}
        todo = [k for k in first if k not in answers]
        plan = _Plan(keys=keys, answers=answers, n_hits=len(keys) - len(todo))
        # Reserve every uncached image before the first request leaves: refused whole, nothing sent.
        self.ledger.reserve(len(todo))
        step = self.preset.max_batch
        for start in range(0, len(todo), step):
            part = todo[start:start + step]
            plan.chunks.append((part, [q[first[k]] for k in part]))
        return plan

    def _finish(self, plan: _Plan) -> np.ndarray:
        scores = np.stack([self._mapper.to_vector(plan.answers[k]) for k in plan.keys])
        self.ledger.record_cache_hits(plan.n_hits)
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

    def _send_unbilled(self, request: HttpRequest) -> HttpResponse:
        """A free request a preset needs (readiness, metadata): to base_url's host only, never billed."""
        if urlsplit(request.url)[:2] != urlsplit(self.base_url)[:2]:
            raise RemoteError(f"preset {self.preset.name!r} asked for {request.host!r}; only base_url's host is "
                              "contacted")
        return self._sender.send(self.preset.authorize(request, self._credentials))

    def _run_chunk(self, chunk: tuple[list[str], list[np.ndarray]], plan: _Plan,
                   errors: list[BaseException]) -> None:
        keys, images = chunk
        if errors:  # an earlier request failed for good: send nothing more
            self.ledger.release(len(keys))
            return
        try:
            request = self._request_for(images)
            retrying = self.retry.retrying(rng=self._rng, lock=self._rng_lock, sleep=self._sleep or time.sleep,
                                           what=f"{self.preset.name} request of {len(keys)} image(s)")
            for attempt in retrying:
                with attempt:
                    results = self._attempt(request, len(keys), attempt.retry_state.attempt_number)
        except BaseException as exc:
            self.ledger.release(len(keys))
            errors.append(self._redacted(exc))
            return
        self._store(keys, results, plan, errors)

    async def _run_async(self, plan: _Plan, sender: AsyncSender) -> None:
        gate = asyncio.Semaphore(self.max_concurrency)
        errors: list[BaseException] = []

        async def run(chunk: tuple[list[str], list[np.ndarray]]) -> None:
            keys, images = chunk
            async with gate:
                if errors:
                    self.ledger.release(len(keys))
                    return
                try:
                    request = self._request_for(images)
                    retrying = self.retry.retrying(rng=self._rng, lock=self._rng_lock,
                                                   sleep=self._sleep or asyncio.sleep, asynchronous=True,
                                                   what=f"{self.preset.name} request of {len(keys)} image(s)")
                    async for attempt in retrying:
                        with attempt:
                            results = await self._aattempt(sender, request, len(keys),
                                                           attempt.retry_state.attempt_number)
                except BaseException as exc:
                    self.ledger.release(len(keys))
                    errors.append(self._redacted(exc))
                    if not isinstance(exc, Exception):
                        raise
                    return
            self._store(keys, results, plan, errors)

        await asyncio.gather(*(run(chunk) for chunk in plan.chunks))
        if errors:
            raise errors[0]

    def _store(self, keys: list[str], results: list, plan: _Plan, errors: list[BaseException]) -> None:
        good = {k: r for k, r in zip(keys, results) if not isinstance(r, RemoteError)}
        # The bill and the answers it bought are saved in one transaction: a crash keeps both or neither.
        self.ledger.record_billed(len(keys), save=False)
        persisted = self.ledger.store is not None
        if self.use_cache or persisted:
            self._cache.put_many(good if self.use_cache else {},
                                 {"ledger": self.ledger.state_dict} if persisted else None)
        plan.answers.update(good)
        refused = [r for r in results if isinstance(r, RemoteError)]
        if refused:
            errors.append(self._redacted(refused[0]))

    # -- one attempt ----------------------------------------------------------------------------

    def _attempt(self, request: HttpRequest, n: int, number: int) -> list:
        if self._bucket is not None:
            wait = self._bucket.reserve()
            if wait > 0:
                (self._sleep or time.sleep)(wait)
        signed = self._before_send(request, n, number)
        try:
            return self._read(self._sender.send(signed), n, number)
        except RemoteError as exc:
            raise self._failed(exc, n) from None

    async def _aattempt(self, sender: AsyncSender, request: HttpRequest, n: int, number: int) -> list:
        if self._bucket is not None:
            wait = self._bucket.reserve()
            if wait > 0:
                slept = (self._sleep or asyncio.sleep)(wait)
                if inspect.isawaitable(slept):
                    await slept
        signed = self._before_send(request, n, number)
        try:
            return self._read(await sender.send(signed), n, number)
        except RemoteError as exc:
            raise self._failed(exc, n) from None

    def _before_send(self, request: HttpRequest, n: int, number: int) -> HttpRequest:
        if number > 1:
            self.ledger.check_retry(n)
        self.ledger.record_attempt(n, retry=number > 1)
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

    def _failed(self, exc: RemoteError, n: int) -> RemoteError:
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
