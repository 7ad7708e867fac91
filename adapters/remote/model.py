"""RemoteModel: a paid cloud classification API seen as a black box."""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from bar_sdk.adapters.remote import rounds
from bar_sdk.adapters.remote.cache import AnswerCache
from bar_sdk.adapters.remote.client import RequestClient, check_base_url
from bar_sdk.adapters.remote.encoding import PNG_LEVEL, QUANTIZATION_STEP, warn_if_lossy
from bar_sdk.adapters.remote.http import MAX_RESPONSE_BYTES, HttpRequest, SyncSender
from bar_sdk.adapters.remote.labels import LabelMapper
from bar_sdk.adapters.remote.planning import PART_BYTES, Planner, check_shape
from bar_sdk.adapters.remote.presets import Preset, make_preset
from bar_sdk.adapters.remote.retry import RetryPolicy
from bar_sdk.adapters.remote.settings import (
    check_cache_dir,
    check_preset,
    check_retry,
    default_workers,
    endpoint_identity,
    ledger_for,
    rate_limiter_for,
)
from bar_sdk.contract import check_bool, check_float, check_images, check_int
from bar_sdk.errors import CheckpointError, InvalidInputError

__all__ = ["RemoteModel"]


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
        Clarifai's default. A request the server throttles gives its token back,
        and its retry books the next free token, ahead of fresh requests (they
        book at most about four tokens ahead;
        :meth:`bar_sdk.adapters.remote.TokenBucket.defer`), so a
        call does not wait behind other calls' queued requests for its last one.
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
    png_level : int
        zlib level of the PNGs sent (0-9). 0, the default, stores the pixels
        uncompressed: about ten times faster to write than level 1 and the
        same pixels once decoded, at the size of the raw image (1.5x a level-1
        PNG of a smooth photo, the same for noisy ones). Raise it when upload
        bandwidth, not client CPU, is what limits you.
    workers : int, optional
        Threads that quantise, hash and PNG-encode large batches (NumPy,
        hashlib and zlib release the GIL); ``min(4, usable CPUs)`` by
        default, 1 for none. Small batches (under 256 kB of pixels) stay on
        the calling thread. Results are ordered and byte-identical either way.
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
        and ``refund()``; with ``defer() -> seconds`` too, retries go ahead of
        fresh requests as with our own bucket (without it, every request books
        in turn).

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

    def __init__(
        self,
        preset: Preset | str,
        *,
        labels: Sequence[str],
        input_shape: Sequence[int],
        base_url: str | None = None,
        api_key: Any = None,
        max_queries: int | None = None,
        price_per_query: float = 0.0,
        rate_limit: float | None = None,
        burst: int = 1,
        max_concurrency: int = 4,
        timeout: float = 30.0,
        retry: RetryPolicy | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
        use_cache: bool = True,
        image_format: str = "png",
        jpeg_quality: int = 95,
        label_only: bool = False,
        label_aliases: Mapping[str, str] | None = None,
        missing_score: float = 0.0,
        client: Any = None,
        async_client: Any = None,
        session: Any = None,
        allow_insecure: bool = False,
        max_response_bytes: int = MAX_RESPONSE_BYTES,
        sleep: Callable[[float], Any] | None = None,
        clock: Callable[[], float] | None = None,
        ledger: Any = None,
        rate_limiter: Any = None,
        png_level: int = PNG_LEVEL,
        workers: int | None = None,
    ) -> None:
        self.use_cache = check_bool(use_cache, "use_cache")
        allow_insecure = check_bool(allow_insecure, "allow_insecure")
        self.preset = check_preset(preset)
        self._mapper = LabelMapper(labels, label_aliases, missing_score, label_only)  # checks label_only
        self.labels = self._mapper.labels
        self.label_only = self._mapper.label_only
        self.n_classes = len(self.labels)
        self.input_shape = check_shape(input_shape)
        self.base_url = check_base_url(base_url or self.preset.default_base_url, allow_insecure)
        self.max_concurrency = check_int(max_concurrency, "max_concurrency", low=1)
        self.timeout = check_float(timeout, "timeout", low=0.0, low_open=True)
        self.max_response_bytes = check_int(max_response_bytes, "max_response_bytes", low=1)
        check_float(rate_limit, "rate_limit", low=0.0, low_open=True, allow_none=True)  # by the name given
        self.retry = check_retry(retry)
        warn_if_lossy(image_format, jpeg_quality)
        self.image_format = image_format
        self.jpeg_quality = jpeg_quality
        self.png_level = check_int(png_level, "png_level", low=0, high=9)
        self.workers = check_int(workers, "workers", low=1, allow_none=True)
        self.preset.check_labels(self.labels)
        self._credentials = self.preset.resolve_credentials(api_key)
        self.cache_dir = check_cache_dir(cache_dir)
        self._cache = AnswerCache(self.cache_dir / "answers.sqlite" if self.cache_dir else None)
        self.ledger = ledger_for(
            ledger,
            max_queries=max_queries,
            price_per_query=price_per_query,
            store=self._cache if self.cache_dir else None,
        )
        self._bucket = rate_limiter_for(rate_limiter, rate_limit=rate_limit, burst=burst, clock=clock)
        self._sender = SyncSender(client, session, self.timeout, self.max_response_bytes)
        self._async_client = async_client
        self._pool: ThreadPoolExecutor | None = None
        self._identity = endpoint_identity(self.base_url, self.preset, self.labels, image_format, jpeg_quality)
        self._planner = Planner(
            self._cache, self.use_cache, self.ledger, self.preset, self._identity, self._worker_pool
        )
        self._client = RequestClient(
            self.preset,
            self.base_url,
            self._credentials,
            labels=self.labels,
            ledger=self.ledger,
            bucket=self._bucket,
            retry=self.retry,
            sender=self._sender,
            cache=self._cache,
            use_cache=self.use_cache,
            planner=self._planner,
            max_concurrency=self.max_concurrency,
            image_format=image_format,
            jpeg_quality=jpeg_quality,
            png_level=self.png_level,
            sleep=sleep,
            pool=self._worker_pool,
        )

    @classmethod
    def from_preset(
        cls,
        name: str,
        *,
        labels: Sequence[str],
        input_shape: Sequence[int],
        base_url: str | None = None,
        api_key: Any = None,
        **options: Any,
    ) -> RemoteModel:
        """Build from a registered preset name.

        ``options`` holds both the preset's own fields (``model_id=`` for
        Clarifai, ``region=`` for AWS, ``model=`` for Hugging Face and
        TorchServe, ...) and any :class:`RemoteModel` parameter
        (``max_queries=``, ``rate_limit=``, ``cache_dir=``, ...).
        """
        own = set(inspect.signature(cls.__init__).parameters) - {"self", "preset"}
        preset = make_preset(name, **{k: v for k, v in options.items() if k not in own})
        return cls(
            preset,
            labels=labels,
            input_shape=input_shape,
            base_url=base_url,
            api_key=api_key,
            **{k: v for k, v in options.items() if k in own},
        )

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

        A large call (more than ``max_batch x max_concurrency`` images and more than
        64 MB of input) whose every row fits in the budget holds room for all its rows, then
        quantises and hashes them a part at a time, sending each part's requests while
        the next is prepared: the first request leaves after the input check and one
        part, not after the whole batch. Room of rows that turn out cached or repeated
        is given back part by part. A call whose rows do not all fit is prepared whole
        first and refused whole, as before, if its new images do not fit.
        """
        x = self._checked(x)
        return rounds.predict(x, self._planner, self._client, self._mapper, part_rows=self._part_rows(x))

    async def apredict_proba(self, x: np.ndarray) -> np.ndarray:
        """Like :meth:`predict_proba`, with up to ``max_concurrency`` requests in flight on
        one event loop (an ``httpx.AsyncClient``). The call's CPU work (checks, quantising,
        hashing, encoding) runs on threads, so the loop stays free for other coroutines;
        a large call is sent in parts as :meth:`predict_proba` sends it."""
        # Checking, quantising and hashing a batch is CPU work (~0.2 s for 1,280 images of 3x224x224): on a
        # thread, so that the event loop keeps sending other calls' requests on time meanwhile. The claims stay
        # on the loop's thread, which owns the flights it claims.
        x = await asyncio.to_thread(self._checked, x)
        return await rounds.apredict(
            x,
            self._planner,
            self._client,
            self._mapper,
            async_client=self._async_client,
            timeout=self.timeout,
            max_response_bytes=self.max_response_bytes,
            max_concurrency=self.max_concurrency,
            part_rows=self._part_rows(x),
        )

    def _part_rows(self, x: np.ndarray) -> int:
        """Rows per part of a call sent in parts: a request per concurrent slot, and ``PART_BYTES`` of input."""
        return max(self.preset.max_batch * self.max_concurrency, -(-PART_BYTES // int(x[0].nbytes)))

    def _checked(self, x: Any) -> np.ndarray:
        images = check_images(x, "x", allow_nhwc=False)
        if images.shape[1:] != self.input_shape:
            raise InvalidInputError(
                f"x has shape {images.shape}; expected (n, {', '.join(map(str, self.input_shape))})"
            )
        return images

    def _request_for(self, images: list[np.ndarray]) -> HttpRequest:
        return self._client.request_for(images)

    def _worker_pool(self) -> ThreadPoolExecutor | None:
        """The threads that quantise, hash and encode large batches (``workers``), started on first use."""
        workers = default_workers(self.workers)
        if workers < 2:
            return None
        if self._pool is None:
            self._pool = ThreadPoolExecutor(workers, thread_name_prefix="bar-encode")
        return self._pool

    # -- checkpoints, lifetime, copies ------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """Ledger counts and a fingerprint of the endpoint (no credentials), for checkpoints."""
        return {
            "identity": hashlib.sha256(self._identity.encode()).hexdigest()[:16],
            "ledger": self.ledger.state_dict(),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore ledger counts from :meth:`state_dict` (counts only grow, see :class:`RemoteLedger`)."""
        mine = self.state_dict()["identity"]
        if not isinstance(state, Mapping) or state.get("identity") != mine:
            raise CheckpointError(
                "checkpoint belongs to another remote model (endpoint, preset options or labels "
                "differ); expected the state_dict of this RemoteModel"
            )
        self.ledger.load_state_dict(state["ledger"])

    def close(self) -> None:
        """Close the connections and the cache this model opened (not an injected client)."""
        self._client.close()
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        self._sender.close()
        self._cache.close()

    def __enter__(self) -> RemoteModel:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __deepcopy__(self, memo: dict[int, Any]) -> RemoteModel:
        return self  # clones share one connection, cache and budget (see Notes)

    def __copy__(self) -> RemoteModel:
        return self

    def __getstate__(self) -> None:
        raise TypeError(
            "RemoteModel cannot be pickled: it holds a connection and a credential. Build it in each "
            "process (and use n_jobs=1 with a paid API), or checkpoint model.state_dict()"
        )

    def __repr__(self) -> str:
        return (
            f"RemoteModel(preset={self.preset!r}, base_url={self.base_url!r}, n_classes={self.n_classes}, "
            f"input_shape={self.input_shape}, label_only={self.label_only}, ledger={self.ledger!r})"
        )
