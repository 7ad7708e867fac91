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

import functools
import json
import struct
import threading
import time
from typing import Any, Callable, Sequence

import numpy as np

from bar_sdk.adapters.remote.http import HttpRequest, HttpResponse
from bar_sdk.adapters.remote.presets.base import Answer, Preset, classify_status, path_part, throttle, transient
from bar_sdk.adapters.remote.retry import parse_retry_after
from bar_sdk.contract import check_bool, check_choice, check_float, check_int
from bar_sdk.errors import AuthenticationError, InvalidInputError, RemoteError, ResponseFormatError, TransientError

__all__ = ["OpenInferencePreset", "Levels", "encode_tensors", "decode_tensors", "parse_classification", "DATATYPES",
           "HEADER_LENGTH"]

HEADER_LENGTH = "Inference-Header-Content-Length"
"""Header of the binary tensor extension: bytes of JSON before the raw tensors."""

DATATYPES: dict[str, str] = {"BOOL": "|b1", "UINT8": "|u1", "UINT16": "<u2", "UINT32": "<u4", "UINT64": "<u8",
                             "INT8": "|i1", "INT16": "<i2", "INT32": "<i4", "INT64": "<i8", "FP16": "<f2",
                             "FP32": "<f4", "FP64": "<f8"}
"""The protocol's numeric datatypes as little-endian NumPy dtypes (``BYTES`` is handled apart)."""

_INPUT_TYPES = ("FP32", "FP64", "UINT8")
_LAYOUTS = ("NCHW", "NHWC", "FLAT")


# -- the wire format (shared with the local server) ------------------------------------------------

class Levels:
    """A tensor given as 8-bit levels and what each level stands for in ``datatype``.

    ``k`` for ``UINT8``; ``k / 255`` (``scale=255``) or ``k`` for floats. The
    value of each of the 256 levels is computed once, so a float tensor is one
    table lookup, and its JSON text is a join of 256 precomputed strings (the
    same text ``json.dumps`` writes for those floats), not 150k float reprs.
    Binary bodies take the quotient in one vectorised pass.
    """

    __slots__ = ("levels", "datatype", "scale")

    def __init__(self, levels: np.ndarray, datatype: str, scale: float = 1.0):
        if levels.dtype != np.uint8:
            raise InvalidInputError(f"levels have dtype {levels.dtype}; expected uint8")
        self.levels, self.datatype, self.scale = levels, datatype, float(scale)

    @property
    def shape(self) -> list[int]:
        return list(self.levels.shape)

    def values(self) -> np.ndarray:
        dtype = np.dtype(DATATYPES[self.datatype])
        if self.scale == 1.0:
            return self.levels.astype(dtype)
        # One pass, and the same correctly rounded quotient as the table (3x faster than a gather).
        return np.divide(self.levels, dtype.type(self.scale), dtype=dtype)

    def json_text(self) -> str:
        return "[" + ",".join(_level_table(self.datatype, self.scale)[1][self.levels.ravel()]) + "]"


@functools.lru_cache(maxsize=None)
def _level_table(datatype: str, scale: float) -> tuple[np.ndarray, np.ndarray]:
    dtype = np.dtype(DATATYPES[datatype])
    values = np.arange(256, dtype=dtype)
    if scale != 1.0:
        values = values / dtype.type(scale)    # one correctly rounded division, as x.astype(dtype) / 255
    text = np.array([json.dumps(v) for v in values.tolist()], dtype=object)
    return values, text


