"""What every vendor format provides, and the defaults most of them share."""

from __future__ import annotations

import json
import os
from typing import Any, Callable, ClassVar, Iterator, Sequence, overload
from urllib.parse import quote

import numpy as np
import pybase64

from bar_sdk.adapters.remote.http import HttpRequest, HttpResponse
from bar_sdk.adapters.remote.retry import parse_retry_after
from bar_sdk.adapters.remote.secret import Secret, resolve_secret
from bar_sdk.errors import (
    AuthenticationError,
    InvalidInputError,
    RateLimitError,
    RemoteError,
    ResponseFormatError,
    TransientError,
)

__all__ = [
    "Preset",
    "Answer",
    "DenseAnswers",
    "dig",
    "per_image",
    "read_entries",
    "read_mapping",
    "b64",
    "path_part",
    "json_body",
    "throttle",
    "transient",
    "classify_status",
    "revealed",
]

Answer = dict[str, "float | None"]
"""One image's answer: API label name -> score in [0, 1] (``None`` when the API gives names only)."""


class DenseAnswers(Sequence[Answer]):
    """The answers of a request that returned a score for every label, as one ``(n, len(labels))`` block.

    A tensor protocol answers with a matrix: kept as one, it is mapped onto the
    labels, stored and read back without a dict per image (a 1,000-class answer
    would otherwise cost a thousand dict entries per image). It is still a
    sequence of :data:`Answer`: item ``i`` is ``{labels[j]: rows[i, j]}``, built
    when asked for (a cache write, another call's waiter).

    ``rows`` must be finite scores (the preset checks them); they are copied as float64.
    """

    __slots__ = ("labels", "rows")
    labels: tuple[str, ...]
    rows: np.ndarray

    def __init__(self, labels: Sequence[str], rows: np.ndarray) -> None:
        rows = np.array(rows, dtype=np.float64)
        if rows.ndim != 2 or rows.shape[1] != len(labels):
            raise ValueError(f"rows have shape {rows.shape}; expected (n, {len(labels)}), one column per label")
        self.labels, self.rows = tuple(labels), rows
        self.rows.flags.writeable = False

    def __len__(self) -> int:
        return len(self.rows)

    @overload
    def __getitem__(self, i: int) -> Answer: ...

    @overload
    def __getitem__(self, i: slice) -> list[Answer]: ...

    def __getitem__(self, i: int | slice) -> Answer | list[Answer]:
        if isinstance(i, slice):
            return [dict(zip(self.labels, row, strict=True)) for row in self.rows[i].tolist()]
        return dict(zip(self.labels, self.rows[i].tolist(), strict=True))

    def __iter__(self) -> Iterator[Answer]:
        return iter(self[:])

    def __repr__(self) -> str:
        return f"DenseAnswers({len(self)} image(s) x {len(self.labels)} labels)"


class Base64(str):
    """Base64 text: :func:`json_body` splices it into the body as it is (it needs no JSON escaping)."""

    __slots__ = ()


def b64(data: bytes) -> str:
    return Base64(pybase64.b64encode(data).decode("ascii"))  # SIMD: ~3 us for a 224x224 PNG, stdlib ~240


def path_part(value: str) -> str:
    """``value`` escaped for use as one URL path segment."""
    return quote(str(value), safe="")


def dig(obj: Any, path: str, what: str = "response") -> Any:
    """``obj`` followed along a dotted ``path`` (``"outputs.0.data"``), or a clear error."""
    cur = obj
    walked = []
    for part in path.split(".") if path else []:
        walked.append(part)
        where = ".".join(walked)
        if isinstance(cur, dict):
            if part not in cur:
                raise ResponseFormatError(f"{what} has no field {where!r} (keys there: {sorted(cur)[:8]})")
            cur = cur[part]
        elif isinstance(cur, list) and part.lstrip("-").isdigit():
            if not -len(cur) <= int(part) < len(cur):
                raise ResponseFormatError(f"{what} field {where!r}: index {part} out of a list of {len(cur)}")
            cur = cur[int(part)]
        else:
            raise ResponseFormatError(f"{what} field {where!r} cannot be read from a {type(cur).__name__}")
    return cur


