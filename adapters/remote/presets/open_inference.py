"""The Open Inference Protocol (KServe "V2", NVIDIA Triton, Seldon MLServer): tensors in, tensors out.

``POST {base_url}/v2/models/{name}[/versions/{v}]/infer`` with one input
tensor holding the batch of images (``FP32``, ``FP64`` or ``UINT8``, laid out
``NCHW``, ``NHWC`` or flattened, as the model declares), answered with an
output tensor of class scores, or with Triton's classification extension (the
top ``k`` as strings ``"<score>:<index>[:<label>]"``).

What the user does not say is read from the server before the first paid
request: ``GET /v2/health/ready`` and ``GET /v2/models/{name}/ready`` are
polled until both answer 2xx (at most ``ready_timeout`` seconds), then
``GET /v2/models/{name}`` (the model's metadata: input name, datatype, shape,
outputs) and ``GET /v2`` (the server's extensions: ``binary_tensor_data``
turns on the binary tensor extension, so a 3x224x224 image travels as 150 kB
of raw bytes, not as a JSON list of 150k numbers). These requests are free
and are not counted in the ledger.

Images are the same 8-bit images every preset sends: ``FP32`` tensors carry
``k / 255`` (or ``k`` with ``value_range="byte"``), so the server sees exactly
the image that was hashed for the cache and counted.

Overload, as each server signals it, is retried under the RetryPolicy's stop:
Triton's 503 ``"Exceeds maximum queue size"`` and any 429 are throttles (the
rate-limit token is given back); MLServer's 400 ``"... is not ready yet"`` and
5xx (KServe answers 500 when its queue is full) are transient. Any other 400
(a wrong shape, an unknown input) is the client's error and is not retried.
"""

from __future__ import annotations

import threading
from typing import Any, Callable, Sequence

import numpy as np

from bar_sdk.adapters.remote.http import HttpRequest, HttpResponse
from bar_sdk.adapters.remote.presets.base import Answer, Preset, classify_status, path_part, throttle, transient
from bar_sdk.adapters.remote.presets.open_inference_answers import parse_classification, read_answers
from bar_sdk.adapters.remote.presets.open_inference_metadata import INPUT_TYPES, ServerMetadata, error_text
from bar_sdk.adapters.remote.presets.open_inference_tensors import (
    DATATYPES,
    HEADER_LENGTH,
    Levels,
    decode_tensors,
    encode_tensors,
)
from bar_sdk.adapters.remote.retry import parse_retry_after
from bar_sdk.contract import check_bool, check_choice, check_float, check_int
from bar_sdk.errors import InvalidInputError

__all__ = [
    "OpenInferencePreset",
    "Levels",
    "encode_tensors",
    "decode_tensors",
    "parse_classification",
    "DATATYPES",
    "HEADER_LENGTH",
]

_LAYOUTS = ("NCHW", "NHWC", "FLAT")