def encode_tensors(doc: dict[str, Any], key: str, tensors: Sequence[tuple[dict[str, Any], Any]],
                   binary: bool) -> tuple[bytes, int | None]:
    """An inference request or response body, and the JSON header's length when ``binary``.

    ``doc`` holds the other fields (``id``, ``outputs`` wanted, ...); ``key``
    is ``"inputs"`` or ``"outputs"``; each tensor is ``(meta, values)`` with
    ``meta`` holding ``name``, ``datatype`` and ``shape`` and ``values`` an
    array, a :class:`Levels`, or a list of ``bytes`` for ``BYTES``.
    """
    entries, blobs, spliced = [], [], {}
    for j, (meta, values) in enumerate(tensors):
        entry = dict(meta)
        if binary:
            blob = (memoryview(np.ascontiguousarray(values.values())) if isinstance(values, Levels)
                    else _to_bytes(meta["datatype"], values))
            entry["parameters"] = {**entry.get("parameters", {}), "binary_data_size": blob.nbytes}
            blobs.append(blob)
        elif isinstance(values, Levels):
            mark = f"@@levels{j}@@"
            entry["data"] = mark
            spliced[json.dumps(mark)] = values.json_text()
        elif meta["datatype"] == "BYTES":
            entry["data"] = [v.decode("utf-8", errors="replace") for v in values]
        else:
            entry["data"] = np.asarray(values).reshape(-1).tolist()
        entries.append(entry)
    text = json.dumps({**doc, key: entries}, separators=(",", ":"))
    for mark, data in spliced.items():
        text = text.replace(mark, data, 1)
    header = text.encode()
    return (b"".join([header, *blobs]), len(header)) if binary else (header, None)


def decode_tensors(body: bytes, header_length: Any, key: str, what: str) -> tuple[dict[str, Any], list]:
    """``(doc, [(meta, values), ...])`` from a body :func:`encode_tensors` wrote (or a server did).

    ``values`` is a NumPy array shaped as ``meta["shape"]`` for numeric types
    and a list of ``bytes`` for ``BYTES``. Raises ResponseFormatError naming
    what is wrong.
    """
    n_header = len(body)
    if header_length is not None:
        try:
            n_header = int(header_length)
        except (TypeError, ValueError):
            raise ResponseFormatError(f"{what}: {HEADER_LENGTH}={header_length!r}; expected a byte count") from None
        if not 0 < n_header <= len(body):
            raise ResponseFormatError(f"{what}: {HEADER_LENGTH}={n_header} but the body has {len(body)} bytes")
    try:
        doc = json.loads(body[:n_header])
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise ResponseFormatError(f"{what}: the JSON part is not valid JSON ({type(exc).__name__}); starts "
                                  f"{body[:120]!r}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get(key), list):
        raise ResponseFormatError(f"{what} has no {key!r} list (keys there: "
                                  f"{sorted(doc)[:8] if isinstance(doc, dict) else type(doc).__name__})")
    offset, tensors = n_header, []
    for j, entry in enumerate(doc[key]):
        where = f"{what} {key}.{j}"
        if not isinstance(entry, dict):
            raise ResponseFormatError(f"{where} is {type(entry).__name__}; expected an object")
        datatype, shape = entry.get("datatype"), entry.get("shape")
        if datatype != "BYTES" and datatype not in DATATYPES:
            raise ResponseFormatError(f"{where}.datatype={datatype!r}; expected one of BYTES, {', '.join(DATATYPES)}")
        if (not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0
                                                    for d in shape)):
            raise ResponseFormatError(f"{where}.shape={shape!r}; expected a list of non-negative integers")
        size = (entry.get("parameters") or {}).get("binary_data_size")
        if size is not None:
            if not isinstance(size, int) or size < 0 or offset + size > len(body):
                raise ResponseFormatError(f"{where}: binary_data_size={size!r} does not fit the "
                                          f"{len(body) - offset} bytes left in the body")
            values = _from_bytes(datatype, body[offset:offset + size], shape, where)
            offset += size
        elif "data" in entry:
            values = _from_json(datatype, entry["data"], shape, where)
        else:
            raise ResponseFormatError(f"{where} has neither 'data' nor parameters.binary_data_size")
        tensors.append((entry, values))
    return doc, tensors


def _count(shape: Sequence[int]) -> int:
    return int(np.prod(shape, dtype=np.int64)) if len(shape) else 1


