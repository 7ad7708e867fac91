"""The one-method transport under RemoteModel: send a request, get status, headers, body.

Presets build a neutral :class:`HttpRequest`; a sender hands it to an
``httpx.Client``, an ``httpx.AsyncClient`` or a ``requests.Session`` (for
users who already have one, e.g. with an auth plugin) and returns an
:class:`HttpResponse`. Timeouts and connection failures become
:class:`~bar_sdk.errors.TransientError` (retried). Redirects are never
followed, so a credential header cannot travel to another host. Bodies are
streamed and refused past ``max_response_bytes`` (a declared
``Content-Length`` over it is refused before reading anything).
"""

from __future__ import annotations

import functools
import json
import ssl
from dataclasses import dataclass, field, replace
from typing import Any, AsyncIterable, Callable, Iterable, Mapping
from urllib.parse import urlsplit

from bar_sdk.errors import InvalidInputError, RemoteError, ResponseFormatError, TransientError

__all__ = [
    "HttpRequest",
    "HttpResponse",
    "SyncSender",
    "AsyncSender",
    "LOOPBACK_HOSTS",
    "MAX_RESPONSE_BYTES",
    "default_ssl_context",
]

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1", "[::1]")
MAX_RESPONSE_BYTES = 16 * 2**20
_CHUNK = 64 * 2**10


@functools.lru_cache(maxsize=1)
def default_ssl_context() -> ssl.SSLContext:
    """httpx's default TLS context (certifi's CAs, or ``SSL_CERT_FILE`` / ``SSL_CERT_DIR``), built once per process.

    An ``httpx.AsyncClient`` opened without one builds its own, loading the CA bundle from disk: 20-40 ms of the
    event loop's time for every ``apredict_proba`` that opens its own client. Read once, at first use, so a
    change to those variables later in the process is not seen.
    """
    import httpx

    return httpx.create_ssl_context()


_SHOWN_HEADERS = frozenset(
    {"accept", "content-type", "content-length", "user-agent", "x-amz-target", "x-amz-content-sha256"}
)


class Headers(dict[str, str]):
    """Request headers whose repr masks every value but a few harmless ones.

    Credentials travel in headers (``Authorization``, ``x-goog-api-key``, a
    custom name of the generic preset, SigV4 signatures), and a traceback
    rendered with its locals (``pytest --showlocals``, rich, error trackers)
    prints them with ``repr``: here each value shows as ``'***'``.
    """

    def __repr__(self) -> str:
        shown = (f"{k!r}: {v!r}" if k.lower() in _SHOWN_HEADERS else f"{k!r}: '***'" for k, v in self.items())
        return "{" + ", ".join(shown) + "}"

    __str__ = __repr__

    def __reduce__(self) -> tuple[type[Headers], tuple[dict[str, str]]]:  # a copy or a pickle keeps the masking type
        return (Headers, (dict(self),))


@dataclass(frozen=True)
class HttpRequest:
    """A request as a preset builds it (credentials are added per attempt).

    Its repr (and that of :attr:`headers`) never shows a header value that may
    hold a credential; the body shows as its length.
    """

    method: str
    url: str
    headers: dict[str, str] = field(default_factory=dict)
    content: bytes = b""

    def __post_init__(self) -> None:
        if not isinstance(self.headers, Headers):
            object.__setattr__(self, "headers", Headers(self.headers))

    def with_headers(self, **headers: str) -> HttpRequest:
        return replace(self, headers={**self.headers, **headers})

    def __repr__(self) -> str:
        return f"HttpRequest({self.method} {self.url}, headers={self.headers!r}, {len(self.content)} bytes)"

    __str__ = __repr__

    @property
    def host(self) -> str:
        return urlsplit(self.url).netloc


class HttpResponse:
    """Status, headers (lower-case names) and body of one answer."""

    __slots__ = ("status_code", "headers", "content", "_json")

    def __init__(self, status_code: int, headers: Mapping[str, str], content: bytes) -> None:
        self.status_code = int(status_code)
        self.headers = {k.lower(): v for k, v in headers.items()}
        self.content = content
        self._json: Any = None

    @property
    def ok(self) -> bool:
        return 200 <= self.status_code < 300

    def snippet(self, limit: int = 300) -> str:
        """The start of the body, for error messages."""
        text = self.content[:limit].decode("utf-8", errors="replace")
        return text + ("..." if len(self.content) > limit else "")

    def json(self) -> Any:
        """The body as JSON, or :class:`ResponseFormatError` quoting its start."""
        if self._json is None:
            try:
                self._json = json.loads(self.content)
            except (ValueError, UnicodeDecodeError, RecursionError) as exc:  # RecursionError: deep nesting
                raise ResponseFormatError(
                    f"HTTP {self.status_code} body is not valid JSON ({exc.__class__.__name__}: {exc}); "
                    f"body starts {self.snippet(120)!r}"
                ) from None
        return self._json

    def __repr__(self) -> str:
        return f"HttpResponse({self.status_code}, {len(self.content)} bytes)"


