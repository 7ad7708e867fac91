"""The Open Inference Protocol (V2, as KServe, Triton and MLServer speak it), served by the local server.

``bar serve --preset open_inference --model-name digits`` answers:

- ``GET /v2``: server metadata, extensions ``classification`` and ``binary_tensor_data``;
- ``GET /v2/health/live``, ``GET /v2/health/ready``;
- ``GET /v2/models/{name}[/versions/1]`` (metadata: input ``input``, ``FP32``
  (or ``UINT8`` with ``input_datatype="UINT8"``), ``[-1, C, H, W]``; output ``probabilities``, ``FP32``, ``[-1, n_classes]``)
  and ``.../ready``;
- ``POST /v2/models/{name}[/versions/1]/infer``: JSON tensors or the binary
  tensor extension (``Inference-Header-Content-Length``), the scores tensor or
  Triton's classification extension (``parameters.classification = k``:
  strings ``"<score>:<index>:<label>"``).

Inference takes ``Authorization: Bearer <key>`` and goes through the same
rate limit, fault injection and billing as every shape of the server; the
health and metadata routes are free. Errors are the protocol's
``{"error": "..."}`` bodies: 400 for a request the model cannot take, 404 for
an unknown model, 401, 429 (``Retry-After``) and 500.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Mapping

import numpy as np

from bar_sdk.adapters.remote.presets.open_inference import HEADER_LENGTH, decode_tensors, encode_tensors
from bar_sdk.adapters.server.shape import BadRequest, Ranked, Wanted
from bar_sdk.errors import ResponseFormatError

if TYPE_CHECKING:
    from starlette.routing import Route

__all__ = ["OpenInferenceShape"]

INPUT, OUTPUT, VERSION = "input", "probabilities", "1"


@dataclass(frozen=True)
class InferWanted(Wanted):
    """What one infer request asked for, beyond the classes: the output's form and the request id."""

    classification: int | None = None
    binary: bool = False
    request_id: str | None = None