def _to_bytes(datatype: str, values: Any) -> memoryview:
    if datatype == "BYTES":
        return memoryview(b"".join(struct.pack("<I", len(v)) + v for v in values))
    return memoryview(np.ascontiguousarray(values, dtype=DATATYPES[datatype]))


def _from_bytes(datatype: str, raw: bytes, shape: list[int], where: str) -> Any:
    n = _count(shape)
    if datatype == "BYTES":
        out, pos = [], 0
        while pos < len(raw):
            if pos + 4 > len(raw):
                raise ResponseFormatError(f"{where}: a BYTES element's length is cut short")
            (length,) = struct.unpack_from("<I", raw, pos)
            if pos + 4 + length > len(raw):
                raise ResponseFormatError(f"{where}: a BYTES element of {length} bytes runs past the tensor")
            out.append(raw[pos + 4:pos + 4 + length])
            pos += 4 + length
        if len(out) != n:
            raise ResponseFormatError(f"{where} holds {len(out)} BYTES elements; shape {shape} needs {n}")
        return out
    dtype = np.dtype(DATATYPES[datatype])
    if len(raw) != n * dtype.itemsize:
        raise ResponseFormatError(f"{where} has {len(raw)} bytes; shape {shape} of {datatype} needs "
                                  f"{n * dtype.itemsize}")
    return np.frombuffer(raw, dtype=dtype).reshape(shape)


def _from_json(datatype: str, data: Any, shape: list[int], where: str) -> Any:
    n = _count(shape)
    flat = _flatten(data, where)
    if len(flat) != n:
        raise ResponseFormatError(f"{where}.data holds {len(flat)} values; shape {shape} needs {n}")
    if datatype == "BYTES":
        if not all(isinstance(v, str) for v in flat):
            raise ResponseFormatError(f"{where}.data: expected strings for BYTES")
        return [v.encode() for v in flat]
    if not all(isinstance(v, (int, float)) and (datatype == "BOOL" or not isinstance(v, bool)) for v in flat):
        bad = next(v for v in flat if not isinstance(v, (int, float)) or isinstance(v, bool))
        raise ResponseFormatError(f"{where}.data holds {bad!r}; expected numbers for {datatype}")
    try:
        return np.asarray(flat, dtype=np.float64 if datatype.startswith("FP") else DATATYPES[datatype]).reshape(shape)
    except (OverflowError, ValueError) as exc:
        raise ResponseFormatError(f"{where}.data cannot be read as {datatype} ({exc})") from None


def _flatten(data: Any, where: str) -> list:
    if not isinstance(data, list):
        raise ResponseFormatError(f"{where}.data is {type(data).__name__}; expected a list")
    if not any(isinstance(v, list) for v in data):
        return data
    out: list = []
    for v in data:   # the protocol allows nested lists in row-major order
        out.extend(_flatten(v, where) if isinstance(v, list) else [v])
    return out


def parse_classification(entry: bytes, where: str) -> tuple[float, int, str | None]:
    """``(score, index, label or None)`` from one classification-extension string ``"0.9:3:cat"``."""
    text = entry.decode("utf-8", errors="replace")
    parts = text.split(":", 2)
    try:
        value, index = float(parts[0]), int(parts[1])
    except (ValueError, IndexError):
        raise ResponseFormatError(f"{where} is {text!r}; expected '<score>:<index>[:<label>]'") from None
    if not np.isfinite(value) or index < 0:
        raise ResponseFormatError(f"{where} is {text!r}; expected a finite score and an index >= 0")
    return value, index, parts[2] if len(parts) == 3 else None


# -- the preset -------------------------------------------------------------------------------------