class OpenInferencePreset(ServerMetadata, Preset):
    """Open Inference Protocol (V2) over REST: KServe, Triton, MLServer, and ``bar serve --preset open_inference``.

    Parameters
    ----------
    model_name : str
        The model's name on the server.
    model_version : str, optional
        ``/versions/{v}``; the server's default version when omitted.
    input_name, datatype, layout : optional
        The input tensor's name, type (``"FP32"``, ``"FP64"`` or ``"UINT8"``)
        and layout: ``"NCHW"``, ``"NHWC"`` or ``"FLAT"`` (``C*H*W`` values per
        image in NCHW order, as tabular models take them). Read from the
        model's metadata when omitted; a declared shape that does not fit
        ``input_shape`` is refused before any paid request.
    value_range : {"unit", "byte"}
        Float tensors carry ``k / 255`` ("unit") or ``k`` ("byte") for 8-bit level ``k``.
    output_name : str, optional
        The scores tensor (the model's first output by default).
    scores : {"probabilities", "logits"}
        What the output holds: probabilities are used as they are (checked to
        lie in [0, 1]); logits are turned into probabilities by a softmax.
    classification : int, optional
        Ask for the top ``k`` classes through Triton's classification extension
        (strings ``"<score>:<index>[:<label>]"``); classes left out score 0.
    binary : bool, optional
        Use the binary tensor extension for the request and the answer;
        ``None`` (default) uses it when ``GET /v2`` lists ``binary_tensor_data``.
    max_batch : int
        Images per request (the server's own limit, e.g. Triton's ``max_batch_size``).
    ready_timeout : float
        Seconds to wait for the server and the model to be ready before the first request.
    wait_ready : bool
        Poll the readiness endpoints (turn off for a gateway that hides them).

    Notes
    -----
    ``labels`` must list the model's classes in output order: column ``j`` of
    the scores tensor (or index ``j`` of a classification string) is ``labels[j]``.
    """

    name = "open_inference"
    key_env = ("OPEN_INFERENCE_TOKEN",)
    key_required = False
    tensor_input = True

    def __init__(
        self,
        model_name: str,
        *,
        model_version: str | None = None,
        input_name: str | None = None,
        datatype: str | None = None,
        layout: str | None = None,
        value_range: str = "unit",
        output_name: str | None = None,
        scores: str = "probabilities",
        classification: int | None = None,
        binary: bool | None = None,
        max_batch: int = 32,
        ready_timeout: float = 60.0,
        wait_ready: bool = True,
    ) -> None:
        for value, what in (
            (model_name, "model_name"),
            (model_version, "model_version"),
            (input_name, "input_name"),
            (output_name, "output_name"),
        ):
            if (value is not None or what == "model_name") and (not isinstance(value, str) or not value):
                raise InvalidInputError(f"{what}={value!r}; expected a non-empty string (the name on the server)")
        self.model_name = model_name
        self.model_version = model_version
        self.input_name = input_name
        self.datatype = None if datatype is None else check_choice(datatype, "datatype", INPUT_TYPES)
        self.layout = None if layout is None else check_choice(layout, "layout", _LAYOUTS)
        self.value_range = check_choice(value_range, "value_range", ("unit", "byte"))
        self.output_name = output_name
        self.scores = check_choice(scores, "scores", ("probabilities", "logits"))
        self.classification = check_int(classification, "classification", low=1, allow_none=True)
        self._binary = None if binary is None else check_bool(binary, "binary")
        self.max_batch = check_int(max_batch, "max_batch", low=1)
        self._ready_timeout = check_float(ready_timeout, "ready_timeout", low=0.0)
        self._wait_ready = check_bool(wait_ready, "wait_ready")
        self._labels: tuple[str, ...] = ()
        self._dims: list[int] | None = None  # the input's declared shape, batch dimension removed
        self._batched = True
        self._prepared = False
        self._lock = threading.Lock()

    # -- before the first request ---------------------------------------------------------------

    def check_labels(self, labels: Sequence[str]) -> None:
        self._labels = tuple(labels)

    @property
    def model_path(self) -> str:
        path = f"/v2/models/{path_part(self.model_name)}"
        return path + (f"/versions/{path_part(self.model_version)}" if self.model_version is not None else "")

    def prepare(
        self, base_url: str, send: Callable[[HttpRequest], HttpResponse], sleep: Callable[[float], Any]
    ) -> None:
        """Wait for readiness and read what the user left out (once; free requests, not billed)."""
        if self._prepared:
            return
        with self._lock:
            if self._prepared:
                return
            if self._wait_ready:
                self._poll_ready(base_url, send, sleep)
            if None in (self.input_name, self.datatype, self.layout) or (
                self.output_name is None and self.classification is not None
            ):
                self._read_metadata(self._get_json(send, base_url + self.model_path, "model metadata"))
            if self._binary is None:
                self._binary = self._offers_binary(base_url, send)
            self._prepared = True

    # -- one request ------------------------------------------------------------------------------

    def build_request(self, base_url: str, images: Sequence[Any], labels: Sequence[str]) -> HttpRequest:
        """``images``: the quantised uint8 ``(C, H, W)`` arrays, or one ``(n, C, H, W)`` array (this preset
        takes tensors, not PNG)."""
        x = images if isinstance(images, np.ndarray) else np.stack(images)
        if x.dtype != np.uint8:
            raise InvalidInputError(f"open_inference got {x.dtype} images; expected the quantised uint8 images")
        if self.input_name is None or self.datatype is None or self.layout is None:
            raise InvalidInputError(
                "open_inference: input_name, datatype and layout are unknown (the metadata was "
                "not read); pass them, or let RemoteModel call prepare() first"
            )
        if self.layout == "NHWC":
            x = x.transpose(0, 2, 3, 1)
        elif self.layout == "FLAT":
            x = x.reshape(len(x), -1)
        self._check_dims(x.shape[1:], images[0].shape)
        if not self._batched:
            if len(x) != 1:
                raise InvalidInputError(
                    f"model {self.model_name!r} input {self.input_name!r} has no batch dimension "
                    f"(shape {self._dims}); expected max_batch=1, got {self.max_batch}"
                )
            x = x[0]
        tensor = Levels(x, self.datatype, 255.0 if self.datatype != "UINT8" and self.value_range == "unit" else 1.0)
        doc: dict[str, Any] = {}
        if self.output_name is not None:
            params: dict[str, Any] = {"binary_data": True} if self._binary else {}
            if self.classification is not None:
                params["classification"] = self.classification
            doc["outputs"] = [{"name": self.output_name, "parameters": params}]
        elif self._binary:  # every output, in binary
            doc["parameters"] = {"binary_data_output": True}
        meta = {"name": self.input_name, "shape": tensor.shape, "datatype": self.datatype}
        body, n_header = encode_tensors(doc, "inputs", [(meta, tensor)], binary=bool(self._binary))
        headers = {"Content-Type": "application/octet-stream" if n_header is not None else "application/json"}
        if n_header is not None:
            headers[HEADER_LENGTH] = str(n_header)
        return HttpRequest("POST", f"{base_url}{self.model_path}/infer", headers, body)

    def _check_dims(self, dims: tuple[int, ...], chw: tuple[int, ...]) -> None:
        if self._dims is None:
            return
        if len(dims) != len(self._dims) or any(d != -1 and d != g for d, g in zip(self._dims, dims, strict=False)):
            raise InvalidInputError(
                f"model {self.model_name!r} input {self.input_name!r} takes shape {self._dims} "
                f"per image (its metadata); input_shape={tuple(chw)} in layout {self.layout} "
                f"gives {list(dims)}"
            )

    def check(self, response: HttpResponse) -> None:
        if response.ok:
            return
        text = error_text(response)
        lowered = text.lower()
        retry_after = parse_retry_after(response.headers.get("retry-after"))
        if "maximum queue size" in lowered or response.status_code == 503:
            raise throttle(f"open_inference server is overloaded (HTTP {response.status_code}): {text}", retry_after)
        if response.status_code == 400 and "not ready" in lowered:
            raise transient(f"open_inference model is not ready (HTTP 400): {text}", retry_after)
        raise classify_status(response, "open_inference", detail=text)

    def parse(self, response: HttpResponse, n_images: int) -> Sequence[Answer]:
        return read_answers(response, n_images, output_name=self.output_name, labels=self._labels, scores=self.scores)

    def identity(self) -> dict[str, Any]:
        # What changes the answers; not how they travel (binary, batch size) nor how long to wait.
        keep = (
            "model_name",
            "model_version",
            "input_name",
            "datatype",
            "layout",
            "value_range",
            "output_name",
            "scores",
            "classification",
        )
        return {"preset": self.name, **{k: getattr(self, k) for k in keep}}