def score(value: Any, scale: float, where: str) -> float:
    """A score read from the body, divided by ``scale`` (100 for percentages)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ResponseFormatError(f"{where} is {value!r}; expected a number")
    if not 0.0 <= value <= scale:  # compared before float(): a huge integer must not overflow
        raise ResponseFormatError(f"{where} is {value!r}; expected a score in [0, {scale:g}]")
    return float(value) / scale


def per_image(items: Any, n_images: int, where: str) -> list[Any]:
    """``items`` checked to be a list with one entry per image sent."""
    if not isinstance(items, list) or len(items) != n_images:
        got = f"{len(items)} entries" if isinstance(items, list) else f"a {type(items).__name__}"
        raise ResponseFormatError(f"{where} holds {got} for {n_images} image(s); expected one per image")
    return items


def read_entries(
    entries: Any, where: str, *, label_keys: Sequence[str], score_key: str | None, scale: float = 1.0
) -> Answer:
    """An answer from a list of ``{label: ..., score: ...}`` objects.

    The label is the first of ``label_keys`` present; a label listed twice
    keeps its highest score. ``score_key=None`` (or an entry without it)
    means the API gave the name only (label-only answers).
    """
    if not isinstance(entries, list):
        raise ResponseFormatError(f"{where} is a {type(entries).__name__}; expected a list of labels")
    answer: Answer = {}
    for j, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise ResponseFormatError(f"{where}.{j} is {entry!r}; expected an object with {label_keys[0]!r}")
        name = next((entry[k] for k in label_keys if isinstance(entry.get(k), str)), None)
        if name is None:
            raise ResponseFormatError(
                f"{where}.{j} has no {' or '.join(map(repr, label_keys))}; keys there: {sorted(entry)[:8]}"
            )
        value = None
        if score_key is not None and score_key in entry:
            value = score(entry[score_key], scale, f"{where}.{j}.{score_key}")
        old = answer.get(name)
        answer[name] = value if old is None or value is None else max(old, value)
    return answer


def read_mapping(obj: Any, where: str, *, scale: float = 1.0) -> Answer:
    """An answer from an object ``{label: score}``."""
    if not isinstance(obj, dict):
        raise ResponseFormatError(f"{where} is a {type(obj).__name__}; expected an object {{label: score}}")
    return {str(k): score(v, scale, f"{where} {k!r}") for k, v in obj.items()}


def throttle(message: str, retry_after: float | None = None, *, retryable: bool = True) -> RateLimitError:
    err = RateLimitError(message)
    err.retry_after = retry_after  # type: ignore[attr-defined]
    err.retryable = retryable
    return err


def transient(message: str, retry_after: float | None = None) -> TransientError:
    err = TransientError(message)
    err.retry_after = retry_after  # type: ignore[attr-defined]
    return err


def revealed(credentials: Secret | None, vendor: str) -> str:
    """The key of a preset that needs one (``resolve_credentials`` found it, or raised)."""
    if credentials is None:
        raise InvalidInputError(f"credentials=None; the {vendor} preset sends an API key with every request")
    return credentials.reveal()


class Preset:
    """One vendor's request and response format.

    Subclasses set the class attributes and override :meth:`build_request` and
    :meth:`parse`; :meth:`check` and :meth:`authorize` have defaults that
    suit most vendors. ``__init__`` takes the vendor's own required fields
    (``model_id``, ``region``, ...) and validates them. Register a subclass
    with :func:`bar_sdk.adapters.remote.register_preset` to use it by name.

    Attributes
    ----------
    name : str
        Registry name.
    max_batch : int
        Most images one request may carry.
    key_env : tuple of str
        Environment variables read when ``api_key=None`` (``BAR_API_KEY`` is
        tried last when a key is required).
    key_required : bool
        Whether requests need a credential.
    default_base_url : str or None
        Used when ``base_url`` is not given.
    """

    name: ClassVar[str] = "preset"
    key_env: ClassVar[tuple[str, ...]] = ()
    key_required: bool = True  # an instance may set its own (the generic preset)
    default_base_url: ClassVar[str | None] = None
    max_batch: int = 1
    tensor_input: ClassVar[bool] = False
    """True for tensor protocols: :meth:`build_request` gets the quantised uint8 ``(C, H, W)`` arrays
    themselves, and no image is encoded."""

    # -- what subclasses provide ----------------------------------------------------------------

    def build_request(self, base_url: str, images: Sequence[bytes], labels: Sequence[str]) -> HttpRequest:
        """The request for encoded ``images`` (PNG/JPEG bytes), without credentials."""
        raise NotImplementedError

    def parse(self, response: HttpResponse, n_images: int) -> Sequence[Answer | RemoteError]:
        """One answer per image of a successful response (or an error for an image the API
        refused inside a successful response). Raise ResponseFormatError on a body that
        cannot be read."""
        raise NotImplementedError

    # -- defaults ---------------------------------------------------------------------------------

    def prepare(
        self, base_url: str, send: Callable[[HttpRequest], HttpResponse], sleep: Callable[[float], Any]
    ) -> None:
        """Called before each request is built; a protocol that must first check readiness or read
        metadata does it here, once (``send`` is free: not billed, not counted, credentials added)."""

    def resolve_credentials(self, api_key: Any) -> Any:
        """The credential object :meth:`authorize` uses (repr ``'***'``), from ``api_key`` or the environment."""
        return resolve_secret(api_key, self.key_env, required=self.key_required)

    def authorize(self, request: HttpRequest, credentials: Secret | None) -> HttpRequest:
        """``request`` with credentials added; called before every attempt (signatures expire)."""
        if credentials is None:
            return request
        return request.with_headers(Authorization=f"Bearer {credentials.reveal()}")

    def check(self, response: HttpResponse) -> None:
        """Raise the matching error for a response that is not a success."""
        if not response.ok:
            raise classify_status(response, self.name)

    def check_labels(self, labels: Sequence[str]) -> None:
        """Warn or raise at construction when ``labels`` cannot be served well."""

    def identity(self) -> dict[str, Any]:
        """Everything that changes the answers (never credentials); keys the cache."""
        return {"preset": self.name, **{k: v for k, v in vars(self).items() if not k.startswith("_")}}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({args})"


def classify_status(response: HttpResponse, vendor: str, detail: str | None = None) -> RemoteError:
    """The error for a non-success HTTP status, by status alone."""
    status = response.status_code
    detail = detail or response.snippet()
    retry_after = parse_retry_after(response.headers.get("retry-after"))
    if status in (401, 403):
        return AuthenticationError(
            f"{vendor} refused the credentials (HTTP {status}): {detail}. Check api_key and base_url; not retried"
        )
    if status == 429:
        return throttle(f"{vendor} throttled the request (HTTP 429): {detail}", retry_after)
    if status in (408, 425) or status >= 500:
        return transient(f"{vendor} failed (HTTP {status}): {detail}", retry_after)
    if 300 <= status < 400:
        return RemoteError(
            f"{vendor} answered HTTP {status} redirecting to {response.headers.get('location')!r}; "
            "redirects are not followed (credentials stay with base_url's host)"
        )
    return RemoteError(f"{vendor} rejected the request (HTTP {status}): {detail}; not retried")


_MARK = f"@@b64-{os.urandom(6).hex()}-"


def json_body(obj: Any) -> bytes:
    """``json.dumps(obj)`` (compact) as bytes, byte for byte, without scanning the :func:`b64` strings in it.

    The images' base64 text is most of a body and never needs escaping, so it is left out of the JSON
    encoder (which would scan and copy it twice) and joined in afterwards.
    """
    blobs: list[str] = []

    def swap(o: Any) -> Any:
        if isinstance(o, Base64):
            blobs.append(o)
            return f"{_MARK}{len(blobs) - 1}"
        if isinstance(o, dict):
            return {k: swap(v) for k, v in o.items()}
        if isinstance(o, (list, tuple)):
            return [swap(v) for v in o]
        return o

    skeleton = swap(obj)
    text = json.dumps(skeleton, separators=(",", ":"))
    pieces = text.split(f'"{_MARK}')
    if not blobs or len(pieces) != len(blobs) + 1:  # none, or a mark found in the data itself: the plain way
        return json.dumps(obj, separators=(",", ":")).encode()
    out = [pieces[0].encode()]
    for i, piece in enumerate(pieces[1:]):
        head = f'{i}"'
        if not piece.startswith(head):
            return json.dumps(obj, separators=(",", ":")).encode()
        out += [b'"', blobs[i].encode("ascii"), b'"', piece[len(head) :].encode()]
    return b"".join(out)