class OpenInferencePreset(Preset):
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

    def __init__(self, model_name: str, *, model_version: str | None = None, input_name: str | None = None,
                 datatype: str | None = None, layout: str | None = None, value_range: str = "unit",
                 output_name: str | None = None, scores: str = "probabilities", classification: int | None = None,
                 binary: bool | None = None, max_batch: int = 32, ready_timeout: float = 60.0,
                 wait_ready: bool = True):
        for value, what in ((model_name, "model_name"), (model_version, "model_version"),
                            (input_name, "input_name"), (output_name, "output_name")):
            if (value is not None or what == "model_name") and (not isinstance(value, str) or not value):
                raise InvalidInputError(f"{what}={value!r}; expected a non-empty string (the name on the server)")
        self.model_name = model_name
        self.model_version = model_version
        self.input_name = input_name
        self.datatype = None if datatype is None else check_choice(datatype, "datatype", _INPUT_TYPES)
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
        self._dims: list[int] | None = None   # the input's declared shape, batch dimension removed
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

    def prepare(self, base_url: str, send: Callable[[HttpRequest], HttpResponse],
                sleep: Callable[[float], Any]) -> None:
        """Wait for readiness and read what the user left out (once; free requests, not billed)."""
        if self._prepared:
            return
        with self._lock:
            if self._prepared:
                return
            if self._wait_ready:
                self._poll_ready(base_url, send, sleep)
            if None in (self.input_name, self.datatype, self.layout) or (
                    self.output_name is None and self.classification is not None):
                self._read_metadata(self._get_json(send, base_url + self.model_path, "model metadata"))
            if self._binary is None:
                self._binary = self._offers_binary(base_url, send)
            self._prepared = True

    def _poll_ready(self, base_url: str, send: Callable, sleep: Callable) -> None:
        start, slept, pause = time.monotonic(), 0.0, 0.05
        for url in (f"{base_url}/v2/health/ready", f"{base_url}{self.model_path}/ready"):
            while True:
                last = self._ready_once(send, url)
                if last is None:
                    break
                if max(time.monotonic() - start, slept) + pause > self._ready_timeout:
                    raise TransientError(f"open_inference: {url} did not answer ready within "
                                         f"ready_timeout={self._ready_timeout:g} s (last: {last}); is the server "
                                         "up and the model loaded?")
                result = sleep(pause)
                if hasattr(result, "close"):   # an async sleep handed to a sync step: not awaited here
                    result.close()
                    time.sleep(pause)
                slept += pause
                pause = min(2.0, pause * 2)

    def _ready_once(self, send: Callable, url: str) -> str | None:
        """``None`` when ``url`` says ready, else what it said; raises on answers that will not change."""
        try:
            response = send(HttpRequest("GET", url))
        except TransientError as exc:   # not listening yet, or a dropped connection
            return str(exc)
        if response.status_code in (401, 403):
            raise classify_status(response, "open_inference")
        if response.status_code == 404:
            raise RemoteError(f"open_inference: {url} answered 404 ({response.snippet(200)}); check model_name="
                              f"{self.model_name!r} and model_version={self.model_version!r} (the server lists "
                              "its models at POST /v2/repository/index)")
        if not response.ok:
            return f"HTTP {response.status_code} {response.snippet(200)}"
        try:
            body = json.loads(response.content) if response.content.strip() else {}
        except ValueError:
            body = {}
        if isinstance(body, dict) and body.get("ready") is False:
            return f"HTTP {response.status_code} {response.snippet(200)}"
        return None

    def _get_json(self, send: Callable, url: str, what: str) -> Any:
        response = send(HttpRequest("GET", url))
        if not response.ok:
            err = classify_status(response, "open_inference", detail=_error_text(response))
            err.args = (f"{what} ({url}): {err}",)
            raise err
        return response.json()

    def _offers_binary(self, base_url: str, send: Callable) -> bool:
        try:
            meta = self._get_json(send, base_url + "/v2", "server metadata")
        except RemoteError:
            return False   # no server metadata: stay with plain JSON, which every server reads
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
                raise InvalidInputError(f"input_name=None but model {self.model_name!r} has inputs {names}; "
                                        "expected input_name= naming the image input")
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
        if self.datatype is None and entry.get("datatype") not in _INPUT_TYPES:
            raise InvalidInputError(f"model {self.model_name!r} input {entry['name']!r} takes datatype "
                                    f"{entry.get('datatype')!r}; this preset sends one of {', '.join(_INPUT_TYPES)} "
                                    "(pass datatype= to override)")
        self.input_name = entry["name"]
        self.datatype = self.datatype or entry["datatype"]
        self._batched = len(shape) in (2, 4)
        self._dims = shape[1:] if self._batched else shape
        if self.layout is None:
            self.layout = _layout_of(self._dims, self.model_name, entry["name"])
        outputs = meta.get("outputs")
        if self.output_name is None and isinstance(outputs, list) and outputs and isinstance(outputs[0], dict) \
                and isinstance(outputs[0].get("name"), str):
            self.output_name = outputs[0]["name"]   # the first output holds the scores, unless told otherwise
        if self.output_name is None and self.classification is not None:
            raise ResponseFormatError(f"{where} has no 'outputs'; pass output_name= for classification=")

    # -- one request ------------------------------------------------------------------------------

    def build_request(self, base_url: str, images: Sequence[Any], labels: Sequence[str]) -> HttpRequest:
        """``images``: the quantised uint8 ``(C, H, W)`` arrays (this preset takes tensors, not PNG)."""
        x = np.stack(images)
        if x.dtype != np.uint8:
            raise InvalidInputError(f"open_inference got {x.dtype} images; expected the quantised uint8 images")
        if self.input_name is None or self.datatype is None or self.layout is None:
            raise InvalidInputError("open_inference: input_name, datatype and layout are unknown (the metadata was "
                                    "not read); pass them, or let RemoteModel call prepare() first")
        if self.layout == "NHWC":
            x = x.transpose(0, 2, 3, 1)
        elif self.layout == "FLAT":
            x = x.reshape(len(x), -1)
        self._check_dims(x.shape[1:], images[0].shape)
        if not self._batched:
            if len(x) != 1:
                raise InvalidInputError(f"model {self.model_name!r} input {self.input_name!r} has no batch dimension "
                                        f"(shape {self._dims}); expected max_batch=1, got {self.max_batch}")
            x = x[0]
        tensor = Levels(x, self.datatype, 255.0 if self.datatype != "UINT8" and self.value_range == "unit" else 1.0)
        doc: dict[str, Any] = {}
        if self.output_name is not None:
            params: dict[str, Any] = {"binary_data": True} if self._binary else {}
            if self.classification is not None:
                params["classification"] = self.classification
            doc["outputs"] = [{"name": self.output_name, "parameters": params}]
        elif self._binary:   # every output, in binary
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
        if len(dims) != len(self._dims) or any(d != -1 and d != g for d, g in zip(self._dims, dims)):
            raise InvalidInputError(f"model {self.model_name!r} input {self.input_name!r} takes shape {self._dims} "
                                    f"per image (its metadata); input_shape={tuple(chw)} in layout {self.layout} "
                                    f"gives {list(dims)}")

    def check(self, response: HttpResponse) -> None:
        if response.ok:
            return
        text = _error_text(response)
        lowered = text.lower()
        retry_after = parse_retry_after(response.headers.get("retry-after"))
        if "maximum queue size" in lowered or response.status_code == 503:
            raise throttle(f"open_inference server is overloaded (HTTP {response.status_code}): {text}", retry_after)
        if response.status_code == 400 and "not ready" in lowered:
            raise transient(f"open_inference model is not ready (HTTP 400): {text}", retry_after)
        raise classify_status(response, "open_inference", detail=text)

    def parse(self, response: HttpResponse, n_images: int) -> list[Answer | RemoteError]:
        doc, tensors = decode_tensors(response.content, response.headers.get(HEADER_LENGTH.lower()), "outputs",
                                      "open_inference response")
        if not tensors:
            raise ResponseFormatError("open_inference response has an empty 'outputs' list")
        names = [meta.get("name") for meta, _ in tensors]
        if self.output_name is None:
            meta, values = tensors[0]
        elif self.output_name in names:
            meta, values = tensors[names.index(self.output_name)]
        else:
            raise ResponseFormatError(f"open_inference response has outputs {names}; expected {self.output_name!r}")
        where = f"open_inference output {meta.get('name')!r}"
        if meta["datatype"] == "BYTES":
            return self._read_classes(values, meta["shape"], n_images, where)
        rows = np.asarray(values, dtype=np.float64)
        rows = rows.reshape(n_images, -1) if rows.size % max(n_images, 1) == 0 else rows
        if rows.ndim != 2 or rows.shape != (n_images, len(self._labels)):
            raise ResponseFormatError(f"{where} has shape {meta['shape']} for {n_images} image(s); expected "
                                      f"{len(self._labels)} scores per image, one per label (labels must list the "
                                      "model's classes in output order)")
        if not np.all(np.isfinite(rows)):
            raise ResponseFormatError(f"{where} holds a non-finite score")
        if self.scores == "logits":
            rows = np.exp(rows - rows.max(axis=1, keepdims=True))
            rows /= rows.sum(axis=1, keepdims=True)
        elif rows.min() < 0.0 or rows.max() > 1.0:
            raise ResponseFormatError(f"{where} holds scores in [{rows.min():g}, {rows.max():g}]; expected "
                                      "probabilities in [0, 1] (pass scores='logits' for a model that outputs logits)")
        return [dict(zip(self._labels, map(float, row))) for row in rows]

    def _read_classes(self, values: list[bytes], shape: list[int], n_images: int, where: str) -> list[Answer]:
        if not values and n_images:
            raise ResponseFormatError(f"{where} holds no classification entries")
        if len(values) % n_images:
            raise ResponseFormatError(f"{where} holds {len(values)} classification entries for {n_images} image(s)")
        k = len(values) // n_images
        answers: list[Answer] = []
        for i in range(n_images):
            answer: Answer = {}
            for j, entry in enumerate(values[i * k:(i + 1) * k]):
                value, index, label = parse_classification(entry, f"{where} entry {i * k + j}")
                if not 0.0 <= value <= 1.0 and self.scores == "probabilities":
                    raise ResponseFormatError(f"{where} entry {i * k + j} scores {value:g}; expected [0, 1]")
                if index >= len(self._labels):
                    raise ResponseFormatError(f"{where} entry {i * k + j} names class {index} ({label!r}); labels "
                                              f"has {len(self._labels)} (labels must list every class in order)")
                answer[self._labels[index]] = value
            answers.append(answer)
        return answers

    def identity(self) -> dict[str, Any]:
        # What changes the answers; not how they travel (binary, batch size) nor how long to wait.
        keep = ("model_name", "model_version", "input_name", "datatype", "layout", "value_range", "output_name",
                "scores", "classification")
        return {"preset": self.name, **{k: getattr(self, k) for k in keep}}


def _layout_of(dims: list[int], model: str, name: str) -> str:
    if len(dims) == 1:
        return "FLAT"
    if len(dims) == 3:
        first, last = dims[0] in (1, 3), dims[-1] in (1, 3)
        if first and not last:
            return "NCHW"
        if last and not first:
            return "NHWC"
    raise InvalidInputError(f"model {model!r} input {name!r} has shape {dims} per image, which does not say its "
                            "layout; expected layout='NCHW', 'NHWC' or 'FLAT'")


def _error_text(response: HttpResponse) -> str:
    """The protocol's error body ``{"error": "..."}``, or the start of whatever came."""
    try:
        body = json.loads(response.content)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return response.snippet(300)
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        return body["error"][:300]
    return response.snippet(300)