class SyncSender:
    """Sends through an ``httpx.Client`` or a ``requests.Session``."""

    def __init__(
        self,
        client: Any = None,
        session: Any = None,
        timeout: float | None = 30.0,
        max_response_bytes: int = MAX_RESPONSE_BYTES,
    ) -> None:
        if client is not None and session is not None:
            raise InvalidInputError("give client= (httpx.Client) or session= (requests.Session), not both")
        self.timeout = timeout
        self.max_response_bytes = max_response_bytes
        self.session = session
        self.owns_client = client is None and session is None
        if session is None and client is None:
            import httpx

            client = httpx.Client(timeout=timeout, follow_redirects=False)
        self.client = client

    def send(self, request: HttpRequest) -> HttpResponse:
        send, failure_of = (
            (self._send_requests, _requests_failure) if self.session is not None else (self._send_httpx, _httpx_failure)
        )
        try:
            return send(request)
        except Exception as exc:
            failure = mapped_failure(request, exc, failure_of)
        raise failure  # outside the handler: see mapped_failure

    def _send_httpx(self, request: HttpRequest) -> HttpResponse:
        with self.client.stream(
            request.method,
            request.url,
            headers=request.headers,
            content=request.content,
            timeout=self.timeout,
            follow_redirects=False,
        ) as r:
            _check_declared(request, r.headers, self.max_response_bytes)
            body = _read_capped(request, r.iter_bytes(), self.max_response_bytes)
        return HttpResponse(r.status_code, dict(r.headers), body)

    def _send_requests(self, request: HttpRequest) -> HttpResponse:
        r = self.session.request(
            request.method,
            request.url,
            headers=request.headers,
            data=request.content,
            timeout=self.timeout,
            allow_redirects=False,
            stream=True,
        )
        try:
            _check_declared(request, r.headers, self.max_response_bytes)
            # A response a transport adapter built in memory may have no raw stream, only content.
            chunks = r.iter_content(_CHUNK) if r.raw is not None else [r.content]
            body = _read_capped(request, chunks, self.max_response_bytes)
        finally:
            r.close()
        return HttpResponse(r.status_code, dict(r.headers), body)

    def close(self) -> None:
        if self.owns_client:
            self.client.close()


class AsyncSender:
    """Sends through an ``httpx.AsyncClient``."""

    def __init__(self, client: Any, timeout: float | None = 30.0, max_response_bytes: int = MAX_RESPONSE_BYTES) -> None:
        self.client = client
        self.timeout = timeout
        self.max_response_bytes = max_response_bytes

    async def send(self, request: HttpRequest) -> HttpResponse:
        try:
            return await self._send(request)
        except Exception as exc:
            failure = mapped_failure(request, exc, _httpx_failure)
        raise failure  # outside the handler: see mapped_failure

    async def _send(self, request: HttpRequest) -> HttpResponse:
        async with self.client.stream(
            request.method,
            request.url,
            headers=request.headers,
            content=request.content,
            timeout=self.timeout,
            follow_redirects=False,
        ) as r:
            _check_declared(request, r.headers, self.max_response_bytes)
            body = await _aread_capped(request, r.aiter_bytes(), self.max_response_bytes)
        return HttpResponse(r.status_code, dict(r.headers), body)


def mapped_failure(
    request: HttpRequest, exc: Exception, failure_of: Callable[[HttpRequest, Exception], RemoteError | None]
) -> RemoteError:
    """The RemoteError a library's failure ``exc`` maps to (``failure_of``); ``exc`` itself re-raised when it is
    none of the library's. The one error mapping of both senders, sync and async.

    The caller raises the RemoteError outside its ``except`` block, so it chains no library error: the
    frames of one hold the request's headers (the credential) in their locals.
    """
    failure = failure_of(request, exc)
    if failure is None:
        raise exc
    return failure


def _httpx_failure(request: HttpRequest, exc: Exception) -> RemoteError | None:
    """The RemoteError for a failure of httpx (or of encoding a header value), ``None`` for anything else."""
    import httpx

    if isinstance(exc, (httpx.LocalProtocolError, UnicodeEncodeError)):
        return _unsendable(request, exc)
    if isinstance(exc, httpx.TransportError):
        return _transient(request, exc)
    if isinstance(exc, httpx.DecodingError):
        return _undecodable(request, exc)
    return None