class OpenInferenceShape:
    """The V2 inference protocol over REST (one model, served as ``model_name``)."""

    name = "open_inference"
    max_batch = 256
    default_k = 1
    paths: tuple[str, ...] = ()

    def bind(self, state: Any, model_name: str, input_datatype: str = "FP32") -> None:
        """Learn the model being served (the metadata describes it) and the paths it answers on.

        ``input_datatype``: ``"FP32"`` (pixel values in [0, 1]) or ``"UINT8"`` (levels 0..255), as declared.
        """
        self.state = state
        self.model_name = model_name
        self.datatype = input_datatype
        base = f"/v2/models/{model_name}"
        self.paths = (f"{base}/infer", f"{base}/versions/{VERSION}/infer")

    def credential(self, headers: Mapping[str, str]) -> str | None:
        value = headers.get("authorization", "")
        return value[7:].strip() if value.startswith("Bearer ") else None

    # -- infer ---------------------------------------------------------------------------------

    def read(self, body: bytes, headers: Mapping[str, str]) -> tuple[list[np.ndarray], Wanted]:
        try:
            doc, tensors = decode_tensors(body, headers.get(HEADER_LENGTH.lower()), "inputs", "inference request")
        except ResponseFormatError as exc:
            raise BadRequest(str(exc)) from None
        if len(tensors) != 1 or tensors[0][0].get("name") != INPUT:
            raise BadRequest(
                f"expected exactly one input named {INPUT!r} for model {self.model_name!r}, got "
                f"{[meta.get('name') for meta, _ in tensors]}"
            )
        meta, x = tensors[0]
        c, h, w = self.state.input_shape
        if meta["datatype"] != self.datatype:
            raise BadRequest(
                f"inference input {INPUT!r} data-type is {meta['datatype']!r}, but model "
                f"{self.model_name!r} expects {self.datatype!r}"
            )
        if (
            len(meta["shape"]) != 4
            or tuple(meta["shape"][1:]) != (c, h, w)
            or not 1 <= meta["shape"][0] <= self.max_batch
        ):
            raise BadRequest(
                f"unexpected shape for input {INPUT!r} for model {self.model_name!r}. Expected "
                f"[-1,{c},{h},{w}] with 1 to {self.max_batch} images, got {meta['shape']}"
            )
        if self.datatype == "UINT8":
            return list(np.asarray(x)), self._wanted(doc)  # levels: the model sees k / 255
        x = np.asarray(x, dtype=np.float32)
        if not np.all(np.isfinite(x)) or x.min() < 0.0 or x.max() > 1.0:
            raise BadRequest(f"input {INPUT!r} holds values outside [0, 1] (or NaN); expected pixel values in [0, 1]")
        return list(x), self._wanted(doc)

    def _wanted(self, doc: dict[str, Any]) -> InferWanted:
        outputs = doc.get("outputs") or []
        if not isinstance(outputs, list) or not all(isinstance(o, dict) for o in outputs):
            raise BadRequest("'outputs' must be a list of objects {'name': ..., 'parameters': {...}}")
        unknown = [o.get("name") for o in outputs if o.get("name") != OUTPUT]
        if unknown:
            raise BadRequest(
                f"unexpected inference output {unknown[0]!r} for model {self.model_name!r}; it has {OUTPUT!r}"
            )
        params = dict((outputs[0].get("parameters") or {}) if outputs else {})
        k = params.get("classification")
        if k is not None and (isinstance(k, bool) or not isinstance(k, int) or k < 1):
            raise BadRequest(f"classification={k!r}; expected a positive integer")
        binary = params.get("binary_data", (doc.get("parameters") or {}).get("binary_data_output", False))
        if not isinstance(binary, bool):
            raise BadRequest(f"binary_data={binary!r}; expected true or false")
        n = self.state.n_classes
        return InferWanted(
            k=min(k, n) if k else n,
            classification=k,
            binary=binary,
            request_id=doc.get("id") if isinstance(doc.get("id"), str) else None,
        )

    def ok(self, ranked: list[Ranked], path_params: Mapping[str, str], wanted: InferWanted) -> Any:
        from starlette.responses import Response

        labels, n = self.state.labels, len(ranked)
        index = {name: i for i, name in enumerate(labels)}
        if wanted.classification is not None:
            k = len(ranked[0])
            strings = [
                f"{1.0 if v is None else v:.9g}:{index[name]}:{name}".encode()  # label-only: score 1
                for answer in ranked
                for name, v in answer
            ]  # every image gets the same k entries
            out: tuple[dict[str, Any], Any] = ({"name": OUTPUT, "datatype": "BYTES", "shape": [n, k]}, strings)
        else:
            scores = np.zeros((n, len(labels)), dtype=np.float32)
            for i, answer in enumerate(ranked):
                for name, v in answer:
                    scores[i, index[name]] = 1.0 if v is None else v  # label-only: one-hot
            out = ({"name": OUTPUT, "datatype": "FP32", "shape": [n, len(labels)]}, scores)
        doc = {"model_name": self.model_name, "model_version": VERSION}
        if wanted.request_id is not None:
            doc["id"] = wanted.request_id
        body, n_header = encode_tensors(doc, "outputs", [out], wanted.binary)
        headers = {HEADER_LENGTH: str(n_header)} if n_header is not None else {}
        return Response(
            body,
            status_code=200,
            headers=headers,
            media_type="application/octet-stream" if n_header is not None else "application/json",
        )

    def error(self, kind: str, message: str) -> tuple[int, dict[str, Any]]:
        status = {"unauthorized": 401, "throttled": 429, "failure": 500, "bad_request": 400}[kind]
        return status, {"error": message}

    def malformed(self, ranked: list[Ranked], path_params: Mapping[str, str], cut: bool) -> bytes:
        whole = json.dumps(
            {
                "model_name": self.model_name,
                "outputs": [
                    {
                        "name": OUTPUT,
                        "datatype": "FP32",
                        "shape": [len(ranked), len(self.state.labels)],
                        "data": [0.0] * (len(ranked) * len(self.state.labels)),
                    }
                ],
            }
        ).encode()
        return whole[: len(whole) // 2] if cut else json.dumps({"model_name": self.model_name}).encode()

    # -- free routes: health and metadata ------------------------------------------------------

    def metadata(self) -> dict[str, Any]:
        c, h, w = self.state.input_shape
        return {
            "name": self.model_name,
            "versions": [VERSION],
            "platform": "bar-sdk",
            "inputs": [{"name": INPUT, "datatype": self.datatype, "shape": [-1, c, h, w]}],
            "outputs": [{"name": OUTPUT, "datatype": "FP32", "shape": [-1, self.state.n_classes]}],
        }

    def free_routes(self) -> list[Route]:
        from starlette.responses import JSONResponse
        from starlette.routing import Route

        import bar_sdk

        def known(request: Any) -> bool:
            p = request.path_params
            return bool(p["name"] == self.model_name and p.get("version", VERSION) == VERSION)

        def not_found(request: Any) -> JSONResponse:
            p = request.path_params
            version = f" version {p['version']!r}" if "version" in p else ""
            return JSONResponse(
                {"error": f"Request for unknown model: {p['name']!r}{version} is not found"}, status_code=404
            )

        async def server_meta(request: Any) -> JSONResponse:
            return JSONResponse(
                {
                    "name": "bar-sdk",
                    "version": getattr(bar_sdk, "__version__", "0"),
                    "extensions": ["classification", "binary_tensor_data"],
                }
            )

        async def live(request: Any) -> JSONResponse:
            return JSONResponse({"live": True})

        async def ready(request: Any) -> JSONResponse:
            return JSONResponse({"ready": True})

        async def model_meta(request: Any) -> JSONResponse:
            return JSONResponse(self.metadata()) if known(request) else not_found(request)

        async def model_ready(request: Any) -> JSONResponse:
            return JSONResponse({"name": self.model_name, "ready": True}) if known(request) else not_found(request)

        async def unknown_infer(request: Any) -> JSONResponse:
            return not_found(request)

        routes = [
            Route("/v2", server_meta, methods=["GET"]),
            Route("/v2/health/live", live, methods=["GET"]),
            Route("/v2/health/ready", ready, methods=["GET"]),
        ]
        for base in ("/v2/models/{name}", "/v2/models/{name}/versions/{version}"):
            routes += [
                Route(base, model_meta, methods=["GET"]),
                Route(base + "/ready", model_ready, methods=["GET"]),
                Route(base + "/infer", unknown_infer, methods=["POST"]),
            ]
        return routes
