"""Before the first paid request to an Open Inference server: readiness, model metadata, server extensions.

These requests are free (not billed, not counted); :class:`ServerMetadata` is the part of
:class:`~bar_sdk.adapters.remote.presets.open_inference.OpenInferencePreset` that makes them.
"""

from __future__ import annotations

import json
import time
from typing import Any, Callable

from bar_sdk.adapters.remote.http import HttpRequest, HttpResponse
from bar_sdk.adapters.remote.presets.base import classify_status
from bar_sdk.errors import InvalidInputError, RemoteError, ResponseFormatError, TransientError

__all__ = ["ServerMetadata", "INPUT_TYPES", "error_text"]

INPUT_TYPES = ("FP32", "FP64", "UINT8")

Send = Callable[[HttpRequest], HttpResponse]
"""A free request to the server (not billed, not counted; credentials added), as ``Preset.prepare`` gets it."""


class ServerMetadata:
    """Readiness polling and metadata reading (the preset's fields: model name and version, input, output)."""

    model_name: str
    model_version: str | None
    input_name: str | None
    datatype: str | None
    layout: str | None
    output_name: str | None
    classification: int | None
    _ready_timeout: float
    _batched: bool
    _dims: list[int] | None

    @property
    def model_path(self) -> str:
        """``/v2/models/{name}[/versions/{v}]``: the preset's own."""
        raise NotImplementedError

    def _poll_ready(self, base_url: str, send: Send, sleep: Callable[[float], Any]) -> None:
        start, slept, pause = time.monotonic(), 0.0, 0.05
        for url in (f"{base_url}/v2/health/ready", f"{base_url}{self.model_path}/ready"):
            while True:
                last = self._ready_once(send, url)
                if last is None:
                    break
                if max(time.monotonic() - start, slept) + pause > self._ready_timeout:
                    raise TransientError(
                        f"open_inference: {url} did not answer ready within "
                        f"ready_timeout={self._ready_timeout:g} s (last: {last}); is the server "
                        "up and the model loaded?"
                    )
                result = sleep(pause)
                if hasattr(result, "close"):  # an async sleep handed to a sync step: not awaited here
                    result.close()
                    time.sleep(pause)
                slept += pause
                pause = min(2.0, pause * 2)

    def _ready_once(self, send: Send, url: str) -> str | None:
        """``None`` when ``url`` says ready, else what it said; raises on answers that will not change."""
        try:
            response = send(HttpRequest("GET", url))
        except TransientError as exc:  # not listening yet, or a dropped connection
            return str(exc)
        if response.status_code in (401, 403):
            raise classify_status(response, "open_inference")
        if response.status_code == 404:
            raise RemoteError(
                f"open_inference: {url} answered 404 ({response.snippet(200)}); check model_name="
                f"{self.model_name!r} and model_version={self.model_version!r} (the server lists "
                "its models at POST /v2/repository/index)"
            )
        if not response.ok:
            return f"HTTP {response.status_code} {response.snippet(200)}"
        try:
            body = json.loads(response.content) if response.content.strip() else {}
        except ValueError:
            body = {}
        if isinstance(body, dict) and body.get("ready") is False:
            return f"HTTP {response.status_code} {response.snippet(200)}"
        return None

    def _get_json(self, send: Send, url: str, what: str) -> Any:
        response = send(HttpRequest("GET", url))
        if not response.ok:
            err = classify_status(response, "open_inference", detail=error_text(response))
            err.args = (f"{what} ({url}): {err}",)
            raise err
        return response.json()

    def _offers_binary(self, base_url: str, send: Send) -> bool:
        try:
            meta = self._get_json(send, base_url + "/v2", "server metadata")
        except RemoteError:
            return False  # no server metadata: stay with plain JSON, which every server reads
        extensions = meta.get("extensions") if isinstance(meta, dict) else None
        return isinstance(extensions, list) and "binary_tensor_data" in extensions

    def _read_metadata(self, meta: Any) -> None:
        where = f"metadata of model {self.model_name!r}"
        inputs = meta.get("inputs") if isinstance(meta, dict) else None
        if not isinstance(inputs, list) or not inputs or not all(isinstance(t, dict) for t in inputs):
            raise ResponseFormatError(f"{where} has no 'inputs' list; pass input_name=, datatype= and layout=")
        names = [t.get("name") for t in inputs]
        if self.input_name is None:
            if len(inputs) > 1:
                raise InvalidInputError(
                    f"input_name=None but model {self.model_name!r} has inputs {names}; "
                    "expected input_name= naming the image input"
                )
            entry = inputs[0]
        elif self.input_name in names:
            entry = inputs[names.index(self.input_name)]
        else:
            raise InvalidInputError(f"input_name={self.input_name!r}; model {self.model_name!r} has inputs {names}")
        if not isinstance(entry.get("name"), str):
            raise ResponseFormatError(f"{where}: input {entry!r} has no name")
        shape = entry.get("shape")
        if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) for d in shape):
            raise ResponseFormatError(f"{where}: input {entry['name']!r} shape={shape!r}; expected a list of ints")
        if self.datatype is None and entry.get("datatype") not in INPUT_TYPES:
            raise InvalidInputError(
                f"model {self.model_name!r} input {entry['name']!r} takes datatype "
                f"{entry.get('datatype')!r}; this preset sends one of {', '.join(INPUT_TYPES)} "
                "(pass datatype= to override)"
            )
        self.input_name = entry["name"]
        self.datatype = self.datatype or entry["datatype"]
        self._batched = len(shape) in (2, 4)
        self._dims = shape[1:] if self._batched else shape
        if self.layout is None:
            self.layout = _layout_of(self._dims, self.model_name, entry["name"])
        outputs = meta.get("outputs")
        if (
            self.output_name is None
            and isinstance(outputs, list)
            and outputs
            and isinstance(outputs[0], dict)
            and isinstance(outputs[0].get("name"), str)
        ):
            self.output_name = outputs[0]["name"]  # the first output holds the scores, unless told otherwise
        if self.output_name is None and self.classification is not None:
            raise ResponseFormatError(f"{where} has no 'outputs'; pass output_name= for classification=")


def _layout_of(dims: list[int], model: str, name: str) -> str:
    if len(dims) == 1:
        return "FLAT"
    if len(dims) == 3:
        first, last = dims[0] in (1, 3), dims[-1] in (1, 3)
        if first and not last:
            return "NCHW"
        if last and not first:
            return "NHWC"
    raise InvalidInputError(
        f"model {model!r} input {name!r} has shape {dims} per image, which does not say its "
        "layout; expected layout='NCHW', 'NHWC' or 'FLAT'"
    )


def error_text(response: HttpResponse) -> str:
    """The protocol's error body ``{"error": "..."}``, or the start of whatever came."""
    try:
        body = json.loads(response.content)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return response.snippet(300)
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        message: str = body["error"]
        return message[:300]
    return response.snippet(300)
