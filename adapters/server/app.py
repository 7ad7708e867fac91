"""The local cloud-like classification API (a Starlette app serving any contract model)."""

from __future__ import annotations

import asyncio
import math
import secrets
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from bar_sdk.adapters.remote.encoding import decode_base64_image, decode_image
from bar_sdk.adapters.remote.ratelimit import TokenBucket
from bar_sdk.adapters.server.clarifai import ClarifaiShape
from bar_sdk.adapters.server.faults import KINDS, Faults
from bar_sdk.adapters.server.huggingface import HuggingFaceShape
from bar_sdk.adapters.server.open_inference import OpenInferenceShape
from bar_sdk.adapters.server.shape import BadRequest, Ranked, Shape, Wanted
from bar_sdk.contract import check_choice, check_float, check_int, check_model, check_scores
from bar_sdk.errors import InvalidInputError

if TYPE_CHECKING:
    from starlette.applications import Starlette

__all__ = ["create_app", "ServerState", "ServerStats", "PRESETS"]

PRESETS: dict[str, type] = {
    "clarifai": ClarifaiShape,
    "huggingface": HuggingFaceShape,
    "open_inference": OpenInferenceShape,
}
"""The API formats the server speaks (named like the client presets that talk to them)."""


@dataclass(frozen=True)
class ServerStats:
    """What the server saw, in one consistent snapshot.

    ``billed`` counts images answered with a well-formed 200 body: throttled,
    failed, malformed and refused requests are never billed, so a correct
    client's ``ledger.billed`` equals this number.
    """

    billed: int
    requests: int
    answered: int
    throttled: int
    unauthorized: int
    bad_requests: int
    injected: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "billed": self.billed,
            "requests": self.requests,
            "answered": self.answered,
            "throttled": self.throttled,
            "unauthorized": self.unauthorized,
            "bad_requests": self.bad_requests,
            "injected": dict(self.injected),
        }


class ServerState:
    """Counters, rate limiters, fault draws and the model of one server."""

    def __init__(
        self,
        model: Any,
        shape: Shape,
        api_keys: Sequence[str],
        admin_key: str,
        rate_limit: float | None,
        burst: int | None,
        top_k: int | None,
        label_only: bool,
        faults: Faults | None,
    ) -> None:
        self.model = model
        self.n_classes, self.input_shape = check_model(model)
        self.labels = [str(v) for v in getattr(model, "labels", None) or [f"class_{i}" for i in range(self.n_classes)]]
        self.index = {name: i for i, name in enumerate(self.labels)}
        self.shape = shape
        self.api_keys = frozenset(api_keys)
        self.admin_key = admin_key
        self.rate_limit = rate_limit
        self.burst = burst if burst is not None else max(1, int(rate_limit or 1))
        self.top_k = top_k
        self.label_only = label_only
        self.faults = faults
        self._injector = faults.injector() if faults is not None else None
        self._buckets: dict[str, TokenBucket] = {}
        self._lock = threading.Lock()
        self._model_lock = threading.Lock()
        self._counts = dict.fromkeys(("billed", "requests", "answered", "throttled", "unauthorized", "bad_requests"), 0)
        self._injected = dict.fromkeys(KINDS, 0)

    def count(self, name: str, n: int = 1) -> None:
        with self._lock:
            if name in self._injected:
                self._injected[name] += n
            else:
                self._counts[name] += n

    def stats(self) -> ServerStats:
        with self._lock:
            return ServerStats(**self._counts, injected=dict(self._injected))

    def draw_fault(self) -> tuple[str | None, float]:
        return self._injector.draw() if self._injector is not None else (None, 0.0)

    def take_token(self, key: str) -> float:
        """0.0 if ``key`` may send now, else seconds until it may."""
        if self.rate_limit is None:
            return 0.0
        with self._lock:
            bucket = self._buckets.setdefault(key, TokenBucket(self.rate_limit, self.burst))
        return bucket.try_take()

    def predict(self, images: list[np.ndarray]) -> np.ndarray:
        x = np.stack(images)  # uint8 levels (decoded images), or float tensors in [0, 1]
        x = x.astype(np.float32) / np.float32(255.0) if x.dtype == np.uint8 else x.astype(np.float32)
        with self._model_lock:
            out = self.model.predict_proba(x)
        return check_scores(out, len(images), self.n_classes)

    def rank(self, row: np.ndarray, wanted: Wanted) -> Ranked:
        if self.label_only:
            return [(self.labels[int(np.argmax(row))], None)]
        if wanted.select:
            idx = [self.index[name] for name in wanted.select if name in self.index]
        else:
            k = min(wanted.k, self.top_k or wanted.k, self.n_classes)
            idx = [int(i) for i in np.argsort(-row, kind="stable")[:k]]
        scores = [(self.labels[i], float(row[i])) for i in idx]
        floor = wanted.min_value
        return [(name, v) for name, v in scores if floor is None or v >= floor]