def _requests_failure(request: HttpRequest, exc: Exception) -> RemoteError | None:
    """The RemoteError for a failure of ``requests``, ``None`` for anything else."""
    import requests

    if isinstance(exc, (requests.exceptions.InvalidHeader, requests.exceptions.InvalidURL, UnicodeEncodeError)):
        return _unsendable(request, exc)
    if isinstance(exc, (requests.Timeout, requests.ConnectionError, requests.exceptions.ChunkedEncodingError)):
        return _transient(request, exc)
    if isinstance(exc, requests.exceptions.ContentDecodingError):
        return _undecodable(request, exc)
    if isinstance(exc, requests.RequestException):  # anything else requests raises: after sending, for all we know
        err = TransientError(f"request to {request.host} failed ({type(exc).__name__})")
        err.unconfirmed = True
        return err
    return None


def _check_declared(request: HttpRequest, headers: Mapping[str, str], cap: int) -> None:
    """Refuse, before reading a byte, an answer whose ``Content-Length`` is over ``cap``."""
    try:
        declared = int(headers.get("content-length") or 0)
    except ValueError:
        return  # unreadable: the streamed read still stops at the cap
    if declared > cap:
        raise _too_big(request, cap, f"it declares Content-Length {declared}")


def _read_capped(request: HttpRequest, chunks: Iterable[bytes], cap: int) -> bytes:
    body = bytearray()
    for chunk in chunks:
        _append_capped(body, chunk, request, cap)
    return bytes(body)


async def _aread_capped(request: HttpRequest, chunks: AsyncIterable[bytes], cap: int) -> bytes:
    body = bytearray()
    async for chunk in chunks:
        _append_capped(body, chunk, request, cap)
    return bytes(body)


def _append_capped(body: bytearray, chunk: bytes, request: HttpRequest, cap: int) -> None:
    """Add ``chunk`` to ``body``, or refuse the answer once it is over ``cap``."""
    body.extend(chunk)
    if len(body) > cap:
        raise _too_big(request, cap, "reading stopped there")


def _too_big(request: HttpRequest, cap: int, detail: str) -> ResponseFormatError:
    """Not retried (the next answer would be as big); the request was served, so it may have been billed."""
    err = ResponseFormatError(
        f"answer from {request.host} is over max_response_bytes={cap} ({detail}); raise "
        "RemoteModel(max_response_bytes=...) if such answers are expected"
    )
    err.retryable = False
    err.unconfirmed = True
    return err


def _unsendable(request: HttpRequest, exc: Exception) -> RemoteError:
    """The request could not be built on the wire (an illegal header value): nothing left, and a retry fails alike.

    The library's message is left out: it quotes the header, which may hold the credential.
    """
    err = RemoteError(
        f"request to {request.host} could not be sent ({type(exc).__name__}: an illegal header or "
        "URL, e.g. a control character in the API key); nothing was sent"
    )
    err.retryable = False
    err.unsent = True  # type: ignore[attr-defined]
    return err


def _undecodable(request: HttpRequest, exc: Exception) -> ResponseFormatError:
    """An answer whose Content-Encoding could not be undone: it was served, so it may have been billed."""
    err = ResponseFormatError(f"answer from {request.host} could not be decoded ({type(exc).__name__})")
    err.unconfirmed = True
    return err


def _transient(request: HttpRequest, exc: Exception) -> TransientError:
    """A timeout or connection failure of httpx or requests, as a retryable error.

    Its ``unconfirmed`` attribute says whether the request may have reached the
    server (the failure came after connecting: a read timeout, a dropped
    connection), so the vendor may have billed it though no answer arrived.
    """
    if "Timeout" in type(exc).__name__:
        err = TransientError(f"request to {request.host} timed out ({type(exc).__name__})")
    else:
        err = TransientError(f"request to {request.host} failed ({type(exc).__name__}: {exc})")
    err.unconfirmed = not _before_sending(exc)
    return err


def _before_sending(exc: Exception) -> bool:
    """Whether a transport failure certainly happened before any byte of the request left."""
    import httpx

    if isinstance(
        exc, (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.UnsupportedProtocol, httpx.ProxyError)
    ):
        return True
    if isinstance(exc, httpx.TransportError):
        return False
    import requests
    import urllib3.exceptions as u3

    if isinstance(exc, (requests.ConnectTimeout, requests.exceptions.ProxyError, requests.exceptions.SSLError)):
        return True
    # requests wraps urllib3's MaxRetryError, whose reason says whether the connection was ever made.
    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    return isinstance(reason, (u3.NewConnectionError, u3.ConnectTimeoutError))