def create_app(
    model: Any,
    *,
    preset: str = "clarifai",
    api_keys: Sequence[str] = ("test-key",),
    admin_key: str | None = None,
    rate_limit: float | None = None,
    burst: int | None = None,
    top_k: int | None = None,
    label_only: bool = False,
    faults: Faults | None = None,
    model_name: str = "model",
    input_datatype: str = "FP32",
) -> Starlette:
    """A Starlette app answering in the format of ``preset`` with ``model``'s scores.

    Parameters
    ----------
    model : black box
        Any object with ``predict_proba`` (float32 NCHW in [0, 1]),
        ``n_classes``, ``input_shape`` and optionally ``labels``. Images sent
        must have exactly ``input_shape``; they are decoded from PNG/JPEG to
        uint8 and divided by 255.
    preset : {"clarifai", "huggingface", "open_inference"}
        The API format (paths, auth header, bodies, error bodies), the one the
        client preset of the same name speaks. ``open_inference`` serves the
        model as ``model_name`` in the V2 inference protocol (see
        :mod:`bar_sdk.adapters.server.open_inference`).
    api_keys : sequence of str
        Accepted credentials; anything else is answered 401.
    admin_key : str, optional
        Key for ``GET /_stats`` (header ``X-Admin-Key``); random by default.
    rate_limit : float, optional
        Requests per second per API key; over it, 429 with ``Retry-After``
        (whole seconds) and the vendor's throttle body.
    burst : int, optional
        Token-bucket size of that limit (default: one second's worth).
    top_k : int, optional
        Most labels the server returns per image, whatever the client asks.
    label_only : bool
        Answer with the top label's name only, no score.
    faults : Faults, optional
        Injected 429/500/slow/malformed answers (seeded).
    model_name : str
        The name the model is served under (``open_inference`` only).
    input_datatype : {"FP32", "UINT8"}
        The input tensor's declared type (``open_inference`` only).

    Notes
    -----
    ``GET /_health`` answers ``ok`` without a key. The app's state
    (``app.state.bar``, a :class:`ServerState`) holds the counters.
    """
    from starlette.applications import Starlette
    from starlette.concurrency import run_in_threadpool
    from starlette.requests import Request
    from starlette.responses import JSONResponse, PlainTextResponse, Response
    from starlette.routing import Route

    shape = PRESETS[check_choice(preset, "preset", tuple(PRESETS))]()
    if not isinstance(model_name, str) or not model_name or "/" in model_name:
        raise InvalidInputError(f"model_name={model_name!r}; expected a non-empty name without '/'")
    if isinstance(api_keys, str) or not api_keys or not all(isinstance(k, str) and k for k in api_keys):
        raise InvalidInputError("api_keys must be a non-empty sequence of non-empty strings")
    check_float(rate_limit, "rate_limit", low=0.0, low_open=True, allow_none=True)
    check_int(burst, "burst", low=1, allow_none=True)
    check_int(top_k, "top_k", low=1, allow_none=True)
    if faults is not None and not isinstance(faults, Faults):
        raise InvalidInputError(f"faults={faults!r}; expected bar_sdk.adapters.server.Faults")
    state = ServerState(
        model,
        shape,
        list(api_keys),
        admin_key or secrets.token_urlsafe(16),
        rate_limit,
        burst,
        top_k,
        bool(label_only),
        faults,
    )
    if hasattr(shape, "bind"):  # a protocol that describes the model (metadata) needs to know it
        shape.bind(state, model_name, check_choice(input_datatype, "input_datatype", ("FP32", "UINT8")))

    def error(kind: str, message: str, retry_after: float | None = None) -> Response:
        status, body = shape.error(kind, message)
        # Whole seconds, as HTTP wants; a real throttle's wait (> 0) rounds up to at least 1.
        headers = {"Retry-After": str(math.ceil(retry_after))} if retry_after is not None else None
        return JSONResponse(body, status_code=status, headers=headers)

    async def predict(request: Request) -> Response:
        state.count("requests")
        key = shape.credential(request.headers)
        if key is None or key not in state.api_keys:
            state.count("unauthorized")
            return error("unauthorized", "missing or invalid credentials")
        fault, where = state.draw_fault()
        if fault == "429" and faults is not None:  # a throttle the limiter did not ask for: it takes no token
            state.count("429")
            return error("throttled", "injected throttle", retry_after=faults.retry_after)
        wait = state.take_token(key)
        if wait > 0:
            state.count("throttled")
            return error("throttled", f"exceeded limit of {rate_limit:g} requests per second", retry_after=wait)
        try:
            raw, wanted = shape.read(await request.body(), request.headers)
            images = [
                r if isinstance(r, np.ndarray) else decode_base64_image(r) if isinstance(r, str) else decode_image(r)
                for r in raw
            ]
            bad = [i for i, img in enumerate(images) if img.shape != state.input_shape]
            if bad:
                raise BadRequest(
                    f"image {bad[0]} has shape {images[bad[0]].shape}; this model takes {state.input_shape} (C, H, W)"
                )
        except (BadRequest, InvalidInputError) as exc:
            state.count("bad_requests")
            return error("bad_request", str(exc))
        if fault == "500":
            state.count("500")
            return error("failure", "injected internal error")
        scores = await run_in_threadpool(state.predict, images)
        ranked = [state.rank(row, wanted) for row in scores]
        if fault == "slow" and faults is not None:
            state.count("slow")
            await asyncio.sleep(faults.slow_seconds)
        if fault == "malformed":
            state.count("malformed")
            return Response(
                shape.malformed(ranked, request.path_params, cut=where < 0.5),
                status_code=200,
                media_type="application/json",
            )
        state.count("billed", len(images))
        state.count("answered")
        body = (
            shape.ok(ranked, request.path_params, wanted)
            if hasattr(shape, "bind")
            else shape.ok(ranked, request.path_params)
        )
        return body if isinstance(body, Response) else JSONResponse(body)

    async def stats(request: Request) -> Response:
        if not secrets.compare_digest(request.headers.get("x-admin-key", ""), state.admin_key):
            return JSONResponse({"error": "X-Admin-Key header missing or wrong"}, status_code=401)
        return JSONResponse(state.stats().as_dict())

    async def health(request: Request) -> Response:
        return PlainTextResponse("ok")

    routes = [Route(path, predict, methods=["POST"]) for path in shape.paths]
    routes += [Route("/_stats", stats, methods=["GET"]), Route("/_health", health, methods=["GET"])]
    routes += list(getattr(shape, "free_routes", lambda: [])())  # health, metadata: no key, never billed
    app = Starlette(routes=routes)
    app.state.bar = state
    return app
